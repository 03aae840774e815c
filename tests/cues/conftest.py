"""Fixtures for the cue tests: backend availability skips."""

from __future__ import annotations

import pytest


def _why_unavailable(cue: str) -> str | None:
    from opencrop.cues import available

    return available()[cue]


@pytest.fixture
def need():
    """``need("faces")`` skips the test, saying why, when that cue's runtime or model file is missing here."""

    def _need(cue: str) -> None:
        why = _why_unavailable(cue)
        if why is not None:
            pytest.skip(f"{cue} backend unavailable: {why} (run `opencrop models fetch`)")

    return _need
