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

__all__ = ["Analysis", "Crop", "Cropper", "crop", "parse_size", "score"]


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
            self.cue_names = needs
        else:
            self.cue_names = set(cues)  # type: ignore[arg-type]

    # -- analysis ----------------------------------------------------------------------------------------
    def analyze(self, image: ImageInput | LoadedImage, subject: Sequence[Sequence[float]] | None = None,
                focus: tuple[float, float] | None = None) -> Analysis:
        """Decode ``image`` and run cues and the model's per-image pass once.

        ``subject``: boxes ``[[x1, y1, x2, y2], ...]`` and ``focus`` ``(x, y)`` in original pixels; they outrank
        detections.
        """
        img = image if isinstance(image, LoadedImage) else load_image(image, self.analysis_size)
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
        want = self.cue_names - {"saliency"}
        if not want:
            return Cues(w, h)
        try:
            from opencrop.cues import analyze as analyze_cues
        except ImportError:
            return Cues(w, h, notes=["cue detectors are not installed; using saliency only"])
        return analyze_cues(pixels, want=want)

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
        an = image if isinstance(image, Analysis) else self.analyze(image, subject, focus)
        return [self._best(an, str(r), rv, out_size, runners_up) for r, rv in zip(ratios, rs, strict=True)]

    def _best(self, an: Analysis, ratio: str, r: float, out_size: tuple[int, int] | None, k: int) -> Crop:
        img = an.image
        h, w = img.pixels.shape[:2]
        boxes = ratio_windows(w, h, r)
        scores = self._constrained(an, boxes, self.model.score(an.prepared, boxes))
        i = int(np.argmax(scores))
        # local refinement around the best coarse window: ±1 coarse step in position and ±4 % in scale
        fine = _neighbourhood(boxes[i], w, h, r, step=0.015 * max(w, h))
        fscores = self._constrained(an, fine, self.model.score(an.prepared, fine), reference=scores[i])
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

    def _constrained(self, an: Analysis, boxes: np.ndarray, scores: np.ndarray,
                     reference: float | None = None) -> np.ndarray:
        """Hard rules on top of model scores: never cut a detected face (or a user subject) when some candidate
        keeps all of them whole — those candidates are excluded (score −inf)."""
        from opencrop.models.composition import _kept_fraction, face_cut_penalty

        scores = np.asarray(scores, np.float64).copy()
        faces = an.cues.faces.boxes if len(an.cues.faces) else np.zeros((0, 4))
        bad = face_cut_penalty(boxes, faces) > 0 if len(faces) else np.zeros(len(boxes), bool)
        if len(an.cues.subjects):
            bad |= (_kept_fraction(boxes, an.cues.subjects.astype(np.float64)) < 0.999).any(axis=1)
        if bad.any() and (~bad).any():
            scores[bad] = -np.inf
        return scores

    # -- scoring arbitrary boxes -------------------------------------------------------------------------
    def score(self, image: ImageInput | LoadedImage | Analysis, boxes: np.ndarray | Sequence[Sequence[float]]
              ) -> np.ndarray:
        """Model scores ``[N]`` of arbitrary ``boxes`` ``[N, 4]`` (xyxy original pixels)."""
        an = image if isinstance(image, Analysis) else self.analyze(image)
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        sx, sy = an.image.scale
        return np.asarray(self.model.score(an.prepared, b * np.array([sx, sy, sx, sy])), np.float64)


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
