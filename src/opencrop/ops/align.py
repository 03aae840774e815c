"""RoIAlign / RoDAlign in pure PyTorch: GAIC's flavour and torchvision's.

Convention (all ops):
    ``features`` is ``Tensor[B, C, H, W]``; ``rois`` is ``Tensor[K, 5]`` with rows
    ``(batch_index, x1, y1, x2, y2)`` in **input-image pixels** (e.g. pixels of the resized image fed to the
    backbone); ``spatial_scale`` maps them onto the feature map (``1/16`` for a stride-16 map). The output is
    ``Tensor[K, C, P, P]`` (or ``[K, C, Ph, Pw]`` when ``output_size`` is a pair), in ``features``' dtype and
    device. Gradients flow to ``features`` only, never to ``rois``.

GAIC flavour (:func:`roi_align`, :func:`rod_align` and their ``_avg`` variants) reproduces the CUDA kernels of
GAIC (lld533/Grid-Anchor-based-Image-Cropping-Pytorch, ``roi_align_kernel.cu`` / ``rod_align_kernel.cu``), read
and re-derived, not copied:

* **RoIAlign.** The box is scaled: ``x1' = x1 * s`` etc. ``roi_w = max(x2' - x1' + 1, 0)``, ``bin_w =
  roi_w / (Pw - 1)``; sample ``(ph, pw)`` lies at ``(y1' + ph * bin_h, x1' + pw * bin_w)`` (so the last sample
  sits one feature pixel *past* ``x2'``). One bilinear sample per output cell, no averaging. A sample with
  ``h < 0 or h >= H or w < 0 or w >= W`` is 0. Otherwise the base index is ``min(floor(h), H - 2)`` (and
  ``W - 2``), so a sample in ``[H - 1, H)`` extrapolates linearly from the last two rows (weight ratio in
  ``[1, 2)``).
* **RoDAlign.** The *whole* map is sampled on a fixed grid ``h = ph * (H - 1.001) / (Ph - 1)``, ``w = pw *
  (W - 1.001) / (Pw - 1)``; a sample with ``y1' <= h <= y2'`` **and** ``x1' <= w <= x2'`` (closed box, no ``+1``)
  is 0, every other sample is bilinear as above (never out of range).
* **Avg variants** run the op at ``P + 1`` and apply 2×2 average pooling with stride 1.
* Coordinates are computed in float32 (float64 when ``features`` is float64) with the kernels' rounding steps
  (bin sizes divided in double, stored as float), so the inside/outside tests agree with them on boundary cases
  (nvcc may fuse ``ph * bin + start`` into one FMA, which can move a sample by one float ulp).
* **Degenerate maps (H or W equal to 1).** The kernels then use base index ``-1`` and read memory outside the
  map (undefined behaviour). Here the base index is clamped to ``[0, max(H - 2, 0)]`` and the neighbour index to
  ``H - 1``, so a 1-pixel axis is constant (the single row/column is returned with weight 1).
* ``P`` must be at least 2 for the plain ops (the kernels divide by ``P - 1``); the avg variants accept ``P >= 1``.

torchvision flavour (:func:`roi_align_torchvision`) reproduces ``torchvision.ops.roi_align`` (used by GenCrop):
``P`` bins of size ``roi / P`` with an adaptive ``ceil(roi / P)`` (or ``sampling_ratio``) grid of samples per bin,
averaged; ``aligned=False`` forces a roi of at least 1×1 pixel; samples beyond ``[-1, H] × [-1, W]`` give 0,
coordinates below 0 are clamped to 0 and the last row/column is replicated (no extrapolation).

Implementation: per-axis sample positions and weights are computed for every roi at once, the four bilinear
corners are gathered from a channels-last view of the map (``index_select``; its backward is a scatter-add),
and the weights (with the validity masks folded in) are applied by broadcasting. Cost ``O(K·C·Ph·Pw)`` memory
and time (times the samples per bin for the torchvision flavour); no Python loop over rois.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "rod_align",
    "rod_align_avg",
    "rod_align_grid",
    "rod_align_inside",
    "roi_align",
    "roi_align_avg",
    "roi_align_matrices",
    "roi_align_torchvision",
]


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int):
        return output_size, output_size
    ph, pw = output_size
    return int(ph), int(pw)


def _check(features: Tensor, rois: Tensor, name: str) -> None:
    if not isinstance(features, Tensor) or features.dim() != 4:
        shape = tuple(getattr(features, "shape", ()))
        raise ValueError(f"{name}: features must be a Tensor[B, C, H, W], got shape {shape}")
    if not isinstance(rois, Tensor) or rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"{name}: rois must be a Tensor[K, 5] (batch_index, x1, y1, x2, y2), got shape "
                         f"{tuple(getattr(rois, 'shape', ()))}")
    if features.shape[2] < 1 or features.shape[3] < 1:
        raise ValueError(f"{name}: empty feature map {tuple(features.shape)}")


def _coord_dtype(features: Tensor) -> torch.dtype:
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def _split_rois(rois: Tensor, features: Tensor, spatial_scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Batch indices [K] (long) and scaled x1, y1, x2, y2 [K] in the coordinate dtype (no grad)."""
    r = rois.detach().to(device=features.device, dtype=_coord_dtype(features))
    bidx = r[:, 0].long()
    # a data-dependent check, left out of an exported graph (opencrop.models.export: batch index 0 by construction)
    exporting = torch.compiler.is_exporting()
    if not exporting and bidx.numel() and (int(bidx.min()) < 0 or int(bidx.max()) >= features.shape[0]):
        raise ValueError(f"rois batch indices must lie in [0, {features.shape[0] - 1}], got "
                         f"[{int(bidx.min())}, {int(bidx.max())}]")
    s = torch.tensor(spatial_scale, dtype=r.dtype, device=r.device)
    return bidx, r[:, 1] * s, r[:, 2] * s, r[:, 3] * s, r[:, 4] * s


def _axis_weights(pos: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """GAIC bilinear taps along one axis for sample positions ``pos`` (any shape).

    Returns (lo index, hi index, lo weight, hi weight), base index ``clamp(floor(pos), 0, max(size - 2, 0))``,
    hi index ``min(lo + 1, size - 1)``, ratio ``pos - lo`` (may exceed 1: extrapolation at the last row).
    """
    lo = torch.floor(pos).clamp(min=0, max=max(size - 2, 0))
    ratio = pos - lo
    lo_i = lo.long()
    hi_i = (lo_i + 1).clamp(max=size - 1)
    return lo_i, hi_i, 1.0 - ratio, ratio


def _gather_bilinear(
    features: Tensor,
    bidx: Tensor,
    y: tuple[Tensor, Tensor, Tensor, Tensor],
    x: tuple[Tensor, Tensor, Tensor, Tensor],
) -> Tensor:
    """Separable bilinear gather.

    Args:
        features: Tensor[B, C, H, W].
        bidx: Tensor[K] long, batch index of each roi.
        y: (lo, hi, w_lo, w_hi), each Tensor[K, Ny]; invalid samples carry zero weights.
        x: (lo, hi, w_lo, w_hi), each Tensor[K, Nx].

    Returns:
        Tensor[K, C, Ny, Nx]: ``sum_{a,b} wy_a[k, i] * wx_b[k, j] * features[bidx[k], :, y_a[k, i], x_b[k, j]]``.
    """
    B, C, H, W = features.shape
    K, ny, nx = bidx.shape[0], y[0].shape[1], x[0].shape[1]
    flat = features.permute(0, 2, 3, 1).reshape(B * H * W, C)  # channels-last rows
    dt = features.dtype
    base = (bidx * (H * W)).view(K, 1, 1)
    out = None
    for yi, wy in ((y[0], y[2]), (y[1], y[3])):
        row = base + (yi * W).view(K, ny, 1)
        for xi, wx in ((x[0], x[2]), (x[1], x[3])):
            idx = (row + xi.view(K, 1, nx)).reshape(-1)
            w = (wy.view(K, ny, 1) * wx.view(K, 1, nx)).to(dt).reshape(-1, 1)
            term = flat.index_select(0, idx) * w
            out = term if out is None else out + term
    assert out is not None
    return out.view(K, ny, nx, C).permute(0, 3, 1, 2).contiguous()


def roi_align(features: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float) -> Tensor:
    """GAIC RoIAlign: one bilinear sample per cell on a grid spanning the scaled box (module docstring).

    Args:
        features (Tensor[B, C, H, W]): feature map.
        rois (Tensor[K, 5]): rows ``(batch_index, x1, y1, x2, y2)`` in input-image pixels, ``x1 <= x2``.
        output_size (int or (int, int)): ``P`` (or ``(Ph, Pw)``), at least 2.
        spatial_scale (float): feature-map pixels per input pixel, e.g. ``1/16``.

    Returns:
        Tensor[K, C, Ph, Pw]. Samples outside ``[0, H) × [0, W)`` are 0.
    """
    _check(features, rois, "roi_align")
    ph, pw = _pair(output_size)
    bidx, ty, tx = _roi_taps(features, rois, ph, pw, spatial_scale, "roi_align")
    return _gather_bilinear(features, bidx, ty, tx)


def _roi_taps(features: Tensor, rois: Tensor, ph: int, pw: int, spatial_scale: float, name: str):
    """Batch indices [K] and the GAIC RoIAlign taps ``(lo, hi, w_lo, w_hi)`` per axis ([K, Ph] / [K, Pw]), validity
    folded into the weights."""
    if ph < 2 or pw < 2:
        raise ValueError(f"{name}: output_size must be >= 2 (the GAIC kernel divides by P - 1), got {(ph, pw)}")
    H, W = features.shape[2:]
    bidx, x1, y1, x2, y2 = _split_rois(rois, features, spatial_scale)
    cdt = x1.dtype
    roi_w = (x2 - x1 + 1).clamp(min=0)
    roi_h = (y2 - y1 + 1).clamp(min=0)
    # the kernel computes roi / (P - 1.) in double and stores it as float
    bin_w = (roi_w.double() / (pw - 1.0)).to(cdt)
    bin_h = (roi_h.double() / (ph - 1.0)).to(cdt)
    gy = torch.arange(ph, device=features.device, dtype=cdt)
    gx = torch.arange(pw, device=features.device, dtype=cdt)
    hs = gy.view(1, ph) * bin_h.view(-1, 1) + y1.view(-1, 1)  # [K, Ph]
    ws = gx.view(1, pw) * bin_w.view(-1, 1) + x1.view(-1, 1)  # [K, Pw]
    ylo, yhi, wylo, wyhi = _axis_weights(hs, H)
    xlo, xhi, wxlo, wxhi = _axis_weights(ws, W)
    vy = ((hs >= 0) & (hs < H)).to(cdt)
    vx = ((ws >= 0) & (ws < W)).to(cdt)
    return bidx, (ylo, yhi, wylo * vy, wyhi * vy), (xlo, xhi, wxlo * vx, wxhi * vx)


def _tap_matrix(taps: tuple[Tensor, Tensor, Tensor, Tensor], size: int, dtype: torch.dtype) -> Tensor:
    """Dense interpolation matrix ``M[k, i, h]`` (``[K, P, size]``) of one axis' taps: ``Σ_h M[k, i, h] v[h]`` is
    the tap sum ``w_lo · v[lo] + w_hi · v[hi]`` (both added when ``lo == hi``)."""
    lo, hi, w_lo, w_hi = taps
    m = torch.zeros(*lo.shape, size, dtype=dtype, device=lo.device)
    m.scatter_add_(-1, lo.unsqueeze(-1), w_lo.to(dtype).unsqueeze(-1))
    return m.scatter_add_(-1, hi.unsqueeze(-1), w_hi.to(dtype).unsqueeze(-1))


def roi_align_matrices(features: Tensor, rois: Tensor, output_size: int | tuple[int, int],
                       spatial_scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`roi_align` as separable dense interpolation matrices (for callers that contract the result with a
    linear map, where two small matrix products beat the gather).

    Returns:
        ``(bidx [K] long, Ay [K, Ph, H], Ax [K, Pw, W])`` in ``features``' dtype, with
        ``roi_align(features, rois, output_size, spatial_scale)[k] == Ay[k] @ features[bidx[k]] @ Ax[k]ᵀ``
        (per channel; equal up to float rounding, the products sum in another order).
    """
    _check(features, rois, "roi_align_matrices")
    ph, pw = _pair(output_size)
    bidx, ty, tx = _roi_taps(features, rois, ph, pw, spatial_scale, "roi_align_matrices")
    H, W = features.shape[2:]
    return bidx, _tap_matrix(ty, H, features.dtype), _tap_matrix(tx, W, features.dtype)


def rod_align(features: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float) -> Tensor:
    """GAIC RoDAlign: the whole map on a fixed grid, with the samples inside the (closed, scaled) box set to 0.

    Args:
        features (Tensor[B, C, H, W]): feature map.
        rois (Tensor[K, 5]): rows ``(batch_index, x1, y1, x2, y2)`` in input-image pixels.
        output_size (int or (int, int)): ``P`` (or ``(Ph, Pw)``), at least 2.
        spatial_scale (float): feature-map pixels per input pixel, e.g. ``1/16``.

    Returns:
        Tensor[K, C, Ph, Pw]: "the map with the crop blacked out" at a fixed resolution.
    """
    _check(features, rois, "rod_align")
    ph, pw = _pair(output_size)
    _, _, ty, tx = _rod_taps(features, ph, pw, rois.shape[0], "rod_align")
    bidx = _split_rois(rois, features, spatial_scale)[0]
    out = _gather_bilinear(features, bidx, ty, tx)
    iny, inx = rod_align_inside(features, rois, (ph, pw), spatial_scale)
    K = bidx.shape[0]
    keep = ~(iny.view(K, 1, ph, 1) & inx.view(K, 1, 1, pw))
    return out * keep.to(out.dtype)


def _rod_taps(features: Tensor, ph: int, pw: int, k: int, name: str):
    """RoDAlign's fixed sample grid: positions ``hs`` [k, Ph], ``ws`` [k, Pw] and their taps per axis."""
    if ph < 2 or pw < 2:
        raise ValueError(f"{name}: output_size must be >= 2 (the GAIC kernel divides by P - 1), got {(ph, pw)}")
    H, W = features.shape[2:]
    cdt, dev = _coord_dtype(features), features.device
    # (float)(H - 1.001) / (P - 1.) stored as float, as in the kernel (tensor ops only, so an exported graph keeps
    # H and W symbolic: opencrop.export)
    bin_h = (torch.full((), H - 1.001, dtype=cdt, device=dev).double() / (ph - 1.0)).to(cdt)
    bin_w = (torch.full((), W - 1.001, dtype=cdt, device=dev).double() / (pw - 1.0)).to(cdt)
    hs = (torch.arange(ph, device=dev, dtype=cdt) * bin_h).expand(k, ph)
    ws = (torch.arange(pw, device=dev, dtype=cdt) * bin_w).expand(k, pw)
    return hs, ws, _axis_weights(hs, H), _axis_weights(ws, W)


def rod_align_grid(features: Tensor, output_size: int | tuple[int, int]) -> Tensor:
    """RoDAlign's samples before the box is blacked out: the whole map on the fixed grid, once per image →
    ``Tensor[B, C, Ph, Pw]``. ``rod_align(features, rois, …)[k] == grid[bidx[k]] * keep[k]`` with ``keep = ¬(iny ⊗
    inx)`` of :func:`rod_align_inside` (the grid does not depend on the box)."""
    if not isinstance(features, Tensor) or features.dim() != 4:
        raise ValueError(f"rod_align_grid: features must be a Tensor[B, C, H, W], got {tuple(features.shape)}")
    ph, pw = _pair(output_size)
    b = features.shape[0]
    _, _, ty, tx = _rod_taps(features, ph, pw, b, "rod_align_grid")
    return _gather_bilinear(features, torch.arange(b, device=features.device), ty, tx)


def rod_align_inside(features: Tensor, rois: Tensor, output_size: int | tuple[int, int],
                     spatial_scale: float) -> tuple[Tensor, Tensor]:
    """Which RoDAlign grid rows / columns lie inside each (closed, scaled) box → ``(iny [K, Ph], inx [K, Pw])``
    bool; a sample is blacked out when both hold."""
    _check(features, rois, "rod_align_inside")
    ph, pw = _pair(output_size)
    _, x1, y1, x2, y2 = _split_rois(rois, features, spatial_scale)
    hs, ws, _, _ = _rod_taps(features, ph, pw, 1, "rod_align_inside")
    iny = (hs >= y1.view(-1, 1)) & (hs <= y2.view(-1, 1))  # [K, Ph]
    inx = (ws >= x1.view(-1, 1)) & (ws <= x2.view(-1, 1))  # [K, Pw]
    return iny, inx


def _avg2x2(x: Tensor) -> Tensor:
    """2×2 average pooling with stride 1 (``F.avg_pool2d(x, 2, 1)``), as four shifted slices: several times faster
    than ``avg_pool2d`` on CPU for these small maps."""
    return 0.25 * ((x[..., :-1, :-1] + x[..., :-1, 1:]) + (x[..., 1:, :-1] + x[..., 1:, 1:]))


def roi_align_avg(features: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float) -> Tensor:
    """GAIC RoIAlignAvg: :func:`roi_align` at ``P + 1``, then 2×2 average pooling, stride 1 → Tensor[K, C, P, P]."""
    ph, pw = _pair(output_size)
    if ph < 1 or pw < 1:
        raise ValueError(f"roi_align_avg: output_size must be >= 1, got {(ph, pw)}")
    return _avg2x2(roi_align(features, rois, (ph + 1, pw + 1), spatial_scale))


def rod_align_avg(features: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float) -> Tensor:
    """GAIC RoDAlignAvg: :func:`rod_align` at ``P + 1``, then 2×2 average pooling, stride 1 → Tensor[K, C, P, P]."""
    ph, pw = _pair(output_size)
    if ph < 1 or pw < 1:
        raise ValueError(f"rod_align_avg: output_size must be >= 1, got {(ph, pw)}")
    return _avg2x2(rod_align(features, rois, (ph + 1, pw + 1), spatial_scale))


def _tv_axis(start: Tensor, length: Tensor, bins: int, grid: Tensor, gmax: int, size: int):
    """torchvision sample taps along one axis.

    Args:
        start, length: Tensor[K] scaled roi start and (forced) length.
        bins: number of output bins P along this axis.
        grid: Tensor[K] long, samples per bin for each roi (>= 1).
        gmax: max of ``grid`` (samples laid out per bin, the extra ones get weight 0).
        size: map size along this axis.

    Returns:
        (lo, hi, w_lo, w_hi), each Tensor[K, P * gmax]; weights include the validity mask and ``1 / grid``.
    """
    K, dt, dev = start.shape[0], start.dtype, start.device
    bin_sz = length / bins  # [K]
    p = torch.arange(bins, device=dev, dtype=dt).view(1, bins, 1)
    i = torch.arange(gmax, device=dev, dtype=dt).view(1, 1, gmax)
    used = (i < grid.to(dt).view(K, 1, 1)).to(dt)  # a grid of 0 (aligned, negative roi) gives 0
    g = grid.clamp(min=1).to(dt).view(K, 1, 1)
    pos = start.view(K, 1, 1) + p * bin_sz.view(K, 1, 1) + (i + 0.5) * bin_sz.view(K, 1, 1) / g  # [K, P, G]
    valid = ((pos >= -1.0) & (pos <= size)).to(dt)
    pos = pos.clamp(min=0)
    lo = torch.floor(pos).clamp(max=size - 1)
    at_end = lo >= size - 1
    pos = torch.where(at_end, lo, pos)
    lo_i = lo.long()
    hi_i = torch.where(at_end, lo_i, lo_i + 1)
    frac = pos - lo
    scale = used * valid / g
    n = bins * gmax
    return (lo_i.view(K, n), hi_i.view(K, n), ((1 - frac) * scale).view(K, n), (frac * scale).view(K, n))


def roi_align_torchvision(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign with ``torchvision.ops.roi_align`` semantics (GenCrop's RoI branch).

    Args:
        features (Tensor[B, C, H, W]): feature map.
        rois (Tensor[K, 5]): rows ``(batch_index, x1, y1, x2, y2)`` in input-image pixels.
        output_size (int or (int, int)): ``P`` (or ``(Ph, Pw)``) bins.
        spatial_scale (float): feature-map pixels per input pixel (224-px boxes on a 112-px map → 0.5).
        sampling_ratio (int): samples per bin along each axis; ``<= 0`` means adaptive, ``ceil(roi / P)`` per roi.
        aligned (bool): if True, shift the box by −0.5 pixel (pixel-centre model) and allow rois below 1 pixel;
            if False (default, GenCrop), rois are at least 1×1 feature pixel.

    Returns:
        Tensor[K, C, Ph, Pw]: the average of the bilinear samples of each bin.
    """
    _check(features, rois, "roi_align_torchvision")
    ph, pw = _pair(output_size)
    if ph < 1 or pw < 1:
        raise ValueError(f"roi_align_torchvision: output_size must be >= 1, got {(ph, pw)}")
    C, H, W = features.shape[1:]
    bidx, x1, y1, x2, y2 = _split_rois(rois, features, spatial_scale)
    K = bidx.shape[0]
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = x1 - off, y1 - off, x2 - off, y2 - off
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        gy = torch.full((K,), sampling_ratio, dtype=torch.long, device=features.device)
        gx = gy
    else:
        gy = torch.ceil(roi_h / ph).long().clamp(min=0)
        gx = torch.ceil(roi_w / pw).long().clamp(min=0)
    gymax = max(int(gy.max()), 1) if K else 1
    gxmax = max(int(gx.max()), 1) if K else 1
    ty = _tv_axis(y1, roi_h, ph, gy, gymax, H)
    tx = _tv_axis(x1, roi_w, pw, gx, gxmax, W)
    dense = _gather_bilinear(features, bidx, ty, tx)  # [K, C, Ph*Gy, Pw*Gx]
    return dense.view(K, C, ph, gymax, pw, gxmax).sum(dim=(3, 5))

