"""MobileNetV2 (Sandler et al., CVPR 2018, arXiv 1801.04381) with torchvision's parameter names.

torchvision's ``mobilenet_v2-b0353104.pth`` (ImageNet, 314 tensors) loads with ``strict=True``. The GAIC / S2CNet
taps are the outputs of ``features[6]`` (f3: 32 ch, stride 8), ``features[13]`` (f4: 96 ch, stride 16) and
``features[17]`` (f5: 320 ch, stride 32); ``features[18]`` (320 → 1280) and the classifier only serve
:meth:`MobileNetV2.classify`.
"""

from __future__ import annotations

from torch import Tensor, nn

from opencrop.nn.base import Backbone, FeatureInfo, Tap

__all__ = ["ConvBNReLU6", "InvertedResidual", "MobileNetV2"]

#: (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU6(nn.Sequential):
    """``0``: k×k conv (no bias, padding k//2), ``1``: BatchNorm, ``2``: ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1×1, ×t) → depthwise 3×3 (stride s) → linear projection (1×1); identity added when s = 1, cin = cout.

    Submodule ``conv`` holds, for t ≠ 1, ``[ConvBNReLU6 expand, ConvBNReLU6 depthwise, Conv2d, BatchNorm2d]``
    and for t = 1 ``[ConvBNReLU6 depthwise, Conv2d, BatchNorm2d]`` (torchvision's layout).
    """

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU6(cin, hidden, 1))
        layers += [
            ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(Backbone):
    """MobileNetV2 1.0× with GAIC taps.

    Args:
        with_classifier: keep ``features.18`` and ``classifier`` (needed for :meth:`classify` and to load the
            torchvision file strictly; they are not used by :meth:`forward`). Without them the file still loads
            (those keys are ignored).

    Forward: ``x`` Tensor[B, 3, H, W] (ImageNet-normalised RGB) → ``(f3, f4, f5)`` =
    (Tensor[B, 32, H/8, W/8], Tensor[B, 96, H/16, W/16], Tensor[B, 320, H/32, W/32]).
    """

    default_weights = "mobilenet_v2-imagenet"

    def __init__(self, with_classifier: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in _SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.with_classifier = with_classifier
        if with_classifier:
            layers.append(ConvBNReLU6(cin, 1280, 1))
        else:
            self.ignored_keys = ("features.18.", "classifier.")
        self.features = nn.Sequential(*layers)  # registered before the classifier: torchvision's tensor order
        if with_classifier:
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))
        self.feature_info = FeatureInfo(
            [Tap("f3", 32, 8, "features.6"), Tap("f4", 96, 16, "features.13"), Tap("f5", 320, 32, "features.17")]
        )
        _init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f = self.features
        f3 = f[:7](x)
        f4 = f[7:14](f3)
        f5 = f[14:18](f4)
        return f3, f4, f5

    def classify(self, x: Tensor) -> Tensor:
        if not self.with_classifier:
            raise NotImplementedError("MobileNetV2 was built with with_classifier=False")
        y = self.features(x).mean(dim=(2, 3))
        return self.classifier(y)


def _init_weights(model: nn.Module) -> None:
    """torchvision-like initialisation (Kaiming fan-out convs, unit BN, small normal linear)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
