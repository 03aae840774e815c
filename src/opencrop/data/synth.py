"""Synthetic cropping datasets in the real on-disk formats, so every pipeline runs without the benchmarks.

Scenes are rendered procedurally with NumPy (sky and ground with a horizon, a textured ground, one main subject —
a person-like figure with head and body, an animal-like blob with legs, or an object — sometimes a second subject,
and small bright distractors at the image edges). The ground truth comes from explicit composition rules applied to
the scene geometry (:func:`composition_quality`): keep the subject whole, put its centre near a thirds point or the
centre, put the horizon near a third, leave distractors out, keep the subject at a sensible scale. Noise is added
to the scores. Everything is deterministic given the seed.

**Synthetic numbers are not benchmark results**; they only show that code paths run and that a model can learn
visible composition cues.

Writers (``write_<format>(out, n, seed, size)``): GAICD (``images/{train,test}``, ``annotations/{train,test}``
yxyx with −2 for grid crops outside the aspect range, HCIC ``human_bboxes.json``, S2CNet ``bbox/<id>.txt``), CPC
(raw double-encoded JSON), FCDB (official JSON lists, xywh), FLMS (``500_image_dataset.mat``, yxyx with −1 padding),
SACD (per-subject JSON + masks) and GenCrop (``testeval_sha256.json.gz`` with base64 PNG masks + split files, and
an outpainted training set under ``outpaint/``: :func:`write_gencrop_outpaint`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opencrop.boxes import box_area, box_iou, xyxy_to_xywh, xyxy_to_yxyx
from opencrop.candidates import gaic_grid, ratio_windows

__all__ = [
    "FORMAT_WRITERS",
    "Scene",
    "composition_quality",
    "gaicd_raw_grid",
    "render_scene",
    "synthesize",
]

#: MOS = clip(MOS_MEAN + MOS_GAIN · (quality − QUALITY_REF) + noise, 1, 5), two decimals
MOS_MEAN, MOS_GAIN, QUALITY_REF, MOS_NOISE = 2.95, 0.55, -2.5, 0.12
_POWER_POINTS = np.array([[1 / 3, 1 / 3], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 2 / 3], [0.5, 0.5]])


@dataclass
class Scene:
    """A rendered scene and its geometry. Boxes are xyxy float pixels; masks ``[H, W]`` bool."""

    image: np.ndarray
    horizon: float
    subject_boxes: np.ndarray
    subject_kinds: list[str]
    subject_masks: list[np.ndarray]
    distractors: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency noise ``[h, w]`` in about [−1, 1] (bilinear upsampling of a coarse random grid)."""
    from PIL import Image

    gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
    coarse = rng.uniform(-1, 1, size=(gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BILINEAR))


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _rect(xx: np.ndarray, yy: np.ndarray, x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    return (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)


def _subject_mask(kind: str, xx: np.ndarray, yy: np.ndarray, cx: float, bottom: float, size: float) -> np.ndarray:
    """Mask of one subject standing on ``bottom`` (y pixel), centred at ``cx``, about ``size`` px tall."""
    if kind == "person":
        bw = 0.34 * size
        head_r = 0.12 * size
        body = _ellipse(xx, yy, cx, bottom - 0.37 * size, bw / 2, 0.37 * size)
        head = _ellipse(xx, yy, cx, bottom - 0.74 * size - head_r * 0.9, head_r, head_r)
        return body | head
    if kind == "animal":
        bw, bh = 0.9 * size, 0.45 * size
        by = bottom - 0.3 * size - bh / 2
        body = _ellipse(xx, yy, cx, by, bw / 2, bh / 2)
        head = _ellipse(xx, yy, cx + 0.5 * bw, by - 0.25 * bh, 0.17 * size, 0.15 * size)
        legs = np.zeros_like(body)
        for fx in (-0.32, -0.15, 0.15, 0.32):
            lx = cx + fx * bw
            legs |= _rect(xx, yy, lx - 0.035 * size, by, lx + 0.035 * size, bottom)
        return body | head | legs
    # object: a disc or a box
    if (int(cx) + int(size)) % 2:
        return _ellipse(xx, yy, cx, bottom - size / 2, size / 2, size / 2)
    return _rect(xx, yy, cx - 0.4 * size, bottom - size, cx + 0.4 * size, bottom)


def _mask_box(m: np.ndarray) -> np.ndarray:
    ys = np.flatnonzero(m.any(axis=1))
    xs = np.flatnonzero(m.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float64)


def render_scene(
    rng: np.random.Generator,
    width: int = 512,
    height: int = 384,
    n_subjects: int | None = None,
    kinds: tuple[str, ...] = ("person", "animal", "object"),
    subject_contrast: float = 1.0,
) -> Scene:
    """Render one scene ``[height, width, 3]`` uint8 with its geometry (see the module docstring).

    ``subject_contrast`` < 1 blends each subject into what lies beneath it (``c · subject + (1 − c) · background``),
    so the subjects are hard to see while the geometry (and the quality that depends on it) is unchanged: data on
    which a model must use given object boxes (S2CNet's object nodes) to rank crops well.
    """
    if not 0.0 < subject_contrast <= 1.0:
        raise ValueError(f"subject_contrast must be in (0, 1], got {subject_contrast}")
    h, w = int(height), int(width)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    horizon = float(rng.uniform(0.3, 0.7) * h)
    hz = int(np.ceil(horizon))
    # sky: vertical gradient between two random sky colours
    top = rng.uniform([20, 60, 140], [120, 170, 255]).astype(np.float32)
    hor = rng.uniform([150, 160, 170], [255, 230, 220]).astype(np.float32)
    t = np.clip(yy / max(horizon, 1), 0, 1)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = (top * (1 - t) + hor * t)[:, None, :]
    # ground: textured, darker with distance from the horizon
    ground_col = rng.uniform([40, 70, 20], [140, 150, 90]).astype(np.float32)
    tex = _smooth_noise(rng, h, w, 24) * 22 + _smooth_noise(rng, h, w, 6) * 10
    fade = 0.75 + 0.25 * np.clip((yy[hz:] - horizon) / max(h - horizon, 1), 0, 1)
    img[hz:] = (ground_col * fade)[:, None, :] + tex[hz:, :, None]
    img += (rng.standard_normal((h, w), dtype=np.float32) * 3)[..., None]
    # subjects
    n_sub = int(n_subjects) if n_subjects is not None else (1 if rng.random() < 0.8 else 2)
    masks, boxes, kind_list = [], [], []
    for k in range(n_sub):
        kind = str(rng.choice(kinds))
        size = float(rng.uniform(0.28, 0.55) * h) * (1.0 if k == 0 else 0.7)
        bottom = float(rng.uniform(max(horizon + 0.1 * size, 0.55 * h), 0.97 * h))
        bottom = max(bottom, size * 1.05)
        cx = float(rng.uniform(0.18, 0.82) * w)
        m = _subject_mask(kind, xx, yy, cx, bottom, size)
        if not m.any():
            continue
        col = rng.uniform(0, 255, size=3).astype(np.float32)
        col[rng.integers(3)] = rng.uniform(200, 255)  # saturated
        col[rng.integers(3)] = rng.uniform(0, 50)
        ys, xs = np.nonzero(m)
        shade = 1.0 - 0.25 * np.clip((ys - ys.min()) / size, 0, 1)
        paint = col[None, :] * shade[:, None].astype(np.float32)
        if kind == "person":  # a skin-tone head cap makes people recognisable
            paint[ys < bottom - 0.74 * size] = np.array([230.0, 190, 160], dtype=np.float32)
        if subject_contrast < 1.0:
            paint = subject_contrast * paint + (1.0 - subject_contrast) * img[ys, xs]
        img[ys, xs] = paint
        masks.append(m)
        boxes.append(_mask_box(m))
        kind_list.append(kind)
    # distractors: small bright squares touching or near an edge
    n_dis = int(rng.integers(0, 3))
    dis = []
    palette = np.array([[255.0, 40, 40], [255, 230, 0], [255, 0, 255], [0, 255, 255]], dtype=np.float32)
    for _ in range(n_dis):
        s = float(rng.uniform(0.06, 0.12) * min(w, h))
        edge = int(rng.integers(4))
        along = float(rng.uniform(0.1, 0.9))
        off = float(rng.uniform(0.0, 0.06))
        if edge == 0:
            x1, y1 = off * w, along * (h - s)
        elif edge == 1:
            x1, y1 = w - s - off * w, along * (h - s)
        elif edge == 2:
            x1, y1 = along * (w - s), off * h
        else:
            x1, y1 = along * (w - s), h - s - off * h
        box = np.round(np.array([x1, y1, x1 + s, y1 + s]))
        img[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = palette[rng.integers(len(palette))]
        dis.append(box)
    return Scene(
        image=np.clip(img, 0, 255).astype(np.uint8),
        horizon=horizon,
        subject_boxes=np.array(boxes).reshape(-1, 4),
        subject_kinds=kind_list,
        subject_masks=masks,
        distractors=np.array(dis).reshape(-1, 4),
    )


def _inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas ``[N, M]`` of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0)
    return wh[..., 0] * wh[..., 1]


def composition_quality(scene: Scene, boxes: np.ndarray, subject: int = 0) -> np.ndarray:
    """Noise-free composition quality of crops ``[N, 4]`` xyxy pixels → ``[N]`` (≤ 0, higher is better).

    Terms (penalties): subject cut (fraction of its box outside the crop, plus a step for any cut), distance of
    the subject centre from the nearest thirds point / centre (crop-normalised), horizon distance from a third,
    fraction of each distractor inside the crop, and log-deviation of the subject's area share from 0.15.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cw = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    ch = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    q = np.zeros(b.shape[0])
    if scene.subject_boxes.shape[0]:
        sb = scene.subject_boxes[subject : subject + 1]
        keep = _inter(b, sb)[:, 0] / np.maximum(box_area(sb)[0], 1e-6)
        q -= 3.0 * (1 - keep) + 0.8 * (keep < 0.995)
        sc = (sb[0, :2] + sb[0, 2:]) / 2
        uv = np.stack([(sc[0] - b[:, 0]) / cw, (sc[1] - b[:, 1]) / ch], axis=1)
        d = np.sqrt(((uv[:, None, :] - _POWER_POINTS[None]) ** 2).sum(-1)).min(axis=1)
        q -= 4.0 * d
        share = box_area(sb)[0] / (cw * ch)
        q -= 0.6 * np.abs(np.log(np.maximum(share, 1e-6) / 0.15))
        for o in range(scene.subject_boxes.shape[0]):  # other subjects: keep whole or leave out
            if o == subject:
                continue
            ob = scene.subject_boxes[o : o + 1]
            f = _inter(b, ob)[:, 0] / np.maximum(box_area(ob)[0], 1e-6)
            q -= 2.0 * np.minimum(f, 1 - f)
    hv = (scene.horizon - b[:, 1]) / ch
    inside = (hv > 0) & (hv < 1)
    q -= np.where(inside, 2.0 * np.minimum(np.abs(hv - 1 / 3), np.abs(hv - 2 / 3)), 0.4)
    if scene.distractors.shape[0]:
        frac = _inter(b, scene.distractors) / np.maximum(box_area(scene.distractors)[None], 1e-6)
        q -= 1.5 * frac.sum(axis=1)
    return q


def quality_to_mos(q: np.ndarray, rng: np.random.Generator, noise: float = MOS_NOISE) -> np.ndarray:
    """Map quality to a GAICD-like MOS in [1, 5] (fixed affine map + Gaussian noise), two decimals."""
    mos = MOS_MEAN + MOS_GAIN * (q - QUALITY_REF) + rng.normal(0, noise, size=q.shape)
    return np.round(np.clip(mos, 1.0, 5.0), 2)


def gaicd_raw_grid(width: int, height: int, bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """GAICD's annotated grid on a ``width × height`` image → ``(boxes [90, 4] xyxy integer pixels, valid [90])``.

    The 90 crops covering more than half the grid (GAIC's area rule, computed on a square grid) in
    :func:`~opencrop.candidates.gaic_grid` order, with integer (truncated) coordinates as in the released files;
    ``valid`` is False where the pixel aspect ratio falls outside (0.5, 2) — the rows the raw files mark −2.
    """
    unit = gaic_grid(bins, bins, bins)  # area rule only (a square image passes every aspect check)
    k = unit - 0.5  # bin indices
    sx, sy = width / bins, height / bins
    boxes = np.stack([(0.5 + k[:, 0]) * sx, (0.5 + k[:, 1]) * sy, (0.5 + k[:, 2]) * sx, (0.5 + k[:, 3]) * sy], 1)
    ar = ((k[:, 2] - k[:, 0]) * sx) / ((k[:, 3] - k[:, 1]) * sy)  # from indices, exactly as gaic_grid
    return np.trunc(boxes), (ar > 0.5) & (ar < 2.0)


# ----------------------------------------------------------------------------------------------------- writers
def _save_jpg(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


def _png_b64(mask: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt_row(vals: np.ndarray) -> str:
    return " ".join(str(int(v)) if float(v).is_integer() else f"{v:.2f}" for v in vals)


def _gt_candidates(w: int, h: int) -> np.ndarray:
    return np.concatenate(
        [
            ratio_windows(w, h, r, min_scale=0.45, num_scales=6, step=0.05, max_count=300)
            for r in ("1:1", "4:3", "3:4", "16:9", "3:2", "2:3")
        ]
    )


def _top_diverse(boxes: np.ndarray, score: np.ndarray, k: int, max_iou: float = 0.85) -> np.ndarray:
    """Up to ``k`` best boxes, greedily skipping boxes with IoU > ``max_iou`` to one already picked."""
    order = np.argsort(-score, kind="stable")
    picked: list[int] = []
    ious = box_iou(boxes[order[: 20 * k]], boxes[order[: 20 * k]])
    for i in range(min(len(order), 20 * k)):
        if all(ious[i, j] <= max_iou for j in picked):
            picked.append(i)
        if len(picked) == k:
            break
    return np.trunc(boxes[order[picked]])


def _size(size: tuple[int, int] | None, rng: np.random.Generator) -> tuple[int, int]:
    if size is not None:
        return int(size[0]), int(size[1])
    return (512, 384) if rng.random() < 0.6 else (384, 512) if rng.random() < 0.5 else (512, 288)


def _split_names(n: int, test_frac: float = 0.25) -> list[str]:
    n_test = max(1, round(n * test_frac)) if n > 1 else 1
    return ["train"] * (n - n_test) + ["test"] * n_test


def write_gaicd(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None,
                subject_contrast: float = 1.0) -> None:
    """GAICD raw layout: ``images/{split}/<id>.jpg``, ``annotations/{split}/<id>.txt`` (``y1 x1 y2 x2 mos``,
    −2 for aspect-invalid grid crops), ``human_bboxes.json`` (HCIC, xyxy) and ``bbox/<id>.txt`` (S2CNet, yxyx:
    the subjects, the distractors and a degenerate placeholder row as in the published files). ``subject_contrast``:
    see :func:`render_scene`."""
    rng = np.random.default_rng(seed)
    humans: dict[str, list[int]] = {}
    for i, split in enumerate(_split_names(n)):
        w, h = _size(size, rng)
        scene = render_scene(rng, w, h, subject_contrast=subject_contrast)
        name = f"{300000 + i}"
        _save_jpg(scene.image, out / "images" / split / f"{name}.jpg")
        boxes, valid = gaicd_raw_grid(w, h)
        mos = quality_to_mos(composition_quality(scene, boxes), rng)
        mos = np.where(valid, mos, -2.0)
        rows = np.concatenate([xyxy_to_yxyx(boxes), mos[:, None]], axis=1)
        ann = out / "annotations" / split / f"{name}.txt"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text("\n".join(_fmt_row(r) for r in rows) + "\n")
        if scene.subject_kinds and scene.subject_kinds[0] == "person":
            humans[f"{name}.jpg"] = [int(v) for v in scene.subject_boxes[0]]
        objs = np.concatenate([scene.subject_boxes, scene.distractors, np.array([[1.0, 0, 1, 1]])])
        (out / "bbox").mkdir(parents=True, exist_ok=True)
        (out / "bbox" / f"{name}.txt").write_text("\n".join(_fmt_row(np.trunc(r)) for r in xyxy_to_yxyx(objs)) + "\n")
    (out / "human_bboxes.json").write_text(json.dumps(humans))


def write_cpc(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None) -> None:
    """CPC raw layout: ``images/<name>.jpg`` and ``CollectedAnnotationsRaw/<name>.jpg.txt`` (double-encoded JSON,
    24 views xyxy, integer votes 0–2 from 6 workers)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = _size(size, rng)
        scene = render_scene(rng, w, h)
        name = f"synth_{i:05d}.jpg"
        _save_jpg(scene.image, out / "images" / name)
        cands = _gt_candidates(w, h)
        views = np.trunc(cands[rng.choice(len(cands), size=24, replace=False)])
        q = composition_quality(scene, views)
        votes = np.clip(np.round(0.66 + 0.45 * (q - QUALITY_REF) + rng.normal(0, 0.5, size=(6, 24))), 0, 2)
        payload = json.dumps({"scores": votes.astype(int).tolist(), "bboxes": views.astype(int).tolist()})
        f = out / "CollectedAnnotationsRaw" / f"{name}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(payload))


def _best_crops(scene: Scene, rng: np.random.Generator, k: int, subject: int = 0) -> np.ndarray:
    cands = _gt_candidates(scene.width, scene.height)
    q = composition_quality(scene, cands, subject) + rng.normal(0, 0.05, size=len(cands))
    return _top_diverse(cands, q, k)


def write_fcdb(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None) -> None:
    """FCDB official layout: ``images/<name>``, ``cropping_{training,testing}_set.json`` (``url``,
    ``flickr_photo_id``, ``crop`` xywh) and HCIC-style ``human_bboxes.json``."""
    rng = np.random.default_rng(seed)
    sets: dict[str, list] = {"train": [], "test": []}
    humans: dict[str, list[int]] = {}
    for i, split in enumerate(_split_names(n)):
        w, h = _size(size, rng)
        scene = render_scene(rng, w, h)
        pid = 9000000000 + i
        name = f"{pid}_synth_c.jpg"
        _save_jpg(scene.image, out / "images" / name)
        gt = _best_crops(scene, rng, 1)[0]
        sets[split].append(
            {
                "url": f"https://synthetic.invalid/{name}",
                "flickr_photo_id": pid,
                "crop": [int(v) for v in xyxy_to_xywh(gt)],
            }
        )
        if scene.subject_kinds and scene.subject_kinds[0] == "person":
            humans[name] = [int(v) for v in scene.subject_boxes[0]]
    (out / "cropping_training_set.json").write_text(json.dumps(sets["train"]))
    (out / "cropping_testing_set.json").write_text(json.dumps(sets["test"]))
    (out / "human_bboxes.json").write_text(json.dumps(humans))


def write_flms(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None) -> None:
    """FLMS raw layout: ``image/<name>`` and ``500_image_dataset.mat`` (``img_gt`` N × 1 struct of
    ``(filename, bbox)`` with 4–10 yxyx crops padded to 10 rows with −1), plus ``human_bboxes.json``."""
    import scipy.io

    rng = np.random.default_rng(seed)
    entries = np.zeros((n, 1), dtype=[("filename", "O"), ("bbox", "O")])
    humans: dict[str, list[int]] = {}
    for i in range(n):
        w, h = _size(size, rng)
        scene = render_scene(rng, w, h)
        name = f"{1000000 + i}_Large.jpg"
        _save_jpg(scene.image, out / "image" / name)
        gts = _best_crops(scene, rng, int(rng.integers(4, 11)))
        bbox = -np.ones((10, 4))
        bbox[: len(gts)] = xyxy_to_yxyx(gts)
        entries[i, 0] = (name, bbox)
        if scene.subject_kinds and scene.subject_kinds[0] == "person":
            humans[name] = [int(v) for v in scene.subject_boxes[0]]
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"img_gt": entries})
    mat = bytearray(buf.getvalue())
    # the MAT-5 header's 116 text bytes say "Created on: <now>": a fixed text keeps one seed's bytes identical
    mat[:116] = b"MATLAB 5.0 MAT-file, written by opencrop.data.synth".ljust(116, b" ")
    (out / "500_image_dataset.mat").write_bytes(bytes(mat))
    (out / "human_bboxes.json").write_text(json.dumps(humans))


def write_sacd(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None) -> None:
    """SACD layout: ``images/<base>.jpg``, ``annotations/<base>_<k>.json`` (``mask_box`` JSON-string xywh,
    ``best_box``, ``crop_box`` xyxy), ``masks/<base>_<k>.jpg`` and ``test.json``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    test_files = []
    for i in range(n):
        w, h = _size(size, rng)
        scene = render_scene(rng, w, h, n_subjects=int(rng.integers(1, 3)))
        base = f"sacd{i:05d}"
        _save_jpg(scene.image, out / "images" / f"{base}.jpg")
        for k in range(len(scene.subject_kinds)):
            crops = _best_crops(scene, rng, int(rng.integers(2, 5)), subject=k)
            ann = {
                "mask_box": json.dumps([int(v) for v in xyxy_to_xywh(scene.subject_boxes[k])]),
                "best_box": [[int(v) for v in crops[0]]],
                "crop_box": [[int(v) for v in c] for c in crops[1:]],
            }
            stem = f"{base}_{k}"
            (out / "annotations").mkdir(parents=True, exist_ok=True)
            (out / "annotations" / f"{stem}.json").write_text(json.dumps(ann))
            (out / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(scene.subject_masks[k].astype(np.uint8) * 255).save(out / "masks" / f"{stem}.jpg")
            test_files.append(f"{stem}.json")
    (out / "test.json").write_text(json.dumps({"jsons": test_files}))


def _write_json_gz(path: Path, obj: object) -> None:
    """Gzipped JSON with a zero header time (``gzip.open`` stamps the current second, so two runs with one seed
    differed whenever they straddled a second boundary; the FLMS ``.mat`` header likewise)."""
    path.write_bytes(gzip.compress(json.dumps(obj).encode(), mtime=0))


def write_gencrop(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None) -> None:
    """GenCrop layout: ``images/<hash>.jpg``, ``testeval_sha256.json.gz`` (normalised xywh subject and 1–3 GT
    crops, base64 PNG subject mask) and ``{train,val,test}_sha256.json`` (``hash_id``, ``subject_xywh``)."""
    rng = np.random.default_rng(seed)
    testeval: dict[str, dict] = {}
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for i in range(n):
        w, h = _size(size, rng)
        scene = render_scene(rng, w, h, kinds=("person",))
        hid = hashlib.sha256(f"opencrop-synth-{seed}-{i}".encode()).hexdigest()
        _save_jpg(scene.image, out / "images" / f"{hid}.jpg")
        norm = np.array([w, h, w, h], dtype=np.float64)
        subj = xyxy_to_xywh(scene.subject_boxes[0] / norm)
        crops = xyxy_to_xywh(_best_crops(scene, rng, int(rng.integers(1, 4))) / norm)
        testeval[hid] = {
            "subject_xywh": np.round(subj, 6).tolist(),
            "crop_xywh": np.round(crops, 6).tolist(),
            "subject_mask": _png_b64(scene.subject_masks[0]),
        }
        splits[("train", "val", "test")[i % 3]].append({"hash_id": hid, "subject_xywh": np.round(subj, 6).tolist()})
    out.mkdir(parents=True, exist_ok=True)
    _write_json_gz(out / "testeval_sha256.json.gz", testeval)
    for s, v in splits.items():
        (out / f"{s}_sha256.json").write_text(json.dumps(v))
    write_gencrop_outpaint(out / "outpaint", n=n, seed=seed)


def write_gencrop_outpaint(out: Path, n: int = 20, seed: int = 0, variants: int = 2, canvas: int = 512) -> None:
    """A synthetic **outpainted** GenCrop training set in the published layout (systems.md §7.1), made with the
    offline CPU outpainter (:func:`opencrop.outpaint.classical.extend_fill`): ``photos/img<ID>.jpg`` (the "stock
    photo" = the best composition crop of a rendered scene with one person), ``images/img<ID>_X_Y_W_H.jpg``
    (``variants`` pastes per photo, :func:`~opencrop.outpaint.classical.paste_geometry`), ``detect.json.gz``
    (the person's box, ``mask_id``), ``mask.npz`` (its polygon), ``bad.json`` (empty) and ``{train,val,test}.json``
    (``id``, ``subject_xywh`` normalised to the photo; 80 / 10 / 10 % of the photos)."""
    import cv2
    from PIL import Image

    from opencrop.outpaint.classical import extend_fill, paste_geometry

    rng = np.random.default_rng([seed, 12])
    dets: dict[str, list] = {}
    polys: dict[str, np.ndarray] = {}
    splits: dict[str, list] = {"train": [], "val": [], "test": []}
    for i in range(n):
        w, h = (640, 480) if rng.random() < 0.6 else (480, 640)
        scene = render_scene(rng, w, h, n_subjects=1, kinds=("person",))
        x1, y1, x2, y2 = (int(v) for v in _best_crops(scene, rng, 1)[0])
        photo, pmask = scene.image[y1:y2, x1:x2], scene.subject_masks[0][y1:y2, x1:x2]
        if not pmask.any():
            continue
        sid = f"synth{seed}n{i:05d}"
        _save_jpg(photo, out / "photos" / f"img{sid}.jpg")
        ph, pw = pmask.shape
        sb = _mask_box(pmask)
        split = "val" if i % 10 == 8 else "test" if i % 10 == 9 else "train"
        splits[split].append({"id": sid, "subject_xywh": np.round(xyxy_to_xywh(sb / [pw, ph, pw, ph]), 6).tolist()})
        for _ in range(variants):
            x, y, cw, ch = paste_geometry(pw, ph, rng, canvas)
            small = np.asarray(Image.fromarray(photo).resize((cw, ch), Image.BILINEAR))
            m = np.asarray(Image.fromarray(pmask.astype(np.uint8) * 255).resize((cw, ch), Image.BILINEAR)) > 127
            name = f"img{sid}_{x}_{y}_{cw}_{ch}"
            _save_jpg(extend_fill(small, (x, y, cw, ch), canvas, rng), out / "images" / f"{name}.jpg")
            cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if not cs:
                dets[name] = []
                continue
            poly = max(cs, key=cv2.contourArea).reshape(-1, 2).astype(np.float64) + np.array([x, y])
            mid = str(len(polys))
            polys[mid] = poly
            bx = _mask_box(m) + np.array([x, y, x, y])
            dets[name] = [{"xywh": np.round(xyxy_to_xywh(bx), 2).tolist(), "score": 1.0, "class": 0,
                           "mask_id": int(mid)}]
    out.mkdir(parents=True, exist_ok=True)
    _write_json_gz(out / "detect.json.gz", dets)
    np.savez_compressed(out / "mask.npz", **polys)
    (out / "bad.json").write_text("[]")
    for s, v in splits.items():
        (out / f"{s}.json").write_text(json.dumps(v))


FORMAT_WRITERS: dict[str, Callable[..., None]] = {
    "gaicd": write_gaicd,
    "cpc": write_cpc,
    "fcdb": write_fcdb,
    "flms": write_flms,
    "sacd": write_sacd,
    "gencrop": write_gencrop,
}


def synthesize(fmt: str, out: str | Path, n: int = 20, seed: int = 0, size: tuple[int, int] | None = None) -> Path:
    """Write a synthetic dataset of ``n`` images in format ``fmt`` under ``out`` (deterministic in ``seed``).

    ``size`` = ``(width, height)``; default: a seeded mix of 512×384, 384×512 and 512×288.
    """
    if fmt not in FORMAT_WRITERS:
        raise ValueError(f"unknown synthetic format {fmt!r}; use one of {', '.join(FORMAT_WRITERS)}")
    if n < 1:
        raise ValueError("n must be at least 1")
    out = Path(out)
    FORMAT_WRITERS[fmt](out, n=n, seed=seed, size=size)
    return out
