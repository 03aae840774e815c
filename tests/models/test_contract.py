"""Contract tests over every registered crop model (the timm way): it builds, declares the contract attributes,
runs on a real photo, proposes boxes inside the image with the requested aspect, scores given boxes in order, and —
for learned models — gradients reach every trainable parameter and weights survive a save/load round trip.

A model added to the registry is tested here without any change to this file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencrop.cues.types import Cues
from opencrop.io import load_frame
from opencrop.models import create_model, list_models
from opencrop.models.base import CUE_NAMES, FIELD_NAMES, CandidateScorer, Request

PHOTO = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"
#: registered models that are not croppers (trained with the shared trainer; Cropper refuses them)
NOT_CROPPERS = ("outpaint_quality",)
MODELS = [n for n in list_models() if n not in NOT_CROPPERS]
#: small, quick configurations of the learned models (the defaults are tested by each model's own tests)
SMALL = {"hcic": {"backbone": "mobilenet_v2"}, "gafic": {"backbone": "mobilenet_v2"},
         "setcrop": {"backbone": "mobilenet_v2", "hidden_dim": 64, "nheads": 4, "enc_layers": 1, "dec_layers": 2,
                     "dim_feedforward": 128, "num_queries": 16, "input_size": 256, "max_input_size": 512,
                     "train_sizes": [224, 256]}}


def _build(name: str):
    import torch

    torch.manual_seed(0)
    return create_model(name, **SMALL.get(name, {}))


def _is_learned(model) -> bool:
    import torch

    return isinstance(model, torch.nn.Module)


def _inputs(model, frame) -> Cues:
    """Cues with every given field the model may need (a person box, objects, a subject), analysis pixels."""
    w, h = frame.analysis_size
    cues = Cues(w, h)
    person = np.array([0.3 * w, 0.05 * h, 0.7 * w, 0.95 * h])
    if "human_box" in model.needs:
        cues.human_box = person
    if "object_boxes" in model.needs:
        cues.object_boxes = np.array([person, [0.05 * w, 0.5 * h, 0.3 * w, 0.9 * h]])
    if "subject_box" in model.needs:
        cues.subject_box = person
    return cues


def test_registry_is_not_empty() -> None:
    assert {"composition", "gaic", "hcic", "gafic", "baseline-center", "baseline-area"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_contract_attributes(name: str) -> None:
    m = _build(name)
    assert m.name == name
    assert isinstance(m.needs, frozenset) and m.needs <= CUE_NAMES | FIELD_NAMES, m.needs
    assert isinstance(m.analysis_size, int) and m.analysis_size >= 64
    assert callable(m.prepare) and callable(m.propose)
    if _is_learned(m):
        assert m.preprocess is not None, "a learned model declares its one input transform"
        assert m.weights_source is None  # built without weights: random, and says so


@pytest.mark.parametrize("name", MODELS)
def test_propose_on_a_real_photo(name: str) -> None:
    m = _build(name)
    if _is_learned(m):
        m.eval()
    frame = load_frame(PHOTO, m.analysis_size)
    w, h = frame.analysis_size
    prepared = m.prepare(frame, _inputs(m, frame))
    for r in (16 / 9, 1.0, 9 / 16):
        boxes, scores = m.propose(prepared, Request(ratio=r, top_k=3))
        boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(scores) >= 1
        assert np.isfinite(scores).any()
        assert (boxes[:, 0] >= -1e-6).all() and (boxes[:, 1] >= -1e-6).all()
        assert (boxes[:, 2] <= w + 1e-6).all() and (boxes[:, 3] <= h + 1e-6).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        ar = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
        np.testing.assert_allclose(ar, r, rtol=0.01)
    given = np.array([[0, 0, w, h], [0.1 * w, 0.1 * h, 0.6 * w, 0.9 * h], [0.2 * w, 0, 0.9 * w, 0.5 * h]])
    b, s = m.propose(prepared, Request(boxes=given))
    np.testing.assert_array_equal(np.asarray(b, np.float64), given)  # the same boxes, in the same order
    assert np.asarray(s).shape == (3,) and np.isfinite(s).all()


@pytest.mark.parametrize("name", MODELS)
def test_allow_mask_is_honoured_by_scorers(name: str) -> None:
    m = _build(name)
    if not isinstance(m, CandidateScorer) or getattr(m, "proposes_boxes", False):
        pytest.skip(f"{name} proposes its own boxes; the pipeline applies the rules after propose")
    frame = load_frame(PHOTO, m.analysis_size)
    prepared = m.prepare(frame, _inputs(m, frame))
    _, scores = m.propose(prepared, Request(ratio=1.0, allow=lambda b: np.arange(len(b)) % 2 == 0))
    assert np.isneginf(scores[1::2]).all() and np.isfinite(scores[::2]).all()


def _batch(model, frame, cues: Cues) -> dict:
    """A collated training batch of one image (the contract of :mod:`opencrop.models.learned`)."""
    import torch

    x, (sx, sy) = model.preprocess(frame.pixels)
    s = np.array([sx, sy, sx, sy])
    w, h = frame.analysis_size
    rng = np.random.default_rng(0)
    from opencrop.candidates import gaic_grid

    crops = gaic_grid(w, h)[:24]
    batch = {
        "image": x[None],
        "rois": torch.cat([torch.zeros(len(crops), 1), torch.as_tensor(crops * s, dtype=torch.float32)], 1),
        "mos": torch.as_tensor(rng.uniform(1, 5, len(crops)), dtype=torch.float32),
        "counts": torch.tensor([len(crops)]),
        "human_box": torch.as_tensor(np.asarray(cues.human_box if cues.human_box is not None else
                                                [0.3 * w, 0.05 * h, 0.7 * w, 0.95 * h]) * s,
                                     dtype=torch.float32)[None],
        "heatmap": torch.rand(1, 1, 64, 64),
        "name": ["photo"],
        "scale": torch.tensor([[sx, sy]], dtype=torch.float32),
    }
    if cues.object_boxes is not None:
        batch["object_boxes"] = torch.as_tensor(cues.object_boxes * s, dtype=torch.float32)[None]
        batch["object_mask"] = torch.ones(1, len(cues.object_boxes), dtype=torch.bool)
    if cues.subject_box is not None:
        batch["subject_box"] = torch.as_tensor(cues.subject_box * s, dtype=torch.float32)[None]
    return batch


LEARNED = [n for n in MODELS if n not in ("composition", "baseline-center", "baseline-area")]


@pytest.mark.parametrize("name", LEARNED)
def test_gradients_reach_every_trainable_parameter(name: str) -> None:
    m = _build(name)
    if not _is_learned(m):
        pytest.skip("not a learned model")
    if callable(getattr(m, "training_datasets", None)):
        pytest.skip(f"{name} trains on its own samples; its test file checks that every parameter gets a gradient")
    frame = load_frame(PHOTO, m.analysis_size)
    m.train()
    loss = m.compute_loss(_batch(m, frame, _inputs(m, frame)))["loss"]
    assert loss.ndim == 0 and bool(loss.isfinite())
    loss.backward()
    dead = [k for k, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not dead, f"{len(dead)} trainable parameters get no gradient: {dead[:5]}"


@pytest.mark.parametrize("name", LEARNED)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    m = _build(name)
    if not _is_learned(m):
        pytest.skip("not a learned model")
    m.eval()
    path = m.save_weights(tmp_path / f"{name}.pt")
    again = create_model(name, weights=str(path))
    assert again.weights_source == str(path) and not again.training
    frame = load_frame(PHOTO, m.analysis_size)
    cues = _inputs(m, frame)
    req = Request(ratio=1.0)
    b1, s1 = m.propose(m.prepare(frame, cues), req)
    b2, s2 = again.propose(again.prepare(frame, cues), req)
    np.testing.assert_allclose(b1, b2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)


def test_not_croppers_are_refused_by_the_cropper():
    from opencrop import Cropper

    for name in NOT_CROPPERS:
        with pytest.raises(ValueError, match="not a crop model"):
            Cropper(name, random_weights=True, cues=False)
