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
from opencrop.models.base import CandidateScorer, pixels_of
from opencrop.models.inputs import EXTRA_INPUTS
from opencrop.models.preprocess import Preprocess

__all__ = ["OnnxPrepared", "OnnxScorer", "is_onnx_file", "load_onnx", "preprocess_array", "resize_matrix"]

_FORMAT = "opencrop-onnx/1"  # = opencrop.models.export.FORMAT (that module imports torch)


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


class OnnxScorer(CandidateScorer):
    """An exported candidate scorer run by onnxruntime (module docstring).

    Args:
        path: the ``.onnx`` file written by ``opencrop export``.
        threads: onnxruntime intra-op threads (default: its own choice).

    Attributes (from the file's metadata): ``name``, ``needs``, ``preprocess``, ``analysis_size``, ``config``,
    ``weights_source`` (``None`` when exported with ``--random-weights``: the Cropper then refuses it unless
    ``random_weights=True``).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("running an .onnx model needs onnxruntime: pip install onnxruntime") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(self.path, "no such ONNX file")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a damaged file
            raise ModelFileError(self.path, f"onnxruntime cannot load it ({type(e).__name__}: {e})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("opencrop.format") != _FORMAT:
            raise ModelFileError(self.path, f"not an opencrop model export (metadata opencrop.format is "
                                            f"{meta.get('opencrop.format')!r}, expected {_FORMAT!r})")
        try:
            self.name = meta["opencrop.model"]
            self.config: dict[str, Any] = json.loads(meta["opencrop.config"])
            self.preprocess = Preprocess.from_dict(json.loads(meta["opencrop.preprocess"]))
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
        unknown = [n for n in self.input_names[2:] if n not in EXTRA_INPUTS]
        if graph_inputs != self.input_names or unknown:
            raise ModelFileError(self.path, f"graph inputs {graph_inputs} do not match the metadata "
                                            f"{self.input_names} (or need unknown providers {unknown})")

    def prepare(self, frame: Any, cues: Cues | None = None) -> OnnxPrepared:
        """Preprocess ``frame`` (a :class:`~opencrop.io.Frame` or ``[H, W, 3]`` uint8 analysis pixels) and compute
        the extra inputs from ``cues``."""
        try:
            pixels = pixels_of(frame)
        except ValueError as e:
            raise ValueError(f"{self.name}.prepare: {e}") from None
        h, w = int(pixels.shape[0]), int(pixels.shape[1])
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


def load_onnx(path: str | os.PathLike[str], name: str | None = None, **cfg: Any) -> OnnxScorer:
    """:class:`OnnxScorer` of ``path``; ``name`` (the model asked for) must be the exported model's. The file carries
    its configuration, so no other options are accepted."""
    if cfg:
        raise TypeError(f"an .onnx model carries its configuration; options {sorted(cfg)} cannot be applied to it")
    model = OnnxScorer(path)
    if name is not None and name != model.name:
        raise ModelFileError(path, f"is an export of model {model.name!r}, not {name!r} (use -m {model.name})")
    return model
