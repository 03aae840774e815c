"""Base class of every learned crop scorer (GAIC, HCIC, GAFIC, S2CNet …).

A :class:`LearnedCropModel` is both a ``torch.nn.Module`` (used by :mod:`opencrop.train`) and a
:class:`~opencrop.models.base.CropModel` (used by the Cropper and ``opencrop eval``):

* training / batch inference: ``forward(images[B,3,H,W], rois[K,5], **extra) -> scores[K]``, built from
  :meth:`~LearnedCropModel.forward_features` (one backbone pass per image) and
  :meth:`~LearnedCropModel.forward_scores` (any number of boxes against those features);
* :meth:`~LearnedCropModel.compute_loss` takes the trainer's collated batch (contract below) and returns a dict
  of scalar tensors with key ``"loss"``;
* CropModel protocol: :meth:`prepare` preprocesses the image and runs the backbone once under
  ``torch.inference_mode()``; :meth:`score` maps any number of boxes into the network input and scores them in
  one call. One ``prepare`` serves every candidate of every requested aspect ratio.
* Precision (:attr:`~LearnedCropModel.precision`, ``create_model(name, precision="bf16")``): ``"fp32"`` (default)
  or, for the models whose :attr:`~LearnedCropModel.precisions` list it, ``"bf16"``: :meth:`score` then runs the
  per-candidate network under the model's reduced-precision context (:meth:`~LearnedCropModel.precision_context`,
  CPU only, bfloat16 products with float32 accumulation). The backbone (:meth:`prepare`) stays float32: in bf16
  its speed-up was inconsistent and it caused most of the score differences (``docs/benchmarks-learned.md``). Training,
  ``forward`` and export stay float32.

Box conventions: ``rois`` rows are ``(batch_index, x1, y1, x2, y2)`` in **network-input pixels** (the resized
image, systems.md §1.2 "GAIC / HCIC RoI ops input"); :meth:`score` takes xyxy float pixels of the analysis image
given to :meth:`prepare` and rescales x by ``sx = W_in / W`` and y by ``sy = H_in / H``.

Collated training batch (produced by :func:`opencrop.train.datasets.collate`), ``B`` images, ``K`` crops in all:

==============  ==========================  ==================================================================
key             shape / type                meaning
==============  ==========================  ==================================================================
``image``       ``Tensor[B, 3, H, W]``      preprocessed input (all images of a batch share one size)
``rois``        ``Tensor[K, 5]``            ``(batch_index, x1, y1, x2, y2)``, input pixels
``mos``         ``Tensor[K]``               raw crop scores (GAICD MOS in [1, 5], CPC mean votes)
``counts``      ``Tensor[B]`` int64         crops per image (rows of ``rois`` are grouped per image, in order)
``human_box``   ``Tensor[B, 4]``            xyxy input pixels of the main person, all ``-1`` when none
``heatmap``     ``Tensor[B, 1, 64, 64]``    pseudo heat map in [0, 1] (only when a heat-map dir is configured)
``name``        ``list[str]``               record names
``scale``       ``Tensor[B, 2]``            ``(sx, sy)`` used to map source boxes to input pixels
==============  ==========================  ==================================================================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from opencrop.cues.types import Cues
from opencrop.models.base import CandidateScorer, pixels_of
from opencrop.models.checkpoint import (  # re-exported: the checkpoint I/O lives there
    build_with_weights,
    checkpoint_of,
    load_checkpoint_file,
    load_state,
    load_weights,
    opencrop_version,
    save_weights,
)
from opencrop.models.preprocess import Preprocess

__all__ = ["PRECISIONS", "LearnedCropModel", "PreparedImage", "bf16_supported", "build_with_weights",
           "load_checkpoint_file", "opencrop_version"]

#: inference precisions of :meth:`LearnedCropModel.prepare` / :meth:`~LearnedCropModel.score`
PRECISIONS = ("fp32", "bf16")


def bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively for oneDNN (avx512_bf16 / AMX); without it torch emulates it,
    slower than float32, so ``precision="bf16"`` is refused there rather than silently slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class PreparedImage:
    """What :meth:`LearnedCropModel.prepare` computed for one image.

    Attributes:
        features: the model's feature object for a batch of one (whatever ``forward_features`` returns).
        width, height: size of the analysis image that boxes given to :meth:`LearnedCropModel.score` refer to.
        input_size: ``(W_in, H_in)`` of the network input.
        sx, sy: box scale factors analysis pixels → input pixels.
        extra: model-specific keyword tensors for ``forward_scores`` (e.g. HCIC's human box), batch of one.
    """

    features: Any
    width: int
    height: int
    input_size: tuple[int, int]
    sx: float
    sy: float
    extra: dict[str, Tensor] = field(default_factory=dict)


class LearnedCropModel(nn.Module, CandidateScorer):
    """A learned crop scorer. Subclasses implement :meth:`forward_features`, :meth:`forward_scores` and
    :meth:`compute_loss`; they may override :meth:`extra_from_cues` and :meth:`batch_extra` to feed extra
    inputs (human boxes, heat maps) to :meth:`forward_scores`.

    Args:
        preprocess: the input preprocessing (:class:`~opencrop.models.preprocess.Preprocess`).
        config: the keyword arguments that rebuild this model through ``create_model(self.name, **config)``;
            saved inside checkpoints.

    Class attributes:
        name: registry name (``"gaic"``).
        needs: cues the model uses at inference (subset of ``{"faces", "people", ...}``).
    """

    name: str = "learned"
    needs: frozenset[str] = frozenset()
    #: long side of the frame the model is given in training, evaluation and cropping (one rule for all three)
    analysis_size: int = 512
    #: the graph :mod:`opencrop.models.export` writes: ``"scorer"`` (image + boxes → scores), ``"set"`` (image →
    #: query boxes + validities) or ``"regressor"`` (image + subject + boxes → crop, proposals, weights, scores)
    export_kind: str = "scorer"
    #: keyword inputs of ``forward_scores`` that an exported ONNX graph takes after ``image, rois``, in order; each
    #: needs a torch-free provider in :data:`opencrop.models.inputs.EXTRA_INPUTS` (:mod:`opencrop.models.export`)
    export_inputs: tuple[str, ...] = ()
    #: symbolic axes of those inputs, ``{input: {axis: dim name}}`` (e.g. a variable number of object boxes:
    #: ``{"object_boxes": {1: "objects"}}``); unnamed axes are fixed at the example's size
    export_dims: dict[str, dict[int, str]] = {}  # noqa: RUF012  (read-only class default)
    #: inference precisions this model supports (:meth:`set_precision`); ``"bf16"`` only where measured and tested
    precisions: tuple[str, ...] = ("fp32",)

    def __init__(self, preprocess: Preprocess, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.config: dict[str, Any] = dict(config or {})
        #: where the trained weights came from (path or tag); ``None`` = random initialisation
        self.weights_source: str | None = None
        #: precision of :meth:`score` (:meth:`set_precision`; not saved with the weights)
        self.precision: str = "fp32"

    # ------------------------------------------------------------------ inference precision
    def set_precision(self, precision: str) -> LearnedCropModel:
        """Set the inference precision (:meth:`score`; :meth:`prepare` stays float32) → ``self``.

        Raises:
            ValueError: ``precision`` not one of :data:`PRECISIONS`, not in this model's :attr:`precisions`, or
                ``"bf16"`` on a CPU without native bfloat16 (:func:`bf16_supported`).
        """
        self.precision = self.check_precision(precision)
        return self

    @classmethod
    def check_precision(cls, precision: str) -> str:
        """``precision`` if this model can run it here, else the ValueError of :meth:`set_precision`."""
        if precision not in PRECISIONS:
            raise ValueError(f"{cls.name}: precision must be one of {PRECISIONS}, got {precision!r}")
        if precision not in cls.precisions:
            raise ValueError(f"{cls.name}: precision {precision!r} is not supported by this model (it supports "
                             f"{', '.join(cls.precisions)}); bf16 inference is implemented for gaic and s2cnet")
        if precision == "bf16" and not bf16_supported():
            raise ValueError(f"{cls.name}: precision 'bf16' needs a CPU with native bfloat16 (avx512_bf16 or AMX, "
                             "as oneDNN reports); this one would emulate it, slower than fp32")
        return precision

    @contextlib.contextmanager
    def precision_context(self, stage: str) -> Iterator[None]:
        """The context :meth:`prepare` (``stage="prepare"``) and :meth:`score` (``"score"``) run the network under:
        nothing at fp32 and for ``prepare``; ``score`` at bf16 under ``torch.autocast("cpu", torch.bfloat16)``
        (a model may override it, as S2CNet does).

        Raises:
            ValueError: bf16 with the model on a device other than the CPU.
        """
        if self.precision == "fp32" or stage == "prepare":
            yield
            return
        if self.device.type != "cpu":
            raise ValueError(f"{self.name}: precision {self.precision!r} is for CPU inference; the model is on "
                             f"{self.device} (set_precision('fp32') there)")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    # ------------------------------------------------------------------ network
    def forward_features(self, images: Tensor) -> Any:
        """``images`` ``Tensor[B, 3, H, W]`` (preprocessed) → model-specific features (one backbone pass)."""
        raise NotImplementedError

    def forward_scores(self, features: Any, rois: Tensor, **extra: Tensor) -> Tensor:
        """Score ``rois`` ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` input pixels → ``Tensor[K]``."""
        raise NotImplementedError

    def forward(self, images: Tensor, rois: Tensor, **extra: Tensor) -> Tensor:
        """``images`` ``Tensor[B, 3, H, W]``, ``rois`` ``Tensor[K, 5]`` → scores ``Tensor[K]``."""
        return self.forward_scores(self.forward_features(images), rois, **extra)

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Training loss on a collated batch (module docstring) → ``{"loss": scalar, ...parts}``."""
        raise NotImplementedError

    def batch_extra(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Keyword inputs of :meth:`forward_scores` taken from a collated batch (none by default)."""
        return {}

    def extra_from_cues(
        self, cues: Cues | None, width: int, height: int, sx: float, sy: float
    ) -> dict[str, Tensor]:
        """Keyword inputs of :meth:`forward_scores` derived from cues at inference (none by default).

        ``cues`` refer to the ``width × height`` analysis image; ``(sx, sy)`` map them to input pixels.
        """
        return {}

    def export_example(self, width: int, height: int) -> dict[str, Tensor]:
        """Example tensors of :attr:`export_inputs` for a ``width × height`` network input (the ONNX export traces
        with them; choose values that take the model's main path, e.g. a real human box)."""
        return {}

    def predict_batch(self, batch: dict[str, Any]) -> Tensor:
        """Scores ``Tensor[K]`` of every roi of a collated batch (validation / evaluation)."""
        return self(batch["image"], batch["rois"], **self.batch_extra(batch))

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ CropModel protocol
    def prepare(self, frame: Any, cues: Cues | None = None) -> PreparedImage:
        """Preprocess ``frame`` (a :class:`~opencrop.io.Frame` or ``[H, W, 3]`` uint8 RGB analysis pixels) and run
        the backbone once (eval mode, no grad)."""
        try:
            image = pixels_of(frame)
        except ValueError as e:
            raise ValueError(f"{self.name}.prepare: {e}") from None
        h, w = int(image.shape[0]), int(image.shape[1])
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                x, (sx, sy) = self.preprocess(image)
                x = x.to(self.device)
                with self.precision_context("prepare"):
                    feats = self.forward_features(x[None])
                if self.precision != "fp32":  # float32 features even if the caller ran prepare under autocast
                    feats = _float32(feats)
                extra = self.extra_from_cues(cues, w, h, sx, sy)
                extra = {k: v.to(self.device) for k, v in extra.items()}
        finally:
            self.train(was_training)
        return PreparedImage(feats, w, h, (int(x.shape[2]), int(x.shape[1])), sx, sy, extra)

    def score(self, prepared: PreparedImage, boxes: np.ndarray) -> np.ndarray:
        """Score ``boxes`` (``[N, 4]`` xyxy float pixels of the prepared image) → ``ndarray[N]`` float32.

        All boxes go through the head in one call; no Python loop over boxes.
        """
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if b.shape[0] == 0:
            return np.zeros((0,), dtype=np.float32)
        scale = np.array([prepared.sx, prepared.sy, prepared.sx, prepared.sy], dtype=np.float32)
        rois = np.concatenate([np.zeros((b.shape[0], 1), np.float32), b * scale], axis=1)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), self.precision_context("score"):
                out = self.forward_scores(prepared.features, torch.from_numpy(rois).to(self.device), **prepared.extra)
        finally:
            self.train(was_training)
        return out.reshape(-1).float().cpu().numpy()

    # ------------------------------------------------------------------ weights (opencrop.models.checkpoint)
    def checkpoint(self, source: str = "opencrop") -> dict[str, Any]:
        """Model file content: ``{"model", "config", "opencrop_version", "source"}``."""
        return checkpoint_of(self, source)

    def save_weights(self, path: str | os.PathLike[str], source: str = "opencrop") -> Path:
        """Write :meth:`checkpoint` atomically, with its ``model_sha256``
        (:func:`~opencrop.models.checkpoint.save_atomic`)."""
        return save_weights(self, path, source)

    def load_weights(self, path: str | os.PathLike[str], strict: bool = True) -> dict[str, Any]:
        """Load an opencrop model file or training-run checkpoint into this model (``weights_source`` := path);
        returns the checkpoint dict. See :func:`opencrop.models.checkpoint.load_weights`."""
        return load_weights(self, path, strict)

    def load_state(
        self, state: dict[str, Tensor], source: str | os.PathLike[str] | None = None, strict: bool = True
    ) -> None:
        """``load_state_dict`` with a :class:`~opencrop.errors.ModelFileError` that names every mismatch."""
        load_state(self, state, source, strict)


def _float32(feats: Any) -> Any:
    """Reduced-precision feature tensors (in a tensor, tuple, list or dict) back to float32: boxes are mapped onto
    the features in float32 (bfloat16 resolves 2 px at 384 px), so only the products run in bfloat16."""
    if isinstance(feats, Tensor):
        return feats.float() if feats.dtype in (torch.bfloat16, torch.float16) else feats
    if isinstance(feats, tuple | list):
        return type(feats)(_float32(f) for f in feats)
    if isinstance(feats, dict):
        return {k: _float32(v) for k, v in feats.items()}
    return feats
