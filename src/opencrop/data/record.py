"""The one record type every dataset adapter yields.

All boxes are **xyxy float pixels of the image as stored on disk** (the dataset's released resolution); adapters
convert from yxyx / xywh / normalised forms with :mod:`opencrop.boxes`. Every field but ``name`` is optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CropRecord"]


@dataclass
class CropRecord:
    """One image of a cropping dataset.

    Attributes:
        name: image key as the dataset names it (e.g. ``"1234.jpg"``).
        image_path: path of the image file, if known (``None`` when only annotations exist).
        width, height: image size in pixels, if known.
        crops: ``[N, 4]`` xyxy candidate crops that carry a score (GAICD grid crops, CPC's 24 views).
        scores: ``[N]`` their scores (GAICD MOS in [1, 5]; CPC mean votes).
        gt_crops: ``[M, 4]`` xyxy ground-truth crops (FCDB: 1, FLMS: up to 10, SACD, GenCrop).
        human_box: ``[4]`` xyxy box of the main person (HCIC), or ``None``.
        object_boxes: ``[D, 4]`` xyxy object boxes (S2CNet proposals), or ``None``.
        subject_box: ``[4]`` xyxy subject box (GenCrop / SACD), or ``None``.
        subject_mask: ``[H, W]`` bool mask, or a path to it, or ``None``.
        split: ``"train" | "val" | "test"`` or ``None``.
        extra: format-specific leftovers (e.g. FLMS design-constraint layout region).
    """

    name: str
    image_path: Path | None = None
    width: int | None = None
    height: int | None = None
    crops: np.ndarray | None = None
    scores: np.ndarray | None = None
    gt_crops: np.ndarray | None = None
    human_box: np.ndarray | None = None
    object_boxes: np.ndarray | None = None
    subject_box: np.ndarray | None = None
    subject_mask: np.ndarray | Path | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
