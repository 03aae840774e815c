"""Box conventions, converters, IoU and boundary displacement.

Convention inside opencrop: **xyxy float pixels of the original (EXIF-oriented) image**, ``[x1, y1, x2, y2]``
with ``x2 > x1`` and ``y2 > y1``; continuous coordinates, so a box's width is ``x2 - x1`` (no ``+1``), as in
HCIC's evaluation. Other conventions met in datasets:

* ``yxyx``   ``[y1, x1, y2, x2]`` pixels: raw GAICD ``.txt``/``.mat``, FLMS ``.mat``, S2CNet boxes.
* ``xywh``   ``[x, y, w, h]`` pixels: FCDB, SACD ``mask_box``; normalised in GenCrop files.
* ``cxcywh`` ``[cx, cy, w, h]``: set-prediction (DETR-style) model outputs, usually normalised.
* normalised xyxy ``[0, 1]``: LVRN anchors; x divided by the width, y by the height.

Every function takes an array of shape ``[..., 4]`` (NumPy or torch) and returns the same kind. This module is
the one place where these conversions and the IoU / GIoU / displacement formulas live (and
:func:`kmeans_boxes`, k-means with the IoU distance, which uses them).
"""

from __future__ import annotations

import sys
from typing import TypeVar

import numpy as np

Array = TypeVar("Array")

__all__ = [
    "boundary_displacement",
    "box_area",
    "box_iou",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "denormalize_xyxy",
    "generalized_box_iou",
    "kmeans_boxes",
    "nms",
    "normalize_xyxy",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
    "xyxy_to_yxyx",
    "yxyx_to_xyxy",
]


def _is_torch(a: object) -> bool:
    """Whether ``a`` is a torch tensor. torch is never imported here (it costs ≈ 1 s): a tensor exists only if the
    caller has imported it already."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def _torch():
    return sys.modules["torch"]


def _stack(cols: list, like: object):
    if _is_torch(like):
        return _torch().stack(cols, dim=-1)
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
        out = _torch().trunc(out) if _is_torch(out) else np.trunc(out)
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


def _pair_area(a, b, hull: bool):
    """Pairwise ``[N, M]`` area of the intersection (``hull=False``) or of the smallest enclosing box (``hull=True``)
    of xyxy boxes ``a [N, 4]`` and ``b [M, 4]`` (same kind)."""
    lib = _torch() if _is_torch(a) else np
    lo, hi = (lib.minimum, lib.maximum) if hull else (lib.maximum, lib.minimum)
    wh = hi(a[:, None, 2:], b[None, :, 2:]) - lo(a[:, None, :2], b[None, :, :2])
    wh = wh.clamp(min=0) if _is_torch(wh) else np.maximum(wh, 0)
    return wh[..., 0] * wh[..., 1]


def _inter_union(a, b):
    """Pairwise intersection and union areas ``[N, M]`` of xyxy boxes ``a [N, 4]``, ``b [M, 4]`` (same kind)."""
    inter = _pair_area(a, b, hull=False)
    return inter, box_area(a)[:, None] + box_area(b)[None, :] - inter


def _safe_div(num, den):
    """``num / den`` where ``den > 0``, else 0 (NumPy or torch)."""
    if _is_torch(num):
        torch = _torch()
        return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(den))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def box_iou(a: Array, b: Array) -> Array:
    """Pairwise IoU of xyxy boxes ``a [N, 4]`` and ``b [M, 4]`` → ``[N, M]``; 0 where the union is empty."""
    a = _as_float(a)
    b = _as_float(b)
    inter, union = _inter_union(a, b)
    return _safe_div(inter, union)


def generalized_box_iou(a: Array, b: Array) -> Array:
    """Pairwise generalised IoU (Rezatofighi et al., CVPR 2019) of xyxy boxes ``a [N, 4]``, ``b [M, 4]`` → ``[N, M]``
    in ``[-1, 1]``: ``IoU − (C − U) / C`` with ``C`` the area of the smallest box enclosing both and ``U`` the
    union. Units cancel (pixels or normalised). Degenerate pairs (``C = 0``) give 0. Differentiable (torch): the
    set-prediction losses and matching costs (:mod:`opencrop.nn.set_losses`) use it.
    """
    a = _as_float(a)
    b = _as_float(b)
    inter, union = _inter_union(a, b)
    iou = _safe_div(inter, union)
    hull = _pair_area(a, b, hull=True)
    return iou - _safe_div(hull - union, hull)


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


def nms(boxes: Array, scores: Array, iou_threshold: float) -> Array:
    """Greedy NMS: keep the highest-scoring box, drop every box with IoU ``> iou_threshold`` to a kept one, repeat.

    Vectorised: boxes are sorted by score (stable, so ties keep input order) and the greedy rule
    ``keep[i] = not any(keep[j] and iou[j, i] > t for j < i)`` is solved as a fixed point of a triangular system by
    repeated matrix-vector steps. Each step fixes at least one more leading entry, so it converges in at most N
    steps (usually a handful); the result is exactly greedy NMS. Memory is ``O(N²)``.

    Args:
        boxes: ``[N, 4]`` xyxy, NumPy or torch. scores: ``[N]``, the same kind.
        iou_threshold: boxes with IoU strictly above this are suppressed.
    Returns:
        ``[K]`` int64 indices into ``boxes`` of the kept boxes, by decreasing score (NumPy array or LongTensor on
        the boxes' device).
    """
    if _is_torch(boxes):
        torch = _torch()
        if len(boxes) == 0:
            return torch.zeros(0, dtype=torch.long, device=boxes.device)
        order = torch.sort(scores.detach(), descending=True, stable=True).indices
        b = boxes.detach()[order]
        b = b if b.is_floating_point() else b.double()
        over = torch.triu(box_iou(b, b) > iou_threshold, diagonal=1).to(b.dtype)  # over[j, i]: j ranks above i
        keep = torch.ones(len(b), dtype=torch.bool, device=b.device)
        for _ in range(len(b)):  # fixed-point iterations (not a loop over boxes: usually a few steps)
            new = (keep.to(b.dtype) @ over) == 0
            if torch.equal(new, keep):
                break
            keep = new
        return order[keep]
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    b = _as_float(boxes[order])
    over = np.triu(box_iou(b, b) > iou_threshold, k=1).astype(np.float64)
    keep = np.ones(len(b), dtype=bool)
    for _ in range(len(b)):
        new = (keep.astype(np.float64) @ over) == 0
        if np.array_equal(new, keep):
            break
        keep = new
    return order[keep].astype(np.int64)


def kmeans_boxes(boxes: np.ndarray, k: int, seed: int = 0, iters: int = 100, n_init: int = 5) -> np.ndarray:
    """k-means of xyxy ``boxes [N, 4]`` (any units, e.g. normalised) with the distance ``1 − IoU`` (YOLOv2's anchor
    priors, Redmon & Farhadi 2017, on whole boxes: position and size, not sizes only) → ``[k, 4]`` xyxy centres.

    ``n_init`` runs from seeded k-means++ starts (each next centre drawn with probability ∝ ``1 − max IoU`` to the
    chosen ones), each followed by Lloyd iterations: every box joins the centre of highest IoU (the first among
    ties), every centre becomes the coordinate-wise mean of its boxes; a centre left without boxes moves to the box
    of lowest best IoU. A run stops when the assignment no longer changes or after ``iters`` rounds; the run with
    the highest mean IoU of the boxes to their centres is returned. Deterministic for a given ``seed``. When there
    are at most ``k`` distinct boxes, the distinct boxes are returned, repeated cyclically.

    Example:
        >>> b = np.array([[0, 0, 1, 1], [0, 0, 1.1, 1], [5, 5, 6, 6], [5, 5, 6, 6.1]])
        >>> sorted(kmeans_boxes(b, 2).round(2).tolist())
        [[0.0, 0.0, 1.05, 1.0], [5.0, 5.0, 6.0, 6.05]]
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if k < 1 or n_init < 1:
        raise ValueError(f"kmeans_boxes: k and n_init must be >= 1, got {k}, {n_init}")
    if len(b) == 0:
        raise ValueError("kmeans_boxes: no boxes to cluster")
    if not np.all((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])):
        raise ValueError("kmeans_boxes: every box needs x2 > x1 and y2 > y1")
    distinct = np.unique(b, axis=0)
    if len(distinct) <= k:
        return distinct[np.arange(k) % len(distinct)].copy()
    best_c, best_fit = b[:k], -1.0
    for rng in (np.random.default_rng([seed, i]) for i in range(n_init)):
        c = _kmeans_boxes_run(b, k, rng, iters)
        fit = float(box_iou(b, c).max(axis=1).mean())
        if fit > best_fit:
            best_c, best_fit = c, fit
    return best_c


def _kmeans_boxes_run(b: np.ndarray, k: int, rng: np.random.Generator, iters: int) -> np.ndarray:
    """One k-means++ start + Lloyd iterations of :func:`kmeans_boxes`."""
    centres = [b[rng.integers(len(b))]]
    best = box_iou(b, np.asarray(centres))[:, 0]
    for _ in range(1, k):
        d = np.clip(1.0 - best, 0.0, None)
        j = int(rng.choice(len(b), p=d / d.sum())) if d.sum() > 0 else int(np.argmin(best))
        centres.append(b[j])
        best = np.maximum(best, box_iou(b, b[j][None])[:, 0])
    c = np.asarray(centres)
    assign = np.full(len(b), -1)
    for _ in range(iters):
        iou = box_iou(b, c)
        new = np.argmax(iou, axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        fit = iou[np.arange(len(b)), assign]
        for j in range(k):
            members = assign == j
            if members.any():
                c[j] = b[members].mean(axis=0)
            else:  # an empty cluster takes the worst-covered box
                w = int(np.argmin(fit))
                c[j], fit[w] = b[w], 1.0
    return c
