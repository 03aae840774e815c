"""Public Python API: :class:`Cropper`, :func:`crop`, :func:`score` — the one crop pipeline.

Data flows one way: image → frame (:func:`opencrop.io.load_frame`: decode with shrink on load, EXIF orientation,
analysis scale) → cues → ``model.prepare`` → ``model.propose`` (:mod:`opencrop.models.base`) → rules
(:mod:`opencrop.rules`: faces, groups, subjects) → refine → output. One analysis (decode, cues, ``prepare`` — the
backbone pass of a learned model) serves every requested ratio. The CLI, the service, batch jobs and evaluation
call this pipeline and only print or encode its result. Boxes in and out of this module are **xyxy pixels of the
original, upright image**.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from opencrop.candidates import parse_ratio
from opencrop.cues.types import Cues
from opencrop.errors import CueUnavailableError, UntrainedModelError, UpscaleError
from opencrop.io import DEFAULT_ANALYSIS_SIZE, Frame, ImageInput, crop_image, load_frame
from opencrop.limits import Limits, env_flag
from opencrop.models.base import CUE_NAMES, CandidateScorer, Request
from opencrop.models.registry import create_model
from opencrop.rules import Rules, distinct_top, exact_box, neighbourhood

__all__ = ["Analysis", "Crop", "CropPlan", "CropResult", "Cropper", "crop", "parse_numbers", "parse_size", "plan",
           "score"]


@dataclass
class Crop:
    """One chosen crop.

    Attributes:
        ratio: the requested ratio as given (``"16:9"``).
        box: ``(x1, y1, x2, y2)`` integer pixels of the original upright image, aspect within a pixel of ``ratio``.
        score: model score (comparable between crops of the same image and model only).
        image: the cropped (and, with ``size``, resized) picture, when asked for.
        runners_up: next-best distinct boxes ``[(box, score), ...]`` (for debugging and UIs).
        level: the rule level the box satisfies (:mod:`opencrop.rules`; 0 = every head and subject kept).
        warning: set when the box's aspect differs from ``ratio`` by more than 1 % (an extreme ratio that whole
            pixels of this image cannot make).
    """

    ratio: str
    box: tuple[int, int, int, int]
    score: float
    image: Image.Image | None = None
    runners_up: list[tuple[tuple[int, int, int, int], float]] = field(default_factory=list)
    level: int = 0
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ratio": self.ratio, "box": list(self.box), "score": round(float(self.score), 6)}
        if self.warning:
            d["warning"] = self.warning
        return d


@dataclass
class Analysis:
    """One image analysed once: its frame, cues and the model's prepared state."""

    frame: Frame
    cues: Cues
    prepared: Any

    @property
    def image(self) -> Frame:
        """The frame (former name)."""
        return self.frame


@dataclass
class CropResult:
    """The crops of one image with the analysis they came from."""

    analysis: Analysis
    crops: list[Crop]

    @property
    def notes(self) -> list[str]:
        """Everything the pipeline had to report (a missing detector, random weights ...)."""
        return list(self.analysis.cues.notes)

    def to_dict(self) -> dict[str, Any]:
        """``{"schema", "image", "width", "height", "crops": [{"ratio", "box", "score"}], "degraded"?, "notes"?}``
        (original pixels; ``degraded``: the cues that could not run, present only when the cropper was asked to
        degrade). Every key: :data:`opencrop.schema.SCHEMA`."""
        from opencrop.schema import SCHEMA_ID

        f = self.analysis.frame
        rec: dict[str, Any] = {"schema": SCHEMA_ID, "image": f.source, "width": f.width, "height": f.height,
                               "crops": [c.to_dict() for c in self.crops]}
        if self.analysis.cues.degraded:
            rec["degraded"] = sorted(self.analysis.cues.degraded)
        if self.notes:
            rec["notes"] = self.notes
        return rec


@dataclass(frozen=True)
class CropPlan:
    """Validated outputs of one crop call: ratio labels as given, their values ``w / h``, the exact output size."""

    labels: tuple[str, ...]
    ratios: tuple[float, ...]
    size: tuple[int, int] | None


def plan(ratios: Sequence[str | float] | None, size: str | tuple[int, int] | None = None,
         limits: Limits | None = None) -> CropPlan:
    """The one check of what a caller asks for (every surface calls it, through :meth:`Cropper.crop`).

    A single ratio may be omitted when ``size`` is given (it is taken from ``size``); with ``size`` every ratio must
    match its aspect within 1 %; the size must stay within ``limits.max_output_pixels``. Raises ``ValueError``
    naming the bad ratio or size.
    """
    out_size = parse_size(size)
    lim = limits or Limits()
    if out_size is not None and out_size[0] * out_size[1] > lim.max_output_pixels:
        raise ValueError(f"size {out_size[0]}x{out_size[1]} = {out_size[0] * out_size[1]:,} pixels exceeds the output "
                         f"limit of {lim.max_output_pixels:,} (--max-output-pixels / OPENCROP_MAX_OUTPUT_PIXELS)")
    labels = [str(r) for r in (ratios or [])]
    if out_size is not None and not labels:
        labels = [f"{out_size[0]}:{out_size[1]}"]
    if not labels:
        raise ValueError("give at least one ratio (e.g. '16:9') or a size")
    rs = [parse_ratio(r) for r in labels]
    if out_size is not None:
        want = out_size[0] / out_size[1]
        for r, rv in zip(labels, rs, strict=True):
            if abs(rv / want - 1) > 0.01:
                raise ValueError(f"size {out_size[0]}x{out_size[1]} has aspect {want:.3f}, but ratio {r} "
                                 f"is {rv:.3f}; ask for one ratio per size")
    return CropPlan(tuple(labels), tuple(rs), out_size)


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
    if w <= 0 or h <= 0:
        raise ValueError(f"bad size {size!r}: both sides must be at least 1 pixel")
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


class Cropper:
    """Finds the best crop of an image for any aspect ratio (the pipeline of the module docstring).

    Args:
        model: registered model name (``opencrop models list`` / :func:`opencrop.models.list_models`), or a
            built model (:mod:`opencrop.models.base` contract).
        weights: weight file for learned models.
        cues: ``"auto"`` runs the cues the model uses when their backends are available; ``False`` none;
            or an iterable of cue names (``"faces"``, ``"people"``, ``"objects"``, ``"saliency"``).
        analysis_size: long side of the shrunk analysis image, in pixels (default: the model's own,
            512 for every model today).
        random_weights: allow a learned model without trained weights (its crops are random); otherwise such a
            model raises :class:`~opencrop.errors.UntrainedModelError`.
        degrade: crop even when a wanted cue cannot run (its runtime or model file is missing or corrupt): every
            result then names it in ``degraded`` and ``notes``. Without it (default; ``None`` = the
            ``OPENCROP_DEGRADE`` environment variable) such a cue raises
            :class:`~opencrop.errors.CueUnavailableError` here, before any image.
        max_pixels, max_output_pixels, allow_upscale: resource limits (:mod:`opencrop.limits`; ``None`` = the
            environment variable or the safe default). Without ``allow_upscale`` an output ``size`` larger than its
            crop box is an :class:`~opencrop.errors.UpscaleError` for that image.
        **model_cfg: passed to :func:`opencrop.models.create_model`.

    Example:
        >>> cropper = Cropper()
        >>> [c.box for c in cropper.crop("photo.jpg", ratios=["16:9", "1:1"])]
    """

    def __init__(self, model: str | Any = "composition", weights: str | None = None,
                 cues: bool | str | Iterable[str] = "auto", analysis_size: int | None = None,
                 random_weights: bool = False, max_pixels: int | None = None, max_output_pixels: int | None = None,
                 allow_upscale: bool | None = None, degrade: bool | None = None, **model_cfg: Any) -> None:
        self.limits = Limits(max_pixels, max_output_pixels, allow_upscale)
        if isinstance(model, str):
            self.model = create_model(model, weights=weights, **model_cfg)
            self.model_name = model
        else:  # an already built model (evaluation, the trainer's validation)
            if weights is not None or model_cfg:
                raise TypeError("weights / model options go with a model name, not a built model")
            self.model, self.model_name = model, str(getattr(model, "name", type(model).__name__))
        if getattr(self.model, "is_cropper", True) is False:
            raise ValueError(f"model {self.model_name!r} is not a crop model (it proposes no crops)")
        if getattr(self.model, "weights_source", "") is None and not random_weights:
            raise UntrainedModelError(model)
        self.random_weights = bool(random_weights and getattr(self.model, "weights_source", "") is None)
        self.analysis_size = int(analysis_size or getattr(self.model, "analysis_size", DEFAULT_ANALYSIS_SIZE))
        needs = set(getattr(self.model, "needs", ())) & CUE_NAMES
        if cues is False or cues is None:
            self.cue_names: set[str] = set()
        elif cues in ("auto", True):
            # faces always: the hard "never cut a head" rule applies to every model
            self.cue_names = needs | {"faces"}
        else:
            self.cue_names = set(cues)  # type: ignore[arg-type]
        self.degrade = bool(degrade if degrade is not None else env_flag("OPENCROP_DEGRADE"))
        #: wanted cues that cannot run here, with why (non-empty only with ``degrade``)
        self.degraded: dict[str, str] = {}
        if self.cue_names:
            from opencrop.cues import check

            missing = check(self.cue_names)
            if missing and not self.degrade:
                raise CueUnavailableError(missing)
            self.degraded = missing

    # -- analysis ----------------------------------------------------------------------------------------
    def analyze(self, image: ImageInput | Frame, subject: Sequence[Sequence[float]] | None = None,
                focus: tuple[float, float] | None = None,
                output: tuple[Sequence[float | str], tuple[int, int]] | None = None, **given: Any) -> Analysis:
        """Frame → cues → ``model.prepare``, once per image.

        ``subject``: boxes ``[[x1, y1, x2, y2], ...]`` and ``focus`` ``(x, y)`` in original pixels; they outrank
        detections. ``output``: ``(ratios, size)`` of the crops to come, so a JPEG is decoded once at a scale
        that serves them too. ``given``: record fields (:data:`opencrop.models.base.FIELD_NAMES`) in original
        pixels — ``human_box`` ``[4]``, ``object_boxes`` ``[D, 4]``, ``subject_box`` ``[4]`` — or, for
        ``subject_mask`` / ``heatmap``, 2-D arrays covering the image.
        """
        need = None
        if output is not None:
            rs, (ow, oh) = [parse_ratio(r) for r in output[0]], output[1]

            def need(w: int, h: int) -> tuple[int, int]:
                """Full-image size at which the largest window of every ratio is at least the output size."""
                sizes = [(ow * w / min(w, h * r), oh * h / min(h, w / r)) for r in rs]
                return int(np.ceil(max(a for a, _ in sizes))), int(np.ceil(max(b for _, b in sizes)))

        frame = image if isinstance(image, Frame) else load_frame(image, self.analysis_size, self.limits.max_pixels,
                                                                  output_need=need)
        cues = self._cues(frame.pixels)
        if subject is not None and len(subject):
            cues.subjects = frame.to_analysis(subject).astype(np.float32)
        if focus is not None:
            sx, sy = frame.scale
            cues.focus = (float(focus[0]) * sx, float(focus[1]) * sy)
        set_given(cues, frame, **given)
        if self.random_weights:
            cues.notes.append(f"model {self.model_name!r} runs with random weights (--random-weights)")
        if getattr(self.model, "precision", "fp32") != "fp32":
            cues.notes.append(f"model {self.model_name!r} scores in {self.model.precision} (precision="
                              f"{self.model.precision!r}): close to, not equal to, its fp32 scores")
        return Analysis(frame, cues, self.model.prepare(frame, cues))

    def _cues(self, pixels: np.ndarray) -> Cues:
        h, w = pixels.shape[:2]
        if not self.cue_names:
            return Cues(w, h)
        from opencrop.cues import analyze as analyze_cues

        return analyze_cues(pixels, want=self.cue_names, degrade=self.degrade)

    # -- cropping ----------------------------------------------------------------------------------------
    def run(self, image: ImageInput | Frame | Analysis, ratios: Sequence[str | float] = ("1:1",),
            size: str | tuple[int, int] | None = None, subject: Sequence[Sequence[float]] | None = None,
            focus: tuple[float, float] | None = None, runners_up: int = 0) -> CropResult:
        """:meth:`crop` plus what every surface reports: the frame, cues, notes (``CropResult.to_dict()`` is the
        JSON record of the CLI, batch jobs and the service)."""
        p = plan(ratios, size, self.limits)
        out_hint = (p.labels, p.size) if p.size is not None else None
        an = image if isinstance(image, Analysis) else self.analyze(image, subject, focus, out_hint)
        crops = [self._best(an, lab, r, p.size, runners_up) for lab, r in zip(p.labels, p.ratios, strict=True)]
        return CropResult(an, crops)

    def crop(self, image: ImageInput | Frame | Analysis, ratios: Sequence[str | float] = ("1:1",),
             size: str | tuple[int, int] | None = None, subject: Sequence[Sequence[float]] | None = None,
             focus: tuple[float, float] | None = None, runners_up: int = 0) -> list[Crop]:
        """Best crop for each ratio, in the order given; one analysis serves all ratios.

        With ``size`` (``"WxH"``), each crop's ``image`` is the crop resized to exactly that size; the ratio
        must then match the size's aspect (a single ratio may be omitted: it is taken from ``size``).
        """
        return self.run(image, ratios, size, subject, focus, runners_up).crops

    def _best(self, an: Analysis, ratio: str, r: float, out_size: tuple[int, int] | None, k: int) -> Crop:
        frame = an.frame
        w, h = frame.analysis_size
        rules = Rules(an.cues)
        seen: dict[str, int] = {}

        def allow(b: np.ndarray) -> np.ndarray:
            m, seen["level"] = rules.apply(b)
            return m

        boxes, scores = self.model.propose(an.prepared, Request(ratio=r, allow=allow, top_k=k + 1))
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(boxes) == 0:
            raise RuntimeError(f"model {self.model_name!r} proposed no crop for ratio {ratio}")
        if "level" not in seen:  # a proposer: the rules apply to its boxes afterwards
            m, seen["level"] = rules.apply(boxes)
            scores = np.where(m, scores, -np.inf)
        level = seen["level"]
        if not np.isfinite(scores).any():
            raise RuntimeError(f"model {self.model_name!r} gave no finite score for ratio {ratio}")
        i = int(np.argmax(scores))
        best, best_score = boxes[i], float(scores[i])
        if isinstance(self.model, CandidateScorer) and getattr(self.model, "refine", True):
            # local refinement around the best coarse window (± half a coarse step, ±4 % in scale), held to the
            # rule level of the coarse choice
            fine = neighbourhood(boxes[i], w, h, r, step=0.02 * max(w, h))
            fok, _ = rules.apply(fine, level)
            _, fscores = self.model.propose(an.prepared, Request(ratio=r, boxes=fine, allow=lambda b: fok))
            if fscores.max() > scores[i]:
                best, best_score = fine[int(np.argmax(fscores))], float(fscores.max())
        box = exact_box(frame.to_original(best)[0], r, frame.width, frame.height)
        ups: list[tuple[tuple[int, int, int, int], float]] = []
        if k > 0:
            for j in distinct_top(boxes, scores, k + 1, iou=0.6)[1:]:
                ups.append((exact_box(frame.to_original(boxes[j])[0], r, frame.width, frame.height), float(scores[j])))
        if out_size is not None and not self.limits.allow_upscale and (
                out_size[0] > box[2] - box[0] or out_size[1] > box[3] - box[1]):
            raise UpscaleError(frame.source, f"the {ratio} crop is {box[2] - box[0]}x{box[3] - box[1]} pixels, "
                               f"smaller than the requested {out_size[0]}x{out_size[1]}: it would be upscaled "
                               f"(allow it with --allow-upscale / allow_upscale=True)")
        pic = crop_image(frame, box, out_size) if out_size is not None else None
        got = (box[2] - box[0]) / (box[3] - box[1])
        warning = None
        if abs(got / r - 1) > 0.01:  # whole pixels of this image cannot make that aspect: say so, never silently
            warning = (f"ratio {ratio} cannot be met in whole pixels of a {frame.width}x{frame.height} image; "
                       f"closest is {box[2] - box[0]}x{box[3] - box[1]} (aspect {got:.4g})")
        return Crop(ratio, box, best_score, pic, ups, level, warning)

    # -- scoring arbitrary boxes -------------------------------------------------------------------------
    def score(self, image: ImageInput | Frame | Analysis, boxes: np.ndarray | Sequence[Sequence[float]]
              ) -> np.ndarray:
        """Model scores ``[N]`` of arbitrary ``boxes`` ``[N, 4]`` (xyxy original pixels)."""
        an = image if isinstance(image, Analysis) else self.analyze(image)
        b = an.frame.to_analysis(boxes)
        _, s = self.model.propose(an.prepared, Request(boxes=b))
        return np.asarray(s, np.float64).reshape(-1)


def set_given(cues: Cues, frame: Frame, **given: Any) -> None:
    """Put record fields (original pixels; see :meth:`Cropper.analyze`) on ``cues`` in analysis pixels."""
    from opencrop.models.base import FIELD_NAMES

    unknown = set(given) - FIELD_NAMES
    if unknown:
        raise TypeError(f"unknown given input(s) {sorted(unknown)}; valid: {sorted(FIELD_NAMES)}")
    for key in ("human_box", "subject_box"):
        v = given.get(key)
        if v is not None:
            b = np.asarray(v, np.float64).reshape(4)
            setattr(cues, key, frame.to_analysis(b)[0] if np.all(b >= 0) else np.full(4, -1.0))
    if given.get("object_boxes") is not None:
        cues.object_boxes = frame.to_analysis(given["object_boxes"])
    for key in ("subject_mask", "heatmap"):
        if given.get(key) is not None:
            setattr(cues, key, np.asarray(given[key]))


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
