"""Cut constraints: pure, vectorised scores of candidate crops against faces and people.

Convention: every box is ``[..., 4]`` **xyxy float pixels of the same image** (``x2 > x1``, ``y2 > y1``,
continuous coordinates). Candidates are ``boxes [N, 4]``; faces ``[F, 4]``; people ``[P, 4]``. Nothing here
loads a model; the composition model calls these on thousands of candidates at once.

Vocabulary:

* a face is **kept** by a crop if it lies inside it, allowing each side to stick out by ``tol`` × the face's
  width (left/right) or height (top/bottom);
* **dropped** if the crop leaves at most ``tol`` of it along x or y (it is simply not in the picture);
* **cut** otherwise: partly in, partly out. A cut face is never acceptable; a dropped one may be (a stranger at
  the edge), which is the composition model's call.

All weights are in :data:`WEIGHTS` below, the one place to tune them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ANIMALS",
    "VEHICLES",
    "WEIGHTS",
    "CutTerms",
    "CutWeights",
    "body_cut_penalty",
    "face_cut",
    "face_drop",
    "face_terms",
    "fit_heads",
    "group_box",
    "group_fit",
    "head_boxes",
    "object_cut_penalty",
]

#: COCO classes (:data:`opencrop.cues.objects.COCO_LABELS`) protected like people: a cut through one is penalised
ANIMALS = frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
                     "teddy bear"})
VEHICLES = frozenset({"bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"})


@dataclass(frozen=True)
class CutWeights:
    """Every weight and proportion used by the cut constraints (documented in ``docs/cues.md``).

    Person box regions (keypoint-free): the head is the top ``head_frac`` of a person box, the feet the bottom
    ``feet_frac``, the body the rest. ``body_cut_penalty`` of one person is
    ``min(1, any_cut + head·lost_head + feet·lost_feet + body·lost_body)`` where ``lost_*`` is the fraction of that
    region outside the crop and ``any_cut`` is charged once for any cut at all; people are weighed by
    ``(area / largest person area) ** size_power`` and the worst person sets the penalty.
    ``head_pad_*`` enlarge a tight detector face box to the whole head (hair, forehead, chin) for ``head_boxes``.
    """

    head_frac: float = 0.20
    feet_frac: float = 0.10
    head: float = 0.60
    feet: float = 0.35
    body: float = 0.25
    any_cut: float = 0.10
    size_power: float = 0.5
    head_pad_top: float = 0.60  # 0.45 cut the hair or cap of 3 of 4 heads marked in benchmarks/subject_marks.json
    head_pad_side: float = 0.15
    head_pad_bottom: float = 0.10


WEIGHTS = CutWeights()


@dataclass
class CutTerms:
    """Per-candidate face terms: ``cut [N]`` / ``dropped [N]`` (any face), counts ``n_cut``, ``n_dropped``,
    ``n_kept`` ``[N]`` int, and the pairwise ``state [N, F]`` int8: 0 kept, 1 cut, 2 dropped."""

    cut: np.ndarray
    dropped: np.ndarray
    n_cut: np.ndarray
    n_dropped: np.ndarray
    n_kept: np.ndarray
    state: np.ndarray


def _as_boxes(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name} must have shape [K, 4] (xyxy pixels), got {a.shape}")
    return a


def face_terms(boxes: np.ndarray, faces: np.ndarray, tol: float = 0.02) -> CutTerms:
    """Classify every (candidate, face) pair as kept, cut or dropped (see the module docstring).

    Args:
        boxes: candidates ``[N, 4]`` xyxy pixels. faces: ``[F, 4]`` xyxy pixels (pass :func:`head_boxes` of the
            detector boxes to protect hair and chin too). tol: slack as a fraction of the face's width/height.
    Returns:
        :class:`CutTerms` (with ``F = 0`` nothing is cut or dropped).
    """
    b = _as_boxes(boxes, "boxes")[:, None, :]  # [N, 1, 4]
    f = _as_boxes(faces, "faces")[None, :, :]  # [1, F, 4]
    fw = np.maximum(f[..., 2] - f[..., 0], 1e-9)
    fh = np.maximum(f[..., 3] - f[..., 1], 1e-9)
    # how far the face sticks out of the crop on each side, in face widths/heights  [N, F]
    out_x = np.maximum(np.maximum(b[..., 0] - f[..., 0], 0), np.maximum(f[..., 2] - b[..., 2], 0)) / fw
    out_y = np.maximum(np.maximum(b[..., 1] - f[..., 1], 0), np.maximum(f[..., 3] - b[..., 3], 0)) / fh
    # overlap along each axis, in face widths/heights
    ov_x = np.clip(np.minimum(b[..., 2], f[..., 2]) - np.maximum(b[..., 0], f[..., 0]), 0, None) / fw
    ov_y = np.clip(np.minimum(b[..., 3], f[..., 3]) - np.maximum(b[..., 1], f[..., 1]), 0, None) / fh
    kept = (out_x <= tol) & (out_y <= tol)
    dropped = ~kept & ((ov_x <= tol) | (ov_y <= tol))
    cut = ~kept & ~dropped
    state = np.where(kept, 0, np.where(cut, 1, 2)).astype(np.int8)
    return CutTerms(
        cut=cut.any(axis=1),
        dropped=dropped.any(axis=1),
        n_cut=cut.sum(axis=1),
        n_dropped=dropped.sum(axis=1),
        n_kept=kept.sum(axis=1),
        state=state,
    )


def face_cut(boxes: np.ndarray, faces: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """``bool [N]``: True where candidate ``boxes[n]`` cuts at least one face (partly in, partly out)."""
    return face_terms(boxes, faces, tol).cut


def face_drop(boxes: np.ndarray, faces: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """``bool [N]``: True where candidate ``boxes[n]`` leaves at least one face entirely out (not cut)."""
    return face_terms(boxes, faces, tol).dropped


def group_fit(boxes: np.ndarray, faces: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """``bool [N]``: True where candidate ``boxes[n]`` keeps **every** face (none cut, none dropped).

    ``group_fit(...).any()`` tells whether the whole group fits in any candidate; when it does not, the cropper
    must choose whom to drop (never whom to cut). With no faces every candidate fits.
    """
    return face_terms(boxes, faces, tol).n_kept == len(_as_boxes(faces, "faces"))


def group_box(faces: np.ndarray) -> np.ndarray | None:
    """The smallest box ``[4]`` holding all ``faces [F, 4]`` (xyxy), or ``None`` when ``F = 0``."""
    f = _as_boxes(faces, "faces")
    if len(f) == 0:
        return None
    return np.array([f[:, 0].min(), f[:, 1].min(), f[:, 2].max(), f[:, 3].max()])


def head_boxes(faces: np.ndarray, weights: CutWeights = WEIGHTS) -> np.ndarray:
    """Tight detector face boxes ``[F, 4]`` grown to whole heads (hair, forehead, chin): ``[F, 4]`` xyxy.

    BlazeFace boxes run from the eyebrows to the chin; cutting just above them still beheads. Not clipped to the
    image (a head box may leave it; clip with :func:`opencrop.boxes.clip_boxes` where needed).
    """
    f = _as_boxes(faces, "faces")
    w, h = f[:, 2] - f[:, 0], f[:, 3] - f[:, 1]
    return np.stack(
        [
            f[:, 0] - weights.head_pad_side * w,
            f[:, 1] - weights.head_pad_top * h,
            f[:, 2] + weights.head_pad_side * w,
            f[:, 3] + weights.head_pad_bottom * h,
        ],
        axis=1,
    )


def _inside_frac(b: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Fraction of each region ``r [1, P, 4]`` inside each box ``b [N, 1, 4]``: ``[N, P]``."""
    iw = np.clip(np.minimum(b[..., 2], r[..., 2]) - np.maximum(b[..., 0], r[..., 0]), 0, None)
    ih = np.clip(np.minimum(b[..., 3], r[..., 3]) - np.maximum(b[..., 1], r[..., 1]), 0, None)
    area = np.maximum((r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1]), 1e-9)
    return iw * ih / area


def body_cut_penalty(
    boxes: np.ndarray,
    people: np.ndarray,
    scores: np.ndarray | None = None,
    tol: float = 0.02,
    weights: CutWeights = WEIGHTS,
) -> np.ndarray:
    """How badly each candidate cuts through people: ``float [N]`` in [0, 1] (0 = nobody cut).

    Keypoint-free: each person box ``[P, 4]`` is split into head (top 20 %), feet (bottom 10 %) and body; losing
    head or feet costs more than trimming the sides (weights in :class:`CutWeights`). A person entirely inside
    (each side within ``tol`` of the box size) or entirely outside (at most ``tol`` visible) costs nothing here:
    dropping is not cutting. Each person's penalty is scaled by ``scores [P]`` (detector confidence, default 1)
    and by relative size, and the worst person sets the candidate's penalty.
    """
    b = _as_boxes(boxes, "boxes")[:, None, :]
    p = _as_boxes(people, "people")
    if len(p) == 0:
        return np.zeros(len(b), dtype=np.float32)
    x1, y1, x2, y2 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    ph = y2 - y1
    yh, yf = y1 + weights.head_frac * ph, y2 - weights.feet_frac * ph
    head = np.stack([x1, y1, x2, yh], axis=1)[None]
    feet = np.stack([x1, yf, x2, y2], axis=1)[None]
    body = np.stack([x1, yh, x2, yf], axis=1)[None]
    whole = p[None]
    vis = _inside_frac(b, whole)
    lost_h, lost_f, lost_b = 1 - _inside_frac(b, head), 1 - _inside_frac(b, feet), 1 - _inside_frac(b, body)
    cut_state = face_terms(boxes, p, tol).state == 1  # partly in, partly out, with the same tolerance rule
    cut_state &= vis > tol
    pen = weights.any_cut + weights.head * lost_h + weights.feet * lost_f + weights.body * lost_b
    pen = np.where(cut_state, np.minimum(pen, 1.0), 0.0)
    area = (x2 - x1) * ph
    imp = (area / max(float(area.max()), 1e-9)) ** weights.size_power
    if scores is not None:
        imp = imp * np.clip(np.asarray(scores, dtype=np.float64), 0, 1)
    return (pen * imp[None]).max(axis=1).astype(np.float32)


def fit_heads(heads: np.ndarray, faces: np.ndarray, win_w: float, win_h: float, margin: float = 0.98) -> np.ndarray:
    """Head boxes ``[F, 4]`` (xyxy) that a ``win_w × win_h`` window can hold: a head that does not fit becomes the
    face box (``faces [F, 4]``, the tight detector boxes) plus as much of the head as fits (``margin`` × the window):
    vertically the chin and half the padding below it first, then the forehead and hair (a frame may trim the
    top of the hair or a cap, never the chin), horizontally
    centred on the face. A face larger than the window is centred on itself. Heads that fit are returned as they are.
    """
    h = _as_boxes(heads, "heads").copy()
    f = _as_boxes(faces, "faces")
    if len(h) != len(f):
        raise ValueError(f"{len(h)} heads but {len(f)} faces")
    th = np.minimum(h[:, 3] - h[:, 1], margin * win_h)  # target height, width
    tw = np.minimum(h[:, 2] - h[:, 0], margin * win_w)
    fh, fw = f[:, 3] - f[:, 1], f[:, 2] - f[:, 0]
    # vertical: the face, then up to half the padding below it (the chin), then above, then the rest below
    y2 = np.minimum(f[:, 3] + np.maximum(th - fh, 0), f[:, 3] + 0.5 * np.maximum(h[:, 3] - f[:, 3], 0))
    y1 = np.maximum(h[:, 1], y2 - th)
    y2 = np.minimum(h[:, 3], np.maximum(y2, y1 + th))
    small = fh > th  # the face alone is taller than the window: keep its middle (the eyes are in its upper half)
    y1 = np.where(small, f[:, 1] + (fh - th) * 0.4, y1)
    y2 = np.where(small, y1 + th, y2)
    cx = (f[:, 0] + f[:, 2]) / 2
    x1 = np.clip(cx - tw / 2, h[:, 0], np.maximum(h[:, 2] - tw, h[:, 0]))
    x1 = np.where(fw > tw, cx - tw / 2, x1)
    return np.stack([x1, y1, x1 + tw, y2], axis=1)


def object_cut_penalty(
    boxes: np.ndarray,
    objects: np.ndarray,
    scores: np.ndarray | None = None,
    tol: float = 0.02,
    weights: CutWeights = WEIGHTS,
    best: np.ndarray | None = None,
    holders: np.ndarray | None = None,
) -> np.ndarray:
    """How badly each candidate cuts through protected objects: ``float [N]`` in [0, 1].

    Like :func:`body_cut_penalty` without the head / feet regions (an object's parts are not known): a cut object
    costs ``min(1, any_cut + head · lost)`` where ``lost`` is the fraction of its box outside the crop, scaled by
    its score and relative size; wholly inside or wholly outside costs nothing. ``objects [P, 4]`` xyxy.

    ``best [P]``: the largest fraction of each object a window of the candidates' size can hold (1 for an object
    that fits). An object larger than the window is then cut only when the crop keeps less of it than fits (by
    more than ``tol``), and ``lost`` is measured from what fits: trimming it cannot be avoided, keeping less of it
    than the frame allows can.

    ``holders [P, 4]``: for an object held by a larger subject (a ball in a player's box; a row of NaN for none),
    a crop that keeps part of the holder and leaves the object out cuts the pair: it costs as a cut losing all of
    the object (when the object fits the window).
    """
    b = _as_boxes(boxes, "boxes")[:, None, :]
    p = _as_boxes(objects, "objects")
    if len(p) == 0:
        return np.zeros(len(b), dtype=np.float32)
    vis = _inside_frac(b, p[None])
    if best is None:
        cut_state = (face_terms(boxes, p, tol).state == 1) & (vis > tol)
        lost = 1 - vis
    else:
        fits = np.clip(np.asarray(best, np.float64).reshape(1, -1), 1e-9, 1.0)
        lost = np.clip(1 - vis / fits, 0.0, 1.0)
        cut_state = (lost > tol) & (vis > tol)
    hb = None if holders is None else np.asarray(holders, np.float64).reshape(-1, 4)
    has = np.zeros(len(p), bool) if hb is None else np.isfinite(hb).all(axis=1)
    if has.any():
        held_vis = _inside_frac(b, np.where(has[:, None], hb, 0.0)[None])
        fits = np.ones(len(p)) if best is None else np.asarray(best, np.float64).reshape(-1)
        dropped = (vis <= tol) & has[None] & (held_vis > tol) & (fits[None] >= 1 - tol)
        cut_state = cut_state | dropped
        lost = np.where(dropped, 1.0, lost)
    pen = np.where(cut_state, np.minimum(weights.any_cut + weights.head * lost, 1.0), 0.0)
    area = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    imp = (area / max(float(area.max()), 1e-9)) ** weights.size_power
    if scores is not None:
        imp = imp * np.clip(np.asarray(scores, dtype=np.float64), 0, 1)
    return (pen * imp[None]).max(axis=1).astype(np.float32)
