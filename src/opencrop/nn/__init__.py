"""Neural-network building blocks: ImageNet backbones with three feature taps, multi-scale fusion, weight files.

Every backbone returns ``(f3, f4, f5)`` at strides 8, 16, 32 and describes them in ``feature_info``; parameter names
follow the upstream weight files (torchvision; lukemelas for EfficientNet-Lite0) so they load strictly.

Names are imported on first access (PEP 562), so ``opencrop.nn.weights`` and ``opencrop.nn.cli`` load without
torch (≈ 1 s): the CLI and the default cropper never pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "Backbone": "base", "FeatureInfo": "base", "Tap": "base",
    "EfficientNetLite0": "efficientnet_lite",
    "create_backbone": "factory", "list_backbones": "factory",
    "GAICFusion": "fusion", "HCICFusion": "fusion",
    "MobileNetV2": "mobilenetv2",
    "FrozenBatchNorm2d": "resnet", "ResNet50": "resnet",
    "ShuffleNetV2": "shufflenetv2",
    "VGG16": "vgg",
    "WEIGHTS": "weights", "resolve_weights": "weights",
}

__all__ = [
    "VGG16",
    "WEIGHTS",
    "Backbone",
    "EfficientNetLite0",
    "FeatureInfo",
    "FrozenBatchNorm2d",
    "GAICFusion",
    "HCICFusion",
    "MobileNetV2",
    "ResNet50",
    "ShuffleNetV2",
    "Tap",
    "create_backbone",
    "list_backbones",
    "resolve_weights",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"opencrop.nn.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'opencrop.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if TYPE_CHECKING:
    from opencrop.nn.base import Backbone, FeatureInfo, Tap
    from opencrop.nn.efficientnet_lite import EfficientNetLite0
    from opencrop.nn.factory import create_backbone, list_backbones
    from opencrop.nn.fusion import GAICFusion, HCICFusion
    from opencrop.nn.mobilenetv2 import MobileNetV2
    from opencrop.nn.resnet import FrozenBatchNorm2d, ResNet50
    from opencrop.nn.shufflenetv2 import ShuffleNetV2
    from opencrop.nn.vgg import VGG16
    from opencrop.nn.weights import WEIGHTS, resolve_weights
