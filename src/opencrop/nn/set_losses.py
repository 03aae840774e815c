"""Set-prediction targets, Hungarian matching and losses of SetCrop (Jia et al., "Rethinking Image Cropping:
Exploring Diverse Compositions from Global Views", CVPR 2022; ``docs/systems.md`` §6.2).

Box convention: every box here is **normalised cxcywh** (``[cx, cy, w, h]`` divided by the input width / height),
as the model predicts them, unless a name says ``xyxy``; conversions and (G)IoU come from :mod:`opencrop.boxes`.

* :func:`good_crop_mask` — the "good" crops an image's queries are matched to: MOS ≥ ``thresh`` (4.0 on GAICD,
  2.0 on CPC), else all crops tied at the maximum; or the ``top_k`` best; then optional NMS (0.8 on CPC).
* :func:`hungarian_match` — :func:`scipy.optimize.linear_sum_assignment` on
  ``cost = w_class · focal cost + w_bbox · L1(cxcywh) − w_giou · GIoU`` (:func:`match_cost`; 2 / 5 / 2).
* :func:`quality_soft_targets` — validity-label smoothing by crop quality (GAICD): a query whose max-IoU annotated
  crop (all crops) has IoU ≥ 0.85 gets ``clamp(bound · (MOS − 2) / 1.5, 0, bound)`` (bound 0.5), else 0;
  matched queries keep 1 (:func:`validity_targets`).
* :func:`set_criterion` — per decoder layer: match, then sigmoid focal loss on validity (weight 2; summed over
  queries and normalised by the number of good crops), L1 (5) and 1 − GIoU (2) on matched pairs; with a teacher
  (EMA self-distillation, CPC) the validity loss is ``0.5 · focal(hard targets) + 0.5 · focal(teacher σ)``.

opencrop's additions (not in the paper or the released code; off by default and in both recipes):

* ``quality_target`` (:func:`relative_quality`, :func:`quality_soft_targets`, :func:`validity_targets`): a
  matched query's target is its matched crop's **relative quality** ``q = clamp((MOS − soft_low) / (MOS_max −
  soft_low), 0, 1) ** quality_power`` (``MOS_max`` the image's best crop: it gets 1) instead of 1, and an unmatched
  query near a crop (IoU ≥ 0.85) gets ``soft_bound · q`` of that crop instead of the paper's capped formula.
* ``valid_loss="qfl"`` (:func:`quality_focal_loss`): quality focal loss ``|t − σ|^γ · BCE`` (Li et al., GFL,
  NeurIPS 2020) instead of the α-weighted focal loss, whose α = 0.25 on the positives lets a matched query stop
  near the 0.5 of the smoothed neighbours.
* ``rank_weight`` (:func:`matched_rank_loss`): a pairwise logistic ranking term: every matched query should
  out-score every query with a lower validity target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from opencrop.boxes import box_iou, cxcywh_to_xyxy, generalized_box_iou, nms

__all__ = [
    "SetLossConfig",
    "crop_validity_loss",
    "good_crop_mask",
    "hungarian_match",
    "match_cost",
    "matched_rank_loss",
    "quality_focal_loss",
    "quality_soft_targets",
    "relative_quality",
    "set_criterion",
    "sigmoid_focal_loss",
    "validity_targets",
]


@dataclass(frozen=True)
class SetLossConfig:
    """Weights and rules of the SetCrop criterion (defaults: the GAICD recipe of the released code).

    Attributes:
        cost_class, cost_bbox, cost_giou: matching-cost weights (2, 5, 2).
        cls_weight, bbox_weight, giou_weight: loss weights (2, 5, 2).
        focal_alpha, focal_gamma: focal loss (0.25, 2), also inside the matching cost.
        soft_iou_thresh: IoU a query needs with an annotated crop to inherit its quality (0.85).
        soft_bound: cap of the smoothed targets (0.5 on GAICD; 0 = no smoothing, CPC).
        soft_low, soft_span: ``(MOS − soft_low) / soft_span`` maps GAICD MOS to [0, 1] (2, 1.5).
        valid_smooth: matched targets whose box covers > 75 % of the image get 0.9 (``use_valid_smooth``; off).
        distill_weight: weight of the teacher-target focal term when a teacher is given (0.5).
        quality_target, quality_power: opencrop's option (off): quality-aware validity targets, relative MOS
            ``q`` raised to ``quality_power`` (module docstring).
        valid_loss: ``"focal"`` (the paper) or ``"qfl"`` (quality focal loss; opencrop's option).
        rank_weight: weight of the pairwise ranking term of the matched queries (0 = off; opencrop's option).
    """

    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    cls_weight: float = 2.0
    bbox_weight: float = 5.0
    giou_weight: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    soft_iou_thresh: float = 0.85
    soft_bound: float = 0.5
    soft_low: float = 2.0
    soft_span: float = 1.5
    valid_smooth: bool = False
    distill_weight: float = 0.5
    quality_target: bool = False
    quality_power: float = 1.0
    valid_loss: str = "focal"
    rank_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.valid_loss not in ("focal", "qfl"):
            raise ValueError(f"SetLossConfig: valid_loss must be 'focal' or 'qfl', got {self.valid_loss!r}")
        if self.quality_power <= 0:
            raise ValueError(f"SetLossConfig: quality_power must be > 0, got {self.quality_power}")
        if self.rank_weight < 0:
            raise ValueError(f"SetLossConfig: rank_weight must be ≥ 0, got {self.rank_weight}")


# ---------------------------------------------------------------------------------------------- targets
def good_crop_mask(
    mos: Tensor, crops_xyxy: Tensor | None = None, thresh: float | None = 4.0, top_k: int | None = None,
    nms_iou: float = 0.0,
) -> Tensor:
    """``bool [N]``: the good crops of one image among ``N`` annotated crops with scores ``mos [N]``.

    ``top_k`` (the released code's ``good_num``) takes the ``top_k`` best-scored crops (stable order) instead of the
    threshold; otherwise crops with ``mos ≥ thresh``, or, when none reaches it, every crop tied at the maximum.
    With ``nms_iou > 0`` greedy NMS at that IoU (over ``crops_xyxy [N, 4]``, any units) keeps the best of near
    duplicates (CPC: 0.8).
    """
    mos = mos.reshape(-1)
    n = mos.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=mos.device)
    if top_k is not None and top_k > 0:
        keep = torch.zeros(n, dtype=torch.bool, device=mos.device)
        keep[torch.sort(mos, descending=True, stable=True).indices[:top_k]] = True
    else:
        if thresh is None:
            raise ValueError("good_crop_mask: give thresh or top_k")
        keep = mos >= thresh
        if not bool(keep.any()):
            keep = mos == mos.max()
    if nms_iou > 0:
        if crops_xyxy is None:
            raise ValueError("good_crop_mask: nms_iou > 0 needs crops_xyxy")
        idx = torch.nonzero(keep).reshape(-1)
        kept = idx[nms(crops_xyxy[idx].float(), mos[idx].float(), nms_iou)]
        keep = torch.zeros_like(keep)
        keep[kept] = True
    return keep


def relative_quality(mos: Tensor, cfg: SetLossConfig) -> Tensor:
    """``[N]`` relative quality of one image's crops (``quality_target``, opencrop's option):
    ``clamp((MOS − soft_low) / (MOS_max − soft_low), 0, 1) ** quality_power``, 1 for the image's best crop (and for
    every crop when ``MOS_max ≤ soft_low``, where nothing can be told apart)."""
    mos = mos.float()
    if mos.numel() == 0:
        return mos
    span = float(mos.max()) - cfg.soft_low
    if span <= 0:
        return torch.ones_like(mos)
    return ((mos - cfg.soft_low) / span).clamp(0.0, 1.0) ** cfg.quality_power


def quality_soft_targets(pred_boxes: Tensor, crop_boxes: Tensor, mos: Tensor, cfg: SetLossConfig) -> Tensor:
    """Validity-label smoothing by crop quality → ``[Q]`` targets of the unmatched queries (no gradient).

    ``pred_boxes [Q, 4]`` and ``crop_boxes [N, 4]`` are normalised cxcywh, ``mos [N]`` the raw scores of **all**
    annotated crops. Each query takes its max-IoU crop (first index among ties); if that IoU is
    ≥ ``cfg.soft_iou_thresh`` the target is ``clamp(bound · (MOS − soft_low) / soft_span, 0, bound)`` (the paper),
    or ``bound · q`` with ``cfg.quality_target`` (:func:`relative_quality`), else 0.
    """
    q = pred_boxes.shape[0]
    if cfg.soft_bound <= 0 or crop_boxes.numel() == 0:
        return pred_boxes.new_zeros(q)
    with torch.no_grad():
        iou = box_iou(cxcywh_to_xyxy(pred_boxes.detach().float()), cxcywh_to_xyxy(crop_boxes.float()))
        best, idx = iou.max(dim=1)
        near = (best >= cfg.soft_iou_thresh).float()
        if cfg.quality_target:
            soft = cfg.soft_bound * relative_quality(mos, cfg)[idx] * near
        else:
            quality = mos.float()[idx] * near
            soft = (cfg.soft_bound * (quality - cfg.soft_low) / cfg.soft_span).clamp(0.0, cfg.soft_bound)
    return soft.to(pred_boxes.dtype)


def validity_targets(
    num_queries: int, matched: Tensor, matched_boxes: Tensor, soft: Tensor | None, cfg: SetLossConfig,
    matched_quality: Tensor | None = None,
) -> Tensor:
    """``[Q]`` validity targets: 1 at the ``matched`` query indices (0.9 with ``cfg.valid_smooth`` when the matched
    good crop covers more than 75 % of the image, ``w · h > 0.75`` of ``matched_boxes [M, 4]`` cxcywh), the
    ``soft`` smoothing targets elsewhere (0 without smoothing). With ``cfg.quality_target`` the matched targets are
    ``matched_quality [M]`` (the matched crops' :func:`relative_quality`) instead of 1."""
    t = soft.clone() if soft is not None else matched_boxes.new_zeros(num_queries)
    on = torch.ones(matched.numel(), dtype=t.dtype, device=t.device)
    if cfg.quality_target:
        if matched_quality is None:
            raise ValueError("validity_targets: quality_target needs matched_quality")
        on = matched_quality.to(t.dtype).reshape(-1).clone()
    if cfg.valid_smooth and matched.numel():
        on = torch.where(matched_boxes[:, 2] * matched_boxes[:, 3] > 0.75, on * 0.9, on)
    t[matched] = on
    return t


# ---------------------------------------------------------------------------------------------- matching
def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise sigmoid focal loss (Lin et al., ICCV 2017) with soft ``targets`` in [0, 1] (same shape):
    ``α_t · (1 − p_t)^γ · BCE(logits, targets)`` with ``p_t = p t + (1 − p)(1 − t)``, ``α_t = α t + (1 − α)(1 − t)``
    (``alpha < 0``: no α weighting). Not reduced."""
    p = logits.sigmoid()
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def quality_focal_loss(logits: Tensor, targets: Tensor, beta: float = 2.0) -> Tensor:
    """Element-wise quality focal loss (Li et al., "Generalized Focal Loss", NeurIPS 2020; ``valid_loss="qfl"``):
    ``|targets − σ(logits)|^β · BCE(logits, targets)``, soft ``targets`` in [0, 1]; its minimum is at
    ``σ = target``. Not reduced."""
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (targets - logits.sigmoid()).abs() ** beta * ce


def matched_rank_loss(logits: Tensor, targets: Tensor, matched: Tensor) -> Tensor:
    """Pairwise logistic ranking term of one image (``rank_weight``, opencrop's option): the mean over the pairs
    ``(i, j)`` with ``i`` in ``matched`` and ``targets[j] < targets[i]`` of ``softplus(logits[j] − logits[i])``
    (``logits, targets [Q]``); 0 without such a pair. Among matched queries the order is their targets' (their
    crops' relative quality with ``quality_target``)."""
    if matched.numel() == 0:
        return logits.new_zeros(())
    ti = targets[matched][:, None]
    pair = targets[None, :] < ti  # [M, Q]
    if not bool(pair.any()):
        return logits.new_zeros(())
    diff = logits[None, :] - logits[matched][:, None]
    return torch.nn.functional.softplus(diff[pair]).mean()


def match_cost(logits: Tensor, boxes: Tensor, targets: Tensor, cfg: SetLossConfig) -> Tensor:
    """Matching cost ``[Q, G]`` of ``Q`` predictions (validity ``logits [Q]``, ``boxes [Q, 4]`` cxcywh) against
    ``G`` good crops (``targets [G, 4]`` cxcywh): ``cost_class · (pos − neg focal cost) + cost_bbox · L1 −
    cost_giou · GIoU``, where ``pos = α (1 − p)^γ (−log p)``, ``neg = (1 − α) p^γ (−log(1 − p))``. Computed in
    float64 (the matrix is small), so the assignment does not depend on float32 rounding of near-equal costs."""
    logits, boxes, targets = logits.double(), boxes.double(), targets.double()
    p = logits.sigmoid()
    a, g = cfg.focal_alpha, cfg.focal_gamma
    neg = (1 - a) * p**g * -(1 - p + 1e-8).log()
    pos = a * (1 - p) ** g * -(p + 1e-8).log()
    l1 = torch.cdist(boxes, targets, p=1)
    giou = generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(targets))
    return cfg.cost_bbox * l1 + cfg.cost_class * (pos - neg)[:, None] - cfg.cost_giou * giou


def _validity_loss(logits: Tensor, targets: Tensor, cfg: SetLossConfig) -> Tensor:
    """Element-wise validity loss of ``cfg.valid_loss``: focal (the paper) or quality focal."""
    if cfg.valid_loss == "qfl":
        return quality_focal_loss(logits, targets, cfg.focal_gamma)
    return sigmoid_focal_loss(logits, targets, cfg.focal_alpha, cfg.focal_gamma)


@torch.no_grad()
def hungarian_match(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-cost one-to-one assignment of a ``[Q, G]`` cost matrix (``scipy.optimize.linear_sum_assignment``)
    → ``(query_idx, target_idx)`` int64 tensors of length ``min(Q, G)``, query indices ascending."""
    from scipy.optimize import linear_sum_assignment

    c = cost.detach().cpu().double().numpy()
    if not np.isfinite(c).all():
        raise ValueError("hungarian_match: the cost matrix has non-finite entries (NaN predictions?)")
    rows, cols = linear_sum_assignment(c)
    return (torch.as_tensor(rows, dtype=torch.int64, device=cost.device),
            torch.as_tensor(cols, dtype=torch.int64, device=cost.device))


# ---------------------------------------------------------------------------------------------- criterion
def set_criterion(
    logits: Tensor,
    boxes: Tensor,
    crops: Sequence[Tensor],
    mos: Sequence[Tensor],
    good: Sequence[Tensor],
    cfg: SetLossConfig,
    teacher_prob: Tensor | None = None,
) -> dict[str, Tensor]:
    """The SetCrop training loss over all decoder layers (auxiliary losses included).

    Args:
        logits: ``Tensor[L, B, Q]`` validity logits of every decoder layer (last = final output).
        boxes: ``Tensor[L, B, Q, 4]`` predicted normalised cxcywh boxes.
        crops, mos: per image all annotated crops ``[N_b, 4]`` (normalised cxcywh) and their raw scores ``[N_b]``.
        good: per image ``bool [N_b]``, the good crops the queries are matched to (:func:`good_crop_mask`).
        cfg: weights and smoothing rules.
        teacher_prob: ``Tensor[B, Q]`` the EMA teacher's final validity probabilities (self-distillation), or None.

    Returns:
        ``{"loss", "ce", "l1", "giou"}`` (+ ``"rank"`` with ``rank_weight > 0``): ``loss = Σ_layers (cls_weight · ce
        + bbox_weight · l1 + giou_weight · giou + rank_weight · rank)`` (``rank`` averaged over the images); the
        parts are the unweighted sums over layers (detached). Each term is normalised by the number of
        good crops in the batch (at least 1); ``ce`` is summed over the queries (the released code's
        ``focal.mean(queries) · Q``).
    """
    n_layers, n_img, n_q = logits.shape
    num_boxes = max(1.0, float(sum(int(g.sum()) for g in good)))
    total = logits.new_zeros(())
    parts = {"ce": logits.new_zeros(()), "l1": logits.new_zeros(()), "giou": logits.new_zeros(())}
    for layer in range(n_layers):
        ce = logits.new_zeros(())
        l1 = logits.new_zeros(())
        gl = logits.new_zeros(())
        rank = logits.new_zeros(())
        for b in range(n_img):
            lg, bx = logits[layer, b], boxes[layer, b]
            tgt = crops[b][good[b]].to(bx.dtype)
            if tgt.shape[0]:
                qi, ti = hungarian_match(match_cost(lg.detach(), bx.detach(), tgt, cfg))
            else:
                qi = ti = torch.zeros(0, dtype=torch.int64, device=bx.device)
            soft = quality_soft_targets(bx, crops[b], mos[b], cfg) if cfg.soft_bound > 0 else None
            mq = relative_quality(mos[b], cfg)[good[b]][ti] if cfg.quality_target else None
            t = validity_targets(n_q, qi, tgt[ti], soft, cfg, mq).to(lg.dtype)
            focal = _validity_loss(lg, t, cfg).sum()
            if teacher_prob is not None:
                distill = _validity_loss(lg, teacher_prob[b].to(lg.dtype), cfg)
                focal = (1 - cfg.distill_weight) * focal + cfg.distill_weight * distill.sum()
            if cfg.rank_weight > 0:
                rank = rank + matched_rank_loss(lg, t, qi)
            ce = ce + focal
            if qi.numel():
                src, dst = bx[qi], tgt[ti]
                l1 = l1 + (src - dst).abs().sum()
                giou = generalized_box_iou(cxcywh_to_xyxy(src), cxcywh_to_xyxy(dst))
                gl = gl + (1 - torch.diagonal(giou)).sum()
        ce, l1, gl = ce / num_boxes, l1 / num_boxes, gl / num_boxes
        total = total + cfg.cls_weight * ce + cfg.bbox_weight * l1 + cfg.giou_weight * gl
        if cfg.rank_weight > 0:
            rank = rank / n_img
            total = total + cfg.rank_weight * rank
            parts["rank"] = parts.get("rank", logits.new_zeros(())) + rank.detach()
        parts["ce"] = parts["ce"] + ce.detach()
        parts["l1"] = parts["l1"] + l1.detach()
        parts["giou"] = parts["giou"] + gl.detach()
    return {"loss": total, **parts}


def crop_validity_loss(logits: Tensor, crops: Tensor, mos: Tensor, good: Tensor, cfg: SetLossConfig) -> Tensor:
    """The validity loss of one image's **annotated crops** scored as if each were a query lying exactly on it
    (``valid_head="roi"``'s auxiliary term, opencrop's option): targets by the same rules as the queries'
    (:func:`validity_targets`: 1 — or the relative quality with ``cfg.quality_target`` — for the good crops, the
    smoothing target of their own MOS for the others), summed over the crops.

    Args:
        logits: ``[N]`` validity logits of the crops; crops: ``[N, 4]`` normalised cxcywh; mos: ``[N]`` raw scores;
        good: ``bool [N]`` the good crops (:func:`good_crop_mask`).
    """
    idx = torch.nonzero(good, as_tuple=False).reshape(-1)
    soft = quality_soft_targets(crops, crops, mos, cfg) if cfg.soft_bound > 0 else None
    mq = relative_quality(mos, cfg)[idx] if cfg.quality_target else None
    t = validity_targets(crops.shape[0], idx, crops[idx], soft, cfg, mq).to(logits.dtype)
    return _validity_loss(logits, t, cfg).sum()
