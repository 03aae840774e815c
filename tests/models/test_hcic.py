"""HCIC building blocks and model (docs/systems.md §3): shapes, masks, per-image PA gating, gradients, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opencrop.models.hcic_modules import (
    ContentFeature,
    ContentPreserveModule,
    ConvRelationEncoder,
    GraphRelationEncoder,
    HeatmapHead,
    PartitionAwareModule,
    crop_masks,
    has_human,
    partition_masks,
)


def test_partition_masks_hand_computed():
    # 64×48 input, stride 16 → 3×4 grid; box (17, 5, 40, 30) → grid x [1, 2), y [0, 1)
    m = partition_masks(torch.tensor([[17.0, 5.0, 40.0, 30.0]]), height=48, width=64)
    assert m.shape == (1, 9, 3, 4)
    cell = m[0].argmax(0)
    assert cell.tolist() == [[3, 4, 5, 5], [6, 7, 8, 8], [6, 7, 8, 8]]
    assert torch.equal(m[0].sum(0), torch.ones(3, 4))  # every cell in exactly one partition
    assert m[0, 4].sum() == 1 and m[0, :3].sum() == 0


def test_partition_masks_degenerate_and_missing():
    # a box thinner than one cell is widened to one cell; a -1 box gives all zeros
    boxes = torch.tensor([[20.0, 20.0, 24.0, 24.0], [-1.0, -1.0, -1.0, -1.0]])
    m = partition_masks(boxes, height=64, width=64)
    assert m[0, 4].sum() == 1 and m[0, 4, 1, 1] == 1
    assert m[1].abs().sum() == 0
    assert has_human(boxes).tolist() == [True, False]


def test_crop_masks_scaled_and_truncated():
    # 128×64 input → 64×64 masks: x scaled by 0.5, y by 1
    boxes = torch.tensor([[3.0, 2.0, 9.0, 5.5], [0.0, 0.0, 128.0, 64.0], [-1.0, -1.0, -1.0, -1.0]])
    m = crop_masks(boxes, height=64, width=128)
    assert m.shape == (3, 64, 64)
    expect = torch.zeros(64, 64)
    expect[2:5, 1:4] = 1  # x: trunc(1.5)=1 .. trunc(4.5)=4; y: 2 .. trunc(5.5)=5
    assert torch.equal(m[0], expect)
    assert m[1].sum() == 64 * 64 and m[2].sum() == 0


def test_relation_encoders_and_heatmap_shapes():
    x = torch.randn(2, 32, 5, 7)
    g = GraphRelationEncoder(32, 8)(x)
    assert g.shape == (2, 8, 5, 7) and (g >= 0).all()
    assert ConvRelationEncoder(32, 8)(x).shape == (2, 8, 5, 7)
    hm = HeatmapHead(8)(g)
    assert hm.shape == (2, 1, 64, 64) and ((hm > 0) & (hm < 1)).all()
    assert ContentFeature(256)(torch.rand(3, 2, 64, 64)).shape == (3, 256)


def test_gcn_is_a_softmax_over_cosine_similarity():
    torch.manual_seed(0)
    enc = GraphRelationEncoder(4, 3)
    x = torch.randn(1, 4, 2, 3)
    nodes = x.flatten(2).transpose(1, 2)[0]  # [6, 4]
    p, t = enc.phi(nodes), enc.theta(nodes)
    cos = torch.nn.functional.cosine_similarity(p[:, None], t[None], dim=-1)
    ref = torch.relu(torch.softmax(cos, -1) @ nodes @ enc.weight)  # [6, 3]
    torch.testing.assert_close(enc(x)[0].flatten(1).T, ref)


def test_content_preserve_per_crop_features_differ():
    torch.manual_seed(0)
    cp = ContentPreserveModule(32, 8, 256, relation="gcn")
    x = torch.randn(2, 32, 4, 6)
    rois = torch.tensor([[0, 0, 0, 96, 64], [0, 10, 10, 50, 40], [1, 0, 0, 96, 64]], dtype=torch.float32)
    heat, feats = cp(x, rois, height=64, width=96)
    assert heat.shape == (2, 1, 64, 64) and feats.shape == (3, 256)
    assert not torch.allclose(feats[0], feats[1])  # same image, different crop masks
    assert not torch.allclose(feats[0], feats[2])  # same crop, different images' heat maps


@pytest.mark.parametrize("partition", [9, 0, 1, 2])
def test_pa_gates_per_image(partition):
    """An image without a human is unchanged by PA, whatever batch position it has (fixes HCIC's element-0 check)."""
    torch.manual_seed(0)
    pa = PartitionAwareModule(32, partition=partition, concat_with_human=False)
    x = torch.randn(3, 32, 4, 4)
    boxes = torch.tensor([[-1.0, -1, -1, -1], [16, 16, 48, 48], [-1.0, -1, -1, -1]])
    masks = partition_masks(boxes, 64, 64)
    out, part = pa(x, boxes, masks)
    assert out.shape == x.shape
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])
    assert not torch.allclose(out[1], x[1])
    assert part.shape[:2] == (3, 9 if partition in (0, 9) else partition)
    # the refined image does not depend on its batch neighbours
    out1, _ = pa(x[1:2], boxes[1:2], masks[1:2])
    torch.testing.assert_close(out1[0], out[1])
    # no human anywhere: identity
    none = -torch.ones(3, 4)
    assert torch.equal(pa(x, none, partition_masks(none, 64, 64))[0], x)


def test_pa_residual_is_masked_group_sum():
    torch.manual_seed(1)
    pa = PartitionAwareModule(8, partition=9, concat_with_human=False)
    x = torch.randn(1, 8, 3, 3)
    boxes = torch.tensor([[16.0, 16, 32, 32]])
    masks = partition_masks(boxes, 48, 48)
    out, _ = pa(x, boxes, masks)
    groups = torch.relu(pa.group_conv(x)).view(1, 9, 8, 3, 3)
    # cell (r, c) takes group 3r + c for this centred box
    for r in range(3):
        for c in range(3):
            torch.testing.assert_close(out[0, :, r, c], x[0, :, r, c] + groups[0, 3 * r + c, :, r, c])


# ---------------------------------------------------------------------------------------------- full model
def _batch(h: int = 64, w: int = 96, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(2, 3, h, w, generator=g),
        "rois": torch.tensor([[0, 0, 0, w, h], [0, 10, 5, 60, 50], [0, 30, 8, 90, 60], [1, 0, 0, 80, 60],
                              [1, 16, 16, 64, 48]], dtype=torch.float32),
        "mos": torch.tensor([3.0, 2.0, 4.0, 3.5, 1.5]),
        "counts": torch.tensor([3, 2]),
        "human_box": torch.tensor([[10.0, 10, 40, 50], [-1, -1, -1, -1]]),
        "heatmap": torch.rand(2, 1, 64, 64, generator=g),
    }


@pytest.fixture(scope="module")
def small_hcic():
    from opencrop.models import create_model

    torch.manual_seed(0)
    return create_model("hcic", backbone="mobilenet_v2")


def test_hcic_registered_with_config(small_hcic):
    from opencrop.models import create_model, list_models
    from opencrop.models.hcic import HCIC

    assert "hcic" in list_models()
    assert isinstance(small_hcic, HCIC) and small_hcic.needs == frozenset({"people", "human_box"})
    assert small_hcic.config["backbone"] == "mobilenet_v2" and small_hcic.config["partition"] == 9
    assert small_hcic.preprocess.resize == "short_side" and small_hcic.preprocess.pixel_scale == 255.0
    fixed = create_model("hcic", backbone="mobilenet_v2", input_mode="fixed256", use_cp=False, relation="conv")
    assert fixed.preprocess.resize == "fixed" and fixed.content_preserve is None and fixed.fc.in_features == 256
    with pytest.raises(ValueError):
        create_model("hcic", backbone="mobilenet_v2", input_mode="square")


def test_hcic_shapes(small_hcic):
    b = _batch()
    feats = small_hcic.forward_features(b["image"])
    assert feats["feat"].shape == (2, 32, 4, 6) and feats["size"] == (64, 96)
    scores, heat, part = small_hcic.forward_all(feats, b["rois"], b["human_box"])
    assert scores.shape == (5,) and torch.isfinite(scores).all()
    assert heat.shape == (2, 1, 64, 64) and part.shape == (2, 9, 4, 6)
    assert part[1].abs().sum() == 0  # image 1 has no human
    assert small_hcic.predict_batch(b).shape == (5,)


def test_hcic_pa_with_aligned_human_feature_gates_per_image():
    torch.manual_seed(0)
    pa = PartitionAwareModule(32, partition=9, concat_with_human=True)
    x = torch.randn(2, 32, 4, 6)
    boxes = torch.tensor([[-1.0, -1, -1, -1], [10, 10, 40, 50]])
    out, _ = pa(x, boxes, partition_masks(boxes, 64, 96))
    assert torch.equal(out[0], x[0]) and not torch.allclose(out[1], x[1])
    solo, _ = pa(x[1:], boxes[1:], partition_masks(boxes[1:], 64, 96))
    torch.testing.assert_close(solo[0], out[1])


def test_hcic_human_box_changes_scores_only_through_pa(small_hcic):
    b = _batch()
    feats = small_hcic.forward_features(b["image"])
    with_h = small_hcic.forward_scores(feats, b["rois"], human_box=b["human_box"])
    without = small_hcic.forward_scores(feats, b["rois"], human_box=torch.full((2, 4), -1.0))
    no_arg = small_hcic.forward_scores(feats, b["rois"])
    assert not torch.allclose(with_h[:3], without[:3])  # image 0 has a human: PA refines it
    torch.testing.assert_close(with_h[3:], without[3:])  # image 1 has none: identical
    torch.testing.assert_close(without, no_arg)


def test_hcic_gradients_flow():
    from opencrop.models import create_model

    torch.manual_seed(0)
    m = create_model("hcic", backbone="mobilenet_v2", relation="conv")
    out = m.compute_loss(_batch())
    assert set(out) >= {"loss", "score", "rank", "heatmap"}
    out["loss"].backward()
    for name in ("partition_aware.group_conv.weight", "partition_aware.human_conv.weight",
                 "content_preserve.content_feature.5.weight", "content_preserve.heatmap_head.1.weight",
                 "crop_branch.head.0.weight", "fc.weight", "fusion.feat_ext.weight", "fusion.f3_layer.weight"):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    bb = [p.grad for p in m.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in bb)


def test_hcic_loss_needs_heatmap_unless_disabled(small_hcic):
    b = _batch()
    del b["heatmap"]
    with pytest.raises(ValueError, match="heatmaps"):
        small_hcic.compute_loss(b)
    small_hcic.heatmap_weight = 0.0
    try:
        assert "heatmap" not in small_hcic.compute_loss(b)
    finally:
        small_hcic.heatmap_weight = 1.0


def test_hcic_rank_loss_option():
    from opencrop.models import create_model

    torch.manual_seed(0)
    clean = create_model("hcic", backbone="mobilenet_v2", use_pa=False, relation="conv")
    coded = create_model("hcic", backbone="mobilenet_v2", use_pa=False, relation="conv", rank_as_coded=True)
    coded.load_state_dict(clean.state_dict())
    b = _batch()
    assert not torch.allclose(clean.compute_loss(b)["rank"], coded.compute_loss(b)["rank"])


def test_hcic_crop_model_protocol_on_astronaut(small_hcic):
    skimage = pytest.importorskip("skimage")
    from opencrop.cues.types import Cues, Detections
    from opencrop.models.base import CropModel

    image = skimage.data.astronaut()  # 512×512 RGB
    assert isinstance(small_hcic, CropModel)
    person = Detections(np.array([[100, 20, 400, 512], [0, 0, 50, 50]], np.float32), np.array([0.9, 0.3], np.float32),
                        ["person", "person"])
    cues = Cues(width=512, height=512, people=person)
    prep = small_hcic.prepare(image, cues)
    assert prep.input_size == (256, 256)
    torch.testing.assert_close(prep.extra["human_box"], torch.tensor([[50.0, 10.0, 200.0, 256.0]]))
    boxes = np.array([[0, 0, 512, 512], [0, 0, 512, 288], [100, 0, 400, 512], [256, 256, 512, 512]], np.float32)
    s = small_hcic.score(prep, boxes)
    assert s.shape == (4,) and s.dtype == np.float32 and np.isfinite(s).all()
    np.testing.assert_allclose(small_hcic.score(prep, boxes[::-1]), s[::-1], rtol=1e-5, atol=1e-6)
    # no person: the "no human" path; scores differ from the person path
    prep0 = small_hcic.prepare(image, Cues(width=512, height=512))
    assert (prep0.extra["human_box"] == -1).all()
    assert not np.allclose(small_hcic.score(prep0, boxes), s)
    assert small_hcic.score(prep, np.zeros((0, 4))).shape == (0,)


def test_content_features_chunked_inference_matches():
    torch.manual_seed(0)
    cp = ContentPreserveModule(32, 8, 16, relation="conv")
    heat = torch.rand(1, 1, 64, 64)
    xy = torch.randint(0, 40, (10, 2)).float()
    rois = torch.cat([torch.zeros(10, 1), xy, xy + 20], dim=1)
    full = cp.crop_features(heat, rois, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(cp.crop_features(heat, rois, 64, 64, chunk=3), full.detach())


def _tiny_run(model_name: str, root, out, **kwargs) -> list[dict]:
    """Synthetic GAICD (with HCIC human boxes) → pseudo heat maps → the shared trainer, 3 short epochs."""
    from opencrop.data.gaicd import load_gaicd
    from opencrop.data.heatmaps import write_heatmaps
    from opencrop.data.synth import write_gaicd
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    write_gaicd(root, n=4, seed=0, size=(128, 96))
    records = {s: load_gaicd(root, s) for s in ("train", "test")}
    write_heatmaps(records["train"] + records["test"], root / "heat")
    recipe = Recipe.from_dict({
        "model": {"name": model_name, "kwargs": {"backbone": "mobilenet_v2", "input_size": 128, **kwargs}},
        "data": {"format": "gaicd", "train_split": "train", "val_split": "test", "test_split": None,
                 "heatmap_dir": str(root / "heat"), "crops_per_image": 6, "photometric": "colorjitter"},
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4},
        "schedule": {"name": "constant"},
        "train": {"epochs": 3, "batch_size": 1, "amp": False, "num_workers": 0},
    })
    result = train(recipe, out, records=records, progress=False, device="cpu")
    assert result.best_path.exists()
    return result.history


def test_hcic_short_training_run_lowers_loss(tmp_path):
    torch.manual_seed(0)
    hist = _tiny_run("hcic", tmp_path / "gaicd", tmp_path / "run")
    assert len(hist) == 3 and "train_heatmap" in hist[0] and "val_srcc" in hist[0]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    from opencrop.models import create_model

    reloaded = create_model("hcic", backbone="mobilenet_v2", weights=str(tmp_path / "run" / "best.pt"))
    assert reloaded.config["partition"] == 9


def test_best_person_box_from_cues():
    from opencrop.cues.types import Cues, Detections
    from opencrop.models.hcic import best_person_box

    people = Detections(np.array([[0, 0, 10, 10], [20, 10, 60, 90], [-5, 0, 30, 200]], np.float32),
                        np.array([0.2, 0.8, 0.5], np.float32), ["person"] * 3)
    box = best_person_box(Cues(width=100, height=80, people=people), sx=2.0, sy=0.5)
    torch.testing.assert_close(box, torch.tensor([[40.0, 5.0, 120.0, 40.0]]))  # best score, clipped to the image
    assert (best_person_box(None, 1.0, 1.0) == -1).all()
    assert (best_person_box(Cues(width=10, height=10), 1.0, 1.0) == -1).all()
    outside = Detections(np.array([[20, 20, 30, 30]], np.float32), np.array([0.9], np.float32), ["person"])
    assert (best_person_box(Cues(width=10, height=10, people=outside), 1.0, 1.0) == -1).all()


@pytest.mark.parametrize("name", ["hcic", "gafic"])
def test_weights_file_rebuilds_its_architecture(tmp_path, name: str) -> None:
    """``create_model(name, weights=F)`` takes the architecture from F (a MobileNetV2 file loads without
    repeating ``backbone=``) and returns the same scores as the model that wrote it."""
    from opencrop.models.registry import create_model

    m = create_model(name, backbone="mobilenet_v2", input_size=128).eval()
    f = tmp_path / f"{name}.pt"
    m.save_weights(f)
    again = create_model(name, weights=str(f))
    assert again.config["backbone"] == "mobilenet_v2" and not again.training
    x = torch.rand(1, 3, 128, 128)
    rois = torch.tensor([[0, 10.0, 10, 100, 110], [0, 0, 0, 127, 127]])
    with torch.no_grad():
        torch.testing.assert_close(again(x, rois), m(x, rois))
