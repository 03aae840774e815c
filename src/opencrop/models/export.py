"""ONNX export of the learned candidate scorers: one graph ``image, rois[, extra inputs] → scores``.

The graph is the model's ``forward(images, rois, **extra)`` (:class:`~opencrop.models.learned.LearnedCropModel`)
exported with torch's exporter (``torch.onnx.export(..., dynamo=True)``: ``torch.export`` then onnxscript; needs
``pip install 'opencrop[export]'``) with symbolic shapes:

==============  ===========================  ======================================================================
input / output  shape                        meaning
==============  ===========================  ======================================================================
``image``       ``float32 [1, 3, H, W]``     the preprocessed analysis image (``H``, ``W`` multiples of the model's
                                             ``preprocess.multiple``; any such size)
``rois``        ``float32 [K, 5]``           ``(0, x1, y1, x2, y2)`` network-input pixels, any ``K >= 1``
extra inputs    as the model declares        ``model.export_inputs`` in order (HCIC: ``human_box [1, 4]``)
``scores``      ``float32 [K]``              the model's scores of the rois
==============  ===========================  ======================================================================

A model declares its extra graph inputs with ``export_inputs`` (names of ``forward_scores`` keyword arguments) and
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

__all__ = ["FORMAT", "META_KEYS", "OPSET", "export_onnx", "metadata", "verify_export"]

FORMAT = "opencrop-onnx/1"
OPSET = 18
META_KEYS = ("format", "model", "config", "preprocess", "needs", "analysis_size", "max_candidates", "inputs",
             "weights", "trained", "opencrop_version")


class _ScoreGraph(nn.Module):
    """``forward(image, rois, *extra) → scores`` of a learned model (extra in ``model.export_inputs`` order)."""

    def __init__(self, model: LearnedCropModel) -> None:
        super().__init__()
        self.model = model
        self.extra_names = tuple(model.export_inputs)

    def forward(self, image: Tensor, rois: Tensor, *extra: Tensor) -> Tensor:
        return self.model(image, rois, **dict(zip(self.extra_names, extra, strict=True))).reshape(-1)


def _check_exportable(model: Any) -> None:
    if not isinstance(model, LearnedCropModel):
        raise TypeError(f"only learned models export to ONNX; {getattr(model, 'name', type(model).__name__)!r} is not "
                        "one (the composition model and the baselines need no torch and run as they are)")
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
    return {
        "opencrop.format": FORMAT,
        "opencrop.model": model.name,
        "opencrop.config": json.dumps(model.config, sort_keys=True),
        "opencrop.preprocess": json.dumps(model.preprocess.to_dict(), sort_keys=True),
        "opencrop.needs": json.dumps(sorted(model.needs)),
        "opencrop.analysis_size": str(int(model.analysis_size)),
        "opencrop.max_candidates": str(int(model.max_candidates)),
        "opencrop.inputs": json.dumps(["image", "rois", *model.export_inputs]),
        "opencrop.weights": str(model.weights_source) if trained else "untrained (random weights)",
        "opencrop.trained": "true" if trained else "false",
        "opencrop.opencrop_version": opencrop_version(),
    }


def export_onnx(model: LearnedCropModel, out: str | os.PathLike[str], example_size: tuple[int, int] = (384, 256),
                verbose: bool = False) -> Path:
    """Write ``model`` as one ONNX graph (module docstring) to ``out``, atomically; returns the path.

    ``example_size`` ``(W_in, H_in)``: the network-input size traced (multiples of ``preprocess.multiple``); the
    graph accepts every other such size. Raises ``TypeError`` for a model that cannot be exported,
    ``ImportError`` without onnxscript.
    """
    _check_exportable(model)
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ImportError("opencrop export needs onnxscript and onnx: pip install 'opencrop[export]'") from None
    from torch.export import Dim

    mult = int(model.preprocess.multiple)
    w_in, h_in = (int(v) for v in example_size)
    if w_in % mult or h_in % mult:
        raise ValueError(f"example_size {example_size} must be multiples of {mult}")
    was_training = model.training
    model.eval()
    graph = _ScoreGraph(model).eval()
    image = torch.randn(1, 3, h_in, w_in, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0.0, 0.1 * w_in, 0.1 * h_in, 0.8 * w_in, 0.9 * h_in],
                         [0.0, 0.0, 0.0, float(w_in), float(h_in)]])
    ex = model.export_example(w_in, h_in)
    extra = tuple(ex[n] for n in graph.extra_names)
    hd, wd = Dim("h_units", min=1, max=256), Dim("w_units", min=1, max=256)
    dynamic: tuple[Any, ...] = ({2: mult * hd, 3: mult * wd}, {0: Dim("boxes", min=1)})
    if extra:  # the *extra tuple: the axes the model names in export_dims are symbolic, the others fixed
        dims: dict[str, Any] = {}
        spec = [{ax: dims.setdefault(d, Dim(d, min=1)) for ax, d in model.export_dims.get(n, {}).items()} or None
                for n in graph.extra_names]
        dynamic += (tuple(spec),)
    names = ["image", "rois", *graph.extra_names]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with torch.no_grad():
            ep = torch.export.export(graph, (image, rois, *extra), dynamic_shapes=dynamic, strict=False)
            prog = torch.onnx.export(ep, (image, rois, *extra), dynamo=True, input_names=names,
                                     output_names=["scores"], opset_version=OPSET, verbose=verbose)
        prog.model.metadata_props.update(metadata(model))
        prog.save(str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)
    return out


def verify_export(model: LearnedCropModel, path: str | os.PathLike[str], image: Any = None, boxes: Any = None,
                  cues: Any = None) -> float:
    """Max ``|Δscore|`` between ``model`` (torch: ``prepare`` + ``score``) and its export at ``path``
    (:class:`~opencrop.models.onnx_runtime.OnnxScorer`: numpy preprocessing + onnxruntime) on ``image``
    (``[H, W, 3]`` uint8 analysis pixels; default a fixed random 341×256 image) and ``boxes`` (``[N, 4]`` xyxy
    analysis pixels; default the model's candidates of every common ratio), with the same ``cues``."""
    import numpy as np

    from opencrop.models.onnx_runtime import OnnxScorer

    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (256, 341, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    if boxes is None:
        boxes = np.concatenate([model.candidates((w, h), r) for r in (1.0, 16 / 9, 4 / 5, None)])
    onnx = OnnxScorer(path)
    ref = model.score(model.prepare(image, cues), boxes)
    got = onnx.score(onnx.prepare(image, cues), boxes)
    return float(np.max(np.abs(np.asarray(ref, np.float64) - got))) if len(ref) else 0.0
