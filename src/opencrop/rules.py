"""Hard rules on top of any crop model, and the refinement of a chosen box.

The pipeline (:class:`opencrop.api.Cropper`) asks a model for crops, then keeps only the boxes that satisfy the
strongest rule level some box can satisfy (:class:`Rules`), picks the best-scoring one, refines it around its
position under the same level (:func:`neighbourhood`, for models that can score arbitrary boxes) and snaps it to
exact integer pixels of the requested ratio (:func:`exact_box`).

Rule levels, strongest first. Heads are the *plausible* detected faces (:func:`opencrop.cues.faces.plausible_faces`)
grown to the whole head and clipped to the image; a head taller or wider than the largest window of the ratio is
replaced by its face plus as much of the head as fits (:func:`opencrop.cues.constraints.fit_heads`), so "no head
cut" can always be met without leaving the head out. User subjects are the ``--subject`` boxes and a small box
around the ``--focus`` point (the focus counts as much as a subject).

0. user subjects whole, and every detected head kept (a group stays together when it fits);
1. user subjects whole, no head cut, and the main face (largest, most central) kept;
2. user subjects whole, and the main face kept (leaving the main face out is worse than cutting another head);
3. user subjects whole, and no head cut;
4. user subjects whole;
5. every head kept;  6. no head cut and the main face kept;  7. the main face kept;  8. no head cut;
9. anything.

Headroom: within the level found, boxes that also leave :data:`HEADROOM` × the head's height free above every
head they keep (where the image has that room) are preferred when there are any, so a frame that the other terms
push down stops a little above the head box instead of on it (the grown head box is an estimate: hair sticks out
of it by a few pixels); boxes that in addition leave :data:`SIDEROOM` × the head's height free on both sides are
preferred to those (hair and tilted heads stick out of the box's sides too).

All boxes are ``[N, 4]`` **xyxy float pixels of the analysis image** unless a function says otherwise.
"""

from __future__ import annotations

import numpy as np

from opencrop.cues.types import Cues

__all__ = ["HEADROOM", "LEVEL_TEXT", "N_LEVELS", "SIDEROOM", "Rules", "distinct_top", "exact_box", "kept_fraction",
           "neighbourhood"]

N_LEVELS = 10

#: what each rule level promises (index = level), for ``--debug`` and UIs
LEVEL_TEXT = (
    "user subjects whole, every head kept",
    "user subjects whole, no head cut, main face kept",
    "user subjects whole, main face kept (another head cut)",
    "user subjects whole, no head cut (main face left out)",
    "user subjects whole (heads could not be kept)",
    "every head kept (a user subject could not fit)",
    "no head cut, main face kept (a user subject could not fit)",
    "main face kept (a user subject could not fit)",
    "no head cut (a user subject could not fit)",
    "no rule could be met: best score",
)

#: room left above a kept head, as a fraction of the head's height (the crop edge never sits on the hair)
HEADROOM = 0.1

#: room left beside a kept head (left and right), as a fraction of the head's height, preferred with the headroom
#: where some box has both: the grown head box is centred on the face, and hair or a tilted head sticks out of its
#: side (messi5.jpg at 9:16: the hair 17 px left of it; subject benchmark, 2026-12-07: 0.1 / 0.2 / 0.3 / 0.4 →
#: 0 / 0 / 1 / 1 crops fixed, no other crop changed)
SIDEROOM = 0.3

#: half-size of the box a ``--focus`` point must keep, as a fraction of the image's shorter side
FOCUS_HALF = 0.02


def kept_fraction(boxes: np.ndarray, subj: np.ndarray) -> np.ndarray:
    """``[N, S]`` fraction of each subject box's area inside each crop (both xyxy pixels)."""
    lt = np.maximum(boxes[:, None, :2], subj[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], subj[None, :, 2:])
    inter = np.prod(np.maximum(rb - lt, 0), axis=-1)
    area = np.prod(np.maximum(subj[:, 2:] - subj[:, :2], 1e-9), axis=-1)
    return inter / area[None, :]


class Rules:
    """The face / group / subject rules of one analysed image (``cues`` at analysis resolution)."""

    def __init__(self, cues: Cues) -> None:
        from opencrop.models.composition import _plausible, head_boxes_in

        self.width, self.height = cues.width, cues.height
        self.subjects = np.asarray(cues.subjects, np.float64).reshape(-1, 4)
        if cues.focus is not None:
            fx, fy = cues.focus
            d = FOCUS_HALF * min(cues.width, cues.height)
            fb = np.clip([fx - d, fy - d, fx + d, fy + d], 0, [cues.width, cues.height] * 2)
            self.subjects = np.vstack([self.subjects, fb[None]])
        self.heads = head_boxes_in(cues, cues.width, cues.height)
        self.faces = _plausible(cues).boxes.astype(np.float64).reshape(-1, 4)
        self._fitted: dict[float, np.ndarray] = {}
        self.main = -1
        if len(self.heads):
            h = self.heads
            area = (h[:, 2] - h[:, 0]) * (h[:, 3] - h[:, 1])
            cx = ((h[:, 0] + h[:, 2]) / 2 / max(cues.width, 1)) - 0.5
            cy = ((h[:, 1] + h[:, 3]) / 2 / max(cues.height, 1)) - 0.5
            self.main = int(np.argmax(area * (1 - np.hypot(cx, cy))))

    def heads_for(self, boxes: np.ndarray) -> np.ndarray:
        """The heads as ``boxes``' aspect (their median; one request has one) can hold them: ``[F, 4]`` xyxy."""
        from opencrop.cues.constraints import fit_heads

        if not len(self.heads) or not len(boxes):
            return self.heads
        r = round(float(np.median((boxes[:, 2] - boxes[:, 0]) / np.maximum(boxes[:, 3] - boxes[:, 1], 1e-9))), 4)
        if r not in self._fitted:
            ww, hh = min(self.width, self.height * r), min(self.height, self.width / r)
            self._fitted[r] = fit_heads(self.heads, self.faces, ww, hh)
        return self._fitted[r]

    def masks(self, boxes: np.ndarray, headroom: float = 0.0, sideroom: float = 0.0) -> list[np.ndarray]:
        """The :data:`N_LEVELS` ``bool [N]`` masks of ``boxes``, strongest level first. With ``headroom`` > 0 a head
        counts as kept only with that fraction of its height free above it, with ``sideroom`` > 0 that fraction of
        its height free on its left and right (where the image has the room)."""
        from opencrop.cues.constraints import face_terms

        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        yes = np.ones(len(boxes), bool)
        subj_ok = (kept_fraction(boxes, self.subjects) >= 0.999).all(axis=1) if len(self.subjects) else yes
        if len(self.heads):
            heads = self.heads_for(boxes)
            if headroom > 0 or sideroom > 0:
                heads = heads.copy()
                hh = heads[:, 3] - heads[:, 1]
                heads[:, 1] = np.maximum(heads[:, 1] - headroom * hh, 0.0)
                heads[:, 0] = np.maximum(heads[:, 0] - sideroom * hh, 0.0)
                heads[:, 2] = np.minimum(heads[:, 2] + sideroom * hh, self.width)
            t = face_terms(boxes, heads)
            all_kept = t.n_kept == len(heads)
            no_cut = ~t.cut
            main_kept = t.state[:, self.main] == 0
        else:
            all_kept = no_cut = main_kept = yes
        return [subj_ok & all_kept, subj_ok & no_cut & main_kept, subj_ok & main_kept, subj_ok & no_cut, subj_ok,
                all_kept, no_cut & main_kept, main_kept, no_cut, yes]

    def apply(self, boxes: np.ndarray, level: int | None = None) -> tuple[np.ndarray, int]:
        """``(allowed bool [N], level)``: the first level that some box satisfies, or the given ``level`` (so a
        refinement keeps the coarse step's promise); within it, the boxes with :data:`HEADROOM` above the heads
        when some have it."""
        ms = self.masks(boxes)
        if level is None:
            level = next((i for i, m in enumerate(ms) if m.any()), N_LEVELS - 1)
        m = ms[level]
        if len(self.heads) and m.any():
            for side in (SIDEROOM, 0.0):  # room above and beside the heads, else room above them only
                roomy = m & self.masks(boxes, HEADROOM, side)[level]
                if roomy.any():
                    return roomy, level
        return m, level


def neighbourhood(box: np.ndarray, w: int, h: int, r: float, step: float) -> np.ndarray:
    """``[75, 4]`` boxes of aspect ``r`` around ``box`` inside a ``w × h`` image: 5 × 5 centre offsets of
    ``step / 2`` × 3 scales (0.96, 1, 1.04)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bw = box[2] - box[0]
    off = np.linspace(-step, step, 5)
    sc = np.array([0.96, 1.0, 1.04])
    dx, dy, s = (a.ravel() for a in np.meshgrid(off, off, sc, indexing="ij"))
    ww = np.minimum(bw * s, min(w, h * r))
    hh = ww / r
    x1 = np.clip(cx + dx - ww / 2, 0, w - ww)
    y1 = np.clip(cy + dy - hh / 2, 0, h - hh)
    return np.stack([x1, y1, x1 + ww, y1 + hh], axis=1)


def exact_box(box: np.ndarray, r: float | None, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer xyxy box (pixels of a ``width × height`` image) of aspect ``r`` (within a pixel) around ``box``'s
    centre and width, inside the image; ``r=None`` rounds ``box`` and clips it."""
    if r is None:
        x1, y1 = max(0, round(float(box[0]))), max(0, round(float(box[1])))
        x2, y2 = min(width, round(float(box[2]))), min(height, round(float(box[3])))
        return int(x1), int(y1), int(max(x2, x1 + 1)), int(max(y2, y1 + 1))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w = min(float(box[2] - box[0]), width, height * r)
    w = max(1, round(w))
    h = max(1, min(height, round(w / r)))
    w = max(1, min(width, round(h * r))) if abs(w / h - r) > abs(round(h * r) / h - r) else w
    x1 = int(min(max(round(cx - w / 2), 0), width - w))
    y1 = int(min(max(round(cy - h / 2), 0), height - h))
    return x1, y1, x1 + w, y1 + h


def distinct_top(boxes: np.ndarray, scores: np.ndarray, k: int, iou: float) -> list[int]:
    """Indices of the ``k`` best finite-scored boxes, each overlapping every better kept one by IoU < ``iou``
    (greedy NMS)."""
    from opencrop.boxes import box_iou

    order = np.argsort(-scores, kind="stable")
    order = order[np.isfinite(scores[order])][: 50 * k]
    keep: list[int] = []
    ious = box_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), bool)
    for a in range(len(order)):
        if suppressed[a]:
            continue
        keep.append(int(order[a]))
        if len(keep) == k:
            break
        suppressed |= ious[a] >= iou
    return keep
