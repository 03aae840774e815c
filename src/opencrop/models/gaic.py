"""GAIC: Grid Anchor based Image Cropping (Zeng et al., CVPR 2019; TPAMI 2020, arXiv 1909.08989).

Specification: ``docs/systems.md`` §2 (architecture §2.2, align ops §2.3, training §2.4, weights §2.7).

* Backbone taps f3 / f4 / f5 (stride 8 / 16 / 32) from :func:`opencrop.nn.create_backbone`.
* ``fusion="multi"``: concat(½ bilinear-downsampled f3, f4, 0.5 · 2× bilinear-upsampled f5) at stride 16, both
  resamplings ``align_corners=True`` (``UpsamplingBilinear2d`` in the original), then a 1×1 conv → ``reddim``;
  ``"single"``: f4 only → 1×1 conv.
* Crop feature: RoIAlignAvg(A×A) ⊕ RoDAlignAvg(A×A) on the stride-16 map (``spatial_scale = 1/16``), 2·reddim ch.
* Head: conv A×A valid → 768, BN, ReLU → 1×1 → 128, BN, ReLU → dropout 0.5 → 1×1 → 1. The BatchNorms are those
  of the lld533 port whose released weights one would load (``batchnorm=False`` gives the HuiZeng layout).
* Loss: SmoothL1 on ``(MOS − 2.95) / 0.8``.

Differences from the original code: pure-PyTorch align ops (:mod:`opencrop.ops`), so CPU works (the compiled ops
return zeros there); the training flip swaps x1/x2 (:mod:`opencrop.train.datasets`); model selection on a
validation split; Xavier-uniform init of the new layers as in the original ``weights_init``.

Released weights (lld533/Grid-Anchor-based-Image-Cropping-Pytorch ``pretrained_model/``) are bare state dicts of
``crop_model_multi_scale_shared``; :func:`convert_released_state_dict` maps them to this module
(``opencrop weights import gaic.mobilenet_v2_gaicd_v1 FILE.pth`` writes the pretrained tag's file into the cache;
the tags are described in :mod:`opencrop.models.pretrained`).
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from torch import Tensor, nn

from opencrop.errors import ModelFileError
from opencrop.modelfiles import ModelFile
from opencrop.models.checkpoint import build_with_weights, opencrop_version, read_torch_file, save_atomic
from opencrop.models.learned import LearnedCropModel
from opencrop.models.preprocess import Preprocess
from opencrop.models.pretrained import TAGS
from opencrop.models.registry import register_model
from opencrop.nn.losses import GAIC_MOS_MEAN, GAIC_MOS_STD, mos_smooth_l1

__all__ = ["GAIC", "WeightInfo", "convert_released_state_dict", "default_cfgs", "gaic", "gaic_head"]

_BACKBONES = ("mobilenet_v2", "shufflenet_v2", "vgg16")
_DEFAULT_REDDIM = {"mobilenet_v2": 8, "shufflenet_v2": 8, "vgg16": 32}
#: opencrop.nn backbone names (GAIC's ShuffleNetV2 is the 1.0× model)
_NN_NAME = {"mobilenet_v2": "mobilenet_v2", "shufflenet_v2": "shufflenet_v2_x1_0", "vgg16": "vgg16"}


class GAIC(LearnedCropModel):
    """GAIC crop scorer (module docstring).

    Args:
        backbone: ``"mobilenet_v2"`` (default), ``"shufflenet_v2"`` or ``"vgg16"``.
        reddim: channels after the 1×1 reduction (8 for MobileNetV2 / ShuffleNetV2, 32 for VGG16 by default).
        align_size: RoI/RoD output size A (9).
        fusion: ``"multi"`` (f3 ⊕ f4 ⊕ f5) or ``"single"`` (f4).
        batchnorm: BatchNorm after the first two head convs (lld533 port; needed to load the released weights).
        pretrained_backbone: load the backbone's local ImageNet weights (:func:`opencrop.nn.create_backbone`).
        backbone_weights: explicit path of the backbone's ImageNet weight file.
        dropout: dropout probability before the last conv (0.5).
    """

    name = "gaic"
    needs: frozenset[str] = frozenset()
    #: bf16: the head under ``torch.autocast`` (bfloat16), RoI / RoD on the float32 features
    precisions: tuple[str, ...] = ("fp32", "bf16")

    def __init__(
        self,
        backbone: str = "mobilenet_v2",
        reddim: int | None = None,
        align_size: int = 9,
        fusion: str = "multi",
        batchnorm: bool = True,
        pretrained_backbone: bool = False,
        backbone_weights: str | None = None,
        dropout: float = 0.5,
    ) -> None:
        if backbone not in _BACKBONES:
            raise ValueError(f"gaic: backbone must be one of {_BACKBONES}, got {backbone!r}")
        if fusion not in ("multi", "single"):
            raise ValueError(f"gaic: fusion must be 'multi' or 'single', got {fusion!r}")
        if align_size < 1:
            raise ValueError(f"gaic: align_size must be >= 1, got {align_size}")
        reddim = int(reddim or _DEFAULT_REDDIM[backbone])
        config = {"backbone": backbone, "reddim": reddim, "align_size": int(align_size), "fusion": fusion,
                  "batchnorm": bool(batchnorm), "dropout": float(dropout)}
        super().__init__(Preprocess.gaic(), config)
        from opencrop.nn import GAICFusion, create_backbone

        # without the classifier layers GAIC never uses (the ImageNet file still loads, those keys ignored)
        self.backbone = create_backbone(_NN_NAME[backbone], pretrained=bool(pretrained_backbone),
                                        weights=backbone_weights, with_classifier=False)
        chans, strides = _feature_info(self.backbone)
        if strides[1] != 16 or strides[0] * 2 != strides[1] or strides[1] * 2 != strides[2]:
            raise ValueError(f"gaic: backbone {backbone} taps have strides {strides}, expected 8/16/32")
        self.stride = strides[1]
        self.align_size = int(align_size)
        self.fusion_mode = fusion
        # multi: GAIC's concat(½·f3, f4, 0.5·2×f5) + 1×1 "DimRed"; single: 1×1 on f4
        self.neck: nn.Module = GAICFusion(chans, reddim) if fusion == "multi" else nn.Conv2d(chans[1], reddim, 1)

        self.head = gaic_head(2 * reddim, align_size, batchnorm, dropout)
        for m in [*self.neck.modules(), *self.head.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, images: Tensor) -> Tensor:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 32) → reduced stride-16 map ``Tensor[B, reddim, H/16, W/16]``."""
        f3, f4, f5 = self.backbone(images)
        if self.fusion_mode == "multi":
            return self.neck(f3, f4, f5)
        return self.neck(f4)

    def forward_scores(self, features: Tensor, rois: Tensor, **extra: Tensor) -> Tensor:
        """``rois`` ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` input pixels → scores ``Tensor[K]``.

        The scores are on the normalised-MOS scale: ``MOS ≈ 2.95 + 0.8 · score`` (see :meth:`to_mos`).
        """
        from opencrop.ops import rod_align_avg, roi_align_avg

        rois = rois.to(features.dtype)
        scale = 1.0 / self.stride
        a = self.align_size
        x = torch.cat([roi_align_avg(features, rois, a, scale), rod_align_avg(features, rois, a, scale)], dim=1)
        return self.head(x).reshape(-1)

    @staticmethod
    def to_mos(scores: Tensor) -> Tensor:
        """Predicted scores → the MOS scale of GAICD (inverse of the training normalisation)."""
        return scores * GAIC_MOS_STD + GAIC_MOS_MEAN

    def compute_loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """SmoothL1 between the scores of ``batch["rois"]`` and ``(batch["mos"] − 2.95) / 0.8``."""
        pred = self.predict_batch(batch)
        return {"loss": mos_smooth_l1(pred, batch["mos"])}


def gaic_head(in_channels: int, kernel_size: int, batchnorm: bool = True, dropout: float = 0.5) -> nn.Sequential:
    """GAIC's scoring head (lld533 layout): ``Tensor[K, in_channels, k, k]`` → ``Tensor[K, 1, 1, 1]``.

    conv k×k valid → 768, BN, ReLU → 1×1 → 128, BN, ReLU → dropout → 1×1 → 1 (``batchnorm=False``: no BN, the
    HuiZeng layout). Also S2CNet's all-token head (``in_channels`` = D + 1 node tokens of 16×16). Default init.
    """

    def bn(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if batchnorm else nn.Identity()

    return nn.Sequential(
        nn.Conv2d(in_channels, 768, kernel_size=kernel_size), bn(768), nn.ReLU(inplace=True),
        nn.Conv2d(768, 128, kernel_size=1), bn(128), nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Conv2d(128, 1, kernel_size=1),
    )


def _feature_info(backbone: nn.Module) -> tuple[list[int], list[int]]:
    """``(channels, strides)`` of the three taps from the backbone's ``feature_info``."""
    fi = backbone.feature_info
    if hasattr(fi, "channels") and callable(fi.channels):
        return list(fi.channels()), list(fi.reduction())
    chans = [int(d["num_chs"]) for d in fi]
    strides = [int(d["reduction"]) for d in fi]
    return chans, strides


# ---------------------------------------------------------------------------------------------- weights
#: the former descriptor of a GAIC weight file; one descriptor type now: :class:`~opencrop.modelfiles.ModelFile`
WeightInfo = ModelFile

#: released GAIC weights keyed by pretrained tag ``gaic.tag`` (registered, torch-free, in
#: :mod:`opencrop.models.pretrained`; ``create_model(tag)`` loads them, ``opencrop weights import TAG FILE`` converts)
default_cfgs: dict[str, ModelFile] = {mf.name: mf for mf in TAGS if mf.model == "gaic"}

_BN_KINDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
# lld533 head: FC_layers = Sequential(Sequential(conv, BN, ReLU), Sequential(conv, BN, ReLU), Dropout, conv)
_HEAD_MAP = {
    "FC_layers.0.0": "head.0",
    "FC_layers.0.1": "head.1",
    "FC_layers.1.0": "head.3",
    "FC_layers.1.1": "head.4",
    "FC_layers.3": "head.7",
    "DimRed": "neck.dimred",
}


def _natural_key(name: str) -> tuple:
    """Sort key that orders module paths numerically and a module's tensors in registration order."""
    path, _, kind = name.rpartition(".")
    toks = tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in path.split("."))
    return (*toks, (2, _BN_KINDS.index(kind) if kind in _BN_KINDS else 9, kind))


def convert_released_state_dict(
    state: dict[str, Tensor], backbone: str = "mobilenet_v2", source: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Map a released lld533 GAIC state dict onto :class:`GAIC` → ``(state_dict, config)``.

    Head and reduction layers are mapped by name (``FC_layers.*``, ``DimRed``). The backbone tensors
    (``Feat_ext.feature{3,4,5}.…`` of the d-li14 MobileNetV2 / lld533 ShuffleNetV2) are matched to this
    backbone's tensors **in execution order**, one for one, every shape checked; a missing
    ``num_batches_tracked`` (old torch) becomes 0. Any unmatched or mis-shaped tensor is a
    :class:`ModelFileError` naming it.
    """
    if any(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if "neck.dimred.weight" in state or "head.0.weight" in state:
        raise ModelFileError(source, "already in opencrop layout; load it with create_model('gaic', weights=...)")
    if "DimRed.weight" not in state or "FC_layers.0.0.weight" not in state:
        raise ModelFileError(source, "not a released GAIC checkpoint (no DimRed / FC_layers tensors)")
    reddim = int(state["DimRed.weight"].shape[0])
    align = int(state["FC_layers.0.0.weight"].shape[-1])
    has_bn = "FC_layers.0.1.running_mean" in state
    if not has_bn:
        raise ModelFileError(source, "head without BatchNorm (HuiZeng layout); only the lld533 releases are supported")
    model = GAIC(backbone=backbone, reddim=reddim, align_size=align, fusion="multi", batchnorm=True)
    target = model.state_dict()
    out: dict[str, Tensor] = {}

    for k, v in state.items():
        if k.startswith("Feat_ext."):
            continue
        mod, _, kind = k.rpartition(".")
        if mod not in _HEAD_MAP:
            raise ModelFileError(source, f"unexpected tensor {k} {tuple(v.shape)}")
        out[f"{_HEAD_MAP[mod]}.{kind}"] = v

    src_bb = sorted((k for k in state if k.startswith("Feat_ext.")), key=_natural_key)
    if not all(re.match(r"Feat_ext\.feature[345]\.", k) for k in src_bb):
        bad = [k for k in src_bb if not re.match(r"Feat_ext\.feature[345]\.", k)][:3]
        raise ModelFileError(source, f"unexpected backbone tensors {bad} (expected Feat_ext.feature3/4/5)")
    src_bb_t = [k for k in src_bb if not k.endswith("num_batches_tracked")]
    tgt_bb = [k for k in target if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    if len(src_bb_t) != len(tgt_bb):
        raise ModelFileError(
            source,
            f"backbone has {len(src_bb_t)} tensors but opencrop's {backbone} has {len(tgt_bb)}: "
            f"is --backbone right (mobilenet_v2 / shufflenet_v2)?",
        )
    for s, t in zip(src_bb_t, tgt_bb, strict=True):
        if tuple(state[s].shape) != tuple(target[t].shape):
            raise ModelFileError(
                source, f"{s} {tuple(state[s].shape)} does not fit {t} {tuple(target[t].shape)} (--backbone?)"
            )
        out[t] = state[s]
    for t in target:
        if t.endswith("num_batches_tracked") and t not in out:
            src = None
            if t.startswith("backbone."):
                # the tracked count of the BN whose weight landed in <module>.weight
                mod = t.rpartition(".")[0]
                idx = tgt_bb.index(f"{mod}.weight") if f"{mod}.weight" in tgt_bb else -1
                cand = src_bb_t[idx].rpartition(".")[0] + ".num_batches_tracked" if idx >= 0 else None
                src = state.get(cand) if cand else None
            out[t] = src.clone() if src is not None else torch.zeros((), dtype=torch.long)
    missing = [k for k in target if k not in out]
    unexpected = [k for k in out if k not in target]
    wrong = [k for k in out if k in target and tuple(out[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or wrong:
        raise ModelFileError(source, f"conversion incomplete: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                                     f"mis-shaped {wrong[:3]}")
    return {k: out[k].detach().clone().contiguous() for k in target}, {"name": "gaic", **model.config}


def import_released(
    path: str | os.PathLike[str], backbone: str = "mobilenet_v2", out: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Read a released GAIC ``.pth`` and return (and optionally write to ``out``) an opencrop model file dict."""
    state = read_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFileError(path, "expected a state dict of tensors")
    sd, config = convert_released_state_dict(state, backbone, source=path)
    ckpt = {"model": sd, "config": config, "opencrop_version": opencrop_version(),
            "source": f"lld533/Grid-Anchor-based-Image-Cropping-Pytorch {os.path.basename(str(path))}"}
    if out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        save_atomic(ckpt, out)
    return ckpt


# ---------------------------------------------------------------------------------------------- registry
@register_model("gaic")
def gaic(weights: str | os.PathLike[str] | None = None, **cfg: Any) -> GAIC:
    """GAIC scorer. ``weights``: an opencrop model file or a pretrained tag (``"gaic.mobilenet_v2_gaicd_v1"``); its
    saved config is the default architecture, explicit ``cfg`` keys override it. Returned in eval mode when weights
    are given (:func:`~opencrop.models.checkpoint.build_with_weights`).

    Example:
        >>> model = create_model("gaic", backbone="mobilenet_v2")  # doctest: +SKIP
    """
    return build_with_weights(GAIC, weights, **cfg)
