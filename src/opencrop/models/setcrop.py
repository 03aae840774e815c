"""SetCrop: "Rethinking Image Cropping: Exploring Diverse Compositions from Global Views" (Jia, Huang, Fu, He;
CVPR 2022) — crops as a set prediction with a Conditional-DETR.

Specification: ``docs/systems.md`` §6 (architecture §6.1, targets and losses §6.2, evaluation §6.4, problems of
the released code §6.5); the user guide is ``docs/setcrop.md``.

* Backbone (:mod:`opencrop.nn`, frozen BatchNorm, stem + first stage frozen): ResNet-50-DC5 (C5 at stride 16,
  2048 ch; the paper) or MobileNetV2 (f5 at stride 32, 320 ch, or f4; the CPU-sized option with offline ImageNet
  weights). 1×1 projection to ``hidden_dim``, normalised sine positions.
* :class:`~opencrop.models.setcrop_modules.SetTransformer`: ``enc_layers`` post-norm encoder layers and a
  Conditional-DETR decoder of ``dec_layers`` layers whose ``num_queries`` learnable query embeddings are the
  anchors (90 for GAICD, 24 for CPC): each gives a reference point ``sigmoid(ref_point_head(query))``.
* Heads shared by every decoder layer (as the released code): ``bbox_embed`` (3-layer MLP) predicts
  ``(cx, cy, w, h) = sigmoid(MLP(h) + [logit(ref), 0, 0])`` normalised to the input image; ``class_embed``
  (linear, bias −log 99) a 1-class validity logit. Training uses every layer's output (auxiliary losses).
* Option ``anchor_init="kmeans"`` (opencrop's, not the paper's): per-query learnable box priors (cxcywh logits)
  whose centre is the reference point and which the box head refines, ``sigmoid(MLP(h) + prior)``; the trainer's
  ``init_from_data`` hook sets them to k-means (IoU distance) centres of the training split's good crops.
* Loss (:func:`opencrop.nn.set_losses.set_criterion`): Hungarian matching to the good crops, focal + L1 + GIoU,
  quality label smoothing (GAICD), EMA self-distillation (CPC, :class:`EmaTeacher`).

The contract (:mod:`opencrop.models.base`), boxes in xyxy pixels of the analysis image:

* ``propose(prepared, Request(ratio=None))`` → every query box (clipped to the image) ranked by validity ``σ``.
* ``propose(prepared, Request(boxes=B))`` → ``B`` in order, each scored through its **best-matching query**:
  ``score(b) = σ(q*) · IoU(b, q*)`` with ``q* = argmax_q IoU(b, box_q)`` (first query among ties). A box far
  from every query scores low even if a valid query exists elsewhere. Trainer validation and ``Cropper.score``
  use the same mapping (:meth:`SetCrop.forward_scores`).
* ``propose(prepared, Request(ratio=r))`` → every query box adjusted to the exact ratio by :func:`ratio_adjust`
  (same area, same centre, then shifted into the image, shrunk only when larger than the image), scored
  ``σ(q) · IoU(adjusted q, q)`` (validity × the overlap the adjustment keeps). A query *fits* when its validity is
  ≥ ``valid_threshold`` and its adjusted box keeps IoU ≥ ``fit_iou`` with it (and the rules allow it); boxes that
  do not fit score 1 less, so the best box is the best fitting one whenever one exists. When none fits, the boxes
  are still returned and a note is added to the image's ``cues.notes`` (``opencrop crop`` prints it in its JSON
  ``notes``). The pipeline (:class:`opencrop.api.Cropper`) then applies the rules and its local refinement
  (±half a step around the box, scored through the best-matching query) and snaps to whole pixels.

Differences from the released code (hhb072/RethinkingImageCropping-Paddle, a Conditional-DETR fork in PyTorch):
no padding masks (a batch shares one image size; the recipes use batch 1, the original 1 per GPU); the
multi-scale training resize (short side ∈ {480 … 800}, max 1333) is applied to the preprocessed batch inside
:meth:`SetCrop.compute_loss` (the dataset gives short side 600), boxes being normalised are unchanged; the EMA
teacher is created at ``ema_start_epoch`` and **updated after every optimiser step** (the original guards the update
with the undefined ``args.enable_ema``, systems.md §6.5) and is saved in the training checkpoint, so a run resumes
after the teacher started (the original refuses); no ``model.device`` / ``cuda:1`` / DDP-only assumptions; the loss
normalisation counts the good crops of the local batch (DDP averages the gradients). No weights are released;
training starts from ImageNet backbone weights, or from a COCO Conditional-DETR checkpoint with
``init_checkpoint`` (:func:`convert_conditional_detr_state_dict`; class head and queries re-initialised).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.boxes import box_iou, clip_boxes, cxcywh_to_xyxy, kmeans_boxes, xyxy_to_cxcywh
from opencrop.cues.types import Cues
from opencrop.errors import ModelFileError
from opencrop.models.base import Request
from opencrop.models.learned import LearnedCropModel, PreparedImage, build_with_weights
from opencrop.models.preprocess import Preprocess
from opencrop.models.registry import register_model
from opencrop.models.setcrop_modules import MLP, PositionEmbeddingSine, SetTransformer, inverse_sigmoid
from opencrop.models.setcrop_post import best_query_scores, propose_from_queries, ratio_adjust
from opencrop.nn.set_losses import SetLossConfig, crop_validity_loss, good_crop_mask, set_criterion

__all__ = [
    "EmaTeacher",
    "SetCrop",
    "SetPrepared",
    "convert_conditional_detr_state_dict",
    "good_crops_normalised",
    "ratio_adjust",
    "setcrop",
]

_BACKBONES = ("resnet50", "mobilenet_v2")
#: short sides of the released code's multi-scale training resize (max side 1333)
TRAIN_SIZES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)


@dataclass
class SetPrepared(PreparedImage):
    """:class:`~opencrop.models.learned.PreparedImage` plus the image's ``cues.notes`` list, where ``propose``
    reports ratios no valid query fits."""

    notes: list[str] = field(default_factory=list)


def good_crops_normalised(records: Sequence[Any], thresh: float | None = 4.0, top_k: int | None = None,
                          nms_iou: float = 0.0) -> np.ndarray:
    """The good crops (:func:`~opencrop.nn.set_losses.good_crop_mask`) of ``records`` → ``[N, 4]`` **normalised
    xyxy** of each upright image (stored-pixel annotations mapped through the file's EXIF orientation, as the
    training data). Reads only the image headers. Raises ``ValueError`` when no record has a crop."""
    from opencrop.io import probe_image

    out = []
    for r in records:
        if r.crops is None or r.scores is None or len(r.crops) == 0:
            continue
        crops = np.asarray(r.crops, np.float64).reshape(-1, 4)
        mos = np.asarray(r.scores, np.float64).reshape(-1)
        ok = np.isfinite(mos) & (crops[:, 2] > crops[:, 0]) & (crops[:, 3] > crops[:, 1])
        crops, mos = crops[ok], mos[ok]
        if len(crops) == 0:
            continue
        good = good_crop_mask(torch.as_tensor(mos), torch.as_tensor(crops), thresh, top_k, nms_iou).numpy()
        frame = probe_image(r.image_path)
        up = frame.from_stored(crops[good])
        out.append(up / np.array([frame.width, frame.height, frame.width, frame.height]))
    if not out:
        raise ValueError("setcrop: no annotated crops in the training records to initialise the anchors from")
    return np.concatenate(out)


def _freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` (in place) by a :class:`~opencrop.nn.FrozenBatchNorm2d` with
    its affine parameters and running statistics (DETR's frozen BN, for batch 1)."""
    from opencrop.nn import FrozenBatchNorm2d

    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps)
            with torch.no_grad():
                frozen.weight.copy_(child.weight)
                frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)
    return module


class EmaTeacher(nn.Module):
    """An exponential-moving-average copy of a model's **trainable** parameters, kept as buffers (saved in the
    training checkpoint, never optimised); frozen parameters and buffers are shared with the student.

    ``start(model)`` copies the student (the released code's teacher = deep copy at ``start_ema``);
    ``update(model)`` sets ``ema ← decay · ema + (1 − decay) · param`` (decay 0.5 in the CPC recipe), after every
    optimiser step; ``swapped(model)`` temporarily puts the teacher's values into the model (no grad) to run it.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EmaTeacher: decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        for n in self.names:
            self.register_buffer(self._key(n), torch.zeros_like(model.get_parameter(n).detach()))
        self.register_buffer("active", torch.zeros((), dtype=torch.bool))

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    def _pairs(self, model: nn.Module) -> Iterator[tuple[Tensor, Tensor]]:
        for n in self.names:
            yield getattr(self, self._key(n)), model.get_parameter(n)

    @property
    def is_active(self) -> bool:
        return bool(self.active)

    @torch.no_grad()
    def start(self, model: nn.Module) -> None:
        for ema, p in self._pairs(model):
            ema.copy_(p)
        self.active.fill_(True)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if not self.is_active:
            return
        for ema, p in self._pairs(model):
            ema.mul_(self.decay).add_(p.detach(), alpha=1.0 - self.decay)

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[None]:
        """Within the block the model's trainable parameters hold the teacher's values (eval mode, no grad)."""
        saved = []
        was = model.training
        try:
            with torch.no_grad():
                for ema, p in self._pairs(model):
                    saved.append(p.data)
                    p.data = ema.detach().clone()
                model.eval()
                yield
        finally:
            for (_, p), data in zip(self._pairs(model), saved, strict=False):
                p.data = data
            model.train(was)


class SetCrop(LearnedCropModel):
    """SetCrop set predictor (module docstring).

    Args:
        backbone: ``"resnet50"`` (ResNet-50-DC5, the paper) or ``"mobilenet_v2"``.
        pretrained_backbone: load the backbone's local ImageNet weights (:func:`opencrop.nn.create_backbone`).
        backbone_weights: explicit ImageNet weight file of the backbone.
        tap: backbone output used (``"f5"``: C5 / MobileNetV2 stride 32; ``"f4"``: stride 16). Default ``"f5"``.
        hidden_dim, nheads, enc_layers, dec_layers, dim_feedforward, dropout: transformer size (256, 8, 6, 6,
            2048, 0.1 in the paper).
        num_queries: learnable anchors (90 GAICD, 24 CPC).
        input_size, max_input_size: test-time resize, shorter side → ``input_size`` with the longer side at most
            ``max_input_size`` (600 / 1333), pixels / 255, ImageNet mean / std.
        train_sizes: short sides of the multi-scale training resize (:data:`TRAIN_SIZES`; ``None`` = off).
        aux_loss: losses on every decoder layer (True).
        good_thresh, good_num, good_nms: good crops = MOS ≥ ``good_thresh`` (4.0 GAICD, 2.0 CPC), else the ties at
            the maximum; or the ``good_num`` best; then NMS at ``good_nms`` (0.8 CPC; 0 = off).
        soft_iou_thresh, soft_bound, valid_smooth: validity smoothing (0.85 / 0.5 GAICD, bound 0 CPC; off).
        cost_class, cost_bbox, cost_giou, cls_weight, bbox_weight, giou_weight, focal_alpha, focal_gamma: matcher
            and loss weights (2, 5, 2, 2, 5, 2, 0.25, 2).
        ema_start_epoch: 0-based epoch at which the EMA teacher starts (45 on CPC; ``None`` = no distillation).
        ema_decay, distill_weight: teacher decay (0.5) and weight of its focal term (0.5).
        backbone_lr: learning rate of the backbone's trainable parameters (1e-5; 0 freezes the whole backbone;
            ``None`` = the recipe's lr). Read by the trainer through :meth:`optimizer_groups`.
        anchor_init: ``None`` (the paper: each query's reference point is ``sigmoid(ref_point_head(query))``, a
            centre only) or ``"kmeans"`` (opencrop's option, not the paper's): every query also owns a learnable
            **box prior** ``anchor_boxes [Q, 4]`` (cxcywh logits) — its reference point is the prior's centre and
            the box head refines the whole prior, ``sigmoid(MLP(h) + prior)``. The trainer initialises the priors
            to k-means (IoU distance) centres of the **training split's** good crops (:meth:`init_from_data`);
            before that they are the centred half-size box.
        box_lr: learning rate of the box head and the box priors (``None`` = the recipe's lr).
        quality_target, quality_power, valid_loss, rank_weight: opencrop's validity-ranking options, not the
            paper's (off: ``False``, 1, ``"focal"``, 0; :mod:`opencrop.nn.set_losses`): matched targets = the
            matched crop's relative quality ``clamp((MOS − 2) / (MOS_max − 2), 0, 1) ** quality_power`` and the
            smoothed ones ``soft_bound ·`` that of their crop; quality focal loss instead of the focal loss; a
            pairwise logistic ranking term (matched queries above every query with a lower target).
        valid_threshold, fit_iou: inference — the validity a query needs to count as valid (0.5) and the IoU its
            ratio-adjusted box must keep with it to *fit* a requested ratio (0.5).
        rank_nms: inference, opencrop's option (not the paper's nor the released code's): rank the queries that
            greedy NMS at this IoU suppresses after the kept ones in ``propose(ratio=None)``, so the top k are
            distinct crops (:func:`~opencrop.models.setcrop_post.propose_from_queries`; ``None`` = off, the paper;
            ``1.0`` turns off a value saved in a model file).
        valid_head, roi_reddim, roi_align: where the final decoder layer's validity comes from. ``"query"`` (the
            paper): the linear ``class_embed`` on the query's decoder output. ``"roi"`` (opencrop's option, not the
            paper's): GAIC's crop head (:func:`~opencrop.models.gaic.gaic_head`) on the RoI ⊕ RoD average-aligned
            features (``roi_align`` ², 9) of the query's final box (detached) on GAIC's fused stride-16 map
            (``roi_reddim`` channels, 8); the auxiliary layers keep ``class_embed``. Same targets and losses.
            ``"gafic"`` (opencrop's option, not the paper's): GAFIC's evaluator
            (:class:`~opencrop.models.gafic.GAFICEvaluator`: AGFF fusion of the three backbone taps into
            ``gafic_reddim`` channels, GACE crop score) scores the query's final box (detached) the same way; its score
            ``s`` (GAFIC's MOS scale) becomes the validity logit ``exp(gafic_calib[0]) · (s − gafic_calib[1])``, two
            learnable scalars starting at ``log 2`` and 4 (the GAICD good-crop MOS), so the ranking of the queries is
            the ranking by predicted MOS.
        gafic_reddim: width of the GAFIC head's fused map (32, as GAFIC).
        gafic_loss_weight: with ``valid_head="gafic"``, weight of GAFIC's own training signal on the annotated crops
            (:func:`~opencrop.models.hcic.hcic_loss`: SmoothL1 of the GACE score on the raw MOS + rank term +
            ``gafic_heatmap_weight`` · L1 of its predicted heat map against the batch's pseudo heat map), added to the
            set loss; 0 = off (the head then learns from the set loss alone).
        gafic_heatmap_weight: heat-map weight inside that term (1.0, as GAFIC; > 0 needs ``heatmap`` in the batch:
            the recipe's ``data.heatmap_dir``).
        roi_crop_weight: with ``valid_head="roi"``, weight of an extra term (× ``cls_weight``): the RoI head also
            scores every annotated crop as if a query lay exactly on it, with the queries' validity targets
            (:func:`~opencrop.nn.set_losses.crop_validity_loss`), normalised like the set loss; 0 = off.
        init_checkpoint: a COCO Conditional-DETR checkpoint to start from (not saved in the config).
    """

    name = "setcrop"
    needs: frozenset[str] = frozenset()
    #: a set predictor: evaluation uses its own proposals (:func:`opencrop.eval.runner.evaluate`)
    proposes_boxes = True
    export_kind = "set"

    def __init__(
        self,
        backbone: str = "resnet50",
        pretrained_backbone: bool = False,
        backbone_weights: str | None = None,
        tap: str = "f5",
        hidden_dim: int = 256,
        nheads: int = 8,
        enc_layers: int = 6,
        dec_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        num_queries: int = 90,
        input_size: int = 600,
        max_input_size: int | None = 1333,
        train_sizes: Sequence[int] | None = TRAIN_SIZES,
        aux_loss: bool = True,
        good_thresh: float | None = 4.0,
        good_num: int | None = None,
        good_nms: float = 0.0,
        soft_iou_thresh: float = 0.85,
        soft_bound: float = 0.5,
        valid_smooth: bool = False,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        cls_weight: float = 2.0,
        bbox_weight: float = 5.0,
        giou_weight: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        ema_start_epoch: int | None = None,
        ema_decay: float = 0.5,
        distill_weight: float = 0.5,
        backbone_lr: float | None = 1e-5,
        anchor_init: str | None = None,
        box_lr: float | None = None,
        quality_target: bool = False,
        quality_power: float = 1.0,
        valid_loss: str = "focal",
        rank_weight: float = 0.0,
        valid_threshold: float = 0.5,
        fit_iou: float = 0.5,
        rank_nms: float | None = None,
        valid_head: str = "query",
        roi_reddim: int = 8,
        roi_align: int = 9,
        roi_crop_weight: float = 0.0,
        gafic_reddim: int = 32,
        gafic_loss_weight: float = 1.0,
        gafic_heatmap_weight: float = 1.0,
        init_checkpoint: str | None = None,
    ) -> None:
        if backbone not in _BACKBONES:
            raise ValueError(f"setcrop: backbone must be one of {_BACKBONES}, got {backbone!r}")
        if anchor_init not in (None, "kmeans"):
            raise ValueError(f"setcrop: anchor_init must be None or 'kmeans', got {anchor_init!r}")
        if valid_head not in ("query", "roi", "gafic"):
            raise ValueError(f"setcrop: valid_head must be 'query', 'roi' or 'gafic', got {valid_head!r}")
        if gafic_reddim < 1 or gafic_loss_weight < 0 or gafic_heatmap_weight < 0:
            raise ValueError(f"setcrop: need gafic_reddim ≥ 1, gafic_loss_weight ≥ 0, gafic_heatmap_weight ≥ 0 "
                             f"(got {gafic_reddim}, {gafic_loss_weight}, {gafic_heatmap_weight})")
        if roi_crop_weight < 0 or (roi_crop_weight > 0 and valid_head != "roi"):
            raise ValueError(f"setcrop: roi_crop_weight must be ≥ 0 and needs valid_head='roi', got {roi_crop_weight}")
        if roi_reddim < 1 or roi_align < 1:
            raise ValueError(f"setcrop: roi_reddim and roi_align must be ≥ 1, got {roi_reddim}, {roi_align}")
        if tap not in ("f4", "f5"):
            raise ValueError(f"setcrop: tap must be 'f4' or 'f5', got {tap!r}")
        if num_queries < 1 or dec_layers < 1 or enc_layers < 0:
            raise ValueError(f"setcrop: need num_queries ≥ 1, dec_layers ≥ 1, enc_layers ≥ 0 "
                             f"(got {num_queries}, {dec_layers}, {enc_layers})")
        sizes = [int(s) for s in train_sizes] if train_sizes else None
        if sizes is not None and min(sizes) < 1:
            raise ValueError(f"setcrop: train_sizes must be positive, got {sizes}")
        config = {
            "backbone": backbone, "tap": tap, "hidden_dim": int(hidden_dim), "nheads": int(nheads),
            "enc_layers": int(enc_layers), "dec_layers": int(dec_layers), "dim_feedforward": int(dim_feedforward),
            "dropout": float(dropout), "num_queries": int(num_queries), "input_size": int(input_size),
            "max_input_size": None if max_input_size is None else int(max_input_size), "train_sizes": sizes,
            "aux_loss": bool(aux_loss), "good_thresh": good_thresh, "good_num": good_num, "good_nms": float(good_nms),
            "soft_iou_thresh": float(soft_iou_thresh), "soft_bound": float(soft_bound),
            "valid_smooth": bool(valid_smooth), "cost_class": float(cost_class), "cost_bbox": float(cost_bbox),
            "cost_giou": float(cost_giou), "cls_weight": float(cls_weight), "bbox_weight": float(bbox_weight),
            "giou_weight": float(giou_weight), "focal_alpha": float(focal_alpha), "focal_gamma": float(focal_gamma),
            "ema_start_epoch": ema_start_epoch, "ema_decay": float(ema_decay), "distill_weight": float(distill_weight),
            "backbone_lr": backbone_lr, "anchor_init": anchor_init, "box_lr": box_lr,
            "quality_target": bool(quality_target), "quality_power": float(quality_power),
            "valid_loss": str(valid_loss), "rank_weight": float(rank_weight),
            "valid_threshold": float(valid_threshold), "fit_iou": float(fit_iou),
            "rank_nms": None if rank_nms is None else float(rank_nms),
            "valid_head": str(valid_head), "roi_reddim": int(roi_reddim), "roi_align": int(roi_align),
            "roi_crop_weight": float(roi_crop_weight),
        }
        if valid_head == "gafic":  # only then saved: the configs of the other heads stay as they were
            config.update({"gafic_reddim": int(gafic_reddim), "gafic_loss_weight": float(gafic_loss_weight),
                           "gafic_heatmap_weight": float(gafic_heatmap_weight)})
        pre = Preprocess(resize="short_side", size=int(input_size), multiple=1, pixel_scale=255.0,
                         max_size=config["max_input_size"])
        super().__init__(pre, config)
        self.analysis_size = int(max_input_size or max(input_size, 512))
        self.loss_cfg = SetLossConfig(
            cost_class=cost_class, cost_bbox=cost_bbox, cost_giou=cost_giou, cls_weight=cls_weight,
            bbox_weight=bbox_weight, giou_weight=giou_weight, focal_alpha=focal_alpha, focal_gamma=focal_gamma,
            soft_iou_thresh=soft_iou_thresh, soft_bound=soft_bound, valid_smooth=valid_smooth,
            distill_weight=distill_weight, quality_target=bool(quality_target), quality_power=float(quality_power),
            valid_loss=str(valid_loss), rank_weight=float(rank_weight),
        )
        self.train_sizes = sizes
        self.aux_loss = bool(aux_loss)
        self.good_thresh, self.good_num, self.good_nms = good_thresh, good_num, float(good_nms)
        self.backbone_lr = backbone_lr
        self.anchor_init, self.box_lr = anchor_init, box_lr
        self.valid_threshold, self.fit_iou = float(valid_threshold), float(fit_iou)
        self.rank_nms = None if rank_nms is None else float(rank_nms)
        self.ema_start_epoch = None if ema_start_epoch is None else int(ema_start_epoch)

        from opencrop.nn import create_backbone

        pretrained = bool(pretrained_backbone)
        if backbone == "resnet50":
            self.backbone = create_backbone("resnet50", pretrained=pretrained, weights=backbone_weights,
                                            dilate_last=True, frozen_bn=True, with_classifier=False)
            frozen_prefixes: tuple[str, ...] = ("conv1.", "bn1.", "layer1.")
        else:
            self.backbone = _freeze_batchnorm(create_backbone("mobilenet_v2", pretrained=pretrained,
                                                              weights=backbone_weights, with_classifier=False))
            frozen_prefixes = tuple(f"features.{i}." for i in range(4))  # stride ≤ 4, as ResNet's stem + layer1
        train_backbone = backbone_lr is None or backbone_lr > 0
        for n, p in self.backbone.named_parameters():
            if not train_backbone or n.startswith(frozen_prefixes):
                p.requires_grad_(False)
        self.tap_index = 2 if tap == "f5" else 1
        tap_info = self.backbone.feature_info[self.tap_index]
        self.stride = int(tap_info.reduction)
        d = int(hidden_dim)
        self.input_proj = nn.Conv2d(int(tap_info.num_chs), d, kernel_size=1)
        self.position = PositionEmbeddingSine(d // 2)
        self.transformer = SetTransformer(d, int(nheads), int(enc_layers), int(dec_layers), int(dim_feedforward),
                                          float(dropout))
        self.query_embed = nn.Embedding(int(num_queries), d)
        self.class_embed = nn.Linear(d, 1)
        self.bbox_embed = MLP(d, d, 4, 3)
        self.anchor_boxes: nn.Parameter | None = None
        if anchor_init is not None:
            # per-query box priors (cxcywh logits); the reference point is their centre, so ref_point_head is
            # unused and frozen (kept for checkpoint compatibility)
            self.anchor_boxes = nn.Parameter(torch.zeros(int(num_queries), 4))
            for p in self.transformer.decoder.ref_point_head.parameters():
                p.requires_grad_(False)
        self.roi_neck: nn.Module | None = None
        self.roi_head: nn.Module | None = None
        self.roi_crop_weight = float(roi_crop_weight)
        if valid_head == "roi":
            from opencrop.models.gaic import gaic_head
            from opencrop.nn import GAICFusion

            fi = self.backbone.feature_info
            chans = [int(fi[i].num_chs) for i in range(3)]
            self.roi_stride = int(fi[1].reduction)
            self.roi_align_size = int(roi_align)
            self.roi_neck = GAICFusion(chans, int(roi_reddim))
            self.roi_head = gaic_head(2 * int(roi_reddim), int(roi_align))
            for m in [*self.roi_neck.modules(), *self.roi_head.modules()]:
                if isinstance(m, nn.Conv2d):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        self.gafic_head: nn.Module | None = None
        self.gafic_calib: nn.Parameter | None = None
        self.gafic_loss_weight = float(gafic_loss_weight)
        self.gafic_heatmap_weight = float(gafic_heatmap_weight)
        if valid_head == "gafic":
            from opencrop.models.gafic import GAFICHead

            fi = self.backbone.feature_info
            self.gafic_head = GAFICHead([int(fi[i].num_chs) for i in range(3)], int(gafic_reddim))
            self.gafic_head.crop_branch.spatial_scale = self.gafic_head.global_branch.spatial_scale = (
                1.0 / int(fi[1].reduction))
            self.gafic_calib = nn.Parameter(torch.tensor([math.log(2.0), 4.0]))
        self.reset_heads()
        if init_checkpoint is not None:
            self.load_conditional_detr(init_checkpoint)
        self.teacher: EmaTeacher | None = (
            EmaTeacher(self, ema_decay) if self.ema_start_epoch is not None else None
        )

    def reset_heads(self) -> None:
        """Validity bias −log((1 − 0.01) / 0.01) (prior 0.01), N(0, 1) queries, last box layer bias 0 and weights
        N(0, 10⁻³) (DETR sets them to exactly 0, which leaves the earlier box layers without a gradient until the
        first step; the initial boxes are the same to 10⁻³)."""
        nn.init.constant_(self.class_embed.bias, -math.log((1 - 0.01) / 0.01))
        if self.roi_head is not None:
            nn.init.constant_(self.roi_head[-1].bias, -math.log((1 - 0.01) / 0.01))
        nn.init.normal_(self.bbox_embed.layers[-1].weight, std=1e-3)
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)

    # ------------------------------------------------------------------ network
    def forward_features(self, images: Tensor) -> dict[str, Any]:
        """``images`` ``Tensor[B, 3, H, W]`` → ``{"logits": Tensor[L, B, Q]`` validity logits, ``"boxes":
        Tensor[L, B, Q, 4]`` normalised cxcywh, ``"size": (W, H)``} for every decoder layer (last = output)."""
        taps = self.backbone(images)
        src = self.input_proj(taps[self.tap_index])
        if self.anchor_boxes is None:  # the paper: reference = sigmoid(ref_point_head(query)), a centre
            hs, reference = self.transformer(src, self.position(src), self.query_embed.weight)
            offset = torch.cat([inverse_sigmoid(reference), torch.zeros_like(reference)], dim=-1)[None]
        else:  # anchor_init: the reference point is the box prior's centre; the head refines the whole prior
            prior = self.anchor_boxes[None].expand(images.shape[0], -1, -1)
            hs, _ = self.transformer(src, self.position(src), self.query_embed.weight, prior[..., :2].sigmoid())
            offset = prior[None]
        boxes = (self.bbox_embed(hs) + offset).sigmoid()
        logits = self.class_embed(hs).squeeze(-1)
        out = {"logits": logits, "boxes": boxes, "size": (images.shape[-1], images.shape[-2])}
        if self.roi_head is not None:  # valid_head="roi": the final validity from the final boxes' RoI ⊕ RoD
            out["roi_map"] = self.roi_neck(*taps[:3])  # GAIC's fused stride-16 map
            final = self._roi_logits(out["roi_map"], boxes[-1].detach(), images.shape[-1], images.shape[-2])
            out["logits"] = torch.cat([logits[:-1], final[None]], dim=0)
        elif self.gafic_head is not None:  # valid_head="gafic": GAFIC's GACE score of the final boxes
            out["gafic"] = self.gafic_head.agff(*taps[:3])
            final = self._gafic_logits(out["gafic"], boxes[-1].detach(), images.shape[-1], images.shape[-2])
            out["logits"] = torch.cat([logits[:-1], final[None]], dim=0)
        return out

    @staticmethod
    def _box_rois(boxes: Tensor, w: int, h: int) -> Tensor:
        """Boxes ``Tensor[B, Q, 4]`` (normalised cxcywh of a ``w × h`` input) → RoIs ``Tensor[B · Q, 5]`` (batch
        index, xyxy input pixels)."""
        n_img, n_q = boxes.shape[:2]
        c = cxcywh_to_xyxy(boxes)  # scaled per column: w, h stay symbolic under torch.export
        b = torch.stack([c[..., 0] * w, c[..., 1] * h, c[..., 2] * w, c[..., 3] * h], dim=-1)
        idx = torch.arange(n_img, device=boxes.device, dtype=boxes.dtype).repeat_interleave(n_q)
        return torch.cat([idx[:, None], b.reshape(-1, 4)], dim=1)

    def _gafic_scores(self, feats: dict[str, Tensor], boxes: Tensor, w: int, h: int) -> Tensor:
        """``valid_head="gafic"``: GACE scores (GAFIC's MOS scale) ``Tensor[B, Q]`` of boxes ``Tensor[B, Q, 4]``
        (normalised cxcywh of a ``w × h`` input) on the AGFF features ``feats`` of the three backbone taps."""
        assert self.gafic_head is not None
        rois = self._box_rois(boxes, w, h).to(feats["fused"].dtype)
        return self.gafic_head.forward_scores(feats, rois).reshape(boxes.shape[:2]).to(boxes.dtype)

    def _gafic_logits(self, feats: dict[str, Tensor], boxes: Tensor, w: int, h: int) -> Tensor:
        """Validity logits ``exp(gafic_calib[0]) · (s − gafic_calib[1])`` of the GACE scores ``s``
        (:meth:`_gafic_scores`)."""
        assert self.gafic_calib is not None
        cal = self.gafic_calib.to(boxes.dtype)
        return cal[0].exp() * (self._gafic_scores(feats, boxes, w, h) - cal[1])

    def _roi_logits(self, fused: Tensor, boxes: Tensor, w: int, h: int) -> Tensor:
        """``valid_head="roi"``: validity logits ``Tensor[B, Q]`` of boxes ``Tensor[B, Q, 4]`` (normalised cxcywh
        of a ``w × h`` input) from GAIC's crop head on the RoI ⊕ RoD aligned (average) features of ``fused``
        (:class:`~opencrop.nn.GAICFusion` of the three backbone taps)."""
        from opencrop.ops import rod_align_avg, roi_align_avg

        assert self.roi_head is not None
        n_img, n_q = boxes.shape[:2]
        rois = self._box_rois(boxes, w, h).to(fused.dtype)
        a, scale = self.roi_align_size, 1.0 / self.roi_stride
        x = torch.cat([roi_align_avg(fused, rois, a, scale), rod_align_avg(fused, rois, a, scale)], dim=1)
        return self.roi_head(x).reshape(n_img, n_q).to(boxes.dtype)

    @staticmethod
    def _query_boxes(features: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Final-layer query boxes ``Tensor[B, Q, 4]`` xyxy input pixels (clipped) and validity ``Tensor[B, Q]``."""
        w, h = features["size"]  # symbolic under torch.export: scaled per column, not through a new tensor
        b = cxcywh_to_xyxy(features["boxes"][-1])
        boxes = clip_boxes(torch.stack([b[..., 0] * w, b[..., 1] * h, b[..., 2] * w, b[..., 3] * h], dim=-1), w, h)
        return boxes, features["logits"][-1].sigmoid()

    def forward_scores(self, features: dict[str, Any], rois: Tensor, **extra: Tensor) -> Tensor:
        """Score ``rois`` ``Tensor[K, 5]`` (batch index, xyxy input pixels) through their best-matching query:
        ``σ(q*) · IoU(roi, q*)``, ``q* = argmax IoU`` (first among ties) → ``Tensor[K]``."""
        qb, val = self._query_boxes(features)
        out = rois.new_zeros(rois.shape[0], dtype=val.dtype)
        idx = rois[:, 0].long()
        for b in torch.unique(idx).tolist():
            m = idx == b
            iou = box_iou(rois[m, 1:].to(qb.dtype), qb[b])
            best = iou.argmax(dim=1)
            out[m] = val[b][best] * iou.gather(1, best[:, None])[:, 0]
        return out

    # ------------------------------------------------------------------ training
    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """Parameter groups for the trainer: the transformer and heads at ``lr``, the backbone at ``backbone_lr``,
        the box head and box priors at ``box_lr`` (when set)."""
        box_names = ("bbox_embed.", "anchor_boxes")
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        bb = [p for n, p in params if n.startswith("backbone.")]
        box = [p for n, p in params if self.box_lr is not None and n.startswith(box_names)]
        ids = {id(p) for p in bb + box}
        groups: list[dict[str, Any]] = [{"params": [p for _, p in params if id(p) not in ids]}]
        if bb:
            groups.append({"params": bb, "lr": float(self.backbone_lr if self.backbone_lr is not None else lr)})
        if box:
            groups.append({"params": box, "lr": float(self.box_lr)})  # type: ignore[arg-type]
        return groups

    def init_from_data(self, records: Sequence[Any]) -> None:
        """Trainer hook, called once at the start of a fresh run with the **training** records only (never the
        validation or test split): with ``anchor_init="kmeans"`` set the box priors to the k-means centres
        (:func:`~opencrop.boxes.kmeans_boxes`, IoU distance, seed 0) of the good crops (:func:`good_crop_mask`, the
        same rule as the matching targets) of every record, normalised to its upright image. No-op otherwise."""
        if self.anchor_boxes is None:
            return
        centres = kmeans_boxes(good_crops_normalised(records, self.good_thresh, self.good_num, self.good_nms),
                               self.anchor_boxes.shape[0], seed=0)
        with torch.no_grad():
            prior = inverse_sigmoid(torch.as_tensor(xyxy_to_cxcywh(centres), dtype=torch.float32))
            self.anchor_boxes.copy_(prior.to(self.anchor_boxes.device))

    def on_train_epoch_start(self, epoch: int) -> None:
        """Trainer hook (0-based ``epoch``): start the EMA teacher at ``ema_start_epoch``."""
        if self.teacher is not None and self.ema_start_epoch is not None and epoch >= self.ema_start_epoch:
            if not self.teacher.is_active:
                self.teacher.start(self)

    def on_optimizer_step(self) -> None:
        """Trainer hook after every optimiser step: update the EMA teacher."""
        if self.teacher is not None:
            self.teacher.update(self)

    def _train_resize(self, images: Tensor) -> Tensor:
        """Multi-scale training: resize the batch so its short side is a random ``train_sizes`` entry (torch RNG),
        the long side at most ``max_input_size``; bilinear, as cv2 in the released code."""
        if not self.train_sizes:
            return images
        s = self.train_sizes[int(torch.randint(len(self.train_sizes), ()))]
        h, w = images.shape[-2:]
        scale = s / min(h, w)
        cap = self.config["max_input_size"]
        if cap is not None and max(h, w) * scale > cap:
            scale = cap / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        if size == (h, w):
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False)

    def targets_from_batch(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per image: all annotated crops ``[N_b, 4]`` normalised cxcywh, their MOS ``[N_b]`` and the good-crop mask
        (:func:`~opencrop.nn.set_losses.good_crop_mask`), from the collated ``rois`` / ``mos`` / ``counts``."""
        h, w = batch["image"].shape[-2:]
        rois, mos = batch["rois"], batch["mos"]
        counts = batch.get("counts")
        n_img = batch["image"].shape[0]
        if counts is None:
            counts = torch.bincount(rois[:, 0].long(), minlength=n_img)
        crops, scores, good = [], [], []
        start = 0
        for c in counts.tolist():
            r = rois[start : start + c, 1:].float()
            s = mos[start : start + c].float()
            start += c
            scale = r.new_tensor([w, h, w, h])
            crops.append(xyxy_to_cxcywh(r / scale))
            scores.append(s)
            good.append(good_crop_mask(s, r, self.good_thresh, self.good_num, self.good_nms))
        return crops, scores, good

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Set-prediction loss on a collated batch (all annotated crops of each image: ``crops_per_image: null``);
        ``{"loss", "ce", "l1", "giou"}`` (see :func:`~opencrop.nn.set_losses.set_criterion`)."""
        crops, scores, good = self.targets_from_batch(batch)
        images = self._train_resize(batch["image"]) if self.training else batch["image"]
        out = self.forward_features(images)
        logits, boxes = out["logits"], out["boxes"]
        if not self.aux_loss:
            logits, boxes = logits[-1:], boxes[-1:]
        teacher_prob = None
        if self.teacher is not None and self.teacher.is_active:
            with self.teacher.swapped(self):
                teacher_prob = self.forward_features(images)["logits"][-1].sigmoid().detach()
        loss = set_criterion(logits, boxes, crops, scores, good, self.loss_cfg, teacher_prob)
        if self.roi_crop_weight > 0:  # the RoI head also scores every annotated crop, as a query lying on it
            aux = loss["loss"].new_zeros(())
            w, h = out["size"]
            for b in range(len(crops)):
                lg = self._roi_logits(out["roi_map"][b : b + 1], crops[b][None].to(boxes.dtype), w, h)[0]
                aux = aux + crop_validity_loss(lg, crops[b], scores[b], good[b], self.loss_cfg)
            aux = aux / max(1.0, float(sum(int(g.sum()) for g in good)))
            loss["loss"] = loss["loss"] + self.loss_cfg.cls_weight * self.roi_crop_weight * aux
            loss["roi_crop"] = aux.detach()
        if self.gafic_head is not None and self.gafic_loss_weight > 0:  # GAFIC's own signal on the annotated crops
            from opencrop.models.hcic import hcic_loss

            w, h = out["size"]
            rois = []
            for b in range(len(crops)):
                r = self._box_rois(crops[b][None].to(boxes.dtype), w, h)
                rois.append(torch.cat([torch.full_like(r[:, :1], b), r[:, 1:]], dim=1))
            pred = self.gafic_head.forward_scores(out["gafic"], torch.cat(rois).to(out["gafic"]["fused"].dtype))
            target = {"mos": torch.cat(scores), "counts": torch.tensor([len(c) for c in crops])}
            if "heatmap" in batch:
                target["heatmap"] = batch["heatmap"]
            g = hcic_loss(pred, target, self.gafic_head.heatmap(out["gafic"]), heatmap_weight=self.gafic_heatmap_weight)
            loss["loss"] = loss["loss"] + self.gafic_loss_weight * g["loss"]
            loss["gafic"] = g["loss"].detach()
        return loss

    # ------------------------------------------------------------------ CropModel protocol
    def prepare(self, frame: Any, cues: Cues | None = None) -> SetPrepared:
        """One forward pass of the whole network (backbone, transformer, heads) on ``frame``."""
        p = super().prepare(frame, cues)
        return SetPrepared(p.features, p.width, p.height, p.input_size, p.sx, p.sy, p.extra,
                           notes=cues.notes if cues is not None else [])

    def query_boxes(self, prepared: PreparedImage) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes [Q, 4]`` xyxy analysis pixels clipped to the image, ``validity [Q])`` of the final layer."""
        qb, val = self._query_boxes(prepared.features)
        b = qb[0].detach().double().cpu().numpy() / np.array([prepared.sx, prepared.sy, prepared.sx, prepared.sy])
        return clip_boxes(b, prepared.width, prepared.height), val[0].detach().double().cpu().numpy()

    def score(self, prepared: PreparedImage, boxes: np.ndarray) -> np.ndarray:
        """``σ(q*) · IoU(b, q*)`` of ``boxes [N, 4]`` (xyxy analysis pixels) through their best-matching query, in
        numpy on the final layer's query boxes (:func:`~opencrop.models.setcrop_post.best_query_scores`, the twin of
        :meth:`forward_scores`): the onnxruntime path computes the same, so near-ties break the same way."""
        return best_query_scores(boxes, *self.query_boxes(prepared))

    def propose(self, prepared: PreparedImage, request: Request) -> tuple[np.ndarray, np.ndarray]:
        """Boxes for one request (module docstring), best first: given boxes (in their order) scored through their
        best-matching query; the query boxes by validity (``ratio=None``); or every query box adjusted to ``ratio``
        (:func:`ratio_adjust`) scored ``σ · IoU(adjusted, query)``, minus 1 for the boxes that do not *fit*, so the
        best fitting box comes first. ``request.allow`` is called on the boxes in the order they are returned; the
        boxes it rules out score ``-inf``."""
        if request.boxes is not None:
            return super().propose(prepared, request)
        qb, val = self.query_boxes(prepared)
        return propose_from_queries(qb, val, prepared.width, prepared.height, request, self.valid_threshold,
                                    self.fit_iou, getattr(prepared, "notes", None), self.rank_nms)

    # ------------------------------------------------------------------ weights
    def load_conditional_detr(self, path: str | os.PathLike[str]) -> None:
        """Initialise from a COCO Conditional-DETR checkpoint (``{"model": state}``, e.g.
        ``ConditionalDETR_r50dc5_epoch50.pth``); the validity head and the queries stay freshly initialised."""
        from opencrop.nn.base import load_state_dict_file

        state = convert_conditional_detr_state_dict(load_state_dict_file(path), self.state_dict(), source=path)
        self.load_state_dict(state, strict=False)


def convert_conditional_detr_state_dict(
    state: dict[str, Tensor], target: dict[str, Tensor], source: str | os.PathLike[str] | None = None
) -> dict[str, Tensor]:
    """Map a Conditional-DETR state dict (``backbone.0.body.*``, ``transformer.*``, ``bbox_embed.*``,
    ``input_proj.*``; a ``module.`` prefix is dropped) onto a :class:`SetCrop` state dict ``target``. ``class_embed``
    (91 COCO classes) and ``query_embed`` (300 queries) are dropped — SetCrop re-initialises them.

    Raises:
        ModelFileError: a tensor with no counterpart, a shape mismatch, or a target tensor left unfilled (other than
            the re-initialised heads, the EMA teacher and tensors the checkpoint cannot hold).
    """
    out: dict[str, Tensor] = {}
    unknown = []
    for k, v in state.items():
        k = k.removeprefix("module.")
        if k.startswith(("class_embed.", "query_embed.")) or k.endswith("num_batches_tracked"):
            continue
        name = "backbone." + k[len("backbone.0.body."):] if k.startswith("backbone.0.body.") else k
        if name not in target:
            unknown.append(k)
            continue
        if tuple(v.shape) != tuple(target[name].shape):
            raise ModelFileError(source, f"{k} {tuple(v.shape)} does not fit {name} {tuple(target[name].shape)} "
                                         f"(hidden_dim / dim_feedforward / layers / backbone must match the file)")
        out[name] = v
    if unknown:
        raise ModelFileError(source, f"{len(unknown)} tensor(s) with no SetCrop counterpart: {unknown[:5]}")
    missing = [k for k in target if k not in out
               and not k.startswith(("class_embed.", "query_embed.", "teacher.", "anchor_boxes"))]
    if missing:
        raise ModelFileError(source, f"not a Conditional-DETR checkpoint of this architecture: {len(missing)} "
                                     f"tensor(s) missing, e.g. {missing[:5]}")
    return out


# ---------------------------------------------------------------------------------------------- registry
@register_model("setcrop")
def setcrop(weights: str | os.PathLike[str] | None = None, **cfg: Any) -> SetCrop:
    """SetCrop set predictor. ``weights``: an opencrop model file (its saved config is the default architecture;
    explicit ``cfg`` keys override it). Returned in eval mode when weights are given. No trained weights are
    published (systems.md §6.5): train with ``opencrop train configs/setcrop_gaicd.yaml``.

    Example:
        >>> model = create_model("setcrop", backbone="mobilenet_v2", num_queries=24)  # doctest: +SKIP
    """
    if weights is not None and not Path(weights).exists():
        raise ModelFileError(weights, "no such weight file")
    return build_with_weights(SetCrop, weights, **cfg)
