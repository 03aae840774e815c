"""Debug overlay: why a crop was chosen, drawn on the full-size upright image with a legend underneath.

The picture shows the saliency map (tinted red), every detection labelled with its class and score (faces that
are not plausible enough to protect anything are drawn grey and marked "ignored"), the heads the rules protect,
user subjects and the focus point, each chosen crop in its colour with its score and rule level, and the
runners-up thin. The legend names each crop's rule level (:data:`opencrop.rules.LEVEL_TEXT`), what it cuts
(detections partly inside it), heads that had to be fitted to the ratio, and the pipeline's notes.
Boxes arrive as xyxy pixels: cues in analysis pixels, crops in original pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from opencrop.api import Analysis, Crop

__all__ = ["MAX_SIDE", "MIN_SIDE", "explain", "overlay"]

#: small images are drawn enlarged to this long side (pixels), so that labels stay legible
MIN_SIDE = 1024
#: the overlay's long side is at most this many pixels (a 100-MP photo would give a 300-MB PNG otherwise)
MAX_SIDE = 4096

CROP_COLOURS = [(0, 230, 64), (255, 64, 64), (64, 160, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220)]
FACE, FACE_IGNORED, HEAD = (255, 255, 0), (150, 150, 150), (255, 160, 0)
PERSON, OBJECT, SUBJECT = (0, 255, 255), (255, 255, 255), (255, 0, 200)


def explain(an: Analysis, crops: Sequence[Crop]) -> dict[str, list[str]]:
    """Plain-text reasons: ``{"crops": [one line per crop], "cues": [...], "notes": [...]}``.

    A crop line gives its ratio, score, rule level and what it promises, the detections it cuts (partly inside:
    ``label score (k % inside)``) and the heads that were fitted to the ratio because they could not fit whole.
    """
    from opencrop.rules import LEVEL_TEXT, Rules, kept_fraction

    cues = an.cues
    rules = Rules(cues)
    sx, sy = an.frame.scale
    sc = np.array([sx, sy, sx, sy])
    dets = _detections(an)
    has_rules = bool(len(rules.heads) or len(rules.subjects))
    lines = []
    for c in crops:
        b = np.asarray(c.box, np.float64)[None] * sc
        why = f"level {c.level}: {_level_text(LEVEL_TEXT[c.level], len(rules.subjects) > 0, len(rules.heads) > 0)}" \
            if has_rules else "no face or subject to protect: model score alone"
        text = f"{c.ratio}  score {c.score:.3f}  {why}"
        if len(dets["boxes"]):
            kept = kept_fraction(b, dets["boxes"])[0]
            cut = [f"{lab} ({k:.0%} inside)" for lab, k in zip(dets["labels"], kept, strict=True)
                   if 0.02 < k < 0.98]
            if cut:
                text += "; cuts " + ", ".join(cut[:4]) + (f" and {len(cut) - 4} more" if len(cut) > 4 else "")
        if len(rules.heads):
            fitted = rules.heads_for(b)
            n = int(np.any(np.abs(fitted - rules.heads) > 0.5, axis=1).sum())
            if n:
                text += f"; {n} head(s) too big for {c.ratio}: face + as much head as fits"
        if c.warning:
            text += f"; {c.warning}"
        lines.append(text)
    n_ign = int((~dets["plausible"]).sum()) if len(dets["plausible"]) else 0
    cue_lines = [f"{len(cues.faces)} face(s) ({n_ign} ignored as implausible), {len(cues.people)} person(s), "
                 f"{len(cues.objects)} object(s), saliency {'on' if _saliency(an) is not None else 'off'}"]
    if cues.runtimes:
        by: dict[str, list[str]] = {}
        for cue, ran in cues.runtimes.items():
            by.setdefault(ran, []).append(cue)
        cue_lines.append("; ".join(f"{' + '.join(c)} on {ran}" for ran, c in by.items()))
    if len(cues.subjects) or cues.focus is not None:
        cue_lines.append(f"user: {len(cues.subjects)} subject box(es)" + (", a focus point" if cues.focus else ""))
    notes = list(cues.notes) + [f"degraded: {d}" for d in cues.degraded]
    return {"crops": lines, "cues": cue_lines, "notes": notes}


def _level_text(text: str, subjects: bool, heads: bool) -> str:
    """``text`` without the clauses about what this image does not have (user subjects, heads)."""
    if not subjects:
        text = text.replace("user subjects whole, ", "").replace("user subjects whole ", "")
        text = text.replace(" (a user subject could not fit)", "")
    if not heads:
        text = text.replace(" (heads could not be kept)", "")
    return text


def _saliency(an: Analysis) -> np.ndarray | None:
    sal = getattr(an.prepared, "saliency", None)
    return an.cues.saliency if sal is None else sal


def _detections(an: Analysis) -> dict[str, np.ndarray | list[str]]:
    """Faces, people and objects of ``an`` as one list: boxes ``[N, 4]`` xyxy analysis pixels, labels with scores,
    colours, and which faces are plausible (``plausible`` covers the faces only)."""
    from opencrop.cues.faces import plausible_faces

    cues = an.cues
    ok = plausible_faces(cues.faces, cues.people, cues.objects) if len(cues.faces) else np.zeros(0, bool)
    boxes, labels, colours = [], [], []
    for k, (b, s) in enumerate(zip(cues.faces.boxes, cues.faces.scores, strict=True)):
        boxes.append(b)
        labels.append(f"face {s:.2f}" + ("" if ok[k] else " ignored"))
        colours.append(FACE if ok[k] else FACE_IGNORED)
    for dets, col, name in ((cues.people, PERSON, "person"), (cues.objects, OBJECT, None)):
        for k, (b, s) in enumerate(zip(dets.boxes, dets.scores, strict=True)):
            boxes.append(b)
            lab = name or (dets.labels[k] if k < len(dets.labels) else "object")
            labels.append(f"{lab} {s:.2f}")
            colours.append(col)
    arr = np.asarray(boxes, np.float64).reshape(-1, 4)
    return {"boxes": arr, "labels": labels, "colours": colours, "plausible": ok}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def overlay(an: Analysis, crops: Sequence[Crop], max_side: int = MAX_SIDE) -> Image.Image:
    """RGB picture of the full-size upright image (shrunk to ``max_side`` at most) with every cue, crop and
    runner-up drawn and labelled, and a legend panel below it (:func:`explain`)."""
    from opencrop.rules import Rules

    frame = an.frame
    full, _ = frame.full()
    pic = full.convert("RGB")
    long = max(frame.width, frame.height)
    f = min(max_side / long, max(1.0, MIN_SIDE / long))  # small images are enlarged so the labels can be read
    if f != 1.0 or pic.size != (frame.width, frame.height):
        pic = pic.resize((max(1, round(frame.width * f)), max(1, round(frame.height * f))), Image.Resampling.BOX)
    w, h = pic.size
    base = np.asarray(pic, np.float32)
    sal = _saliency(an)
    if sal is not None:
        s = np.asarray(Image.fromarray((np.clip(sal, 0, 1) * 255).astype(np.uint8)).resize(
            (w, h), Image.Resampling.BILINEAR), np.float32)[..., None] / 255
        base = base * (1 - 0.45 * s) + np.array([255, 0, 0], np.float32) * 0.45 * s
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    unit = max(1, round(max(w, h) / 800))  # line width and text size grow with the picture
    font = _font(11 * unit)
    ax, ay = frame.scale
    to_draw = np.array([w / frame.width / ax, h / frame.height / ay] * 2)  # analysis pixels → drawn pixels
    orig_to_draw = np.array([w / frame.width, h / frame.height] * 2)

    def label(x: float, y: float, text: str, col: tuple[int, int, int]) -> None:
        x, y = min(max(x, 0), w - 1), min(max(y, 0), h - 1)
        bb = d.textbbox((x, y), text, font=font)
        d.rectangle([bb[0] - unit, bb[1] - unit, bb[2] + unit, bb[3] + unit], fill=(0, 0, 0))
        d.text((x, y), text, fill=col, font=font)

    rules = Rules(an.cues)
    dets = _detections(an)
    for b, lab, col in zip(dets["boxes"], dets["labels"], dets["colours"], strict=True):
        bb = [float(v) for v in b * to_draw]
        d.rectangle(bb, outline=col, width=unit)
        label(bb[0] + 2 * unit, bb[1] + unit, lab, col)
    for b in rules.heads:
        d.rectangle([float(v) for v in b * to_draw], outline=HEAD, width=unit)
    for k, b in enumerate(an.cues.subjects):
        bb = [float(v) for v in b * to_draw]
        d.rectangle(bb, outline=SUBJECT, width=2 * unit)
        label(bb[0] + 2 * unit, bb[3] - 14 * unit, f"subject {k + 1}", SUBJECT)
    if an.cues.focus is not None:
        fx, fy = an.cues.focus[0] * to_draw[0], an.cues.focus[1] * to_draw[1]
        r = 6 * unit
        d.ellipse([fx - r, fy - r, fx + r, fy + r], outline=SUBJECT, width=2 * unit)
        d.line([fx - 2 * r, fy, fx + 2 * r, fy], fill=SUBJECT, width=unit)
        d.line([fx, fy - 2 * r, fx, fy + 2 * r], fill=SUBJECT, width=unit)
    for i, c in enumerate(crops):
        col = CROP_COLOURS[i % len(CROP_COLOURS)]
        dim = tuple(v // 2 + 40 for v in col)
        for j, (box, score) in enumerate(c.runners_up):
            bb = [float(v) for v in np.asarray(box, np.float64) * orig_to_draw]
            d.rectangle(bb, outline=dim, width=unit)
            label(bb[2] - 60 * unit, bb[3] - 14 * unit, f"#{j + 2} {score:.2f}", dim)
    for i, c in enumerate(crops):
        col = CROP_COLOURS[i % len(CROP_COLOURS)]
        bb = [float(v) for v in np.asarray(c.box, np.float64) * orig_to_draw]
        d.rectangle(bb, outline=col, width=3 * unit)
        label(bb[0] + 4 * unit, bb[1] + 4 * unit + i * 14 * unit, f"{c.ratio}  {c.score:.2f}  L{c.level}", col)
    return _with_legend(im, an, crops, unit, f)


def _with_legend(im: Image.Image, an: Analysis, crops: Sequence[Crop], unit: int, f: float) -> Image.Image:
    """``im`` with a dark legend panel appended below: colour keys, one reason line per crop, cue counts, notes."""
    info = explain(an, crops)
    font = _font(12 * unit)
    w = im.size[0]
    rows: list[tuple[tuple[int, int, int] | None, str]] = []
    for i, line in enumerate(info["crops"]):
        rows.append((CROP_COLOURS[i % len(CROP_COLOURS)], line))
    rows.append((None, "thin boxes: runners-up (#2, #3 ...), in their crop's colour, dimmed"))
    keys = [(FACE, "face (protected)"), (FACE_IGNORED, "face ignored (not plausible)"),
            (HEAD, "head kept by the rules"), (PERSON, "person"), (OBJECT, "object"),
            (SUBJECT, "user subject / focus"), ((255, 0, 0), "saliency")]
    rows += [(None, line) for line in info["cues"]]
    rows += [(None, "note: " + line) for line in info["notes"]]
    if f != 1.0:
        rows.append((None, f"drawn at {f:.0%} of the {an.frame.width}x{an.frame.height} image"))
    probe = ImageDraw.Draw(im)
    line_h = probe.textbbox((0, 0), "Ag", font=font)[3] + 4 * unit
    wrapped: list[tuple[tuple[int, int, int] | None, str]] = []
    chars = max(20, int((w - 30 * unit) / max(1, probe.textlength("n", font=font))))
    for col, text in rows:
        while len(text) > chars:
            cut = text.rfind(" ", 0, chars)
            cut = chars if cut <= 0 else cut
            wrapped.append((col, text[:cut]))
            col, text = None, "    " + text[cut:].lstrip()
        wrapped.append((col, text))
    # colour keys flow in rows after the text: a swatch then the key's name
    gap, sw = probe.textlength("   ", font=font), 16 * unit
    key_pos, x, krow = [], 24 * unit, 0
    for col, text in keys:
        tw = sw + 4 * unit + probe.textlength(text, font=font)
        if x + tw > w - 6 * unit and x > 24 * unit:
            x, krow = 24 * unit, krow + 1
        key_pos.append((x, krow, col, text))
        x += tw + gap
    panel_h = line_h * (len(wrapped) + krow + 2)
    out = Image.new("RGB", (w, im.size[1] + panel_h), (24, 24, 24))
    out.paste(im, (0, 0))
    d = ImageDraw.Draw(out)
    y = im.size[1] + line_h // 2
    for col, text in wrapped:
        if col is not None:
            d.rectangle([6 * unit, y + 2 * unit, 18 * unit, y + line_h - 6 * unit], fill=col)
        d.text((24 * unit, y), text, fill=(235, 235, 235), font=font)
        y += line_h
    for x, krow, col, text in key_pos:
        ky = y + krow * line_h
        d.rectangle([x, ky + 2 * unit, x + sw, ky + line_h - 6 * unit], outline=col, width=2 * unit)
        d.text((x + sw + 4 * unit, ky), text, fill=col, font=font)
    return out
