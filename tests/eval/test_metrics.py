"""Metrics: hand-computed cases for every tie and edge rule (the real-GAICD checks are in test_metrics_official)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opencrop.eval.metrics import (
    best_crop_hits,
    coco_ap,
    crop_iou_disp,
    gaicd_metrics,
    good_crops,
    iou_bde,
    set_prediction_metrics,
)


def test_acc_prediction_ties_are_stable() -> None:
    gt = np.array([1.0, 2, 3, 4, 5, 6])
    m = gaicd_metrics([np.zeros(6)], [gt])  # all tied → original order: crops 0, 1, 2, 3
    # N = 5: 5th best GT is 2 → crop 0 (1) misses, crops 1–3 hit
    assert m["acc1_5"] == 0.0 and m["acc2_5"] == 50.0
    assert m["acc3_5"] == pytest.approx(200 / 3) and m["acc4_5"] == 75.0
    assert m["acc5"] == pytest.approx((0 + 50 + 200 / 3 + 75) / 4)
    assert m["acc1_10"] == 100.0  # fewer than 10 crops: the worst GT is the threshold
    assert m["n_few_crops"] == 1
    # constant prediction: SciPy's NaN, and the official mean propagates it
    assert math.isnan(m["srcc"]) and math.isnan(m["pcc"]) and m["n_undefined_corr"] == 1


def test_acc_gt_ties_are_generous() -> None:
    gt = np.array([3.0, 3, 3, 3, 3, 3, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 0, 0, 1.0, 9, 8, 7, 6])  # picks crops 6, 7, 8, 9 (GT 1), then 5 (GT 3)
    m = gaicd_metrics([pred], [gt])
    assert m["acc1_5"] == 0.0  # 5th best GT is 3: GT 1 misses
    assert m["acc1_10"] == 100.0  # 10th best GT is 1: a tie with it counts as a hit
    pred2 = np.arange(10, 0, -1, dtype=float)  # crops 0..3: all tied at 3 with the 5th best
    assert gaicd_metrics([pred2], [gt])["acc4_5"] == 100.0
    # Acc ties do not depend on the Acc_w rank rule
    for p in (pred, pred2):
        a, b = gaicd_metrics([p], [gt]), gaicd_metrics([p], [gt], wacc_ranks="generous")
        assert all(a[f"acc{k}_{n}"] == b[f"acc{k}_{n}"] for k in range(1, 5) for n in (5, 10))


def test_weighted_accuracy_hand_computed() -> None:
    gt = np.array([5.0, 4, 3, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    pred = np.array([9.0, 8, 10, 1, 0, 0, 0, 0, 0, 0, 7])  # order: crop 2, 0, 1, 10 → GT ranks 2, 0, 1, 10
    for rule in ("official", "generous"):  # no GT ties: both rules agree
        m = gaicd_metrics([pred], [gt], wacc_ranks=rule)
        assert m["wacc1_5"] == pytest.approx(100 * math.exp(-0.2 * 2))
        assert m["wacc1_10"] == pytest.approx(100 * math.exp(-0.1 * 2))
        # K = 2: sorted ranks [0, 2] → (e^0 + e^{-0.2·(2−1)}) / 2
        assert m["wacc2_5"] == pytest.approx(100 * (1 + math.exp(-0.2)) / 2)
        # K = 3: sorted ranks [0, 1, 2] → all terms e^0
        assert m["wacc3_5"] == pytest.approx(100.0) and m["wacc3_10"] == pytest.approx(100.0)
        # K = 4: ranks [0, 1, 2, 10]; rank 10 > 4 and > 9 contributes nothing
        assert m["wacc4_5"] == pytest.approx(75.0) and m["wacc4_10"] == pytest.approx(75.0)
        assert m["acc4_5"] == 75.0  # crop 10 (GT 0.05) misses the 5th best (1)


@pytest.mark.parametrize(("first", "w5", "w10"), [(4, math.exp(-0.8), math.exp(-0.4)), (5, 0.0, math.exp(-0.5)),
                                                   (9, 0.0, math.exp(-0.9)), (10, 0.0, 0.0)])
def test_weighted_accuracy_rank_cut_offs(first: int, w5: float, w10: float) -> None:
    """Rank r counts for N = 5 only if r ≤ 4 and for N = 10 only if r ≤ 9 (0-based)."""
    gt = np.arange(12, 0, -1, dtype=float)  # crop c has GT rank c
    pred = np.zeros(12)
    pred[first] = 1.0
    m = gaicd_metrics([pred], [gt])
    assert m["wacc1_5"] == pytest.approx(100 * w5, abs=1e-12)
    assert m["wacc1_10"] == pytest.approx(100 * w10, abs=1e-12)


def test_weighted_accuracy_gt_ties_official_file_order() -> None:
    """Official rank = position in the stable GT sort (``id_MOS.index(id_out[k])``): GT ties keep file order."""
    gt = np.array([4.0, 4, 4, 1, 1, 1])
    pred = np.array([0.0, 0, 5, 0, 0, 0])  # returns crop 2, then 0, 1, 3 (stable)
    m = gaicd_metrics([pred], [gt])
    # crop 2 sits at position 2 of the GT sort although it ties with the best
    assert m["wacc1_5"] == pytest.approx(100 * math.exp(-0.4))
    assert m["wacc1_10"] == pytest.approx(100 * math.exp(-0.2))
    assert m["wacc2_5"] == pytest.approx(100 * (1 + math.exp(-0.2)) / 2)  # sorted ranks [0, 2]
    assert m["wacc3_5"] == pytest.approx(100.0) and m["wacc4_5"] == pytest.approx(100.0)  # [0, 1, 2(, 3)]
    g = gaicd_metrics([pred], [gt], wacc_ranks="generous")  # the best free rank: crop 2 → 0, crop 0 → 1, ...
    assert g["wacc1_5"] == pytest.approx(100.0) and g["wacc2_5"] == pytest.approx(100.0)
    # reverse file order among the tied best: ranks 2, 1, 0 officially, 0, 1, 2 generously
    pred2 = np.array([1.0, 2, 3, 0, 0, 0])
    m2 = gaicd_metrics([pred2], [gt])
    assert m2["wacc1_5"] == pytest.approx(100 * math.exp(-0.4))
    assert m2["wacc2_5"] == pytest.approx(100 * math.exp(-0.2))  # sorted [1, 2] → 2 e^{-0.2} / 2
    assert m2["wacc3_5"] == pytest.approx(100.0)
    assert gaicd_metrics([pred2], [gt], wacc_ranks="generous")["wacc2_5"] == pytest.approx(100.0)
    assert m2["acc1_5"] == m["acc1_5"] == 100.0


def test_undefined_correlation_options() -> None:
    gt = [np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 4]), np.array([2.0, 2, 2, 2])]
    pred = [np.array([1.0, 2, 4, 3]), np.zeros(4), np.array([1.0, 2, 3, 4])]  # constant pred, constant GT
    s0 = 0.8  # Spearman of [1, 2, 3, 4] vs [1, 2, 4, 3]: 1 − 6·2 / (4·15)
    m = gaicd_metrics(pred, gt)
    assert math.isnan(m["srcc"]) and math.isnan(m["pcc"]) and m["n_undefined_corr"] == 2
    z = gaicd_metrics(pred, gt, undefined_corr="zero")
    assert z["srcc"] == pytest.approx(s0 / 3) and z["n_undefined_corr"] == 2
    k = gaicd_metrics(pred, gt, undefined_corr="skip")
    assert k["srcc"] == pytest.approx(s0) and k["pcc"] == pytest.approx(0.8) and k["n_undefined_corr"] == 2
    only = gaicd_metrics(pred[1:], gt[1:], undefined_corr="skip")
    assert math.isnan(only["srcc"]) and only["n_undefined_corr"] == 2
    assert m["acc1_5"] == z["acc1_5"] == k["acc1_5"]  # the option touches the correlations only


def test_gaicd_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3 crops"):
        gaicd_metrics([np.zeros(2)], [np.zeros(3)])
    with pytest.raises(ValueError, match="non-finite predicted"):
        gaicd_metrics([np.array([np.nan, 1, 2, 3])], [np.zeros(4)])
    with pytest.raises(ValueError, match="non-finite ground-truth"):
        gaicd_metrics([np.zeros(4)], [np.array([np.inf, 1, 2, 3])])
    with pytest.raises(ValueError, match=r"image 0: 3 crops; .* at least 4"):
        gaicd_metrics([np.zeros(3)], [np.arange(3.0)])
    with pytest.raises(ValueError, match="no images"):
        gaicd_metrics([], [])
    with pytest.raises(ValueError, match="wacc_ranks='best'"):
        gaicd_metrics([np.arange(4.0)], [np.arange(4.0)], wacc_ranks="best")
    with pytest.raises(ValueError, match="undefined_corr='nan'"):
        gaicd_metrics([np.arange(4.0)], [np.arange(4.0)], undefined_corr="nan")


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


def test_report_notes_undefined_correlations_and_few_crops() -> None:
    from opencrop.eval.report import format_table

    gt = [np.arange(6.0), np.arange(12.0)]
    m = gaicd_metrics([np.zeros(6), np.arange(12.0)], gt)
    text = format_table("scored", "const", m, None, "GAICD")
    assert "1 of 2 images have an undefined SRCC / PCC" in text and "nan" in text
    assert "1 of 2 images have fewer than 10 crops" in text
    assert "undefined" not in format_table("scored", "x", gaicd_metrics(gt, gt), None, "GAICD")
