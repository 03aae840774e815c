"""The HTTP service on loopback: JSON boxes, image responses, clear errors."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from opencrop.serve.app import make_server


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    srv = make_server("127.0.0.1", 0, cues=False, max_body=2_000_000)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _jpeg() -> bytes:
    a = np.full((300, 480, 3), 100, np.uint8)
    a[60:240, 300:420] = (210, 40, 40)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG")
    return buf.getvalue()


def _post(url: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_json_boxes(base: str) -> None:
    status, body, _ = _post(f"{base}/crop?ratio=16:9&ratio=1:1", _jpeg())
    assert status == 200
    js = json.loads(body)
    assert (js["width"], js["height"]) == (480, 300)
    assert [c["ratio"] for c in js["crops"]] == ["16:9", "1:1"]
    x1, y1, x2, y2 = js["crops"][1]["box"]
    assert x2 - x1 == y2 - y1 and x1 <= 300 and x2 >= 420


def test_image_response_exact_size(base: str) -> None:
    status, body, headers = _post(f"{base}/crop.jpg?size=160x90", _jpeg())
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).size == (160, 90)
    assert len(headers["X-Crop-Box"].split(",")) == 4


@pytest.mark.parametrize(("path", "body", "code"), [
    ("/crop", b"not an image", 400),
    ("/crop?ratio=x:y", None, 400),
    ("/crop", b"", 400),
    ("/nope", b"x", 404),
    ("/crop", b"x" * 2_000_001, 413),
])
def test_errors_are_json(base: str, path: str, body: bytes | None, code: int) -> None:
    status, out, _ = _post(base + path, _jpeg() if body is None else body)
    assert status == code
    assert "error" in json.loads(out)


def test_page_and_health(base: str) -> None:
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert b"opencrop" in r.read()
    with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
        assert json.loads(r.read())["ok"] is True


def test_concurrent_requests_with_cues_agree() -> None:
    """Six simultaneous requests through the threaded server with every default cue (the SSD runs on a shared
    worker thread next to each request's face detector): all succeed with the box a direct call gives."""
    from opencrop import Cropper
    from opencrop.cues import available

    missing = {k: v for k, v in available().items() if v and k in ("faces", "people", "objects")}
    if missing:
        pytest.skip(f"cue backends unavailable: {missing} (run `opencrop models fetch`)")
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the photo")
    buf = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buf, format="JPEG", quality=92)
    photo = buf.getvalue()
    expect = [list(c.box) for c in Cropper().crop(photo, ratios=["16:9", "4:5"])]

    srv = make_server("127.0.0.1", 0, cues=True, max_body=2_000_000)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/crop?ratio=16:9&ratio=4:5"
    results: list[tuple[int, bytes, dict[str, str]]] = []
    try:
        workers = [threading.Thread(target=lambda: results.append(_post(url, photo))) for _ in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
    finally:
        srv.shutdown()
        srv.server_close()
    assert len(results) == 6
    for status, body, _ in results:
        assert status == 200, body[:200]
        assert [c["box"] for c in json.loads(body)["crops"]] == expect
