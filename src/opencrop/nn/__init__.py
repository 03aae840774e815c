"""Neural-network building blocks: ImageNet backbones with three feature taps, multi-scale fusion, weight files.

Every backbone returns ``(f3, f4, f5)`` at strides 8, 16, 32 and describes them in ``feature_info``; parameter names
follow the upstream weight files (torchvision; lukemelas for EfficientNet-Lite0) so they load strictly.
"""

from __future__ import annotations

from opencrop.nn.base import Backbone, FeatureInfo, Tap
from opencrop.nn.efficientnet_lite import EfficientNetLite0
from opencrop.nn.factory import create_backbone, list_backbones
from opencrop.nn.fusion import GAICFusion, HCICFusion
from opencrop.nn.mobilenetv2 import MobileNetV2
from opencrop.nn.resnet import FrozenBatchNorm2d, ResNet50
from opencrop.nn.shufflenetv2 import ShuffleNetV2
from opencrop.nn.vgg import VGG16
from opencrop.nn.weights import WEIGHTS, resolve_weights

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
