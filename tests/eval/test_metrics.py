"""Metrics: real GAICD sanity (MOS as prediction is perfect, reversed is −1) and hand-computed tie cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from opencrop.data import load_gaicd
from opencrop.eval.metrics import (
    best_crop_hits,
    coco_ap,
    crop_iou_disp,
    gaicd_metrics,
    good_crops,
    iou_bde,
    set_prediction_metrics,
)


@pytest.fixture(scope="module")
def gaicd_test_mos(shared_data: Path) -> list[np.ndarray]:
    recs = load_gaicd(shared_data / "gaicd-annotations" / "gaicd_v1_official_xyxy.json", split="test")
    assert len(recs) == 200
    return [r.scores for r in recs]


def test_real_gaicd_mos_is_perfect(gaicd_test_mos: list[np.ndarray]) -> None:
    m = gaicd_metrics(gaicd_test_mos, gaicd_test_mos)
    assert m["srcc"] == pytest.approx(1.0) and m["pcc"] == pytest.approx(1.0)
    for k in range(1, 5):
        for n in (5, 10):
            assert m[f"acc{k}_{n}"] == pytest.approx(100.0)
            assert m[f"wacc{k}_{n}"] == pytest.approx(100.0)
    assert m["acc5"] == m["acc10"] == pytest.approx(100.0)
    assert m["n_images"] == 200 and m["n_undefined_corr"] == 0


def test_real_gaicd_reversed_and_random(gaicd_test_mos: list[np.ndarray]) -> None:
    m = gaicd_metrics([-s for s in gaicd_test_mos], gaicd_test_mos)
    assert m["srcc"] == pytest.approx(-1.0) and m["pcc"] == pytest.approx(-1.0)
    assert m["acc1_5"] < 5.0
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    pred = [rng.normal(size=s.size) for s in gaicd_test_mos]
    m = gaicd_metrics(pred, gaicd_test_mos)
    ref_s = np.mean([scipy_stats.spearmanr(p, g)[0] for p, g in zip(pred, gaicd_test_mos, strict=True)])
    ref_p = np.mean([scipy_stats.pearsonr(p, g)[0] for p, g in zip(pred, gaicd_test_mos, strict=True)])
    assert m["srcc"] == pytest.approx(ref_s, abs=1e-12) and m["pcc"] == pytest.approx(ref_p, abs=1e-12)
    # monotone transforms leave SRCC unchanged (MOS normalisation invariance)
    m2 = gaicd_metrics([np.exp(p) for p in pred], gaicd_test_mos)
    assert m2["srcc"] == pytest.approx(m["srcc"])


def test_acc_prediction_ties_are_stable() -> None:
    gt = np.array([1.0, 2, 3, 4, 5, 6])
    m = gaicd_metrics([np.zeros(6)], [gt])  # all tied → original order: crops 0, 1, 2, 3
    # N = 5: 5th best GT is 2 → crop 0 (1) misses, crops 1–3 hit
    assert m["acc1_5"] == 0.0 and m["acc2_5"] == 50.0
    assert m["acc3_5"] == pytest.approx(200 / 3) and m["acc4_5"] == 75.0
    assert m["acc5"] == pytest.approx((0 + 50 + 200 / 3 + 75) / 4)
    assert m["acc1_10"] == 100.0  # fewer than 10 crops: the worst GT is the threshold
    assert m["srcc"] == 0.0 and m["pcc"] == 0.0 and m["n_undefined_corr"] == 1  # constant prediction → 0


def test_acc_gt_ties_are_generous() -> None:
    gt = np.array([3.0, 3, 3, 3, 3, 3, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 0, 0, 1.0, 9, 8, 7, 6])  # picks crops 6, 7, 8, 9 (GT 1), then 5 (GT 3)
    m = gaicd_metrics([pred], [gt])
    assert m["acc1_5"] == 0.0  # 5th best GT is 3: GT 1 misses
    assert m["acc1_10"] == 100.0  # 10th best GT is 1: a tie with it counts as a hit
    pred2 = np.arange(10, 0, -1, dtype=float)  # crops 0..3: all tied at 3 with the 5th best
    assert gaicd_metrics([pred2], [gt])["acc4_5"] == 100.0


def test_weighted_accuracy_hand_computed() -> None:
    gt = np.array([5.0, 4, 3, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    pred = np.array([9.0, 8, 10, 1, 0, 0, 0, 0, 0, 0, 7])  # order: crop 2, 0, 1, 10 → GT ranks 2, 0, 1, 10
    m = gaicd_metrics([pred], [gt])
    assert m["wacc1_5"] == pytest.approx(100 * math.exp(-0.2 * 2))
    assert m["wacc1_10"] == pytest.approx(100 * math.exp(-0.1 * 2))
    # K = 2: sorted ranks [0, 2] → (e^0 + e^{-0.2·(2−1)}) / 2
    assert m["wacc2_5"] == pytest.approx(100 * (1 + math.exp(-0.2)) / 2)
    # K = 3: sorted ranks [0, 1, 2] → all terms e^0
    assert m["wacc3_5"] == pytest.approx(100.0) and m["wacc3_10"] == pytest.approx(100.0)
    # K = 4: ranks [0, 1, 2, 10]; rank 10 > 4 and > 9 contributes nothing
    assert m["wacc4_5"] == pytest.approx(75.0) and m["wacc4_10"] == pytest.approx(75.0)
    assert m["acc4_5"] == 75.0  # crop 10 (GT 0.05) misses the 5th best (1)


def test_weighted_accuracy_ties_take_best_free_rank() -> None:
    gt = np.array([4.0, 4, 4, 1, 1, 1])
    pred = np.array([0.0, 0, 5, 0, 0, 0])  # returns crop 2 first: tied at the top → GT rank 0
    m = gaicd_metrics([pred], [gt])
    assert m["wacc1_5"] == pytest.approx(100.0)
    # next returned crops 0, 1 (stable) take ranks 1, 2 → still perfect
    assert m["wacc3_5"] == pytest.approx(100.0)


def test_gaicd_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3 crops"):
        gaicd_metrics([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError, match="non-finite"):
        gaicd_metrics([np.array([np.nan, 1, 2])], [np.zeros(3)])
    with pytest.raises(ValueError, match="no images"):
        gaicd_metrics([], [])


# ------------------------------------------------------------------------------------------------- IoU / BDE
def test_iou_disp_equal_iou_prefers_min_displacement() -> None:
    pred = np.array([0.0, 0, 10, 10])
    gts = np.array([[0.0, 0, 10, 20], [0, 0, 20, 10]])  # both IoU 0.5; Disp 10/100 vs 10/200
    iou, disp, idx = crop_iou_disp(pred, gts, width=200, height=100)
    assert (iou, disp, idx) == (pytest.approx(0.5), pytest.approx(0.05), 1)


def test_iou_disp_max_iou_wins_when_ious_differ() -> None:
    pred = np.array([0.0, 0, 10, 10])
    gts = np.array([[0.0, 0, 10, 12], [1, 0, 11, 10]])  # IoU 100/120 vs 90/110; Disp 2/100 vs 2/200
    iou, disp, idx = crop_iou_disp(pred, gts, width=200, height=100)
    assert idx == 0 and iou == pytest.approx(100 / 120) and disp == pytest.approx(0.02)


def test_iou_disp_first_index_wins_and_filters() -> None:
    pred = np.array([0.0, 0, 10, 10])
    same = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    assert crop_iou_disp(pred, same, 100, 100) == (1.0, 0.0, 0)
    padded = np.array([[-1.0, -1, -1, -1], [0, 0, 300, 10], [0, 0, 10, 20]])  # padding, exceeds W=100, valid
    iou, disp, idx = crop_iou_disp(pred, padded, 100, 100)
    assert idx == 0 and iou == pytest.approx(0.5) and disp == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no valid ground-truth"):
        crop_iou_disp(pred, np.array([[-1.0, -1, -1, -1]]), 100, 100)


def test_iou_bde_dataset() -> None:
    preds = [np.array([0.0, 0, 10, 10]), np.array([0.0, 0, 10, 10])]
    gts = [np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 20]])]
    m = iou_bde(preds, gts, [100, 100], [100, 100])
    assert m["iou"] == pytest.approx(0.75) and m["disp"] == pytest.approx(0.05)
    assert m["bde"] == pytest.approx(0.05 / 4) and m["recall75"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one entry per image"):
        iou_bde(preds, gts, [100], [100, 100])


# ---------------------------------------------------------------------------------------------- set metrics
def test_coco_ap_hand_computed() -> None:
    gts = [np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]])]
    boxes = [np.array([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]])]
    scores = [np.array([0.9, 0.8, 0.7])]
    # TP, FP, TP → recall .5 .5 1, precision 1 .5 .667 → interpolated 1 up to recall .5, 2/3 after
    assert coco_ap(boxes, scores, gts, 0.85, 90) == pytest.approx(100 * (51 + 50 * 2 / 3) / 101)
    assert coco_ap(boxes, scores, gts, 0.85, 2) == pytest.approx(100 * 51 / 101)  # only TP, FP kept
    # a duplicate of a matched box is a false positive (greedy one-to-one matching)
    dup = [np.array([[0.0, 0, 10, 10], [0, 0, 10, 10]])]
    assert coco_ap(dup, [np.array([0.9, 0.8])], [gts[0][:1]], 0.85, 90) == pytest.approx(100.0)
    assert coco_ap(dup, [np.array([0.9, 0.8])], gts, 0.85, 90) == pytest.approx(100 * 51 / 101)


def test_best_crop_hits_and_good_crops() -> None:
    best = [np.array([0.0, 0, 10, 10]), np.array([0.0, 0, 10, 10])]
    preds = [np.array([[50.0, 50, 60, 60], [0, 0, 10, 10.5]]), np.array([[50.0, 50, 60, 60]] * 6 + [[0, 0, 10, 10]])]
    assert best_crop_hits(preds, best, 1, 0.85) == 0.0
    assert best_crop_hits(preds, best, 5, 0.85) == 50.0  # second image's match is 7th
    assert best_crop_hits(preds, best, 10, 0.9) == 100.0
    crops = np.array([[0.0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]])
    assert good_crops(crops, np.array([4.2, 3.0, 4.0])).shape == (2, 4)
    np.testing.assert_array_equal(good_crops(crops, np.array([3.0, 3.5, 3.5])), crops[1:])  # none ≥ 4: ties at max


def test_set_prediction_metrics_perfect_prediction() -> None:
    crops = np.array([[0.0, 0, 100, 100], [10, 10, 90, 90], [0, 0, 50, 50]])
    mos = np.array([4.5, 4.1, 2.0])
    m = set_prediction_metrics([crops], [mos], [crops], [mos])
    assert m["hit5@0.85"] == 100.0 and m["hit10@0.90"] == 100.0
    # predictions = all crops scored by MOS: the two good crops come first → AP 100 at any maxDets
    assert m["ap5@0.85"] == pytest.approx(100.0) and m["ap90@0.90"] == pytest.approx(100.0)
    assert set(m) >= {f"ap{d}@{t}" for d in (5, 10, 20, 40, 60, 90) for t in ("0.85", "0.90")}
