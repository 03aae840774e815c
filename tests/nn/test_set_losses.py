"""SetCrop targets, matching and losses (opencrop.nn.set_losses): brute-force matching, hand-computed focal costs,
good crops, quality smoothing, the teacher term; opencrop's validity-ranking options (quality targets, quality focal
loss, ranking term) against hand-computed values."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from opencrop.boxes import cxcywh_to_xyxy, generalized_box_iou
from opencrop.nn.set_losses import (
    SetLossConfig,
    crop_validity_loss,
    good_crop_mask,
    hungarian_match,
    match_cost,
    matched_rank_loss,
    quality_focal_loss,
    quality_soft_targets,
    relative_quality,
    set_criterion,
    sigmoid_focal_loss,
    validity_targets,
)

CFG = SetLossConfig()


def _brute_force(cost: torch.Tensor) -> float:
    """Minimum total cost of a one-to-one assignment of min(Q, G) pairs, by enumeration."""
    q, g = cost.shape
    if q >= g:
        return min(sum(float(cost[r, c]) for c, r in enumerate(rows)) for rows in itertools.permutations(range(q), g))
    return min(sum(float(cost[r, c]) for r, c in enumerate(cols)) for cols in itertools.permutations(range(g), q))


@pytest.mark.parametrize("q,g", [(5, 3), (3, 5), (4, 4), (6, 1), (1, 1)])
def test_hungarian_equals_brute_force(q, g):
    gen = torch.Generator().manual_seed(q * 10 + g)
    for _ in range(20):
        cost = torch.rand(q, g, generator=gen, dtype=torch.float64) * 10 - 3
        rows, cols = hungarian_match(cost)
        assert len(rows) == len(cols) == min(q, g)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert float(cost[rows, cols].sum()) == pytest.approx(_brute_force(cost), abs=1e-9)


def test_hungarian_on_real_match_costs_equals_brute_force():
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        logits = torch.randn(6, generator=gen)
        boxes = torch.rand(6, 4, generator=gen) * 0.5 + 0.25
        tgt = torch.rand(3, 4, generator=gen) * 0.5 + 0.25
        cost = match_cost(logits, boxes, tgt, CFG)
        assert cost.dtype == torch.float64
        rows, cols = hungarian_match(cost)
        assert float(cost[rows, cols].sum()) == pytest.approx(_brute_force(cost), abs=1e-9)


def test_hungarian_rejects_nan():
    with pytest.raises(ValueError, match="non-finite"):
        hungarian_match(torch.tensor([[0.0, float("nan")]]))


def test_match_cost_hand_computed():
    logits = torch.tensor([0.0])  # p = 0.5
    box = torch.tensor([[0.5, 0.5, 0.4, 0.4]])
    tgt = torch.tensor([[0.5, 0.6, 0.4, 0.2]])
    pos = 0.25 * 0.5**2 * -math.log(0.5 + 1e-8)
    neg = 0.75 * 0.5**2 * -math.log(0.5 + 1e-8)
    giou = float(generalized_box_iou(cxcywh_to_xyxy(box), cxcywh_to_xyxy(tgt))[0, 0])
    want = 5 * (0.1 + 0.2) + 2 * (pos - neg) - 2 * giou
    assert float(match_cost(logits, box, tgt, CFG)[0, 0]) == pytest.approx(want, rel=1e-6)
    # a more confident query is cheaper to match
    c = match_cost(torch.tensor([-3.0, 3.0]), box.repeat(2, 1), tgt, CFG)
    assert c[1, 0] < c[0, 0]


def test_focal_loss_values():
    # logit 0, target 1: BCE log 2, (1 − p_t)^2 = 0.25, α_t = 0.25
    assert float(sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]))) == pytest.approx(0.0625 * math.log(2))
    assert float(sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([0.0]))) == pytest.approx(0.1875 * math.log(2))
    easy = sigmoid_focal_loss(torch.tensor([8.0]), torch.tensor([1.0]))
    assert float(easy) < 1e-8
    soft = sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([0.5]), alpha=-1, gamma=0)
    assert float(soft) == pytest.approx(math.log(2))  # plain BCE with a soft target


def test_good_crop_mask_rules():
    mos = torch.tensor([3.0, 4.2, 4.0, 2.0])
    assert good_crop_mask(mos).tolist() == [False, True, True, False]
    ties = torch.tensor([3.5, 3.9, 3.9, 1.0])
    assert good_crop_mask(ties).tolist() == [False, True, True, False]  # none ≥ 4: the ties at the maximum
    assert good_crop_mask(mos, thresh=None, top_k=3).tolist() == [True, True, True, False]
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.5], [0, 0, 10, 9.8], [20, 20, 30, 30]], dtype=torch.float32)
    cpc = torch.tensor([2.5, 2.0, 2.2, 3.0])  # CPC: ≥ 2, then NMS 0.8 keeps the best of the near duplicates
    assert good_crop_mask(cpc, boxes, thresh=2.0, nms_iou=0.8).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="crops_xyxy"):
        good_crop_mask(cpc, None, thresh=2.0, nms_iou=0.8)


def test_quality_soft_targets():
    crops = torch.tensor([[0.5, 0.5, 0.6, 0.6], [0.3, 0.3, 0.4, 0.4], [0.7, 0.7, 0.3, 0.3]])
    mos = torch.tensor([3.5, 2.75, 4.8])
    near = crops[0] * torch.tensor([1.0, 1.0, 0.97, 0.97])  # IoU 0.94 with crop 0
    far = torch.tensor([0.5, 0.5, 0.45, 0.45])  # IoU 0.5625 with crop 0
    preds = torch.stack([near, crops[1], far, crops[2]])
    soft = quality_soft_targets(preds, crops, mos, CFG)
    # clamp(0.5 · (MOS − 2) / 1.5, 0, 0.5): 3.5 → 0.5, 2.75 → 0.25, below IoU 0.85 → 0, 4.8 → capped at 0.5
    assert soft.tolist() == pytest.approx([0.5, 0.25, 0.0, 0.5])
    low = quality_soft_targets(preds[1:2], crops[1:2], torch.tensor([1.5]), CFG)
    assert low.tolist() == [0.0]
    off = quality_soft_targets(preds, crops, mos, SetLossConfig(soft_bound=0.0))
    assert off.tolist() == [0.0] * 4


def test_validity_targets_keep_matched_at_one():
    soft = torch.tensor([0.5, 0.2, 0.0, 0.4])
    matched = torch.tensor([0, 2])
    mboxes = torch.tensor([[0.5, 0.5, 0.9, 0.9], [0.5, 0.5, 0.5, 0.5]])
    assert validity_targets(4, matched, mboxes, soft, CFG).tolist() == pytest.approx([1.0, 0.2, 1.0, 0.4])
    smooth = validity_targets(4, matched, mboxes, soft, SetLossConfig(valid_smooth=True))
    assert smooth.tolist() == pytest.approx([0.9, 0.2, 1.0, 0.4])  # the matched crop covering 81 % gets 0.9
    assert validity_targets(4, matched, mboxes, None, CFG).tolist() == [1.0, 0.0, 1.0, 0.0]


def _toy(n_layers=2, q=5):
    gen = torch.Generator().manual_seed(0)
    crops = [torch.tensor([[0.5, 0.5, 0.8, 0.8], [0.4, 0.45, 0.6, 0.7], [0.55, 0.5, 0.7, 0.9]])]
    mos = [torch.tensor([4.3, 3.0, 4.1])]
    good = [good_crop_mask(mos[0])]
    logits = torch.randn(n_layers, 1, q, generator=gen, requires_grad=True)
    boxes = (torch.rand(n_layers, 1, q, 4, generator=gen) * 0.4 + 0.3).requires_grad_(True)
    return logits, boxes, crops, mos, good


def test_set_criterion_perfect_boxes_have_zero_box_loss():
    _, _, crops, mos, good = _toy()
    boxes = torch.cat([crops[0][good[0]], torch.full((3, 4), 0.2)])[None, None]  # queries 0, 1 = the good crops
    logits = torch.tensor([[[9.0, 9.0, -9.0, -9.0, -9.0]]])
    out = set_criterion(logits, boxes, crops, mos, good, SetLossConfig(soft_bound=0.0))
    assert float(out["l1"]) == pytest.approx(0.0, abs=1e-7) and float(out["giou"]) == pytest.approx(0.0, abs=1e-6)
    assert float(out["ce"]) < 1e-4
    assert float(out["loss"]) == pytest.approx(2 * float(out["ce"]), abs=1e-5)


def test_set_criterion_sums_layers_and_backpropagates():
    logits, boxes, crops, mos, good = _toy(n_layers=3)
    out = set_criterion(logits, boxes, crops, mos, good, CFG)
    single = [set_criterion(logits[i : i + 1], boxes[i : i + 1], crops, mos, good, CFG)["loss"] for i in range(3)]
    assert float(out["loss"].detach()) == pytest.approx(float(sum(s.detach() for s in single)), rel=1e-6)
    out["loss"].backward()
    assert logits.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0


def test_set_criterion_teacher_term():
    logits, boxes, crops, mos, good = _toy(n_layers=1)
    base = set_criterion(logits, boxes, crops, mos, good, CFG)
    # a teacher that agrees with the hard (smoothed) targets leaves the validity loss unchanged
    qi, ti = hungarian_match(match_cost(logits[0, 0].detach(), boxes[0, 0].detach(), crops[0][good[0]], CFG))
    soft = quality_soft_targets(boxes[0, 0], crops[0], mos[0], CFG)
    hard = validity_targets(5, qi, crops[0][good[0]][ti], soft, CFG)
    same = set_criterion(logits, boxes, crops, mos, good, CFG, teacher_prob=hard[None])
    assert float(same["ce"]) == pytest.approx(float(base["ce"]), rel=1e-6)
    # otherwise ce = 0.5 · focal(hard) + 0.5 · focal(teacher)
    teacher = torch.full((1, 5), 0.3)
    mixed = set_criterion(logits, boxes, crops, mos, good, CFG, teacher_prob=teacher)
    t_only = sigmoid_focal_loss(logits[0, 0], teacher[0]).sum() / 2  # 2 good crops
    want = 0.5 * float(base["ce"]) + 0.5 * float(t_only.detach())
    assert float(mixed["ce"]) == pytest.approx(want, rel=1e-5)


# ------------------------------------------------------------------ opencrop's validity-ranking options
QCFG = SetLossConfig(quality_target=True)


def test_relative_quality_hand_computed():
    mos = torch.tensor([4.5, 4.0, 3.0, 1.5])
    # (MOS − 2) / (4.5 − 2), clamped to [0, 1]
    assert relative_quality(mos, QCFG).tolist() == pytest.approx([1.0, 0.8, 0.4, 0.0])
    sq = relative_quality(mos, SetLossConfig(quality_target=True, quality_power=2.0))
    assert sq.tolist() == pytest.approx([1.0, 0.64, 0.16, 0.0])
    assert relative_quality(torch.tensor([1.8, 1.2]), QCFG).tolist() == [1.0, 1.0]  # best ≤ soft_low: all alike
    with pytest.raises(ValueError, match="quality_power"):
        SetLossConfig(quality_power=0.0)
    with pytest.raises(ValueError, match="valid_loss"):
        SetLossConfig(valid_loss="bce")


def test_quality_aware_soft_and_matched_targets():
    crops = torch.tensor([[0.5, 0.5, 0.6, 0.6], [0.3, 0.3, 0.4, 0.4], [0.7, 0.7, 0.3, 0.3]])
    mos = torch.tensor([3.5, 2.75, 4.8])
    near = crops[0] * torch.tensor([1.0, 1.0, 0.97, 0.97])  # IoU 0.94 with crop 0
    far = torch.tensor([0.5, 0.5, 0.45, 0.45])  # IoU 0.5625 with crop 0
    preds = torch.stack([near, crops[1], far, crops[2]])
    soft = quality_soft_targets(preds, crops, mos, QCFG)
    # 0.5 · (MOS − 2) / (4.8 − 2): 3.5 → 0.5 · 1.5 / 2.8, 2.75 → 0.5 · 0.75 / 2.8, far → 0, the best → 0.5
    assert soft.tolist() == pytest.approx([0.5 * 1.5 / 2.8, 0.5 * 0.75 / 2.8, 0.0, 0.5])
    # matched queries take their crops' relative quality instead of 1
    base = torch.tensor([0.5, 0.2, 0.0, 0.4])
    mboxes = torch.tensor([[0.5, 0.5, 0.9, 0.9], [0.5, 0.5, 0.5, 0.5]])
    t = validity_targets(4, torch.tensor([0, 2]), mboxes, base, QCFG, torch.tensor([0.8, 1.0]))
    assert t.tolist() == pytest.approx([0.8, 0.2, 1.0, 0.4])
    with pytest.raises(ValueError, match="matched_quality"):
        validity_targets(4, torch.tensor([0, 2]), mboxes, base, QCFG)


def test_quality_focal_loss_hand_computed():
    logits = torch.tensor([0.0, 0.0, math.log(3.0)])  # σ = 0.5, 0.5, 0.75
    targets = torch.tensor([1.0, 0.5, 0.25])
    want = [0.25 * math.log(2.0), 0.0, 0.25 * (-0.25 * math.log(0.75) - 0.75 * math.log(0.25))]
    assert quality_focal_loss(logits, targets).tolist() == pytest.approx(want, rel=1e-5)


def test_matched_rank_loss_hand_computed():
    logits = torch.tensor([2.0, 0.0, 1.0, 0.0])
    targets = torch.tensor([1.0, 0.5, 0.8, 0.5])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    # query 0 (t 1) over 1, 2, 3; query 2 (t 0.8) over 1, 3: mean of five softplus(l_j − l_i)
    want = (sp(-2) + sp(-1) + sp(-2) + sp(-1) + sp(-1)) / 5
    assert float(matched_rank_loss(logits, targets, torch.tensor([0, 2]))) == pytest.approx(want, rel=1e-6)
    assert float(matched_rank_loss(logits, torch.ones(4), torch.tensor([0, 2]))) == 0.0  # no lower target
    assert float(matched_rank_loss(logits, targets, torch.zeros(0, dtype=torch.int64))) == 0.0


def test_set_criterion_with_the_ranking_options():
    logits, boxes, crops, mos, good = _toy(n_layers=1)
    cfg = SetLossConfig(quality_target=True, valid_loss="qfl", rank_weight=1.5)
    out = set_criterion(logits, boxes, crops, mos, good, cfg)
    # rebuild the single layer's terms by hand from the same matching
    tgt = crops[0][good[0]]
    qi, ti = hungarian_match(match_cost(logits[0, 0].detach(), boxes[0, 0].detach(), tgt, cfg))
    soft = quality_soft_targets(boxes[0, 0], crops[0], mos[0], cfg)
    mq = relative_quality(mos[0], cfg)[good[0]][ti]  # good crops MOS 4.3, 4.1 → 1, 2.1 / 2.3
    assert sorted(mq.tolist()) == pytest.approx([2.1 / 2.3, 1.0])
    t = validity_targets(5, qi, tgt[ti], soft, cfg, mq)
    ce = float(quality_focal_loss(logits[0, 0], t).sum().detach()) / 2  # 2 good crops
    rank = float(matched_rank_loss(logits[0, 0], t, qi).detach())
    assert float(out["ce"]) == pytest.approx(ce, rel=1e-5)
    assert float(out["rank"]) == pytest.approx(rank, rel=1e-5)
    want = 2 * ce + 5 * float(out["l1"]) + 2 * float(out["giou"]) + 1.5 * rank
    assert float(out["loss"].detach()) == pytest.approx(want, rel=1e-5)
    out["loss"].backward()
    assert logits.grad.abs().sum() > 0
    # off (the paper): no rank part, and the defaults leave the loss as before
    assert "rank" not in set_criterion(logits, boxes, crops, mos, good, CFG)


def test_crop_validity_loss_scores_each_annotated_crop_as_a_query_on_it() -> None:
    crops = torch.tensor([[0.5, 0.5, 0.8, 0.8], [0.3, 0.4, 0.5, 0.6], [0.7, 0.6, 0.4, 0.5], [0.5, 0.5, 0.79, 0.8]])
    mos = torch.tensor([4.5, 3.5, 2.0, 2.75])
    good = torch.tensor([True, False, False, False])
    logits = torch.tensor([0.3, -1.0, 2.0, 0.1])
    # the good crop → 1; the others their own MOS smoothed: 0.5 · (MOS − 2) / 1.5 capped at 0.5. Crop 3 nearly
    # coincides with crop 0 (IoU 0.99) but is its own best match (IoU 1), so it keeps its own MOS: 0.25
    want = torch.tensor([1.0, 0.5, 0.0, 0.25])
    got = crop_validity_loss(logits, crops, mos, good, CFG)
    torch.testing.assert_close(got, sigmoid_focal_loss(logits, want, CFG.focal_alpha, CFG.focal_gamma).sum())
    qcfg = SetLossConfig(quality_target=True, valid_loss="qfl")  # relative quality (MOS − 2) / (4.5 − 2)
    q = torch.tensor([1.0, 0.6, 0.0, 0.3])
    want_q = torch.tensor([1.0, 0.5 * 0.6, 0.0, 0.5 * 0.3])
    torch.testing.assert_close(crop_validity_loss(logits, crops, mos, good, qcfg),
                               quality_focal_loss(logits, want_q, qcfg.focal_gamma).sum())
    assert relative_quality(mos, qcfg).tolist() == pytest.approx(q.tolist())
