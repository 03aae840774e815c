"""One intra-op thread per test here: these tests use small tensors, and on a shared, busy machine OpenMP workers
spin-waiting for cores cost far more than they save (restored after each test)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
