"""opencrop._threads.in_parallel: order, errors, one-CPU fallback."""

from __future__ import annotations

import threading

import pytest

from opencrop import _threads


def test_in_parallel_keeps_order_and_uses_helpers() -> None:
    names: list[str] = []

    def job(i: int):
        def run() -> int:
            names.append(threading.current_thread().name)
            return i * i

        return run

    assert _threads.in_parallel([job(i) for i in range(5)]) == [0, 1, 4, 9, 16]
    assert _threads.in_parallel([]) == []
    if _threads.cpus() > 1:
        assert "opencrop-worker" in names and threading.current_thread().name in names


def test_in_parallel_reraises_after_all_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[int] = []

    def boom() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        _threads.in_parallel([boom, lambda: done.append(1) or 1, lambda: done.append(2) or 2])
    assert 1 in done  # the other thread ran on; a thread stops at its own first failure
    monkeypatch.setattr(_threads, "cpus", lambda: 1)
    names: list[str] = []
    assert _threads.in_parallel([lambda: names.append(threading.current_thread().name) or 7] * 3) == [7, 7, 7]
    assert set(names) == {threading.current_thread().name}
