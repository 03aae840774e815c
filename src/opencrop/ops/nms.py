"""Non-maximum suppression in pure PyTorch (torchvision ``nms`` semantics)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["box_iou_matrix", "nms"]


def box_iou_matrix(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every pair of xyxy boxes (continuous coordinates, width ``x2 - x1``).

    Args:
        a (Tensor[N, 4]), b (Tensor[M, 4]): ``(x1, y1, x2, y2)`` boxes.

    Returns:
        Tensor[N, M]: IoU; 0 where the union is empty.
    """
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)  # [N]
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)  # [M]
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def nms(boxes_xyxy: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: keep the highest-scoring box, drop every box with IoU ``> iou_threshold`` to a kept one, repeat.

    Vectorised: boxes are sorted by score (stable, so ties keep input order) and the greedy rule
    ``keep[i] = not any(keep[j] and iou[j, i] > t for j < i)`` is solved as a fixed point of a triangular system by
    repeated matrix-vector steps. Each step fixes at least one more leading entry, so it converges in at most N
    steps (usually a handful); the result is exactly greedy NMS. Memory is ``O(N²)``.

    Args:
        boxes_xyxy (Tensor[N, 4]): ``(x1, y1, x2, y2)`` boxes, ``x1 <= x2``, ``y1 <= y2``.
        scores (Tensor[N]): box scores.
        iou_threshold (float): boxes with IoU strictly above this are suppressed.

    Returns:
        Tensor[K] int64: indices into ``boxes_xyxy`` of the kept boxes, by decreasing score.
    """
    if boxes_xyxy.dim() != 2 or boxes_xyxy.shape[-1] != 4:
        raise ValueError(f"nms: boxes must be Tensor[N, 4], got {tuple(boxes_xyxy.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes_xyxy.shape[0]:
        raise ValueError(f"nms: scores must be Tensor[{boxes_xyxy.shape[0]}], got {tuple(scores.shape)}")
    n = boxes_xyxy.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes_xyxy.device)
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    b = boxes_xyxy.detach()[order]
    b = b if b.is_floating_point() else b.double()
    over = box_iou_matrix(b, b) > iou_threshold
    over = torch.triu(over, diagonal=1)  # over[j, i]: j ranks above i and overlaps it
    overf = over.to(b.dtype)
    keep = torch.ones(n, dtype=torch.bool, device=b.device)
    for _ in range(n):  # fixed-point iterations (not a loop over boxes: usually a few steps)
        new = (keep.to(b.dtype) @ overf) == 0
        if torch.equal(new, keep):
            break
        keep = new
    return order[keep]
