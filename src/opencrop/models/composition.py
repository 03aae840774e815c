"""The default crop model: composition without a learned CNN.

score(crop) = Σ weight · term, every term listed once in :data:`WEIGHTS` (higher is better):

* ``layout``  — the layout model learned from GAICD-v1 human judgments (:mod:`opencrop.layout`): crop geometry
  and the crop's relation to the image's subject boxes → per-image-normalised MOS (z-score, ≈ −2…2).
  Subject boxes are detections (people, faces, objects, each object with the small salient parts sticking out of
  its box: :func:`object_extents`) when the cues give them, else salient regions (their connected extent) and the
  detector's weaker object proposals (:func:`proposals_in`), both when the detections are details of a scene, each
  cut to the part the ratio's largest window can keep (:func:`fit_subjects`: the top of a tall subject, the most
  salient part of a wide one, of its top half for an animal: its head end; the middle of a symmetric one).
* ``keep``    — fraction of the image's saliency mass inside the crop (0…1).
* ``cut``     — saliency on the crop's inner borders, the mean over the four edges of the strongest salient
  response along each edge that lies inside the image (0…1): an edge must not slice through a subject.
* ``busy``    — gradient energy along the crop's inner borders relative to the image mean (≈ 0…3): simple borders.
* ``focus``   — for a user ``focus`` point: 1 − distance of the point from the crop centre, in crop half-sizes.
* ``subject`` — for user ``subjects`` boxes: the fraction of their area kept (must-keep subjects).
* ``face_cut``  — 1 if the crop cuts through a detected head (face box grown to the whole head), 0 otherwise
  (:func:`opencrop.cues.constraints.face_cut`). The API also enforces it as a hard rule.
* ``body_cut``  — how badly the crop cuts detected people, heads and feet weighing most
  (:func:`opencrop.cues.constraints.body_cut_penalty`, 0…1).
* ``object_cut`` — the same for detected objects that are not scenery (animals, vehicles, a ball, a cup) and for
  salient regions when they stand for the subject (:data:`REGION_PROTECT`), measured from the most of each the
  frame can hold (:func:`opencrop.cues.constraints.object_cut_penalty`).
* ``fit``     — how much of the photo's subject the crop keeps compared with the best largest window of its ratio:
  ``f = mass inside / best mass`` of the subject map (detected people, animals, vehicles, objects and plausible
  heads as boxes; the saliency map when nothing is detected; a salient region wider than the window whose edges
  mirror about an axis read as symmetric about it: :func:`symmetry_axis`, :func:`mirrored_map`), scored
  ``min(f, 1) − 2 · max(0, 0.9 − f)`` so that losing more than a tenth of what fits costs steeply.
* ``centre``  — distance of the subject map's centre of mass inside the crop from the crop centre, in crop
  widths / heights (0…0.7): a lone subject is never pushed to the edge.
* ``top``     — the share of the subject map above the crop (within its columns): a frame that must trim a tall
  subject trims its foot rather than its top (a head, a roof, a stem).
* ``scale``   — ``sqrt(crop area / largest window area)``: the largest window that frames the subject wins unless
  the other terms give a reason to zoom in.

All inputs are ``[N, 4]`` xyxy float pixels of the analysis image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from opencrop.cues.types import Cues, Detections
from opencrop.models.base import CandidateScorer, pixels_of
from opencrop.models.registry import register_model
from opencrop.rules import kept_fraction

__all__ = ["SCENERY", "SYMMETRY", "WEIGHTS", "CompositionModel", "Prepared", "fit_subjects", "head_boxes_in",
           "held_by", "kept_fraction", "mirrored_map", "object_extents", "proposals_in", "protected_objects",
           "salient_regions", "subject_map", "symmetry_axis"]

#: the one place where the terms' weights live
WEIGHTS: dict[str, float] = {
    "layout": 1.0,
    "keep": 2.0,
    "cut": 3.0,
    "busy": 0.3,
    "focus": 6.0,  # as much as a user subject (issue 13)
    "subject": 6.0,
    "face_cut": 8.0,
    "body_cut": 3.0,
    "object_cut": 3.0,
    "fit": 4.0,
    "scale": 1.0,
    "centre": 2.0,
    "top": 2.0,
}

#: COCO classes that are scenery, not a subject (a table under a cup, a bed under a cat)
SCENERY = frozenset({"dining table", "bed", "couch", "bench", "toilet", "refrigerator", "oven", "sink"})

def _gray(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _resize_to(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map or an ``[H, W, 3]`` uint8 image to ``size`` ``(w, h)``, as float32."""
    if a.ndim == 3:
        return np.asarray(Image.fromarray(a[..., :3]).resize(size, Image.Resampling.BILINEAR), np.float32)
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR))


#: how far above the saliency map's mean (in standard deviations) a salient region starts: at 1 the blob of
#: china.jpg's pagoda missed its roof's tip and left side, and the layout model trimmed them (subject benchmark,
#: 2026-12-07: 0.6 / 0.75 / 0.8 / 0.85 / 0.9 / 1.0 → 88.0 / 88.8 / 88.0 / 89.6 / 88.8 / 86.4 % of crops good)
REGION_STD = 0.75


#: salient regions (when they stand for the subject: nothing detected, or only details) are protected from cuts
#: like detected objects (``object_cut``), weighing this × their share of the salient mass (subject benchmark,
#: 2026-12-07: 0.3 / 0.5 / 0.7 / 1 → 89.6 / 89.6 / 88.8 / 88.8 % good, retina's optic disc cut from 0.7 on)
REGION_PROTECT = 0.4


def salient_regions(sal: np.ndarray, width: float, height: float, max_regions: int = 3) -> tuple[
        np.ndarray, np.ndarray]:
    """Boxes ``[S, 4]`` xyxy (pixels of a ``width × height`` image) around the strongest salient blobs, and
    their weights (share of the salient mass, summing to ≤ 1). Blobs are connected components of
    ``sal > max(0.5, mean + REGION_STD · std)``; components under 0.5 % of the image are dropped."""
    thr = max(0.5, float(sal.mean() + REGION_STD * sal.std()))
    mask = ndimage.binary_opening(sal > thr, iterations=1)
    lab, n = ndimage.label(mask)
    if n == 0:
        return np.zeros((0, 4)), np.zeros(0)
    idx = np.arange(1, n + 1)
    mass = ndimage.sum_labels(sal, lab, idx)
    area = ndimage.sum_labels(np.ones_like(sal), lab, idx)
    objs = ndimage.find_objects(lab)
    keep = area >= 0.005 * sal.size
    order = [i for i in np.argsort(-mass) if keep[i]][:max_regions]
    if not order:
        return np.zeros((0, 4)), np.zeros(0)
    sy, sx = height / sal.shape[0], width / sal.shape[1]
    cells = np.array([[objs[i][1].start, objs[i][0].start, objs[i][1].stop, objs[i][0].stop] for i in order], float)
    low, _ = _extent_labels(sal)
    for k, i in enumerate(order):
        cells[k] = _extent(cells[k], low, np.unique(low[lab == i + 1]))
    weights = mass[order] / max(float(mass[keep].sum()), 1e-9)
    return cells * np.array([sx, sy, sx, sy]), weights


#: a salient blob's (or a detection's) connected extent is where the saliency map stays above its mean +
#: ``EXTENT_STD`` · std, connected to it: the strong core of china.jpg's pagoda (``REGION_STD``) missed its left
#: side, and the layout model placed the blob off-centre and trimmed the roof (subject benchmark, 2026-12-07)
EXTENT_STD = 0.4

#: the most an extent grows a box per side, as a fraction of the box's width / height
EXTENT_MAX = 0.25


def _extent_labels(sal: np.ndarray) -> tuple[np.ndarray, int]:
    """The connected components of ``sal`` above its mean + :data:`EXTENT_STD` · std (``ndimage.label``: labels
    ``int [H', W']``, 0 = none, and their count): the weaker salient area a blob or a detection extends into."""
    return ndimage.label(sal > sal.mean() + EXTENT_STD * sal.std())


def _extent(box: np.ndarray, low: np.ndarray, ids: np.ndarray, stop_at_edge: bool = True) -> np.ndarray:
    """``box`` (xyxy map cells) grown to the components ``ids`` of the labelled low-threshold map ``low`` (0 is
    no component), by at most :data:`EXTENT_MAX` of its size per side, and (``stop_at_edge``) not on a side where
    they run into the image's edge while the box does not (there the extent is the background: a tree, the sky,
    a floor)."""
    ids = ids[ids > 0]
    if not len(ids):
        return box
    ys, xs = np.nonzero(np.isin(low, ids))
    mh, mw = low.shape
    e = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
    edge = np.array([e[0] <= 0 < box[0], e[1] <= 0 < box[1], e[2] >= mw > box[2], e[3] >= mh > box[3]])
    e = np.where(edge & stop_at_edge, box, e)
    gw, gh = EXTENT_MAX * (box[2] - box[0]), EXTENT_MAX * (box[3] - box[1])
    return np.array([max(min(e[0], box[0]), box[0] - gw), max(min(e[1], box[1]), box[1] - gh),
                     min(max(e[2], box[2]), box[2] + gw), min(max(e[3], box[3]), box[3] + gh)])


#: a salient region wider than the window whose gradients mirror about a vertical axis at least this well
#: (:func:`symmetry_axis`, a correlation −1…1) is a symmetric thing, a building, a flower, a vase: the subject map
#: takes it as symmetric about that axis (:func:`mirrored_map`), so the window that must trim it keeps its middle,
#: not the side where saliency happens to peak (china.jpg's pagoda: the map's mass sat on the lower right eave and
#: the pink sky beside it, and 9:16 trimmed the roof's left eave). Subject benchmark, 2026-12-07, on the 64 px map:
#: the pagoda 0.65, the dahlia 0.73; the largest regions of the other photos 0.24 (retina), 0.26 (leuvenA), 0.34
#: (building), 0.42 (starry_night's cypress, narrower than every window); 0 / 0.2 / 0.3 / 0.4 / 0.5 / 0.6 / 0.7
#: → 97.6 / 97.6 / 98.4 / 98.4 / 98.4 / 98.4 / 97.6 % of crops good (up to 0.2 retina 9:16 cuts the optic disc;
#: 0.7 misses the pagoda)
SYMMETRY = 0.5

#: the axis is looked for in the middle of the region's box, at least this share of its width from either side
#: (an axis near a side mirrors a few columns and matches by chance)
SYMMETRY_SPAN = 0.25


def symmetry_axis(gx: np.ndarray, box: np.ndarray) -> tuple[float, float]:
    """The vertical axis about which the horizontal gradient ``gx`` (``[H', W']``, signed, a grid over the image)
    inside ``box`` (xyxy grid cells) mirrors best, and how well: ``(axis, strength)``, the axis in grid cells (on a
    cell's centre or edge), the strength the correlation of each column with minus its mirror image (a mirrored
    edge flips its ``gx``), normalised, over the rows of the box and the box's half width either side of the axis;
    ``(nan, 0)`` when the box is too narrow. Only ``gx`` counts: a horizontal edge (a line of text, a staff, a
    roof's ridge) is its own mirror about every vertical axis and says nothing about where the axis is. Axes are
    tried in the middle of the box (:data:`SYMMETRY_SPAN`)."""
    mh, mw = gx.shape
    r1, r2 = int(np.clip(np.floor(box[1]), 0, mh - 1)), int(np.clip(np.ceil(box[3]), 1, mh))
    a = gx[r1:max(r2, r1 + 1)].astype(np.float64)
    pair = -(a.T @ a)  # [W', W']: column c against column c' mirrored
    energy = np.concatenate([[0.0], np.cumsum((a * a).sum(axis=0))])  # cumulative over the columns
    half = (box[2] - box[0]) / 2
    lo, hi = box[0] + SYMMETRY_SPAN * (box[2] - box[0]), box[2] - SYMMETRY_SPAN * (box[2] - box[0])
    a2 = np.arange(int(np.ceil(2 * lo)), int(np.floor(2 * hi)) + 1)  # the axes, at a2 / 2 cells
    if not len(a2):
        return float("nan"), 0.0
    # the left columns c of axis a2 (their mirror a2 − 1 − c on the right): from c_lo to c_hi
    c_lo = np.maximum.reduce([np.zeros_like(a2), np.ceil(a2 / 2 - 0.5 - half - 1e-9).astype(int), a2 - mw])
    c_hi = (a2 - 2) // 2
    ok = c_hi - c_lo >= 1
    cols = np.arange(mw)[:, None]
    q = np.where((a2[None, :] - 1 - cols >= 0) & (a2[None, :] - 1 - cols < mw),
                 pair[cols, np.clip(a2[None, :] - 1 - cols, 0, mw - 1)], 0.0)  # [W', A]
    cq = np.concatenate([np.zeros((1, len(a2))), np.cumsum(q, axis=0)])
    c_lo, c_hi = np.clip(c_lo, 0, mw - 1), np.clip(c_hi, 0, mw - 1)
    idx = np.arange(len(a2))
    num = cq[c_hi + 1, idx] - cq[c_lo, idx]
    el = energy[c_hi + 1] - energy[c_lo]
    er = energy[np.clip(a2 - c_lo, 0, mw)] - energy[np.clip(a2 - 1 - c_hi, 0, mw)]
    v = np.where(ok, num / (np.sqrt(el * er) + 1e-12), -np.inf)
    k = int(np.argmax(v))
    return (a2[k] / 2, float(v[k])) if np.isfinite(v[k]) and v[k] > 0 else (float("nan"), 0.0)


def mirrored_map(m: np.ndarray, box: np.ndarray, axis: float) -> np.ndarray:
    """``m`` (``[H', W']``) with the rows of ``box`` (xyxy grid cells) averaged with their mirror image about the
    vertical ``axis`` (grid cells, on a cell's centre or edge) out to the box's farther side (as far as the map
    reaches on the other): the same mass, symmetric about the axis."""
    mh, mw = m.shape
    r1, r2 = int(np.clip(np.floor(box[1]), 0, mh - 1)), int(np.clip(np.ceil(box[3]), 1, mh))
    a2 = round(2 * axis)
    reach = max(axis - box[0], box[2] - axis)
    cols = np.arange(mw)
    twin = a2 - 1 - cols
    sel = (np.abs(cols + 0.5 - axis) <= reach) & (twin >= 0) & (twin < mw)
    out = m.copy()
    out[r1:r2, cols[sel]] = 0.5 * (m[r1:r2, cols[sel]] + m[r1:r2, twin[sel]])
    return out


#: a salient part sticking out of a detected object (a stem above an apple's box) is a part of it when it is small
#: (its box at most this share of the object's box area) and at least ``PART_INSIDE`` of it lies in the box
PART_AREA = 0.25
PART_INSIDE = 0.2
#: ... and when it ends within this share of the box's size from the box (what reaches further is the background
#: it touches: the shelf above stereo_motorcycle's handlebar)
PART_REACH = 0.15


def object_extents(boxes: np.ndarray, sal: np.ndarray, width: float, height: float) -> np.ndarray:
    """Detected object boxes ``[P, 4]`` (xyxy pixels of a ``width × height`` image) grown to hold the small
    salient parts that stick out of them (:data:`PART_AREA`, :data:`PART_INSIDE`; at most :data:`EXTENT_MAX` of
    the box per side, :func:`_extent`): a detector's box is an estimate, and the SSD's apple box leaves the stem
    out. Parts are components of the saliency map ``sal`` (any grid over the image) above its mean +
    :data:`EXTENT_STD` · std."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(b):
        return b
    mh, mw = sal.shape
    sx, sy = mw / width, mh / height
    low, n = _extent_labels(sal)
    if n == 0:
        return b
    objs = ndimage.find_objects(low)
    size = ndimage.sum_labels(np.ones_like(sal), low, np.arange(1, n + 1))
    out = b.copy()
    for k, (x1, y1, x2, y2) in enumerate(b * np.array([sx, sy, sx, sy])):
        c1, r1 = int(np.clip(np.floor(x1), 0, mw - 1)), int(np.clip(np.floor(y1), 0, mh - 1))
        c2, r2 = int(np.clip(np.ceil(x2), c1 + 1, mw)), int(np.clip(np.ceil(y2), r1 + 1, mh))
        ids = np.unique(low[r1:r2, c1:c2])
        ids = ids[ids > 0]
        inside = ndimage.sum_labels(np.ones((r2 - r1, c2 - c1)), low[r1:r2, c1:c2], ids)
        area = np.array([(objs[i - 1][0].stop - objs[i - 1][0].start) * (objs[i - 1][1].stop - objs[i - 1][1].start)
                         for i in ids], float)
        gw, gh = PART_REACH * (x2 - x1), PART_REACH * (y2 - y1)
        near = np.array([objs[i - 1][1].start >= x1 - gw and objs[i - 1][0].start >= y1 - gh
                         and objs[i - 1][1].stop <= x2 + gw and objs[i - 1][0].stop <= y2 + gh for i in ids], bool)
        part = ids[(inside >= PART_INSIDE * size[ids - 1]) & (inside < size[ids - 1]) & near
                   & (area <= PART_AREA * (x2 - x1) * (y2 - y1))]
        cell = np.array([x1, y1, x2, y2])
        out[k] = _extent(cell, low, part, stop_at_edge=False) / np.array([sx, sy, sx, sy])
    # a side the detector saw inside the picture stays inside it (:data:`EDGE`: fit_subjects keeps its top)
    lo, hi = EDGE * np.array([width, height]) * 1.01, np.array([width, height]) * (1 - EDGE * 1.01)
    out[:, :2] = np.where(b[:, :2] > lo, np.maximum(out[:, :2], lo), out[:, :2])
    out[:, 2:] = np.where(b[:, 2:] < hi, np.minimum(out[:, 2:], hi), out[:, 2:])
    return out


def _subject_integrals(smap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integral images of a subject map, of map · column and of map · row (cell centres): its mass and centre of
    mass over any box."""
    return (_integral(smap), _integral(smap * (np.arange(smap.shape[1]) + 0.5)[None, :]),
            _integral(smap * (np.arange(smap.shape[0]) + 0.5)[:, None]))


def _integral(a: np.ndarray) -> np.ndarray:
    ii = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    ii[1:, 1:] = a.cumsum(0).cumsum(1)
    return ii


def _rect_sum(ii: np.ndarray, x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """Sums over ``[y1, y2) × [x1, x2)`` of the map behind integral image ``ii`` (integer map coordinates)."""
    return ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]


@dataclass
class Prepared:
    """What :meth:`CompositionModel.prepare` computes once per image."""

    width: int
    height: int
    saliency: np.ndarray
    sal_ii: np.ndarray
    grad_ii: np.ndarray
    grad_mean: float
    subjects: np.ndarray
    subject_weights: np.ndarray
    heads: np.ndarray
    people: np.ndarray
    people_scores: np.ndarray
    cues: Cues | None = None
    notes: list[str] = field(default_factory=list)
    objects: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # protected (animals, vehicles) [P, 4]
    object_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    subject_ii: np.ndarray | None = None  # integral image of the subject map (saliency-map cells)
    subject_xii: np.ndarray | None = None  # integral images of map · column and map · row (centre of mass)
    subject_yii: np.ndarray | None = None
    best_fit: dict[float, float] = field(default_factory=dict)  # ratio → best subject mass of a largest window
    n_detected: int = 0  # subjects[:n_detected] are detections, the rest salient regions
    holders: np.ndarray | None = None  # [P, 4] the person box holding each protected object (NaN: none)
    subject: np.ndarray | None = None  # the subject map (saliency-map cells, sums to 1)
    # [S - n_detected] each salient region's axis of symmetry (saliency-map cells; NaN: not symmetric)
    region_axes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # which regions are mirrored → integral images of that subject map, map · column, map · row (per ratio)
    mirrored: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)


class CompositionModel(CandidateScorer):
    """Default crop model: the learned layout model plus content terms; see the module docstring."""

    name = "composition"
    needs = frozenset({"faces", "people", "objects", "saliency"})

    def __init__(self, layout: str | Path | None = None, weights: dict[str, float] | None = None,
                 use_layout: bool = True) -> None:
        self.weights = {**WEIGHTS, **(weights or {})}
        self.layout = None
        if use_layout is not False:
            from opencrop.layout import LayoutModel, default_model_path

            self.layout = LayoutModel.load(layout or default_model_path())

    # -- analysis -------------------------------------------------------------------------------------------
    def prepare(self, frame: object, cues: Cues | None = None) -> Prepared:
        """Saliency, gradient and subject maps of ``frame`` (a :class:`~opencrop.io.Frame` or ``[H, W, 3]``
        uint8 analysis pixels)."""
        image = pixels_of(frame)
        h, w = image.shape[:2]
        if cues is not None and cues.saliency is not None:
            sal = cues.saliency.astype(np.float32)
            small = _resize_to(image, (sal.shape[1], sal.shape[0]))
        else:  # one shrink serves the saliency map and the gradient map
            from opencrop.cues.saliency import saliency_of, shrink

            small = shrink(image)
            sal = saliency_of(small)
        g = _gray(small)
        gy, gx = ndimage.sobel(g, 0), ndimage.sobel(g, 1)
        grad = np.hypot(gy, gx)
        if cues is not None and len(cues.objects):  # the model sees each object with its salient parts
            ob = cues.objects
            keep = np.array([lab not in SCENERY for lab in ob.labels[: len(ob)]], bool)
            grown = ob.boxes.astype(np.float64).copy()
            grown[keep] = object_extents(grown[keep], sal, w, h)
            cues = replace(cues, objects=Detections(grown.astype(np.float32), ob.scores, list(ob.labels), ob.masks))
        subjects, sw, n_det, share = self._subjects(sal, w, h, cues)
        heads = head_boxes_in(cues, w, h)
        people = cues.people.boxes.astype(np.float64) if cues is not None and len(cues.people) else np.zeros((0, 4))
        pscores = cues.people.scores.astype(np.float64) if len(people) else np.zeros(0)
        prot, pscore = protected_objects(cues)
        holders = held_by(prot, people)
        if len(subjects) > n_det:  # salient regions stand for the subject: a cut through one costs like an object's
            prot = np.concatenate([prot, subjects[n_det:]])
            pscore = np.concatenate([pscore, REGION_PROTECT * share])
            holders = np.concatenate([holders, np.full((len(subjects) - n_det, 4), np.nan)])
        smap = subject_map(sal, w, h, cues)
        cell = np.array([sal.shape[1] / w, sal.shape[0] / h] * 2)
        axes = np.full(len(subjects) - n_det, np.nan)
        for k, b in enumerate(subjects[n_det:]):
            a, strength = symmetry_axis(gx, b * cell)
            if strength >= SYMMETRY:
                axes[k] = a
        ii, xii, yii = _subject_integrals(smap)
        return Prepared(w, h, sal, _integral(sal), _integral(grad), float(grad.mean()) + 1e-6, subjects, sw,
                        heads, people, pscores, cues, objects=prot, object_scores=pscore, subject_ii=ii,
                        subject_xii=xii, subject_yii=yii, n_detected=n_det, holders=holders, subject=smap,
                        region_axes=axes)

    @staticmethod
    def _subjects(sal: np.ndarray, w: int, h: int, cues: Cues | None
                  ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """Subject boxes for the layout model: detected people and objects (faces as a fallback) when present,
        else salient regions; both when the detections are details of a scene (covering, confidence-weighted, less
        than half of :data:`DETAIL_AREA`: saliency then takes most of :func:`subject_map`). Weights are the
        detection scores (salient regions: 1) — the layout model weighs subjects by their area itself and was
        trained with unit weights. Then the number of detections (they come first) and the salient regions' shares
        of the salient mass (:func:`salient_regions`; they come last)."""
        if cues is not None:
            parts = [(d, THRESHOLDS[k]) for k, d in (("people", cues.people), ("objects", cues.objects)) if len(d)]
            if not parts and len(cues.faces):
                parts = [(_plausible(cues), 0.5)]
            parts = [(d, t) for d, t in parts if len(d)]
            if parts:
                boxes = np.concatenate([d.boxes for d, _ in parts]).astype(np.float64)
                sc = np.concatenate([d.scores for d, _ in parts]).astype(np.float64)
                conf = np.concatenate([_margin(d.scores, t) for d, t in parts])
                area = np.clip(boxes[:, 2] - boxes[:, 0], 0, w) * np.clip(boxes[:, 3] - boxes[:, 1], 0, h)
                # details of a scene (saliency takes most of subject_map): its salient regions are subjects too
                if float((area * conf).sum()) < 0.5 * DETAIL_AREA * w * h:
                    rb, share = salient_regions(sal, w, h)
                    return (np.concatenate([boxes, rb]), np.clip(np.concatenate([sc, np.ones(len(rb))]), 1e-3, 1.0),
                            len(boxes), share)
                return boxes, np.clip(sc, 1e-3, 1.0), len(boxes), np.zeros(0)
        boxes, share = salient_regions(sal, w, h)
        pb = proposals_in(cues, w, h)
        if len(pb):  # nothing detected: the SSD's weaker boxes are subjects beside the salient regions
            boxes = np.concatenate([pb, boxes])
            share = np.concatenate([np.full(len(pb), PROPOSAL_WEIGHT / len(pb)), (1 - PROPOSAL_WEIGHT) * share])
        return boxes, np.ones(len(boxes)), 0, share

    def candidates(self, prepared: Prepared, ratio: float | None) -> np.ndarray:
        """The sliding windows of ``ratio`` plus every position of its largest window along the free axis at a
        stride of at most 2 px (``[N, 4]`` xyxy analysis pixels): a head that barely fits the largest window fits
        only a few of its positions."""
        boxes = super().candidates(prepared, ratio)
        if ratio is None:
            return boxes
        w, h = prepared.width, prepared.height
        ww, hh = min(w, h * ratio), min(h, w / ratio)
        free = max(w - ww, h - hh)
        if free < 1:
            return boxes
        t = np.linspace(0.0, free, int(np.ceil(free / 2)) + 1)
        x1, y1 = (t, np.zeros_like(t)) if w - ww > h - hh else (np.zeros_like(t), t)
        return np.concatenate([boxes, np.stack([x1, y1, x1 + ww, y1 + hh], axis=1)])

    # -- scoring --------------------------------------------------------------------------------------------
    def terms(self, p: Prepared, boxes: np.ndarray) -> dict[str, np.ndarray]:
        """Each term of the score for ``boxes`` ``[N, 4]`` (xyxy analysis pixels), unweighted."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        # the request's aspect (one request has one; the median tolerates a stray box): sizes the largest window
        r = float(np.median((boxes[:, 2] - boxes[:, 0]) / np.maximum(boxes[:, 3] - boxes[:, 1], 1e-9))) if n else 1.0
        mh, mw = p.saliency.shape
        sx, sy = mw / p.width, mh / p.height
        # a box thinner than one map cell still covers one cell (extreme aspects: 1000:1 ratios, 57:1 images)
        x1 = np.clip(np.floor(boxes[:, 0] * sx + 0.5), 0, mw - 1).astype(int)
        y1 = np.clip(np.floor(boxes[:, 1] * sy + 0.5), 0, mh - 1).astype(int)
        x2 = np.clip(np.floor(boxes[:, 2] * sx + 0.5), 0, mw).astype(int)
        y2 = np.clip(np.floor(boxes[:, 3] * sy + 0.5), 0, mh).astype(int)
        x2, y2 = np.maximum(x2, x1 + 1), np.maximum(y2, y1 + 1)
        total = p.sal_ii[-1, -1] + 1e-9
        out: dict[str, np.ndarray] = {"keep": _rect_sum(p.sal_ii, x1, y1, x2, y2) / total}
        # border strips just inside each edge (~3 % of the map); an edge on the image border cuts nothing
        t = max(1, round(max(mh, mw) / 32))
        strips = [
            (x1, y1, np.minimum(x1 + t, x2), y2, x1 > 0),           # left
            (np.maximum(x2 - t, x1), y1, x2, y2, x2 < mw),          # right
            (x1, y1, x2, np.minimum(y1 + t, y2), y1 > 0),           # top
            (x1, np.maximum(y2 - t, y1), x2, y2, y2 < mh),          # bottom
        ]
        cut = np.zeros(n)
        busy = np.zeros(n)
        for a1, b1, a2, b2, inside in strips:
            area = np.maximum((a2 - a1) * (b2 - b1), 1)
            s_mean = _rect_sum(p.sal_ii, a1, b1, a2, b2) / area
            g_mean = _rect_sum(p.grad_ii, a1, b1, a2, b2) / area
            cut += np.where(inside, s_mean, 0.0)
            busy += np.where(inside, g_mean / p.grad_mean, 0.0)
        out["cut"] = cut / 4
        out["busy"] = busy / 4
        if self.layout is not None:
            from opencrop.layout import layout_features

            feats = layout_features(boxes, p.width, p.height, self._fitted_subjects(p, r), p.subject_weights)
            out["layout"] = self.layout.predict(feats)
        else:
            out["layout"] = np.zeros(n)
        from opencrop.cues.constraints import body_cut_penalty, face_cut, object_cut_penalty

        out["face_cut"] = face_cut(boxes, self._heads_for(p, r)).astype(np.float64) if len(p.heads) else \
            np.zeros(n)
        out["body_cut"] = (body_cut_penalty(boxes, p.people, p.people_scores).astype(np.float64) if len(p.people)
                           else np.zeros(n))
        out["object_cut"] = (object_cut_penalty(boxes, p.objects, p.object_scores, best=self._fits(p, r, p.objects),
                                                holders=p.holders).astype(np.float64) if len(p.objects)
                             else np.zeros(n))
        if p.subject_ii is not None and n:
            sii, sxii, syii = self._subject_for(p, r)
            f = _rect_sum(sii, x1, y1, x2, y2) / max(self._best_mass(p, r), 1e-9)
            out["fit"] = np.minimum(f, 1.0) - 2.0 * np.maximum(0.0, 0.9 - f)
            mass = np.maximum(_rect_sum(sii, x1, y1, x2, y2), 1e-12)
            u = (_rect_sum(sxii, x1, y1, x2, y2) / mass - x1) / (x2 - x1)
            v = (_rect_sum(syii, x1, y1, x2, y2) / mass - y1) / (y2 - y1)
            out["centre"] = np.hypot(u - 0.5, v - 0.5)
            cols = np.maximum(_rect_sum(sii, x1, np.zeros_like(y1), x2, np.full_like(y2, mh)), 1e-12)
            out["top"] = _rect_sum(sii, x1, np.zeros_like(y1), x2, y1) / cols
        big_w = min(p.width, p.height * r)
        out["scale"] = np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) / max(big_w, 1e-9), 0, 1))
        cues = p.cues
        if cues is not None and cues.focus is not None:
            fx, fy = cues.focus
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            hw, hh = (boxes[:, 2] - boxes[:, 0]) / 2, (boxes[:, 3] - boxes[:, 1]) / 2
            d = np.hypot((fx - cx) / hw, (fy - cy) / hh)
            out["focus"] = 1.0 - np.minimum(d, 2.0)
        if cues is not None and len(cues.subjects):
            out["subject"] = kept_fraction(boxes, cues.subjects.astype(np.float64)).mean(axis=1)
        return out

    @staticmethod
    def _heads_for(p: Prepared, r: float) -> np.ndarray:
        """The heads the largest window of aspect ``r`` can hold (:func:`fit_heads`)."""
        from opencrop.cues.constraints import fit_heads

        ww, hh = min(p.width, p.height * r), min(p.height, p.width / r)
        return fit_heads(p.heads, _plausible(p.cues).boxes.astype(np.float64), ww, hh)

    @staticmethod
    def _fitted_subjects(p: Prepared, r: float) -> np.ndarray:
        """The layout model's subject boxes as the largest window of aspect ``r`` can show them
        (:func:`fit_subjects`; people are left as they are: their heads have their own rules)."""
        if not len(p.subjects):
            return p.subjects
        ww, hh = min(p.width, p.height * r), min(p.height, p.width / r)
        cues = p.cues
        faces = cues.faces.boxes.astype(np.float64) if cues is not None and len(cues.faces) else np.zeros((0, 4))
        which = np.ones(len(p.subjects), bool)
        n_people = len(cues.people) if cues is not None else 0
        which[: min(n_people, len(which))] = False  # _subjects puts the people first, salient regions last
        across = np.arange(len(p.subjects)) < p.n_detected
        ok = None
        if len(faces):
            from opencrop.cues.faces import plausible_faces

            ok = plausible_faces(cues.faces, cues.people, cues.objects)
        axes = np.full(len(p.subjects), np.nan)  # the salient regions' axes of symmetry, in pixels
        axes[p.n_detected:p.n_detected + len(p.region_axes)] = p.region_axes * p.width / p.saliency.shape[1]
        return fit_subjects(p.subjects, faces, ww, hh, p.width, p.height, p.saliency, which, across,
                            _animals(p.cues, len(p.subjects), p.n_detected), ok, axes)

    @staticmethod
    def _fits(p: Prepared, r: float, objs: np.ndarray) -> np.ndarray:
        """``[P]`` the largest fraction of each of ``objs`` (xyxy) that the largest window of aspect ``r`` can hold:
        1 where it fits."""
        ww, hh = min(p.width, p.height * r), min(p.height, p.width / r)
        ow = np.clip(objs[:, 2], 0, p.width) - np.clip(objs[:, 0], 0, p.width)
        oh = np.clip(objs[:, 3], 0, p.height) - np.clip(objs[:, 1], 0, p.height)
        return np.minimum(1.0, ww / np.maximum(ow, 1e-9)) * np.minimum(1.0, hh / np.maximum(oh, 1e-9))

    @staticmethod
    def _subject_for(p: Prepared, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The integral images of the subject map as the largest window of aspect ``r`` reads it
        (:func:`_subject_integrals`): with every symmetric salient region wider than the window mirrored about its
        axis (:data:`SYMMETRY`, :func:`mirrored_map`; cached), else the map itself."""
        assert p.subject_ii is not None and p.subject_xii is not None and p.subject_yii is not None
        ww = min(p.width, p.height * r)
        regions = p.subjects[p.n_detected:]
        which = tuple(k for k, a in enumerate(p.region_axes)
                      if np.isfinite(a) and regions[k, 2] - regions[k, 0] > ww + 1e-6)
        if not which or p.subject is None:
            return p.subject_ii, p.subject_xii, p.subject_yii
        if which not in p.mirrored:
            m = p.subject
            cell = np.array([m.shape[1] / p.width, m.shape[0] / p.height] * 2)
            for k in which:
                m = mirrored_map(m, regions[k] * cell, float(p.region_axes[k]))
            p.mirrored[which] = _subject_integrals(m)
        return p.mirrored[which]

    @classmethod
    def _best_mass(cls, p: Prepared, r: float) -> float:
        """Most subject-map mass (:meth:`_subject_for`) a largest window of aspect ``r`` holds (cached per
        aspect)."""
        r = round(r, 3)
        if r not in p.best_fit:
            ii = cls._subject_for(p, r)[0]
            mh, mw = ii.shape[0] - 1, ii.shape[1] - 1
            ww = min(mw, max(1, round(min(p.width, p.height * r) * mw / p.width)))
            hh = min(mh, max(1, round(min(p.height, p.width / r) * mh / p.height)))
            xs, ys = np.arange(mw - ww + 1), np.arange(mh - hh + 1)
            gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
            p.best_fit[r] = float(_rect_sum(ii, gx, gy, gx + ww, gy + hh).max())
        return p.best_fit[r]

    def score(self, prepared: Prepared, boxes: np.ndarray) -> np.ndarray:
        """``[N]`` scores of ``boxes`` ``[N, 4]`` xyxy analysis pixels (higher is better)."""
        t = self.terms(prepared, boxes)
        sign = {"cut": -1.0, "busy": -1.0, "face_cut": -1.0, "body_cut": -1.0, "object_cut": -1.0,
                "centre": -1.0, "top": -1.0}
        return sum(sign.get(k, 1.0) * self.weights[k] * v for k, v in t.items())


def _plausible(cues: Cues | None) -> Detections:
    """The plausible faces of ``cues`` (:func:`opencrop.cues.faces.plausible_faces`), the ones rules protect."""
    if cues is None or not len(cues.faces):
        return Detections()
    from opencrop.cues.faces import plausible_faces

    ok = plausible_faces(cues.faces, cues.people, cues.objects)
    f = cues.faces
    return Detections(f.boxes[ok], f.scores[ok], [lab for lab, k in zip(f.labels, ok, strict=False) if k])


def _animals(cues: Cues | None, n: int, n_detected: int) -> np.ndarray:
    """``bool [n]``: which of :meth:`CompositionModel._subjects`' ``n`` boxes are detected animals
    (:data:`opencrop.cues.constraints.ANIMALS`; the detections come first, people before objects)."""
    from opencrop.cues.constraints import ANIMALS

    out = np.zeros(n, bool)
    if cues is None or not (len(cues.people) or len(cues.objects)):
        return out  # no detections, or faces standing in for them
    labels = [*cues.people.labels[: len(cues.people)], *cues.objects.labels[: len(cues.objects)]]
    for i in range(min(n, n_detected, len(labels))):
        out[i] = labels[i] in ANIMALS
    return out


#: the share of an animal's box, from its top, where its head is looked for when the whole animal is wider than
#: the window: standing, sitting or lying, seen from the side or the front, an animal's head is in the upper part
#: of its box, and saliency over the whole box peaks on its body (chelsea at 9:16: the most salient window-wide
#: part of the cat was its middle, between the eyes, and the crop trimmed both; subject benchmark, 2026-12-07:
#: 0.4 / 0.5 / 0.6 → 91.2 / 91.2 / 89.6 % of crops good, 1 (the whole box, as before) 89.6 %)
ANIMAL_HEAD = 0.5

#: a subject box whose top edge lies within this share of the image height from the image's top is cut by the
#: photo itself: its top is not the subject's top
EDGE = 0.02


def fit_subjects(subjects: np.ndarray, faces: np.ndarray, win_w: float, win_h: float, width: float,
                 height: float, sal: np.ndarray | None = None, which: np.ndarray | None = None,
                 across: np.ndarray | None = None, animal: np.ndarray | None = None,
                 plausible: np.ndarray | None = None, axes: np.ndarray | None = None) -> np.ndarray:
    """Subject boxes ``[S, 4]`` (xyxy pixels of a ``width × height`` image) cut to what a ``win_w × win_h``
    window can hold, the way :func:`opencrop.cues.constraints.fit_heads` fits a head. A subject taller than the
    window keeps its top (a roof, a stem, the eyes: a frame trims the foot) when the top lies in the picture (more
    than :data:`EDGE` of the height below the image's top), from a little above the largest detected face inside
    it when there is one (an animal's face: its top less a quarter of its height; only the faces ``plausible``
    (``bool [F]``, default all) count for a box that is not an ``animal``: BlazeFace's "face" on an apple is no
    anchor); otherwise it is left as it is.
    A subject wider than the window keeps the part around that face, else the part centred on its axis of
    symmetry when it has one (``axes``, ``[S]`` x pixels, NaN: none; :data:`SYMMETRY`), else the part holding the
    most of the saliency map ``sal`` (any grid over the image) inside the box — for the boxes ``animal``
    (``bool [S]``) inside the top :data:`ANIMAL_HEAD` of the box, where the head is, not the body — else its middle.
    Only the boxes ``which`` (``bool [S]``, default all) are fitted, and across (along x) only the boxes ``across``
    (default all: salient regions, already the salient part, are left their width) and those with an axis; boxes
    that fit are unchanged. The layout model, trained on subjects that a crop can keep whole, then places the part
    that can be kept instead of centring an overflowing box (which trims both its ends alike)."""
    s = np.asarray(subjects, np.float64).reshape(-1, 4).copy()
    f = np.asarray(faces, np.float64).reshape(-1, 4)
    for i, b in enumerate(s):
        if which is not None and not which[i]:
            continue
        tall = b[3] - b[1] > win_h
        axis = float(axes[i]) if axes is not None else float("nan")
        wide = b[2] - b[0] > win_w and (across is None or bool(across[i]) or np.isfinite(axis))
        if not (tall or wide):
            continue
        # an implausible face (BlazeFace on an apple, a flower) is an animal's face or nothing
        ok = [j for j in range(len(f)) if plausible is None or plausible[j] or (animal is not None and animal[i])]
        inside = [f[j] for j in ok if kept_fraction(b[None], f[j][None])[0, 0] >= 0.8]
        face = max(inside, key=lambda q: (q[2] - q[0]) * (q[3] - q[1])) if inside else None
        if tall:
            y1 = None
            if face is not None:
                y1 = float(np.clip(face[1] - 0.25 * (face[3] - face[1]), b[1], b[3] - win_h))
            elif b[1] > EDGE * height:
                y1 = float(b[1])
            if y1 is not None:
                s[i, 1], s[i, 3] = y1, y1 + win_h
        if wide:
            if face is not None:
                x1 = (face[0] + face[2]) / 2 - win_w / 2
            elif np.isfinite(axis):  # a symmetric thing: its middle
                x1 = axis - win_w / 2
            elif sal is not None:
                part = b.copy()
                if animal is not None and animal[i]:
                    part[3] = part[1] + ANIMAL_HEAD * (part[3] - part[1])
                x1 = _most_salient_span(sal, part, win_w, width, height)
            else:
                x1 = (b[0] + b[2]) / 2 - win_w / 2
            x1 = float(np.clip(x1, b[0], b[2] - win_w))
            s[i, 0], s[i, 2] = x1, x1 + win_w
    return s


def _most_salient_span(sal: np.ndarray, box: np.ndarray, span: float, width: float, height: float) -> float:
    """Left edge (pixels) of the ``span``-wide part of ``box`` (xyxy pixels) holding the most of ``sal``."""
    mh, mw = sal.shape
    r1, r2 = int(np.clip(box[1] * mh / height, 0, mh - 1)), int(np.clip(np.ceil(box[3] * mh / height), 1, mh))
    c1, c2 = int(np.clip(box[0] * mw / width, 0, mw - 1)), int(np.clip(np.ceil(box[2] * mw / width), 1, mw))
    cols = sal[r1:max(r2, r1 + 1), c1:max(c2, c1 + 1)].sum(axis=0).astype(np.float64)
    k = max(1, min(len(cols), round(span * mw / width)))
    sums = np.convolve(cols, np.ones(k), mode="valid")
    return (c1 + int(np.argmax(sums))) * width / mw


def head_boxes_in(cues: Cues | None, width: float, height: float) -> np.ndarray:
    """Plausible detected faces grown to whole heads (:func:`opencrop.cues.constraints.head_boxes`), clipped to
    the ``width × height`` image so that a head at the image edge can still count as kept: ``[F, 4]`` xyxy
    pixels, in the order of :func:`_plausible`."""
    faces = _plausible(cues)
    if not len(faces):
        return np.zeros((0, 4))
    from opencrop.boxes import clip_boxes
    from opencrop.cues.constraints import head_boxes

    return clip_boxes(head_boxes(faces.boxes.astype(np.float64)), width, height)


def held_by(objects: np.ndarray, people: np.ndarray, inside: float = 0.8) -> np.ndarray:
    """``[P, 4]``: for each object (xyxy) the smallest person box (xyxy) holding at least ``inside`` of it (a ball
    in a player's hands, a cup in a hand), or a row of NaN."""
    out = np.full((len(objects), 4), np.nan)
    if not len(objects) or not len(people):
        return out
    k = kept_fraction(np.asarray(people, np.float64), np.asarray(objects, np.float64))  # [Pe, P]
    area = (people[:, 2] - people[:, 0]) * (people[:, 3] - people[:, 1])
    for j in range(len(objects)):
        who = np.flatnonzero(k[:, j] >= inside)
        if len(who):
            out[j] = people[who[np.argmin(area[who])]]
    return out


def protected_objects(cues: Cues | None) -> tuple[np.ndarray, np.ndarray]:
    """Detected objects that are not scenery (:data:`SCENERY`): ``[P, 4]`` xyxy analysis pixels and their weights
    ``[P]``, the confidence above the detector's threshold (:func:`_margin`). Cut like bodies: a ball, a cup or a
    vase sliced by the frame is as wrong as a sliced animal or vehicle (issue 13)."""
    if cues is None or not len(cues.objects):
        return np.zeros((0, 4)), np.zeros(0)
    keep = np.array([lab not in SCENERY for lab in cues.objects.labels[: len(cues.objects)]], bool)
    return (cues.objects.boxes[keep].astype(np.float64),
            _margin(cues.objects.scores[keep], THRESHOLDS["objects"]))


#: detector thresholds (the scores below which :mod:`opencrop.cues` drops a detection): a detection's weight in the
#: subject map is its confidence *above* its detector's threshold (:func:`_margin`)
THRESHOLDS = {"people": 0.5, "objects": 0.4}

#: detections covering (score-margin weighted) less than this share of the image are details of a scene, not its
#: subject: their share of the subject map shrinks in proportion and saliency takes the rest
DETAIL_AREA = 0.05


#: object proposals (:attr:`opencrop.cues.types.Cues.proposals`: the SSD's boxes below their class's threshold) stand
#: for the subject only when nothing passes the thresholds (no person, object or plausible face), each when it covers
#: from ``PROPOSAL_AREA[0]`` to ``PROPOSAL_AREA[1]`` of the image: a box over the whole photo says nothing, and a small
#: weak box is as likely a texture (scikit-image's moon: a 0.20 "surfboard" on a crater, 3 % of the image; text: a
#: letter; the Shepp-Logan phantom: a blob of 5 %). The SSD's 0.21 "bird" on starry_night.jpg (27 %) is the cypress,
#: which the saliency map misses (it peaks on the moon and the stars)
PROPOSAL_AREA = (0.1, 0.6)

#: a proposal's weight in :func:`subject_map` (as a detection's confidence margin), and the proposals' share of the
#: protected subject beside the salient regions (:data:`REGION_PROTECT`; subject benchmark, 2026-12-07, map weight
#: 0.1 / 0.5 / 1 → 3 / 4 / 4 of starry_night.jpg's 4 failing crops fixed, no other crop changed)
PROPOSAL_WEIGHT = 0.5


def proposals_in(cues: Cues | None, width: float, height: float) -> np.ndarray:
    """The object proposals of ``cues`` that stand for the subject (sized as :data:`PROPOSAL_AREA`): ``[K, 4]`` xyxy
    pixels of the ``width × height`` analysis image; none when a person, an object or a plausible face is
    detected."""
    if cues is None or not len(cues.proposals) or len(cues.people) or len(cues.objects) or len(_plausible(cues)):
        return np.zeros((0, 4))
    b = cues.proposals.boxes.astype(np.float64).reshape(-1, 4)
    area = (np.clip(b[:, 2], 0, width) - np.clip(b[:, 0], 0, width)) * (
        np.clip(b[:, 3], 0, height) - np.clip(b[:, 1], 0, height))
    return b[(area >= PROPOSAL_AREA[0] * width * height) & (area < PROPOSAL_AREA[1] * width * height)]


def _margin(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Confidence above ``threshold`` rescaled to 0.1…1: a detection just over its threshold (a person at 0.55, a
    "bird" at 0.45) weighs a tenth of a sure one."""
    return np.clip((np.asarray(scores, np.float64) - threshold) / (1 - threshold), 0.1, 1.0)


def subject_map(sal: np.ndarray, width: int, height: int, cues: Cues | None) -> np.ndarray:
    """Where the photo's subject is, on the saliency map's grid ``[h', w']`` (sums to 1): the detected people,
    objects (not scenery), plausible heads and implausible faces (the centre of a flower, an animal's face) as
    boxes filled with their confidence above the detector's threshold (:func:`_margin`; overlaps take the
    maximum), mixed with the saliency map. Detections take 0.8 of the mass when they cover at least
    :data:`DETAIL_AREA` of the image (margin-weighted), proportionally less when smaller (a distant car under a
    building is not the photo's subject); the saliency map alone when nothing is detected."""
    mh, mw = sal.shape
    s = sal.astype(np.float64)
    s = s / max(float(s.sum()), 1e-12)
    if cues is None:
        return s
    boxes, scores = [np.zeros((0, 4))], [np.zeros(0)]
    if len(cues.people):
        boxes.append(cues.people.boxes)
        scores.append(_margin(cues.people.scores, THRESHOLDS["people"]))
    if len(cues.objects):
        ok = np.array([lab not in SCENERY for lab in cues.objects.labels[: len(cues.objects)]], bool)
        boxes.append(cues.objects.boxes[ok])
        scores.append(_margin(cues.objects.scores[ok], THRESHOLDS["objects"]))
    heads = head_boxes_in(cues, width, height)
    if len(heads):
        boxes.append(heads)
        scores.append(np.ones(len(heads)))
    if len(cues.faces):  # implausible faces protect nothing, but BlazeFace fires on the centre of things
        from opencrop.cues.faces import plausible_faces

        odd = ~plausible_faces(cues.faces, cues.people, cues.objects)
        fb = cues.faces.boxes[odd].astype(np.float64)
        fs = cues.faces.scores[odd].astype(np.float64)  # their raw score: a flower's centre is rarely a sure "face"
        if len(fb) and len(boxes) > 1:  # a "face" inside a detection is a part of it: it weighs no more than it
            db, ds = np.concatenate(boxes), np.concatenate(scores)
            inside = kept_fraction(db, fb).T >= 0.8  # [F, D]: the share of each face inside each detection
            cap = np.where(inside, ds[None, :], np.inf).min(axis=1)
            fs = np.minimum(fs, cap)
        boxes.append(fb)
        scores.append(fs)
    pb = proposals_in(cues, width, height)
    boxes.append(pb)
    scores.append(np.full(len(pb), PROPOSAL_WEIGHT))
    b, sc = np.concatenate(boxes).astype(np.float64), np.concatenate(scores).astype(np.float64)
    if not len(b):
        return s
    det = np.zeros((mh, mw))
    sx, sy = mw / width, mh / height
    for (x1, y1, x2, y2), v in zip(b, sc, strict=True):  # a handful of detections, each one slice
        c1, r1 = int(np.clip(np.floor(x1 * sx), 0, mw - 1)), int(np.clip(np.floor(y1 * sy), 0, mh - 1))
        c2, r2 = int(np.clip(np.ceil(x2 * sx), c1 + 1, mw)), int(np.clip(np.ceil(y2 * sy), r1 + 1, mh))
        np.maximum(det[r1:r2, c1:c2], v, out=det[r1:r2, c1:c2])
    cover = float(det.sum()) / (mh * mw)  # margin-weighted share of the image the detections cover
    det /= max(float(det.sum()), 1e-12)
    share = 0.8 * min(1.0, cover / DETAIL_AREA)
    return share * det + (1 - share) * s


@register_model("composition")
def composition(**cfg: object) -> CompositionModel:
    """The default composition model (learned layout + saliency content terms); no CNN, no weights."""
    return CompositionModel(**cfg)  # type: ignore[arg-type]
