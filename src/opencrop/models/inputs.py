"""Model inputs derived from cues, torch-free (numpy): what a learned model's extra graph inputs are at inference.

Each provider maps ``(cues, width, height, sx, sy)`` — cues of the ``width × height`` analysis image, ``(sx, sy)``
the analysis → network-input scale — to a float32 array. The torch models wrap them in tensors
(:meth:`~opencrop.models.learned.LearnedCropModel.extra_from_cues`); the ONNX runtime
(:mod:`opencrop.models.onnx_runtime`) feeds them to the exported graph, so both paths see the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from opencrop.cues.types import Cues

__all__ = ["EXTRA_INPUTS", "object_boxes_from_cues", "object_inputs", "person_box", "require_object_cues"]


def person_box(cues: Cues | None, width: int, height: int, sx: float, sy: float,
               config: dict[str, Any] | None = None) -> np.ndarray:
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


def object_boxes_from_cues(cues: Cues | None, max_boxes: int, min_size: float = 1.0) -> np.ndarray:
    """Object boxes of one image for S2CNet's object nodes → ``[d ≤ max_boxes, 4]`` xyxy analysis pixels.

    * Given boxes (``cues.object_boxes``: a dataset's S2CNet proposals, in evaluation and through the API) win:
      their first ``max_boxes`` (the files list the detector's boxes in its order).
    * Otherwise the detections of :mod:`opencrop.cues`: people (``cues.people``, SSD score ≥ 0.5) and COCO objects
      (``cues.objects``, score ≥ 0.4, people excluded), merged and sorted by descending score (people first on
      ties), clipped to the image; boxes whose width or height is at most ``min_size`` pixels are dropped (as the
      published files' placeholders are); the first ``max_boxes`` are kept. Faces are not object nodes (a person
      box covers them).

    The original detector is a Faster R-CNN trained on Visual Genome, which is not available offline; COCO
    people and objects are what users of the original code substitute (S2CNet issue #8). ``cues=None`` or no
    detections → ``[0, 4]`` (a one-node graph).
    """
    if max_boxes <= 0 or cues is None:
        return np.zeros((0, 4), np.float64)
    if cues.object_boxes is not None:
        b = np.asarray(cues.object_boxes, np.float64).reshape(-1, 4)
        ok = ((b[:, 2] - b[:, 0]) > min_size) & ((b[:, 3] - b[:, 1]) > min_size) & np.all(b >= 0, axis=1)
        return b[ok][:max_boxes]
    boxes = np.concatenate([np.asarray(cues.people.boxes, np.float64).reshape(-1, 4),
                            np.asarray(cues.objects.boxes, np.float64).reshape(-1, 4)])
    scores = np.concatenate([np.asarray(cues.people.scores, np.float64).reshape(-1),
                             np.asarray(cues.objects.scores, np.float64).reshape(-1)])
    if boxes.shape[0] == 0:
        return boxes
    w, h = float(cues.width), float(cues.height)
    boxes = np.clip(boxes, 0.0, [w, h, w, h])
    ok = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
    boxes, scores = boxes[ok], scores[ok]
    order = np.argsort(-scores, kind="stable")
    return boxes[order][:max_boxes]


def require_object_cues(cues: Cues | None) -> Cues:
    """``cues``, or the error S2CNet gives without them (it cannot tell "no objects" from "not analysed")."""
    if cues is None:
        raise ValueError(
            "s2cnet.prepare needs cues: the image's object boxes (Cues.object_boxes) or its people / object "
            "detections (opencrop.cues.analyze(image, want={'people', 'objects'})); pass Cues(width, height) "
            "for an image known to have none"
        )
    return cues


def object_inputs(cues: Cues | None, sx: float, sy: float, bbox_num: int) -> tuple[np.ndarray, np.ndarray]:
    """S2CNet's ONNX object inputs: :func:`object_boxes_from_cues` scaled to input pixels, padded with zero rows to
    the fixed ``bbox_num`` → (``[1, bbox_num, 4]`` float32 xyxy input pixels, ``[1, bbox_num]`` bool mask, True for
    the real boxes, which come first). The torch model gets the same boxes unpadded; padding is masked."""
    b = object_boxes_from_cues(require_object_cues(cues), bbox_num) * np.array([sx, sy, sx, sy])
    boxes = np.zeros((1, bbox_num, 4), np.float32)
    mask = np.zeros((1, bbox_num), bool)
    boxes[0, : len(b)], mask[0, : len(b)] = b, True
    return boxes, mask


def _object_boxes(cues: Cues | None, width: int, height: int, sx: float, sy: float,
                  config: dict[str, Any] | None = None) -> np.ndarray:
    return object_inputs(cues, sx, sy, int((config or {}).get("bbox_num", 10)))[0]


def _object_mask(cues: Cues | None, width: int, height: int, sx: float, sy: float,
                 config: dict[str, Any] | None = None) -> np.ndarray:
    return object_inputs(cues, sx, sy, int((config or {}).get("bbox_num", 10)))[1]


#: graph input name → provider ``(cues, width, height, sx, sy, config) → array`` (the names models list in
#: ``export_inputs``; ``config`` is the model's configuration, e.g. S2CNet's ``bbox_num``)
EXTRA_INPUTS: dict[str, Callable[..., np.ndarray]] = {
    "human_box": person_box, "object_boxes": _object_boxes, "object_mask": _object_mask}
