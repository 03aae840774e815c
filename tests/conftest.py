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


@pytest.fixture(autouse=True)
def _torch_one_thread():
    """One intra-op torch thread per test: the tests use small tensors, and on a shared 2-core machine OpenMP
    workers spin-waiting for cores cost far more than they save (restored after each test)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def shared_or_none() -> Path | None:
    """The ``../shared`` root, or ``None`` when absent (for tests that use it when there and run without it)."""
    return shared_root()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real annotation files); skips the test when absent."""
    root = shared_root()
    if root is None:
        pytest.skip("../shared/data is absent (real annotation files)")
    return root / "data"


@pytest.fixture
def no_backends(tmp_path, monkeypatch):
    """Cue model files unreachable (empty cache, no env vars), with the lazily loaded backends forgotten."""
    from opencrop import modelfiles
    from opencrop.cues import faces, objects, segmentation

    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path))
    monkeypatch.delenv("OPENCROP_DEGRADE", raising=False)
    for mf in modelfiles.list_files():
        monkeypatch.delenv(mf.env_var, raising=False)
        if mf.kind == "cue" and modelfiles.locate(mf.name) is not None:
            pytest.skip(f"{mf.name} is installed as a package here; cannot make it unavailable")
    lazies = [faces._SHORT_NET, faces._FULL_NET, objects._NET, objects._ORT, segmentation._NET]
    for lz in lazies:
        lz.reset()
    yield tmp_path
    for lz in lazies:
        lz.reset()
