"""People and objects: SSD-MobileNetV2 trained on COCO (TF Object Detection API).

Two runtimes for the same network and the same answers (tested against each other):

* **onnxruntime** (used when installed): the frozen graph is converted once to ONNX graphs
  (:mod:`opencrop.cues._ssd_onnx`, cached next to the model files): people only (backbone, box regressors, person
  scores; ≈ 10 ms per 300² pass on 2 CPU threads) and full (all 80 COCO classes), run when objects are wanted.
  By default their class heads run as int8 convolutions (``OPENCROP_SSD_PRECISION=int8``: full pass ≈ 23 instead
  of ≈ 38 ms CPU on one thread, scores within 0.021 of float32 on 32 photos, every detection kept;
  ``benchmarks/ssd_int8.py``); ``fp32`` selects the float32 graphs. :func:`runtime` says
  which ran; :func:`~opencrop.cues.analyze` records it in ``Cues.runtimes``.
* **OpenCV dnn** (the fallback, and the reference): ≈ 45–55 ms per pass, everything at once, float32.

:func:`detect_people_and_objects` returns both from one pass (what :func:`~opencrop.cues.analyze` uses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opencrop.boxes import nms
from opencrop.cues._files import SSD_GRAPH, SSD_PBTXT
from opencrop.cues._runtime import BackendUnavailable, Lazy, has_module, log, note_once
from opencrop.cues.types import Detections
from opencrop.errors import ModelFileError
from opencrop.modelfiles import derived_dir, resolve, verify_derived, write_derived

__all__ = [
    "BACKENDS", "COCO_LABELS", "PRECISIONS", "PROPOSAL_SCORE", "backend", "convert_for_onnxruntime", "detect_objects",
    "detect_people", "detect_people_and_objects", "detect_with_proposals", "ensure_available", "precision",
    "proposals_of", "runtime",
]

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

#: the SSD runtimes, fastest first; ``OPENCROP_SSD_BACKEND`` picks one explicitly
BACKENDS = ("onnxruntime", "opencv")
#: class-head precisions on onnxruntime, the default first; ``OPENCROP_SSD_PRECISION`` picks one
PRECISIONS = ("int8", "fp32")
_SCORE_FLOOR = 0.05  # rows below this are never returned (every public threshold is higher)
_SSD_NMS = 0.6  # the model's own per-class NMS (detection_out in the .pbtxt), keep_top_k 100
_KEEP_TOP_K = 100


def _load_cv2():
    if not has_module("cv2"):
        raise BackendUnavailable(
            "OpenCV is not installed (pip install opencv-contrib-python-headless; opencrop depends on it)"
        )
    import cv2

    if not hasattr(cv2, "dnn"):
        raise BackendUnavailable("this OpenCV build has no dnn module")
    net = cv2.dnn.readNetFromTensorflow(str(resolve(SSD_GRAPH.name)), str(resolve(SSD_PBTXT.name)))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


_NET: Lazy = Lazy(_load_cv2)


@dataclass
class _Ort:
    #: graph name (:data:`opencrop.cues._ssd_onnx.GRAPHS`) → Lazy[onnxruntime.InferenceSession]: ``people*`` boxes
    #: + person scores only, ``full*`` boxes + the 80 class scores (for objects); ``*-int8`` int8 class heads
    sessions: dict[str, Lazy]


def _converted_paths() -> tuple[Path, ...]:
    """Cache paths of the converted graphs, in :data:`opencrop.cues._ssd_onnx.GRAPHS` order."""
    from opencrop.cues._ssd_onnx import GRAPHS, VERSION

    stem = f"ssd-mobilenet-v2-coco-{SSD_GRAPH.sha256[:12]}-onnx{VERSION}"
    d = derived_dir()
    return tuple(d / f"{stem}-{name}.onnx" for name in GRAPHS)


def _cache_conversion(path: Path, data: bytes) -> bool:
    try:
        write_derived(path, data)
        return True
    except OSError as e:  # read-only cache: keep the conversion in memory for this process
        log.warning("cues: cannot cache the converted SSD model at %s (%s); converting again next time", path, e)
        return False


def _verified(path: Path) -> bool:
    """Whether cached conversion ``path`` exists and matches its recorded sha256 (a damaged one is logged)."""
    if not path.is_file():
        return False
    try:
        verify_derived(path)
        return True
    except ModelFileError as e:
        log.warning("cues: %s; converting again", e)
        return False


def convert_for_onnxruntime(force: bool = False) -> tuple[bytes, ...]:
    """The ONNX conversions of the SSD model (:data:`opencrop.cues._ssd_onnx.GRAPHS`: people, full, and both with
    int8 class heads), from the cache or converted now (≈ 2 s).

    ``opencrop models fetch`` calls this, so the first crop does not pay for the conversion. The cached files are
    keyed by the source model's sha256 and the converter version and checked against the sha256 recorded when they
    were written (a damaged one is converted again); a missing or unwritable cache only costs time. The int8 graphs
    are quantised from the same float32 weights with fixed ranges (no calibration data): the same bytes every time.

    Raises:
        BackendUnavailable: the SSD model files or OpenCV (which reads the frozen graph) are missing.
    """
    paths = _converted_paths()
    if not force and all(_verified(p) for p in paths):
        return tuple(p.read_bytes() for p in paths)
    from opencrop.cues._ssd_onnx import convert

    graphs = convert(_load_cv2())  # a fresh net: the conversion runs a forward pass for the priors
    if all([_cache_conversion(p, data) for p, data in zip(paths, graphs, strict=True)]):
        for stale in paths[0].parent.glob("ssd-mobilenet-v2-coco-*.onnx*"):  # other versions or sources
            if stale.name.removesuffix(".sha256") not in {p.name for p in paths}:
                stale.unlink(missing_ok=True)
    return graphs


#: onnxruntime workers spin-wait between operators when True: ≈ 2 ms faster per pass alone, but next to the face
#: detector on 2 cores analyze() gets slower (faces + people 29.6 vs 21.7 ms; benchmarks/ssd_runtime.py)
_ALLOW_SPINNING = False


def _threads() -> int:
    """onnxruntime threads: ``OPENCROP_SSD_THREADS``, else one per usable core, at most 4."""
    env = os.environ.get("OPENCROP_SSD_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise BackendUnavailable(f"OPENCROP_SSD_THREADS={env!r}: give a positive integer")
        return int(env)
    from opencrop._threads import cpus

    return max(1, min(4, cpus()))


def precision() -> str:
    """The class heads' precision on onnxruntime: ``OPENCROP_SSD_PRECISION`` (``int8``, the default, or ``fp32``).

    Raises:
        BackendUnavailable: ``OPENCROP_SSD_PRECISION`` names neither.
    """
    env = os.environ.get("OPENCROP_SSD_PRECISION", "").strip().lower() or PRECISIONS[0]
    if env not in PRECISIONS:
        raise BackendUnavailable(f"OPENCROP_SSD_PRECISION={env!r}: choose one of {', '.join(PRECISIONS)}")
    return env


def _load_ort() -> _Ort:
    if not has_module("onnxruntime"):
        raise BackendUnavailable("onnxruntime is not installed")
    _threads()  # a bad OPENCROP_SSD_THREADS is reported now
    precision()  # and a bad OPENCROP_SSD_PRECISION
    from opencrop.cues._ssd_onnx import GRAPHS

    # each graph loaded when first needed
    return _Ort({name: Lazy(lambda i=i: _session(i)) for i, name in enumerate(GRAPHS)})


def _graph_name(objects: bool) -> str:
    """The converted graph a pass runs: ``people`` or ``full``, ``-int8`` unless ``fp32`` is selected.

    When the int8 graph cannot be loaded and ``OPENCROP_SSD_PRECISION`` is not set, the float32 graph runs instead
    (noted once in the log; :func:`runtime` says so); with ``OPENCROP_SSD_PRECISION=int8`` the error is raised.
    """
    name = "full" if objects else "people"
    if precision() == "fp32":
        return name
    try:
        _ORT.get().sessions[name + "-int8"].get()
        return name + "-int8"
    except BackendUnavailable as e:
        if os.environ.get("OPENCROP_SSD_PRECISION", "").strip():
            raise
        note_once(f"cues: the SSD's int8 class heads cannot run here ({e}); using float32 (≈ 1.7× slower)")
        return name


def runtime(objects: bool = True) -> str:
    """What runs the SSD pass (with ``objects``: the all-class pass; else the people pass), e.g.
    ``"onnxruntime, int8 class heads"``, ``"onnxruntime, float32"`` or ``"OpenCV dnn, float32"``.

    Raises:
        BackendUnavailable: no runtime can load the model here, or a setting is invalid.
    """
    if backend() == "opencv":
        return "OpenCV dnn, float32"
    return "onnxruntime, " + ("int8 class heads" if _graph_name(objects).endswith("-int8") else "float32")


def _session(which: int):
    """onnxruntime session for graph ``which`` (index into :data:`opencrop.cues._ssd_onnx.GRAPHS`), converting the
    SSD model first if needed.

    A cached conversion that onnxruntime rejects (damaged on disk) is converted again, once.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # analyze() starts this pass on a worker thread while the face detector runs; with as many threads as cores
    # it takes over both cores once faces are done (2 cores: analyze with the default cues 30.4 ms vs 34.7 with
    # 1 thread, faces + people a tie; benchmarks/ssd_runtime.py)
    opts.intra_op_num_threads = _threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if _ALLOW_SPINNING else "0")
    providers = ["CPUExecutionProvider"]
    path = _converted_paths()[which]
    if _verified(path):
        try:
            return ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            log.warning("cues: the cached SSD conversion %s cannot be loaded (%s); converting again", path, e)
    model = convert_for_onnxruntime(force=True)[which]
    try:
        return ort.InferenceSession(model, opts, providers=providers)
    except Exception as e:
        raise BackendUnavailable(f"onnxruntime cannot load the converted SSD model: {e}") from e


def ensure_available(objects: bool = False) -> None:
    """Load what :func:`detect_people` (or, with ``objects``, :func:`detect_objects`) needs, or raise.

    Raises:
        BackendUnavailable: why it cannot run here.
    """
    if backend() == "onnxruntime":
        _ORT.get().sessions[_graph_name(objects)].get()


_ORT: Lazy[_Ort] = Lazy(_load_ort)


def backend() -> str:
    """The SSD runtime in use: ``"onnxruntime"`` or ``"opencv"`` (``OPENCROP_SSD_BACKEND`` forces one).

    Raises:
        BackendUnavailable: no runtime can load the model here.
    """
    forced = os.environ.get("OPENCROP_SSD_BACKEND", "").strip().lower()
    if forced and forced not in BACKENDS:
        raise BackendUnavailable(f"OPENCROP_SSD_BACKEND={forced!r}: choose one of {', '.join(BACKENDS)}")
    if forced == "opencv":
        _NET.get()
        return "opencv"
    try:
        _ORT.get()
        return "onnxruntime"
    except BackendUnavailable as e:
        if forced:
            raise
        _NET.get()  # raises if OpenCV cannot run it either: then the cue is unavailable, no fallback note
        note_once(f"cues: SSD on onnxruntime unavailable ({e}); using OpenCV dnn (≈ 5× slower)")
        return "opencv"


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


def _raw(image: np.ndarray, objects: bool = True) -> np.ndarray:
    """Rows ``[K, 6]``: class id, score, x1, y1, x2, y2 normalised to ``image``; scores ≥ 0.05, after SSD's NMS.

    With ``objects=False`` only person rows are computed (onnxruntime: the person head only).
    """
    from opencrop.cues.faces import _check_image

    _check_image(image)
    import cv2

    padded, (ox, oy, pw, ph) = _pad_to_aspect(image, MAX_ASPECT)
    small = cv2.resize(padded, (300, 300), interpolation=cv2.INTER_LINEAR)  # what blobFromImage does
    rows = _rows_ort(small, objects) if backend() == "onnxruntime" else _rows_cv2(small, objects)
    h, w = image.shape[:2]
    # padded-normalised → image-normalised
    rows[:, [2, 4]] = (rows[:, [2, 4]] * pw - ox) / w
    rows[:, [3, 5]] = (rows[:, [3, 5]] * ph - oy) / h
    return rows


def _rows_cv2(small: np.ndarray, objects: bool) -> np.ndarray:
    import cv2

    net = _NET.get()
    blob = cv2.dnn.blobFromImage(small, swapRB=False)  # the image is RGB already, as the model wants
    with _NET.lock:
        net.setInput(blob)
        out = net.forward()[0, 0]
    rows = out[out[:, 2] >= _SCORE_FLOOR][:, 1:7].astype(np.float32)
    return rows if objects else rows[rows[:, 0] == 1]


def _rows_ort(small: np.ndarray, objects: bool) -> np.ndarray:
    """The rows OpenCV's ``detection_out`` would give: per-class NMS 0.6, at most 100 rows, best first."""
    from opencrop.cues._ssd_onnx import CLASS_IDS, decode

    lazy = _ORT.get().sessions[_graph_name(objects)]
    sess = lazy.get()
    if objects:
        with lazy.lock:
            loc, priors, scores = sess.run(["loc", "priors", "scores"], {"image": small[None]})
        anchor, col = np.nonzero(scores >= _SCORE_FLOOR)
        cls = np.asarray(CLASS_IDS, np.int64)[col]
        sc = scores[anchor, col]
    else:
        with lazy.lock:
            loc, priors, person = sess.run(["loc", "priors", "person"], {"image": small[None]})
        (anchor,) = np.nonzero(person >= _SCORE_FLOOR)
        cls = np.ones(len(anchor), np.int64)
        sc = person[anchor]
    boxes = decode(loc[anchor], priors[anchor])
    keep = nms(boxes + 2.0 * cls[:, None], sc, _SSD_NMS)[:_KEEP_TOP_K]  # offsets keep classes apart
    return np.concatenate([cls[keep, None], sc[keep, None], boxes[keep]], axis=1).astype(np.float32)


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
    return _people(_raw(image, objects=False), image, min_score)


def _people(rows: np.ndarray, image: np.ndarray, min_score: float) -> Detections:
    det = _to_detections(rows[(rows[:, 0] == 1) & (rows[:, 1] >= min_score)], image)
    if len(det) > 1:  # SSD's own NMS (0.6) lets through a few merged "two people" boxes
        keep = nms(det.boxes, det.scores, 0.5)
        det = Detections(det.boxes[keep], det.scores[keep], [det.labels[i] for i in keep])
    return det


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


#: the score from which a detection below its class's threshold is kept as an object proposal (any class; the
#: SSD's class may be wrong, its box still says "a thing"): starry_night.jpg's cypress is a 0.21 "bird"
PROPOSAL_SCORE = 0.2


def proposals_of(rows: np.ndarray, image: np.ndarray, min_person_score: float, min_object_score: float,
                 min_score: float = PROPOSAL_SCORE) -> Detections:
    """The SSD rows (``_raw``) scoring at least ``min_score`` but below their class's threshold, any class: boxes
    ``[N, 4]`` xyxy pixels of ``image``, best first."""
    thr = np.where(rows[:, 0] == 1, min_person_score, min_object_score)
    return _to_detections(rows[(rows[:, 1] >= min_score) & (rows[:, 1] < thr)], image)


def detect_with_proposals(image: np.ndarray, min_person_score: float = 0.5, min_object_score: float = 0.4
                          ) -> tuple[Detections, Detections, Detections]:
    """``(people, objects, proposals)`` from one SSD pass: :func:`detect_people_and_objects` and the weaker boxes
    (:func:`proposals_of`)."""
    rows = _raw(image)
    return (_people(rows, image, min_person_score), _objects(rows, image, min_object_score, False),
            proposals_of(rows, image, min_person_score, min_object_score))
