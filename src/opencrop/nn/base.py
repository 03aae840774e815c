"""Common backbone interface: three feature taps (strides 8, 16, 32 unless dilated) and their description."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from opencrop.errors import ModelFileError

__all__ = ["Backbone", "FeatureInfo", "Tap", "load_state_dict_file"]


@dataclass(frozen=True)
class Tap:
    """One feature tap: its name (``f3``/``f4``/``f5``), channels, reduction (stride) and the module it follows."""

    name: str
    num_chs: int
    reduction: int
    module: str


class FeatureInfo(tuple):
    """The taps of a backbone, in forward order (a tuple of :class:`Tap`), with timm-like helpers."""

    def __new__(cls, taps: list[Tap] | tuple[Tap, ...]) -> FeatureInfo:
        taps = tuple(taps)
        for a, b in itertools.pairwise(taps):
            if b.reduction < a.reduction:
                raise ValueError(f"feature reductions must not decrease: {a} then {b}")
        return super().__new__(cls, taps)

    def channels(self) -> list[int]:
        return [t.num_chs for t in self]

    def reduction(self) -> list[int]:
        return [t.reduction for t in self]

    def names(self) -> list[str]:
        return [t.name for t in self]


class Backbone(nn.Module):
    """Base class: ``forward(x: Tensor[B, 3, H, W]) -> (f3, f4, f5)``, each ``Tensor[B, C_i, H / r_i, W / r_i]``
    (sizes rounded as the convolutions round them; exact when H and W are multiples of 32).

    Subclasses set :attr:`feature_info`, keep torchvision's (or lukemelas') parameter names so upstream ImageNet
    ``state_dict`` files load with ``strict=True``, and may provide :meth:`classify` for sanity checks.
    """

    feature_info: FeatureInfo
    #: name of the weights entry in :mod:`opencrop.nn.weights` used by ``pretrained=True``
    default_weights: str | None = None
    #: keys of an upstream file that this module does not hold (e.g. a classifier that was left out)
    ignored_keys: tuple[str, ...] = ()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits ``Tensor[B, 1000]`` (only for backbones built with their classifier)."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier")

    def load_weights(self, path: str | os.PathLike[str], strict: bool = True, by_order: bool = False) -> None:
        """Load an upstream ``state_dict`` file (``torch.load(weights_only=True)``) into this module.

        Keys listed in :attr:`ignored_keys` prefixes (a classifier this instance was built without) are dropped
        first; anything else that does not match is a :class:`ModelFileError` naming the file and the keys.

        Args:
            path: the file.
            strict: every key of this module must be filled (and, by name, no extra keys may remain).
            by_order: pair tensors by their order instead of their names (``num_batches_tracked`` skipped on both
                sides), for files of the same architecture written by another implementation, e.g. d-li14's
                MobileNetV2 used by GAIC / S2CNet. Counts and every shape must agree.
        """
        sd = load_state_dict_file(path)
        if by_order:
            sd = _rename_by_order(sd, self.state_dict(), path, self.ignored_keys)
        sd = {k: v for k, v in sd.items() if not k.startswith(self.ignored_keys)} if self.ignored_keys else sd
        own = self.state_dict()
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        bad_shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
        if by_order:  # BatchNorm counters are not paired; a file without them is fine
            missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if strict and (missing or unexpected or bad_shape):
            raise ModelFileError(
                path,
                f"does not fit {type(self).__name__}: missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}, shape mismatch {bad_shape[:5]}",
            )
        self.load_state_dict({k: v for k, v in sd.items() if k in own and k not in bad_shape}, strict=False)


def _rename_by_order(
    sd: dict[str, Tensor], own: dict[str, Tensor], path: str | os.PathLike[str], ignored: tuple[str, ...]
) -> dict[str, Tensor]:
    """Give the tensors of ``sd`` the names of ``own`` by position (``num_batches_tracked`` left out)."""
    src = [k for k in sd if not k.endswith("num_batches_tracked")]
    dst = [k for k in own if not k.endswith("num_batches_tracked")]
    if ignored and len(src) > len(dst):  # the file has a head this module was built without: drop its tail
        src = src[: len(dst)]
    if len(src) != len(dst):
        raise ModelFileError(path, f"has {len(src)} tensors, the module {len(dst)}: cannot pair them by order")
    out: dict[str, Tensor] = {}
    for a, b in zip(src, dst, strict=True):
        if tuple(sd[a].shape) != tuple(own[b].shape):
            raise ModelFileError(path, f"by order, {a} {tuple(sd[a].shape)} would go to {b} {tuple(own[b].shape)}")
        out[b] = sd[a]
    return out


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a ``state_dict`` saved with ``torch.save`` (tensors only; ``{"state_dict": ...}`` wrappers unwrapped)."""
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(p, f"not a readable torch state_dict: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ModelFileError(p, "not a state_dict (a mapping of names to tensors)")
    return dict(obj)
