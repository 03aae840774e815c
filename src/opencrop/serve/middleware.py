"""Pure ASGI middleware: the request body limit and deadline, and the access log."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

__all__ = ["AccessLog", "BodyLimit", "BodyTimeout", "BodyTooLarge"]

Scope = dict[str, Any]
Message = dict[str, Any]

access_log = logging.getLogger("opencrop.serve.access")

#: a declared body over the limit, but at most this large, is read and dropped before the 413 goes out (so
#: the client, still sending, reads the answer instead of a reset connection); larger ones are not read at all
DRAIN_MAX = 64 << 20
DRAIN_SECONDS = 2.0


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class BodyTimeout(Exception):
    """The client did not send the whole body within the deadline."""


async def send_json(send: Any, status: int, obj: dict[str, Any], close: bool = False,
                    headers: dict[str, str] | None = None) -> None:
    """Send a complete JSON response through the raw ASGI ``send``."""
    body = json.dumps(obj).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if close:
        hdrs.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return None


async def _receive_by(receive: Any, deadline: float) -> Message:
    """``await receive()``, raising ``asyncio.TimeoutError`` at loop time ``deadline`` (no task per chunk on 3.11+)."""
    if hasattr(asyncio, "timeout_at"):
        async with asyncio.timeout_at(deadline):
            return await receive()
    return await asyncio.wait_for(receive(), max(deadline - asyncio.get_running_loop().time(), 0.001))


class BodyLimit:
    """Refuse request bodies over ``max_body`` bytes with 413 and bodies not fully sent within ``body_timeout``
    seconds with 408, as JSON ``{"error": ...}``.

    A declared ``Content-Length`` over the limit is answered before the body is read (after dropping up to
    :data:`DRAIN_MAX` bytes of it for at most :data:`DRAIN_SECONDS`, so that an honest client reads the answer);
    a chunked body is counted as it arrives, and the application sees :class:`BodyTooLarge` or
    :class:`BodyTimeout` raised from ``receive`` (the app turns them into the same answers).
    """

    def __init__(self, app: Any, max_body: int, body_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_body:
            n = int(declared)
            expect = (_header(scope, b"expect") or "").lower() == "100-continue"
            drained = not expect and n <= DRAIN_MAX and await self._drain(receive, n)
            await send_json(send, 413, {"error": f"request body of {n:,} bytes is over this server's limit of "
                                                 f"{self.max_body:,} bytes"}, close=not drained)
            return
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        received = 0
        done = False

        async def limited() -> Message:
            nonlocal received, done
            if done:
                return await receive()
            try:
                msg = await _receive_by(receive, deadline)
            except asyncio.TimeoutError:  # (TimeoutError itself from 3.11 on)
                raise BodyTimeout(f"the request body was not received within {self.body_timeout:g} s") from None
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(f"request body is over this server's limit of {self.max_body:,} bytes")
                done = not msg.get("more_body", False)
            return msg

        await self.app(scope, limited, send)

    @staticmethod
    async def _drain(receive: Any, n: int) -> bool:
        """Read and drop the body (``n`` bytes declared) for at most :data:`DRAIN_SECONDS`; True if it all came."""
        end = asyncio.get_running_loop().time() + DRAIN_SECONDS
        got = 0
        while True:
            try:
                msg = await _receive_by(receive, end)
            except asyncio.TimeoutError:  # (TimeoutError itself from 3.11 on)
                return False
            if msg["type"] != "http.request":
                return False
            got += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                return got >= n


class AccessLog:
    """One INFO line per request on ``opencrop.serve.access``:
    ``client "METHOD /path?query HTTP/1.1" status bytes duration_ms``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0
        size = 0

        async def counting(msg: Message) -> None:
            nonlocal status, size
            if msg["type"] == "http.response.start":
                status = msg["status"]
            elif msg["type"] == "http.response.body":
                size += len(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, receive, counting)
        finally:
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            target = scope.get("path", "")
            if scope.get("query_string"):
                q = scope["query_string"].decode("latin-1")
                target += "?" + (q if len(q) <= 200 else q[:200] + "…")
            access_log.info('%s "%s %s HTTP/%s" %d %d %.1fms', who, scope.get("method", "-"), target,
                            scope.get("http_version", "1.1"), status or 500, size, 1000 * (time.perf_counter() - t0))
