"""Content cues: faces, people, objects, person masks and saliency, each from one small function.

Every detector takes the analysis image, ``[H, W, 3]`` uint8 RGB (typically ≤ 512 px long side), and returns
:class:`Detections` with boxes in **xyxy float pixels of that image**. Backends load lazily, once per process;
:func:`analyze` runs several cues; a missing backend is an error unless the caller degrades (then it is noted).

Backends (see ``docs/cues.md``): BlazeFace short+full range (faces) and selfie segmentation (person mask) on
ai-edge-litert; SSD-MobileNetV2-COCO on OpenCV dnn (people, objects); numpy spectral residual (saliency).
Importing this package is cheap: it registers the model files and imports no runtime.
"""

from opencrop.cues import _files  # noqa: F401  (registers the model files)
from opencrop.cues._runtime import BackendUnavailable
from opencrop.cues.analyze import ALL_CUES, DEFAULT_CUES, analyze, available, check
from opencrop.cues.constraints import (
    CutTerms,
    body_cut_penalty,
    face_cut,
    face_drop,
    face_terms,
    group_box,
    group_fit,
    head_boxes,
)
from opencrop.cues.faces import detect_faces
from opencrop.cues.objects import COCO_LABELS, detect_objects, detect_people, detect_people_and_objects
from opencrop.cues.saliency import saliency
from opencrop.cues.segmentation import person_mask
from opencrop.cues.types import Cues, Detections

__all__ = [
    "ALL_CUES",
    "COCO_LABELS",
    "DEFAULT_CUES",
    "BackendUnavailable",
    "Cues",
    "CutTerms",
    "Detections",
    "analyze",
    "available",
    "body_cut_penalty",
    "check",
    "detect_faces",
    "detect_objects",
    "detect_people",
    "detect_people_and_objects",
    "draw_cues",
    "face_cut",
    "face_drop",
    "face_terms",
    "group_box",
    "group_fit",
    "head_boxes",
    "person_mask",
    "saliency",
]


def draw_cues(image, cues, **kwargs):  # lazy: keeps PIL.ImageDraw out of the import path
    """See :func:`opencrop.cues.overlay.draw_cues`."""
    from opencrop.cues.overlay import draw_cues as _draw

    return _draw(image, cues, **kwargs)
