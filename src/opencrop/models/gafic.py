"""GAFIC: Global Attention-Fused Image Cropping (AGFF + GACE), as interpreted in ``docs/systems.md`` §4.3.
Registered as ``gafic``.

There is no paper to check against (§4.1): this is a documented interpretation, built on HCIC's blocks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.models.hcic import build_backbone, hcic_loss, preprocess_for
from opencrop.models.hcic_modules import ConvRelationEncoder, CropBranch, GraphRelationEncoder, coord_dtype
from opencrop.models.learned import LearnedCropModel, build_with_weights
from opencrop.models.registry import register_model
from opencrop.nn import HCICFusion

__all__ = ["GAFIC", "GAFICEvaluator", "GAFICHead", "gafic"]


class GAFICEvaluator:
    """GAFIC's crop evaluator on three backbone taps — AGFF fusion (:meth:`agff`), predicted heat map
    (:meth:`heatmap`) and GACE crop scores (:meth:`forward_scores`); steps 1–4 of :class:`GAFIC`. A mixin of
    ``nn.Module`` classes: :class:`GAFIC` (its parameter names stay ``fusion.*``, ``fc.*``, …) and
    :class:`GAFICHead` (SetCrop's ``valid_head="gafic"``). :meth:`build_evaluator` creates the layers."""

    def build_evaluator(self, chans: list[int], reddim: int = 32, relation: str = "conv") -> None:
        """The layers on taps of ``chans`` (C3, C4, C5) channels at strides 8 / 16 / 32."""
        assert isinstance(self, nn.Module)
        self.num_scales = len(chans)
        self.fusion = HCICFusion(chans, reddim=reddim, mid=256)  # its layers, re-weighted per pixel (AGFF)
        if relation == "conv":
            self.relation_encoder: nn.Module = ConvRelationEncoder(reddim, 8)
        elif relation == "gcn":
            self.relation_encoder = GraphRelationEncoder(reddim, 8)
        else:
            raise ValueError(f"relation must be 'conv' or 'gcn', got {relation!r}")
        self.attention = nn.Sequential(
            nn.Conv2d(8, 8, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 1, kernel_size=1)
        )
        self.scale_weights = nn.Conv2d(8 + 1, self.num_scales, kernel_size=1)
        nn.init.zeros_(self.scale_weights.weight)
        nn.init.zeros_(self.scale_weights.bias)
        self.crop_branch = CropBranch(reddim, align=9, hidden=512, out_dim=256)
        self.global_branch = CropBranch(reddim, align=9, hidden=256, out_dim=256)
        self.fc = nn.Linear(512, 1)

    def agff(self, f3: Tensor, f4: Tensor, f5: Tensor) -> dict[str, Tensor]:
        """Taps (strides 8 / 16 / 32) → ``{"fused", "global": [B, reddim, h, w], "logits": [B, 1, h, w],
        "alpha": [B, S, h, w]}`` at f4's grid (AGFF)."""
        fu = self.fusion
        size = f4.shape[-2:]
        f3 = F.interpolate(f3, size=size, mode="bilinear", align_corners=True)
        f5 = F.interpolate(f5, size=size, mode="bilinear", align_corners=True)
        proj = torch.stack([fu.f3_layer(f3), fu.f4_layer(f4), fu.f5_layer(f5)], dim=1)  # [B, 3, 256, h, w]
        base = fu.feat_ext(proj.sum(dim=1))  # = HCICFusion(f3, f4, f5)
        rel = self.relation_encoder(base)
        logits = self.attention(rel)
        att = torch.sigmoid(logits)
        alpha = torch.softmax(self.scale_weights(torch.cat([rel, logits], dim=1)), dim=1)  # [B, S, h, w]
        fused = fu.feat_ext((self.num_scales * alpha[:, :, None] * proj).sum(dim=1)) * (1 + att)
        return {"fused": fused, "global": fused * att, "logits": logits, "alpha": alpha}

    @staticmethod
    def heatmap(features: dict[str, Any], size: int = 64) -> Tensor:
        """Predicted content heat map ``[B, 1, size, size]`` in (0, 1) from the attention logits."""
        z = F.interpolate(features["logits"], size=(size, size), mode="bilinear", align_corners=True)
        return torch.sigmoid(z)

    def forward_scores(self, features: dict[str, Any], rois: Tensor) -> Tensor:
        """``rois`` ``[K, 5]`` input pixels → scores ``[K]`` (GACE: crop feature ⊕ crop-aligned global feature)."""
        rois = rois.to(features["fused"].device, coord_dtype(features["fused"]))
        crop = self.crop_branch(features["fused"], rois)
        glob = self.global_branch(features["global"], rois)
        return self.fc(torch.cat([crop, glob], dim=1)).reshape(-1)


class GAFICHead(GAFICEvaluator, nn.Module):
    """:class:`GAFICEvaluator` as a stand-alone module on another model's backbone taps (SetCrop's
    ``valid_head="gafic"``): ``head.agff(f3, f4, f5)``, ``head.forward_scores(features, rois)``."""

    def __init__(self, chans: list[int], reddim: int = 32, relation: str = "conv") -> None:
        nn.Module.__init__(self)
        self.build_evaluator(chans, reddim, relation)


class GAFIC(GAFICEvaluator, LearnedCropModel):
    """Crop scorer with an attention-guided multi-scale fusion (AGFF) and a global-attention crop embedding (GACE).

    **Interpretation implemented** (systems.md §4.3; the released code, ZGVIR/GAFIC, does something else, below):

    1. *Base fusion.* Backbone taps f3/f4/f5 (strides 8/16/32) are resized to f4's grid (bilinear, align_corners)
       and projected by per-scale 1×1 convs to 256 (``P_s``); ``base = reduce(Σ_s P_s)`` (HCIC's sum fusion, 1×1 →
       ``reddim``).
    2. *Global attention.* A relation encoder (``"conv"``, GAFIC's GAICD choice, or ``"gcn"``) maps ``base`` to 8 ch; a
       3×3 conv + ReLU + 1×1 conv gives attention logits ``z`` ``[B, 1, h, w]``, ``a = sigmoid(z)``. The predicted
       content heat map is ``sigmoid(upsample(z, 64×64))``, **supervised by the HCIC pseudo heat map** (L1), so the
       attention learns which regions a good crop must keep.
    3. *AGFF.* Per-pixel scale weights ``α = softmax_s(conv1×1([relation, z]))`` ``[B, 3, h, w]`` re-weight the
       multi-scale fusion, and the attention scales the result:
       ``fused = reduce(Σ_s 3·α_s ⊙ P_s) ⊙ (1 + a)``. The scale conv starts at zero, so at initialisation
       ``α = 1/3`` and ``fused = base ⊙ (1 + a)``.
    4. *GACE.* The attention-weighted map ``g = fused ⊙ a`` (the "global feature") is RoIAlignAvg ⊕ RoDAlignAvg
       9×9-aligned to **each crop** and embedded (9×9 conv → 256, ReLU, linear → 256); it is concatenated with the
       HCIC crop feature (RoI ⊕ RoD of ``fused`` → 9×9 conv → 512, ReLU, linear → 256) and a linear layer 512 → 1
       scores the crop. The global term therefore depends on the crop's position relative to the attention and
       **can change the ranking within an image**.

    No ground-truth heat map is ever an input: the pseudo heat map is only a training target (no label leakage at
    test time). There is no human box and no partition-aware module (GAFIC disables it), so ``needs`` is empty.

    **Differences from the released code** (systems.md §4.2): the release feeds ``stack(predicted heat map, GT heat
    map)`` (the GT when available, also at test time) without a crop mask into HCIC's content layers, which yields one
    256-d vector per image, the same for every crop, so at test time it shifts all crops of an image by the same
    constant and cannot change Acc / SRCC; it also has no attention-weighted fusion (the fusion is HCIC's plain sum)
    and no training script. Here the attention drives the fusion (AGFF) and is aligned per crop (GACE).

    Training loss as HCIC (systems.md §3.5): SmoothL1 on raw MOS + rank loss + 1.0 · heat-map L1.

    Args:
        backbone: ``"vgg16"`` (as GAFIC / HCIC) or ``"mobilenet_v2"`` (CPU-sized deviation).
        pretrained_backbone: ImageNet backbone weights (``False``, ``True`` or a path).
        reddim: fused map width (32).
        relation: ``"conv"`` (default; GAFIC's ``config_GAICD.py``) or ``"gcn"`` (GAFIC's ``config_CPC.py``).
        input_mode: ``"gaicd"`` or ``"fixed256"``; input_size: their 256
            (see :func:`opencrop.models.hcic.preprocess_for`).
        rank_as_coded, rank_weight, heatmap_weight: loss options as in HCIC.
        weights: an opencrop model file to load after building.
    """

    name = "gafic"
    needs = frozenset()

    def __init__(
        self,
        backbone: str = "vgg16",
        pretrained_backbone: bool | str = False,
        reddim: int = 32,
        relation: str = "conv",
        input_mode: str = "gaicd",
        input_size: int = 256,
        rank_as_coded: bool = False,
        rank_weight: float = 1.0,
        heatmap_weight: float = 1.0,
        weights: str | None = None,
    ) -> None:
        config = {
            "backbone": backbone, "reddim": reddim, "relation": relation, "input_mode": input_mode,
            "input_size": input_size,
            "rank_as_coded": rank_as_coded, "rank_weight": rank_weight, "heatmap_weight": heatmap_weight,
        }
        super().__init__(preprocess_for(input_mode, input_size), config)
        self.backbone, chans = build_backbone(backbone, pretrained_backbone)
        self.build_evaluator(chans, reddim, relation)
        self.rank_as_coded = bool(rank_as_coded)
        self.rank_weight = float(rank_weight)
        self.heatmap_weight = float(heatmap_weight)
        if weights:
            self.load_weights(weights)

    # ------------------------------------------------------------------ network
    def forward_features(self, images: Tensor) -> dict[str, Any]:
        """``images`` ``[B, 3, H, W]`` → :meth:`GAFICEvaluator.agff` of the backbone taps, with ``"size": (H, W)``."""
        return {**self.agff(*self.backbone(images)), "size": (images.shape[-2], images.shape[-1])}

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        feats = self.forward_features(batch["image"])
        pred = self.forward_scores(feats, batch["rois"])
        return hcic_loss(pred, batch, self.heatmap(feats), self.rank_as_coded, self.rank_weight, self.heatmap_weight)


@register_model("gafic")
def gafic(weights: str | None = None, **cfg: Any) -> GAFIC:
    """GAFIC (AGFF + GACE, documented interpretation). Config keys: see :class:`GAFIC`."""
    return build_with_weights(GAFIC, weights, **cfg)
