"""ONNX export of every learned crop model: one graph per model, of one of three kinds (``model.export_kind``,
saved as the file's ``opencrop.kind``), exported with torch's exporter (``torch.onnx.export(..., dynamo=True)``:
``torch.export`` then onnxscript; needs ``pip install 'opencrop[export]'``) with symbolic shapes.

**scorer** (GAIC, HCIC, GAFIC, S2CNet): the model's ``forward(images, rois, **extra)``
(:class:`~opencrop.models.learned.LearnedCropModel`):

==============  ===========================  ======================================================================
input / output  shape                        meaning
==============  ===========================  ======================================================================
``image``       ``float32 [1, 3, H, W]``     the preprocessed analysis image (``H``, ``W`` multiples of the model's
                                             ``preprocess.multiple``; any such size)
``rois``        ``float32 [K, 5]``           ``(0, x1, y1, x2, y2)`` network-input pixels, any ``K >= 1``
extra inputs    as the model declares        ``model.export_inputs`` in order (HCIC: ``human_box [1, 4]``)
``scores``      ``float32 [K]``              the model's scores of the rois
==============  ===========================  ======================================================================

**set** (SetCrop): ``image [1, 3, H, W]`` (any size) → ``boxes float32 [Q, 4]`` the final decoder layer's query
boxes, xyxy network-input pixels clipped to the input, and ``validity float32 [Q]`` (σ of the validity logits).

**regressor** (GenCrop): ``image [1, C, S, S]`` (the letterboxed square, C = 3 or 4 with the subject mask),
``subject [1, 4]`` (xyxy input pixels, −1 = none) and ``rois [K, 5]`` (any ``K >= 1``) → ``final [4]`` the weighted
crop and ``proposals [P, 4]`` (normalised xyxy of the square, as :meth:`~opencrop.models.gencrop.GenCrop.forward_crop`),
``weights [P]`` their gating weights and ``scores [K]`` the RoI ⊕ RoD scorer's logits of the rois.

The torch-free post-processing of the set and regressor kinds lives in :mod:`opencrop.models.setcrop_post` and
:mod:`opencrop.models.gencrop_post`, used by the torch models and by the onnxruntime classes alike.

A scorer declares its extra graph inputs with ``export_inputs`` (names of ``forward_scores`` keyword arguments) and
``export_example(width, height)`` (example tensors to trace with); each name must have a torch-free provider in
:data:`opencrop.models.inputs.EXTRA_INPUTS` that computes it from cues at inference. The file's metadata
(``opencrop.*`` keys, :data:`META_KEYS`) carries everything :class:`~opencrop.models.onnx_runtime.OnnxScorer` needs
to crop without torch: model name, config, preprocessing, needs, analysis size, inputs, and where the weights came
from (``opencrop.trained = false`` for ``--random-weights``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from opencrop.models.inputs import EXTRA_INPUTS
from opencrop.models.learned import LearnedCropModel, opencrop_version

__all__ = ["FORMAT", "KINDS", "META_KEYS", "OPSET", "export_differences", "export_onnx", "metadata", "verify_export"]

FORMAT = "opencrop-onnx/1"
OPSET = 18
META_KEYS = ("format", "kind", "model", "config", "preprocess", "needs", "analysis_size", "max_candidates",
             "inputs", "outputs", "weights", "trained", "opencrop_version")
#: graph inputs and outputs of each kind (a scorer adds its ``export_inputs`` after ``rois``)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "scorer": (("image", "rois"), ("scores",)),
    "set": (("image",), ("boxes", "validity")),
    "regressor": (("image", "subject", "rois"), ("final", "proposals", "weights", "scores")),
}


class _ScoreGraph(nn.Module):
    """``forward(image, rois, *extra) → scores`` of a learned model (extra in ``model.export_inputs`` order)."""

    def __init__(self, model: LearnedCropModel) -> None:
        super().__init__()
        self.model = model
        self.extra_names = tuple(model.export_inputs)

    def forward(self, image: Tensor, rois: Tensor, *extra: Tensor) -> Tensor:
        return self.model(image, rois, **dict(zip(self.extra_names, extra, strict=True))).reshape(-1)


class _SetGraph(nn.Module):
    """``forward(image) → (boxes [Q, 4], validity [Q])`` of a set predictor (SetCrop), batch of one."""

    def __init__(self, model: LearnedCropModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        boxes, validity = self.model._query_boxes(self.model.forward_features(image))  # type: ignore[attr-defined]
        return boxes[0], validity[0]


class _RegressorGraph(nn.Module):
    """``forward(image, subject, rois) → (final [4], proposals [P, 4], weights [P], scores [K])`` of GenCrop."""

    def __init__(self, model: LearnedCropModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, subject: Tensor, rois: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.model.forward_crop(image, subject)  # type: ignore[attr-defined]
        scores = self.model.forward_scores(out["features"], rois).reshape(-1)
        return out["final"][0], out["proposals"][0], out["weights"][0], scores


def _check_exportable(model: Any) -> None:
    if not isinstance(model, LearnedCropModel):
        raise TypeError(f"only learned models export to ONNX; {getattr(model, 'name', type(model).__name__)!r} is not "
                        "one (the composition model and the baselines need no torch and run as they are)")
    if getattr(model, "precision", "fp32") != "fp32":
        raise ValueError(f"model {model.name!r} has precision {model.precision!r}: the ONNX export writes the "
                         "float32 graph; call set_precision('fp32') first")
    if model.export_kind not in KINDS:
        raise TypeError(f"model {model.name!r} has export_kind {model.export_kind!r}; known: {sorted(KINDS)}")
    if model.export_kind != "scorer":
        return
    if type(model).forward_scores is LearnedCropModel.forward_scores:
        raise TypeError(f"model {model.name!r} is not a candidate scorer (no forward_scores); its export is not "
                        "implemented yet: it must declare its own graph inputs and outputs")
    unknown = [n for n in model.export_inputs if n not in EXTRA_INPUTS]
    if unknown:
        raise TypeError(f"model {model.name!r} declares export inputs {unknown} without a torch-free provider in "
                        f"opencrop.models.inputs.EXTRA_INPUTS (known: {sorted(EXTRA_INPUTS)})")


def metadata(model: LearnedCropModel) -> dict[str, str]:
    """The ``opencrop.*`` metadata of ``model``'s ONNX file (strings)."""
    trained = model.weights_source is not None
    ins, outs = KINDS[model.export_kind]
    if model.export_kind == "scorer":
        ins = (*ins, *model.export_inputs)
    return {
        "opencrop.format": FORMAT,
        "opencrop.kind": model.export_kind,
        "opencrop.model": model.name,
        "opencrop.config": json.dumps(model.config, sort_keys=True),
        "opencrop.preprocess": json.dumps(model.preprocess.to_dict(), sort_keys=True),
        "opencrop.needs": json.dumps(sorted(model.needs)),
        "opencrop.analysis_size": str(int(model.analysis_size)),
        "opencrop.max_candidates": str(int(model.max_candidates)),
        "opencrop.inputs": json.dumps(list(ins)),
        "opencrop.outputs": json.dumps(list(outs)),
        "opencrop.weights": str(model.weights_source) if trained else "untrained (random weights)",
        "opencrop.trained": "true" if trained else "false",
        "opencrop.opencrop_version": opencrop_version(),
    }


def _graph_of(model: LearnedCropModel, example_size: tuple[int, int]) -> tuple[nn.Module, tuple[Tensor, ...], Any]:
    """The module to export, the example inputs to trace it with and their symbolic axes, by ``export_kind``."""
    from torch.export import Dim

    gen = torch.Generator().manual_seed(0)
    if model.export_kind == "regressor":  # the letterboxed square: fixed size, any number of rois
        n = int(model.size)  # type: ignore[attr-defined]
        image = torch.randn(1, int(model.in_channels), n, n, generator=gen)  # type: ignore[attr-defined]
        subject = torch.tensor([[0.3 * n, 0.2 * n, 0.6 * n, 0.9 * n]])
        rois = torch.tensor([[0.0, 0.1 * n, 0.1 * n, 0.8 * n, 0.9 * n], [0.0, 0.0, 0.0, float(n), float(n)]])
        return _RegressorGraph(model), (image, subject, rois), (None, None, {0: Dim("boxes", min=1)})
    mult = int(getattr(model.preprocess, "multiple", 1))
    w_in, h_in = (int(v) for v in example_size)
    if w_in % mult or h_in % mult:
        raise ValueError(f"example_size {example_size} must be multiples of {mult}")
    image = torch.randn(1, 3, h_in, w_in, generator=gen)
    if mult > 1:
        hd, wd = Dim("h_units", min=1, max=256), Dim("w_units", min=1, max=256)
        image_dims = {2: mult * hd, 3: mult * wd}
    else:
        image_dims = {2: Dim("height", min=64, max=4096), 3: Dim("width", min=64, max=4096)}
    if model.export_kind == "set":
        return _SetGraph(model), (image,), (image_dims,)
    graph = _ScoreGraph(model)
    rois = torch.tensor([[0.0, 0.1 * w_in, 0.1 * h_in, 0.8 * w_in, 0.9 * h_in],
                         [0.0, 0.0, 0.0, float(w_in), float(h_in)]])
    ex = model.export_example(w_in, h_in)
    extra = tuple(ex[n] for n in graph.extra_names)
    dynamic: tuple[Any, ...] = (image_dims, {0: Dim("boxes", min=1)})
    if extra:  # the *extra tuple: the axes the model names in export_dims are symbolic, the others fixed
        dims: dict[str, Any] = {}
        spec = [{ax: dims.setdefault(d, Dim(d, min=1)) for ax, d in model.export_dims.get(n, {}).items()} or None
                for n in graph.extra_names]
        dynamic += (tuple(spec),)
    return graph, (image, rois, *extra), dynamic


def export_onnx(model: LearnedCropModel, out: str | os.PathLike[str], example_size: tuple[int, int] = (384, 256),
                verbose: bool = False) -> Path:
    """Write ``model`` as one ONNX graph (module docstring) to ``out``, atomically; returns the path.

    ``example_size`` ``(W_in, H_in)``: the network-input size traced (multiples of ``preprocess.multiple``); the
    graph accepts every other such size (GenCrop's square is fixed by its ``size``). Raises ``TypeError`` for a
    model that cannot be exported, ``ImportError`` without onnxscript.
    """
    _check_exportable(model)
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ImportError("opencrop export needs onnxscript and onnx: pip install 'opencrop[export]'") from None
    graph, args, dynamic = _graph_of(model, example_size)
    names, outputs = json.loads(metadata(model)["opencrop.inputs"]), list(KINDS[model.export_kind][1])
    was_training = model.training
    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with torch.no_grad():
            ep = torch.export.export(graph.eval(), args, dynamic_shapes=dynamic, strict=False)
            prog = torch.onnx.export(ep, args, dynamo=True, input_names=names, output_names=outputs,
                                     opset_version=OPSET, verbose=verbose)
        prog.model.metadata_props.update(metadata(model))
        prog.save(str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)
    return out


def export_differences(model: LearnedCropModel, path: str | os.PathLike[str], image: Any = None, boxes: Any = None,
                       cues: Any = None) -> dict[str, float]:
    """Max ``|Δ|`` per output between ``model`` (torch ``prepare`` + ``propose`` / ``score``) and its export at
    ``path`` (:func:`~opencrop.models.onnx_runtime.load_onnx`: numpy preprocessing + onnxruntime) on ``image``
    (``[H, W, 3]`` uint8 analysis pixels; default a fixed random 341×256 image), ``boxes`` (``[N, 4]`` xyxy
    analysis pixels; default the model's candidates of every common ratio) and the same ``cues``.

    Keys: ``scores`` (of ``boxes``) for every kind; ``boxes`` and ``validity`` (set); ``final``, ``proposals`` and
    ``weights`` (regressor). Boxes are compared normalised by the image's width and height."""
    import copy

    import numpy as np

    from opencrop.models.onnx_runtime import load_onnx

    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (256, 341, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    if boxes is None:
        boxes = np.concatenate([model.candidates((w, h), r) for r in (1.0, 16 / 9, 4 / 5, None)])
    onnx = load_onnx(path)
    norm = np.array([w, h, w, h], np.float64)

    def d(a: Any, b: Any, scale: Any = 1.0) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise AssertionError(f"shapes differ: torch {a.shape}, onnx {b.shape}")
        return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0

    ref = model.prepare(image, copy.deepcopy(cues))  # each side gets its own cues (notes are appended to them)
    got = onnx.prepare(image, copy.deepcopy(cues))
    out = {"scores": d(model.score(ref, boxes), onnx.score(got, boxes))}
    if model.export_kind == "set":
        qb, val = model.query_boxes(ref)  # type: ignore[attr-defined]
        out |= {"boxes": d(qb, got.query_boxes, norm), "validity": d(val, got.validity)}
    elif model.export_kind == "regressor":
        out |= {"final": d(ref.final, got.final, norm), "proposals": d(ref.proposals, got.proposals, norm),
                "weights": d(ref.weights, got.weights)}
    return out


def verify_export(model: LearnedCropModel, path: str | os.PathLike[str], image: Any = None, boxes: Any = None,
                  cues: Any = None) -> float:
    """The largest of :func:`export_differences` (one number: ``max |Δ|`` over every output)."""
    return max(export_differences(model, path, image, boxes, cues).values())
