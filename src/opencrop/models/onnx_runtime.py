"""Run an exported learned model (:mod:`opencrop.models.export`) with onnxruntime and numpy: no torch.

:class:`OnnxScorer` is a :class:`~opencrop.models.base.CandidateScorer` built from the ``.onnx`` file alone: its
metadata gives the model name, preprocessing, needs, analysis size and extra inputs; :func:`preprocess_array` is
the numpy twin of :class:`~opencrop.models.preprocess.Preprocess` (bilinear with half-pixel centres, or torch's
anti-aliased bilinear, as weight matrices applied per axis), and the extra inputs come from the torch-free
providers of :mod:`opencrop.models.inputs`. ``create_model(name, weights="model.onnx")`` (so ``Cropper``,
``opencrop crop -m gaic --weights gaic.onnx``) builds one through :func:`load_onnx`.

The graph takes the image with the boxes, so each :meth:`OnnxScorer.score` call runs the backbone again: a crop
runs it twice per ratio (candidates, then the refinement around the best), where the torch model runs it once
per image.

The other kinds (``opencrop.kind``, :mod:`opencrop.models.export`): :class:`OnnxSetCrop` (SetCrop: one graph run
per image gives the query boxes and validities; proposing and scoring are numpy) and :class:`OnnxGenCrop`
(GenCrop: one run per image gives the crop, proposals and weights; scoring given boxes runs the graph again).
:func:`load_onnx` picks the class from the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opencrop.cues.types import Cues
from opencrop.errors import ModelFileError
from opencrop.models.base import CandidateScorer, Request, pixels_of
from opencrop.models.inputs import EXTRA_INPUTS
from opencrop.models.preprocess import Preprocess

__all__ = ["RUNTIMES", "OnnxGenCrop", "OnnxGenCropPrepared", "OnnxPrepared", "OnnxScorer", "OnnxSetCrop",
           "OnnxSetPrepared", "is_onnx_file", "load_onnx", "preprocess_array", "resize_matrix"]

_FORMAT = "opencrop-onnx/1"  # = opencrop.models.export.FORMAT (that module imports torch)
#: the fixed graph inputs of each kind (= opencrop.models.export.KINDS); a scorer's others come from EXTRA_INPUTS
_KIND_INPUTS = {"scorer": ("image", "rois"), "set": ("image",), "regressor": ("image", "subject", "rois")}


def is_onnx_file(weights: Any) -> bool:
    """Whether a ``weights`` argument names an ONNX file (by its ``.onnx`` suffix)."""
    return isinstance(weights, str | os.PathLike) and str(weights).lower().endswith(".onnx")


def resize_matrix(n_in: int, n_out: int, antialias: bool) -> np.ndarray:
    """``[n_out, n_in]`` float64 weights of torch's 1-D bilinear resize (``align_corners=False``), so that
    ``out = M @ x``: half-pixel centres with the source clamped at 0 (``antialias=False``, as cv2 INTER_LINEAR), or
    the triangle filter widened by the downscale factor and normalised (``antialias=True``, torch's / PIL's)."""
    scale = n_in / n_out
    i = np.arange(n_out, dtype=np.float64)
    m = np.zeros((n_out, n_in), np.float64)
    if not antialias:
        src = np.maximum((i + 0.5) * scale - 0.5, 0.0)
        lo = np.floor(src).astype(np.int64)
        lo = np.minimum(lo, n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        lam = src - lo
        rows = np.arange(n_out)
        np.add.at(m, (rows, lo), 1.0 - lam)
        np.add.at(m, (rows, hi), lam)
        return m
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (i + 0.5)
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5), n_in).astype(np.int64)
    j = np.arange(n_in, dtype=np.int64)[None, :]
    inside = (j >= xmin[:, None]) & (j < xmax[:, None])
    w = np.clip(1.0 - np.abs((j - center[:, None] + 0.5) * inv), 0.0, None) * inside
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total != 0)


def preprocess_array(pre: Preprocess, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """numpy :class:`~opencrop.models.preprocess.Preprocess`: ``[H, W, 3]`` uint8 RGB → (``[1, 3, H_in, W_in]``
    float32 network input, ``(sx, sy)`` box scale factors)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] RGB image, got shape {tuple(image.shape)}")
    h, w = int(image.shape[0]), int(image.shape[1])
    w_in, h_in = pre.output_size(w, h)
    x = image.astype(np.float32)
    if (h_in, w_in) != (h, w):
        my = resize_matrix(h, h_in, pre.antialias)
        mx = resize_matrix(w, w_in, pre.antialias)
        x = np.einsum("oh,hwc,pw->cop", my, x.astype(np.float64), mx, optimize=True).astype(np.float32)
    else:
        x = np.ascontiguousarray(x.transpose(2, 0, 1))
    mean = np.asarray(pre.mean, np.float32).reshape(3, 1, 1)
    std = np.asarray(pre.std, np.float32).reshape(3, 1, 1)
    x = (x / np.float32(pre.pixel_scale) - mean) / std
    return x[None].astype(np.float32), (w_in / w, h_in / h)


@dataclass
class OnnxPrepared:
    """One image ready for :meth:`OnnxScorer.score`: the network input and the extra inputs (batch of one)."""

    image: np.ndarray
    width: int
    height: int
    sx: float
    sy: float
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _open_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of ``path``; :class:`~opencrop.errors.ModelFileError` when missing or damaged."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("running an .onnx model needs onnxruntime: pip install onnxruntime") from None
    if not path.is_file():
        raise ModelFileError(path, "no such ONNX file")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        raise ModelFileError(path, f"onnxruntime cannot load it ({type(e).__name__}: {e})") from None


class _OnnxModel:
    """An onnxruntime session of an ``opencrop export`` file and the metadata every kind carries (``name``,
    ``kind``, ``config``, ``needs``, ``analysis_size``, ``max_candidates``, ``weights_source``, ``input_names``)."""

    #: the ``opencrop.kind`` this class runs
    kind = "scorer"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, session: Any = None) -> None:
        self.path = Path(path)
        self.session = session if session is not None else _open_session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("opencrop.format") != _FORMAT:
            raise ModelFileError(self.path, f"not an opencrop model export (metadata opencrop.format is "
                                            f"{meta.get('opencrop.format')!r}, expected {_FORMAT!r})")
        kind = meta.get("opencrop.kind", "scorer")  # files written before the kinds were all scorers
        if kind != self.kind:
            raise ModelFileError(self.path, f"is a {kind!r} export, not a {self.kind!r} one (open it with load_onnx)")
        try:
            self.name = meta["opencrop.model"]
            self.config: dict[str, Any] = json.loads(meta["opencrop.config"])
            self._preprocess = json.loads(meta["opencrop.preprocess"])
            self.needs = frozenset(json.loads(meta["opencrop.needs"]))
            self.analysis_size = int(meta["opencrop.analysis_size"])
            self.max_candidates = int(meta["opencrop.max_candidates"])
            self.input_names: list[str] = json.loads(meta["opencrop.inputs"])
            trained = meta["opencrop.trained"] == "true"
        except (KeyError, ValueError) as e:
            raise ModelFileError(self.path, f"incomplete opencrop metadata ({type(e).__name__}: {e})") from None
        self.weights_source: str | None = meta["opencrop.weights"] if trained else None
        graph_inputs = [i.name for i in self.session.get_inputs()]
        #: numpy dtype of each graph input (S2CNet's object_mask is bool, the others float32)
        self._dtypes = {i.name: np.bool_ if i.type == "tensor(bool)" else np.float32 for i in self.session.get_inputs()}
        unknown = [n for n in self.input_names if n not in _KIND_INPUTS[kind] and n not in EXTRA_INPUTS]
        if graph_inputs != self.input_names or unknown:
            raise ModelFileError(self.path, f"graph inputs {graph_inputs} do not match the metadata "
                                            f"{self.input_names} (or need unknown providers {unknown})")

    def _pixels(self, frame: Any) -> tuple[np.ndarray, int, int]:
        """``([H, W, 3]`` uint8 analysis pixels of ``frame``, ``W``, ``H)``; a bad frame names this model."""
        try:
            pixels = pixels_of(frame)
        except ValueError as e:
            raise ValueError(f"{self.name}.prepare: {e}") from None
        return pixels, int(pixels.shape[1]), int(pixels.shape[0])


class OnnxScorer(_OnnxModel, CandidateScorer):
    """An exported candidate scorer run by onnxruntime (module docstring).

    Args:
        path: the ``.onnx`` file written by ``opencrop export``.
        threads: onnxruntime intra-op threads (default: its own choice).

    Attributes (from the file's metadata): ``name``, ``needs``, ``preprocess``, ``analysis_size``, ``config``,
    ``weights_source`` (``None`` when exported with ``--random-weights``: the Cropper then refuses it unless
    ``random_weights=True``).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, session: Any = None) -> None:
        super().__init__(path, threads, session)
        self.preprocess = Preprocess.from_dict(self._preprocess)

    def prepare(self, frame: Any, cues: Cues | None = None) -> OnnxPrepared:
        """Preprocess ``frame`` (a :class:`~opencrop.io.Frame` or ``[H, W, 3]`` uint8 analysis pixels) and compute
        the extra inputs from ``cues``."""
        pixels, w, h = self._pixels(frame)
        x, (sx, sy) = preprocess_array(self.preprocess, pixels)
        extra = {n: np.asarray(EXTRA_INPUTS[n](cues, w, h, sx, sy, self.config), self._dtypes[n])
                 for n in self.input_names[2:]}
        return OnnxPrepared(x, w, h, sx, sy, extra)

    def score(self, prepared: OnnxPrepared, boxes: np.ndarray) -> np.ndarray:
        """Scores ``[N]`` float32 of ``boxes`` ``[N, 4]`` (xyxy analysis pixels), all in one graph run."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if b.shape[0] == 0:
            return np.zeros((0,), dtype=np.float32)
        scale = np.array([prepared.sx, prepared.sy, prepared.sx, prepared.sy], dtype=np.float32)
        rois = np.concatenate([np.zeros((b.shape[0], 1), np.float32), b * scale], axis=1)
        feeds = {"image": prepared.image, "rois": rois, **prepared.extra}
        return np.asarray(self.session.run(["scores"], feeds)[0], np.float32).reshape(-1)


@dataclass
class OnnxSetPrepared:
    """One image after :meth:`OnnxSetCrop.prepare`: the final layer's query boxes ``[Q, 4]`` (xyxy analysis pixels,
    clipped) and validities ``[Q]``, and the image's ``cues.notes`` (where ``propose`` reports unfit ratios)."""

    width: int
    height: int
    query_boxes: np.ndarray
    validity: np.ndarray
    notes: list[str] = field(default_factory=list)


class OnnxSetCrop(_OnnxModel, CandidateScorer):
    """An exported SetCrop (``opencrop.kind = "set"``): one graph run per image in :meth:`prepare`; ``propose`` and
    ``score`` are :func:`opencrop.models.setcrop_post.propose_from_queries` / ``best_query_scores``, as the torch
    model's. Attributes as :class:`OnnxScorer`."""

    kind = "set"
    proposes_boxes = True

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, session: Any = None) -> None:
        super().__init__(path, threads, session)
        self.preprocess = Preprocess.from_dict(self._preprocess)
        self.valid_threshold = float(self.config.get("valid_threshold", 0.5))
        self.fit_iou = float(self.config.get("fit_iou", 0.5))
        nms_iou = self.config.get("rank_nms")
        self.rank_nms = None if nms_iou is None else float(nms_iou)

    def prepare(self, frame: Any, cues: Cues | None = None) -> OnnxSetPrepared:
        """Preprocess ``frame`` and run the graph: the query boxes in analysis pixels and their validities."""
        from opencrop.boxes import clip_boxes

        pixels, w, h = self._pixels(frame)
        x, (sx, sy) = preprocess_array(self.preprocess, pixels)
        boxes, validity = self.session.run(["boxes", "validity"], {"image": x})
        qb = clip_boxes(np.asarray(boxes, np.float64) / np.array([sx, sy, sx, sy]), w, h)
        return OnnxSetPrepared(w, h, qb, np.asarray(validity, np.float64), cues.notes if cues is not None else [])

    def score(self, prepared: OnnxSetPrepared, boxes: np.ndarray) -> np.ndarray:
        """``σ(q*) · IoU(b, q*)`` of each box through its best-matching query → ``[N]``."""
        from opencrop.models.setcrop_post import best_query_scores

        return best_query_scores(boxes, prepared.query_boxes, prepared.validity)

    def propose(self, prepared: OnnxSetPrepared, request: Request) -> tuple[np.ndarray, np.ndarray]:
        from opencrop.models.setcrop_post import propose_from_queries

        if request.boxes is not None:
            return super().propose(prepared, request)
        return propose_from_queries(prepared.query_boxes, prepared.validity, prepared.width, prepared.height,
                                    request, self.valid_threshold, self.fit_iou, prepared.notes, self.rank_nms)


@dataclass
class OnnxGenCropPrepared:
    """One image after :meth:`OnnxGenCrop.prepare` (analysis pixels): the weighted crop ``final [4]``, the
    ``proposals [P, 4]`` and their gating ``weights [P]``, the ``subject [4]`` it cropped for and its source, and the
    graph inputs kept to score given boxes."""

    width: int
    height: int
    final: np.ndarray
    proposals: np.ndarray
    weights: np.ndarray
    subject: np.ndarray
    subject_source: str
    feeds: dict[str, np.ndarray] = field(default_factory=dict)


class OnnxGenCrop(_OnnxModel, CandidateScorer):
    """An exported GenCrop (``opencrop.kind = "regressor"``): :meth:`prepare` letterboxes the image in numpy, picks
    the subject (:func:`opencrop.models.gencrop_post.pick_subject`) and runs the graph; ``propose`` is
    :func:`~opencrop.models.gencrop_post.propose_crops`, as the torch model's. Scoring given boxes runs the graph
    again with those boxes (the backbone included). Attributes as :class:`OnnxScorer`."""

    kind = "regressor"
    proposes_boxes = True
    refine = False

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, session: Any = None) -> None:
        from opencrop.models.gencrop_post import Letterbox

        super().__init__(path, threads, session)
        self.preprocess = Letterbox.from_dict(self._preprocess)
        self.use_subject = bool(self.config.get("use_subject", False))

    def prepare(self, frame: Any, cues: Cues | None = None) -> OnnxGenCropPrepared:
        from opencrop.models.gencrop_post import pick_subject, subject_mask

        pixels, w, h = self._pixels(frame)
        cues = cues if cues is not None else Cues(w, h)
        subject, source = pick_subject(cues, w, h)
        lb = self.preprocess
        x = lb.array(pixels)
        if self.use_subject:
            x = np.concatenate([x, lb.mask_array(subject_mask(cues, subject, w, h))], axis=0)
        n = float(lb.size)
        feeds = {"image": x[None].astype(np.float32), "subject": lb.to_input(subject, w, h).astype(np.float32)}
        final, props, weights, _ = self.session.run(
            ["final", "proposals", "weights", "scores"],
            {**feeds, "rois": np.array([[0.0, 0.0, 0.0, n, n]], np.float32)})
        return OnnxGenCropPrepared(w, h, lb.from_input(np.asarray(final, np.float64) * n, w, h)[0],
                                   lb.from_input(np.asarray(props, np.float64) * n, w, h),
                                   np.asarray(weights, np.float64), np.asarray(subject, np.float64), source, feeds)

    def score(self, prepared: OnnxGenCropPrepared, boxes: np.ndarray) -> np.ndarray:
        """The RoI ⊕ RoD scorer's logits ``[N]`` of ``boxes`` ``[N, 4]`` (xyxy analysis pixels)."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(b) == 0:
            return np.zeros(0)
        rois = np.concatenate([np.zeros((len(b), 1)), self.preprocess.to_input(b, prepared.width, prepared.height)],
                              axis=1).astype(np.float32)
        (s,) = self.session.run(["scores"], {**prepared.feeds, "rois": rois})
        return np.asarray(s, np.float64).reshape(-1)

    def propose(self, prepared: OnnxGenCropPrepared, request: Request) -> tuple[np.ndarray, np.ndarray]:
        from opencrop.models.gencrop_post import propose_crops

        if request.boxes is not None:
            b = np.asarray(request.boxes, np.float64).reshape(-1, 4)
            return b, self.score(prepared, b)
        return propose_crops(prepared.final, prepared.proposals, prepared.weights, prepared.subject,
                             prepared.width, prepared.height, request.ratio)


#: runtime class of each ``opencrop.kind``
RUNTIMES: dict[str, type[_OnnxModel]] = {"scorer": OnnxScorer, "set": OnnxSetCrop, "regressor": OnnxGenCrop}


def load_onnx(path: str | os.PathLike[str], name: str | None = None, **cfg: Any) -> Any:
    """The runtime of ``path`` by its kind (:data:`RUNTIMES`: :class:`OnnxScorer`, :class:`OnnxSetCrop`,
    :class:`OnnxGenCrop`); ``name`` (the model asked for) must be the exported model's. The file carries
    its configuration, so no other options are accepted."""
    if cfg:
        raise TypeError(f"an .onnx model carries its configuration; options {sorted(cfg)} cannot be applied to it")
    session = _open_session(Path(path))
    kind = session.get_modelmeta().custom_metadata_map.get("opencrop.kind", "scorer")
    if kind not in RUNTIMES:
        raise ModelFileError(path, f"unknown opencrop.kind {kind!r} (this opencrop runs {sorted(RUNTIMES)})")
    model = RUNTIMES[kind](path, session=session)
    if name is not None and name != model.name:
        raise ModelFileError(path, f"is an export of model {model.name!r}, not {name!r} (use -m {model.name})")
    return model
