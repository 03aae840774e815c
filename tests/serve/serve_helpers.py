"""Helpers for the service tests: real uvicorn servers on 127.0.0.1 (free ports); skips without the serve extra."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

for _mod in ("starlette", "uvicorn", "python_multipart"):
    pytest.importorskip(_mod, reason="the serve extra is not installed (pip install 'opencrop[serve]')")
httpx = pytest.importorskip("httpx", reason="httpx (dev extra) drives the service tests")


@contextlib.contextmanager
def service(**kw: Any) -> Iterator[str]:
    """The service on 127.0.0.1 with ``ServeSettings(**kw)``; yields its base URL."""
    from opencrop.serve.server import running
    from opencrop.serve.settings import ServeSettings

    with running(ServeSettings(host="127.0.0.1", port=0, **kw)) as url:
        yield url


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG that declares ``width × height`` pixels but holds no pixel data (a decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
