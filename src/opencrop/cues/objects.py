"""People and objects: SSD-MobileNetV2 trained on COCO (TF Object Detection API), run with OpenCV's dnn module.

One forward pass (300² input, about 40–55 ms on 2 CPU threads) gives both people and objects:
:func:`detect_people_and_objects` returns both from one pass (what :func:`~opencrop.cues.analyze` uses).
"""

from __future__ import annotations

import numpy as np

from opencrop.cues._files import SSD_GRAPH, SSD_PBTXT
from opencrop.cues._runtime import BackendUnavailable, Lazy, has_module
from opencrop.cues.types import Detections
from opencrop.modelfiles import resolve

__all__ = ["COCO_LABELS", "detect_objects", "detect_people", "detect_people_and_objects"]

# TF Object Detection API COCO label map: id → name (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are unused).
COCO_LABELS: dict[int, str] = dict(enumerate(
    "background person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant - stop_sign "
    "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe - backpack umbrella - - handbag "
    "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
    "tennis_racket bottle - wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog "
    "pizza donut cake chair couch potted_plant bed - dining_table - - toilet - tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator - book clock vase scissors teddy_bear hair_drier "
    "toothbrush".split()
))
COCO_LABELS = {k: v.replace("_", " ") for k, v in COCO_LABELS.items() if v != "-"}


def _load():
    if not has_module("cv2"):
        raise BackendUnavailable(
            "OpenCV is not installed (pip install 'opencrop[cues]', i.e. opencv-contrib-python-headless)"
        )
    import cv2

    if not hasattr(cv2, "dnn"):
        raise BackendUnavailable("this OpenCV build has no dnn module")
    net = cv2.dnn.readNetFromTensorflow(str(resolve(SSD_GRAPH.name)), str(resolve(SSD_PBTXT.name)))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


_NET: Lazy = Lazy(_load)


#: images longer than this aspect ratio are padded (grey) to it before the 300² stretch: SSD was trained on a
#: stretch to 300², which is harmless near 4:3 but loses people in 2:1 panoramas (the tiled-astronaut test).
MAX_ASPECT = 4 / 3


def _pad_to_aspect(image: np.ndarray, max_aspect: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``image`` centred on a grey canvas whose aspect is at most ``max_aspect``; (x off, y off, width, height)."""
    h, w = image.shape[:2]
    pw, ph = w, h
    if w > h * max_aspect:
        ph = round(w / max_aspect)
    elif h > w * max_aspect:
        pw = round(h / max_aspect)
    if (pw, ph) == (w, h):
        return image, (0, 0, w, h)
    ox, oy = (pw - w) // 2, (ph - h) // 2
    canvas = np.full((ph, pw, 3), 127, dtype=np.uint8)
    canvas[oy : oy + h, ox : ox + w] = image
    return canvas, (ox, oy, pw, ph)


def _raw(image: np.ndarray) -> np.ndarray:
    """Rows ``[K, 6]``: class id, score, x1, y1, x2, y2 normalised to ``image`` (scores ≥ 0.05)."""
    from opencrop.cues.faces import _check_image

    _check_image(image)
    import cv2

    net = _NET.get()
    padded, (ox, oy, pw, ph) = _pad_to_aspect(image, MAX_ASPECT)
    blob = cv2.dnn.blobFromImage(padded, size=(300, 300), swapRB=False)  # image is RGB already, as the model wants
    with _NET.lock:
        net.setInput(blob)
        out = net.forward()[0, 0]
    rows = out[out[:, 2] >= 0.05][:, 1:7].astype(np.float32)
    h, w = image.shape[:2]
    # padded-normalised → image-normalised
    rows[:, [2, 4]] = (rows[:, [2, 4]] * pw - ox) / w
    rows[:, [3, 5]] = (rows[:, [3, 5]] * ph - oy) / h
    return rows


def _to_detections(rows: np.ndarray, image: np.ndarray) -> Detections:
    h, w = image.shape[:2]
    boxes = np.clip(rows[:, 2:6], 0.0, 1.0) * np.array([w, h, w, h], dtype=np.float32)
    ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
    rows, boxes = rows[ok], boxes[ok]
    order = np.argsort(-rows[:, 1], kind="stable")
    labels = [COCO_LABELS.get(int(c), f"class {int(c)}") for c in rows[order, 0]]
    return Detections(boxes[order].astype(np.float32), rows[order, 1].astype(np.float32), labels)


def detect_people(image: np.ndarray, min_score: float = 0.5) -> Detections:
    """People in ``image`` (``[H, W, 3]`` uint8 RGB): boxes ``[N, 4]`` xyxy float pixels, scores, label ``"person"``.

    Raises:
        BackendUnavailable: OpenCV or the SSD model files are missing.
    """
    return _people(_raw(image), image, min_score)


def _people(rows: np.ndarray, image: np.ndarray, min_score: float) -> Detections:
    det = _to_detections(rows[(rows[:, 0] == 1) & (rows[:, 1] >= min_score)], image)
    if len(det) > 1:  # SSD's own NMS (0.6) lets through a few merged "two people" boxes
        keep = _nms(det.boxes, 0.5)
        det = Detections(det.boxes[keep], det.scores[keep], [det.labels[i] for i in keep])
    return det


def _nms(boxes: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy NMS over ``boxes [N, 4]`` already sorted best first."""
    from opencrop.boxes import box_iou

    ious = box_iou(boxes, boxes)
    keep: list[int] = []
    for i in range(len(boxes)):
        if all(ious[i, j] <= iou for j in keep):
            keep.append(i)
    return keep


def detect_objects(image: np.ndarray, min_score: float = 0.4, include_people: bool = False) -> Detections:
    """COCO objects in ``image``: boxes ``[N, 4]`` xyxy float pixels, scores, COCO class names (best first).

    People are left out unless ``include_people`` (they are :func:`detect_people`'s job).

    Raises:
        BackendUnavailable: OpenCV or the SSD model files are missing.
    """
    return _objects(_raw(image), image, min_score, include_people)


def _objects(rows: np.ndarray, image: np.ndarray, min_score: float, include_people: bool) -> Detections:
    keep = rows[:, 1] >= min_score
    if not include_people:
        keep &= rows[:, 0] != 1
    return _to_detections(rows[keep], image)


def detect_people_and_objects(
    image: np.ndarray, min_person_score: float = 0.5, min_object_score: float = 0.4
) -> tuple[Detections, Detections]:
    """``(people, objects)`` from one SSD pass; the same as :func:`detect_people` and :func:`detect_objects`.

    Raises:
        BackendUnavailable: OpenCV or the SSD model files are missing.
    """
    rows = _raw(image)
    return _people(rows, image, min_person_score), _objects(rows, image, min_object_score, False)
