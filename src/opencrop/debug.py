"""Debug overlay: why a crop was chosen. Drawn on the analysis image (boxes scaled from original pixels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from opencrop.api import Analysis, Crop

__all__ = ["overlay"]

_COLOURS = [(0, 230, 64), (255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220)]


def overlay(an: Analysis, crops: Sequence[Crop]) -> Image.Image:
    """RGB picture: the image with its saliency map tinted red, detected faces (yellow), people (cyan) and
    objects (white, labelled), each chosen crop in its colour with its ratio and score, and runners-up thin."""
    base = an.image.pixels.astype(np.float32)
    sal = getattr(an.prepared, "saliency", None)
    if sal is None:
        sal = an.cues.saliency
    if sal is not None:
        s = np.asarray(Image.fromarray((np.clip(sal, 0, 1) * 255).astype(np.uint8)).resize(
            (base.shape[1], base.shape[0]), Image.Resampling.BILINEAR), np.float32)[..., None] / 255
        base = base * (1 - 0.45 * s) + np.array([255, 0, 0], np.float32) * 0.45 * s
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for dets, col in ((an.cues.people, (0, 255, 255)), (an.cues.faces, (255, 255, 0)),
                      (an.cues.objects, (255, 255, 255))):
        for k, b in enumerate(dets.boxes):
            d.rectangle([float(v) for v in b], outline=col, width=1)
            if dets is an.cues.objects and k < len(dets.labels):
                d.text((float(b[0]) + 2, float(b[1]) + 1), dets.labels[k], fill=col)
    for b in an.cues.subjects:
        d.rectangle([float(v) for v in b], outline=(255, 128, 0), width=2)
    sx, sy = an.image.scale
    sc = np.array([sx, sy, sx, sy])
    for i, c in enumerate(crops):
        col = _COLOURS[i % len(_COLOURS)]
        for box, _ in c.runners_up:
            d.rectangle([float(v) for v in np.asarray(box) * sc], outline=tuple(v // 2 for v in col), width=1)
        b = np.asarray(c.box) * sc
        d.rectangle([float(v) for v in b], outline=col, width=3)
        d.text((float(b[0]) + 4, float(b[1]) + 4), f"{c.ratio}  {c.score:.2f}", fill=col)
    return im
