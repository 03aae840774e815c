"""Building blocks of HCIC (Zhang et al., "Human-centric Image Cropping with Partition-aware and
Content-preserving Features", ECCV'22, arXiv 2207.10269), shared with GAFIC.

Written from the specification in ``docs/systems.md`` §3.1 (and from reading the public HCIC code to settle
details); no code is copied. Every tensor function is vectorised (no Python loop over boxes or pixels).

Conventions:

* feature maps are ``[B, C, h, w]`` at stride 16 of the network input (``h = H // 16``, ``w = W // 16``);
* boxes are **xyxy float pixels of the network input** (the resized image), ``[..., 4]``; RoI rows are
  ``[K, 5] = (batch_index, x1, y1, x2, y2)``;
* a missing human box is ``(-1, -1, -1, -1)`` (any box with ``x1 < 0``), as in the HCIC data loader.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.ops import rod_align_avg, roi_align_avg

__all__ = [
    "ContentFeature",
    "ContentPreserveModule",
    "ConvRelationEncoder",
    "CropBranch",
    "GraphRelationEncoder",
    "HeatmapHead",
    "PartitionAwareModule",
    "coord_dtype",
    "crop_masks",
    "has_human",
    "partition_masks",
]


def has_human(human_boxes: Tensor) -> Tensor:
    """``[B, 4]`` xyxy human boxes (``-1`` rows = no human) → ``[B]`` bool: the image has a valid human box."""
    return (human_boxes[:, 0] >= 0) & (human_boxes[:, 2] >= 0)


def partition_masks(human_boxes: Tensor, height: int, width: int, stride: int = 16) -> Tensor:
    """The 3×3 partition masks that a human box cuts a feature map into.

    The human box's left/right edges cut the columns and its top/bottom edges cut the rows of the stride-``stride``
    grid into three bands each; mask ``3·row + col`` (row-major) is 1 on the cells of that band pair, so index 4 is
    the human box itself. The box is scaled to the ``(height // stride) × (width // stride)`` grid and truncated to
    integers (HCIC's data loader); a box collapsing to zero width/height is widened to one cell. Images without a
    human (``x1 < 0``) get all-zero masks. Every cell of an image with a human lies in exactly one mask.

    Args:
        human_boxes: ``[B, 4]`` xyxy pixels of the ``width × height`` network input (``-1`` rows = no human).
        height, width: network input size in pixels.
        stride: feature stride (16 for HCIC).

    Returns:
        ``[B, 9, h, w]`` float32 masks, ``h = height // stride``, ``w = width // stride``.
    """
    h, w = height // stride, width // stride  # (no int(): an exported graph keeps the sizes symbolic)
    b = human_boxes.to(torch.float32)
    x1 = torch.trunc(b[:, 0] * (w / width))
    y1 = torch.trunc(b[:, 1] * (h / height))
    x2 = torch.trunc(b[:, 2] * (w / width))
    y2 = torch.trunc(b[:, 3] * (h / height))
    x2 = torch.where(x2 == x1, x1 + 1, x2)
    y2 = torch.where(y2 == y1, y1 + 1, y2)
    xs = torch.arange(w, device=b.device, dtype=torch.float32)
    ys = torch.arange(h, device=b.device, dtype=torch.float32)
    col = (xs[None, :] >= x1[:, None]).long() + (xs[None, :] >= x2[:, None]).long()  # [B, w] in {0, 1, 2}
    row = (ys[None, :] >= y1[:, None]).long() + (ys[None, :] >= y2[:, None]).long()  # [B, h]
    cell = row[:, :, None] * 3 + col[:, None, :]  # [B, h, w] in 0..8
    masks = F.one_hot(cell, 9).permute(0, 3, 1, 2).to(torch.float32)
    return masks * has_human(human_boxes).to(torch.float32)[:, None, None, None]


def crop_masks(boxes: Tensor, height: int, width: int, size: int = 64) -> Tensor:
    """Binary ``size × size`` masks of crops (HCIC's content-preserving input).

    Each box is scaled from the ``width × height`` input to ``size × size`` and truncated to integers; the mask is
    1 on rows ``[y1, y2)`` and columns ``[x1, x2)``. Boxes with ``x1 < 0`` (padding) give an all-zero mask.

    Args:
        boxes: ``[K, 4]`` xyxy pixels of the network input.
        height, width: network input size in pixels.
        size: mask side (64 in HCIC).

    Returns:
        ``[K, size, size]`` float32.
    """
    b = boxes.to(torch.float32)
    sx, sy = size / width, size / height
    x1, x2 = torch.trunc(b[:, 0] * sx), torch.trunc(b[:, 2] * sx)
    y1, y2 = torch.trunc(b[:, 1] * sy), torch.trunc(b[:, 3] * sy)
    r = torch.arange(size, device=b.device, dtype=torch.float32)
    in_x = (r[None, :] >= x1[:, None]) & (r[None, :] < x2[:, None])  # [K, size]
    in_y = (r[None, :] >= y1[:, None]) & (r[None, :] < y2[:, None])
    valid = (b[:, 0] >= 0)[:, None, None]
    return (in_y[:, :, None] & in_x[:, None, :] & valid).to(torch.float32)


def coord_dtype(x: Tensor) -> torch.dtype:
    """Box-coordinate dtype for features ``x``: float64 for float64 maps, else float32 (never half precision,
    which would round input-pixel coordinates under AMP)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _rois_for_boxes(boxes: Tensor) -> Tensor:
    """``[B, 4]`` one box per image → ``[B, 5]`` RoI rows with batch index ``i`` for row ``i``."""
    idx = torch.arange(boxes.shape[0], device=boxes.device, dtype=boxes.dtype)[:, None]
    return torch.cat([idx, boxes], dim=1)


class PartitionAwareModule(nn.Module):
    """HCIC's partition-aware (PA) module, with per-image gating.

    For a feature map ``x`` ``[B, C, h, w]`` and each image's human box:

    1. (``concat_with_human``) RoIAlignAvg 3×3 of the human box on ``x``, a 3×3 valid conv → ``C // 2`` vector,
       broadcast over ``h × w`` and concatenated to ``x``;
    2. 3×3 conv → ``C · G`` channels + ReLU, split into ``G`` groups of ``C`` (``G = 9`` for variants 9 and 0, 1 for
       variant 1, 2 for variant 2);
    3. fuse with the partition masks ``[B, 9, h, w]`` (:func:`partition_masks`): variant 9 = Σ_k mask_k ⊙ group_k;
       0 = mean of the 9 groups; 1 = group ⊙ human mask; 2 = human group ⊙ human mask + other ⊙ (1 − human mask);
    4. ``out = x + fused`` (residual).

    **Deviation (bug fix):** the original runs the module for the whole batch iff the *first* image of the batch has
    a human. Here gating is **per image**: an image without a human box (all-zero masks) bypasses the residual and is
    returned unchanged, whatever the rest of the batch holds.

    Returns ``(out [B, C, h, w], part_mean [B, G', h, w])`` where ``part_mean`` is the channel mean of each group
    (``G' = 9, 9, 1, 2``); it fed a partition cross-entropy loss that the original defines but never uses.
    """

    def __init__(
        self, in_dim: int = 32, partition: int = 9, concat_with_human: bool = True, spatial_scale: float = 1 / 16
    ) -> None:
        super().__init__()
        if partition not in (0, 1, 2, 9):
            raise ValueError(f"partition variant must be 9, 0, 1 or 2, got {partition!r}")
        self.partition = partition
        self.concat_with_human = concat_with_human
        self.spatial_scale = spatial_scale
        self.groups = 9 if partition in (0, 9) else partition
        human_dim = in_dim // 2 if concat_with_human else 0
        if concat_with_human:
            self.human_conv = nn.Conv2d(in_dim, human_dim, kernel_size=3)
        self.group_conv = nn.Conv2d(in_dim + human_dim, in_dim * self.groups, kernel_size=3, padding=1)

    def forward(self, x: Tensor, human_boxes: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``[B, C, h, w]``; ``human_boxes`` ``[B, 4]`` input pixels (``-1`` = none); ``masks`` ``[B, 9, h, w]``.

        Returns ``(x refined where the image has a human, else x unchanged, part_mean)``.
        """
        b, c, h, w = x.shape
        gate = masks[:, 4].flatten(1).amax(dim=1) > 0  # [B]: this image has a human
        if not torch.compiler.is_exporting() and not bool(gate.any()):  # a shortcut; an exported graph gates below
            return x, x.new_zeros(b, 9 if self.partition in (0, 9) else self.groups, h, w)
        inp = x
        if self.concat_with_human:
            rois = _rois_for_boxes(human_boxes.to(x.device, coord_dtype(x)))
            hfeat = self.human_conv(roi_align_avg(x, rois, 3, self.spatial_scale))  # [B, C/2, 1, 1]
            inp = torch.cat([x, hfeat.expand(-1, -1, h, w)], dim=1)
        pconv = F.relu(self.group_conv(inp))
        groups = pconv.view(b, self.groups, c, h, w)
        part_mean = groups.mean(dim=2)
        if self.partition == 9:
            fused = (groups * masks[:, :, None]).sum(dim=1)
        elif self.partition == 0:
            fused = groups.mean(dim=1)
        elif self.partition == 1:
            fused = groups[:, 0] * masks[:, 4:5]
        else:
            hm = masks[:, 4:5]
            fused = groups[:, 0] * hm + groups[:, 1] * (1 - hm)
        out = torch.where(gate[:, None, None, None], x + fused, x)
        part_mean = part_mean * gate[:, None, None, None].to(part_mean.dtype)
        return out, part_mean


class GraphRelationEncoder(nn.Module):
    """HCIC's "gcn" relation encoder: every stride-16 position is a graph node.

    ``φ, θ`` = linear ``C → C`` (no bias); ``S = softmax_j(cos(φ(x_i), θ(x_j)))``; ``out = ReLU((S · X) · W)`` with
    ``W`` ``C × out_dim`` (Xavier-uniform). Input ``[B, C, h, w]`` → output ``[B, out_dim, h, w]``.
    The cosine divides by ``max(‖φ‖‖θ‖, 1e-6)`` (the original divides by the raw product, NaN for a zero vector).
    """

    def __init__(self, in_dim: int = 32, out_dim: int = 8) -> None:
        super().__init__()
        self.phi = nn.Linear(in_dim, in_dim, bias=False)
        self.theta = nn.Linear(in_dim, in_dim, bias=False)
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        nodes = x.flatten(2).transpose(1, 2)  # [B, hw, C]
        p = self.phi(nodes)
        t = self.theta(nodes)
        norms = p.norm(dim=-1, keepdim=True) @ t.norm(dim=-1, keepdim=True).transpose(1, 2)
        sim = torch.softmax((p @ t.transpose(1, 2)) / norms.clamp(min=1e-6), dim=-1)  # [B, hw, hw]
        out = F.relu((sim @ nodes) @ self.weight)  # [B, hw, out]
        return out.transpose(1, 2).reshape(b, -1, h, w)


class ConvRelationEncoder(nn.Sequential):
    """HCIC's "conv" relation encoder (GAFIC's default): 3×3 conv ``C → C``, ReLU, 1×1 conv ``C → out_dim``."""

    def __init__(self, in_dim: int = 32, out_dim: int = 8) -> None:
        super().__init__(
            nn.Conv2d(in_dim, in_dim, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_dim, out_dim, kernel_size=1),
        )


class HeatmapHead(nn.Sequential):
    """Content heat-map head: bilinear upsample (align_corners) to ``size × size``, 3×3 conv, ReLU, 1×1 → 1, sigmoid.

    ``[B, C, h, w]`` → ``[B, 1, size, size]`` in (0, 1).
    """

    def __init__(self, in_dim: int = 8, size: int = 64) -> None:
        super().__init__(
            nn.Upsample(size=(size, size), mode="bilinear", align_corners=True),
            nn.Conv2d(in_dim, in_dim, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_dim, 1, kernel_size=1),
            nn.Sigmoid(),
        )


class ContentFeature(nn.Sequential):
    """Per-crop content feature from ``stack(heat map, crop mask)`` ``[K, 2, 64, 64]`` → ``[K, out_dim]``.

    5×5 conv → 64, maxpool 2, 5×5 conv → 32, maxpool 2, flatten (32·13·13 = 5408), linear → ``out_dim``.
    (No non-linearity between the layers, as in HCIC.)
    """

    def __init__(self, out_dim: int = 256) -> None:
        super().__init__(
            nn.Conv2d(2, 64, kernel_size=5),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 32, kernel_size=5),
            nn.MaxPool2d(2),
            nn.Flatten(1),
            nn.Linear(32 * 13 * 13, out_dim),
        )


class ContentPreserveModule(nn.Module):
    """HCIC's content-preserving (CP) module.

    ``relation`` ("gcn" | "conv") encodes the 32-ch map to 8 ch; :class:`HeatmapHead` predicts the 64×64 content
    heat map; each crop's feature is :class:`ContentFeature` of ``stack(its image's heat map, its 64×64 crop mask)``.
    """

    def __init__(self, in_dim: int = 32, inter_dim: int = 8, out_dim: int = 256, relation: str = "gcn") -> None:
        super().__init__()
        if relation == "gcn":
            self.relation_encoder: nn.Module = GraphRelationEncoder(in_dim, inter_dim)
        elif relation == "conv":
            self.relation_encoder = ConvRelationEncoder(in_dim, inter_dim)
        else:
            raise ValueError(f"relation must be 'gcn' or 'conv', got {relation!r}")
        self.heatmap_head = HeatmapHead(inter_dim, 64)
        self.content_feature = ContentFeature(out_dim)

    def heatmap(self, x: Tensor) -> Tensor:
        """``[B, C, h, w]`` → predicted heat map ``[B, 1, 64, 64]`` in (0, 1)."""
        return self.heatmap_head(self.relation_encoder(x))

    def crop_features(self, heat: Tensor, rois: Tensor, height: int, width: int, chunk: int = 256) -> Tensor:
        """``heat`` ``[B, 1, 64, 64]``, ``rois`` ``[K, 5]`` (batch index + xyxy input pixels) → ``[K, out_dim]``.

        Without autograd (inference) the crops go through the conv layers ``chunk`` at a time, which bounds memory
        (the first conv alone needs 0.9 MB per crop) when thousands of candidates are scored at once.
        """
        masks = crop_masks(rois[:, 1:], height, width, heat.shape[-1])
        stacked = torch.stack([heat[rois[:, 0].long(), 0], masks.to(heat.dtype)], dim=1)  # [K, 2, 64, 64]
        if torch.is_grad_enabled() or torch.compiler.is_exporting() or stacked.shape[0] <= chunk:
            return self.content_feature(stacked)
        return torch.cat([self.content_feature(part) for part in stacked.split(chunk)], dim=0)

    def forward(self, x: Tensor, rois: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
        """→ ``(heat [B, 1, 64, 64], content features [K, out_dim])``."""
        heat = self.heatmap(x)
        return heat, self.crop_features(heat, rois, height, width)


class CropBranch(nn.Module):
    """GAIC-style crop feature: RoIAlignAvg ``A×A`` ⊕ RoDAlignAvg ``A×A`` → ``A×A`` valid conv → ``hidden``, ReLU,
    flatten, linear ``hidden → out_dim`` (no bias).

    ``x`` ``[B, C, h, w]`` at stride ``1 / spatial_scale``, ``rois`` ``[K, 5]`` → ``[K, out_dim]``.
    """

    def __init__(
        self, in_dim: int = 32, align: int = 9, hidden: int = 512, out_dim: int = 256, spatial_scale: float = 1 / 16
    ) -> None:
        super().__init__()
        self.align = align
        self.spatial_scale = spatial_scale
        self.head = nn.Sequential(
            nn.Conv2d(2 * in_dim, hidden, kernel_size=align),
            nn.ReLU(inplace=True),
            nn.Flatten(1),
            nn.Linear(hidden, out_dim, bias=False),
        )

    def aligned(self, x: Tensor, rois: Tensor) -> Tensor:
        """``[K, 2C, A, A]`` = RoIAlignAvg ⊕ RoDAlignAvg of every RoI."""
        a, s = self.align, self.spatial_scale
        return torch.cat([roi_align_avg(x, rois, a, s), rod_align_avg(x, rois, a, s)], dim=1)

    def forward(self, x: Tensor, rois: Tensor) -> Tensor:
        return self.head(self.aligned(x, rois))
