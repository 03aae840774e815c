"""GenCrop model: align op, gating, losses, subject choice, ratio fitting and the CropModel contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opencrop.cues.types import Cues, Detections
from opencrop.models import create_model
from opencrop.models.base import Request
from opencrop.models.gencrop import Letterbox, fit_ratio, pick_subject, roi_align_separable, subject_boundary_loss
from opencrop.ops import roi_align_torchvision


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("gencrop", backbone="mobilenet_v2", ff=64).eval()


def test_separable_roi_align_equals_torchvision_semantics() -> None:
    g = torch.Generator().manual_seed(1)
    f = torch.randn(3, 5, 16, 16, dtype=torch.float64, generator=g)
    a = torch.rand(40, 4, dtype=torch.float64, generator=g) * 320 - 32
    boxes = torch.cat([torch.minimum(a[:, :2], a[:, 2:]), torch.maximum(a[:, :2], a[:, 2:])], 1)
    rois = torch.cat([torch.randint(0, 3, (40, 1), generator=g).double(), boxes], 1)
    ref = roi_align_torchvision(f, rois, 5, 1 / 16, sampling_ratio=-1, aligned=False)
    assert torch.allclose(roi_align_separable(f, rois, 5, 1 / 16), ref, atol=1e-12)


def test_letterbox_geometry_round_trip() -> None:
    lb = Letterbox(256)
    assert lb.geometry(400, 300) == (0.64, 0, 32, 256, 192)
    assert lb.geometry(300, 400)[1:] == (32, 0, 192, 256)
    b = np.array([[10.0, 20, 300, 280]])
    assert np.allclose(lb.from_input(lb.to_input(b, 400, 300), 400, 300), b)
    x, (s, _) = lb((np.ones((300, 400, 3)) * 255).astype(np.uint8))
    assert x.shape == (3, 256, 256) and s == 0.64
    assert torch.all(x[:, :32] == 0) and torch.all(x[:, 32:224] > 2)  # padding is 0 after normalisation


def test_gating_uses_only_the_subject_cells(model) -> None:
    x = torch.randn(2, 3, 256, 256)
    subj = torch.tensor([[32.0, 48, 70, 100], [-1, -1, -1, -1]])
    with torch.no_grad():
        out = model.forward_crop(x, subj)
    m = model.cell_mask(subj, (16, 16))
    on = m[0] > 0
    assert int(on.sum()) == 3 * 4 and float(m[1].abs().sum()) == 0.0  # cols 2..4, rows 3..6; none without subject
    w = out["weights"]
    assert torch.allclose(w.sum(1), torch.ones(2))
    # cells outside the subject all share the weight of logit 0; no subject → uniform → final = mean of proposals
    assert torch.allclose(w[0][~on], w[0][~on][0].expand(int((~on).sum())))
    assert torch.allclose(out["final"][1], out["proposals"][1].mean(0), atol=1e-6)
    assert torch.allclose(out["final"][0], (out["proposals"][0] * w[0, :, None]).sum(0), atol=1e-6)


def test_loss_has_its_three_parts_and_trains_every_layer(model) -> None:
    model.train()
    try:
        b = {"image": torch.randn(2, 3, 256, 256), "subject_box": torch.tensor([[40.0, 40, 120, 200]] * 2),
             "crop": torch.tensor([[20.0, 20, 200, 230]] * 2), "valid": torch.tensor([[0.0, 0, 256, 256]] * 2),
             "subject_mask_box": torch.tensor([[45.0, 42, 118, 198]] * 2)}
        model.zero_grad()
        out = model.compute_loss(b)
        assert set(out) == {"loss", "l1", "proposal_l1", "sbl"}
        expect = out["l1"] + 0.1 * out["proposal_l1"] + 10 * out["sbl"]
        assert torch.allclose(out["loss"], expect)
        out["loss"].backward()
        no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert no_grad == []
    finally:
        model.eval()


def test_subject_boundary_loss_by_hand() -> None:
    pred = torch.tensor([[0.10, 0.20, 0.80, 0.90]])
    subj = torch.tensor([[0.11, 0.50, 0.50, 0.91]])
    crop = torch.tensor([[0.00, 0.00, 1.00, 1.00]])
    valid = torch.tensor([[0.00, 0.00, 1.00, 0.91]])  # bottom edge = subject edge: not penalised
    # edges: |Δ| = 0.01 → 0.015; 0.30 → 0; 0.30 → 0; bottom masked → 0 ; mean over 4
    assert float(subject_boundary_loss(pred, subj, crop, valid)) == pytest.approx(0.015 / 4)


def test_fit_ratio_exact_inside_and_keeps_the_subject() -> None:
    boxes = np.array([[100.0, 100, 200, 150], [0, 0, 50, 400], [300, 200, 400, 300]])
    subj = np.array([120.0, 90, 190, 170])
    out = fit_ratio(boxes, 16 / 9, 400, 300, subj)
    w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
    assert np.allclose(w / h, 16 / 9)
    assert (out[:, :2] >= -1e-9).all() and (out[:, 2] <= 400 + 1e-9).all() and (out[:, 3] <= 300 + 1e-9).all()
    assert out[0, 0] <= 120 and out[0, 1] <= 90 and out[0, 2] >= 190 and out[0, 3] >= 170
    assert np.allclose(((out[0, :2] + out[0, 2:]) / 2), [150, 125])  # centre kept when it fits


def test_pick_subject_order() -> None:
    c = Cues(400, 300)
    assert pick_subject(c, 400, 300)[1] == "whole image" and c.notes
    sal = np.zeros((30, 40), np.float32)
    sal[10:20, 5:10] = 1
    c.saliency = sal
    box, src = pick_subject(c, 400, 300)
    assert src == "salient region" and np.allclose(box, [50, 100, 100, 200])
    c.objects = Detections(np.array([[0, 0, 40, 40], [40, 90, 120, 210]], np.float32), np.array([0.9, 0.8]), ["a"] * 2)
    assert np.allclose(pick_subject(c, 400, 300)[0], [40, 90, 120, 210])  # the salient one, not the first
    c.people = Detections(np.array([[200, 10, 260, 290], [10, 10, 30, 40]], np.float32), np.array([0.9, 0.99]), [])
    assert pick_subject(c, 400, 300)[1] == "person" and np.allclose(pick_subject(c, 400, 300)[0], [200, 10, 260, 290])
    c.human_box = np.array([5.0, 5, 50, 50])
    assert pick_subject(c, 400, 300)[1] == "human_box"
    c.subjects = np.array([[1, 2, 30, 40], [20, 5, 60, 30]], np.float32)
    assert np.allclose(pick_subject(c, 400, 300)[0], [1, 2, 60, 40])
    c.subject_box = np.array([7.0, 8, 9, 10])
    assert pick_subject(c, 400, 300)[1] == "subject_box"


def test_propose_contract_and_weights_round_trip(model, tmp_path) -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    cues = Cues(400, 300, subjects=np.array([[150, 60, 250, 260]], np.float32))
    p = model.prepare(img, cues)
    assert p.subject_source == "user subject"
    boxes, scores = model.propose(p, Request())
    assert boxes.shape == (257, 4) and scores[0] == 1.0 and np.allclose(scores[1:].sum(), 1.0)
    assert np.allclose(boxes[0], p.final)
    rb, _ = model.propose(p, Request(ratio=4 / 5))
    assert np.allclose((rb[:, 2] - rb[:, 0]) / (rb[:, 3] - rb[:, 1]), 4 / 5)
    assert (rb[:, :2] >= -1e-9).all() and (rb[:, 2] <= 400 + 1e-6).all() and (rb[:, 3] <= 300 + 1e-6).all()
    given = np.array([[0, 0, 100, 100.0], [50, 20, 390, 280], [0, 0, 100, 100.0]])
    gb, gs = model.propose(p, Request(boxes=given))
    assert np.array_equal(gb, given) and gs.shape == (3,) and gs[0] == pytest.approx(gs[2])
    path = model.save_weights(tmp_path / "g.pt")
    again = create_model("gencrop", weights=path)
    assert again.weights_source == str(path) and again.config == model.config
    assert np.allclose(again.prepare(img, cues).final, p.final, atol=1e-5)


def test_subject_channel() -> None:
    m = create_model("gencrop", backbone="mobilenet_v2", ff=32, use_subject=True).eval()
    assert "person_mask" in m.needs and "people" in m.needs
    with pytest.raises(ValueError, match="4 input channels"):
        m.forward_features(torch.randn(1, 3, 256, 256))
    mask = np.zeros((100, 120), bool)
    mask[20:80, 30:60] = True
    p = m.prepare(np.zeros((100, 120, 3), np.uint8), Cues(120, 100, subject_box=np.array([30.0, 20, 60, 80]),
                                                          subject_mask=mask))
    assert p.subject_source == "subject_box" and p.proposals.shape == (256, 4)


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backbone"):
        create_model("gencrop", backbone="alexnet")
    with pytest.raises(ValueError, match="multiple of 32"):
        create_model("gencrop", size=250)


def test_cropper_keeps_the_regressed_crop(model, monkeypatch) -> None:
    """The pipeline's neighbourhood refinement re-scores boxes near the best one with a scorer; GenCrop's crop is
    the gated average of its proposals, so a high scorer logit nearby must not replace it (``refine = False``)."""
    from opencrop.api import Cropper

    img = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    cropper = Cropper(model, cues=False, random_weights=True)
    (before,) = cropper.crop(img, ratios=["1:1"], subject=[[150, 60, 250, 260]])
    monkeypatch.setattr(model, "score", lambda prepared, boxes: np.full(len(np.reshape(boxes, (-1, 4))), 1e9))
    (after,) = cropper.crop(img, ratios=["1:1"], subject=[[150, 60, 250, 260]])
    assert after.box == before.box and after.score == before.score < 1e9
