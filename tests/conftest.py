"""Shared fixtures. Tests that need ../shared (real annotation files, odd images) skip cleanly without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path | None:
    env = os.environ.get("OPENCROP_SHARED")
    cands = [Path(env)] if env else []
    cands += [REPO.parent / "shared", REPO / "shared"]
    for c in cands:
        if (c / "data").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real annotation files); skips the test when absent."""
    root = shared_root()
    if root is None:
        pytest.skip("../shared/data is absent (real annotation files)")
    return root / "data"
