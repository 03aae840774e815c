"""Multi-scale fusion of the three backbone taps into one stride-16 map.

Both modules take ``(f3, f4, f5)`` = (Tensor[B, C3, H3, W3], Tensor[B, C4, H4, W4], Tensor[B, C5, H5, W5]) (strides
8, 16, 32) and return Tensor[B, reddim, H4, W4]. f3 and f5 are resized bilinearly with ``align_corners=True`` to
f4's size; for inputs whose sides are multiples of 32 this is exactly the ×½ / ×2 ``UpsamplingBilinear2d`` of the
original code (with ``align_corners=True`` the sampling depends only on the input and output sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GAICFusion", "HCICFusion"]


def _to(x: Tensor, size: Sequence[int]) -> Tensor:
    """``x`` resized to ``size`` (h, w), or ``x`` itself when its size is already that. Under ``torch.export``
    with symbolic sizes the test adds no guard: unless the sizes are provably equal it resizes (an identity with
    ``align_corners=True`` when they happen to be equal), so the graph stays valid at every input size."""
    from torch.fx.experimental.symbolic_shapes import statically_known_true

    if all(statically_known_true(a == b) for a, b in zip(x.shape[-2:], size, strict=True)):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class GAICFusion(nn.Module):
    """GAIC "multi" fusion: ``dimred(concat(down(f3), f4, 0.5 · up(f5)))``, ``dimred`` a 1×1 conv with bias, no
    activation (GAIC / S2CNet: ``DimRed``).

    Args:
        in_channels: (C3, C4, C5), e.g. ``backbone.feature_info.channels()`` (MobileNetV2: 32, 96, 320 → 448).
        reddim: output channels (8 in GAIC's MobileNet/ShuffleNet models and S2CNet, 32 in the VGG configs).
    """

    def __init__(self, in_channels: Sequence[int], reddim: int = 8) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"GAICFusion needs 3 input channel counts, got {list(in_channels)}")
        self.in_channels = tuple(int(c) for c in in_channels)
        self.reddim = reddim
        self.dimred = nn.Conv2d(sum(self.in_channels), reddim, kernel_size=1)

    def forward(self, f3: Tensor, f4: Tensor, f5: Tensor) -> Tensor:
        size = f4.shape[-2:]
        cat = torch.cat((_to(f3, size), f4, 0.5 * _to(f5, size)), dim=1)
        return self.dimred(cat)


class HCICFusion(nn.Module):
    """HCIC / GAFIC / GenCrop fusion: per-scale 1×1 conv to ``mid`` channels, summed, then 1×1 conv to ``reddim``.

    Parameter names follow HCIC (``f3_layer``, ``f4_layer``, ``f5_layer``, ``feat_ext``). HCIC has no activation
    after ``feat_ext``; GenCrop (``train_gencrop.py``: ``f3_unify``/``f4_unify``/``f5_unify`` → ``f_down``, same
    align_corners=True resize to f4 for ResNet backbones) applies a ReLU: ``relu=True``.

    Args:
        in_channels: (C3, C4, C5), e.g. VGG16: (512, 512, 512).
        reddim: output channels (32 in HCIC and GenCrop).
        mid: width of the per-scale projections (256).
        relu: apply ReLU to the output.
    """

    def __init__(self, in_channels: Sequence[int], reddim: int = 32, mid: int = 256, relu: bool = False) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"HCICFusion needs 3 input channel counts, got {list(in_channels)}")
        c3, c4, c5 = (int(c) for c in in_channels)
        self.in_channels = (c3, c4, c5)
        self.reddim, self.relu = reddim, relu
        self.f3_layer = nn.Conv2d(c3, mid, 1)
        self.f4_layer = nn.Conv2d(c4, mid, 1)
        self.f5_layer = nn.Conv2d(c5, mid, 1)
        self.feat_ext = nn.Conv2d(mid, reddim, 1)

    def forward(self, f3: Tensor, f4: Tensor, f5: Tensor) -> Tensor:
        size = f4.shape[-2:]
        agg = self.f3_layer(_to(f3, size)) + self.f4_layer(f4) + self.f5_layer(_to(f5, size))
        out = self.feat_ext(agg)
        return F.relu(out) if self.relu else out
