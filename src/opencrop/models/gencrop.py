"""GenCrop: Learning Subject-Aware Cropping by Outpainting Professional Photos (Hong et al., AAAI 2024,
arXiv 2312.12080).

Specification: ``docs/systems.md`` §7 (architecture §7.3, samples §7.2, evaluation §7.4); ``docs/gencrop.md``.

* Input: the image **letterboxed** to ``size × size`` (256): long side → ``size``, the other side rounded, the
  picture centred and zero-padded after ImageNet normalisation (:class:`Letterbox`); the picture's rectangle is
  the *valid* region. Optional 4th channel: the subject mask (``use_subject=True``).
* Backbone taps f3 / f4 / f5 (strides 8 / 16 / 32) → :class:`~opencrop.nn.HCICFusion` (per-scale 1×1 → 256, sum,
  1×1 → 32, ReLU) at stride 16: a 16×16 map at 256 px.
* Crop-regression transformer: the 256 cells are tokens (d = 32) with a sinusoidal positional encoding (dropout
  0.1), a 2-layer ``nn.TransformerEncoder`` (8 heads, FF 2048), a Linear → 4 offsets per cell, added to the cell
  centre ``((8 + 16·col) / 256, (8 + 16·row) / 256)``: one **normalised xyxy** proposal per cell.
* Scorer: torchvision-style RoIAlign 5×5 ⊕ GAIC RoDAlignAvg 5×5 on the 32-channel map (64 ch) → conv 5×5 → 128,
  ReLU, Linear 128 → 128, ReLU, Linear → 1 (proposal boxes detached and clamped to [0, 1]).
* Subject gating: ``m`` = indicator of the cells the subject box covers, normalised to sum 1; weights =
  ``softmax(score · m)`` over all cells; final crop = weighted average of the proposals.
* Loss: ``L1(final, gt) + 0.1 · L1(proposals, gt) + 10 · subject-boundary hinge`` (:func:`subject_boundary_loss`),
  all in normalised input coordinates.

Differences from ``train_gencrop.py`` (read, not copied): the original adds the *row* centre to x and the *column*
centre to y (its anchor grid is transposed); here each cell's anchor is its own centre. The cell mask is built with
tensor ops instead of a Python loop over the batch. Backbones come from :mod:`opencrop.nn` (``resnet50`` default,
``mobilenet_v2``, ``vgg16``), not timm; a 4-channel input copies the ImageNet RGB filters and starts the mask
filter at zero.

CropModel contract (:mod:`opencrop.models.base`): ``prepare`` picks the subject (:func:`pick_subject`), runs the
whole network once and keeps the proposals, their weights and the feature map; ``propose`` returns the weighted
crop first (score 1) followed by the proposals (score = their gating weight), each fitted to ``request.ratio``
with :func:`fit_ratio` when a ratio is asked for; with ``request.boxes`` it scores exactly those boxes with the
RoI ⊕ RoD scorer (the raw logits). Boxes in and out are xyxy analysis pixels.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.cues.types import Cues
from opencrop.models.base import Request, pixels_of
from opencrop.models.learned import LearnedCropModel, build_with_weights
from opencrop.models.preprocess import IMAGENET_MEAN, IMAGENET_STD
from opencrop.models.registry import register_model

__all__ = [
    "GenCrop",
    "GenCropPrepared",
    "Letterbox",
    "fit_ratio",
    "gencrop",
    "pick_subject",
    "subject_boundary_loss",
]

_BACKBONES = ("resnet50", "mobilenet_v2", "vgg16")
#: loss weights of the paper / ``train_gencrop.py``
PROPOSAL_WEIGHT, SBL_WEIGHT, SBL_MARGIN, SBL_TOL = 0.1, 10.0, 0.025, 0.01


# ---------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Letterbox:
    """GenCrop's input transform: long side → ``size``, centred zero padding (after normalisation) to a square.

    Geometry of a ``w × h`` image (:meth:`geometry`): ``s = size / max(w, h)`` (``size / h`` when ``w == h``), the
    resized picture is ``round(s·w) × round(s·h)`` placed at ``(pad_x, pad_y) = ((size − new_w) // 2,
    (size − new_h) // 2)``. A point ``p`` of the image maps to ``s · p + pad`` in input pixels.
    """

    size: int = 256
    pixel_scale: float = 255.0
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def geometry(self, width: int, height: int) -> tuple[float, int, int, int, int]:
        """``(scale, pad_x, pad_y, new_w, new_h)`` for a ``width × height`` image."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if width > height:
            s = self.size / width
            nw, nh = self.size, max(1, round(s * height))
        else:
            s = self.size / height
            nw, nh = max(1, round(s * width)), self.size
        return s, (self.size - nw) // 2, (self.size - nh) // 2, nw, nh

    def to_input(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """xyxy image pixels ``[N, 4]`` → xyxy input pixels."""
        s, px, py, _, _ = self.geometry(width, height)
        return np.asarray(boxes, np.float64).reshape(-1, 4) * s + np.array([px, py, px, py])

    def from_input(self, boxes: np.ndarray, width: int, height: int, clamp: bool = True) -> np.ndarray:
        """xyxy input pixels ``[N, 4]`` → xyxy image pixels, clamped to the image (the valid region) by default."""
        s, px, py, _, _ = self.geometry(width, height)
        b = (np.asarray(boxes, np.float64).reshape(-1, 4) - np.array([px, py, px, py])) / s
        if clamp:
            b = np.clip(b, 0, np.array([width, height, width, height], np.float64))
        return b

    def valid(self, width: int, height: int) -> np.ndarray:
        """``[4]`` xyxy input pixels of the picture inside the padded square."""
        _, px, py, nw, nh = self.geometry(width, height)
        return np.array([px, py, px + nw, py + nh], np.float64)

    def resize(self, x: Tensor) -> Tensor:
        """``Tensor[C, h, w]`` float → resized to the picture size of :meth:`geometry` (bilinear, antialiased)."""
        _, _, _, nw, nh = self.geometry(int(x.shape[2]), int(x.shape[1]))
        if (nh, nw) == tuple(x.shape[1:]):
            return x
        return F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]

    def normalize(self, x: Tensor) -> Tensor:
        """``Tensor[3, h, w]`` in 0–255 → ``/ pixel_scale`` and ImageNet-normalised."""
        mean = torch.tensor(self.mean, dtype=x.dtype).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(3, 1, 1)
        return (x / self.pixel_scale - mean) / std

    def pad(self, x: Tensor) -> Tensor:
        """``Tensor[C, new_h, new_w]`` → ``Tensor[C, size, size]``, centred, zeros around."""
        nh, nw = int(x.shape[1]), int(x.shape[2])
        px, py = (self.size - nw) // 2, (self.size - nh) // 2
        return F.pad(x, (px, self.size - px - nw, py, self.size - py - nh))

    def __call__(self, image: np.ndarray) -> tuple[Tensor, tuple[float, float]]:
        """``[H, W, 3]`` uint8 RGB → ``(Tensor[3, size, size], (s, s))`` (boxes also shift by the padding)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] RGB image, got shape {tuple(image.shape)}")
        x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)
        s = self.geometry(int(image.shape[1]), int(image.shape[0]))[0]
        return self.pad(self.normalize(self.resize(x))), (s, s)

    def mask(self, mask: np.ndarray) -> Tensor:
        """``[H, W]`` mask (bool or float) → ``Tensor[1, size, size]`` float in {0, 1} (resized, > 0.5, padded)."""
        m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
        return self.pad((self.resize(m) > 0.5).float())


# ---------------------------------------------------------------------------------------------- network parts
class PositionalEncoding(nn.Module):
    """Sinusoidal positional encoding (Vaswani et al.) added to ``Tensor[B, L, D]`` tokens, then dropout."""

    def __init__(self, dim: int, max_len: int, dropout: float = 0.1) -> None:
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


def _adapt_first_conv(backbone: nn.Module, in_channels: int) -> None:
    """Replace the backbone's first 3-channel conv by an ``in_channels`` one: RGB filters copied, extra zero."""
    for parent in backbone.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                new = nn.Conv2d(in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                child.dilation, child.groups, child.bias is not None)
                with torch.no_grad():
                    new.weight.zero_()
                    new.weight[:, :3] = child.weight
                    if child.bias is not None:
                        new.bias.copy_(child.bias)
                setattr(parent, name, new)
                return
    raise ValueError("gencrop: the backbone has no 3-channel input conv to extend")


def _tv_axis_matrix(start: Tensor, length: Tensor, bins: int, size: int) -> Tensor:
    """``Tensor[K, bins, size]``: torchvision RoIAlign's per-axis averaging weights (adaptive ``ceil(len / bins)``
    samples per bin, samples beyond ``[-1, size]`` dropped, positions clamped to ``[0, size - 1]``, bilinear as a
    hat function ``max(0, 1 − |pos − i|)``), already divided by the samples per bin."""
    K, dt, dev = start.shape[0], start.dtype, start.device
    g = torch.ceil(length / bins).clamp(min=1)  # [K]
    if torch.compiler.is_exporting():  # a static bound (the count is data-dependent): rois up to twice the map;
        gmax = max(math.ceil(2 * size / bins), 1)  # the extra samples have weight 0, so the result is the same
    else:
        gmax = max(int(g.max()), 1) if K else 1
    binsz = (length / bins).view(K, 1, 1)
    p = torch.arange(bins, device=dev, dtype=dt).view(1, bins, 1)
    i = torch.arange(gmax, device=dev, dtype=dt).view(1, 1, gmax)
    pos = start.view(K, 1, 1) + p * binsz + (i + 0.5) * binsz / g.view(K, 1, 1)  # [K, bins, G]
    use = ((i < g.view(K, 1, 1)) & (pos >= -1.0) & (pos <= size)).to(dt) / g.view(K, 1, 1)
    grid = torch.arange(size, device=dev, dtype=dt)
    hat = (1 - (pos.clamp(0, size - 1)[..., None] - grid).abs()).clamp(min=0)  # [K, bins, G, size]
    return (hat * use[..., None]).sum(dim=2)


def roi_align_separable(features: Tensor, rois: Tensor, output_size: int, spatial_scale: float) -> Tensor:
    """:func:`opencrop.ops.roi_align_torchvision` (``sampling_ratio=-1, aligned=False``) computed as
    ``A_y · F · A_xᵀ`` per roi: torchvision's bilinear sampling and bin averaging are separable, so two small
    weight matrices replace the gather of every sample (≈ 10× faster for GenCrop's 256 proposals per image; the
    test checks both agree). ``features`` ``Tensor[B, C, H, W]``, ``rois`` ``Tensor[K, 5]`` → ``Tensor[K, C, P, P]``.
    """
    C, H, W = features.shape[1:]
    r = rois.detach().to(features.dtype)
    bidx = r[:, 0].long()
    x1, y1 = r[:, 1] * spatial_scale, r[:, 2] * spatial_scale
    rw = (r[:, 3] * spatial_scale - x1).clamp(min=1.0)
    rh = (r[:, 4] * spatial_scale - y1).clamp(min=1.0)
    ay = _tv_axis_matrix(y1, rh, output_size, H)  # [K, P, H]
    ax = _tv_axis_matrix(x1, rw, output_size, W)  # [K, P, W]
    if features.shape[0] == 1:  # one image (inference, the ONNX graph): no loop, no data-dependent indexing
        return torch.einsum("kph,kchq->kcpq", ay, torch.einsum("chw,kqw->kchq", features[0], ax))
    out = features.new_zeros((r.shape[0], C, output_size, output_size))
    for b in torch.unique(bidx).tolist():  # per image of the batch, never per box
        sel = (bidx == b).nonzero().flatten()
        t = torch.einsum("chw,kqw->kchq", features[b], ax[sel])
        out[sel] = torch.einsum("kph,kchq->kcpq", ay[sel], t)
    return out


def subject_boundary_loss(pred: Tensor, subject: Tensor, crop: Tensor, valid: Tensor, margin: float = SBL_MARGIN,
                          tol: float = SBL_TOL) -> Tensor:
    """Subject-boundary hinge (systems.md §7.3): per edge ``max(0, margin − |pred − subject|)``, zeroed where the
    GT crop edge or the valid-region edge lies within ``tol`` of the subject edge; mean over all edges.

    All arguments are ``Tensor[B, 4]`` normalised xyxy (``subject`` = the subject *mask*'s bounding box).
    """
    loss = (margin - (pred - subject).abs()).clamp(min=0)
    off = ((crop - subject).abs() <= tol) | ((valid - subject).abs() <= tol)
    return torch.where(off, torch.zeros_like(loss), loss).mean()


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class GenCropPrepared:
    """What :meth:`GenCrop.prepare` computed for one image (analysis pixels unless said otherwise).

    Attributes:
        features: ``Tensor[1, 32, 16, 16]`` fused map (for scoring given boxes).
        final: ``[4]`` xyxy weighted crop (clamped to the image).
        proposals: ``[P, 4]`` xyxy proposals (clamped), ``weights`` ``[P]`` their gating weights (sum 1).
        subject: ``[4]`` xyxy subject box the gating used; ``subject_source`` where it came from.
        width, height: analysis image size.
    """

    features: Tensor
    final: np.ndarray
    proposals: np.ndarray
    weights: np.ndarray
    subject: np.ndarray
    subject_source: str
    width: int
    height: int


class GenCrop(LearnedCropModel):
    """GenCrop subject-aware crop regressor (module docstring).

    Args:
        backbone: ``"resnet50"`` (paper), ``"mobilenet_v2"`` or ``"vgg16"`` (:func:`opencrop.nn.create_backbone`).
        size: letterbox side (256; must be a multiple of 32).
        dim: fused-map channels / token width (32).
        mid: width of the per-scale projections (256).
        layers, heads, ff: transformer depth, heads and feed-forward width (2, 8, 2048).
        use_subject: 4th input channel = the subject mask.
        boundary_loss: add the subject-boundary hinge (``10 ·``) to the loss.
        pretrained_backbone, backbone_weights: ImageNet weights of the backbone (local files only).
    """

    #: it regresses its own crops (the evaluation runner and contract tests do not treat it as a candidate scorer)
    proposes_boxes = True

    name = "gencrop"
    #: cues the pipeline runs for the subject (people first, else the most salient object) and record fields
    needs: frozenset[str] = frozenset({"people", "objects", "saliency", "subject_box", "human_box"})
    #: a regressor: its box must not be "refined" by re-scoring neighbours with the scorer (the pipeline does so
    #: for every CandidateScorer today; see docs/gencrop.md)
    refine: bool = False

    def __init__(
        self,
        backbone: str = "resnet50",
        size: int = 256,
        dim: int = 32,
        mid: int = 256,
        layers: int = 2,
        heads: int = 8,
        ff: int = 2048,
        use_subject: bool = False,
        boundary_loss: bool = True,
        pretrained_backbone: bool = False,
        backbone_weights: str | None = None,
    ) -> None:
        if backbone not in _BACKBONES:
            raise ValueError(f"gencrop: backbone must be one of {_BACKBONES}, got {backbone!r}")
        if size % 32 or size < 64:
            raise ValueError(f"gencrop: size must be a multiple of 32 and >= 64, got {size}")
        if dim % heads:
            raise ValueError(f"gencrop: dim ({dim}) must be divisible by heads ({heads})")
        config = {"backbone": backbone, "size": int(size), "dim": int(dim), "mid": int(mid), "layers": int(layers),
                  "heads": int(heads), "ff": int(ff), "use_subject": bool(use_subject),
                  "boundary_loss": bool(boundary_loss)}
        super().__init__(Letterbox(int(size)), config)  # type: ignore[arg-type]
        from opencrop.nn import HCICFusion, create_backbone

        self.needs = type(self).needs | ({"person_mask", "subject_mask"} if use_subject else set())
        self.backbone = create_backbone(backbone, pretrained=bool(pretrained_backbone), weights=backbone_weights,
                                        with_classifier=False)
        if use_subject:
            _adapt_first_conv(self.backbone, 4)
        chans, strides = self.backbone.feature_info.channels(), self.backbone.feature_info.reduction()
        if strides[1] != 16:
            raise ValueError(f"gencrop: backbone {backbone} f4 has stride {strides[1]}, expected 16")
        self.size, self.stride, self.in_channels = int(size), 16, 4 if use_subject else 3
        self.grid = self.size // self.stride
        self.neck = HCICFusion(chans, reddim=dim, mid=mid, relu=True)
        self.pe = PositionalEncoding(dim, self.grid * self.grid, dropout=0.1)
        layer = nn.TransformerEncoderLayer(d_model=dim, nhead=heads, dim_feedforward=ff, dropout=0.1,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.offsets = nn.Linear(dim, 4)
        self.head = nn.Sequential(nn.Conv2d(2 * dim, 128, kernel_size=5), nn.ReLU(inplace=True), nn.Flatten(1),
                                  nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Linear(128, 1))
        g = torch.arange(self.grid, dtype=torch.float32)
        cy, cx = torch.meshgrid((8 + 16 * g) / self.size, (8 + 16 * g) / self.size, indexing="ij")
        # [P, 4] normalised xyxy anchor point of each cell (row-major, as the tokens)
        self.register_buffer("anchors", torch.stack([cx, cy, cx, cy], -1).reshape(-1, 4), persistent=False)
        self.use_subject, self.boundary_loss = bool(use_subject), bool(boundary_loss)

    # ------------------------------------------------------------------ network
    def forward_features(self, images: Tensor) -> Tensor:
        """``Tensor[B, C, S, S]`` (C = 3, or 4 with the subject mask) → fused map ``Tensor[B, dim, S/16, S/16]``."""
        if images.shape[1] != self.in_channels:
            raise ValueError(f"gencrop: expected {self.in_channels} input channels, got {images.shape[1]}")
        return self.neck(*self.backbone(images))

    def forward_proposals(self, features: Tensor) -> Tensor:
        """Fused map → ``Tensor[B, P, 4]`` normalised xyxy proposals (P = cells, row-major)."""
        H, W = features.shape[2:]
        tokens = self.encoder(self.pe(features.flatten(2).transpose(1, 2)))
        return self.offsets(tokens) + self.anchors[: H * W].to(tokens.dtype)

    def forward_scores(self, features: Tensor, rois: Tensor, **extra: Tensor) -> Tensor:
        """Score ``rois`` ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` input pixels → ``Tensor[K]`` logits."""
        from opencrop.ops import rod_align_avg

        f = features.float()
        rois = rois.to(f.dtype)
        x = torch.cat([roi_align_separable(f, rois, 5, f.shape[-1] / self.size),
                       rod_align_avg(f, rois, 5, 1.0 / self.stride)], dim=1)
        return self.head(x).reshape(-1)

    def cell_mask(self, subject: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """``Tensor[B, P]``: the cells covered by ``subject`` ``Tensor[B, 4]`` (xyxy input pixels; a row with a
        negative coordinate = no subject → all zeros), normalised to sum 1 (+1e-4) as in the original."""
        H, W = grid_hw
        s = subject.float()
        c1 = torch.floor(s[:, 0] / self.stride)
        r1 = torch.floor(s[:, 1] / self.stride)
        c2 = torch.ceil(s[:, 2] / self.stride)
        r2 = torch.ceil(s[:, 3] / self.stride)
        rows = torch.arange(H, device=s.device, dtype=s.dtype).view(1, H, 1)
        cols = torch.arange(W, device=s.device, dtype=s.dtype).view(1, 1, W)
        m = ((rows >= r1.view(-1, 1, 1)) & (rows < r2.view(-1, 1, 1)) & (cols >= c1.view(-1, 1, 1))
             & (cols < c2.view(-1, 1, 1))).float()
        m = m * (s >= 0).all(dim=1).float().view(-1, 1, 1)
        m = m.reshape(-1, H * W)
        return m / (m.sum(dim=1, keepdim=True) + 1e-4)

    def forward_crop(self, images: Tensor, subject: Tensor) -> dict[str, Tensor]:
        """Full forward.

        Args:
            images: ``Tensor[B, C, S, S]`` letterboxed input.
            subject: ``Tensor[B, 4]`` xyxy input pixels of the subject box (−1 = none).

        Returns:
            ``{"final": [B, 4], "proposals": [B, P, 4], "weights": [B, P], "scores": [B, P], "features"}``, boxes
            normalised xyxy of the input square.
        """
        f = self.forward_features(images)
        B, _, H, W = f.shape
        props = self.forward_proposals(f)
        xyxy = props.detach().float().clamp(0, 1) * self.size
        idx = torch.arange(B, device=f.device, dtype=xyxy.dtype).view(B, 1, 1).expand(B, H * W, 1)
        scores = self.forward_scores(f, torch.cat([idx, xyxy], -1).reshape(-1, 5)).reshape(B, H * W)
        w = torch.softmax(scores * self.cell_mask(subject, (H, W)), dim=1)
        final = (props.float() * w.unsqueeze(-1)).sum(dim=1)
        return {"final": final, "proposals": props, "weights": w, "scores": scores, "features": f}

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Loss on a GenCrop batch (:mod:`opencrop.train.gencrop_data`): ``image`` ``[B, C, S, S]``, ``crop``,
        ``valid``, ``subject_box``, ``subject_mask_box`` ``[B, 4]`` xyxy input pixels."""
        out = self.forward_crop(batch["image"], batch["subject_box"])
        n = float(self.size)
        gt = batch["crop"].float() / n
        l1 = F.l1_loss(out["final"], gt)
        lp = F.l1_loss(out["proposals"].float(), gt[:, None, :].expand_as(out["proposals"]))
        loss = l1 + PROPOSAL_WEIGHT * lp
        parts = {"l1": l1.detach(), "proposal_l1": lp.detach()}
        if self.boundary_loss:
            sbl = subject_boundary_loss(out["final"], batch["subject_mask_box"].float() / n, gt,
                                        batch["valid"].float() / n)
            loss = loss + SBL_WEIGHT * sbl
            parts["sbl"] = sbl.detach()
        return {"loss": loss, **parts}

    @torch.no_grad()
    def predict_batch(self, batch: dict[str, Any]) -> Tensor:
        """Weighted crops ``Tensor[B, 4]`` xyxy input pixels, clamped to each sample's valid region."""
        out = self.forward_crop(batch["image"], batch["subject_box"])
        v = batch["valid"].float()
        b = out["final"] * self.size
        return torch.maximum(torch.minimum(b, v[:, [2, 3, 2, 3]]), v[:, [0, 1, 0, 1]])

    # ------------------------------------------------------------------ training hook (opencrop.train.trainer)
    def training_datasets(self, train: list, val: list, test: list | None, data_cfg: Any, seed: int) -> tuple:
        """GenCrop trains on its own samples (context windows of outpainted canvases), not on CropDataset."""
        from opencrop.train.gencrop_data import make_datasets

        return make_datasets(self, train, val, test, data_cfg, seed)

    def evaluate_dataset(self, dataset: Any, device: torch.device | str = "cpu", amp: bool = False) -> dict:
        """Validation metrics (IoU, disp, loss) of fixed context-window samples → ``{"iou", "bde", ...}``."""
        from opencrop.train.gencrop_data import evaluate_samples

        return evaluate_samples(self, dataset, device, amp)

    # ------------------------------------------------------------------ CropModel protocol
    def prepare(self, frame: Any, cues: Cues | None = None) -> GenCropPrepared:
        """Letterbox ``frame``, pick the subject from ``cues`` (:func:`pick_subject`), run the network once."""
        try:
            image = pixels_of(frame)
        except ValueError as e:
            raise ValueError(f"{self.name}.prepare: {e}") from None
        h, w = int(image.shape[0]), int(image.shape[1])
        cues = cues if cues is not None else Cues(w, h)
        subject, source = pick_subject(cues, w, h)
        lb: Letterbox = self.preprocess  # type: ignore[assignment]
        x, _ = lb(image)
        if self.use_subject:
            x = torch.cat([x, lb.mask(_subject_mask(cues, subject, w, h))], dim=0)
        subj_in = torch.from_numpy(lb.to_input(subject, w, h).astype(np.float32))
        was = self.training
        self.eval()
        try:
            with torch.inference_mode():
                out = self.forward_crop(x[None].to(self.device), subj_in.to(self.device))
        finally:
            self.train(was)
        final = lb.from_input(out["final"].float().cpu().numpy() * self.size, w, h)[0]
        props = lb.from_input(out["proposals"][0].float().cpu().numpy() * self.size, w, h)
        return GenCropPrepared(out["features"], final, props, out["weights"][0].float().cpu().numpy(),
                               np.asarray(subject, np.float64), source, w, h)

    def propose(self, prepared: GenCropPrepared, request: Request) -> tuple[np.ndarray, np.ndarray]:
        """See the module docstring: ``(boxes [M, 4] xyxy analysis pixels, scores [M])``."""
        w, h = prepared.width, prepared.height
        if request.boxes is not None:
            b = np.asarray(request.boxes, np.float64).reshape(-1, 4)
            return b, self.score(prepared, b)
        order = np.argsort(-prepared.weights, kind="stable")
        boxes = np.concatenate([prepared.final[None], prepared.proposals[order]])
        scores = np.concatenate([[1.0], prepared.weights[order]])
        if request.ratio is not None:
            boxes = fit_ratio(boxes, float(request.ratio), w, h, prepared.subject)
        return boxes, scores.astype(np.float64)

    def score(self, prepared: GenCropPrepared, boxes: np.ndarray) -> np.ndarray:
        """RoI ⊕ RoD scorer logits ``[N]`` of ``boxes`` ``[N, 4]`` xyxy analysis pixels (one head call)."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(b) == 0:
            return np.zeros(0)
        lb: Letterbox = self.preprocess  # type: ignore[assignment]
        rois = np.concatenate([np.zeros((len(b), 1)), lb.to_input(b, prepared.width, prepared.height)], 1)
        was = self.training
        self.eval()
        try:
            with torch.inference_mode():
                s = self.forward_scores(prepared.features, torch.from_numpy(rois.astype(np.float32)).to(self.device))
        finally:
            self.train(was)
        return s.float().cpu().numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------- subject, ratio
def _valid_box(b: Any) -> np.ndarray | None:
    if b is None:
        return None
    a = np.asarray(b, np.float64).reshape(-1)
    if a.shape[0] != 4 or not np.all(np.isfinite(a)) or np.any(a < 0) or a[2] <= a[0] or a[3] <= a[1]:
        return None
    return a


def pick_subject(cues: Cues, width: int, height: int) -> tuple[np.ndarray, str]:
    """The subject GenCrop crops for → ``(box [4] xyxy analysis pixels, source)``, first found of:

    1. ``cues.subject_box`` (a dataset's subject), then ``cues.subjects`` (user ``--subject`` boxes: their union);
    2. ``cues.human_box`` (HCIC's human box on FLMS / FCDB);
    3. the most prominent detected person (largest ``area × score``);
    4. the most salient detected object (largest saliency mass inside the box × score);
    5. the salient region (bounding box of saliency ≥ half its maximum);
    6. the whole image (noted in ``cues.notes``: nothing to crop for).
    """
    b = _valid_box(cues.subject_box)
    if b is not None:
        return b, "subject_box"
    subj = np.asarray(cues.subjects, np.float64).reshape(-1, 4)
    if len(subj):
        return np.concatenate([subj[:, :2].min(0), subj[:, 2:].max(0)]), "user subject"
    b = _valid_box(cues.human_box)
    if b is not None:
        return b, "human_box"
    p = cues.people
    if len(p):
        pb = np.asarray(p.boxes, np.float64)
        area = np.maximum(pb[:, 2] - pb[:, 0], 0) * np.maximum(pb[:, 3] - pb[:, 1], 0)
        return pb[int(np.argmax(area * np.asarray(p.scores, np.float64)))], "person"
    sal = cues.saliency
    if len(cues.objects):
        ob = np.asarray(cues.objects.boxes, np.float64)
        mass = _box_mass(sal, ob, width, height) if sal is not None else (ob[:, 2] - ob[:, 0]) * (ob[:, 3] - ob[:, 1])
        return ob[int(np.argmax(mass * np.asarray(cues.objects.scores, np.float64)))], "salient object"
    if sal is not None and float(np.max(sal)) > 0:
        ys, xs = np.nonzero(sal >= 0.5 * float(np.max(sal)))
        sh, sw = sal.shape
        box = np.array([xs.min() / sw * width, ys.min() / sh * height, (xs.max() + 1) / sw * width,
                        (ys.max() + 1) / sh * height])
        return box, "salient region"
    cues.notes.append("gencrop: no subject given or detected; cropping for the whole image")
    return np.array([0.0, 0.0, float(width), float(height)]), "whole image"


def _box_mass(sal: np.ndarray, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Sum of the saliency map inside each xyxy analysis-pixel box (integral image at the map's resolution)."""
    sh, sw = sal.shape
    ii = np.pad(np.cumsum(np.cumsum(np.asarray(sal, np.float64), 0), 1), ((1, 0), (1, 0)))
    x1 = np.clip(np.floor(boxes[:, 0] / width * sw), 0, sw).astype(int)
    x2 = np.clip(np.ceil(boxes[:, 2] / width * sw), 0, sw).astype(int)
    y1 = np.clip(np.floor(boxes[:, 1] / height * sh), 0, sh).astype(int)
    y2 = np.clip(np.ceil(boxes[:, 3] / height * sh), 0, sh).astype(int)
    return ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]


def _subject_mask(cues: Cues, subject: np.ndarray, width: int, height: int) -> np.ndarray:
    """``[H, W]`` bool subject mask for the 4th channel: the given one, else the person mask inside the subject
    box, else the filled box."""
    from PIL import Image

    def fit(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, np.float32)
        if m.shape != (height, width):
            m = np.asarray(Image.fromarray(m).resize((width, height), Image.BILINEAR))
        return m > 0.5

    x1, y1 = int(max(0, np.floor(subject[0]))), int(max(0, np.floor(subject[1])))
    x2, y2 = int(min(width, np.ceil(subject[2]))), int(min(height, np.ceil(subject[3])))
    box = np.zeros((height, width), bool)
    box[y1:y2, x1:x2] = True
    if cues.subject_mask is not None:
        return fit(cues.subject_mask)
    if cues.person_mask is not None:
        m = fit(cues.person_mask) & box
        if m.any():
            return m
    return box


def fit_ratio(boxes: np.ndarray, ratio: float, width: int, height: int, subject: np.ndarray | None = None
              ) -> np.ndarray:
    """Boxes ``[N, 4]`` xyxy → boxes of aspect exactly ``ratio`` (w / h) inside the ``width × height`` image.

    Each box keeps its centre and its area (``w' = √(A·r)``, ``h' = √(A/r)``); it is then grown, still at
    ``ratio``, until it holds the ``subject`` box when that fits the image at this ratio; shrunk to fit the
    image; and shifted (not squeezed) back inside it.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    r = float(ratio)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    area = np.maximum(b[:, 2] - b[:, 0], 1e-6) * np.maximum(b[:, 3] - b[:, 1], 1e-6)
    w = np.sqrt(area * r)
    wmax = min(float(width), float(height) * r)
    if subject is not None:
        s = np.asarray(subject, np.float64).reshape(4)
        # half-extents needed around the current centre to cover the subject, as widths at ratio r
        need_w = 2 * np.maximum(np.maximum(cx - s[0], s[2] - cx), 0)
        need_h = 2 * np.maximum(np.maximum(cy - s[1], s[3] - cy), 0)
        grown = np.maximum(w, np.maximum(need_w, need_h * r))
        w = np.where(grown <= wmax, grown, w)
    w = np.minimum(w, wmax)
    h = w / r
    x1 = np.clip(cx - w / 2, 0, width - w)
    y1 = np.clip(cy - h / 2, 0, height - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


# ---------------------------------------------------------------------------------------------- registry
@register_model("gencrop")
def gencrop(weights: str | os.PathLike[str] | None = None, **cfg: Any) -> GenCrop:
    """GenCrop regressor. ``weights``: an opencrop model file (its saved config is the default architecture)."""
    return build_with_weights(GenCrop, weights, **cfg)
