"""ShuffleNetV2 (Ma et al., ECCV 2018, arXiv 1807.11164) ×0.5 / ×1.0 with torchvision's parameter names
(``shufflenetv2_x0.5-f707e7126e.pth`` / ``shufflenetv2_x1-5666bf0f80.pth`` load strictly).

Taps (as GAIC's ShuffleNetV2 base): f3 = ``stage2`` (stride 8), f4 = ``stage3`` (stride 16), f5 = ``stage4``
(stride 32); channels 48/96/192 (×0.5) or 116/232/464 (×1.0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from opencrop.nn.base import Backbone, FeatureInfo, Tap

__all__ = ["ShuffleNetV2", "ShuffleUnit", "channel_shuffle"]

_WIDTHS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024)}
_REPEATS = (4, 8, 4)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Tensor[B, C, H, W] → same shape with channels reordered ``(g, C/g) → (C/g, g)``."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _dw(c: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False)


class ShuffleUnit(nn.Module):
    """Stride 1: split channels in half, transform one half (``branch2``), concat, shuffle.
    Stride 2: both branches see the input (``branch1``: depthwise + 1×1; ``branch2``: 1×1, depthwise, 1×1)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                _dw(cin, stride), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin if stride > 1 else half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            _dw(half, stride), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(Backbone):
    """ShuffleNetV2 with three taps.

    Args:
        width: 0.5 or 1.0.
        with_classifier: keep ``conv5`` and ``fc`` for :meth:`classify` (unused by :meth:`forward`).

    Forward: Tensor[B, 3, H, W] → (Tensor[B, c2, H/8, W/8], Tensor[B, c3, H/16, W/16], Tensor[B, c4, H/32, W/32]).
    """

    def __init__(self, width: float = 1.0, with_classifier: bool = True) -> None:
        super().__init__()
        if width not in _WIDTHS:
            raise ValueError(f"ShuffleNetV2 width must be one of {sorted(_WIDTHS)}, got {width}")
        self.width = width
        self.default_weights = "shufflenet_v2_x0_5-imagenet" if width == 0.5 else "shufflenet_v2_x1_0-imagenet"
        ch = _WIDTHS[width]
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, ch[0], 3, 2, 1, bias=False), nn.BatchNorm2d(ch[0]), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = ch[0]
        for i, (reps, cout) in enumerate(zip(_REPEATS, ch[1:4], strict=True)):
            units = [ShuffleUnit(cin, cout, 2)] + [ShuffleUnit(cout, cout, 1) for _ in range(reps - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            cin = cout
        self.with_classifier = with_classifier
        if with_classifier:
            self.conv5 = nn.Sequential(
                nn.Conv2d(cin, ch[4], 1, bias=False), nn.BatchNorm2d(ch[4]), nn.ReLU(inplace=True)
            )
            self.fc = nn.Linear(ch[4], 1000)
        else:
            self.ignored_keys = ("conv5.", "fc.")
        self.feature_info = FeatureInfo(
            [Tap("f3", ch[1], 8, "stage2"), Tap("f4", ch[2], 16, "stage3"), Tap("f5", ch[3], 32, "stage4")]
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f3 = self.stage2(self.maxpool(self.conv1(x)))
        f4 = self.stage3(f3)
        f5 = self.stage4(f4)
        return f3, f4, f5

    def classify(self, x: Tensor) -> Tensor:
        if not self.with_classifier:
            raise NotImplementedError("ShuffleNetV2 was built with with_classifier=False")
        return self.fc(self.conv5(self.forward(x)[2]).mean(dim=(2, 3)))
