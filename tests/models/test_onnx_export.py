"""ONNX export of every registered learned model (opencrop.models.export) and the torch-free onnxruntime path
(opencrop.models.onnx_runtime): numpy preprocessing = torch's, parity of the exported graph with torch on the bundled
photo (max |Δ| ≤ 1e-4 on every output: scores; SetCrop's query boxes and validities; GenCrop's crop, proposals and
weights), crops through ``Cropper``, runs without torch, and the CLI's errors.

The export is the slow part (≈ 15–50 s per model on 2 shared cores): each model is exported once per session; the
GAIC and (small) S2CNet parity runs in the default test run, HCIC and GAFIC are marked slow for that reason (run
with ``-m slow``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from opencrop.api import Cropper
from opencrop.cues.types import Cues, Detections
from opencrop.errors import UntrainedModelError
from opencrop.io import load_frame
from opencrop.models import create_model
from opencrop.models.learned import LearnedCropModel
from opencrop.models.onnx_runtime import OnnxScorer, preprocess_array
from opencrop.models.preprocess import Preprocess

pytest.importorskip("onnxscript", reason="the exporter needs onnxscript (pip install 'opencrop[export]')")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "examples" / "astronaut.jpg"
#: every registered learned model; HCIC and GAFIC with the MobileNetV2 backbone (their VGG16 default is slow to build
#: on CPU; the graph's ops are the same)
#: S2CNet small (node width 64, align 5) with the all-token head, the one that sees the padded object nodes, and the
#: ImageNet backbone (a file of `opencrop models fetch --all`): a random MobileNetV2 gives nearly the same feature at
#: every position, so the scores' spread is float32 noise that ``_model``'s rescaling then amplifies (2.4e-4 with the
#: crop head, 1.2e-3 with this one, on 2026-12-07); with ImageNet features both heads agree to 2e-5
CONFIGS = {"gaic": {}, "hcic": {"backbone": "mobilenet_v2"}, "gafic": {"backbone": "mobilenet_v2"},
           "s2cnet": {"head": "all", "bbox_num": 5, "align_size": 5, "node_dim": 64, "rel_dim": 64, "mlp_dim": 128,
                      "pretrained_backbone": True},
           # the proposers, CPU-sized (same ops as their published sizes); SetCrop with the ImageNet backbone (a file
           # of `opencrop models fetch --all`): a random MobileNetV2 gives the same feature at every position, hence
           # the same decoder output, validity and box for every query
           "setcrop": {"backbone": "mobilenet_v2", "pretrained_backbone": True, "hidden_dim": 64, "enc_layers": 1,
                       "dec_layers": 2, "dim_feedforward": 128, "num_queries": 12, "input_size": 224,
                       "max_input_size": 384},
           "gencrop": {"backbone": "mobilenet_v2", "size": 128, "ff": 256}}
MODELS = [pytest.param("gaic"), pytest.param("hcic", marks=pytest.mark.slow),
          pytest.param("gafic", marks=pytest.mark.slow), pytest.param("s2cnet")]


#: the set predictor and the regressor (their own graph kinds and onnxruntime classes)
PROPOSERS = ["setcrop", "gencrop"]
#: registered learned models that are not exported, each with why; a new model must join CONFIGS or this
NOT_EXPORTED = {
    "outpaint_quality": "not a crop model (GenCrop's bad-outpaint classifier)",
}


def test_every_registered_learned_model_is_covered() -> None:
    from opencrop.models.registry import _LAZY

    missing = set(_LAZY) - set(CONFIGS) - set(NOT_EXPORTED)
    assert not missing, f"add the new learned model(s) {missing} to CONFIGS (or NOT_EXPORTED, saying why)"
    assert not set(CONFIGS) & set(NOT_EXPORTED)


def _model(name: str) -> LearnedCropModel:
    torch.manual_seed(0)
    model = create_model(name, **CONFIGS[name]).eval()
    image = load_frame(PHOTO, model.analysis_size).pixels
    cues = Cues(image.shape[1], image.shape[0])  # S2CNet needs cues (here: none)
    with torch.no_grad():
        if name == "setcrop":  # the −log 99 prior gives every query a validity of ≈ 0.01: spread the logits (std 2)
            _, val = model.query_boxes(model.prepare(image, cues))
            raw = np.log(val / (1 - val)) - float(model.class_embed.bias)  # w · h of each query
            k = 2.0 / max(float(np.std(raw)), 1e-12)
            model.class_embed.weight.mul_(k)
            model.class_embed.bias.fill_(-float(np.mean(raw)) * k)  # centred: validities spread around 0.5
            return model
        # random weights give scores of ~1e-4: scale the last layer so they spread over ~1, and centre them (a scaled
        # bias alone would put them at ~1e3, where float32's rounding step is ~1e-4)
        last = model.head[-1] if name == "gencrop" else [
            m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)][-1]
        prep = model.prepare(image, cues)
        s = model.score(prep, model.candidates(prep, 1.0))
        k = 1.0 / max(float(np.std(s)), 1e-12)
        last.weight.mul_(k)
        if last.bias is not None:
            last.bias.sub_(float(np.mean(s))).mul_(k)
    return model


_EXPORTS: dict[str, tuple[LearnedCropModel, Path]] = {}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    from opencrop.models.export import export_onnx

    def get(name: str) -> tuple[LearnedCropModel, Path]:
        if name not in _EXPORTS:
            model = _model(name)
            path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{name}.onnx")
            _EXPORTS[name] = (model, path)
        return _EXPORTS[name]

    return get


@pytest.mark.parametrize("pre", [Preprocess.gaic(), Preprocess.hcic(), Preprocess.hcic(fixed=True)],
                         ids=["gaic", "hcic-antialias", "hcic-fixed"])
@pytest.mark.parametrize("hw", [(512, 341), (300, 200), (256, 256), (120, 333), (40, 64)])
def test_numpy_preprocess_matches_torch(pre: Preprocess, hw: tuple[int, int]) -> None:
    image = np.random.default_rng(hw[0]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ref, sref = pre(image)
    got, sgot = preprocess_array(pre, image)
    assert got.shape == (1, *ref.shape) and got.dtype == np.float32 and sgot == sref
    assert np.abs(got[0] - ref.numpy()).max() <= 1e-4  # normalised units (≈ 0.02 of one grey level)


@pytest.mark.parametrize("name", MODELS)
def test_onnx_scores_match_torch(name: str, exported) -> None:
    from opencrop.models.export import verify_export

    model, path = exported(name)
    frame = load_frame(PHOTO, model.analysis_size)
    h, w = frame.pixels.shape[:2]
    boxes = np.concatenate([model.candidates((w, h), r) for r in (1.0, 16 / 9, 9 / 16, None)])
    cases = [None]
    if "human_box" in model.export_inputs:  # the partition-aware path (a person) and the "no human" path
        people = Detections(np.array([[150.0, 40.0, 330.0, 500.0]], np.float32), np.array([0.9], np.float32))
        cases = [Cues(w, h, people=people), Cues(w, h)]
    if "object_boxes" in model.export_inputs:  # given boxes (2 real + 3 padded in the graph), detections, none
        objs = np.array([[150.0, 40.0, 330.0, 500.0], [20.0, 300.0, 200.0, 480.0]], np.float32)
        people = Detections(objs[:1], np.array([0.9], np.float32))
        cases = [Cues(w, h, object_boxes=objs), Cues(w, h, people=people), Cues(w, h)]
    for cues in cases:
        ref = model.score(model.prepare(frame, cues), boxes)
        assert np.std(ref) > 0.1  # a real spread of scores: the parity below means something
        assert verify_export(model, path, frame.pixels, boxes, cues) <= 1e-4
    meta = OnnxScorer(path)
    assert (meta.name, meta.needs, meta.preprocess, meta.weights_source) == (name, model.needs, model.preprocess,
                                                                             None)


@pytest.mark.parametrize("name", PROPOSERS)
def test_proposer_exports_match_torch(name: str, exported) -> None:
    from opencrop.models.export import export_differences
    from opencrop.models.onnx_runtime import OnnxGenCrop, OnnxSetCrop, load_onnx

    model, path = exported(name)
    frame = load_frame(PHOTO, model.analysis_size)
    h, w = frame.pixels.shape[:2]
    boxes = np.concatenate([model.candidates((w, h), r) for r in (1.0, 16 / 9, None)])
    person = Detections(np.array([[150.0, 40.0, 330.0, 500.0]], np.float32) * (w / 512), np.array([0.9], np.float32))
    keys = {"setcrop": {"scores", "boxes", "validity"}, "gencrop": {"scores", "final", "proposals", "weights"}}[name]
    for cues in (Cues(w, h), Cues(w, h, people=person)):
        prep = model.prepare(frame.pixels, cues)
        if name == "setcrop":  # real spreads: the parity below means something
            assert np.std(model.query_boxes(prep)[1]) > 0.1
        else:
            assert np.std(model.score(prep, boxes)) > 0.1
        diffs = export_differences(model, path, frame.pixels, boxes, cues)
        assert set(diffs) == keys and max(diffs.values()) <= 1e-4, diffs
    # another input size than the traced one (SetCrop's graph takes any size; GenCrop letterboxes to its square)
    other = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    assert max(export_differences(model, path, other, None, Cues(300, 200)).values()) <= 1e-4
    onnx = load_onnx(path)
    assert isinstance(onnx, OnnxSetCrop if name == "setcrop" else OnnxGenCrop)
    assert (onnx.name, onnx.needs, onnx.preprocess, onnx.weights_source) == (name, model.needs, model.preprocess,
                                                                             None)


@pytest.mark.parametrize("name", PROPOSERS)
def test_cropper_runs_a_proposer_export_like_torch(name: str, exported) -> None:
    """Same crops and notes through the whole pipeline (rules, SetCrop's refinement through its best query)."""
    model, path = exported(name)
    onnx = Cropper(name, weights=str(path), cues=False, random_weights=True)
    ref = Cropper(model, cues=False, random_weights=True)
    for ratio in ("16:9", "1:1", "4:5"):
        a, b = ref.run(PHOTO, [ratio]), onnx.run(PHOTO, [ratio])
        (ca,), (cb,) = a.crops, b.crops
        assert ca.box == cb.box and abs(ca.score - cb.score) <= 1e-4
        assert a.analysis.cues.notes == b.analysis.cues.notes


def test_cropper_runs_the_onnx_file_like_torch(exported) -> None:
    model, path = exported("gaic")
    with pytest.raises(UntrainedModelError):  # exported with random weights: the metadata says so
        Cropper("gaic", weights=str(path), cues=False)
    onnx = Cropper("gaic", weights=str(path), cues=False, random_weights=True)
    assert isinstance(onnx.model, OnnxScorer)
    ref = Cropper(model, cues=False, random_weights=True)
    for ratio in ("16:9", "1:1", "4:5"):
        (a,), (b,) = ref.crop(PHOTO, [ratio]), onnx.crop(PHOTO, [ratio])
        assert a.box == b.box and abs(a.score - b.score) <= 1e-4


@pytest.mark.parametrize("name", ["gaic", *PROPOSERS])
def test_crop_without_torch(name: str, exported, tmp_path: Path) -> None:
    """A process where `import torch` fails crops with the .onnx file (the CLI picks onnxruntime)."""
    _, path = exported(name)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from opencrop.cli import main\n"
            f"rc = main(['crop', {str(PHOTO)!r}, '-m', {name!r}, '--weights', {str(path)!r}, '--random-weights', "
            f"'--no-cues', '-r', '16:9', '--json'])\n"
            "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
            "sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    (c,) = rec["crops"]
    assert c["ratio"] == "16:9" and any("random weights" in n for n in rec["notes"])


def test_metadata_of_a_trained_model() -> None:
    from opencrop.models.export import metadata

    model = create_model("gaic")
    assert metadata(model)["opencrop.trained"] == "false"
    model.weights_source = "/models/gaic.pt"
    meta = metadata(model)
    assert meta["opencrop.trained"] == "true" and meta["opencrop.weights"] == "/models/gaic.pt"
    assert json.loads(meta["opencrop.inputs"]) == ["image", "rois"]
    assert json.loads(metadata(create_model("hcic", backbone="mobilenet_v2"))["opencrop.inputs"]) == [
        "image", "rois", "human_box"]


@pytest.mark.parametrize("argv, msg", [
    (["export", "gaic", "--out", "m.onnx"], "no trained weights"),  # untrained without --random-weights
    (["export", "composition", "--random-weights", "--out", "m.onnx"], "only learned models"),
    (["export", "gaic", "--random-weights", "--out", "m.pt"], "must end in .onnx"),
    (["export", "gaic", "--random-weights", "--config", "[1]", "--out", "m.onnx"], "JSON object"),
])
def test_export_cli_errors(argv: list[str], msg: str, tmp_path: Path, capsys, monkeypatch) -> None:
    from opencrop.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_runtime_option_errors(tmp_path: Path, capsys) -> None:
    from opencrop.cli import main

    assert main(["crop", str(PHOTO), "-m", "gaic", "--runtime", "onnxruntime", "--random-weights"]) == 2
    assert "FILE.onnx" in capsys.readouterr().err
    assert main(["crop", str(PHOTO), "-m", "gaic", "--runtime", "torch", "--weights", "x.onnx"]) == 2
    assert "--runtime torch cannot run" in capsys.readouterr().err


def test_onnx_file_of_another_model_is_refused(exported) -> None:
    from opencrop.errors import ModelFileError

    _, path = exported("gaic")
    with pytest.raises(ModelFileError, match="not 'hcic'"):
        create_model("hcic", weights=str(path))


def test_setcrop_roi_validity_head_exports_match_torch(tmp_path: Path) -> None:
    """SetCrop's ``valid_head="roi"`` option (GAIC's crop head on the query boxes) exports at any input size."""
    from opencrop.models.export import export_differences, export_onnx

    torch.manual_seed(0)
    model = create_model("setcrop", **CONFIGS["setcrop"], valid_head="roi").eval()
    frame = load_frame(PHOTO, model.analysis_size)
    h, w = frame.pixels.shape[:2]
    with torch.no_grad():  # spread the random head's logits so the parity below means something
        prep = model.prepare(frame.pixels, Cues(w, h))
        _, val = model.query_boxes(prep)
        raw = np.log(val / (1 - val)) - float(model.roi_head[-1].bias)
        k = 2.0 / max(float(np.std(raw)), 1e-12)
        model.roi_head[-1].weight.mul_(k)
        model.roi_head[-1].bias.fill_(-float(np.mean(raw)) * k)
        assert np.std(model.query_boxes(model.prepare(frame.pixels, Cues(w, h)))[1]) > 0.1
    path = export_onnx(model, tmp_path / "setcrop-roi.onnx")
    for pixels in (frame.pixels, np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)):
        diffs = export_differences(model, path, pixels, None, Cues(pixels.shape[1], pixels.shape[0]))
        assert max(diffs.values()) <= 1e-4, diffs


def test_setcrop_gafic_validity_head_exports_match_torch(tmp_path: Path) -> None:
    """SetCrop's ``valid_head="gafic"`` option (GAFIC's AGFF + GACE on the query boxes) exports at any input size."""
    import math

    from opencrop.models.export import export_differences, export_onnx

    torch.manual_seed(0)
    model = create_model("setcrop", **CONFIGS["setcrop"], valid_head="gafic").eval()
    frame = load_frame(PHOTO, model.analysis_size)
    h, w = frame.pixels.shape[:2]
    with torch.no_grad():  # spread the random head's logits (std 2, centred) so the parity below means something
        _, val = model.query_boxes(model.prepare(frame.pixels, Cues(w, h)))
        raw = np.log(val / (1 - val))  # 2 · (GACE score − 4) at initialisation
        model.gafic_calib.copy_(torch.tensor([math.log(4.0 / max(float(np.std(raw)), 1e-12)),
                                              float(np.mean(raw)) / 2 + 4.0]))
        assert np.std(model.query_boxes(model.prepare(frame.pixels, Cues(w, h)))[1]) > 0.1
    path = export_onnx(model, tmp_path / "setcrop-gafic.onnx")
    from opencrop.boxes import box_iou

    for pixels in (frame.pixels, np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)):
        ph, pw = pixels.shape[:2]
        boxes = np.concatenate([model.candidates((pw, ph), r) for r in (1.0, 16 / 9, 4 / 5, None)])
        # a box whose two best-matching queries overlap it equally to 1e-5 may pick either on float noise (the
        # untrained queries lie close together): score the others
        qb, _ = model.query_boxes(model.prepare(pixels, Cues(pw, ph)))
        top2 = np.sort(box_iou(torch.as_tensor(boxes), torch.as_tensor(qb)).numpy(), axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-5
        assert clear.mean() > 0.9
        diffs = export_differences(model, path, pixels, boxes[clear], Cues(pw, ph))
        assert max(diffs.values()) <= 1e-4, diffs
