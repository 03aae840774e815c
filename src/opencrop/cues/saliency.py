"""Saliency: spectral residual (Hou & Zhang, CVPR 2007) in numpy, per colour-opponent channel.

Dependency-free (numpy + scipy) and about 1 ms, so it is always available and is the fallback every other cue
degrades to. The map is computed at ``size`` px on the long side (the method works at coarse scale by design).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["background_contrast", "saliency", "saliency_of", "shrink", "spectral_residual"]


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


def _lab(small: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of ``[h, w, 3]`` sRGB 0…255: ``[h, w, 3]`` float64."""
    c = small.astype(np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]])
    xyz /= np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def background_contrast(small: np.ndarray, segments: int = 8) -> np.ndarray:
    """Boundary-prior saliency of an image shrunk by :func:`shrink`: ``[h, w]`` in [0, 1].

    Photographers rarely put the subject on every border, so the border shows the background. Each of the four
    borders (a ring 1/16 of the long side deep) is split into ``segments`` pieces and each piece's mean L*a*b*
    colour taken; a cell's distance to a border is its distance to the nearest of that border's colours. The three
    largest of the four distances are summed (the subject may touch one border), weighted by a broad centre prior
    and scaled to [0, 1]. About 1-2 ms on a 64 px map.
    """
    lab = _lab(small).astype(np.float32)
    sh, sw = lab.shape[:2]
    t = max(1, round(max(sh, sw) / 16))
    flat = lab.reshape(-1, 3)
    sides = (lab[:t].mean(0), lab[-t:].mean(0), lab[:, :t].mean(1), lab[:, -t:].mean(1))  # [len, 3] each
    cols = [np.stack([seg.mean(0) for seg in np.array_split(side, min(segments, len(side)))]) for side in sides]
    c = np.concatenate(cols)  # [4S, 3]: squared distances of every cell to every border colour in one product
    sq = sum((flat[:, k, None] - c[None, :, k]) ** 2 for k in range(3))  # no BLAS call: [h·w, 4S]
    starts = np.cumsum([0] + [len(x) for x in cols[:-1]])
    d = np.sqrt(np.minimum.reduceat(sq, starts, axis=1))  # [h·w, 4]: nearest colour of each border
    d = np.sort(d, axis=1)[:, 1:].sum(axis=1).reshape(sh, sw)
    ys, xs = (np.arange(sh) + 0.5) / sh - 0.5, (np.arange(sw) + 0.5) / sw - 0.5
    d *= np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * 0.35**2))
    lo, hi = float(d.min()), float(d.max())
    return ((d - lo) / max(hi - lo, 1e-12)).astype(np.float32)


#: share of :func:`background_contrast` in the saliency map (the rest: spectral residual); 0.5 scored best of
#: 0 / 0.5 / 0.65 / 0.8 / 1 on the subject benchmark (benchmarks/subject.py: 68.0 / 74.4 / 70.4 / 72.0 / 72.0 %)
MIX = 0.5


def saliency_of(small: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    """:func:`saliency` of an image already shrunk by :func:`shrink` (``[h, w, 3]`` float32 0…255): ``[h, w]``."""
    from scipy.ndimage import gaussian_filter

    mix = MIX
    bg = gaussian_filter(background_contrast(small), sigma=1.0, mode="nearest")
    m = mix * bg + (1 - mix) * spectral_residual(small, sigma)
    lo, hi = float(m.min()), float(m.max())
    return ((m - lo) / max(hi - lo, 1e-12)).astype(np.float32)


def spectral_residual(small: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    """The spectral-residual map of an image shrunk by :func:`shrink`: ``[h, w]`` in [0, 1]."""
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
