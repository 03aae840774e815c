"""Saliency: spectral residual (Hou & Zhang, CVPR 2007) in numpy, per colour-opponent channel.

Dependency-free (numpy + scipy) and about 1 ms, so it is always available and is the fallback every other cue
degrades to. The map is computed at ``size`` px on the long side (the method works at coarse scale by design).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["saliency"]


def _spectral_residual(ch: np.ndarray) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    f = np.fft.fft2(ch)
    amp = np.abs(f)
    log_amp = np.log(amp + 1e-8)
    residual = log_amp - uniform_filter(log_amp, size=3, mode="wrap")
    phase = f / (amp + 1e-8)
    return np.abs(np.fft.ifft2(np.exp(residual) * phase)) ** 2


def shrink(image: np.ndarray, size: int = 64) -> np.ndarray:
    """``image`` (``[H, W, 3]`` or ``[H, W]`` uint8) bilinearly shrunk to long side ``size`` (≥ 8 px a side):
    float32 ``[h, w, 3]`` in 0…255, the input of :func:`saliency_of`."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    return np.asarray(Image.fromarray(image[..., :3]).resize((sw, sh), Image.BILINEAR), dtype=np.float32)


def saliency(image: np.ndarray, size: int = 64, sigma: float = 2.5) -> np.ndarray:
    """Saliency of ``image`` (``[H, W, 3]`` uint8 RGB): float32 ``[h, w]`` in [0, 1], h/w = H/W, long side ``size``.

    Three channels (luminance, red–green, blue–yellow) each get a spectral-residual map; the maps are summed,
    smoothed by a Gaussian of ``sigma`` map pixels and scaled to [0, 1]. A flat image gives all zeros.
    """
    return saliency_of(shrink(image, size), sigma)


def saliency_of(small: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    """:func:`saliency` of an image already shrunk by :func:`shrink` (``[h, w, 3]`` float32 0…255): ``[h, w]``."""
    from scipy.ndimage import gaussian_filter  # lazy: scipy.ndimage costs ~0.3 s to import (CLI start-up)

    sh, sw = small.shape[:2]
    x = small / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    chans = ((r + g + b) / 3.0, r - g, b - (r + g) / 2.0)
    pad = max(2, max(sh, sw) // 8)  # reflect-pad so the FFT's wrap-around does not light up the borders
    total = np.zeros((sh, sw), dtype=np.float64)
    for ch in chans:
        if float(ch.std()) < 1e-4:
            continue
        padded = np.pad(ch - ch.mean(), pad, mode="reflect")
        total += _spectral_residual(padded)[pad:-pad, pad:-pad]
    total = gaussian_filter(total, sigma=sigma, mode="nearest")
    lo, hi = float(total.min()), float(total.max())
    if hi - lo < 1e-12:
        return np.zeros((sh, sw), dtype=np.float32)
    return ((total - lo) / (hi - lo)).astype(np.float32)
