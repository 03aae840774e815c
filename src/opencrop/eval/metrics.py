"""Every benchmark metric, defined once (systems.md §2.5, §3.6, §6.4, §9).

Conventions: boxes are **xyxy float pixels**; IoU and boundary displacement come from :mod:`opencrop.boxes`.
GAICD accuracies are returned in **percent**; correlations, IoU, BDE and recall as fractions; set-prediction hit
rates and AP in percent.

Decisions where the published code is silent or inconsistent (all documented in ``docs/data.md``):

* **Prediction ties** keep the original crop order (stable sort), so a constant predictor returns the first crops.
* **GT ties are generous**: a predicted crop is a hit for Acc_{K/N} if its GT score is ≥ the N-th best GT score.
  For Acc_w, tied crops take the best free GT ranks in prediction order (rank = number of strictly better crops +
  number of equally good crops already returned), so ``r_j ≥ j`` and every term is ≤ 1.
* **Undefined correlations** (constant predictions or constant GT within an image, or fewer than 2 crops) count as
  **0** for that image, i.e. "no ranking information"; ``n_undefined_corr`` reports how many images that hit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from opencrop.boxes import boundary_displacement, box_iou

__all__ = [
    "ACC_KS",
    "ACC_NS",
    "AP_MAX_DETS",
    "AP_THRESHOLDS",
    "best_crop_hits",
    "coco_ap",
    "crop_iou_disp",
    "gaicd_metrics",
    "good_crops",
    "iou_bde",
    "set_prediction_metrics",
]

ACC_KS = (1, 2, 3, 4)
ACC_NS = (5, 10)
AP_THRESHOLDS = (0.85, 0.90)
AP_MAX_DETS = (5, 10, 20, 40, 60, 90)


def _rank_avg(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing their mean rank, as Spearman uses."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    grp = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = avg[grp]
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, or NaN when either side is constant or has fewer than 2 values."""
    if a.size < 2:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if den <= 0 or not np.isfinite(den):
        return float("nan")
    return float(np.clip((a * b).sum() / den, -1.0, 1.0))


def gaicd_metrics(pred_scores: Sequence[np.ndarray], gt_scores: Sequence[np.ndarray]) -> dict[str, float]:
    """GAICD metrics over images (systems.md §2.5 / §9 rows 1–3).

    Args:
        pred_scores: per image ``[N_i]`` predicted scores of the valid annotated crops (higher = better).
        gt_scores: per image ``[N_i]`` MOS of the same crops, same order.

    Returns:
        ``srcc``, ``pcc`` (means of per-image Spearman / Pearson; undefined → 0, see module doc),
        ``acc{K}_{N}`` and ``wacc{K}_{N}`` for K = 1..4, N ∈ {5, 10} (percent), ``acc5`` / ``acc10`` /
        ``wacc5`` / ``wacc10`` (means over K), ``n_images``, ``n_undefined_corr``.
        Images with fewer than N crops use their worst GT score as the N-th best.
    """
    if len(pred_scores) != len(gt_scores):
        raise ValueError(f"{len(pred_scores)} predictions but {len(gt_scores)} ground truths")
    if len(gt_scores) == 0:
        raise ValueError("no images to evaluate")
    n_img = len(gt_scores)
    acc = np.zeros((len(ACC_KS), len(ACC_NS)))
    wacc = np.zeros((len(ACC_KS), len(ACC_NS)))
    srcc = np.zeros(n_img)
    pcc = np.zeros(n_img)
    undefined = 0
    kmax = max(ACC_KS)
    for i, (p, g) in enumerate(zip(pred_scores, gt_scores, strict=True)):
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if p.shape != g.shape:
            raise ValueError(f"image {i}: {p.size} predictions for {g.size} crops")
        if g.size == 0:
            raise ValueError(f"image {i}: no crops")
        if not np.isfinite(p).all():
            raise ValueError(f"image {i}: non-finite predicted score")
        # correlations
        s = _pearson(_rank_avg(p), _rank_avg(g))
        r = _pearson(p, g)
        if np.isnan(s) or np.isnan(r):
            undefined += 1
        srcc[i] = 0.0 if np.isnan(s) else s
        pcc[i] = 0.0 if np.isnan(r) else r
        # accuracies
        order = np.argsort(-p, kind="stable")  # prediction ties keep the original crop order
        top = g[order[:kmax]]
        if top.size < kmax:  # fewer than 4 crops: repeat the last one (only a pathological case)
            top = np.r_[top, np.repeat(top[-1], kmax - top.size)]
        g_desc = np.sort(g)[::-1]
        for ni, n in enumerate(ACC_NS):
            thr = g_desc[min(n, g.size) - 1]
            hits = np.cumsum(top >= thr)
            for ki, k in enumerate(ACC_KS):
                acc[ki, ni] += hits[k - 1] / k
        # weighted accuracy: generous distinct GT ranks for the returned crops
        better = (g[None, :] > top[:, None]).sum(axis=1)  # strictly better crops
        same_before = np.array([(top[:j] == top[j]).sum() for j in range(kmax)])
        ranks = better + same_before
        for ki, k in enumerate(ACC_KS):
            rk = np.sort(ranks[:k])
            j = np.arange(k)
            for ni, (n, lam) in enumerate(((5, 0.2), (10, 0.1))):
                wacc[ki, ni] += np.where(rk <= n - 1, np.exp(-lam * (rk - j)), 0.0).sum() / k
    acc *= 100.0 / n_img
    wacc *= 100.0 / n_img
    out: dict[str, float] = {"srcc": float(srcc.mean()), "pcc": float(pcc.mean())}
    for ni, n in enumerate(ACC_NS):
        for ki, k in enumerate(ACC_KS):
            out[f"acc{k}_{n}"] = float(acc[ki, ni])
            out[f"wacc{k}_{n}"] = float(wacc[ki, ni])
        out[f"acc{n}"] = float(acc[:, ni].mean())
        out[f"wacc{n}"] = float(wacc[:, ni].mean())
    out["n_images"] = n_img
    out["n_undefined_corr"] = undefined
    return out


def _valid_gt(gt: np.ndarray, width: float, height: float) -> np.ndarray:
    """Drop −1 padding rows (any negative coordinate) and GT crops exceeding the ``width × height`` image."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    keep = ~(gt < 0).any(axis=1) & (gt[:, 2] <= width) & (gt[:, 3] <= height)
    return gt[keep]


def crop_iou_disp(
    pred_xyxy: np.ndarray, gt_xyxy_list: np.ndarray, width: float, height: float
) -> tuple[float, float, int]:
    """IoU and boundary displacement of one predicted crop against its best-matching GT (HCIC / GenCrop rule).

    Args:
        pred_xyxy: ``[4]`` predicted crop, xyxy pixels.
        gt_xyxy_list: ``[M, 4]`` GT crops, xyxy pixels; −1 padding rows and crops exceeding the image are dropped.
        width, height: image size in pixels.

    Returns:
        ``(iou, disp, index)`` where ``disp = (|Δx1| + |Δx2|) / W + (|Δy1| + |Δy2|) / H`` (not yet divided by 4)
        and ``index`` is the chosen row of the **filtered** GT list. The GT with the maximum IoU is chosen; if
        its IoU equals the IoU of the minimum-displacement GT, the latter is used; first index wins among ties.
    """
    gt = _valid_gt(gt_xyxy_list, width, height)
    if gt.shape[0] == 0:
        raise ValueError("no valid ground-truth crop (all padding or outside the image)")
    pred = np.asarray(pred_xyxy, dtype=np.float64).reshape(1, 4)
    iou = box_iou(pred, gt)[0]
    disp = boundary_displacement(pred, gt, width, height)[0]
    i_iou = int(np.argmax(iou))
    i_disp = int(np.argmin(disp))
    idx = i_disp if iou[i_iou] == iou[i_disp] else i_iou
    return float(iou[idx]), float(disp[idx]), idx


def iou_bde(
    pred_xyxy: Sequence[np.ndarray] | np.ndarray,
    gt_xyxy: Sequence[np.ndarray],
    widths: Sequence[float],
    heights: Sequence[float],
    recall_iou: float = 0.75,
) -> dict[str, float]:
    """Dataset IoU / BDE (FCDB, FLMS, SACD, GenCrop; systems.md §3.6, §9 rows 4–5).

    Args:
        pred_xyxy: per image one ``[4]`` predicted crop (xyxy pixels).
        gt_xyxy: per image ``[M_i, 4]`` GT crops (xyxy pixels).
        widths, heights: image sizes in pixels.

    Returns:
        ``iou`` (mean), ``bde`` (mean Disp / 4), ``disp`` (mean Disp), ``recall75`` (fraction of images whose
        chosen IoU ≥ ``recall_iou``), ``n_images``.
    """
    n = len(gt_xyxy)
    if not (len(pred_xyxy) == n == len(widths) == len(heights)):
        raise ValueError("pred_xyxy, gt_xyxy, widths and heights must have one entry per image")
    if n == 0:
        raise ValueError("no images to evaluate")
    rows = zip(pred_xyxy, gt_xyxy, widths, heights, strict=True)
    res = np.array([crop_iou_disp(p, g, w, h)[:2] for p, g, w, h in rows])
    return {
        "iou": float(res[:, 0].mean()),
        "bde": float(res[:, 1].mean() / 4.0),
        "disp": float(res[:, 1].mean()),
        "recall75": float((res[:, 0] >= recall_iou).mean()),
        "n_images": n,
    }


# ---------------------------------------------------------------------------------------------- set prediction
def good_crops(crops: np.ndarray, scores: np.ndarray, good_thresh: float = 4.0) -> np.ndarray:
    """Rethinking's "good" crops: MOS ≥ ``good_thresh``; if none, all crops tied at the maximum score → ``[G, 4]``."""
    scores = np.asarray(scores, dtype=np.float64)
    keep = scores >= good_thresh
    if not keep.any():
        keep = scores == scores.max()
    return np.asarray(crops, dtype=np.float64)[keep]


def best_crop_hits(pred_boxes: Sequence[np.ndarray], best_gt: Sequence[np.ndarray], k: int, iou_thr: float) -> float:
    """Percent of images where any of the first ``k`` predictions (already ranked, xyxy ``[P, 4]``) has
    IoU ≥ ``iou_thr`` with that image's single best GT crop (``[4]`` xyxy)."""
    hits = []
    for p, b in zip(pred_boxes, best_gt, strict=True):
        p = np.asarray(p, dtype=np.float64).reshape(-1, 4)[:k]
        b = np.asarray(b, dtype=np.float64).reshape(1, 4)
        hits.append(p.shape[0] > 0 and bool((box_iou(p, b) >= iou_thr).any()))
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


def coco_ap(
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    iou_thr: float,
    max_dets: int,
) -> float:
    """COCO-style AP (percent) with 101-point interpolation, one class, greedy matching.

    Per image the ``max_dets`` highest-scoring predictions (stable order for ties) are matched greedily in score
    order, each to the still-unmatched GT (``[G_i, 4]`` xyxy) of highest IoU ≥ ``iou_thr``. Detections of all
    images are then sorted by score (stable), precision is made monotone, and precision is sampled at recall
    0, 0.01, …, 1 (0 where the recall is never reached).
    """
    all_scores, all_tp = [], []
    n_gt = 0
    for boxes, scores, gts in zip(pred_boxes, pred_scores, gt_boxes, strict=True):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        gts = np.asarray(gts, dtype=np.float64).reshape(-1, 4)
        n_gt += gts.shape[0]
        order = np.argsort(-scores, kind="stable")[:max_dets]
        boxes, scores = boxes[order], scores[order]
        tp = np.zeros(len(order), dtype=bool)
        if gts.shape[0] and boxes.shape[0]:
            ious = box_iou(boxes, gts)
            free = np.ones(gts.shape[0], dtype=bool)
            for d in range(boxes.shape[0]):
                cand = np.where(free & (ious[d] >= iou_thr), ious[d], -1.0)
                j = int(np.argmax(cand))
                if cand[j] >= 0:
                    tp[d] = True
                    free[j] = False
        all_scores.append(scores)
        all_tp.append(tp)
    if n_gt == 0:
        return float("nan")
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    tp = np.concatenate(all_tp) if all_tp else np.zeros(0, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    rec_pts = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, rec_pts, side="left")
    q = (
        np.where(idx < precision.size, precision[np.minimum(idx, max(precision.size - 1, 0))], 0.0)
        if precision.size
        else np.zeros_like(rec_pts)
    )
    return 100.0 * float(q.mean())


def set_prediction_metrics(
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    gt_crops: Sequence[np.ndarray],
    gt_scores: Sequence[np.ndarray],
    good_thresh: float = 4.0,
    thresholds: Sequence[float] = AP_THRESHOLDS,
    max_dets: Sequence[int] = AP_MAX_DETS,
) -> dict[str, float]:
    """Rethinking (CVPR'22) set-prediction metrics on GAICD-style data (systems.md §6.4), percent.

    Args:
        pred_boxes / pred_scores: per image ``[P, 4]`` xyxy predicted boxes and ``[P]`` validity scores.
        gt_crops / gt_scores: per image all annotated crops ``[N, 4]`` xyxy and their MOS ``[N]``.

    Returns:
        ``hit{k}@{t}`` for k ∈ {5, 10} (best GT crop = first crop of maximum MOS) and ``ap{m}@{t}`` for every
        maxDets m, with t formatted as ``0.85`` / ``0.90``; plus ``n_images``.
    """
    ranked = []
    for b, s in zip(pred_boxes, pred_scores, strict=True):
        order = np.argsort(-np.asarray(s, dtype=np.float64).reshape(-1), kind="stable")
        ranked.append(np.asarray(b, dtype=np.float64).reshape(-1, 4)[order])
    best = [
        np.asarray(c, dtype=np.float64).reshape(-1, 4)[int(np.argmax(s))]
        for c, s in zip(gt_crops, gt_scores, strict=True)
    ]
    goods = [good_crops(c, s, good_thresh) for c, s in zip(gt_crops, gt_scores, strict=True)]
    out: dict[str, float] = {}
    for t in thresholds:
        for k in (5, 10):
            out[f"hit{k}@{t:.2f}"] = best_crop_hits(ranked, best, k, t)
        for m in max_dets:
            out[f"ap{m}@{t:.2f}"] = coco_ap(pred_boxes, pred_scores, goods, t, m)
    out["n_images"] = len(gt_crops)
    return out
