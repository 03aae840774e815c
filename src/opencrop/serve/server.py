"""Running the app on uvicorn: in the foreground (``opencrop serve``) or on a background thread (tests,
benchmarks, embedding)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from opencrop.serve.app import create_app
from opencrop.serve.pool import WorkerPool
from opencrop.serve.settings import ServeSettings

__all__ = ["listen", "running", "serve", "uvicorn_config"]

#: pending connections the kernel queues before ``accept`` (the old standard-library server had 5)
BACKLOG = 2048


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port). Raises ``OSError`` naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, settings: ServeSettings, log_config: Any = None) -> uvicorn.Config:
    """uvicorn settings for ``app``: h11, lifespan on, connection cap, keep-alive and graceful-shutdown timeouts;
    uvicorn's own access log off (the app writes its own, :class:`~opencrop.serve.middleware.AccessLog`)."""
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, http="h11", lifespan="on", access_log=False,
        log_config=log_config, limit_concurrency=settings.max_connections, timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=int(settings.graceful_timeout), backlog=BACKLOG, server_header=False,
    )


def serve(settings: ServeSettings, sock: socket.socket, pool: WorkerPool) -> None:
    """Serve on ``sock`` with the started ``pool`` until SIGINT/SIGTERM; then stop accepting, let requests in
    flight finish (``graceful_timeout``), and stop the workers."""
    server = uvicorn.Server(uvicorn_config(create_app(settings, pool), settings, log_config=None))
    server.run(sockets=[sock])


@contextlib.contextmanager
def running(settings: ServeSettings, start_timeout: float = 300.0) -> Iterator[str]:
    """Run the service on a background thread on ``settings.host`` (a free port when ``settings.port`` is 0) and
    yield its base URL (``http://127.0.0.1:PORT``); stops it (gracefully) on exit.

    Raises:
        opencrop.serve.pool.WorkerStartError: a worker could not load its models.
        RuntimeError: the server did not start within ``start_timeout`` seconds.
    """
    sock = listen(settings.host, settings.port)
    pool = WorkerPool(settings)
    try:
        pool.start()
    except BaseException:
        sock.close()
        raise
    server = uvicorn.Server(uvicorn_config(create_app(settings, pool), settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="opencrop-serve", daemon=True)
    thread.start()
    end = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > end:
            server.should_exit = True
            pool.close()
            sock.close()
            raise RuntimeError("the service did not start (see the log above)")
        time.sleep(0.01)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    finally:
        server.should_exit = True
        thread.join(settings.graceful_timeout + 10)
        pool.close()  # (already closed by the lifespan unless the thread hung)
        sock.close()
        logging.getLogger("opencrop.serve").debug("service on port %s stopped", port)
