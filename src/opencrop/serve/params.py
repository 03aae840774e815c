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

from collections.abc import Iterable
from dataclasses import dataclass

from opencrop.api import parse_numbers, plan

__all__ = ["FORMATS", "PARAMETERS", "CropJob", "RequestError", "parse_params"]

#: ``format=`` value of an image answer → file suffix (the encoder is :func:`opencrop.io.encode_image`)
FORMATS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
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
        return tuple(parse_numbers(text, n, name))
    except ValueError as e:
        raise RequestError(400, str(e)) from None


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
    notes: list[str] = []
    if not ratios and "size" not in one:
        ratios = ["1:1"]
        notes.append("no ratio given: cropped to 1:1")
    try:
        p = plan(ratios, one.get("size"))  # the API's one check of ratios and size
    except ValueError as e:
        raise RequestError(400, str(e)) from None
    if p.size is not None and p.size[0] * p.size[1] > max_output_pixels:
        raise RequestError(400, f"size {one['size']!r}: {p.size[0] * p.size[1]:,} pixels is over this server's "
                                f"limit of {max_output_pixels:,}")
    ratios, size = list(p.labels), p.size

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
