"""Request parameters of ``POST /crop`` → a :class:`CropJob` (checked here, before the job takes a worker).

Parameters (query string or multipart form fields; repeatable ones may repeat or hold comma-separated values):

* ``ratio`` (repeatable): ``W:H`` (``16:9``), ``W/H``, ``WxH`` or a number (``1.78``); default ``1:1`` (or the
  aspect of ``size``).
* ``size``: ``WxH`` output pixels; with it each crop is resized to exactly that size.
* ``model``: one of the served models (default: the first).
* ``subject`` (repeatable): ``x1,y1,x2,y2`` box in pixels of the upright original that must stay whole.
* ``focus``: ``x,y`` point in pixels of the upright original to keep central.
* ``format``: ``json`` (default), ``jpeg`` (``jpg``), ``png`` or ``webp``: the cropped image itself (one ratio).
* ``quality``: JPEG/WebP quality 1-100 (default 90).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from opencrop.candidates import parse_ratio

__all__ = ["FORMATS", "PARAMETERS", "CropJob", "RequestError", "parse_params"]

#: ``format=`` value → (Pillow format, media type, file suffix)
FORMATS = {
    "jpeg": ("JPEG", "image/jpeg", ".jpg"),
    "png": ("PNG", "image/png", ".png"),
    "webp": ("WEBP", "image/webp", ".webp"),
}
_FORMAT_ALIASES = {"jpg": "jpeg", "json": "json", **{k: k for k in FORMATS}}
PARAMETERS = ("ratio", "size", "model", "subject", "focus", "format", "quality")
_SINGLE = ("size", "model", "focus", "format", "quality")


class RequestError(Exception):
    """A bad request: ``status`` (400, 413, 422, ...) and a message naming the parameter and the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CropJob:
    """One crop request, ready for a worker (picklable).

    ``subject`` boxes are xyxy and ``focus`` is ``(x, y)``, both in pixels of the upright original;
    ``size`` is ``(width, height)`` output pixels; ``format`` is ``"json"`` or a key of :data:`FORMATS`.
    """

    model: str
    ratios: tuple[str, ...]
    size: tuple[int, int] | None = None
    subject: tuple[tuple[float, float, float, float], ...] | None = None
    focus: tuple[float, float] | None = None
    format: str = "json"
    quality: int = 90
    notes: tuple[str, ...] = ()
    data: bytes = b""


def _numbers(text: str, n: int, name: str) -> tuple[float, ...]:
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        v = ()
    if len(v) != n or not all(math.isfinite(x) for x in v):
        raise RequestError(400, f"bad {name} {text!r}: expected {n} comma-separated numbers")
    return v


def _size(text: str, max_pixels: int) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RequestError(400, f"bad size {text!r}: use WIDTHxHEIGHT such as 1280x720") from None
    if w <= 0 or h <= 0:
        raise RequestError(400, f"bad size {text!r}: both sides must be positive")
    if w * h > max_pixels:
        raise RequestError(400, f"size {text!r}: {w * h:,} pixels is over this server's limit of {max_pixels:,}")
    return w, h


def parse_params(items: Iterable[tuple[str, str]], models: tuple[str, ...], max_output_pixels: int,
                 max_ratios: int = 16, format: str | None = None) -> CropJob:
    """The :class:`CropJob` (without image data) that ``items`` (``(name, value)`` pairs) ask for.

    ``format`` overrides a ``format=`` parameter (the ``/crop.jpg`` style paths). Raises :class:`RequestError`
    (400) naming the parameter: unknown or repeated parameter, bad ratio, size, box, point, model or format.
    """
    values: dict[str, list[str]] = {}
    for k, v in items:
        if k not in PARAMETERS:
            raise RequestError(400, f"unknown parameter {k!r}; known: {', '.join(PARAMETERS)}")
        values.setdefault(k, []).append(v)
    for k in _SINGLE:
        if len(values.get(k, [])) > 1:
            raise RequestError(400, f"parameter {k!r} given {len(values[k])} times; give it once")
    one = {k: values[k][0] for k in _SINGLE if k in values}

    ratios = [r.strip() for v in values.get("ratio", []) for r in v.split(",") if r.strip()]
    if len(ratios) > max_ratios:
        raise RequestError(400, f"{len(ratios)} ratios asked for; at most {max_ratios} per request")
    for r in ratios:
        try:
            parse_ratio(r)
        except ValueError as e:
            raise RequestError(400, str(e)) from None
    size = _size(one["size"], max_output_pixels) if "size" in one else None
    notes: list[str] = []
    if not ratios:
        ratios = [f"{size[0]}:{size[1]}"] if size else ["1:1"]
        if not size:
            notes.append("no ratio given: cropped to 1:1")

    model = one.get("model", models[0])
    if model not in models:
        raise RequestError(400, f"model {model!r} is not served here; served: {', '.join(models)}")
    fmt = format or one.get("format", "json").lower()
    if fmt not in _FORMAT_ALIASES:
        raise RequestError(400, f"bad format {fmt!r}; use json, jpeg, png or webp")
    fmt = _FORMAT_ALIASES[fmt]
    if fmt != "json" and len(ratios) > 1:
        raise RequestError(400, f"an image response holds one crop, but {len(ratios)} ratios were asked for; "
                                "give one ratio (or format=json)")
    quality = 90
    if "quality" in one:
        try:
            quality = int(one["quality"])
        except ValueError:
            quality = 0
        if not 1 <= quality <= 100:
            raise RequestError(400, f"bad quality {one['quality']!r}: use a whole number from 1 to 100")
    subject = tuple(_numbers(s, 4, "subject") for s in values.get("subject", [])) or None
    for b in subject or ():
        if b[2] <= b[0] or b[3] <= b[1]:
            raise RequestError(400, f"bad subject {','.join(f'{x:g}' for x in b)}: need x1 < x2 and y1 < y2")
    focus = _numbers(one["focus"], 2, "focus") if "focus" in one else None
    return CropJob(model, tuple(ratios), size, subject, focus, fmt, quality, tuple(notes))  # type: ignore[arg-type]
