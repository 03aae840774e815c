"""HCIC pseudo heat maps: the content-preservation supervision of HCIC and GAFIC (``docs/systems.md`` §3.3).

For each image with scored crops (GAICD grid crops, CPC's 24 views):

1. one binary mask per crop at the image's own resolution (crop corners truncated to integers, rows ``[y1, y2)``,
   columns ``[x1, x2)``, clipped to the image);
2. if the image has more than ``max_crops`` (10) crops, keep only those with score > the **dataset** mean score;
3. weights = softmax(score + 2 · area fraction) over the kept crops;
4. heat = Σ weight · mask, min–max normalised to 0–255 and stored as a uint8 PNG
   ``heat_map_gt/<DATASET>/mask/<stem>.png``.

The sum is accumulated with a 2-D difference array and two cumulative sums: O(N + H·W), no per-pixel loops.

Edge cases the original leaves undefined (it divides by zero or indexes an empty array), fixed here:

* no crop passes the mean-score filter → all crops are kept;
* a flat heat map (max = min, e.g. one crop covering the whole image) → 255 where the heat is positive, else 0;
* values are rounded to the nearest integer (the original truncates after a float min–max normalisation, which can
  turn 255 into 254 through round-off).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = [
    "DATASET_DIRS",
    "dataset_mean_score",
    "heatmap_path",
    "pseudo_heatmap",
    "pseudo_heatmap_float",
    "write_heatmaps",
]

#: the dataset folder names HCIC uses under ``heat_map_gt/``
DATASET_DIRS = {"gaicd": "GAICD", "cpc": "CPC"}


def pseudo_heatmap_float(
    crops: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    mean_score: float,
    max_crops: int = 10,
) -> np.ndarray:
    """Unnormalised weighted crop-mask sum ``[height, width]`` float64 (steps 1–3 and the sum of step 4).

    Args:
        crops: ``[N, 4]`` xyxy pixels of the ``width × height`` image (truncated to integers here).
        scores: ``[N]`` crop scores (MOS / votes).
        width, height: image size in pixels.
        mean_score: the dataset's mean crop score (the > 10 filter threshold).
        max_crops: above this many crops, only crops scoring above ``mean_score`` are kept.
    """
    crops = np.asarray(crops, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if crops.shape[0] != scores.shape[0]:
        raise ValueError(f"{crops.shape[0]} crops but {scores.shape[0]} scores")
    if crops.shape[0] == 0:
        raise ValueError("an image needs at least one scored crop for a pseudo heat map")
    if len(crops) > max_crops:
        keep = scores > mean_score
        if keep.any():
            crops, scores = crops[keep], scores[keep]
    box = np.trunc(crops).astype(np.int64)
    x1 = np.clip(box[:, 0], 0, width)
    x2 = np.clip(box[:, 2], 0, width)
    y1 = np.clip(box[:, 1], 0, height)
    y2 = np.clip(box[:, 3], 0, height)
    x2, y2 = np.maximum(x2, x1), np.maximum(y2, y1)
    area = (x2 - x1) * (y2 - y1) / float(width * height)
    logits = scores + 2.0 * area
    w = np.exp(logits - logits.max())
    w /= w.sum()
    diff = np.zeros((height + 1, width + 1), dtype=np.float64)
    np.add.at(diff, (y1, x1), w)
    np.add.at(diff, (y1, x2), -w)
    np.add.at(diff, (y2, x1), -w)
    np.add.at(diff, (y2, x2), w)
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[:height, :width]


def pseudo_heatmap(
    crops: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    mean_score: float,
    max_crops: int = 10,
) -> np.ndarray:
    """HCIC pseudo heat map ``[height, width]`` uint8 in 0–255 (see the module docstring for the rule).

    Example:
        >>> pseudo_heatmap(np.array([[0, 0, 2, 1]]), np.array([3.0]), 4, 2, mean_score=3.0).tolist()
        [[255, 255, 0, 0], [0, 0, 0, 0]]
    """
    heat = pseudo_heatmap_float(crops, scores, width, height, mean_score, max_crops)
    lo, hi = float(heat.min()), float(heat.max())
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        return np.where(heat > 1e-12, 255, 0).astype(np.uint8)
    return np.rint((heat - lo) / (hi - lo) * 255.0).clip(0, 255).astype(np.uint8)


def dataset_mean_score(records: Iterable[CropRecord]) -> float:
    """Mean of every crop score over all records (HCIC computes it over the whole annotation file)."""
    parts = [np.asarray(r.scores, dtype=np.float64).reshape(-1) for r in records if r.scores is not None]
    if not parts or sum(p.size for p in parts) == 0:
        raise ValueError("no scored crops: cannot compute the dataset mean score")
    return float(np.concatenate(parts).mean())


def heatmap_path(out_dir: str | Path, name: str) -> Path:
    """``out_dir/<stem of name>.png`` (``"1234.jpg"`` → ``1234.png``)."""
    return Path(out_dir) / (Path(name).stem + ".png")


def _image_size(rec: CropRecord) -> tuple[int, int]:
    if rec.width is not None and rec.height is not None:
        return int(rec.width), int(rec.height)
    if rec.image_path is None:
        raise DataFormatError(rec.name, "record has neither a size nor an image path; cannot size its heat map")
    from PIL import Image

    try:
        with Image.open(rec.image_path) as im:
            return int(im.size[0]), int(im.size[1])
    except OSError as e:
        raise DataFormatError(rec.image_path, f"cannot read image size: {e}") from e


def write_heatmaps(
    records: Iterable[CropRecord],
    out_dir: str | Path,
    mean_score: float | None = None,
    max_crops: int = 10,
    errors: list[str] | None = None,
) -> list[Path]:
    """Write one pseudo heat-map PNG per record with scored crops into ``out_dir``; return the paths written.

    Records without crops or scores are skipped. ``mean_score`` defaults to :func:`dataset_mean_score` of
    ``records`` (pass every split, as HCIC does). Sizes come from ``record.width/height`` or the image header.
    A record whose size cannot be read raises :class:`DataFormatError`, or, when an ``errors`` list is given, is
    skipped and its message appended to that list.
    """
    from PIL import Image

    recs = [r for r in records if r.crops is not None and r.scores is not None and len(r.scores) > 0]
    if mean_score is None:
        mean_score = dataset_mean_score(recs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for rec in recs:  # one image at a time; the work inside is vectorised
        try:
            width, height = _image_size(rec)
        except DataFormatError as e:
            if errors is None:
                raise
            errors.append(str(e))
            continue
        heat = pseudo_heatmap(rec.crops, rec.scores, width, height, mean_score, max_crops)
        path = heatmap_path(out, rec.name)
        Image.fromarray(heat).save(path)
        written.append(path)
    return written
