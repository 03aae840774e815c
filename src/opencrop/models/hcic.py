"""HCIC: Human-centric Image Cropping with Partition-aware and Content-preserving Features
(Zhang, Niu, Zhang, ECCV'22, arXiv 2207.10269). Registered as ``hcic``.

Re-implemented from ``docs/systems.md`` §3 (and a reading of the public code, bcmi/Human-Centric-Image-Cropping,
to settle details); no code is copied.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from opencrop.cues.types import Cues
from opencrop.models.hcic_modules import (
    ContentPreserveModule,
    CropBranch,
    PartitionAwareModule,
    coord_dtype,
    partition_masks,
)
from opencrop.models.learned import LearnedCropModel, build_with_weights
from opencrop.models.preprocess import Preprocess
from opencrop.models.registry import register_model
from opencrop.nn import HCICFusion, create_backbone

__all__ = ["HCIC", "best_person_box", "build_backbone", "hcic", "hcic_loss", "preprocess_for"]

_INPUT_MODES = ("gaicd", "fixed256")


def build_backbone(name: str, pretrained: bool | str = False) -> tuple[nn.Module, list[int]]:
    """A classifier-free :mod:`opencrop.nn` backbone with stride-8/16/32 taps, and the channels of each tap.

    ``pretrained``: ``False``, ``True`` (the default ImageNet file, resolved locally) or the path of a state dict.
    """
    weights = pretrained if isinstance(pretrained, str) else None
    bb = create_backbone(name, pretrained=bool(pretrained), weights=weights, with_classifier=False)
    return bb, [int(c) for c in bb.feature_info.channels()]


def preprocess_for(input_mode: str, input_size: int = 256) -> Preprocess:
    """HCIC / GAFIC input: ``"gaicd"`` = aspect kept, short side 256, multiples of 32; ``"fixed256"`` = 256×256.

    Pixels / 255 and ImageNet mean/std in both (systems.md §3.2). ``input_size`` replaces the 256 of either mode
    (the published models use 256; smaller sizes are for quick experiments and tests; a multiple of 32).
    """
    if input_mode not in _INPUT_MODES:
        raise ValueError(f"input_mode must be one of {_INPUT_MODES}, got {input_mode!r}")
    if input_size < 32 or input_size % 32:
        raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
    return replace(Preprocess.hcic(fixed=input_mode == "fixed256"), size=int(input_size))


def best_person_box(cues: Cues | None, sx: float, sy: float) -> Tensor:
    """``[1, 4]`` xyxy input-pixel box of the main person (scaled by ``sx, sy`` from analysis pixels): the given
    ``cues.human_box`` (a dataset's human box in evaluation) when set, else the highest-scoring person in
    ``cues.people``; ``(-1, -1, -1, -1)`` when there is none (the model's "no human" path)."""
    if cues is not None and cues.human_box is not None:
        b = np.asarray(cues.human_box, dtype=np.float64).reshape(4)
        if not np.all(b >= 0):
            return torch.full((1, 4), -1.0)
    else:
        people = cues.people if cues is not None else None
        if people is None or len(people) == 0:
            return torch.full((1, 4), -1.0)
        i = int(np.argmax(np.asarray(people.scores, dtype=np.float64))) if len(people.scores) else 0
        b = np.asarray(people.boxes[i], dtype=np.float64).reshape(4)
    w, h = float(cues.width), float(cues.height)
    b = np.clip(b, 0, [w, h, w, h]) * np.array([sx, sy, sx, sy])
    if b[2] <= b[0] or b[3] <= b[1]:
        return torch.full((1, 4), -1.0)
    return torch.as_tensor(b, dtype=torch.float32).reshape(1, 4)


def hcic_loss(
    pred: Tensor,
    batch: dict[str, Any],
    heat: Tensor | None,
    rank_as_coded: bool = False,
    rank_weight: float = 1.0,
    heatmap_weight: float = 1.0,
) -> dict[str, Tensor]:
    """HCIC's training loss (systems.md §3.5), shared with GAFIC.

    ``SmoothL1(pred, raw MOS) + rank_weight · rank + heatmap_weight · L1(heat, pseudo heat map)``. The rank term
    (:func:`opencrop.train.losses.rank_loss`) is the clean variant unless ``rank_as_coded``:

    * clean: ``sign(Δgt)`` weighting, pairs within each image (``batch["counts"]``), per-image sums over ordered
      pairs / ``n(n−1)/2``, summed over the images;
    * ``rank_as_coded`` (HCIC's ``score_rank_loss`` as ``train_on_GAICD.py`` / ``train_on_CPC.py`` call it):
      ``sin(Δgt)`` weighting and **every ordered pair of the flattened batch**, images mixed, one sum over the
      ``K`` crops / ``K(K−1)/2``. With one image per step (GAICD) the pairing is the same as the clean one.

    ``heat`` ``[B, 1, 64, 64]`` (``None`` when the model has no heat-map head).

    Raises:
        ValueError: the model predicts a heat map, ``heatmap_weight > 0`` and the batch has no ``"heatmap"``.
    """
    from opencrop.nn.losses import heatmap_l1, mos_smooth_l1, rank_loss

    mos = batch["mos"].to(pred.device)
    score = mos_smooth_l1(pred, mos, mean=0.0, std=1.0)
    rank = rank_loss(pred, mos, None if rank_as_coded else batch.get("counts"), as_coded=rank_as_coded)
    out = {"score": score.detach(), "rank": rank.detach()}
    loss = score + rank_weight * rank
    if heat is not None and heatmap_weight > 0:
        if "heatmap" not in batch:
            raise ValueError(
                "this model learns a content heat map but the batch has none: generate pseudo heat maps with "
                "`opencrop data heatmaps` and set the recipe's heatmap_dir (or set heatmap_weight: 0)"
            )
        hm = heatmap_l1(heat, batch["heatmap"].to(heat.device))
        out["heatmap"] = hm.detach()
        loss = loss + heatmap_weight * hm
    out["loss"] = loss
    return out


class HCIC(LearnedCropModel):
    """Human-centric crop scorer: GAIC-style RoI/RoD crop features refined by a partition-aware module around the
    main person and a content-preserving heat-map branch.

    Architecture (systems.md §3.1):

    * backbone taps at strides 8/16/32 (VGG16 conv4_3 / conv5_3 / pool5 by default); f3 and f5 resized
      bilinearly (align_corners) to f4's size, a 1×1 conv → 256 each, **summed**, 1×1 → ``reddim`` (32);
    * :class:`~opencrop.models.hcic_modules.PartitionAwareModule` (``use_pa``) with the 3×3 partition masks of the
      human box, variant ``partition`` ∈ {9, 0, 1, 2};
    * :class:`~opencrop.models.hcic_modules.ContentPreserveModule` (``use_cp``): relation encoder ``relation``
      ("gcn" | "conv") → 64×64 content heat map → per-crop feature of (heat map, crop mask) → 256;
    * crop branch RoIAlignAvg 9×9 ⊕ RoDAlignAvg 9×9 → 9×9 conv → 512, ReLU → linear 512 → 256 (no bias);
      concat with the CP feature → linear 512 → 1 score (256 → 1 without CP).

    Inputs: ``forward_scores(features, rois, human_box=None)`` with ``human_box`` ``[B, 4]`` xyxy input pixels
    (``-1`` rows = no human). :meth:`prepare` takes the human box given in ``cues.human_box`` (the dataset's box in
    evaluation, as HCIC's ``test.py`` does) or else from ``cues.people`` (the highest-scoring person; no person →
    the "no human" path), hence ``needs = {"people", "human_box"}``.

    Deviations from the released code:

    * **PA gating per image.** The original applies PA to the whole batch iff batch element 0 contains a human;
      here each image without a human bypasses the PA residual (its map is unchanged), independently of the batch.
    * The rank loss is the clean variant by default (``sign(Δgt)``, pairs within each image);
      ``rank_as_coded=True`` restores the code's ``sin(Δgt)`` over all pairs of the flattened batch (see
      :func:`hcic_loss`); the recipes ``configs/hcic_*.yaml`` set it.
    * Backbone ``"mobilenet_v2"`` is offered for CPU-sized training (the paper uses VGG16 only); the fusion then
      projects the MobileNetV2 tap widths (32/96/320) instead of 512.
    * The GCN cosine similarity is clamped against zero norms (the original would produce NaN).
    * The unused partition cross-entropy loss is not implemented (the partition means are still returned by
      :meth:`forward_all` for inspection).

    Args:
        backbone: ``"vgg16"`` (paper) or ``"mobilenet_v2"``.
        pretrained_backbone: ImageNet backbone weights (``False``, ``True`` = the packaged / cached file, or a path).
        reddim: width of the fused map (32).
        partition: PA variant 9 (3×3 partitions), 0 (mean of groups), 1 (human only), 2 (human / non-human).
        relation: CP relation encoder, ``"gcn"`` or ``"conv"``.
        use_pa, use_cp: enable the two modules (ablations).
        concat_with_human: PA concatenates the aligned human feature (HCIC default True).
        input_mode: ``"gaicd"`` (aspect kept, short side 256, multiples of 32) or ``"fixed256"`` (CPC/FCDB/FLMS).
        input_size: the 256 of ``input_mode`` (keep 256 for the published recipes).
        rank_as_coded: HCIC's rank loss as coded (``sin`` weighting, whole-batch pairs; :func:`hcic_loss`).
        rank_weight, heatmap_weight: loss weights (1.0 and 1.0 in HCIC).
        weights: an opencrop model file to load after building.
    """

    name = "hcic"
    needs = frozenset({"people", "human_box"})

    def __init__(
        self,
        backbone: str = "vgg16",
        pretrained_backbone: bool | str = False,
        reddim: int = 32,
        partition: int = 9,
        relation: str = "gcn",
        use_pa: bool = True,
        use_cp: bool = True,
        concat_with_human: bool = True,
        input_mode: str = "gaicd",
        input_size: int = 256,
        rank_as_coded: bool = False,
        rank_weight: float = 1.0,
        heatmap_weight: float = 1.0,
        weights: str | None = None,
    ) -> None:
        config = {
            "backbone": backbone, "reddim": reddim, "partition": partition, "relation": relation,
            "use_pa": use_pa, "use_cp": use_cp, "concat_with_human": concat_with_human, "input_mode": input_mode,
            "input_size": input_size,
            "rank_as_coded": rank_as_coded, "rank_weight": rank_weight, "heatmap_weight": heatmap_weight,
        }
        super().__init__(preprocess_for(input_mode, input_size), config)
        self.backbone, chans = build_backbone(backbone, pretrained_backbone)
        self.fusion = HCICFusion(chans, reddim=reddim, mid=256)
        self.partition_aware = (
            PartitionAwareModule(reddim, partition, concat_with_human) if use_pa else None
        )
        self.content_preserve = ContentPreserveModule(reddim, 8, 256, relation) if use_cp else None
        self.crop_branch = CropBranch(reddim, align=9, hidden=512, out_dim=256)
        self.fc = nn.Linear(512 if use_cp else 256, 1)
        self.rank_as_coded = bool(rank_as_coded)
        self.rank_weight = float(rank_weight)
        self.heatmap_weight = float(heatmap_weight)
        if weights:
            self.load_weights(weights)

    # ------------------------------------------------------------------ network
    def forward_features(self, images: Tensor) -> dict[str, Any]:
        """``images`` ``[B, 3, H, W]`` → ``{"feat": [B, reddim, H/16, W/16], "size": (H, W)}`` (sum fusion)."""
        return {"feat": self.fusion(*self.backbone(images)), "size": (int(images.shape[-2]), int(images.shape[-1]))}

    def forward_all(
        self, features: dict[str, Any], rois: Tensor, human_box: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """→ ``(scores [K], heat map [B, 1, 64, 64] or None, partition means [B, G, h, w] or None)``."""
        feat: Tensor = features["feat"]
        height, width = features["size"]
        rois = rois.to(feat.device, coord_dtype(feat))
        part = None
        if self.partition_aware is not None and human_box is not None:
            hb = human_box.to(feat.device, coord_dtype(feat)).reshape(-1, 4)
            if hb.shape[0] != feat.shape[0]:
                raise ValueError(f"{hb.shape[0]} human boxes for a batch of {feat.shape[0]} images")
            masks = partition_masks(hb, height, width, stride=16)
            if masks.shape[-2:] != feat.shape[-2:]:
                raise ValueError(f"input {width}x{height} is not a multiple of 16 (feature map {feat.shape[-2:]})")
            feat, part = self.partition_aware(feat, hb, masks.to(feat.dtype))
        crop = self.crop_branch(feat, rois)
        heat = None
        if self.content_preserve is not None:
            heat, content = self.content_preserve(feat, rois, height, width)
            crop = torch.cat([crop, content], dim=1)
        return self.fc(crop).reshape(-1), heat, part

    def forward_scores(self, features: dict[str, Any], rois: Tensor, human_box: Tensor | None = None) -> Tensor:
        """``rois`` ``[K, 5]`` input pixels, ``human_box`` ``[B, 4]`` (optional) → scores ``[K]``."""
        return self.forward_all(features, rois, human_box)[0]

    # ------------------------------------------------------------------ training / inference glue
    def batch_extra(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"human_box": batch["human_box"]} if "human_box" in batch else {}

    def extra_from_cues(self, cues: Cues | None, width: int, height: int, sx: float, sy: float) -> dict[str, Tensor]:
        return {"human_box": best_person_box(cues, sx, sy)}

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        feats = self.forward_features(batch["image"])
        pred, heat, _ = self.forward_all(feats, batch["rois"], batch.get("human_box"))
        return hcic_loss(pred, batch, heat, self.rank_as_coded, self.rank_weight, self.heatmap_weight)


@register_model("hcic")
def hcic(weights: str | None = None, **cfg: Any) -> HCIC:
    """HCIC (ECCV'22). Config keys: see :class:`HCIC` (``backbone``, ``reddim``, ``partition``, ``relation``,
    ``use_pa``, ``use_cp``, ``input_mode``, ``weights`` …)."""
    return build_with_weights(HCIC, weights, **cfg)
