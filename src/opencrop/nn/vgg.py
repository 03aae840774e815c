"""VGG16 (Simonyan & Zisserman, ICLR 2015, arXiv 1409.1556) with torchvision's parameter names.

``features`` indices follow torchvision (convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, each followed by
an in-place ReLU; max-pools at 4, 9, 16, 23, 30), so ``vgg16-397923af.pth`` loads strictly. GAIC / HCIC taps:
f3 = ``features[:23]`` (conv4_3 + ReLU, 512 ch, stride 8), f4 = ``features[23:30]`` (pool4, conv5_x, 512 ch,
stride 16), f5 = ``features[30:]`` (pool5, 512 ch, stride 32).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from opencrop.nn.base import Backbone, FeatureInfo, Tap

__all__ = ["VGG16"]

_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(Backbone):
    """VGG16 (no BatchNorm) with three taps.

    Args:
        with_classifier: also build ``avgpool`` + ``classifier`` (the 4096-wide FC layers, 120 M parameters) for
            :meth:`classify`; by default they are left out and their keys are ignored when loading.

    Forward: Tensor[B, 3, H, W] → (Tensor[B, 512, H/8, W/8], Tensor[B, 512, H/16, W/16], Tensor[B, 512, H/32, W/32]).
    """

    default_weights = "vgg16-imagenet"

    def __init__(self, with_classifier: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.with_classifier = with_classifier
        if with_classifier:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 1000),
            )
        else:
            self.ignored_keys = ("classifier.",)
        self.feature_info = FeatureInfo(
            [Tap("f3", 512, 8, "features.22"), Tap("f4", 512, 16, "features.29"), Tap("f5", 512, 32, "features.30")]
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f3 = self.features[:23](x)
        f4 = self.features[23:30](f3)
        f5 = self.features[30:](f4)
        return f3, f4, f5

    def classify(self, x: Tensor) -> Tensor:
        if not self.with_classifier:
            raise NotImplementedError("VGG16 was built with with_classifier=False")
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
