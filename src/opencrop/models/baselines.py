"""Two honest, parameter-free baseline crop models (table rows and test fixtures).

* ``baseline-center``: score = −(distance of the crop centre from the image centre) / (image diagonal / 2), in
  [−1, 0]; prefers centred crops and, among equally centred ones, keeps the original order.
* ``baseline-area``: score = crop area / image area; prefers the largest crop.

Both follow the :class:`~opencrop.models.base.CropModel` protocol: ``prepare(image [H, W, 3] uint8)`` records the
image size, ``score(prepared, boxes [N, 4] xyxy pixels) → [N]`` float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from opencrop.cues.types import Cues
from opencrop.models.base import CandidateScorer, pixels_of
from opencrop.models.registry import register_model

__all__ = ["AreaBaseline", "CenterBaseline"]


class _SizeOnly(CandidateScorer):
    name = "baseline"
    needs: frozenset[str] = frozenset()

    def prepare(self, frame: object, cues: Cues | None = None) -> tuple[int, int]:
        """``frame`` (a :class:`~opencrop.io.Frame` or ``[H, W, 3]`` pixels) → analysis ``(width, height)``."""
        image = pixels_of(frame)
        return int(image.shape[1]), int(image.shape[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class CenterBaseline(_SizeOnly):
    """Score = −‖crop centre − image centre‖ / (diagonal / 2)."""

    name = "baseline-center"

    def score(self, prepared: Any, boxes: np.ndarray) -> np.ndarray:
        w, h = prepared
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        cx = (b[:, 0] + b[:, 2]) / 2 - w / 2
        cy = (b[:, 1] + b[:, 3]) / 2 - h / 2
        return -np.hypot(cx, cy) / (np.hypot(w, h) / 2)


class AreaBaseline(_SizeOnly):
    """Score = crop area / image area."""

    name = "baseline-area"

    def score(self, prepared: Any, boxes: np.ndarray) -> np.ndarray:
        w, h = prepared
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0) / (w * h)


@register_model("baseline-center")
def baseline_center() -> CenterBaseline:
    return CenterBaseline()


@register_model("baseline-area")
def baseline_area() -> AreaBaseline:
    return AreaBaseline()
