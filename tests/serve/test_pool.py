"""Saturation, timeouts, worker replacement, the body deadline and CORS: one worker, no queue, 1 s timeouts."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from serve_helpers import httpx, service

ORIGIN = "http://example.org"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    # the slow job is an upscale to 6000x6000, which the workers refuse unless asked (opencrop.limits)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENCROP_ALLOW_UPSCALE", "1")
        with service(workers=1, queue=0, cues=False, timeout=1.0, body_timeout=1.0, cors_origins=(ORIGIN,)) as u:
            yield u


@pytest.fixture(scope="module")
def noise_png() -> bytes:
    """480 × 300 noise: cropping it to ``size=6000x6000&format=png`` takes many seconds (a slow job)."""
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((300, 480, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _wait(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_saturated_then_timed_out_then_replaced(url: str, noise_png: bytes, small_jpeg: bytes) -> None:
    """A slow job holds the only worker: the next request gets 503 + Retry-After at once; the slow job is stopped
    at the 1 s timeout (504), the pool is not ready while its worker is replaced, then serves again."""
    c = httpx.Client(base_url=url, timeout=60)
    slow: list[httpx.Response] = []
    t = threading.Thread(target=lambda: slow.append(
        httpx.post(f"{url}/crop?ratio=1:1&size=6000x6000&format=png", content=noise_png, timeout=60)))
    t.start()
    assert _wait(lambda: c.get("/healthz").json()["pool"]["busy"] == 1, 10), "the slow job never started"
    t0 = time.monotonic()
    r = c.post("/crop?ratio=1:1", content=small_jpeg)
    assert time.monotonic() - t0 < 0.5  # refused at once, not queued
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert "server busy" in r.json()["error"]
    t.join(30)
    assert slow[0].status_code == 504 and "longer than 1 s" in slow[0].json()["error"]
    ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert ready.json()["pool"]["alive"] == 0 and ready.json()["pool"]["starting"] == 1
    assert _wait(lambda: c.get("/readyz").status_code == 200, 60), "the worker was not replaced"
    r = c.post("/crop?ratio=1:1", content=small_jpeg)
    assert r.status_code == 200 and r.json()["width"] == 480
    pool = c.get("/healthz").json()["pool"]
    assert (pool["timeouts"], pool["restarts"]) == (1, 1) and pool["rejected"] >= 1
    c.close()


def test_a_body_not_sent_within_the_deadline_is_408(url: str) -> None:
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(b"POST /crop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\xff" * 10)
        time.sleep(1.5)
        out = s.recv(65536)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert "not received within 1 s" in json.loads(body)["error"]


def test_cors_only_for_the_configured_origin(url: str, small_jpeg: bytes) -> None:
    pre = httpx.options(f"{url}/crop", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ORIGIN
    r = httpx.post(f"{url}/crop.jpg?ratio=1:1", content=small_jpeg, headers={"Origin": ORIGIN}, timeout=30)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    assert "x-crop-box" in r.headers["access-control-expose-headers"].lower()
    other = httpx.post(f"{url}/crop?ratio=1:1", content=small_jpeg, headers={"Origin": "http://evil.test"},
                       timeout=30)
    assert "access-control-allow-origin" not in other.headers
