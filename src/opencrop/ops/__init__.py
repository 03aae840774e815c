"""Pure-PyTorch ops (no compiled extension): GAIC's RoIAlign / RoDAlign, torchvision-style RoIAlign, NMS.

All align ops take ``features`` Tensor[B, C, H, W] and ``rois`` Tensor[K, 5] rows ``(batch_index, x1, y1, x2, y2)``
in input-image pixels and return Tensor[K, C, P, P]; see :mod:`opencrop.ops.align`.
"""

from __future__ import annotations

from opencrop.ops.align import (
    rod_align,
    rod_align_avg,
    rod_align_grid,
    rod_align_inside,
    roi_align,
    roi_align_avg,
    roi_align_matrices,
    roi_align_torchvision,
)
from opencrop.ops.modules import RoDAlign, RoDAlignAvg, RoIAlign, RoIAlignAvg
from opencrop.ops.nms import box_iou_matrix, nms

__all__ = [
    "RoDAlign",
    "RoDAlignAvg",
    "RoIAlign",
    "RoIAlignAvg",
    "box_iou_matrix",
    "nms",
    "rod_align",
    "rod_align_avg",
    "rod_align_grid",
    "rod_align_inside",
    "roi_align",
    "roi_align_avg",
    "roi_align_matrices",
    "roi_align_torchvision",
]
