"""The service's OpenAPI 3.1 description (``/openapi.json``) and an offline HTML rendering of it (``/docs``)."""

from __future__ import annotations

import html
from typing import Any

from opencrop.serve.settings import ServeSettings

__all__ = ["docs_html", "openapi"]

_ERROR = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _err(text: str, retry: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {**_ERROR, "description": text}
    if retry:
        d["headers"] = {"Retry-After": {"description": "seconds to wait before retrying",
                                        "schema": {"type": "integer"}}}
    return d


def _crop_parameters(settings: ServeSettings) -> list[dict[str, Any]]:
    p = [
        ("ratio", True, {"type": "array", "items": {"type": "string"}},
         "Aspect ratio W:H (`16:9`), W/H, WxH or a number (`1.78`); repeat it (or separate by commas) for several "
         "crops from one analysis. Default `1:1`, or the aspect of `size`.", "16:9"),
        ("size", False, {"type": "string", "pattern": r"^\d+x\d+$"},
         f"Output size WxH in pixels; each crop is resized to exactly that (at most "
         f"{settings.max_output_pixels:,} pixels).", "1280x720"),
        ("model", False, {"type": "string", "enum": list(settings.models), "default": settings.models[0]},
         "Crop model.", None),
        ("subject", True, {"type": "array", "items": {"type": "string"}},
         "Box x1,y1,x2,y2 (pixels of the upright original) that must stay whole; repeatable.", "120,40,380,400"),
        ("focus", False, {"type": "string"}, "Point x,y (pixels of the upright original) to keep central.",
         "250,180"),
        ("format", False, {"type": "string", "enum": ["json", "jpeg", "jpg", "png", "webp"], "default": "json"},
         "`json`: boxes and scores. `jpeg`/`png`/`webp`: the cropped image itself (one ratio).", None),
        ("quality", False, {"type": "integer", "minimum": 1, "maximum": 100, "default": 90},
         "JPEG/WebP quality.", None),
    ]
    out = []
    for name, many, schema, text, example in p:
        d: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
        if many:
            d["explode"] = True
        if example:
            d["example"] = [example] if many else example
        out.append(d)
    return out


def openapi(settings: ServeSettings, version: str) -> dict[str, Any]:
    """OpenAPI 3.1 document of the service as configured by ``settings``."""
    image_types = {t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png",
                                                                                  "image/webp")}
    crop_headers = {
        "X-Crop-Box": {"description": "x1,y1,x2,y2 of the crop, pixels of the upright original",
                       "schema": {"type": "string"}},
        "X-Crop-Score": {"description": "model score of the crop", "schema": {"type": "number"}},
        "X-Image-Size": {"description": "WxH of the upright original", "schema": {"type": "string"}},
        "X-Crop-Notes": {"description": "JSON list of notes", "schema": {"type": "string"}},
        "X-Crop-Degraded": {"description": "comma-separated cues that could not run (only when served with --degrade)",
                            "schema": {"type": "string"}},
    }
    health = {"200": {"description": "status", "content": {"application/json": {"schema": {"type": "object"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "opencrop", "version": version,
                 "description": "Best crop of a photo for any aspect ratio. Boxes are xyxy pixels of the upright "
                                "original image (EXIF orientation applied)."},
        "paths": {
            "/crop": {"post": {
                "summary": "Crop an image",
                "description": "Send the image as the raw request body, or as the file part of a "
                               "multipart/form-data upload (other form fields are read as parameters too).",
                "parameters": _crop_parameters(settings),
                "requestBody": {"required": True, "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "image": {"type": "string", "format": "binary"}}}},
                }},
                "responses": {
                    "200": {"description": "JSON boxes (format=json) or the cropped image", "headers": crop_headers,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}},
                                        **image_types}},
                    "400": _err("bad parameter (unknown name, bad ratio, size, box, model or format)"),
                    "408": _err(f"body not received within {settings.body_timeout:g} s"),
                    "413": _err(f"body over {settings.max_body:,} bytes, or an image over the pixel limit"),
                    "422": _err("the body is not a readable image (corrupt, truncated, unsupported)"),
                    "500": _err("internal error (details in the server log)"),
                    "503": _err("every worker busy and the queue full", retry=True),
                    "504": _err(f"the crop took longer than {settings.timeout:g} s"),
                }}},
            "/healthz": {"get": {"summary": "Liveness: the server answers (pool counts included)",
                                 "responses": health}},
            "/readyz": {"get": {"summary": "Readiness: at least one worker has its models loaded",
                                "responses": {**health, "503": _err("no worker ready (starting or restarting)")}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": health}},
            "/docs": {"get": {"summary": "This document as a web page",
                              "responses": {"200": {"description": "HTML"}}}},
            "/": {"get": {"summary": "Web page: upload a photo, preview and download its crops",
                          "responses": {"200": {"description": "HTML"}}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Crop": {"type": "object", "required": ["ratio", "box", "score"], "properties": {
                "ratio": {"type": "string"},
                "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                        "description": "x1, y1, x2, y2 in pixels of the upright original"},
                "score": {"type": "number"}}},
            "Result": {"type": "object", "required": ["width", "height", "model", "crops", "notes"], "properties": {
                "schema": {"type": "string", "description": "record schema id (`opencrop schema`), e.g. "
                           "opencrop.result/1"},
                "width": {"type": "integer"}, "height": {"type": "integer"}, "model": {"type": "string"},
                "crops": {"type": "array", "items": {"$ref": "#/components/schemas/Crop"}},
                "degraded": {"type": "array", "items": {"type": "string"},
                             "description": "cues that could not run (only when served with --degrade)"},
                "notes": {"type": "array", "items": {"type": "string"}}}},
        }},
    }


def docs_html(spec: dict[str, Any]) -> str:
    """A self-contained HTML page listing every path, parameter and response of ``spec`` (no scripts, no CDN)."""
    e = html.escape
    parts = [f"<!doctype html><meta charset=utf-8><title>{e(spec['info']['title'])} API</title>"
             "<link rel=stylesheet href=/static/app.css><body class=docs><main>"
             f"<h1>{e(spec['info']['title'])} API <small>{e(spec['info']['version'])}</small></h1>"
             f"<p>{e(spec['info']['description'])} Machine-readable: <a href=/openapi.json>/openapi.json</a>. "
             "Try it: <a href=/>the web page</a>.</p>"
             "<pre>curl --data-binary @photo.jpg 'http://HOST:PORT/crop?ratio=16:9&amp;ratio=1:1'\n"
             "curl --data-binary @photo.jpg -o crop.jpg 'http://HOST:PORT/crop?ratio=16:9&amp;format=jpeg'\n"
             "curl -F image=@photo.jpg 'http://HOST:PORT/crop?ratio=4:5&amp;size=1080x1350'</pre>"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            parts.append(f"<section><h2><code>{e(method.upper())} {e(path)}</code></h2><p>{e(op['summary'])}"
                         f"{'. ' + e(op['description']) if op.get('description') else ''}</p>")
            if op.get("parameters"):
                parts.append("<table><tr><th>parameter<th>type<th>meaning")
                for p in op["parameters"]:
                    s = p["schema"]
                    typ = s.get("type", "")
                    if "enum" in s:
                        typ += " (" + " | ".join(map(str, s["enum"])) + ")"
                    if p.get("explode"):
                        typ += ", repeatable"
                    parts.append(f"<tr><td><code>{e(p['name'])}</code><td>{e(typ)}<td>{e(p['description'])}")
                parts.append("</table>")
            parts.append("<table><tr><th>status<th>meaning")
            for code, r in op["responses"].items():
                parts.append(f"<tr><td>{e(code)}<td>{e(r['description'])}")
            parts.append("</table></section>")
    parts.append("</main></body>")
    return "".join(parts)
