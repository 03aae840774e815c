"""Candidate crops. Every generator returns ``[N, 4]`` **xyxy float pixels** of a ``width × height`` image
(normalised only where the name says so), computed without Python loops over boxes.
"""

from __future__ import annotations

import numpy as np

from opencrop._lvrn import lvrn_anchors

__all__ = ["gaic_grid", "lvrn_anchors", "parse_ratio", "ratio_windows"]


def gaic_grid(width: float, height: float, bins: int = 12) -> np.ndarray:
    """GAIC's grid anchors (Zeng et al., CVPR'19 / TPAMI'20) → ``[N ≤ 90, 4]`` xyxy pixels.

    The image is cut into ``bins × bins`` bins; the top-left corner takes bin indices 0–3 and the bottom-right
    8–11 (for 12 bins) in each axis, at bin centres ``(0.5 + k) · step``. A crop is kept iff its grid area
    ``(i2 − i1)(j2 − j1) > 0.4999 · bins²`` and its pixel aspect ``w / h`` lies strictly inside (0.5, 2).
    A 256×256 image gives 90 crops. Order: x1 index, y1, x2, y2 (outermost first), each ascending.
    """
    q = bins // 3
    lo = np.arange(q)
    hi = np.arange(bins - q, bins)
    j1, i1, j2, i2 = (a.ravel() for a in np.meshgrid(lo, lo, hi, hi, indexing="ij"))
    sw, sh = width / bins, height / bins
    w = (j2 - j1) * sw
    h = (i2 - i1) * sh
    keep = ((i2 - i1) * (j2 - j1) > 0.4999 * bins * bins) & (w / h > 0.5) & (w / h < 2.0)
    boxes = np.stack([(0.5 + j1) * sw, (0.5 + i1) * sh, (0.5 + j2) * sw, (0.5 + i2) * sh], axis=1)
    return boxes[keep].astype(np.float64)


def parse_ratio(ratio: str | float) -> float:
    """``"16:9"`` / ``"1.91:1"`` / ``"1.5"`` / ``1.5`` → width / height as a float (> 0)."""
    if isinstance(ratio, (int, float)):
        r = float(ratio)
    else:
        s = str(ratio).strip()
        try:
            if ":" in s or "/" in s or "x" in s.lower():
                a, b = s.replace("/", ":").lower().replace("x", ":").split(":")
                r = float(a) / float(b)
            else:
                r = float(s)
        except (ValueError, ZeroDivisionError) as e:
            raise ValueError(f"bad aspect ratio {ratio!r}: use W:H such as 16:9 or a number such as 1.78") from e
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"bad aspect ratio {ratio!r}: must be positive")
    return r


def ratio_windows(
    width: float,
    height: float,
    ratio: str | float,
    min_scale: float = 0.5,
    num_scales: int = 9,
    step: float = 0.04,
    max_count: int = 1500,
) -> np.ndarray:
    """Windows of exact aspect ``ratio`` (w / h) over scales and positions → ``[N, 4]`` xyxy pixels.

    Scale 1 is the largest window of that ratio inside the image; scales go down linearly to ``min_scale`` of
    that window's side. At each scale the window slides over the free space with a stride of about
    ``step`` × the image's longer side, both image edges always included. If the total exceeds ``max_count`` the
    stride grows until it fits. Row order: scale descending, then y, then x.
    """
    r = parse_ratio(ratio)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    if width / height > r:
        h0, w0 = float(height), float(height) * r
    else:
        w0, h0 = float(width), float(width) / r
    scales = np.linspace(1.0, min_scale, num_scales) if num_scales > 1 else np.ones(1)
    ws, hs = w0 * scales, h0 * scales
    stride = step * max(width, height)
    for _ in range(32):
        nx = np.floor((width - ws) / stride + 1e-9).astype(int) + 1
        ny = np.floor((height - hs) / stride + 1e-9).astype(int) + 1
        nx = np.where(width - ws > 1e-6, np.maximum(nx, 2), 1)
        ny = np.where(height - hs > 1e-6, np.maximum(ny, 2), 1)
        total = int((nx * ny).sum())
        if total <= max_count:
            break
        stride *= 1.25
    # one vectorised expansion: repeat each scale's grid of (x, y) positions
    sidx = np.repeat(np.arange(len(scales)), nx * ny)
    offs = np.arange(total) - np.repeat(np.cumsum(nx * ny) - nx * ny, nx * ny)
    iy, ix = offs // nx[sidx], offs % nx[sidx]
    fx = np.where(nx[sidx] > 1, ix / np.maximum(nx[sidx] - 1, 1), 0.5)
    fy = np.where(ny[sidx] > 1, iy / np.maximum(ny[sidx] - 1, 1), 0.5)
    x1 = fx * (width - ws[sidx])
    y1 = fy * (height - hs[sidx])
    return np.stack([x1, y1, x1 + ws[sidx], y1 + hs[sidx]], axis=1)
