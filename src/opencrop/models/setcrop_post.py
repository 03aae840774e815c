"""SetCrop's torch-free inference: the exact-ratio adjustment, the answer to a request from the final layer's
query boxes and validities, and the scoring of given boxes through their best-matching query — shared by the torch
model (:mod:`opencrop.models.setcrop`) and the onnxruntime path (:class:`opencrop.models.onnx_runtime.OnnxSetCrop`).
Boxes are xyxy pixels of the analysis image."""

from __future__ import annotations

import math

import numpy as np

from opencrop.boxes import box_iou, clip_boxes, nms
from opencrop.models.base import Request

__all__ = ["best_query_scores", "propose_from_queries", "ratio_adjust"]


def ratio_adjust(boxes: np.ndarray, ratio: float, width: float, height: float) -> np.ndarray:
    """Adjust xyxy pixel ``boxes [N, 4]`` to the exact aspect ``ratio`` (w / h) inside a ``width × height`` image.

    Each box becomes the box of aspect ``ratio`` with the **same area and centre**; if that is larger than the image
    along a side it is shrunk (about its centre, aspect kept) to fit; it is then shifted, not shrunk, into the image.
    Boxes are clipped to the image first; degenerate boxes keep at least 1 px² of area. Vectorised → ``[N, 4]``.

    Example:
        >>> ratio_adjust(np.array([[0.0, 0.0, 100.0, 100.0]]), 4.0, 400, 300).round(1).tolist()
        [[0.0, 25.0, 200.0, 75.0]]
    """
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"ratio_adjust: ratio must be a positive number, got {ratio}")
    b = clip_boxes(np.asarray(boxes, np.float64).reshape(-1, 4), width, height)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1.0)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w = np.sqrt(area * ratio)
    h = w / ratio
    s = np.minimum(1.0, np.minimum(width / w, height / h))
    w, h = w * s, h * s
    x1 = np.clip(cx - w / 2, 0, width - w)
    y1 = np.clip(cy - h / 2, 0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def best_query_scores(boxes: np.ndarray, query_boxes: np.ndarray, validity: np.ndarray) -> np.ndarray:
    """Score ``boxes [N, 4]`` through their best-matching query: ``σ(q*) · IoU(b, q*)`` with
    ``q* = argmax_q IoU(b, query_boxes[q])`` (first among ties), ``validity [Q]`` = ``σ`` → ``[N]`` float64 (the
    numpy twin of :meth:`opencrop.models.setcrop.SetCrop.forward_scores`)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(0)
    iou = box_iou(b, np.asarray(query_boxes, np.float64).reshape(-1, 4))
    best = np.argmax(iou, axis=1)
    return np.asarray(validity, np.float64)[best] * iou[np.arange(len(b)), best]


def propose_from_queries(qb: np.ndarray, val: np.ndarray, width: int, height: int, request: Request,
                         valid_threshold: float, fit_iou: float, notes: list[str] | None = None,
                         rank_nms: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes for a request without ``boxes`` from the query boxes ``qb [Q, 4]`` (clipped to the image) and their
    validities ``val [Q]``, best first: by validity (``ratio=None``), or every query box adjusted to the ratio
    (:func:`ratio_adjust`) scored ``σ · IoU(adjusted, query)``, minus 1 for the boxes that do not *fit*
    (validity ≥ ``valid_threshold`` and IoU kept ≥ ``fit_iou``). ``request.allow`` is called on the boxes in the
    order they are returned; the boxes it rules out score ``-inf``. When no box fits a ratio, a note is appended to
    ``notes`` (once). ``rank_nms`` (opencrop's option, not the paper's; ``ratio=None`` only): the queries that greedy
    NMS at that IoU suppresses (:func:`opencrop.boxes.nms` by validity) rank after every kept one (score − 1), so
    the top k are k different compositions rather than near duplicates."""
    if request.ratio is None:
        s = np.asarray(val, np.float64).copy()
        if rank_nms is not None and len(qb):
            suppressed = np.ones(len(qb), bool)
            suppressed[nms(np.asarray(qb, np.float64), s, float(rank_nms))] = False
            s -= suppressed
        order = np.argsort(-s, kind="stable")
        boxes, scores = qb[order], s[order]
        if request.allow is not None:
            scores[~np.asarray(request.allow(boxes), bool)] = -np.inf
        return boxes, scores
    adj = ratio_adjust(qb, float(request.ratio), width, height)
    kept = np.diagonal(box_iou(adj, qb)).copy() if len(qb) else np.zeros(0)
    fits = (val >= valid_threshold) & (kept >= fit_iou)
    # validity × the overlap the adjustment keeps; boxes that do not fit are offset by −1 (below every fit)
    scores = val * kept - (~fits).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    adj, scores, fits, val, kept = adj[order], scores[order], fits[order], val[order], kept[order]
    if request.allow is not None:
        ok = np.asarray(request.allow(adj), bool)
        scores[~ok] = -np.inf
        fits &= ok
    if not fits.any() and notes is not None:
        j = int(np.argmax(val))
        note = (f"setcrop: no valid query fits ratio {request.ratio:.4g} (validity ≥ {valid_threshold:g} "
                f"and IoU ≥ {fit_iou:g} after the ratio adjustment); best query: validity {val[j]:.2f}, "
                f"IoU kept {kept[j]:.2f}; the crop is the best adjusted box anyway")
        if note not in notes:
            notes.append(note)
    return adj, scores
