"""EfficientNet-Lite0 (Tan & Le, ICML 2019, arXiv 1905.11946; the "Lite" variant: no squeeze-excitation, ReLU6,
fixed stem and head) with lukemelas' parameter names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` /
``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` / ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``), so
``efficientnet-lite0-57934424.pth`` (247 tensors + 49 ``num_batches_tracked``) loads strictly.

Taps: f3 = after ``_blocks.4`` (40 ch, stride 8), f4 = after ``_blocks.10`` (112 ch, stride 16), f5 = after
``_blocks.15`` (320 ch, stride 32). Convolutions use TensorFlow "SAME" padding by default (computed from the
input size, extra pixel at the bottom/right), as the TF-ported weights expect; ``tf_padding=False`` uses
symmetric ``k // 2`` padding instead. BatchNorm eps 1e-3 as in the TF model.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from opencrop.nn.base import Backbone, FeatureInfo, Tap

__all__ = ["EfficientNetLite0", "SameConv2d"]

#: (repeats, kernel, first stride, expansion, output channels) per stage
_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
           (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
_BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters) with TF "SAME" padding: output size ``ceil(in / stride)``, the odd extra
    padding pixel on the bottom/right. With ``tf_padding=False`` it pads ``k // 2`` symmetrically."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False,
                 tf_padding: bool = True) -> None:
        super().__init__(cin, cout, kernel, stride, 0 if tf_padding else kernel // 2, groups=groups, bias=bias)
        self.tf_padding = tf_padding

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_padding:
            ih, iw = x.shape[-2:]
            kh, kw = self.kernel_size
            sh, sw = self.stride
            ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
            pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
            if ph or pw:
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return super().forward(x)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without SE: [1×1 expand + BN + ReLU6] → depthwise k×k + BN + ReLU6 → 1×1 + BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, tf_padding: bool) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, hidden, 1, tf_padding=tf_padding)
            self._bn0 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, tf_padding=tf_padding)
        self._bn1 = nn.BatchNorm2d(hidden, eps=_BN_EPS)
        self._project_conv = SameConv2d(hidden, cout, 1, tf_padding=tf_padding)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 with three taps.

    Args:
        tf_padding: TF "SAME" padding (default, matches the TF-trained weights) or symmetric padding.
        with_classifier: keep ``_conv_head``, ``_bn1`` and ``_fc`` for :meth:`classify`.

    Forward: Tensor[B, 3, H, W] → (Tensor[B, 40, H/8, W/8], Tensor[B, 112, H/16, W/16], Tensor[B, 320, H/32, W/32])
    (sizes ``ceil``-rounded with TF padding).
    """

    default_weights = "efficientnet_lite0-imagenet"

    def __init__(self, tf_padding: bool = True, with_classifier: bool = True) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, tf_padding=tf_padding)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        blocks: list[nn.Module] = []
        cin = 32
        for reps, k, s, e, cout in _STAGES:
            for i in range(reps):
                blocks.append(_MBConv(cin, cout, k, s if i == 0 else 1, e, tf_padding))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self.with_classifier = with_classifier
        if with_classifier:
            self._conv_head = SameConv2d(cin, 1280, 1, tf_padding=tf_padding)
            self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
            self._fc = nn.Linear(1280, 1000)
        else:
            self.ignored_keys = ("_conv_head.", "_bn1.", "_fc.")
        self.feature_info = FeatureInfo(
            [Tap("f3", 40, 8, "_blocks.4"), Tap("f4", 112, 16, "_blocks.10"), Tap("f5", 320, 32, "_blocks.15")]
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        taps: list[Tensor] = []
        for i, blk in enumerate(self._blocks):
            x = blk(x)
            if i in (4, 10, 15):
                taps.append(x)
        return taps[0], taps[1], taps[2]

    def classify(self, x: Tensor) -> Tensor:
        if not self.with_classifier:
            raise NotImplementedError("EfficientNetLite0 was built with with_classifier=False")
        y = F.relu6(self._bn1(self._conv_head(self.forward(x)[2])))
        return self._fc(y.mean(dim=(2, 3)))
