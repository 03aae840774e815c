"""``create_backbone``: one entry point for every backbone, optionally with ImageNet weights."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from opencrop.nn.base import Backbone
from opencrop.nn.efficientnet_lite import EfficientNetLite0
from opencrop.nn.mobilenetv2 import MobileNetV2
from opencrop.nn.resnet import ResNet50
from opencrop.nn.shufflenetv2 import ShuffleNetV2
from opencrop.nn.vgg import VGG16
from opencrop.nn.weights import resolve_weights

__all__ = ["create_backbone", "list_backbones"]

_BUILDERS: dict[str, Callable[..., Backbone]] = {
    "mobilenet_v2": MobileNetV2,
    "vgg16": VGG16,
    "resnet50": ResNet50,
    "shufflenet_v2_x0_5": lambda **kw: ShuffleNetV2(width=0.5, **kw),
    "shufflenet_v2_x1_0": lambda **kw: ShuffleNetV2(width=1.0, **kw),
    "efficientnet_lite0": EfficientNetLite0,
}


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone`."""
    return sorted(_BUILDERS)


def create_backbone(
    name: str,
    pretrained: bool = False,
    weights: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Backbone:
    """Build backbone ``name`` (see :func:`list_backbones`), optionally loading ImageNet weights.

    Args:
        name: ``"mobilenet_v2"``, ``"vgg16"``, ``"resnet50"``, ``"shufflenet_v2_x0_5"``, ``"shufflenet_v2_x1_0"`` or
            ``"efficientnet_lite0"``.
        pretrained: load the backbone's default ImageNet file, found by
            :func:`opencrop.nn.weights.resolve_weights` (explicit path → ``$OPENCROP_MODEL_<NAME>`` → opencrop cache →
            torch hub cache → installed registry package; a download only with ``OPENCROP_ALLOW_DOWNLOAD=1``).
        weights: path of a ``state_dict`` file to load (implies ``pretrained``; checked strictly against the
            module's names, ignoring a classifier the module was built without).
        **kwargs: passed to the backbone class (``with_classifier``, ``dilate_last``, ``frozen_bn``, ``tf_padding``);
            ``None`` values are dropped so callers can forward unset options.

    Returns:
        The :class:`~opencrop.nn.base.Backbone` in training mode (call ``.eval()`` for inference).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        opencrop.errors.ModelFileError: weights requested but missing, corrupt or not fitting.

    Example:
        >>> bb = create_backbone("mobilenet_v2")
        >>> bb.feature_info.channels(), bb.feature_info.reduction()
        ([32, 96, 320], [8, 16, 32])
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}")
    model = _BUILDERS[name](**{k: v for k, v in kwargs.items() if v is not None})
    if pretrained or weights is not None:
        if model.default_weights is None:  # pragma: no cover - every builder has one
            raise ValueError(f"backbone {name!r} has no default weights")
        path = resolve_weights(model.default_weights, weights)
        model.load_weights(path)
    return model
