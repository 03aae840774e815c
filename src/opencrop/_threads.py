"""Two-core latency helper: run a few GIL-releasing pieces of work (Pillow resampling) side by side."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["cpus", "in_parallel"]

T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def in_parallel(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """``[job() for job in jobs]``, dealt round-robin to the calling thread and up to ``cpus() - 1`` short-lived
    helper threads (sequential with one CPU). Worth it only for work that releases the GIL, such as Pillow's
    resize and reduce. A thread stops at its first failing job; the first such exception is re-raised here, once
    every thread has finished."""
    n = min(len(jobs), cpus())
    if n <= 1:
        return [job() for job in jobs]
    results: list[T | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(k, len(jobs), n):
                results[i] = jobs[i]()
        except BaseException as e:  # re-raised by the caller
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,), name="opencrop-worker", daemon=True) for k in range(1, n)]
    for t in threads:
        t.start()
    work(0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]
