"""Box conventions, converters, IoU and boundary displacement.

Convention inside opencrop: **xyxy float pixels of the original (EXIF-oriented) image**, ``[x1, y1, x2, y2]``
with ``x2 > x1`` and ``y2 > y1``; continuous coordinates, so a box's width is ``x2 - x1`` (no ``+1``), as in
HCIC's evaluation. Other conventions met in datasets:

* ``yxyx``   ``[y1, x1, y2, x2]`` pixels: raw GAICD ``.txt``/``.mat``, FLMS ``.mat``, S2CNet boxes.
* ``xywh``   ``[x, y, w, h]`` pixels: FCDB, SACD ``mask_box``; normalised in GenCrop files.
* ``cxcywh`` ``[cx, cy, w, h]``: set-prediction (DETR-style) model outputs, usually normalised.
* normalised xyxy ``[0, 1]``: LVRN anchors; x divided by the width, y by the height.

Every function takes an array of shape ``[..., 4]`` (NumPy or torch) and returns the same kind. This module is
the one place where these conversions and the IoU / displacement formulas live.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

try:  # torch is optional for this module
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

Array = TypeVar("Array")

__all__ = [
    "boundary_displacement",
    "box_area",
    "box_iou",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "denormalize_xyxy",
    "normalize_xyxy",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
    "xyxy_to_yxyx",
    "yxyx_to_xyxy",
]


def _is_torch(a: object) -> bool:
    return torch is not None and isinstance(a, torch.Tensor)


def _stack(cols: list, like: object):
    if _is_torch(like):
        return torch.stack(cols, dim=-1)
    return np.stack(cols, axis=-1)


def _as_float(a):
    if _is_torch(a):
        return a if a.is_floating_point() else a.float()
    a = np.asarray(a)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def yxyx_to_xyxy(b: Array) -> Array:
    """``[..., 4]`` yxyx → xyxy (same units). Also its own inverse."""
    b = _as_float(b)
    return _stack([b[..., 1], b[..., 0], b[..., 3], b[..., 2]], b)


xyxy_to_yxyx = yxyx_to_xyxy
xyxy_to_yxyx.__doc__ = "``[..., 4]`` xyxy → yxyx (same units)."


def xywh_to_xyxy(b: Array) -> Array:
    """``[..., 4]`` ``[x, y, w, h]`` → ``[x1, y1, x2, y2]`` with ``x2 = x + w`` (same units)."""
    b = _as_float(b)
    return _stack([b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]], b)


def xyxy_to_xywh(b: Array) -> Array:
    """``[..., 4]`` xyxy → ``[x, y, w, h]`` (same units)."""
    b = _as_float(b)
    return _stack([b[..., 0], b[..., 1], b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]], b)


def cxcywh_to_xyxy(b: Array) -> Array:
    """``[..., 4]`` ``[cx, cy, w, h]`` → xyxy (same units)."""
    b = _as_float(b)
    hw, hh = b[..., 2] / 2, b[..., 3] / 2
    return _stack([b[..., 0] - hw, b[..., 1] - hh, b[..., 0] + hw, b[..., 1] + hh], b)


def xyxy_to_cxcywh(b: Array) -> Array:
    """``[..., 4]`` xyxy → ``[cx, cy, w, h]`` (same units)."""
    b = _as_float(b)
    return _stack(
        [(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2, b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]],
        b,
    )


def normalize_xyxy(b: Array, width: float, height: float) -> Array:
    """xyxy pixels → xyxy normalised to ``[0, 1]`` (x by ``width``, y by ``height``)."""
    b = _as_float(b)
    return _stack([b[..., 0] / width, b[..., 1] / height, b[..., 2] / width, b[..., 3] / height], b)


def denormalize_xyxy(b: Array, width: float, height: float, truncate: bool = False) -> Array:
    """Normalised xyxy → pixels. ``truncate=True`` floors to integers, as HCIC maps LVRN anchors back."""
    b = _as_float(b)
    out = _stack([b[..., 0] * width, b[..., 1] * height, b[..., 2] * width, b[..., 3] * height], b)
    if truncate:
        out = torch.trunc(out) if _is_torch(out) else np.trunc(out)
    return out


def clip_boxes(b: Array, width: float, height: float) -> Array:
    """Clip xyxy pixel boxes to the image ``[0, width] × [0, height]``."""
    b = _as_float(b)
    if _is_torch(b):
        return _stack(
            [b[..., 0].clamp(0, width), b[..., 1].clamp(0, height), b[..., 2].clamp(0, width),
             b[..., 3].clamp(0, height)],
            b,
        )
    return _stack(
        [np.clip(b[..., 0], 0, width), np.clip(b[..., 1], 0, height), np.clip(b[..., 2], 0, width),
         np.clip(b[..., 3], 0, height)],
        b,
    )


def box_area(b: Array) -> Array:
    """Area of ``[..., 4]`` xyxy boxes (continuous: ``(x2 - x1) * (y2 - y1)``; negative extents give 0)."""
    b = _as_float(b)
    w = b[..., 2] - b[..., 0]
    h = b[..., 3] - b[..., 1]
    if _is_torch(b):
        return w.clamp(min=0) * h.clamp(min=0)
    return np.maximum(w, 0) * np.maximum(h, 0)


def box_iou(a: Array, b: Array) -> Array:
    """Pairwise IoU of xyxy boxes ``a [N, 4]`` and ``b [M, 4]`` → ``[N, M]``; 0 where the union is empty."""
    a = _as_float(a)
    b = _as_float(b)
    if _is_torch(a):
        lt = torch.maximum(a[:, None, :2], b[None, :, :2])
        rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        union = box_area(a)[:, None] + box_area(b)[None, :] - inter
        return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def boundary_displacement(a: Array, b: Array, width: float, height: float) -> Array:
    """Pairwise boundary displacement of xyxy pixel boxes ``a [N, 4]``, ``b [M, 4]`` → ``[N, M]``.

    ``Disp = (|Δx1| + |Δx2|) / width + (|Δy1| + |Δy2|) / height`` (HCIC / GenCrop). The benchmarks' BDE is the
    mean of ``Disp / 4`` over images (see :mod:`opencrop.eval.metrics`).
    """
    a = _as_float(a)
    b = _as_float(b)
    d = a[:, None, :] - b[None, :, :]
    d = d.abs() if _is_torch(d) else np.abs(d)
    return (d[..., 0] + d[..., 2]) / width + (d[..., 1] + d[..., 3]) / height
