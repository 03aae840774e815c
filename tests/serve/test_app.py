"""The service end to end: a real uvicorn on 127.0.0.1 with two worker processes (default cues)."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from PIL import Image
from serve_helpers import httpx, huge_png_header

LIMIT = 2_000_000  # conftest.MAIN_LIMIT


@pytest.fixture
def url(main_url: str) -> str:
    return main_url


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def _raw(url: str, request: bytes, read_timeout: float = 10) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers until it closes (or goes quiet)."""
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=read_timeout) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"connection: close" not in out.lower():
                    break
        except TimeoutError:
            pass
    return out


def test_json_from_raw_body(client: httpx.Client, small_jpeg: bytes) -> None:
    r = client.post("/crop?ratio=16:9&ratio=1:1", content=small_jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    js = r.json()
    assert (js["width"], js["height"], js["model"]) == (480, 300, "composition")
    assert [c["ratio"] for c in js["crops"]] == ["16:9", "1:1"]
    x1, y1, x2, y2 = js["crops"][1]["box"]
    assert x2 - x1 == y2 - y1 == 300 and x1 <= 300 and x2 >= 420  # the square keeps the red block
    x1, y1, x2, y2 = js["crops"][0]["box"]
    assert abs((x2 - x1) / (y2 - y1) - 16 / 9) < 0.01
    assert isinstance(js["notes"], list)


def test_multipart_upload_reads_form_fields_too(client: httpx.Client, small_jpeg: bytes) -> None:
    r = client.post("/crop?ratio=16:9", files={"image": ("p.jpg", small_jpeg, "image/jpeg")},
                    data={"ratio": "4:5", "focus": "360,150"})
    assert r.status_code == 200, r.text
    assert [c["ratio"] for c in r.json()["crops"]] == ["16:9", "4:5"]
    raw = client.post("/crop?ratio=16:9&ratio=4:5&focus=360,150", content=small_jpeg).json()
    assert [c["box"] for c in r.json()["crops"]] == [c["box"] for c in raw["crops"]]


def test_multipart_without_a_file_is_400(client: httpx.Client) -> None:
    r = client.post("/crop", data={"ratio": "1:1"}, files={"other": (None, b"text")})
    assert r.status_code == 400
    assert "no file part" in r.json()["error"]


@pytest.mark.parametrize(("fmt", "ctype", "pil"), [("jpeg", "image/jpeg", "JPEG"), ("png", "image/png", "PNG"),
                                                   ("webp", "image/webp", "WEBP")])
def test_image_response(client: httpx.Client, photo: bytes, fmt: str, ctype: str, pil: str) -> None:
    box = client.post("/crop?ratio=16:9", content=photo).json()["crops"][0]["box"]
    r = client.post(f"/crop?ratio=16:9&format={fmt}", content=photo)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ctype
    assert [int(v) for v in r.headers["x-crop-box"].split(",")] == box
    assert r.headers["x-image-size"] == "512x512"
    assert r.headers["content-disposition"] == f'inline; filename="crop_16x9.{"jpg" if fmt == "jpeg" else fmt}"'
    im = Image.open(io.BytesIO(r.content))
    assert im.format == pil and im.size == (box[2] - box[0], box[3] - box[1])


def test_image_response_exact_size_and_path_alias(client: httpx.Client, small_jpeg: bytes) -> None:
    r = client.post("/crop.jpg?size=160x90", content=small_jpeg)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (160, 90)
    assert client.post("/crop.gif?ratio=1:1", content=small_jpeg).status_code == 404


@pytest.mark.parametrize(("path", "body", "code", "needle"), [
    ("/crop?ratio=1:1", b"not an image", 422, "cannot read the image"),
    ("/crop?ratio=1:1", "truncated", 422, "cannot read the image"),
    ("/crop?ratio=1:1", "bomb", 413, "image too large"),
    ("/crop?ratio=x:y", None, 400, "bad aspect ratio 'x:y'"),
    ("/crop?ratios=16:9", None, 400, "unknown parameter 'ratios'"),
    ("/crop?ratio=16:9&size=100x100", None, 400, "aspect"),
    ("/crop?ratio=1:1&format=jpeg&ratio=2:1", None, 400, "one crop"),
    ("/crop", b"", 400, "empty image"),
    ("/crop", b"x" * (LIMIT + 1), 413, "over this server's limit of 2,000,000 bytes"),
    ("/nope", b"x", 404, "no such endpoint /nope"),
])
def test_errors_are_json_naming_the_problem(client: httpx.Client, photo: bytes, path: str, body: object, code: int,
                                            needle: str) -> None:
    data = {None: photo, "truncated": photo[: len(photo) // 3], "bomb": huge_png_header()}.get(body, body)  # type: ignore
    r = client.post(path, content=data)
    assert r.status_code == code, r.text
    assert r.headers["content-type"] == "application/json"
    assert needle in r.json()["error"]


def test_chunked_upload_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"\0" * (LIMIT // 2 + 1)

    r = client.post("/crop", content=chunks())
    assert r.status_code == 413
    assert "over this server's limit" in r.json()["error"]


def test_chunked_upload_within_the_limit_works(client: httpx.Client, small_jpeg: bytes) -> None:
    r = client.post("/crop?ratio=1:1", content=iter([small_jpeg[:1000], small_jpeg[1000:]]))
    assert r.status_code == 200 and r.json()["width"] == 480


def test_method_not_allowed_is_json(client: httpx.Client) -> None:
    r = client.get("/crop")
    assert r.status_code == 405 and "GET is not allowed on /crop" in r.json()["error"]


def test_garbage_content_length_is_400_and_the_server_lives_on(url: str, client: httpx.Client) -> None:
    out = _raw(url, b"POST /crop HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nxx")
    assert out.startswith(b"HTTP/1.1 400 ")
    assert b"Traceback" not in out
    assert _raw(url, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert client.get("/healthz").status_code == 200


def test_huge_content_length_is_refused_before_reading(url: str) -> None:
    t0 = time.monotonic()
    out = _raw(url, b"POST /crop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\ngarbage")
    assert time.monotonic() - t0 < 5
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head.lower()
    assert "1,000,000,000,000 bytes" in json.loads(body)["error"]


def test_health_ready_openapi_docs_and_page(client: httpx.Client) -> None:
    h = client.get("/healthz").json()
    assert h["ok"] is True and h["models"] == ["composition"] and h["pool"]["workers"] == 2
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["pool"]["alive"] == 2
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "post" in spec["paths"]["/crop"]
    assert "<code>POST /crop</code>" in client.get("/docs").text
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html") and 'src="/static/app.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "function crop(" in client.get("/static/app.js").text
    assert client.get("/static/nope.js").status_code == 404


def test_six_concurrent_requests_agree_with_a_direct_call(url: str, photo: bytes) -> None:
    """Six simultaneous requests over two worker processes give the boxes a direct Cropper.crop call gives."""
    from opencrop import Cropper

    expect = [[*c.box] for c in Cropper().crop(photo, ratios=["16:9", "4:5"])]
    results: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            results.append(c.post(f"{url}/crop?ratio=16:9&ratio=4:5", content=photo))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(results) == 6
    for r in results:
        assert r.status_code == 200, r.text
        assert [c["box"] for c in r.json()["crops"]] == expect


def test_access_log_has_one_line_per_request(client: httpx.Client, small_jpeg: bytes,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="opencrop.serve.access"):
        client.post("/crop?ratio=3:2", content=small_jpeg)
        client.post("/crop?ratio=bad", content=small_jpeg)
        time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "opencrop.serve.access"]
    assert any('"POST /crop?ratio=3:2 HTTP/1.1" 200 ' in m for m in lines), lines
    assert any('"POST /crop?ratio=bad HTTP/1.1" 400 ' in m for m in lines), lines


def test_a_slow_upload_does_not_hold_up_others(url: str, client: httpx.Client, small_jpeg: bytes) -> None:
    """One client trickles its upload over ~2 s; three ordinary requests finish while it is still sending."""
    u = urlparse(url)
    done = threading.Event()
    slow_answer: list[bytes] = []

    def trickle() -> None:
        with socket.create_connection((u.hostname, u.port), timeout=30) as s:
            s.sendall(b"POST /crop?ratio=1:1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(small_jpeg))
            step = len(small_jpeg) // 40 + 1
            for i in range(0, len(small_jpeg), step):
                s.sendall(small_jpeg[i:i + step])
                time.sleep(0.05)
            done.set()
            slow_answer.append(s.recv(65536))

    t = threading.Thread(target=trickle)
    t.start()
    time.sleep(0.1)
    for _ in range(3):
        assert client.post("/crop?ratio=16:9", content=small_jpeg).status_code == 200
        assert not done.is_set(), "an ordinary request waited for the slow upload"
    t.join(30)
    assert slow_answer and slow_answer[0].startswith(b"HTTP/1.1 200 ")


def test_a_ratio_whole_pixels_cannot_make_is_answered_with_a_warning(client: httpx.Client,
                                                                    small_jpeg: bytes) -> None:
    r = client.post("/crop?ratio=1000:1", content=small_jpeg)
    assert r.status_code == 200, r.text
    crop = r.json()["crops"][0]
    assert crop["box"][3] - crop["box"][1] == 1 and "cannot be met in whole pixels" in crop["warning"]


def test_answers_validate_against_the_result_schema(client: httpx.Client, small_jpeg: bytes) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (dev extra) validates the records")
    from opencrop.schema import SCHEMA

    r = client.post("/crop", params={"ratio": ["16:9", "1:1"]}, content=small_jpeg)
    assert r.status_code == 200
    jsonschema.Draft202012Validator(SCHEMA).validate(r.json())
