"""Every benchmark metric, defined once (systems.md §2.5, §3.6, §6.4, §9).

Conventions: boxes are **xyxy float pixels**; IoU and boundary displacement come from :mod:`opencrop.boxes`.
GAICD accuracies are returned in **percent** (the original scripts print fractions); correlations, IoU, BDE and
recall as fractions; set-prediction hit rates and AP in percent.

GAICD scored-crop metrics (:func:`gaicd_metrics`) follow the official evaluators by default. They are the
``test()`` function of ``TrainModel.py`` and the script ``TestAccuracy.py`` in HuiZeng/Grid-Anchor-based-Image-
Cropping-Pytorch (the same ``test()`` in lld533's fork), and ``compute_acc`` / ``evaluate_on_GAICD`` in
bcmi/Human-Centric-Image-Cropping ``test.py`` (HCIC: Acc5 / Acc10 / SRCC only). Per image, with ``id_gt`` the
stable descending sort of the GT MOS and ``id_pr`` the stable descending sort of the predictions (Python
``sorted(..., reverse=True)``: equal values keep their file order, so a constant predictor returns the first crops):

* **Acc_{K/N}** (K = 1..4, N ∈ {5, 10}): returned crop ``id_pr[j]``, j < K, is a hit if its MOS is ≥ the MOS of
  ``id_gt[N-1]`` (ties generous); hits / K, mean over images (GAIC ``test()``; HCIC ``compute_acc``).
  **Acc5 / Acc10** = mean over K of Acc_{K/5} / Acc_{K/10} (HCIC ``compute_acc``: ``sum(acc4_5) / 4``).
* **Acc_w{K/N}**, ``wacc_ranks="official"`` (default): rank of returned crop k = ``id_gt.index(id_pr[k])``, i.e.
  its position in the stable GT sort, so a crop tied in MOS with an earlier (file order) crop gets the later rank.
  The first K ranks are **sorted ascending**, then Σ_j exp(−0.2 (r_j − j)) over r_j ≤ 4 (N = 5) or
  Σ_j exp(−0.1 (r_j − j)) over r_j ≤ 9 (N = 10), j 0-based, divided by K, mean over images (GAIC ``test()``).
  ``wacc_ranks="generous"`` (opencrop's earlier rule, not in any original code): tied crops take the best free
  rank in prediction order (rank = crops with a strictly higher MOS + equally scored crops already returned).
  ``wacc5`` / ``wacc10`` (mean over K) are opencrop summaries; the originals print the four values only.
* **SRCC / PCC**: ``scipy.stats.spearmanr(MOS, pred)`` (average ranks for ties) and ``scipy.stats.pearsonr(MOS,
  pred)`` per image, then the mean over images (GAIC ``test()``; HCIC ``evaluate_on_GAICD``, SRCC only). They are
  computed by SciPy itself, so they equal SciPy on the same inputs.
* **Undefined correlations**: SciPy returns NaN when the predictions or the MOS of an image are constant (both
  correlations then are NaN together), and the originals' ``sum(srcc) / 200.0`` lets one NaN make the mean NaN.
  ``undefined_corr="official"`` (default) keeps that; ``"zero"`` (opencrop's earlier default) counts such an
  image as 0; ``"skip"`` averages over the images where the correlation is defined. ``n_undefined_corr`` always
  says how many images hit it.
* **Means** are over the images passed (the GAIC scripts hard-code ``/ 200.0``, the GAICD v1 test size; HCIC
  divides by the image count). The official MOS normalisation ``(MOS − 2.95) / 0.8`` is increasing and affine, so
  it changes no order, tie or correlation (up to float rounding).
* **Few crops**: the originals index ``id_gt[9]`` and ``id_pr[3]``, so they fail on images with fewer than 10
  crops (GAICD v1 has 54–90, CPC 24). Here images with fewer than 4 crops are rejected (no top-4 exists); with
  4..9 crops the N-th best MOS is the image's worst one (every crop is in its own top N) and ``n_few_crops``
  counts them.
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
    "UNDEFINED_CORR",
    "WACC_LAMBDA",
    "WACC_RANKS",
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
#: decay of the weighted accuracy per N (GAIC ``test()``: exp(−0.2 ·) for N = 5, exp(−0.1 ·) for N = 10)
WACC_LAMBDA = {5: 0.2, 10: 0.1}
WACC_RANKS = ("official", "generous")
UNDEFINED_CORR = ("official", "zero", "skip")
AP_THRESHOLDS = (0.85, 0.90)
AP_MAX_DETS = (5, 10, 20, 40, 60, 90)


def _wacc_ranks(g: np.ndarray, id_gt: np.ndarray, top: np.ndarray, rule: str) -> np.ndarray:
    """0-based GT ranks ``[K]`` of the returned crops ``top`` (indices into ``g``), by ``rule`` (module doc)."""
    if rule == "official":
        pos = np.empty(g.size, dtype=np.int64)
        pos[id_gt] = np.arange(g.size)
        return pos[top]
    gt = g[top]
    better = (g[None, :] > gt[:, None]).sum(axis=1)
    same_before = np.tril(gt[None, :] == gt[:, None], k=-1).sum(axis=1)
    return better + same_before


def _mean_corr(values: np.ndarray, rule: str) -> float:
    """Mean of per-image correlations with NaN (undefined) entries treated by ``rule`` (module doc)."""
    if rule == "zero":
        values = np.where(np.isnan(values), 0.0, values)
    elif rule == "skip":
        values = values[~np.isnan(values)]
        if values.size == 0:
            return float("nan")
    return float(values.mean())


def gaicd_metrics(
    pred_scores: Sequence[np.ndarray],
    gt_scores: Sequence[np.ndarray],
    *,
    wacc_ranks: str = "official",
    undefined_corr: str = "official",
) -> dict[str, float]:
    """GAICD metrics over images, as the official evaluators compute them (module doc; systems.md §2.5 / §9).

    Args:
        pred_scores: per image ``[N_i]`` predicted scores of the annotated crops (higher = better), N_i ≥ 4.
        gt_scores: per image ``[N_i]`` MOS of the same crops, same order (the file order breaks ties).
        wacc_ranks: ``"official"`` (``id_gt.index(id_pr[k])``) or ``"generous"`` (best free rank for GT ties).
        undefined_corr: ``"official"`` (a NaN correlation makes the mean NaN), ``"zero"`` or ``"skip"``.

    Returns:
        ``srcc``, ``pcc`` (means of per-image Spearman / Pearson), ``acc{K}_{N}`` and ``wacc{K}_{N}`` for
        K = 1..4, N ∈ {5, 10} (percent), ``acc5`` / ``acc10`` / ``wacc5`` / ``wacc10`` (means over K),
        ``n_images``, ``n_undefined_corr`` (images with constant predictions or constant MOS) and ``n_few_crops``
        (images with fewer than 10 crops, outside the original code's domain).

    Raises:
        ValueError: mismatched lengths, an image with fewer than 4 crops, non-finite scores or an unknown option.
    """
    from scipy.stats import pearsonr, spearmanr

    if wacc_ranks not in WACC_RANKS:
        raise ValueError(f"wacc_ranks={wacc_ranks!r}: use one of {', '.join(WACC_RANKS)}")
    if undefined_corr not in UNDEFINED_CORR:
        raise ValueError(f"undefined_corr={undefined_corr!r}: use one of {', '.join(UNDEFINED_CORR)}")
    if len(pred_scores) != len(gt_scores):
        raise ValueError(f"{len(pred_scores)} predictions but {len(gt_scores)} ground truths")
    if len(gt_scores) == 0:
        raise ValueError("no images to evaluate")
    n_img = len(gt_scores)
    kmax = max(ACC_KS)
    acc = np.zeros((len(ACC_KS), len(ACC_NS)))
    wacc = np.zeros((len(ACC_KS), len(ACC_NS)))
    srcc = np.full(n_img, np.nan)
    pcc = np.full(n_img, np.nan)
    undefined = few = 0
    for i, (p, g) in enumerate(zip(pred_scores, gt_scores, strict=True)):
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if p.shape != g.shape:
            raise ValueError(f"image {i}: {p.size} predictions for {g.size} crops")
        if g.size < kmax:
            raise ValueError(f"image {i}: {g.size} crops; GAICD accuracies need at least {kmax} (the top {kmax})")
        if not np.isfinite(p).all():
            raise ValueError(f"image {i}: non-finite predicted score")
        if not np.isfinite(g).all():
            raise ValueError(f"image {i}: non-finite ground-truth score")
        few += g.size < max(ACC_NS)
        # correlations by SciPy, MOS first as in the originals; constant inputs are NaN, as SciPy returns them
        # (its own test is ``(x == x[0]).all()``; checked here first to spare its ConstantInputWarning)
        if not ((p == p[0]).all() or (g == g[0]).all()):
            srcc[i] = float(spearmanr(g, p).statistic)
            pcc[i] = float(pearsonr(g, p).statistic)
        undefined += bool(np.isnan(srcc[i]) or np.isnan(pcc[i]))
        # accuracies: stable descending sorts, ties keep the file order
        id_gt = np.argsort(-g, kind="stable")
        top = np.argsort(-p, kind="stable")[:kmax]
        ranks = _wacc_ranks(g, id_gt, top, wacc_ranks)
        for ni, n in enumerate(ACC_NS):
            hits = np.cumsum(g[top] >= g[id_gt[min(n, g.size) - 1]])
            for ki, k in enumerate(ACC_KS):
                acc[ki, ni] += hits[k - 1] / k
                rk = np.sort(ranks[:k])
                terms = np.exp(-WACC_LAMBDA[n] * (rk - np.arange(k)))
                wacc[ki, ni] += terms[rk <= n - 1].sum() / k
    acc *= 100.0 / n_img
    wacc *= 100.0 / n_img
    out: dict[str, float] = {"srcc": _mean_corr(srcc, undefined_corr), "pcc": _mean_corr(pcc, undefined_corr)}
    for ni, n in enumerate(ACC_NS):
        for ki, k in enumerate(ACC_KS):
            out[f"acc{k}_{n}"] = float(acc[ki, ni])
            out[f"wacc{k}_{n}"] = float(wacc[ki, ni])
        out[f"acc{n}"] = float(acc[:, ni].mean())
        out[f"wacc{n}"] = float(wacc[:, ni].mean())
    out["n_images"] = n_img
    out["n_undefined_corr"] = undefined
    out["n_few_crops"] = int(few)
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
