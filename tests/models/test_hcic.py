"""HCIC building blocks and model (docs/systems.md §3): shapes, masks, per-image PA gating, gradients, training."""

from __future__ import annotations

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
