"""Public Python API: :class:`Cropper`, :func:`crop`, :func:`score`.

Data flows one way: image → decode (shrink on load) → cues → candidates → model scores → boxes → output.
One analysis (decode, cues, model ``prepare`` — the backbone pass for learned models) serves every requested
ratio. Boxes in and out of this module are **xyxy pixels of the original, upright image**.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from opencrop.candidates import parse_ratio, ratio_windows
from opencrop.cues.types import Cues
from opencrop.io import DEFAULT_ANALYSIS_SIZE, ImageInput, LoadedImage, crop_image, load_image
from opencrop.models.registry import create_model

__all__ = ["Analysis", "Crop", "Cropper", "crop", "parse_numbers", "parse_size", "score"]


@dataclass
class Crop:
    """One chosen crop.

    Attributes:
        ratio: the requested ratio as given (``"16:9"``).
        box: ``(x1, y1, x2, y2)`` integer pixels of the original upright image, aspect within a pixel of ``ratio``.
        score: model score (comparable between crops of the same image and model only).
        image: the cropped (and, with ``size``, resized) picture, when asked for.
        runners_up: next-best distinct boxes ``[(box, score), ...]`` (for debugging and UIs).
    """

    ratio: str
    box: tuple[int, int, int, int]
    score: float
    image: Image.Image | None = None
    runners_up: list[tuple[tuple[int, int, int, int], float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "box": list(self.box), "score": round(float(self.score), 6)}


@dataclass
class Analysis:
    """One image analysed once: decoded pixels, cues and the model's prepared state."""

    image: LoadedImage
    cues: Cues
    prepared: Any


def parse_size(size: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"1280x720"`` / ``(1280, 720)`` → ``(1280, 720)``; ``None`` → ``None``."""
    if size is None:
        return None
    if isinstance(size, str):
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError as e:
            raise ValueError(f"bad size {size!r}: use WIDTHxHEIGHT such as 1280x720") from e
    else:
        w, h = (int(v) for v in size)
    if w <= 0 or h <= 0 or w > 30000 or h > 30000:
        raise ValueError(f"bad size {size!r}: both sides must be between 1 and 30000")
    return w, h


def parse_numbers(text: str, n: int, what: str) -> list[float]:
    """``"x1,y1,x2,y2"`` → ``n`` floats; ``ValueError`` naming ``what`` otherwise (for ``--subject``, ``focus=``)."""
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        v = []
    if len(v) != n or not all(np.isfinite(v)):
        raise ValueError(f"bad {what} {text!r}: expected {n} comma-separated numbers")
    return v


def _exact_box(box: np.ndarray, r: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer xyxy box of aspect ``r`` (within a pixel) around ``box``'s centre and width, inside the image."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w = min(float(box[2] - box[0]), width, height * r)
    w = max(1, round(w))
    h = max(1, min(height, round(w / r)))
    w = max(1, min(width, round(h * r))) if abs(w / h - r) > abs(round(h * r) / h - r) else w
    x1 = int(min(max(round(cx - w / 2), 0), width - w))
    y1 = int(min(max(round(cy - h / 2), 0), height - h))
    return x1, y1, x1 + w, y1 + h


class Cropper:
    """Finds the best crop of an image for any aspect ratio.

    Args:
        model: registered model name (``opencrop models`` / :func:`opencrop.models.list_models`).
        weights: weight file for learned models.
        cues: ``"auto"`` runs the cues the model uses when their backends are available; ``False`` none;
            or an iterable of cue names (``"faces"``, ``"people"``, ``"objects"``, ``"saliency"``).
        analysis_size: long side of the shrunk analysis image, in pixels.
        **model_cfg: passed to :func:`opencrop.models.create_model`.

    Example:
        >>> cropper = Cropper()
        >>> [c.box for c in cropper.crop("photo.jpg", ratios=["16:9", "1:1"])]
    """

    def __init__(self, model: str = "composition", weights: str | None = None, cues: bool | str | Iterable[str]
                 = "auto", analysis_size: int = DEFAULT_ANALYSIS_SIZE, **model_cfg: Any) -> None:
        self.model = create_model(model, weights=weights, **model_cfg)
        self.model_name = model
        self.analysis_size = analysis_size
        needs = set(getattr(self.model, "needs", ()))
        if cues is False or cues is None:
            self.cue_names: set[str] = set()
        elif cues in ("auto", True):
            # faces always: the hard "never cut a head" rule applies to every model
            self.cue_names = needs | {"faces"}
        else:
            self.cue_names = set(cues)  # type: ignore[arg-type]

    # -- analysis ----------------------------------------------------------------------------------------
    def analyze(self, image: ImageInput | LoadedImage, subject: Sequence[Sequence[float]] | None = None,
                focus: tuple[float, float] | None = None,
                output: tuple[Sequence[float], tuple[int, int]] | None = None) -> Analysis:
        """Decode ``image`` and run cues and the model's per-image pass once.

        ``subject``: boxes ``[[x1, y1, x2, y2], ...]`` and ``focus`` ``(x, y)`` in original pixels; they outrank
        detections. ``output``: ``(ratios, size)`` of the crops to come, so a JPEG is decoded once at a scale
        that serves them too.
        """
        need = None
        if output is not None:
            rs, (ow, oh) = [parse_ratio(r) for r in output[0]], output[1]

            def need(w: int, h: int) -> tuple[int, int]:
                """Full-image size at which the largest window of every ratio is at least the output size."""
                sizes = [(ow * w / min(w, h * r), oh * h / min(h, w / r)) for r in rs]
                return int(np.ceil(max(a for a, _ in sizes))), int(np.ceil(max(b for _, b in sizes)))

        img = image if isinstance(image, LoadedImage) else load_image(image, self.analysis_size, output_need=need)
        sx, sy = img.scale
        h, w = img.pixels.shape[:2]
        cues = self._cues(img.pixels)
        if subject is not None and len(subject):
            s = np.asarray(subject, np.float64).reshape(-1, 4)
            cues.subjects = (s * np.array([sx, sy, sx, sy])).astype(np.float32)
        if focus is not None:
            cues.focus = (float(focus[0]) * sx, float(focus[1]) * sy)
        cues.width, cues.height = w, h
        return Analysis(img, cues, self.model.prepare(img.pixels, cues))

    def _cues(self, pixels: np.ndarray) -> Cues:
        h, w = pixels.shape[:2]
        if not self.cue_names:
            return Cues(w, h)
        from opencrop.cues import analyze as analyze_cues

        return analyze_cues(pixels, want=self.cue_names)

    # -- cropping ----------------------------------------------------------------------------------------
    def crop(self, image: ImageInput | LoadedImage | Analysis, ratios: Sequence[str | float] = ("1:1",),
             size: str | tuple[int, int] | None = None, subject: Sequence[Sequence[float]] | None = None,
             focus: tuple[float, float] | None = None, runners_up: int = 0) -> list[Crop]:
        """Best crop for each ratio, in the order given; one analysis serves all ratios.

        With ``size`` (``"WxH"``), each crop's ``image`` is the crop resized to exactly that size; the ratio
        must then match the size's aspect (a single ratio may be omitted: it is taken from ``size``).
        """
        out_size = parse_size(size)
        ratios = list(ratios) if ratios else []
        if out_size is not None and not ratios:
            ratios = [f"{out_size[0]}:{out_size[1]}"]
        if not ratios:
            raise ValueError("give at least one ratio (e.g. '16:9') or a size")
        rs = [parse_ratio(r) for r in ratios]
        if out_size is not None:
            want = out_size[0] / out_size[1]
            for r, rv in zip(ratios, rs, strict=True):
                if abs(rv / want - 1) > 0.01:
                    raise ValueError(f"size {out_size[0]}x{out_size[1]} has aspect {want:.3f}, but ratio {r} "
                                     f"is {rv:.3f}; ask for one ratio per size")
        out_hint = (ratios, out_size) if out_size is not None else None
        an = image if isinstance(image, Analysis) else self.analyze(image, subject, focus, out_hint)
        return [self._best(an, str(r), rv, out_size, runners_up) for r, rv in zip(ratios, rs, strict=True)]

    def _best(self, an: Analysis, ratio: str, r: float, out_size: tuple[int, int] | None, k: int) -> Crop:
        img = an.image
        h, w = img.pixels.shape[:2]
        boxes = ratio_windows(w, h, r)
        ok, level = _rules(an, boxes)
        scores = self._score_allowed(an, boxes, ok)
        i = int(np.argmax(scores))
        # local refinement around the best coarse window (± half a coarse step, ±4 % in scale), held to the rule
        # level of the coarse choice
        fine = _neighbourhood(boxes[i], w, h, r, step=0.02 * max(w, h))
        fok, _ = _rules(an, fine, level)
        fscores = self._score_allowed(an, fine, fok)
        if fscores.max() > scores[i]:
            best, best_score = fine[int(np.argmax(fscores))], float(fscores.max())
        else:
            best, best_score = boxes[i], float(scores[i])
        sx, sy = img.scale
        to_orig = np.array([1 / sx, 1 / sy, 1 / sx, 1 / sy])
        box = _exact_box(best * to_orig, r, img.width, img.height)
        ups: list[tuple[tuple[int, int, int, int], float]] = []
        if k > 0:
            for j in _distinct_top(boxes, scores, k + 1, iou=0.6)[1:]:
                ups.append((_exact_box(boxes[j] * to_orig, r, img.width, img.height), float(scores[j])))
        pic = crop_image(img, box, out_size) if out_size is not None else None
        return Crop(ratio, box, best_score, pic, ups)

    def _score_allowed(self, an: Analysis, boxes: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Model scores ``[N]`` of ``boxes`` ``[N, 4]`` (xyxy analysis pixels), −inf where ``ok`` ``[N]`` is False;
        only the allowed boxes are scored (a face rule typically rules out a third to a half of them)."""
        if ok.all():
            return np.asarray(self.model.score(an.prepared, boxes), np.float64)
        out = np.full(len(boxes), -np.inf)
        if ok.any():
            out[ok] = self.model.score(an.prepared, boxes[ok])
        return out

    # -- scoring arbitrary boxes -------------------------------------------------------------------------
    def score(self, image: ImageInput | LoadedImage | Analysis, boxes: np.ndarray | Sequence[Sequence[float]]
              ) -> np.ndarray:
        """Model scores ``[N]`` of arbitrary ``boxes`` ``[N, 4]`` (xyxy original pixels)."""
        an = image if isinstance(image, Analysis) else self.analyze(image)
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        sx, sy = an.image.scale
        return np.asarray(self.model.score(an.prepared, b * np.array([sx, sy, sx, sy])), np.float64)


def _rules(an: Analysis, boxes: np.ndarray, level: int | None = None) -> tuple[np.ndarray, int]:
    """Hard rules on top of any model's scores: ``(allowed [N] bool, level)``.

    The rules, strongest first; the first level that some candidate satisfies is enforced (or the given
    ``level``, so that a refinement step keeps the coarse step's promise):

    0. user subjects whole, and every detected head kept (a group stays together when it fits);
    1. user subjects whole, no head cut, and the main face (largest, most central) kept;
    2. user subjects whole, and no head cut;
    3. user subjects whole;
    4. every head kept;  5. no head cut and the main face kept;  6. no head cut;  7. the main face kept;
    8. anything.

    Heads are detected faces grown to the whole head and clipped to the image.
    """
    from opencrop.cues.constraints import face_terms
    from opencrop.models.composition import head_boxes_in, kept_fraction

    n = len(boxes)
    yes = np.ones(n, bool)
    subj = an.cues.subjects
    subj_ok = (kept_fraction(boxes, subj.astype(np.float64)) >= 0.999).all(axis=1) if len(subj) else yes
    heads = head_boxes_in(an.cues, an.cues.width, an.cues.height)
    if len(heads):
        t = face_terms(boxes, heads)
        all_kept = t.n_kept == len(heads)
        no_cut = ~t.cut
        area = (heads[:, 2] - heads[:, 0]) * (heads[:, 3] - heads[:, 1])
        cx = ((heads[:, 0] + heads[:, 2]) / 2 / max(an.cues.width, 1)) - 0.5
        cy = ((heads[:, 1] + heads[:, 3]) / 2 / max(an.cues.height, 1)) - 0.5
        main = int(np.argmax(area * (1 - np.hypot(cx, cy))))
        main_kept = t.state[:, main] == 0
    else:
        all_kept = no_cut = main_kept = yes
    levels = [subj_ok & all_kept, subj_ok & no_cut & main_kept, subj_ok & no_cut, subj_ok,
              all_kept, no_cut & main_kept, no_cut, main_kept, yes]
    if level is not None:
        return levels[level], level
    for i, m in enumerate(levels):
        if m.any():
            return m, i
    return yes, len(levels) - 1


def _neighbourhood(box: np.ndarray, w: int, h: int, r: float, step: float) -> np.ndarray:
    """``[75, 4]`` boxes of aspect ``r`` around ``box``: 5 × 5 centre offsets of ``step / 2`` × 3 scales."""
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


def _distinct_top(boxes: np.ndarray, scores: np.ndarray, k: int, iou: float) -> list[int]:
    """Indices of the ``k`` best boxes, each overlapping every better kept one by IoU < ``iou`` (greedy NMS)."""
    from opencrop.boxes import box_iou

    order = np.argsort(-scores)
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


_DEFAULT: dict[str, Cropper] = {}


def _default(model: str) -> Cropper:
    if model not in _DEFAULT:
        _DEFAULT[model] = Cropper(model)
    return _DEFAULT[model]


def crop(image: ImageInput, ratios: Sequence[str | float] = ("1:1",), size: str | tuple[int, int] | None = None,
         model: str = "composition", **kw: Any) -> list[Crop]:
    """One-call form of :meth:`Cropper.crop` with a cached default :class:`Cropper`."""
    return _default(model).crop(image, ratios, size, **kw)


def score(image: ImageInput, boxes: np.ndarray | Sequence[Sequence[float]], model: str = "composition"
          ) -> np.ndarray:
    """One-call form of :meth:`Cropper.score`."""
    return _default(model).score(image, boxes)
