"""Input preprocessing of the learned croppers: resize rule, pixel scale and normalisation (systems.md §1.3).

Two resize rules exist in the GAIC family:

* ``"short_side"`` (GAIC, S2CNet, HCIC/GAFIC on GAICD): the shorter side goes to ``size`` (256) and **both**
  sides are then rounded to the nearest multiple of ``multiple`` (32), so the aspect ratio is kept only
  approximately and x and y get slightly different scale factors.
* ``"fixed"`` (HCIC/GAFIC on CPC, FCDB, FLMS): the image is resized to ``size × size``, aspect ignored.

Pixels are divided by ``pixel_scale`` (GAIC and S2CNet use **256**, torchvision-style code 255) and then
normalised with the ImageNet mean / std, RGB order. Resampling is bilinear with half-pixel centres and no
anti-aliasing, which is what ``cv2.resize(..., INTER_LINEAR)`` in the GAIC code does; ``antialias=True``
approximates PIL's filtered downsampling used by HCIC.

Box convention: boxes of the source image (xyxy float pixels) map to the resized input by multiplying x by
``sx = W_in / W`` and y by ``sy = H_in / H`` (see :meth:`Preprocess.scale_factors`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_RESIZE_RULES = ("short_side", "fixed")


@dataclass(frozen=True)
class Preprocess:
    """How a learned model wants its input image.

    Attributes:
        resize: ``"short_side"`` (shorter side → ``size``, both sides rounded to multiples of ``multiple``)
            or ``"fixed"`` (``size × size``).
        size: target short side or fixed side, in pixels (256 in every GAIC-family recipe).
        multiple: rounding unit of the ``"short_side"`` rule (32); ignored for ``"fixed"``.
        pixel_scale: pixels are divided by this before normalisation (256 for GAIC / S2CNet, 255 otherwise).
        mean, std: per-channel RGB normalisation applied after scaling.
        antialias: anti-aliased downsampling (PIL-like) instead of cv2-like plain bilinear.
    """

    resize: str = "short_side"
    size: int = 256
    multiple: int = 32
    pixel_scale: float = 256.0
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    antialias: bool = False

    def __post_init__(self) -> None:
        if self.resize not in _RESIZE_RULES:
            raise ValueError(f"Preprocess.resize must be one of {_RESIZE_RULES}, got {self.resize!r}")
        if self.size <= 0 or self.multiple <= 0 or self.pixel_scale <= 0:
            raise ValueError(f"Preprocess sizes must be positive, got {self}")
        # YAML / JSON give lists; keep the dataclass hashable and comparable
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    # ------------------------------------------------------------------ geometry
    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """``(W_in, H_in)`` of the network input for a ``width × height`` source image.

        Example:
            >>> Preprocess().output_size(1024, 683)
            (384, 256)
            >>> Preprocess(resize="fixed").output_size(1024, 683)
            (256, 256)
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if self.resize == "fixed":
            return self.size, self.size
        s = self.size / min(width, height)
        m = self.multiple
        w_in = max(m, int(np.round(width * s / m)) * m)
        h_in = max(m, int(np.round(height * s / m)) * m)
        return w_in, h_in

    def scale_factors(self, width: int, height: int) -> tuple[float, float]:
        """``(sx, sy)``: multiply source x by ``sx`` and y by ``sy`` to get input-pixel coordinates."""
        w_in, h_in = self.output_size(width, height)
        return w_in / width, h_in / height

    # ------------------------------------------------------------------ pixels
    def __call__(self, image: np.ndarray) -> tuple[Any, tuple[float, float]]:
        """Resize and normalise one image.

        Args:
            image (ndarray[H, W, 3] uint8 RGB): the source image.

        Returns:
            ``(tensor, (sx, sy))``: ``Tensor[3, H_in, W_in]`` float32 and the box scale factors.
        """
        x, s = self.resize_image(image)
        return self.normalize(x), s

    def resize_image(self, image: np.ndarray) -> tuple[Any, tuple[float, float]]:
        """The resize step alone (training inserts its augmentations between it and :meth:`normalize`):
        ``[H, W, 3]`` uint8 → ``(Tensor[3, H_in, W_in]`` float32 in 0–255, ``(sx, sy))``."""
        import torch
        import torch.nn.functional as F

        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an [H, W, 3] RGB image, got shape {tuple(image.shape)}")
        h, w = int(image.shape[0]), int(image.shape[1])
        w_in, h_in = self.output_size(w, h)
        x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float()
        if (h_in, w_in) != (h, w):
            x = F.interpolate(
                x[None], size=(h_in, w_in), mode="bilinear", align_corners=False, antialias=self.antialias
            )[0]
        return x, (w_in / w, h_in / h)

    def normalize(self, x: Any) -> Any:
        """``Tensor[3, H, W]`` float in 0–255 → scaled by ``1/pixel_scale`` and ImageNet-normalised."""
        import torch

        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x / self.pixel_scale - mean) / std

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Preprocess keys {unknown}; valid: {sorted(known)}")
        return cls(**d)

    @classmethod
    def gaic(cls) -> Preprocess:
        """GAIC / S2CNet: short side 256, multiples of 32, pixels / 256."""
        return cls(resize="short_side", size=256, multiple=32, pixel_scale=256.0)

    @classmethod
    def hcic(cls, fixed: bool = False) -> Preprocess:
        """HCIC / GAFIC: pixels / 255; fixed 256×256 on CPC / FCDB / FLMS, else short side 256 (GAICD)."""
        return cls(resize="fixed" if fixed else "short_side", size=256, multiple=32, pixel_scale=255.0,
                   antialias=True)
