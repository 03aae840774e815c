"""Pasting a photo into an outpainting canvas, and an offline CPU outpainter (no diffusion model).

:func:`paste_geometry` follows GenCrop's ``run_outpaint.py`` (systems.md §7.1 step 2): the photo is resized so its
area is ``U(0.1, 0.5)`` of the ``canvas × canvas`` square (for extreme ratios whose long side would exceed 0.9 ·
canvas: long side ``U(0.5, 0.9)`` · canvas) and placed at a uniformly random position; the pasted rectangle is the
GT crop.

:func:`extend_fill` is the classical outpainter: a push–pull (pyramid) fill that extends the photo's colours into
the unknown region smoothly, plus band-limited noise matched to the photo's own fine texture so the extension is
not flat, then the photo pasted back exactly. It needs only NumPy and OpenCV and takes a few milliseconds per
512² canvas; the result looks like a blurred continuation of the photo, not a plausible scene, so data it makes are
for running the pipeline and learnability checks, never for a real GenCrop model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["extend_fill", "paste_geometry", "push_pull"]


def paste_geometry(width: int, height: int, rng: np.random.Generator, canvas: int = 512,
                   area: tuple[float, float] = (0.1, 0.5)) -> tuple[int, int, int, int]:
    """Where a ``width × height`` photo goes in the canvas → ``(x, y, w, h)`` integer canvas pixels."""
    if width <= 0 or height <= 0:
        raise ValueError(f"photo size must be positive, got {width}x{height}")
    target = float(rng.uniform(*area)) * canvas * canvas
    s = (target / (width * height)) ** 0.5
    w, h = int(width * s), int(height * s)
    if max(w, h) > canvas * 0.9:
        long = int(rng.integers(int(canvas * 0.5), int(canvas * 0.9)))
        if height > width:
            h, w = long, int(width / height * long)
        else:
            w, h = long, int(height / width * long)
    w, h = max(1, min(w, canvas - 1)), max(1, min(h, canvas - 1))
    y = int(rng.integers(0, canvas - h))
    x = int(rng.integers(0, canvas - w))
    return x, y, w, h


def push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown pixels of ``image`` (``[H, W, C]`` float32) from the ``known`` ones (``[H, W]`` bool) by
    push–pull: masked averages down an image pyramid, then each level's holes filled from the coarser level."""
    import cv2

    img = np.where(known[..., None], image, 0).astype(np.float32)
    w = known.astype(np.float32)
    levels = [(img, w)]
    while min(levels[-1][1].shape) > 1:
        im, wt = levels[-1]
        h2, w2 = max(1, im.shape[0] // 2), max(1, im.shape[1] // 2)
        s = cv2.resize(im * wt[..., None], (w2, h2), interpolation=cv2.INTER_AREA)
        ws = cv2.resize(wt, (w2, h2), interpolation=cv2.INTER_AREA)
        if s.ndim == 2:
            s = s[..., None]
        avg = np.where(ws[..., None] > 1e-6, s / np.maximum(ws[..., None], 1e-6), 0)
        levels.append((avg.astype(np.float32), (ws > 1e-6).astype(np.float32)))
    filled = levels[-1][0]
    for im, wt in reversed(levels[:-1]):
        up = cv2.resize(filled, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_LINEAR)
        if up.ndim == 2:
            up = up[..., None]
        filled = np.where(wt[..., None] > 0.5, im, up)
    return filled


def extend_fill(photo: np.ndarray, xywh: tuple[int, int, int, int], canvas: int = 512,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Outpaint ``photo`` (``[h, w, 3]`` uint8 RGB, already at the paste size ``xywh[2:]``) into a
    ``canvas × canvas`` image with the photo at ``xywh`` (module docstring) → ``[canvas, canvas, 3]`` uint8."""
    import cv2

    x, y, w, h = (int(v) for v in xywh)
    if photo.shape[:2] != (h, w):
        raise ValueError(f"photo is {photo.shape[1]}x{photo.shape[0]}, the paste rectangle {w}x{h}")
    rng = rng if rng is not None else np.random.default_rng(0)
    img = np.zeros((canvas, canvas, 3), np.float32)
    known = np.zeros((canvas, canvas), bool)
    img[y : y + h, x : x + w] = photo
    known[y : y + h, x : x + w] = True
    out = push_pull(img, known)
    # fine texture of the photo (its high-pass residual), as noise of the same strength outside it
    f = photo.astype(np.float32)
    detail = float((f - cv2.GaussianBlur(f, (0, 0), 2.0)).std())
    noise = rng.standard_normal((canvas // 2, canvas // 2, 3)).astype(np.float32)
    noise = cv2.resize(noise, (canvas, canvas), interpolation=cv2.INTER_LINEAR)
    out = out + (~known)[..., None] * noise * detail
    out[known] = img[known]
    return np.clip(out, 0, 255).astype(np.uint8)
