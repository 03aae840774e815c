"""Face detection: MediaPipe BlazeFace (short- and full-range) run directly with the ai-edge-litert interpreter.

No mediapipe import: the image is letterboxed to the model's square input, the SSD anchors are generated and the
raw regressors decoded here (the parameters of MediaPipe's ``face_detection_{short,full}_range`` graphs), and
overlapping detections are merged by weighted NMS as MediaPipe does.

Both models run by default and their detections are merged: short-range finds large, close faces (portraits),
full-range small and distant ones (groups). Full-range also runs on overlapping tiles (2×2 on a 512² image) so
that faces of 15–30 px in a 512 px group photo are seen at a size it detects; together about 10–16 ms at 512 px on
2 CPU threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from opencrop._threads import in_parallel
from opencrop.cues._files import FACE_FULL, FACE_SHORT
from opencrop.cues._runtime import Lazy, tflite_interpreter
from opencrop.cues.types import Detections
from opencrop.errors import ModelFileError
from opencrop.modelfiles import resolve

__all__ = ["PLAUSIBLE_SCORE", "detect_faces", "plausible_faces"]


@dataclass(frozen=True)
class _Spec:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_stride: tuple[int, ...]  # anchors per cell for each *distinct* stride
    threshold: float


# Score thresholds per source, chosen on scikit-image photos (tiled astronaut groups of 1-8 people against 12
# photos without faces): short 0.55 (0.50 fires on chelsea), full 0.6 (MediaPipe's own), tiles 0.75 (0.6-0.7
# fire on the rocket and the Hubble field). With them: 1/1, 2/2, 4/4, 6/6, 4/8 faces; 1 false face (the logo).
_SHORT = _Spec(FACE_SHORT.name, 128, (8, 16), (2, 6), 0.55)
_FULL = _Spec(FACE_FULL.name, 192, (4,), (1,), 0.6)

#: tiles for the full-range model: a side of at least TILE_FROM px is split in two overlapping halves
TILE_FROM = 384
TILE_OVERLAP = 0.25
TILE_THRESHOLD = 0.75
#: the tiles run only when some anchor of the whole-image full-range pass scores at least this: a 4 × 2 grid of
#: astronauts (faces of 20 px, found only by the tiles) peaks at 0.28; 14 of the 23 face-free photos of the subject
#: benchmark peak below 0.25 and skip the four tile passes (about half of the face detector's time)
TILE_GATE = 0.25


def _anchors(spec: _Spec) -> np.ndarray:
    """Anchor centres ``[A, 2]`` (x, y) normalised to the model input, in the model's output order."""
    out = []
    for stride, k in zip(spec.strides, spec.anchors_per_stride, strict=True):
        n = spec.size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        c = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(c, k, axis=0))
    return np.concatenate(out).astype(np.float32)


def _shrink(image: Image.Image, size: int) -> np.ndarray:
    """``image`` resized (bilinear, aspect kept) to fit a ``size × size`` square: ``[h, w, 3]`` uint8."""
    w, h = image.size
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # reducing_gap: a ≥ 4× shrink (short-range on 512 px) first box-averages 2×2: ~3× cheaper, same detections
    return np.asarray(image.resize((nw, nh), Image.BILINEAR, reducing_gap=2.0))


def _letterbox(small: np.ndarray, out: np.ndarray) -> tuple[int, int]:
    """Fill the model input ``out`` ``[1, S, S, 3]`` float32 in place: ``small`` (``[h, w, 3]`` uint8, ``h, w ≤ S``)
    centred and mapped to [−1, 1], padding −1. Returns ``(ox, oy)``, where ``small`` starts in the input."""
    s = out.shape[1]
    nh, nw = small.shape[:2]
    ox, oy = (s - nw) // 2, (s - nh) // 2
    out.fill(-1.0)
    view = out[0, oy : oy + nh, ox : ox + nw]
    np.divide(small, np.float32(127.5), out=view, dtype=np.float32)  # float32 maths: exactly x / 127.5 - 1
    view -= np.float32(1.0)
    return ox, oy


class _BlazeFace:
    def __init__(self, spec: _Spec) -> None:
        self.spec = spec
        self.it = tflite_interpreter(str(resolve(spec.file)))
        self.inp = self.it.get_input_details()[0]["index"]
        outs = sorted(self.it.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self.reg_idx, self.cls_idx = outs[0]["index"], outs[1]["index"]
        self.anchors = _anchors(spec)
        self._canvas = np.empty((1, spec.size, spec.size, 3), np.float32)  # model input, reused per call
        n_out = int(outs[0]["shape"][1])
        if n_out != len(self.anchors):
            raise ModelFileError(
                resolve(spec.file), f"{n_out} outputs but {len(self.anchors)} anchors: not the {spec.file} model"
            )

    def __call__(self, image: Image.Image, lock) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``[N, 4]`` xyxy pixels of ``image`` (PIL ``RGB``) and scores ``[N]`` (before NMS)."""
        return self.detect(_shrink(image, self.spec.size), image.size, lock)

    def detect(self, small: np.ndarray, orig: tuple[int, int], lock, peak: list[float] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``[N, 4]`` xyxy pixels of an ``orig`` ``(w, h)`` image and scores ``[N]`` (before NMS), from
        ``small``, that image shrunk by :func:`_shrink` to this network's input size. ``peak``: a list to which
        the highest anchor score (thresholded or not) is appended."""
        s = self.spec.size
        with lock:  # the input buffer is per network, like the interpreter
            ox, oy = _letterbox(small, self._canvas)
            self.it.set_tensor(self.inp, self._canvas)
            self.it.invoke()
            reg = self.it.get_tensor(self.reg_idx)[0].copy()
            logit = self.it.get_tensor(self.cls_idx)[0, :, 0].copy()
        score = 1.0 / (1.0 + np.exp(-np.clip(logit, -80.0, 80.0)))
        if peak is not None:
            peak.append(float(score.max()))
        keep = score >= self.spec.threshold
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        reg, score, anc = reg[keep], score[keep], self.anchors[keep]
        cx = reg[:, 0] / s + anc[:, 0]
        cy = reg[:, 1] / s + anc[:, 1]
        bw, bh = reg[:, 2] / s, reg[:, 3] / s
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * s  # model-input pixels
        boxes -= np.array([ox, oy, ox, oy], dtype=np.float32)
        boxes /= s / max(orig)
        return boxes.astype(np.float32), score.astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe-style weighted NMS: each kept box is the score-weighted mean of the boxes it suppresses.

    Args:
        boxes: ``[N, 4]`` xyxy. scores: ``[N]``. iou: overlap above which boxes are merged.
    Returns:
        boxes ``[M, 4]`` and scores ``[M]`` (the best score of each cluster), best first.
    """
    from opencrop.boxes import box_iou

    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    ious = box_iou(boxes, boxes)
    used = np.zeros(len(boxes), dtype=bool)
    out_b, out_s = [], []
    for i in range(len(boxes)):
        if used[i]:
            continue
        members = (~used) & (ious[i] > iou)
        members[i] = True
        used |= members
        wts = scores[members][:, None]
        out_b.append((boxes[members] * wts).sum(0) / wts.sum())
        out_s.append(scores[i])
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.asarray(out_b, np.float32), np.asarray(out_s, np.float32)


_SHORT_NET: Lazy[_BlazeFace] = Lazy(lambda: _BlazeFace(_SHORT))
_FULL_NET: Lazy[_BlazeFace] = Lazy(lambda: _BlazeFace(_FULL))


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles ``(x1, y1, x2, y2)`` covering a ``w × h`` image: halves along each side ≥ TILE_FROM."""

    def spans(n: int) -> list[tuple[int, int]]:
        if n < TILE_FROM:
            return [(0, n)]
        t = min(n, round(n / 2 * (1 + TILE_OVERLAP)))
        return [(0, t), (n - t, n)]

    xs, ys = spans(w), spans(h)
    if len(xs) == len(ys) == 1:
        return []
    return [(x1, y1, x2, y2) for y1, y2 in ys for x1, x2 in xs]


def _tile_detections(b: np.ndarray, s: np.ndarray, tile: tuple[int, int, int, int], w: int, h: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Full-range detections ``b`` ``[N, 4]`` (xyxy pixels of ``tile`` of a ``w × h`` image), ``s`` ``[N]`` → those
    above TILE_THRESHOLD and not within 2 px of an inner tile edge (likely cut faces), in image pixels."""
    x1, y1, x2, y2 = tile
    b, s = b[s >= TILE_THRESHOLD], s[s >= TILE_THRESHOLD]
    inner = np.array([x1 > 0, y1 > 0, x2 < w, y2 < h])
    edge = np.array([2.0, 2.0, x2 - x1 - 2.0, y2 - y1 - 2.0])
    touch = ((b[:, :2] <= edge[:2]) & inner[:2]).any(1) | ((b[:, 2:] >= edge[2:]) & inner[2:]).any(1)
    return b[~touch] + np.array([x1, y1, x1, y1], dtype=np.float32), s[~touch]


def _tiles_over_faceless(tiles: list[tuple[int, int, int, int]], people: np.ndarray | None, boxes: np.ndarray,
                         scores: np.ndarray, min_score: float) -> list[tuple[int, int, int, int]]:
    """``tiles``, or none when they cannot add a face: the people (``[P, 4]`` xyxy; ``None``: unknown, the tiles
    run) each hold a face centre of ``boxes`` (``[N, 4]`` xyxy, the whole-image detections whose ``scores [N]``
    are at least ``min_score``) and those detections are not a group (at most one face after NMS). A group always
    gets its tiles: in a 3 × 2 astronaut grid the SSD misses one of six people, whose face only a tile finds."""
    if people is None:
        return tiles
    p = np.asarray(people, np.float64).reshape(-1, 4)
    keep = np.asarray(scores) >= min_score
    f = np.asarray(boxes, np.float64).reshape(-1, 4)[keep]
    if len(f) > 1:
        from opencrop.boxes import nms

        if len(nms(f, np.asarray(scores, np.float64)[keep], 0.3)) > 1:
            return tiles
    if len(f) and len(p):
        cx, cy = (f[:, 0] + f[:, 2]) / 2, (f[:, 1] + f[:, 3]) / 2
        has_face = ((cx[None] >= p[:, :1]) & (cx[None] <= p[:, 2:3]) & (cy[None] >= p[:, 1:2])
                    & (cy[None] <= p[:, 3:4])).any(axis=1)
        p = p[~has_face]
    return tiles if len(p) else []

def detect_faces(
    image: np.ndarray, min_score: float = 0.5, ranges: tuple[str, ...] = ("short", "full"), tiles: bool = True,
    people: Callable[[], np.ndarray | None] | None = None,
) -> Detections:
    """Faces in ``image`` (``[H, W, 3]`` uint8 RGB).

    Args:
        image: the analysis image, typically ≤ 512 px on its long side.
        min_score: drop merged detections below this score.
        ranges: which BlazeFace models to run (``"short"``, ``"full"``); their detections are merged.
        tiles: also run full-range on overlapping tiles (small faces in group photos), when the whole-image
            full-range pass shows anything face-like (:data:`TILE_GATE`).
        people: optional; gives the person boxes ``[P, 4]`` (xyxy pixels of ``image``) or ``None`` when unknown,
            called only when the tiles would run. The tiles are then skipped when the whole-image passes found at
            most one face and every person box holds a face (a photo without people, a portrait): small faces
            belong to groups and to detected people.
    Returns:
        :class:`Detections` with boxes ``[N, 4]`` xyxy float pixels of ``image``, clipped to it, scores ``[N]``,
        labels ``"face"``; best first.
    Raises:
        BackendUnavailable: ai-edge-litert or the model files are missing (``analyze`` turns this into a note).
    """
    _check_image(image)
    h, w = image.shape[:2]
    nets = {"short": _SHORT_NET, "full": _FULL_NET}
    pil = Image.fromarray(image)  # once for every pass and tile
    # passes: (network, tile or None for the whole image); the whole-image shrinks run first, on two threads, the
    # tiles' only once the gates below let them run
    passes: list[tuple[Lazy[_BlazeFace], tuple[int, int, int, int] | None]] = []
    for r in ranges:
        nets[r].get()  # a missing backend raises here, before any work
        passes.append((nets[r], None))
        if r == "full" and tiles:
            passes += [(nets[r], t) for t in _tiles(w, h)]
    whole = [p for p in passes if p[1] is None]
    smalls = in_parallel([functools.partial(_shrink, pil, lz.get().spec.size) for lz, _ in whole])
    all_b, all_s = [np.zeros((0, 4), np.float32)], [np.zeros((0,), np.float32)]
    gate: list[float] = []
    for (lazy, _), small in zip(whole, smalls, strict=True):
        b, s = lazy.get().detect(small, pil.size, lazy.lock, peak=gate if lazy is _FULL_NET else None)
        all_b.append(b)
        all_s.append(s)
    tiled = [t for _, t in passes if t is not None]
    if tiled and (not gate or max(gate) < TILE_GATE):
        tiled = []  # nothing face-like in the whole-image full-range pass: no small faces to look for
    if tiled and people is not None:
        tiled = _tiles_over_faceless(tiled, people(), np.concatenate(all_b), np.concatenate(all_s), min_score)
    if tiled:
        full = _FULL_NET.get()
        regions = [pil.crop(t) for t in tiled]
        tsmalls = in_parallel([functools.partial(_shrink, im, full.spec.size) for im in regions])
        for tile, im, small in zip(tiled, regions, tsmalls, strict=True):
            b, s = full.detect(small, im.size, _FULL_NET.lock)
            b, s = _tile_detections(b, s, tile, w, h)
            all_b.append(b)
            all_s.append(s)
    boxes, scores = np.concatenate(all_b), np.concatenate(all_s)
    if len(boxes):
        boxes, scores = weighted_nms(boxes, scores)
    boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
    ok = (scores >= min_score) & (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
    return Detections(boxes[ok], scores[ok], ["face"] * int(ok.sum()))


#: a face detection at least this confident is plausible on its own (unless it lies on an animal); below it a face
#: must agree with a detected person. Chosen on the subject benchmark's photos (benchmarks/subject.py): false faces
#: on a dahlia 0.61, an apple 0.62, a squirrel 0.60, a dog 0.56; real faces without a person box 0.86-0.95.
PLAUSIBLE_SCORE = 0.75


def plausible_faces(faces: Detections, people: Detections | None = None, objects: Detections | None = None,
                    min_score: float = PLAUSIBLE_SCORE) -> np.ndarray:
    """``bool [F]``: which of ``faces`` are plausible enough to become hard rules (never cut a head).

    A face is plausible when its centre lies in a detected person box at least as wide as the face (person-box
    agreement), or when its score is at least ``min_score`` and its centre is not on a detected animal
    (:data:`opencrop.cues.constraints.ANIMALS`) outside every person. BlazeFace fires at 0.55-0.65 on flowers,
    fruit and animal faces; those stay detections (shown by ``--debug``) but protect nothing. Boxes: xyxy pixels
    of one image.
    """
    from opencrop.cues.constraints import ANIMALS

    f = np.asarray(faces.boxes, np.float64).reshape(-1, 4)
    if len(f) == 0:
        return np.zeros(0, bool)
    cx, cy, fw = (f[:, 0] + f[:, 2]) / 2, (f[:, 1] + f[:, 3]) / 2, f[:, 2] - f[:, 0]

    def inside(b: np.ndarray) -> np.ndarray:  # [F, B]: face centre in box b, box at least face-wide
        b = np.asarray(b, np.float64).reshape(-1, 4)
        return ((cx[:, None] >= b[None, :, 0]) & (cx[:, None] <= b[None, :, 2]) & (cy[:, None] >= b[None, :, 1])
                & (cy[:, None] <= b[None, :, 3]) & (b[None, :, 2] - b[None, :, 0] >= fw[:, None]))

    in_person = inside(people.boxes).any(axis=1) if people is not None and len(people) else np.zeros(len(f), bool)
    on_animal = np.zeros(len(f), bool)
    if objects is not None and len(objects):
        animal = np.array([lab in ANIMALS for lab in objects.labels[: len(objects)]], bool)
        if animal.any():
            on_animal = inside(objects.boxes[animal]).any(axis=1)
    strong = np.asarray(faces.scores, np.float64) >= min_score
    return in_person | (strong & ~on_animal)


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise ValueError(f"image must be an [H, W, 3] uint8 RGB array, got {got}")
