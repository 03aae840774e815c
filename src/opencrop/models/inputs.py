"""Model inputs derived from cues, torch-free (numpy): what a learned model's extra graph inputs are at inference.

Each provider maps ``(cues, width, height, sx, sy)`` — cues of the ``width × height`` analysis image, ``(sx, sy)``
the analysis → network-input scale — to a float32 array. The torch models wrap them in tensors
(:meth:`~opencrop.models.learned.LearnedCropModel.extra_from_cues`); the ONNX runtime
(:mod:`opencrop.models.onnx_runtime`) feeds them to the exported graph, so both paths see the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opencrop.cues.types import Cues

__all__ = ["EXTRA_INPUTS", "person_box"]


def person_box(cues: Cues | None, width: int, height: int, sx: float, sy: float) -> np.ndarray:
    """``[1, 4]`` float32 xyxy network-input box of the main person: the given ``cues.human_box`` (a dataset's box in
    evaluation) when set, else the highest-scoring person in ``cues.people``; ``(-1, -1, -1, -1)`` when there is
    none (or the box is empty after clipping to the image)."""
    none = np.full((1, 4), -1.0, np.float32)
    if cues is not None and cues.human_box is not None:
        b = np.asarray(cues.human_box, dtype=np.float64).reshape(4)
        if not np.all(b >= 0):
            return none
    else:
        people = cues.people if cues is not None else None
        if people is None or len(people) == 0:
            return none
        i = int(np.argmax(np.asarray(people.scores, dtype=np.float64))) if len(people.scores) else 0
        b = np.asarray(people.boxes[i], dtype=np.float64).reshape(4)
    w, h = float(width), float(height)
    b = np.clip(b, 0, [w, h, w, h]) * np.array([sx, sy, sx, sy])
    if b[2] <= b[0] or b[3] <= b[1]:
        return none
    return b.astype(np.float32).reshape(1, 4)


#: graph input name → provider (the names models list in ``export_inputs``)
EXTRA_INPUTS: dict[str, Callable[[Cues | None, int, int, float, float], np.ndarray]] = {"human_box": person_box}
