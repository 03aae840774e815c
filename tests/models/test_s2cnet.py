"""S2CNet: relations against hand-computed values, masking of padded object nodes, heads' shapes, the optimised
forward against a plain reference, object boxes from cues, the CropModel protocol, loss / gradients, weights."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from opencrop.cues.types import Cues, Detections
from opencrop.models import create_model, is_model
from opencrop.models.base import CropModel, Request
from opencrop.models.s2cnet import (
    PUBLISHED_CONFIGS,
    GraphRelations,
    GraphTransformer,
    S2CNet,
    fit_object_boxes,
    object_boxes_from_cues,
)

V1, V2 = PUBLISHED_CONFIGS["gaicd_v1"], PUBLISHED_CONFIGS["gaicd_v2"]


def _model(seed: int = 0, **cfg) -> S2CNet:
    torch.manual_seed(seed)
    return create_model("s2cnet", **cfg).eval()


def _double(seed: int = 0, **cfg) -> tuple[S2CNet, torch.Tensor]:
    """A float64 model and its features for 2 images of 96×128 input pixels (6×8 feature cells)."""
    m = _model(seed, **cfg).double()
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        feats = m.forward_features(torch.randn(2, 3, 96, 128, dtype=torch.float64))
    return m, feats


ROIS = torch.tensor([[0, 4, 6, 120, 90], [0, 20, 0, 100, 80], [1, 0, 0, 128, 96], [1, 30, 10, 110, 70.0]],
                    dtype=torch.float64)
# image 0: 3 real objects; image 1: 1 real object in the middle of padding
BOXES = torch.tensor([[[10, 10, 60, 50], [50, 20, 120, 90], [0, 40, 30, 96], [-1, -1, -1, -1]],
                      [[-1, -1, -1, -1], [64, 10, 100, 60], [-1, -1, -1, -1], [-1, -1, -1, -1]]], dtype=torch.float64)
MASK = BOXES[..., 0] >= 0


def _plain_graph(g: GraphTransformer, x: torch.Tensor, a: torch.Tensor, s: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """The graph transformer as the module docstring states it, with none of the forward's shortcuts: every row of
    every layer, keys / values / queries projected per node, all heads in one softmax, the plain feed-forward."""
    keep = mask[..., None].to(x.dtype)
    x = x * keep
    g_w = torch.softmax((a.mean(1) * s.mean(1)).masked_fill(~mask[:, None, :], float("-inf")), dim=-1)
    bias = (a + s).masked_fill(~mask[:, None, None, :], float("-inf"))
    k_, n, e = x.shape
    h = g.heads
    for layer in g.layers:
        x_ma = torch.relu(g.nl_gcn(g.fc_gcn(g_w @ x)))
        key, val = layer.attn.to_kv(layer.norm1(x)).chunk(2, dim=-1)
        q = layer.attn.to_q(x_ma)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(k_, n, h, e // h).transpose(1, 2)  # [K, h, n, E/h]

        w = torch.softmax(split(q) @ split(key).transpose(-1, -2) * e ** -0.5 + bias, dim=-1)
        y = x + layer.attn.to_out((w @ split(val)).transpose(1, 2).reshape(k_, n, e))
        x = (y + layer.ff(layer.norm2(y))) * keep
    return x


def _reference_scores(m: S2CNet, feats: torch.Tensor, rois: torch.Tensor, boxes: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """The graph without the shortcuts: every crop's full (1 + bbox_num)-node graph, padded to bbox_num, node
    features and relations computed per crop and node, every row of every layer (:func:`_plain_graph`), the full
    v2 head as convolutions."""
    boxes, mask = fit_object_boxes(boxes, mask, m.bbox_num)
    k, d = rois.shape[0], m.bbox_num
    bidx = rois[:, 0].long()
    h_in, w_in = feats.shape[-2] * 16, feats.shape[-1] * 16
    all_boxes = torch.cat([rois[:, None, 1:], boxes[bidx]], dim=1)  # [K, 1 + D, 4]
    node_rois = torch.cat([bidx.repeat_interleave(1 + d)[:, None].to(rois.dtype), all_boxes.reshape(-1, 4)], 1)
    x = m._box_features_plain(feats, node_rois).view(k, 1 + d, -1)
    node_mask = torch.cat([torch.ones(k, 1, dtype=torch.bool), mask[bidx]], dim=1)
    x = x * node_mask[..., None]
    centres = (all_boxes[..., :2] + all_boxes[..., 2:]) / 2 / all_boxes.new_tensor([w_in, h_in])
    a, s = m.relations(x, centres)
    out = _plain_graph(m.graph, x, a, s, node_mask)
    if m.head_kind == "crop":
        return m.head(out[:, 0]).reshape(-1)
    return m.head(out.reshape(k, 1 + d, 16, 16)).reshape(-1)


@pytest.mark.parametrize("cfg", [V1, V2], ids=["v1", "v2"])
def test_reassociated_node_features_equal_the_plain_ones_with_gradients(cfg):
    m, feats = _double(**cfg)
    feats = feats.detach().requires_grad_(True)
    rois = torch.cat([ROIS, torch.tensor([[1, -20, -10, 60, 200], [0, 0, 0, 0, 0]], dtype=torch.float64)])
    fast, plain = m._box_features(feats, rois), m._box_features_plain(feats, rois)
    torch.testing.assert_close(fast, plain, atol=1e-12, rtol=0)
    g = torch.randn_like(fast)
    gf = torch.autograd.grad((fast * g).sum(), [feats, m.node_emb[0].weight])
    gp = torch.autograd.grad((plain * g).sum(), [feats, m.node_emb[0].weight])
    for a, b in zip(gf, gp, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    with torch.no_grad():  # the cached weight transform follows an in-place weight change
        torch.testing.assert_close(m._box_features(feats, rois[:3]), m._box_features_plain(feats, rois[:3]))
        m.node_emb[0].weight.mul_(0.5)
        torch.testing.assert_close(m._box_features(feats, rois[:3]), m._box_features_plain(feats, rois[:3]),
                                   atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------- relations
def test_spatial_relation_hand_computed():
    """θ = identity, φ(c) = 2c + (0.1, 0), heads w = (1, −2), b = (0, 0.5): A_h[i, j] = w_h ‖θ_i − φ_j‖ / √2 + b_h."""
    rel = GraphRelations(node_dim=2, rel_dim=2, heads=2).double()
    with torch.no_grad():
        rel.pos_ascension_theta.weight.copy_(torch.eye(2))
        rel.pos_ascension_theta.bias.zero_()
        rel.pos_ascension_phi.weight.copy_(2 * torch.eye(2))
        rel.pos_ascension_phi.bias.copy_(torch.tensor([0.1, 0.0]))
        rel.pos_to_head.weight.copy_(torch.tensor([[1.0], [-2.0]]))
        rel.pos_to_head.bias.copy_(torch.tensor([0.0, 0.5]))
    centres = torch.tensor([[[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]]], dtype=torch.float64)
    a, _ = rel(torch.zeros(1, 3, 2, dtype=torch.float64), centres)
    assert a.shape == (1, 2, 3, 3)
    # (0, 1): c0 − φ1 = (0.5 − 0.6, 0.5 − 1.5) = (−0.1, −1.0) → √1.01 / √2 = 0.7106335
    # (1, 1): (0.25 − 0.6, 0.75 − 1.5) = (−0.35, −0.75) → √0.685 / √2 = 0.5852350
    # (2, 0): (1 − 1.1, 0 − 1) = (−0.1, −1.0) → 0.7106335;  (0, 2): (0.5 − 2.1, 0.5 − 0) → √2.81 / √2 = 1.1853270
    for (i, j), dist in {(0, 1): 0.7106335, (1, 1): 0.5852350, (2, 0): 0.7106335, (0, 2): 1.1853270}.items():
        assert a[0, 0, i, j].item() == pytest.approx(dist, abs=1e-6)
        assert a[0, 1, i, j].item() == pytest.approx(-2 * dist + 0.5, abs=1e-6)
    assert not torch.allclose(a, a.transpose(-1, -2))  # θ ≠ φ: the relation is not symmetric


def test_semantic_relation_hand_computed():
    """θ' = identity, φ' = diag(1, −1), one head w = 0.5, b = 1: S[i, j] = 0.5 · θ'_i·φ'_j / √2 + 1."""
    rel = GraphRelations(node_dim=2, rel_dim=2, heads=1).double()
    with torch.no_grad():
        rel.fc_rn_theta.weight.copy_(torch.eye(2))
        rel.fc_rn_theta.bias.zero_()
        rel.fc_rn_phi.weight.copy_(torch.diag(torch.tensor([1.0, -1.0])))
        rel.fc_rn_phi.bias.zero_()
        rel.app_to_head.weight.fill_(0.5)
        rel.app_to_head.bias.fill_(1.0)
    nodes = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]], dtype=torch.float64)
    _, s = rel(nodes, torch.zeros(1, 2, 2, dtype=torch.float64))
    # θ'0·φ'0 = 1 − 4 = −3; θ'0·φ'1 = 3 + 2 = 5; θ'1·φ'0 = 3 + 2 = 5; θ'1·φ'1 = 9 − 1 = 8
    expect = torch.tensor([[-0.0606602, 2.7677670], [2.7677670, 3.8284271]], dtype=torch.float64)
    torch.testing.assert_close(s[0, 0], expect, atol=1e-6, rtol=0)


def test_spatial_relation_uses_box_centres_normalised_by_the_input_size():
    """In the model, node positions are the crop's and objects' centres divided by the input width / height."""
    m, feats = _double()
    seen = []
    m.relations.pos_ascension_theta.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    with torch.no_grad():
        m.forward_scores(feats[:1], ROIS[:1], object_boxes=BOXES[:1], object_mask=MASK[:1])
    crop_c, obj_c = seen  # crop centres [K, 2], then object centres [B, D, 2]
    torch.testing.assert_close(crop_c, torch.tensor([[62 / 128, 48 / 96]], dtype=torch.float64))
    torch.testing.assert_close(obj_c[0], torch.tensor([[35 / 128, 30 / 96], [85 / 128, 55 / 96], [15 / 128, 68 / 96]],
                                                      dtype=torch.float64))


def test_aggregation_weights_are_a_softmax_over_real_nodes():
    a = torch.tensor([[[[1.0, 2.0, 3.0], [0.0, 1.0, 5.0], [2.0, 2.0, 2.0]]]]).repeat(1, 2, 1, 1)
    a[:, 1] *= 3  # mean over heads = 2 × head 0
    s = torch.full((1, 2, 3, 3), 0.5)
    mask = torch.tensor([[True, True, False]])
    g = GraphTransformer.aggregation_weights(a, s, mask)
    # logits = mean_h(A) · mean_h(S) = 2A₀ · 0.5 = A₀; node 2 masked
    row0 = torch.softmax(torch.tensor([1.0, 2.0]), 0)
    row1 = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    torch.testing.assert_close(g[0, 0, :2], row0)
    torch.testing.assert_close(g[0, 1, :2], row1)
    assert torch.all(g[..., 2] == 0)
    torch.testing.assert_close(g.sum(-1), torch.ones(1, 3))


def test_shared_relations_equal_the_relations_of_the_gathered_graphs():
    """forward_shared (object-object terms once per image) = forward on every crop's full node list, for one image
    (broadcast path) and for several (gathered path)."""
    torch.manual_seed(3)
    rel = GraphRelations(node_dim=16, rel_dim=8, heads=3).double()
    for b in (1, 3):
        crop, crop_c = torch.randn(7, 16, dtype=torch.float64), torch.rand(7, 2, dtype=torch.float64)
        objs, obj_c = torch.randn(b, 4, 16, dtype=torch.float64), torch.rand(b, 4, 2, dtype=torch.float64)
        objs[-1, 2:] = 0  # padded nodes (zero features and centres) as forward_scores passes them
        obj_c[-1, 2:] = 0
        idx = torch.randint(0, b, (7,))
        a, s = rel.forward_shared(crop, objs, crop_c, obj_c, idx)
        ea, es = rel(torch.cat([crop[:, None], objs[idx]], 1), torch.cat([crop_c[:, None], obj_c[idx]], 1))
        assert a.shape == ea.shape == (7, 3, 5, 5)
        torch.testing.assert_close(a, ea, atol=1e-12, rtol=0)
        torch.testing.assert_close(s, es, atol=1e-12, rtol=0)


def test_fast_graph_equals_the_plain_graph_with_and_without_autograd():
    """The per-head attention, the written-out softmax and the inference feed-forward (reused buffer, in-place GELU)
    give the plain graph's tokens; with autograd, under no_grad and in inference mode (and no_grad again after it:
    the buffer of inference mode is not reused outside it)."""
    torch.manual_seed(4)
    g = GraphTransformer(dim=16, depth=2, heads=4, mlp_dim=32).double()
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    a, s = torch.randn(3, 4, 5, 5, dtype=torch.float64), torch.randn(3, 4, 5, 5, dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True, False, True, False, True]])
    ref = _plain_graph(g, x, a, s, mask)
    torch.testing.assert_close(g(x, a, s, mask), ref, atol=1e-12, rtol=0)
    for mode in (torch.no_grad, torch.inference_mode, torch.no_grad):
        with mode():
            torch.testing.assert_close(g(x, a, s, mask), ref.detach(), atol=1e-12, rtol=0)
            torch.testing.assert_close(g(x[:2], a[:2], s[:2], mask[:2]), ref[:2].detach(), atol=1e-12, rtol=0)
            torch.testing.assert_close(g(x, a, s, mask, crop_only=True), ref[:, :1].detach(), atol=1e-12, rtol=0)
    full = torch.ones_like(mask)  # every node real: the masking multiplications are skipped
    with torch.no_grad():
        torch.testing.assert_close(g(x, a, s, full), _plain_graph(g, x, a, s, full), atol=1e-12, rtol=0)


def test_shared_key_attention_equals_the_attention_on_the_gathered_keys():
    """The first layer's attention with ``W_qᵀ k`` / ``W_o v`` folded once per image (``shared_keys``) = the per-head
    attention on every crop's gathered keys / values, for one image (broadcast path) and several (gathered path),
    with padded keys (−inf bias) and query subsets, and the same gradients."""
    from opencrop.models.s2cnet import _Attention

    torch.manual_seed(6)
    att = _Attention(16, 4).double()
    for b, m in ((1, 5), (3, 5), (3, 1)):
        kv_c = torch.randn(7, 32, dtype=torch.float64, requires_grad=True)
        kv_o = torch.randn(b, 4, 32, dtype=torch.float64, requires_grad=True)
        q = torch.randn(7, m, 16, dtype=torch.float64, requires_grad=True)
        bias = torch.randn(7, 4, m, 5, dtype=torch.float64)
        bias[2, :, :, 3:] = float("-inf")  # padded object keys of crop 2
        idx = torch.randint(0, b, (7,))
        fast = att.shared_keys(kv_c, kv_o, q, bias, idx)
        ref = att(torch.cat([kv_c[:, None], kv_o[idx]], dim=1), q, bias)
        assert fast.shape == (7, m, 16)
        torch.testing.assert_close(fast, ref, atol=1e-12, rtol=0)
        grad = torch.randn_like(ref)
        params = [kv_c, kv_o, q, att.to_q.weight, att.to_out.weight, att.to_out.bias]
        for gf, gr in zip(torch.autograd.grad((fast * grad).sum(), params),
                          torch.autograd.grad((ref * grad).sum(), params), strict=True):
            torch.testing.assert_close(gf, gr, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cfg", [V1, V2], ids=["v1", "v2"])
def test_float32_scores_match_the_plain_graph_at_the_published_sizes(cfg):
    """The optimised float32 forward (every shortcut, 40 crops of 2 images with 10 / 7 real boxes: padding in one)
    scores within 1e-5 of the plain float64 graph (:func:`_reference_scores`) of the same weights and inputs."""
    m = _model(7, **cfg)
    feats, rois, boxes, mask = _published_inputs(m)
    ref = _reference_scores(m.double(), feats.double(), rois.double(), boxes.double(), mask)
    m.float()
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            fast = m.forward_scores(feats, rois, object_boxes=boxes, object_mask=mask)
            alone = m.forward_scores(feats[:1], rois[::2], object_boxes=boxes[:1], object_mask=mask[:1])
        assert fast.dtype == torch.float32
        torch.testing.assert_close(fast.double(), ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.double(), ref[::2], atol=1e-5, rtol=0)


def _published_inputs(m: S2CNet, seed: int = 8):
    """Features of 2 images, 40 crops and 10 / 7 real boxes (the published sizes; padding in the second image)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        feats = m.forward_features(torch.randn(2, 3, 256, 384, generator=g))
    xy = torch.rand(40, 2, generator=g) * torch.tensor([300.0, 180.0])
    rois = torch.cat([torch.arange(40)[:, None] % 2, xy, xy + 20 + torch.rand(40, 2, generator=g) * 150], dim=1)
    bxy = torch.rand(2, 10, 2, generator=g) * torch.tensor([300.0, 180.0])
    boxes = torch.cat([bxy, bxy + 10 + torch.rand(2, 10, 2, generator=g) * 150], dim=-1)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    return feats, rois, boxes, mask


@pytest.mark.parametrize("cfg", [V1, V2], ids=["v1", "v2"])
def test_onednn_products_equal_the_plain_products_and_fall_back(cfg, monkeypatch):
    """float32 inference through oneDNN's fused linear (packed weights, GELU and residual adds fused) scores within
    1e-5 of the same model with oneDNN switched off (the plain MKL products) and of the plain float64 graph; the
    packed weights follow in-place weight changes and dtype round trips; a torch without the private ops (probe
    fails) uses the plain ops; autograd never takes the oneDNN path."""
    import opencrop.models.s2cnet as s2c

    m = _model(9, **cfg)
    feats, rois, boxes, mask = _published_inputs(m)

    def reference():  # on a float64 copy: m's own weights keep their storage (and packed copies)
        return _reference_scores(copy.deepcopy(m).double(), feats.double(), rois.double(), boxes.double(), mask)

    ref = reference()

    def run(mode=torch.no_grad):
        with mode():
            return m.forward_scores(feats, rois, object_boxes=boxes, object_mask=mask)

    fast = run()
    monkeypatch.setattr(s2c, "_ONEDNN", False)
    plain = run()
    monkeypatch.setattr(s2c, "_ONEDNN", None)
    torch.testing.assert_close(fast.double(), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.double(), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(run(torch.inference_mode), fast, atol=1e-6, rtol=0)
    if s2c._onednn():  # the fast path is taken where the ops exist (this CI's torch has them)
        lin = m.graph.layers[0].ff[0]
        with torch.no_grad():
            packed = s2c._packed(lin, "weight", lin.weight, s2c._same, torch.zeros(4, lin.in_features))
        assert packed is not None and packed.is_mkldnn
        with torch.enable_grad():
            assert s2c._packed(lin, "weight", lin.weight, s2c._same, torch.zeros(4, lin.in_features)) is None
    with torch.no_grad():  # in-place change of a packed weight (version counter): repacked
        m.graph.layers[1].ff[2].weight.mul_(3.0)
        m.head.weight.mul_(2.0) if cfg["head"] == "crop" else m.head[0].weight.mul_(2.0)
    ref2 = reference()
    assert (ref2 - ref).abs().max() > 1e-2
    torch.testing.assert_close(run().double(), ref2, atol=1e-5, rtol=0)
    m.double().float()  # new storage, possibly at a freed address: repacked, not mistaken for the old weights
    torch.testing.assert_close(run().double(), ref2, atol=1e-5, rtol=0)

    def missing(*args, **kwargs):
        raise RuntimeError("no oneDNN linear in this build")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", missing)
    monkeypatch.setattr(s2c, "_ONEDNN", None)
    assert s2c._onednn() is False
    torch.testing.assert_close(run().double(), ref2, atol=1e-5, rtol=0)
    m.train()
    loss = m.forward_scores(feats, rois, object_boxes=boxes, object_mask=mask).sum()  # autograd: plain ops
    loss.backward()
    assert m.graph.layers[0].ff[0].weight.grad is not None


def test_onednn_path_with_a_model_made_in_inference_mode():
    """Weights created inside ``torch.inference_mode`` keep no version counter: used unpacked, same scores."""
    import opencrop.models.s2cnet as s2c

    with torch.inference_mode():
        m = _model(10, **V2)
        feats, rois, boxes, mask = _published_inputs(m)
        fast = m.forward_scores(feats, rois, object_boxes=boxes, object_mask=mask)
    m2 = _model(10, **V2)
    with torch.no_grad():
        s2c._ONEDNN, saved = False, s2c._ONEDNN
        try:
            plain = m2.forward_scores(feats.clone(), rois.clone(), object_boxes=boxes.clone(), object_mask=mask)
        finally:
            s2c._ONEDNN = saved
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)


def test_eval_head_on_rows_equals_the_convolution_head():
    """v2's head after its first conv, in eval mode on [K, 768] rows (1×1 convs as products, BatchNorms as their
    running affine maps) = the module on [K, 768, 1, 1] maps."""
    from opencrop.models.s2cnet import _head_rows

    m = _model(**V2).double()
    torch.manual_seed(5)
    for bn in (m.head[1], m.head[4]):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    y = torch.randn(9, 768, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(_head_rows(m.head[1:], y), m.head[1:](y[:, :, None, None]).reshape(-1),
                                   atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------- masking
@pytest.mark.parametrize("cfg", [V1, V2], ids=["v1", "v2"])
def test_padded_object_nodes_have_no_influence(cfg):
    m, feats = _double(**cfg)
    with torch.no_grad():
        ref = m.forward_scores(feats, ROIS, object_boxes=BOXES, object_mask=MASK)
        # garbage in the padding rows
        junk = BOXES.clone()
        junk[~MASK] = torch.tensor([5.0, 7.0, 90.0, 80.0], dtype=torch.float64)
        torch.testing.assert_close(m.forward_scores(feats, ROIS, object_boxes=junk, object_mask=MASK), ref,
                                   atol=1e-12, rtol=0)
        # more padding columns
        wide = torch.cat([BOXES, torch.full((2, 3, 4), -1.0, dtype=torch.float64)], 1)
        wmask = torch.cat([MASK, torch.zeros(2, 3, dtype=torch.bool)], 1)
        torch.testing.assert_close(m.forward_scores(feats, ROIS, object_boxes=wide, object_mask=wmask), ref,
                                   atol=1e-12, rtol=0)
        # each image alone, with only its real boxes, scores its crops the same as in the padded batch
        for i in range(2):
            rows = ROIS[:, 0] == i
            alone_rois = ROIS[rows].clone()
            alone_rois[:, 0] = 0
            real = BOXES[i][MASK[i]][None]
            alone = m.forward_scores(feats[i:i + 1], alone_rois, object_boxes=real,
                                     object_mask=torch.ones(real.shape[:2], dtype=torch.bool))
            torch.testing.assert_close(alone, ref[rows], atol=1e-12, rtol=0)
        # the optimised forward equals the plain graph over all 1 + bbox_num nodes of every crop
        torch.testing.assert_close(_reference_scores(m, feats, ROIS, BOXES, MASK), ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cfg", [V1, V2], ids=["v1", "v2"])
def test_zero_objects_and_real_objects_matter(cfg):
    m, feats = _double(**cfg)
    with torch.no_grad():
        none = m.forward_scores(feats, ROIS)
        empty = m.forward_scores(feats, ROIS, object_boxes=torch.zeros(2, 0, 4, dtype=torch.float64),
                                 object_mask=torch.zeros(2, 0, dtype=torch.bool))
        all_pad = m.forward_scores(feats, ROIS, object_boxes=BOXES, object_mask=torch.zeros_like(MASK))
        ref = m.forward_scores(feats, ROIS, object_boxes=BOXES, object_mask=MASK)
        moved = BOXES.clone()
        moved[0, 0] = torch.tensor([70.0, 50, 126, 94])
        shifted = m.forward_scores(feats, ROIS, object_boxes=moved, object_mask=MASK)
    assert torch.isfinite(none).all() and none.shape == (4,)
    torch.testing.assert_close(empty, none, atol=1e-12, rtol=0)
    torch.testing.assert_close(all_pad, none, atol=1e-12, rtol=0)
    torch.testing.assert_close(_reference_scores(m, feats, ROIS, BOXES, torch.zeros_like(MASK)), none,
                               atol=1e-10, rtol=0)
    assert (ref - none).abs().min() > 1e-6  # the objects change every crop's score
    assert (shifted[:2] - ref[:2]).abs().min() > 1e-6  # moving image 0's object changes image 0's crops
    torch.testing.assert_close(shifted[2:], ref[2:], atol=1e-12, rtol=0)  # … and not image 1's


def test_fit_object_boxes_moves_real_boxes_first_and_cuts_or_pads():
    boxes = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
    mask = torch.tensor([[False, True, False, True], [True, True, True, True]])
    b, m = fit_object_boxes(boxes, mask, 3)
    assert b.shape == (2, 3, 4) and m.tolist() == [[True, True, False], [True, True, True]]
    torch.testing.assert_close(b[0, :2], boxes[0, [1, 3]])
    assert torch.all(b[0, 2] == 0)
    torch.testing.assert_close(b[1], boxes[1, :3])  # more real boxes than D: the first D
    b, m = fit_object_boxes(boxes[:, :1], mask[:, :1], 3)
    assert b.shape == (2, 3, 4) and m.tolist() == [[False] * 3, [True, False, False]]


# ---------------------------------------------------------------------------------------------- heads / shapes
def test_heads_and_graph_shapes():
    v1, v2 = _model(**V1), _model(**V2)
    assert isinstance(v1.head, nn.Linear) and tuple(v1.head.weight.shape) == (1, 256)
    assert v1.node_emb[0].in_features == 2 * 8 * 9 * 9 == 1296
    assert tuple(v2.head[0].weight.shape) == (768, 1 + 5, 16, 16)  # GAIC head over the (D + 1) × 16 × 16 tokens
    assert v2.node_emb[0].in_features == 2 * 8 * 15 * 15 == 3600
    assert isinstance(v2.head[1], nn.BatchNorm2d) and isinstance(v2.head[6], nn.Dropout)
    g = GraphTransformer(dim=16, depth=2, heads=4, mlp_dim=32)
    x = torch.randn(3, 5, 16)
    a, s = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [True, False, True, False, True]])
    out = g(x, a, s, mask)
    assert out.shape == (3, 5, 16)
    assert torch.all(out[~mask] == 0)  # padded tokens come out as zeros
    crop = g(x, a, s, mask, crop_only=True)
    assert crop.shape == (3, 1, 16)
    torch.testing.assert_close(crop[:, 0], out[:, 0])
    img = torch.randn(1, 3, 96, 128)
    rois = torch.tensor([[0, 0, 0, 128, 96], [0, 10, 10, 90, 80.0]])
    ob = torch.tensor([[[5.0, 5, 50, 50]]])
    for m in (v1, v2):
        with torch.no_grad():
            s_ = m(img, rois, object_boxes=ob, object_mask=torch.ones(1, 1, dtype=torch.bool))
        assert s_.shape == (2,) and torch.isfinite(s_).all()
        assert m(img, rois[:0]).shape == (0,)


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="square"):
        S2CNet(head="all", node_dim=200, heads=4)
    with pytest.raises(ValueError, match="head must be one of"):
        S2CNet(head="tokens")
    with pytest.raises(ValueError, match="backbone must be one of"):
        S2CNet(backbone="resnet9")
    m, feats = _double()
    with pytest.raises(ValueError, match="together"):
        m.forward_scores(feats, ROIS, object_boxes=BOXES)
    with pytest.raises(ValueError, match=r"Tensor\[B=2, D, 4\]"):
        m.forward_scores(feats, ROIS, object_boxes=BOXES[:1], object_mask=MASK[:1])
    with pytest.raises(TypeError, match="unexpected inputs"):
        m.forward_scores(feats, ROIS, human_box=torch.zeros(2, 4))


# ---------------------------------------------------------------------------------------------- object boxes
def test_object_boxes_from_cues_mapping():
    cues = Cues(200, 100)
    cues.people = Detections(np.array([[10, 10, 60, 90], [150, 20, 230, 99]], np.float32),
                             np.array([0.9, 0.6], np.float32), ["person", "person"])
    cues.objects = Detections(np.array([[0, 0, 40, 30], [100, 50, 101, 60], [80, 40, 140, 90]], np.float32),
                              np.array([0.9, 0.95, 0.7], np.float32), ["dog", "cup", "chair"])
    got = object_boxes_from_cues(cues, 10)
    # the 1-px-wide cup is dropped; by score, person before dog on the 0.9 tie; the second person is clipped
    np.testing.assert_allclose(got, [[10, 10, 60, 90], [0, 0, 40, 30], [80, 40, 140, 90], [150, 20, 200, 99]])
    np.testing.assert_allclose(object_boxes_from_cues(cues, 2), got[:2])
    assert object_boxes_from_cues(cues, 0).shape == (0, 4)
    assert object_boxes_from_cues(None, 10).shape == (0, 4)
    assert object_boxes_from_cues(Cues(200, 100), 10).shape == (0, 4)
    cues.object_boxes = np.array([[5, 5, 50, 50], [1, 0, 1, 1], [60, 0, 90, 40], [0, 0, 9, 9]], np.float64)
    np.testing.assert_allclose(object_boxes_from_cues(cues, 2), [[5, 5, 50, 50], [60, 0, 90, 40]])  # given win


# ---------------------------------------------------------------------------------------------- protocol
def test_crop_model_protocol_with_given_boxes_and_detections():
    m = _model()
    assert isinstance(m, CropModel) and is_model("s2cnet")
    assert m.needs == {"people", "objects", "object_boxes"}
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 180, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="needs cues"):
        m.prepare(img)
    cues = Cues(180, 120, object_boxes=np.array([[10.0, 10, 90, 100], [100, 20, 170, 110]]))
    prep = m.prepare(img, cues)
    sx, sy = prep.sx, prep.sy
    assert prep.input_size == (384, 256)
    torch.testing.assert_close(prep.extra["object_boxes"],
                               torch.tensor([[[10 * sx, 10 * sy, 90 * sx, 100 * sy],
                                              [100 * sx, 20 * sy, 170 * sx, 110 * sy]]], dtype=torch.float32))
    boxes, scores = m.propose(prep, Request(ratio=1.0))
    assert len(boxes) > 0 and scores.shape == (len(boxes),) and np.isfinite(scores).all()
    np.testing.assert_allclose((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]), 1.0, atol=1e-6)
    given = np.array([[0, 0, 180, 120], [20, 10, 150, 110.0]])
    b2, s2 = m.propose(prep, Request(boxes=given))
    np.testing.assert_array_equal(b2, given)
    det = Cues(180, 120)
    det.people = Detections(np.array([[10.0, 10, 90, 100]], np.float32), np.array([0.8], np.float32), ["person"])
    det.objects = Detections(np.array([[100.0, 20, 170, 110]], np.float32), np.array([0.5], np.float32), ["dog"])
    np.testing.assert_allclose(m.score(m.prepare(img, det), given), s2, atol=1e-6)  # same boxes, same scores
    assert not np.allclose(m.score(m.prepare(img, Cues(180, 120)), given), s2, atol=1e-6)


def _batch(k: int = 6) -> dict:
    torch.manual_seed(3)
    rois = torch.cat([torch.repeat_interleave(torch.arange(2.0), k // 2)[:, None],
                      torch.tensor([[0, 0, 128, 96], [10, 5, 100, 90], [30, 20, 128, 96]] * 2, dtype=torch.float32)], 1)
    return {"image": torch.randn(2, 3, 96, 128), "rois": rois, "mos": torch.linspace(1.5, 4.5, k),
            "counts": torch.tensor([k // 2, k // 2]), "object_boxes": BOXES.float(), "object_mask": MASK}


@pytest.mark.parametrize("cfg", [{**V1, "rank_weight": 1.0}, V2], ids=["v1-rank", "v2"])
def test_loss_gives_every_parameter_a_gradient(cfg):
    m = _model(**cfg).train()
    out = m.compute_loss(_batch())
    assert set(out) == ({"loss", "regression", "rank"} if cfg.get("rank_weight") else {"loss", "regression"})
    out["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    if cfg.get("rank_weight"):
        assert out["loss"].item() == pytest.approx(out["regression"].item() + out["rank"].item(), rel=1e-5)


def test_loss_without_object_boxes_is_an_error_unless_the_model_has_no_object_nodes():
    batch = _batch()
    del batch["object_boxes"], batch["object_mask"]
    with pytest.raises(ValueError, match="no object_boxes"):
        _model().compute_loss(batch)
    assert torch.isfinite(_model(bbox_num=0).compute_loss(batch)["loss"])


def test_images_without_object_boxes_are_reported_once():
    batch = _batch()
    batch["object_mask"] = batch["object_mask"].clone()
    batch["object_mask"][1] = False
    batch["name"] = ["a.jpg", "b.jpg"]
    m = _model()
    with pytest.warns(UserWarning, match=r"no object boxes for b\.jpg"):
        m.compute_loss(batch)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.compute_loss(batch)  # once per model


def test_weights_round_trip(tmp_path):
    m = _model(**V2)
    path = m.save_weights(tmp_path / "s2cnet_v2.pt")
    again = create_model("s2cnet", weights=path)
    assert again.weights_source == str(path) and again.config == m.config
    img = torch.randn(1, 3, 96, 128)
    rois = torch.tensor([[0, 0, 0, 128, 96], [0, 10, 10, 90, 80.0]])
    kw = {"object_boxes": BOXES[:1].float(), "object_mask": MASK[:1]}
    with torch.no_grad():
        torch.testing.assert_close(again(img, rois, **kw), m(img, rois, **kw))


def test_published_box_files_batch_with_variable_counts(shared_data):
    """S2CNet's GAICD v1 boxes (10 per image, 9 after dropping a placeholder in 21 images) in one padded batch."""
    from opencrop.data.s2cnet import load_object_boxes

    boxes = load_object_boxes(shared_data / "s2cnet-object-boxes" / "s2cnet_GAIC_boxes_raw.json")
    ten = next(k for k, v in boxes.items() if len(v) == 10)
    nine = next(k for k, v in boxes.items() if len(v) == 9)
    m, feats = _double(**V1)
    scale = torch.tensor([128 / 1024, 96 / 1024] * 2, dtype=torch.float64)  # released 1024-px images → input
    padded = torch.full((2, 10, 4), -1.0, dtype=torch.float64)
    padded[0] = torch.as_tensor(boxes[ten]) * scale
    padded[1, :9] = torch.as_tensor(boxes[nine]) * scale
    mask = padded[..., 0] >= 0
    assert mask.sum(1).tolist() == [10, 9]
    with torch.no_grad():
        s = m.forward_scores(feats, ROIS, object_boxes=padded, object_mask=mask)
        alone = m.forward_scores(feats[1:], torch.cat([torch.zeros(2, 1, dtype=torch.float64), ROIS[2:, 1:]], 1),
                                 object_boxes=padded[1:, :9], object_mask=mask[1:, :9])
        ref = _reference_scores(m, feats, ROIS, padded, mask)
    assert torch.isfinite(s).all()
    torch.testing.assert_close(alone, s[2:], atol=1e-12, rtol=0)
    torch.testing.assert_close(ref, s, atol=1e-10, rtol=0)


def _spread_weights(m: nn.Module, seed: int = 3) -> None:
    """Random weights enlarged by 0.05 · N(0, 1): scores spread over ≈ 1.5 instead of ≈ 0.002 (default init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("cfg", [V1, V2], ids=["v1", "v2"])
def test_bf16_scores_close_to_fp32_and_fp32_unchanged(cfg, monkeypatch):
    """precision='bf16' (CPU, bfloat16 products with float32 accumulation) at the published sizes, through the
    CropModel protocol: every score within 8 % of the fp32 scores' spread, per-image Spearman ≥ 0.99 (random weights
    enlarged by 0.05·N(0, 1); measured 1 % / 0.9993 for v1, 5.7 % / 0.996 for v2). The bf16 products really run
    (bf16-packed weights cached beside the fp32 ones), the per-thread switch is off after the call, and switching
    back to fp32 gives bitwise the fp32 scores of before."""
    from scipy.stats import spearmanr

    import opencrop.models.learned as learned
    import opencrop.models.s2cnet as s2c
    from opencrop.candidates import gaic_grid

    monkeypatch.setattr(learned, "bf16_supported", lambda: True)  # numerics are checked on any CPU (emulated there)
    m = _model(3, **cfg)
    _spread_weights(m)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (256, 384, 3), dtype=np.uint8)
    xy = rng.uniform(0, 250, (m.bbox_num, 2))
    cues = Cues(384, 256, object_boxes=np.concatenate([xy, xy + rng.uniform(30, 120, (m.bbox_num, 2))], 1))
    boxes = gaic_grid(384, 256)
    prepared = m.prepare(img, cues)
    s32 = m.score(prepared, boxes)
    assert m.set_precision("bf16") is m and m.precision == "bf16"
    s16 = m.score(prepared, boxes)
    assert s16.dtype == np.float32 and np.isfinite(s16).all()
    assert np.abs(s16 - s32).max() <= 0.08 * np.ptp(s32), (np.abs(s16 - s32).max(), np.ptp(s32))
    assert spearmanr(s32, s16)[0] >= 0.99
    assert not np.array_equal(s16, s32)  # really another computation
    ff = m.graph.layers[0].ff[0]
    assert {"weight", "weight:bf16"} <= set(s2c._PACKED[ff])
    assert s2c._PACKED[ff]["weight:bf16"][2].dtype == torch.bfloat16
    assert not s2c._low()
    m.set_precision("fp32")
    np.testing.assert_array_equal(m.score(prepared, boxes), s32)


def test_bf16_needs_the_cpu_and_onednn(monkeypatch):
    """A bf16 score call off the CPU or without oneDNN's fused linear is an error, not a silent float32 run."""
    import opencrop.models.learned as learned
    import opencrop.models.s2cnet as s2c

    monkeypatch.setattr(learned, "bf16_supported", lambda: True)
    m = _model(0, **V2).set_precision("bf16")
    prepared = m.prepare(np.zeros((64, 96, 3), np.uint8), Cues(96, 64, object_boxes=np.zeros((0, 4))))
    monkeypatch.setattr(s2c, "_ONEDNN", False)
    with pytest.raises(ValueError, match="oneDNN"):
        m.score(prepared, np.array([[0, 0, 96, 64.0]]))
    monkeypatch.setattr(s2c, "_ONEDNN", None)
    monkeypatch.setattr(S2CNet, "device", property(lambda self: torch.device("meta")))
    with pytest.raises(ValueError, match="CPU"):
        m.score(prepared, np.array([[0, 0, 96, 64.0]]))
