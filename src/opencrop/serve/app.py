"""HTTP service: ``opencrop serve`` (standard library only; one shared :class:`~opencrop.api.Cropper`).

Endpoints:

* ``POST /crop?ratio=16:9&ratio=1:1[&size=WxH][&focus=x,y][&subject=x1,y1,x2,y2]`` with the image as the request
  body → JSON ``{"width", "height", "crops": [{"ratio", "box": [x1, y1, x2, y2], "score"}]}`` (xyxy pixels of
  the upright original).
* ``POST /crop.jpg?ratio=16:9&size=1280x720`` (or ``.png`` / ``.webp``) → the cropped image itself.
* ``GET /`` → a small web page to try it; ``GET /healthz`` → ``{"ok": true, "model": ...}``.

Errors are JSON ``{"error": "..."}`` with 400 (bad request or undecodable image), 413 (body too large) or
500. The body limit defaults to 50 MB.
"""

from __future__ import annotations

import io
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["make_server"]

_PAGE = """<!doctype html><meta charset=utf-8><title>opencrop</title>
<style>body{font:15px system-ui;margin:2em;max-width:60em}canvas{max-width:100%;border:1px solid #ccc}
label{margin-right:1em}</style>
<h1>opencrop</h1>
<p><input type=file id=f accept="image/*"> <label>ratios <input id=r value="16:9,1:1,9:16"></label>
<button id=go>Crop</button></p><pre id=out></pre><canvas id=c></canvas>
<script>
const colours=['#00e640','#ff4040','#40a0ff','#ffc800','#c040ff'];
document.getElementById('go').onclick=async()=>{
  const file=document.getElementById('f').files[0]; if(!file) return;
  const q=document.getElementById('r').value.split(',').map(r=>'ratio='+encodeURIComponent(r.trim())).join('&');
  const res=await fetch('/crop?'+q,{method:'POST',body:file}); const js=await res.json();
  document.getElementById('out').textContent=JSON.stringify(js,null,1);
  if(!res.ok) return;
  const img=new Image(); img.onload=()=>{const c=document.getElementById('c');c.width=img.width;c.height=img.height;
    const g=c.getContext('2d'); g.drawImage(img,0,0); g.lineWidth=Math.max(2,img.width/300);
    js.crops.forEach((k,i)=>{g.strokeStyle=colours[i%5];const [x1,y1,x2,y2]=k.box;g.strokeRect(x1,y1,x2-x1,y2-y1);
      g.fillStyle=colours[i%5];g.font=(img.width/40)+'px sans-serif';g.fillText(k.ratio,x1+8,y1+img.width/30);});};
  img.src=URL.createObjectURL(file);
};
</script>"""


def make_server(host: str = "127.0.0.1", port: int = 8000, model: str = "composition", weights: str | None = None,
                max_body: int = 50_000_000, cues: bool = True) -> ThreadingHTTPServer:
    """A ready (not yet serving) HTTP server; call ``serve_forever()``. ``port=0`` picks a free port."""
    from opencrop.api import Cropper, parse_numbers

    cropper = Cropper(model, weights=weights, cues=cues)
    lock = threading.Lock()  # detectors' lazy loading and torch models are not re-entrant everywhere

    class Handler(BaseHTTPRequestHandler):
        server_version = "opencrop"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == "/":
                self._send(200, _PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/healthz":
                self._json(200, {"ok": True, "model": model})
            else:
                self._json(404, {"error": f"no such endpoint {path}"})

        def do_POST(self) -> None:
            from opencrop.errors import ImageTooLargeError, OpenCropError

            url = urlparse(self.path)
            if url.path not in ("/crop", "/crop.jpg", "/crop.png", "/crop.webp"):
                self._json(404, {"error": f"no such endpoint {url.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0:
                self._json(400, {"error": "send the image as the request body"})
                return
            if length > max_body:
                # drain (bounded) so the client reads the answer instead of a reset connection
                left = min(length, 4 * max_body)
                while left > 0 and (chunk := self.rfile.read(min(left, 1 << 20))):
                    left -= len(chunk)
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {max_body} bytes"})
                return
            data = self.rfile.read(length)
            q = parse_qs(url.query)
            try:
                ratios = q.get("ratio", [])
                size = q.get("size", [None])[0]
                focus = tuple(parse_numbers(q["focus"][0], 2, "focus")) if "focus" in q else None
                subject = [parse_numbers(s, 4, "subject") for s in q.get("subject", [])] or None
                if not ratios and size is None:
                    ratios = ["1:1"]
                image_out = url.path != "/crop"
                if image_out and len(ratios) > 1:
                    raise ValueError("an image response holds one crop: give one ratio")
                with lock:
                    an = cropper.analyze(data, subject=subject, focus=focus)
                    crops = cropper.crop(an, ratios=ratios, size=size)
            except ImageTooLargeError as e:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": e.problem})
                return
            except OpenCropError as e:
                self._json(400, {"error": e.problem})
                return
            except ValueError as e:
                self._json(400, {"error": str(e)})
                return
            if not image_out:
                self._json(200, {"width": an.image.width, "height": an.image.height,
                                 "crops": [c.to_dict() for c in crops]})
                return
            from opencrop.io import crop_image

            c = crops[0]
            pic = c.image if c.image is not None else crop_image(an.image, c.box)
            fmt = url.path.rsplit(".", 1)[1]
            if fmt == "jpg" and pic.mode == "RGBA":
                pic = pic.convert("RGB")
            buf = io.BytesIO()
            pic.save(buf, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt], quality=90)
            self.send_response(200)
            self.send_header("X-Crop-Box", ",".join(str(v) for v in c.box))
            body = buf.getvalue()
            self.send_header("Content-Type", f"image/{'jpeg' if fmt == 'jpg' else fmt}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer((host, port), Handler)
