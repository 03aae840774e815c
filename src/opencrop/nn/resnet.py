"""ResNet-50 (He et al., CVPR 2016, arXiv 1512.03385; torchvision's "v1.5": stride on the 3×3 conv) with
torchvision's parameter names, so ``resnet50-*.pth`` loads strictly.

Taps: f3 = ``layer2`` (512 ch, stride 8), f4 = ``layer3`` (1024 ch, stride 16), f5 = ``layer4`` (2048 ch, stride 32,
or stride 16 with ``dilate_last=True``: the "DC5" variant used by DETR-style models, layer4 with stride 1 and
dilation 2 as torchvision's ``replace_stride_with_dilation=[False, False, True]``: the first block of layer4 keeps
dilation 1, the others use 2). ``frozen_bn=True`` uses :class:`FrozenBatchNorm2d` (fixed affine statistics).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from opencrop.nn.base import Backbone, FeatureInfo, Tap

__all__ = ["Bottleneck", "FrozenBatchNorm2d", "ResNet50"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (buffers, never trained); ``eps`` = 1e-5.

    Loads a ``BatchNorm2d`` state (``num_batches_tracked`` is accepted and dropped).
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride, dilation) → 1×1 (×4), identity or projected shortcut, ReLU after the sum."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, norm: type[nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)


class ResNet50(Backbone):
    """ResNet-50 with taps after layer2, layer3, layer4.

    Args:
        dilate_last: DC5: layer4 keeps stride 16 (dilation 2).
        frozen_bn: use :class:`FrozenBatchNorm2d` everywhere.
        with_classifier: keep ``fc`` (2048 → 1000) for :meth:`classify`.

    Forward: Tensor[B, 3, H, W] → (Tensor[B, 512, H/8, W/8], Tensor[B, 1024, H/16, W/16],
    Tensor[B, 2048, H/32, W/32] or H/16 with ``dilate_last``).
    """

    default_weights = "resnet50-imagenet"

    def __init__(self, dilate_last: bool = False, frozen_bn: bool = False, with_classifier: bool = True) -> None:
        super().__init__()
        norm: type[nn.Module] = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        self._norm = norm
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes, self.dilation = 64, 1
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2, dilate=dilate_last)
        self.with_classifier = with_classifier
        if with_classifier:
            self.fc = nn.Linear(2048, 1000)
        else:
            self.ignored_keys = ("fc.",)
        self.feature_info = FeatureInfo([
            Tap("f3", 512, 8, "layer2"),
            Tap("f4", 1024, 16, "layer3"),
            Tap("f5", 2048, 16 if dilate_last else 32, "layer4"),
        ])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        prev_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        down = None
        if stride != 1 or self.inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), self._norm(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, prev_dilation, down, self._norm)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, 1, self.dilation, None, self._norm) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f3 = self.layer2(self.layer1(x))
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return f3, f4, f5

    def classify(self, x: Tensor) -> Tensor:
        if not self.with_classifier:
            raise NotImplementedError("ResNet50 was built with with_classifier=False")
        return self.fc(self.forward(x)[2].mean(dim=(2, 3)))
