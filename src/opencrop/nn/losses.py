"""Training losses shared by the models (systems.md §2.4, §3.5). All are vectorised over crops and images.

Here, not in :mod:`opencrop.train`, so that models never import the training package (``compute_loss`` lives in
the model files); :mod:`opencrop.train.losses` re-exports them. GAIC family: :func:`mos_smooth_l1`,
:func:`rank_loss`, :func:`heatmap_l1`.

Grouping convention: ``counts`` ``Tensor[B]`` gives the number of crops of each image, rows being grouped per
image in order (the collated batch of :mod:`opencrop.models.learned`). ``counts=None`` means one image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GAIC_MOS_MEAN", "GAIC_MOS_STD", "heatmap_l1", "mos_smooth_l1", "normalize_mos", "rank_loss"]

#: GAICD v1 MOS statistics rounded as in the GAIC code (mean 2.943, std 0.814, systems.md §2.6)
GAIC_MOS_MEAN = 2.95
GAIC_MOS_STD = 0.8


def normalize_mos(mos: Tensor, mean: float = GAIC_MOS_MEAN, std: float = GAIC_MOS_STD) -> Tensor:
    """``(mos − mean) / std``: GAIC's regression target."""
    return (mos - mean) / std


def mos_smooth_l1(
    pred: Tensor, mos: Tensor, mean: float = GAIC_MOS_MEAN, std: float = GAIC_MOS_STD, beta: float = 1.0
) -> Tensor:
    """SmoothL1 (mean over crops) between ``pred`` ``Tensor[K]`` and the normalised ``mos`` ``Tensor[K]``.

    GAIC: ``mean=2.95, std=0.8``. HCIC regresses the **raw** MOS: pass ``mean=0, std=1``.
    """
    pred, mos = pred.reshape(-1), mos.reshape(-1).to(pred.dtype)
    if pred.shape != mos.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and mos {tuple(mos.shape)} differ")
    return F.smooth_l1_loss(pred, normalize_mos(mos, mean, std), beta=beta)


def _same_image(counts: Tensor | None, k: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """``[K, K]`` bool mask of pairs in the same image, and ``[K]`` image index of each row."""
    if counts is None:
        idx = torch.zeros(k, dtype=torch.long, device=device)
    else:
        counts = counts.to(device=device, dtype=torch.long)
        if int(counts.sum()) != k:
            raise ValueError(f"counts sum to {int(counts.sum())} but there are {k} crops")
        idx = torch.repeat_interleave(torch.arange(len(counts), device=device), counts)
    return idx[:, None] == idx[None, :], idx


def rank_loss(pred: Tensor, gt: Tensor, counts: Tensor | None = None, as_coded: bool = False) -> Tensor:
    """HCIC's pairwise ranking loss, summed over images.

    For the ``N`` crops of one image: ``Σ_{i,j} max(0, −w(g_i − g_j) · ((p_i − p_j) − (g_i − g_j))) / (N(N−1)/2)``
    (the sum runs over ordered pairs, so every unordered pair counts twice, as in the HCIC code). The weight ``w``
    is ``sign`` (clean, default) or ``sin`` (``as_coded=True``: what HCIC's code computes, systems.md §3.5/§3.8).
    Images with fewer than two crops contribute 0.

    Args:
        pred (Tensor[K]): predicted scores. gt (Tensor[K]): target scores (same scale as ``pred``).
        counts (Tensor[B] or None): crops per image.
    """
    pred, gt = pred.reshape(-1), gt.reshape(-1).to(pred.dtype)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    k = pred.shape[0]
    same, idx = _same_image(counts, k, pred.device)
    dp = pred[:, None] - pred[None, :]
    dg = gt[:, None] - gt[None, :]
    w = torch.sin(dg) if as_coded else torch.sign(dg)
    terms = torch.clamp(-w * (dp - dg), min=0) * same
    n = torch.bincount(idx, minlength=int(idx.max()) + 1 if k else 1).to(pred.dtype)
    pairs = (n * (n - 1) / 2).clamp_min(1.0)
    per_row = terms.sum(dim=1)
    per_image = torch.zeros_like(n).index_add(0, idx, per_row)
    return (per_image / pairs).sum()


def heatmap_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean L1 between predicted and pseudo heat maps (HCIC content loss), both ``Tensor[B, 1, 64, 64]``."""
    if pred.shape != target.shape:
        raise ValueError(f"heat maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return F.l1_loss(pred, target.to(pred.dtype))
