"""A bounded pool of worker processes for the CPU-bound cropping.

Design:

* ``workers`` processes (fresh interpreters started with ``subprocess``, never forks of the threaded server),
  each holding its own loaded croppers (:func:`opencrop.serve.worker.load_croppers`) and running one job at a
  time: real parallelism, no lock shared between requests. A worker ignores SIGINT/SIGTERM (the service stops
  it after the requests in flight) and exits when its socket closes (the service died).
* Admission is bounded: a request takes an idle worker, or waits in a queue of at most ``queue`` places; beyond
  that :meth:`WorkerPool.run` raises :class:`Saturated` at once (the service answers 503 with ``Retry-After``).
  A request waits at most ``timeout`` seconds for a worker (then :class:`Saturated` too).
* A job that runs longer than ``timeout`` seconds gets its worker killed (:class:`JobTimeout`, 504); a worker
  that dies (:class:`WorkerCrashed`, 500) is replaced in the background, and the pool is *ready* again once the
  replacement has loaded.
* The event loop never blocks on a worker: each call waits on its worker's pipe in one of ``workers`` threads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from opencrop.serve.params import CropJob
from opencrop.serve.settings import ServeSettings
from opencrop.serve.worker import JobResult

__all__ = ["JobTimeout", "PoolClosed", "Saturated", "WorkerCrashed", "WorkerPool", "WorkerStartError"]

log = logging.getLogger("opencrop.serve")


class WorkerStartError(RuntimeError):
    """A worker could not load its croppers (the message is the worker's error; ``kind`` its exception class
    name, e.g. ``"UntrainedModelError"``, or ``None`` when the worker died or hung)."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class Saturated(Exception):
    """Every worker busy and the queue full (or no worker free within the timeout)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobTimeout(Exception):
    """The job ran past the timeout; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker process died during the job."""


class PoolClosed(Exception):
    """The pool is shutting down."""


class _Worker:
    """One worker process (``python -c ... worker_main``, not a fork) and the parent's end of its socket pair."""

    def __init__(self, settings: ServeSettings, index: int) -> None:
        self.index = index
        parent, child = socket.socketpair()
        # the child imports opencrop from the same places as this process, whatever its __main__ is
        code = (f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}; "
                f"from opencrop.serve.worker import worker_main; worker_main({child.fileno()})")
        self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                                     start_new_session=False)
        child.close()
        self.conn = Connection(parent.detach())
        self.conn.send(settings)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        try:
            if not self.conn.poll(timeout):
                raise WorkerStartError(f"worker {self.index} did not load its models within {timeout:.0f} s")
            kind, info = self.conn.recv()
        except (EOFError, OSError):
            raise WorkerStartError(f"worker {self.index} exited while loading (exit code "
                                   f"{self.proc.poll()})") from None
        if kind != "ready":
            raise WorkerStartError(info[1], info[0])
        self.info = info

    def call(self, job: CropJob, timeout: float) -> JobResult:
        """Run ``job`` (blocking); :class:`JobTimeout` / :class:`WorkerCrashed` leave this worker unusable."""
        try:
            self.conn.send(job)
            if not self.conn.poll(timeout):
                raise JobTimeout(f"the crop took longer than {timeout:g} s and was stopped")
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerCrashed(f"the worker process died during the crop (exit code {self.proc.poll()})"
                                ) from None

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it has not within ``timeout`` seconds."""
        self.ask_to_stop()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def ask_to_stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.conn.close()


class WorkerPool:
    """``settings.workers`` worker processes behind a bounded queue of ``settings.queue_size`` places.

    Call :meth:`start` (blocking) once, :meth:`bind` on the event loop, then :meth:`run` from that loop;
    :meth:`close` at shutdown.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.size = settings.workers
        self.queue_size = settings.queue_size
        self.timeout = settings.timeout
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="opencrop-pool")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._next_index = 0
        self._waiting = 0
        self._busy = 0
        self._starting = 0
        self._closed = False
        self._ready_at_start: list[_Worker] = []
        self._last_error: str | None = None
        #: cues the workers could not run, with why (only with ``settings.degrade``); reported by ``/healthz``
        self.degraded: dict[str, str] = {}
        self.counts = {"done": 0, "timeouts": 0, "crashes": 0, "rejected": 0, "restarts": 0}
        self._mean_s = 0.1  # moving average of job seconds, for Retry-After

    # -- life cycle --------------------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        with self._lock:
            i = self._next_index
            self._next_index += 1
        return _Worker(self.settings, i)

    def start(self, load_timeout: float = 300.0) -> None:
        """Start every worker and wait until all have loaded (blocking; seconds: each imports torch and loads
        its models). Raises :class:`WorkerStartError` with the first worker's error (every worker is stopped)."""
        workers = [self._spawn() for _ in range(self.size)]
        try:
            for w in workers:
                w.wait_ready(load_timeout)
        except WorkerStartError:
            for w in workers:
                w.kill()
            raise
        with self._lock:
            self._all.update(workers)
        self._ready_at_start = workers
        self.degraded = dict(workers[0].info.get("degraded", {}))
        log.info("%d worker processes ready (pids %s)", len(workers), ", ".join(str(w.pid) for w in workers))

    @property
    def started(self) -> bool:
        return bool(self._all) or self._closed

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve requests from ``loop`` (call it on that loop, after :meth:`start`)."""
        self._loop = loop
        self._idle = asyncio.Queue()
        for w in self._ready_at_start:
            self._idle.put_nowait(w)
        self._ready_at_start = []

    def close(self) -> None:
        """Stop every worker (idle ones exit at once; busy ones are killed after 5 s)."""
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.ask_to_stop()
        for w in workers:
            w.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _replace(self, dead: _Worker) -> None:
        """Kill ``dead`` and load a replacement on a background thread (retrying, with back-off, on failure)."""
        with self._lock:
            self._all.discard(dead)
            self._starting += 1
        self.counts["restarts"] += 1

        def restart() -> None:
            dead.kill()
            delay = 1.0
            try:
                while not self._closed:
                    w = self._spawn()
                    try:
                        w.wait_ready(300.0)
                    except WorkerStartError as e:
                        w.kill()
                        self._last_error = str(e)
                        log.error("replacement worker failed to start: %s (retrying in %.0f s)", e, delay)
                        time.sleep(delay)
                        delay = min(30.0, 2 * delay)
                        continue
                    if self._closed:
                        w.stop()
                        return
                    with self._lock:
                        self._all.add(w)
                    assert self._loop is not None and self._idle is not None
                    self._loop.call_soon_threadsafe(self._idle.put_nowait, w)
                    log.info("replacement worker %d ready (pid %s)", w.index, w.pid)
                    return
            finally:
                with self._lock:
                    self._starting -= 1

        threading.Thread(target=restart, name="opencrop-pool-restart", daemon=True).start()

    # -- requests ----------------------------------------------------------------------------------------
    def retry_after(self) -> int:
        """Seconds a rejected client should wait: the queue's expected drain time, at least 1."""
        return max(1, math.ceil(self._mean_s * (self._waiting + 1) / self.size))

    async def run(self, job: CropJob) -> JobResult:
        """Run ``job`` on a worker.

        Raises:
            Saturated: no idle worker and no free queue place, or none free within ``timeout`` seconds.
            JobTimeout: the job ran longer than ``timeout`` seconds (its worker is killed and replaced).
            WorkerCrashed: the worker died during the job (it is replaced).
            PoolClosed: the pool is shutting down.
        """
        if self._closed or self._idle is None:
            raise PoolClosed("the service is shutting down")
        if self._idle.qsize() + self.queue_size - self._waiting <= 0:
            self.counts["rejected"] += 1
            raise Saturated(f"all {self.size} workers are busy and the queue ({self.queue_size} places) is full",
                            self.retry_after())
        self._waiting += 1
        try:
            worker = await asyncio.wait_for(self._idle.get(), self.timeout)
        except asyncio.TimeoutError:  # (TimeoutError itself from 3.11 on)
            self.counts["rejected"] += 1
            raise Saturated(f"no worker became free within {self.timeout:g} s", self.retry_after()) from None
        finally:
            self._waiting -= 1
        if self._closed:
            raise PoolClosed("the service is shutting down")
        self._busy += 1
        fut: Future[JobResult] = self._threads.submit(worker.call, job, self.timeout)
        # the worker goes back (or is replaced) when its call ends, even if this request is cancelled meanwhile
        fut.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._finish, worker, f))  # type: ignore
        return await asyncio.shield(asyncio.wrap_future(fut))

    def _finish(self, worker: _Worker, fut: Future[JobResult]) -> None:
        self._busy -= 1
        e = fut.exception()
        if e is None:
            self.counts["done"] += 1
            self._mean_s = 0.8 * self._mean_s + 0.2 * fut.result().seconds
            if self._closed:
                worker.stop()
            else:
                assert self._idle is not None
                self._idle.put_nowait(worker)
            return
        if isinstance(e, JobTimeout):
            self.counts["timeouts"] += 1
            log.warning("job timed out after %g s: killing worker %d (pid %s)", self.timeout, worker.index,
                        worker.pid)
        else:
            self.counts["crashes"] += 1
            log.error("worker %d (pid %s) failed: %s", worker.index, worker.pid, e)
        if not self._closed:
            self._replace(worker)
        else:
            worker.kill()

    # -- introspection -----------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """At least one worker loaded and the pool open."""
        with self._lock:
            return not self._closed and len(self._all) > 0

    def stats(self) -> dict[str, Any]:
        """Counts for ``/healthz`` and ``/readyz``."""
        with self._lock:
            alive = len(self._all)
            pids = sorted(w.pid for w in self._all)
            starting = self._starting
        return {"workers": self.size, "alive": alive, "pids": pids, "starting": starting, "busy": self._busy,
                "idle": self._idle.qsize() if self._idle is not None else 0, "waiting": self._waiting,
                "queue": self.queue_size, "mean_job_ms": round(1000 * self._mean_s, 1), **self.counts,
                **({"last_error": self._last_error} if self._last_error else {})}
