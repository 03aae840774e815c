"""Evaluate any registered :class:`~opencrop.models.base.CropModel` on a dataset of :class:`CropRecord`.

Two protocols, chosen by what the records carry:

* **scored** (GAICD, CPC: ``crops`` + ``scores``): the model scores the annotated crops; metrics =
  :func:`~opencrop.eval.metrics.gaicd_metrics`.
* **gt** (FCDB, FLMS, SACD, GenCrop: ``gt_crops``): the model scores a candidate set — LVRN's 1,745 normalised
  anchors mapped to pixels with integer truncation (as HCIC), the GAIC grid or fixed-ratio windows — and its
  best candidate is compared with the GT crops; metrics = :func:`~opencrop.eval.metrics.iou_bde`.

``prepare`` runs once per image, ``score`` once on all its candidates. Boxes are xyxy pixels of the image as
decoded (EXIF-upright); when the decoder shrinks the image for analysis, boxes are scaled to it for scoring.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["EvalResult", "candidate_boxes", "decode_rgb", "evaluate", "resolve_lvrn_anchors"]

CANDIDATE_SETS = ("auto", "lvrn", "grid", "ratios")
#: aspect ratios of the ``"ratios"`` candidate set (the fixed-ratio windows of GAIC / S2CNet demos)
WINDOW_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16")


@dataclass
class EvalResult:
    """Metrics of one model on one dataset, plus per-image predictions (``pred`` = best box, xyxy pixels)."""

    protocol: str
    metrics: dict[str, float]
    candidates: str | None = None
    per_image: list[dict[str, Any]] = field(default_factory=list)


def decode_rgb(path: str | Path) -> tuple[np.ndarray, float, float]:
    """Decode an image → ``(pixels [h, w, 3] uint8 RGB, sx, sy)`` where ``sx, sy`` map original-image pixels to
    ``pixels`` (1.0 unless the decoder shrank it). EXIF orientation is applied.

    Uses :func:`opencrop.io.load_image` when that module exists, else Pillow.
    """
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, "image file missing")
    try:
        from opencrop.io import load_image  # shared decoder (shrink on load), when present
    except ImportError:
        load_image = None
    if load_image is not None:
        li = load_image(p)
        pix = np.asarray(li.pixels)
        return pix, pix.shape[1] / li.width, pix.shape[0] / li.height
    from PIL import Image, ImageOps

    try:
        with Image.open(p) as im:
            rgb = ImageOps.exif_transpose(im).convert("RGB")
            return np.asarray(rgb), 1.0, 1.0
    except OSError as e:
        raise DataFormatError(p, f"cannot decode image: {e}") from e


def resolve_lvrn_anchors(path: str | Path | None = None) -> np.ndarray | None:
    """LVRN's ``[1745, 4]`` normalised xyxy anchors: from ``path`` (sha256-checked pickle), else
    :func:`opencrop.candidates.lvrn_anchors`, else ``$OPENCROP_LVRN_PKL``; ``None`` when none is available."""
    from opencrop.data.anchors import load_lvrn_pkl

    if path is not None:
        return load_lvrn_pkl(path)
    try:
        from opencrop.candidates import lvrn_anchors

        return np.asarray(lvrn_anchors(), dtype=np.float64)
    except (ImportError, RuntimeError, NotImplementedError):
        pass
    env = os.environ.get("OPENCROP_LVRN_PKL")
    if env:
        return load_lvrn_pkl(env)
    return None


def candidate_boxes(kind: str, width: int, height: int, anchors: np.ndarray | None = None) -> np.ndarray:
    """``[N, 4]`` xyxy pixel candidates of a ``width × height`` image: ``"lvrn"`` (normalised anchors × size,
    truncated to integers as HCIC does), ``"grid"`` (GAIC 12×12 grid) or ``"ratios"`` (sliding windows of
    1:1, 4:3, 3:4, 16:9 and 9:16, at most 300 per ratio)."""
    if kind == "lvrn":
        if anchors is None:
            raise ValueError("LVRN anchors are not available: pass --anchors pdefined_anchors.pkl or use grid")
        from opencrop.boxes import denormalize_xyxy

        return denormalize_xyxy(anchors, width, height, truncate=True)
    if kind == "grid":
        from opencrop.candidates import gaic_grid

        return gaic_grid(width, height)
    if kind == "ratios":
        from opencrop.candidates import ratio_windows

        return np.concatenate([ratio_windows(width, height, r, max_count=300) for r in WINDOW_RATIOS])
    raise ValueError(f"unknown candidate set {kind!r}; use lvrn, grid or ratios")


def _score(model: Any, image: np.ndarray, boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    prepared = model.prepare(image)
    b = boxes * np.array([sx, sy, sx, sy]) if (sx, sy) != (1.0, 1.0) else boxes
    s = np.asarray(model.score(prepared, b), dtype=np.float64).reshape(-1)
    if s.shape[0] != boxes.shape[0]:
        raise RuntimeError(
            f"model {getattr(model, 'name', model)!r} returned {s.shape[0]} scores for {boxes.shape[0]} boxes"
        )
    return s


def evaluate(
    model: Any,
    records: Sequence[CropRecord],
    candidates: str = "auto",
    anchors: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    set_metrics: bool = False,
) -> EvalResult:
    """Run ``model`` over ``records`` and compute the protocol's metrics (see the module docstring).

    With ``set_metrics`` (scored protocol only) the annotated crops ranked by the model's scores are also treated
    as a set prediction and Rethinking's metrics are added (``hit{k}@{t}``, ``ap{m}@{t}``, good crops = MOS ≥ 4).

    Raises :class:`DataFormatError` for a record without an image file, or records that carry neither scored
    crops nor GT crops.
    """
    from opencrop.eval.metrics import gaicd_metrics, iou_bde

    if not records:
        raise ValueError("no records to evaluate")
    scored = all(r.crops is not None and r.scores is not None for r in records)
    if not scored and not all(r.gt_crops is not None for r in records):
        raise DataFormatError(records[0].name, "records carry neither scored crops nor GT crops")
    if candidates not in CANDIDATE_SETS:
        raise ValueError(f"unknown candidate set {candidates!r}; use one of {', '.join(CANDIDATE_SETS)}")
    kind = None
    if not scored:
        kind = candidates
        if candidates == "auto":
            kind = "lvrn" if anchors is not None else "grid"
    preds, gts, per = [], [], []
    ws, hs = [], []
    for i, r in enumerate(records):
        if r.image_path is None:
            raise DataFormatError(r.name, "no image path (images/ folder missing?)")
        image, sx, sy = decode_rgb(r.image_path)
        h, w = round(image.shape[0] / sy), round(image.shape[1] / sx)
        if scored:
            s = _score(model, image, r.crops, sx, sy)
            preds.append(s)
            gts.append(r.scores)
            best = int(np.argmax(s))
            per.append({"name": r.name, "pred": r.crops[best].tolist(), "pred_gt_score": float(r.scores[best])})
        else:
            cands = candidate_boxes(kind, w, h, anchors)
            s = _score(model, image, cands, sx, sy)
            best = cands[int(np.argmax(s))]
            preds.append(best)
            gts.append(r.gt_crops)
            ws.append(w)
            hs.append(h)
            per.append({"name": r.name, "pred": best.tolist(), "width": w, "height": h})
        if progress is not None:
            progress(i + 1, len(records))
    if scored:
        metrics = gaicd_metrics(preds, gts)
        if set_metrics:
            from opencrop.eval.metrics import set_prediction_metrics

            crops = [r.crops for r in records]
            sm = set_prediction_metrics(crops, preds, crops, gts)
            metrics.update({k: v for k, v in sm.items() if k != "n_images"})
        return EvalResult("scored", metrics, None, per)
    return EvalResult("gt", iou_bde(preds, gts, ws, hs), kind, per)


def stderr_progress(done: int, total: int) -> None:
    """A minimal progress line on stderr (every 10 % and at the end)."""
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {done}/{total} images", file=sys.stderr)
