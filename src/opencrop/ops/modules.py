"""``nn.Module`` wrappers of the align ops: they only store ``output_size`` and ``spatial_scale``.

See :mod:`opencrop.ops.align` for the semantics; ``forward(features, rois)`` takes Tensor[B, C, H, W] and
Tensor[K, 5] (``batch_index, x1, y1, x2, y2`` in input-image pixels) and returns Tensor[K, C, P, P].
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from opencrop.ops.align import rod_align, rod_align_avg, roi_align, roi_align_avg

__all__ = ["RoDAlign", "RoDAlignAvg", "RoIAlign", "RoIAlignAvg"]


class _Align(nn.Module):
    _fn: Callable[[Tensor, Tensor, int | tuple[int, int], float], Tensor]

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = float(spatial_scale)

    def forward(self, features: Tensor, rois: Tensor) -> Tensor:
        return type(self)._fn(features, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


class RoIAlign(_Align):
    """See :func:`opencrop.ops.roi_align`."""

    _fn = staticmethod(roi_align)


class RoDAlign(_Align):
    """See :func:`opencrop.ops.rod_align`."""

    _fn = staticmethod(rod_align)


class RoIAlignAvg(_Align):
    """See :func:`opencrop.ops.roi_align_avg` (GAIC's ``RoIAlignAvg(P, P, scale)``)."""

    _fn = staticmethod(roi_align_avg)


class RoDAlignAvg(_Align):
    """See :func:`opencrop.ops.rod_align_avg` (GAIC's ``RoDAlignAvg(P, P, scale)``)."""

    _fn = staticmethod(rod_align_avg)
