"""The contract between the crop pipeline and every crop model.

A crop model declares

* ``name`` — its registry name;
* ``preprocess`` — the one input transform (:class:`~opencrop.models.preprocess.Preprocess`) that training,
  evaluation and cropping all apply to the frame's pixels (``None`` for models without a network);
* ``needs`` — the cues it uses at inference (``"faces"``, ``"people"``, ``"objects"``, ``"saliency"``,
  ``"person_mask"``) and the record fields it uses in training and evaluation (``"human_box"``,
  ``"object_boxes"``, ``"subject_box"``, ``"subject_mask"``, ``"heatmap"``); see :data:`CUE_NAMES`,
  :data:`FIELD_NAMES`;
* ``analysis_size`` — long side, in pixels, of the frame it wants to see (the pipeline decodes to at least this);

and implements

* ``prepare(frame, cues) -> prepared`` — look at the image once (the backbone pass of a learned model);
* ``propose(prepared, request) -> (boxes [M, 4], scores [M])`` — crops for one request, **xyxy float pixels of
  the frame's analysis image**, higher scores better, comparable within one image.

Every surface (``Cropper.crop``, ``opencrop eval``, the trainer's validation, the service, batch) calls these two
methods and nothing else of a model. Three families implement ``propose``:

* **candidate scorers** (:class:`CandidateScorer`: GAIC, HCIC, GAFIC, S2CNet, composition, baselines) score a
  candidate set — the request's ``boxes`` when given (annotated crops in evaluation), else sliding windows of
  the requested ratio — and may skip candidates the request's ``allow`` mask rules out;
* **set predictors** (SetCrop) return their own boxes; they score given ``boxes`` through their best-matching
  prediction;
* **regressors** (GenCrop) return one box for the subject in ``cues``.

The pipeline then applies the hard rules (:mod:`opencrop.rules`) and refinement on top of any model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from opencrop.cues.types import Cues

if TYPE_CHECKING:
    from opencrop.io import Frame

__all__ = ["CUE_NAMES", "FIELD_NAMES", "CandidateScorer", "CropModel", "Request", "pixels_of"]

#: cues a model may ask the pipeline to run (:func:`opencrop.cues.analyze`)
CUE_NAMES = frozenset({"faces", "people", "objects", "saliency", "person_mask"})
#: dataset record fields a model may need in training / evaluation (:class:`opencrop.data.record.CropRecord`);
#: they reach ``prepare`` as attributes of :class:`~opencrop.cues.types.Cues` in analysis pixels
FIELD_NAMES = frozenset({"human_box", "object_boxes", "subject_box", "subject_mask", "heatmap"})


@dataclass(frozen=True)
class Request:
    """What the pipeline asks of a model for one output.

    Attributes:
        ratio: wanted aspect ``w / h``; ``None`` = any aspect (benchmarks with free-form GT crops).
        boxes: ``[N, 4]`` xyxy analysis pixels to score exactly (annotated crops, a benchmark's candidate set);
            a model then returns these boxes, in this order, with their scores.
        allow: ``boxes [N, 4] -> bool [N]``: the hard rules' mask; a candidate scorer need not score (and then
            returns ``-inf`` for) the boxes it rules out. ``None`` allows everything.
        top_k: how many distinct boxes the caller wants at least (runners-up); a proposer returns at least this
            many when it can.
    """

    ratio: float | None = None
    boxes: np.ndarray | None = None
    allow: Callable[[np.ndarray], np.ndarray] | None = None
    top_k: int = 1


@runtime_checkable
class CropModel(Protocol):
    """See the module docstring."""

    name: str
    needs: frozenset[str]
    preprocess: Any
    analysis_size: int

    def prepare(self, frame: Frame | np.ndarray, cues: Cues | None = None) -> Any: ...

    def propose(self, prepared: Any, request: Request) -> tuple[np.ndarray, np.ndarray]: ...


def pixels_of(frame: Any) -> np.ndarray:
    """The ``[H, W, 3]`` uint8 analysis pixels of a :class:`~opencrop.io.Frame` (or of a bare array)."""
    px = getattr(frame, "pixels", frame)
    if not isinstance(px, np.ndarray) or px.ndim != 3 or px.shape[2] != 3 or px.shape[0] == 0 or px.shape[1] == 0:
        raise ValueError(f"expected a Frame or an [H, W, 3] uint8 image, got shape {getattr(px, 'shape', None)}")
    return px


class CandidateScorer:
    """Base of the models that score candidate crops: ``propose`` = score the request's boxes, or the sliding
    windows of the requested ratio (:func:`opencrop.candidates.ratio_windows` at the analysis size).

    Subclasses implement :meth:`prepare` and :meth:`score`; ``prepared`` must expose ``width`` / ``height``
    (analysis pixels) or be a ``(width, height)`` pair.
    """

    name: str = "scorer"
    needs: frozenset[str] = frozenset()
    preprocess: Any = None
    analysis_size: int = 512
    #: cap on sliding windows per ratio (the scorer batches them all in one call)
    max_candidates: int = 1500

    def score(self, prepared: Any, boxes: np.ndarray) -> np.ndarray:
        """``[N]`` scores of ``boxes`` ``[N, 4]`` (xyxy analysis pixels)."""
        raise NotImplementedError

    def candidates(self, prepared: Any, ratio: float | None) -> np.ndarray:
        """``[N, 4]`` xyxy analysis-pixel candidates: windows of ``ratio``, or the GAIC grid when ``None``."""
        from opencrop.candidates import gaic_grid, ratio_windows

        w, h = _size_of(prepared)
        if ratio is None:
            return gaic_grid(w, h)
        return ratio_windows(w, h, ratio, max_count=self.max_candidates)

    def propose(self, prepared: Any, request: Request) -> tuple[np.ndarray, np.ndarray]:
        """Score ``request.boxes`` (or the candidates of ``request.ratio``) → ``(boxes [N, 4], scores [N])``;
        boxes that ``request.allow`` rules out are not scored and get ``-inf``."""
        boxes = request.boxes if request.boxes is not None else self.candidates(prepared, request.ratio)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if request.allow is None:
            return boxes, np.asarray(self.score(prepared, boxes), np.float64).reshape(-1)
        ok = np.asarray(request.allow(boxes), bool)
        out = np.full(len(boxes), -np.inf)
        if ok.any():
            out[ok] = np.asarray(self.score(prepared, boxes[ok]), np.float64).reshape(-1)
        return boxes, out


def _size_of(prepared: Any) -> tuple[int, int]:
    if hasattr(prepared, "width") and hasattr(prepared, "height"):
        return int(prepared.width), int(prepared.height)
    w, h = prepared
    return int(w), int(h)
