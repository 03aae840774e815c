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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.cues.types import Cues
from opencrop.models.base import Request, pixels_of
from opencrop.models.gencrop_post import Letterbox, fit_ratio, pick_subject, propose_crops, subject_mask
from opencrop.models.learned import LearnedCropModel, build_with_weights
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
    export_kind = "regressor"

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
            x = torch.cat([x, lb.mask(subject_mask(cues, subject, w, h))], dim=0)
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
        return propose_crops(prepared.final, prepared.proposals, prepared.weights, prepared.subject, w, h,
                             request.ratio)

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


# ---------------------------------------------------------------------------------------------- registry
@register_model("gencrop")
def gencrop(weights: str | os.PathLike[str] | None = None, **cfg: Any) -> GenCrop:
    """GenCrop regressor. ``weights``: an opencrop model file (its saved config is the default architecture)."""
    return build_with_weights(GenCrop, weights, **cfg)
