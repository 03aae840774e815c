"""Cue containers shared by detectors, the composition model and learned models.

Boxes are **xyxy float pixels of the image that was analysed** (the shrink-on-load analysis image); the API
scales them to original pixels when it reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Cues", "Detections"]


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


def _empty_scores() -> np.ndarray:
    return np.zeros((0,), dtype=np.float32)


@dataclass
class Detections:
    """Boxes ``[N, 4]`` xyxy pixels, scores ``[N]`` in [0, 1], labels (class names), optional masks ``[N, H, W]``."""

    boxes: np.ndarray = field(default_factory=_empty_boxes)
    scores: np.ndarray = field(default_factory=_empty_scores)
    labels: list[str] = field(default_factory=list)
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def scaled(self, sx: float, sy: float) -> Detections:
        """The same detections with x multiplied by ``sx`` and y by ``sy`` (masks are not resampled)."""
        b = self.boxes.astype(np.float64) * np.array([sx, sy, sx, sy])
        return Detections(b.astype(np.float32), self.scores.copy(), list(self.labels), self.masks)


@dataclass
class Cues:
    """Everything known about an image's content, at analysis resolution ``width × height``.

    ``degraded`` names the wanted cues that could not run (only when the caller asked to degrade; ``notes`` says
    why). ``runtimes`` says what ran the SSD, by cue (``{"people": "onnxruntime, int8 class heads", ...}``:
    :func:`opencrop.cues.objects.runtime`). ``subjects`` are user-given boxes (``--subject``) and ``focus`` a user
    point (``--focus``); both outrank detections. ``proposals`` are the SSD's weaker boxes (any class, scoring from
    :data:`opencrop.cues.objects.PROPOSAL_SCORE` up to their class's threshold): object proposals for a photo where
    nothing passes the thresholds. ``saliency`` is ``[H', W']`` float32 in [0, 1] covering the whole image (any
    resolution).

    Given inputs (dataset record fields, :data:`opencrop.models.base.FIELD_NAMES`), set by evaluation and
    training from the record and by the user through the API; ``None`` = not given (a model then derives what it
    needs from the detections): ``human_box`` ``[4]`` (HCIC's main person), ``object_boxes`` ``[D, 4]``
    (S2CNet's object nodes), ``subject_box`` ``[4]`` and ``subject_mask`` ``[H, W]`` bool (GenCrop), ``heatmap``
    ``[h, w]`` float in [0, 1] (HCIC / GAFIC pseudo heat map, any resolution). Boxes are xyxy analysis pixels.
    """

    width: int
    height: int
    faces: Detections = field(default_factory=Detections)
    people: Detections = field(default_factory=Detections)
    objects: Detections = field(default_factory=Detections)
    proposals: Detections = field(default_factory=Detections)
    saliency: np.ndarray | None = None
    person_mask: np.ndarray | None = None
    subjects: np.ndarray = field(default_factory=_empty_boxes)
    focus: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)
    runtimes: dict[str, str] = field(default_factory=dict)
    human_box: np.ndarray | None = None
    object_boxes: np.ndarray | None = None
    subject_box: np.ndarray | None = None
    subject_mask: np.ndarray | None = None
    heatmap: np.ndarray | None = None
