"""Debug overlay: the cues drawn over the photo, to see *why* a crop was chosen."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from opencrop.cues.types import Cues, Detections

__all__ = ["draw_cues"]

_COLOURS = {"faces": (0, 230, 0), "people": (40, 140, 255), "objects": (255, 200, 0)}


def draw_cues(image: Image.Image, cues: Cues, saliency_alpha: float = 0.55, mask_alpha: float = 0.35) -> Image.Image:
    """A copy of ``image`` with ``cues`` drawn on it (``image`` may be larger than the analysis image).

    Saliency is a red tint whose opacity follows the map (up to ``saliency_alpha``), the person mask a blue tint;
    faces are green boxes, people blue, objects yellow, each labelled with its class and score. Boxes are scaled
    from analysis pixels (``cues.width × cues.height``) to ``image``'s size.
    """
    base = image.convert("RGB")
    w, h = base.size
    sx, sy = w / max(cues.width, 1), h / max(cues.height, 1)
    out = np.asarray(base, dtype=np.float32)
    for layer, colour, alpha in ((cues.saliency, (255, 0, 0), saliency_alpha), (cues.person_mask, (0, 80, 255),
                                                                                   mask_alpha)):
        if layer is None:
            continue
        m = np.asarray(Image.fromarray(np.asarray(layer, dtype=np.float32)).resize((w, h), Image.BILINEAR))
        a = (np.clip(m, 0, 1) ** 1.5 * alpha)[..., None]
        out = out * (1 - a) + np.asarray(colour, dtype=np.float32) * a
    img = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    lw = max(2, round(min(w, h) / 250))
    for kind in ("objects", "people", "faces"):
        det: Detections = getattr(cues, kind)
        colour = _COLOURS[kind]
        for box, score, label in zip(det.boxes, det.scores, det.labels, strict=False):
            x1, y1, x2, y2 = float(box[0]) * sx, float(box[1]) * sy, float(box[2]) * sx, float(box[3]) * sy
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=lw)
            text = f"{label} {float(score):.2f}"
            tx, ty = x1 + lw, max(0.0, y1 - 12 - lw) if y1 > 14 else y1 + lw
            tb = draw.textbbox((tx, ty), text)
            draw.rectangle(tb, fill=(0, 0, 0))
            draw.text((tx, ty), text, fill=colour)
    for i, note in enumerate(cues.notes):
        draw.text((4, 4 + 12 * i), note[:120], fill=(255, 255, 255))
    return img
