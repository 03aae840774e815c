"""Non-maximum suppression for tensors (torchvision ``nms`` semantics); the algorithm lives in
:func:`opencrop.boxes.nms`, which serves NumPy arrays too."""

from __future__ import annotations

from torch import Tensor

from opencrop import boxes as _boxes

__all__ = ["box_iou_matrix", "nms"]


def box_iou_matrix(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every pair of xyxy boxes (continuous coordinates, width ``x2 - x1``): :func:`opencrop.boxes.box_iou`.

    Args:
        a (Tensor[N, 4]), b (Tensor[M, 4]): ``(x1, y1, x2, y2)`` boxes.

    Returns:
        Tensor[N, M]: IoU; 0 where the union is empty.
    """
    return _boxes.box_iou(a, b)


def nms(boxes_xyxy: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS (exact, vectorised; see :func:`opencrop.boxes.nms`).

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
    return _boxes.nms(boxes_xyxy, scores, iou_threshold)
