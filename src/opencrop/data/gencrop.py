"""GenCrop (Hong et al., AAAI'24) Unsplash files → :class:`CropRecord`.

* ``testeval_sha256.json.gz``: ``{hash: {"subject_xywh": [x, y, w, h] | null, "crop_xywh": [[x, y, w, h], …],
  "subject_mask": base64 PNG}}``; boxes **normalised xywh** in [0, 1]. Records get ``gt_crops`` (1–8 human crops)
  and ``subject_box`` in **xyxy pixels**, the size coming from the image (``images/<hash>.jpg``) or else from the
  mask PNG; ``subject_mask`` is the decoded ``[H, W]`` bool mask (``decode_masks=True``) and
  ``extra["subject_mask_png"]`` the raw base64.
* ``{train,val,test}_sha256.json``: the outpainting splits, entries ``{"hash_id", "subject_xywh"}`` (a list, or a
  mapping ``{hash: {...}}``) → records with ``subject_box`` only (pixels when the image is present, else
  ``extra["subject_xywh_norm"]``).
* :func:`parse_outpaint_name`: ``img<ID>_<X>_<Y>_<W>_<H>.jpg`` → the GT crop (xywh pixels of the 512² canvas).
* ``source="outpaint"``: an outpainted training set in the published layout (systems.md §7.1; written by
  ``opencrop outpaint``): ``images/img<ID>_X_Y_W_H.jpg``, ``bad.json`` (list of bad file names),
  ``detect.json.gz`` (``{stem: [{"xywh", "score", "class", "mask_id"}]}``, canvas pixels), ``mask.npz``
  (``{mask_id: polygon [N, 2]}``) and split files ``{split}.json`` (in the folder or its parent: a list of
  ``{"id", "subject_xywh"}`` — the subject normalised to the *photo* — or of ids, then the subject comes from
  ``subjects.json``). One record per outpainted file that survives the filters (:func:`select_subject`):
  ``gt_crops`` = the pasted rectangle, ``subject_box`` = the chosen detection (xyxy canvas pixels),
  ``extra["source_id"]``, ``extra["subject_polygon"]`` (``[N, 2]`` or ``None``), ``extra["subject_orig"]``.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from opencrop.boxes import denormalize_xyxy, xywh_to_xyxy
from opencrop.data._common import as_boxes, attach_sizes, read_json, resolve_image
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = [
    "decode_mask_png", "load_gencrop", "load_outpaint", "load_quality_folder", "parse_outpaint_name", "select_subject",
]

_OUTPAINT = re.compile(r"^img(?P<id>.+)_(?P<x>-?\d+)_(?P<y>-?\d+)_(?P<w>\d+)_(?P<h>\d+)\.(jpe?g|png)$")


def parse_outpaint_name(name: str) -> tuple[str, np.ndarray]:
    """``"img<ID>_X_Y_W_H.jpg"`` → ``(ID, [4] xyxy pixels of the pasted photo = the GT crop)``."""
    m = _OUTPAINT.match(Path(name).name)
    if m is None:
        raise ValueError(f"not an outpaint file name img<ID>_X_Y_W_H.jpg: {name!r}")
    xywh = np.array([float(m["x"]), float(m["y"]), float(m["w"]), float(m["h"])])
    return m["id"], xywh_to_xyxy(xywh)


def decode_mask_png(b64: str) -> np.ndarray:
    """Base64 PNG → ``[H, W]`` bool mask (non-zero pixels)."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return np.asarray(im.convert("L")) > 0


def _png_size(b64: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return int(im.size[0]), int(im.size[1])


def load_gencrop(
    root: str | Path,
    split: str = "test",
    source: str = "auto",
    images: str | Path | None = None,
    decode_masks: bool = True,
    require_images: bool = False,
) -> list[CropRecord]:
    """Load GenCrop Unsplash annotations.

    Args:
        root: a class folder (``testeval_sha256.json.gz``, ``{split}_sha256.json``, ``images/``) or one such file.
        split: for ``source="split"``: ``"train" | "val" | "test"``; ignored by ``"testeval"``.
        source: ``"auto"`` (testeval when present, else an outpaint set when ``detect.json.gz`` is there, else the
            split file), ``"testeval"``, ``"split"``, ``"outpaint"`` (:func:`load_outpaint`) or ``"quality"``
            (:func:`load_quality_folder`).
    """
    root = Path(root)
    if source == "auto" and root.is_dir() and not (root / "testeval_sha256.json.gz").is_file() \
            and (root / "detect.json.gz").is_file():
        source = "outpaint"
    if source == "outpaint":
        return load_outpaint(root, split)
    if source == "quality":
        return load_quality_folder(root, split)
    base = root if root.is_dir() else root.parent
    img_dirs = [Path(images) if images is not None else base / "images"]
    if source == "auto":
        if root.is_file():
            source = "testeval" if "testeval" in root.name else "split"
        else:
            source = "testeval" if (root / "testeval_sha256.json.gz").is_file() else "split"
    if source == "testeval":
        ann = root if root.is_file() else root / "testeval_sha256.json.gz"
        data = read_json(ann)
        if not isinstance(data, dict):
            raise DataFormatError(ann, "expected {hash: {'subject_xywh', 'crop_xywh', 'subject_mask'}}")
        records = []
        for h, v in data.items():
            if not isinstance(v, dict) or "crop_xywh" not in v:
                raise DataFormatError(ann, f"entry {h}: no crop_xywh")
            crops = xywh_to_xyxy(as_boxes(v["crop_xywh"], ann, f"entry {h} crop_xywh"))
            subj = v.get("subject_xywh")
            subj = xywh_to_xyxy(as_boxes(subj, ann, f"entry {h} subject_xywh"))[0] if subj is not None else None
            png = v.get("subject_mask")
            path = resolve_image(img_dirs, f"{h}.jpg")
            rec = CropRecord(
                name=h, image_path=path, split="test", extra={"crop_xyxy_norm": crops, "subject_xyxy_norm": subj}
            )
            attach_sizes([rec])
            if rec.width is None and png:
                try:
                    rec.width, rec.height = _png_size(png)
                except (OSError, ValueError) as e:
                    raise DataFormatError(ann, f"entry {h}: subject_mask is not a base64 PNG") from e
            if rec.width is not None:
                rec.gt_crops = denormalize_xyxy(crops, rec.width, rec.height)
                rec.subject_box = denormalize_xyxy(subj, rec.width, rec.height) if subj is not None else None
            if png:
                rec.extra["subject_mask_png"] = png
                if decode_masks:
                    rec.subject_mask = decode_mask_png(png)
            records.append(rec)
        attach_sizes(records, require_images)
        return records
    if source != "split":
        raise ValueError(f"unknown GenCrop source {source!r}; use auto, testeval or split")
    ann = root if root.is_file() else root / f"{split}_sha256.json"
    data = read_json(ann)
    entries = data.items() if isinstance(data, dict) else ((e.get("hash_id"), e) for e in data)
    records = []
    for h, v in entries:
        if h is None or not isinstance(v, dict) or "subject_xywh" not in v:
            raise DataFormatError(ann, "entries must be {'hash_id', 'subject_xywh'}")
        subj = xywh_to_xyxy(as_boxes(v["subject_xywh"], ann, f"entry {h} subject_xywh"))[0]
        rec = CropRecord(
            name=str(h),
            image_path=resolve_image(img_dirs, f"{h}.jpg"),
            split=split if not root.is_file() else None,
            extra={"subject_xyxy_norm": subj},
        )
        records.append(rec)
    attach_sizes(records, require_images)
    for r in records:
        if r.width is not None:
            r.subject_box = denormalize_xyxy(r.extra["subject_xyxy_norm"], r.width, r.height)
    return records


# ---------------------------------------------------------------------------------------------- outpaint sets
#: heuristic filter thresholds of ``load_outpaint_split`` (systems.md §7.1 step 5)
SUBJECT_MIN_IOU, HALLUCINATION_IOU, HALLUCINATION_AREA, MAX_AREA_RATIO = 0.25, 0.01, 0.25, 2.0


def select_subject(
    dets_xyxy: np.ndarray, subject_xyxy: np.ndarray, crop_xyxy: np.ndarray, heuristic: bool = True
) -> tuple[int | None, str | None]:
    """Pick the subject among the detections of an outpainted canvas and apply the heuristic filter.

    Args:
        dets_xyxy: ``[D, 4]`` detections (xyxy canvas pixels).
        subject_xyxy: ``[4]`` the photo's subject mapped into the canvas.
        crop_xyxy: ``[4]`` the pasted photo (the GT crop).
        heuristic: drop hallucinations and oversized detections.

    Returns:
        ``(index, None)`` for a kept sample, ``(None, reason)`` otherwise: no detection with IoU > 0.25 to the
        subject; a detection outside the crop (IoU < 0.01 with it) larger than 0.25 × the subject; a detection
        larger than 2 × the chosen one.
    """
    from opencrop.boxes import box_area, box_iou

    d = np.asarray(dets_xyxy, np.float64).reshape(-1, 4)
    if len(d) == 0:
        return None, "no detection"
    s = np.asarray(subject_xyxy, np.float64).reshape(1, 4)
    iou = box_iou(d, s)[:, 0]
    best = int(np.argmax(iou))  # first index wins among equal IoU
    if not iou[best] > SUBJECT_MIN_IOU:
        return None, "no detection matches the subject"
    if heuristic:
        area = box_area(d)
        outside = box_iou(d, np.asarray(crop_xyxy, np.float64).reshape(1, 4))[:, 0] < HALLUCINATION_IOU
        if outside.any() and area[outside].max() > HALLUCINATION_AREA * float(box_area(s)[0]):
            return None, "hallucinated subject outside the crop"
        if area.max() > MAX_AREA_RATIO * area[best]:
            return None, "a detection is more than twice the subject"
    return best, None


def _split_entries(root: Path, split: str) -> dict[str, Any] | None:
    """``{id: subject_xywh or None}`` of ``{split}.json`` (folder or parent), ``None`` for ``split="all"``."""
    if split == "all":
        return None
    for p in (root / f"{split}.json", root.parent / f"{split}.json"):
        if p.is_file():
            data = read_json(p)
            if not isinstance(data, list):
                raise DataFormatError(p, "expected a list of {'id', 'subject_xywh'} or of ids")
            out: dict[str, Any] = {}
            for e in data:
                if isinstance(e, dict) and "id" in e:
                    out[str(e["id"])] = e.get("subject_xywh")
                elif isinstance(e, str):
                    out[e] = None
                else:
                    raise DataFormatError(p, f"bad split entry {e!r}: expected {{'id', 'subject_xywh'}} or an id")
            return out
    raise DataFormatError(root / f"{split}.json", f"no split file for {split!r} (looked in {root} and its parent); "
                          "use split='all' or write splits with `opencrop outpaint select`")


def load_outpaint(
    root: str | Path, split: str = "train", bad_filter: bool = True, heuristic_filter: bool = True,
    stats: dict[str, int] | None = None,
) -> list[CropRecord]:
    """Records of an outpainted set (module docstring), filtered like ``load_outpaint_split``.

    Args:
        root: the set's folder (``images/``, ``detect.json.gz``, ``mask.npz``, ``bad.json``).
        split: ``"train" | "val" | "test"`` (a ``{split}.json`` file) or ``"all"``.
        bad_filter: drop the files listed in ``bad.json`` (the bad-outpaint classifier's verdicts).
        heuristic_filter: apply :func:`select_subject`'s hallucination / size rules.
        stats: if given, filled with counts per outcome (``kept``, ``bad``, ``not in split``, reasons…).
    """
    root = Path(root)
    img_dir = root / "images"
    if not img_dir.is_dir():
        raise DataFormatError(img_dir, "no images/ folder of outpainted files img<ID>_X_Y_W_H.jpg")
    det_path = root / "detect.json.gz"
    dets = read_json(det_path)
    if not isinstance(dets, dict):
        raise DataFormatError(det_path, "expected {image stem: [{'xywh', 'score', 'class', 'mask_id'}]}")
    bad = set(read_json(root / "bad.json")) if bad_filter and (root / "bad.json").is_file() else set()
    entries = _split_entries(root, split)
    subjects_file = root / "subjects.json"
    subjects = read_json(subjects_file) if subjects_file.is_file() else {}
    mask_file = root / "mask.npz"
    polys = np.load(mask_file) if mask_file.is_file() else None
    count: dict[str, int] = stats if stats is not None else {}
    records = []
    for f in sorted(p.name for p in img_dir.iterdir() if _OUTPAINT.match(p.name)):
        sid, crop = parse_outpaint_name(f)
        if f in bad:
            count["bad"] = count.get("bad", 0) + 1
            continue
        if entries is not None and sid not in entries:
            count["not in split"] = count.get("not in split", 0) + 1
            continue
        subj_norm = entries.get(sid) if entries is not None else None
        if subj_norm is None:
            subj_norm = subjects.get(sid)
        rec = CropRecord(name=f, image_path=img_dir / f, gt_crops=crop[None], split=split,
                         extra={"source_id": sid, "subject_polygon": None, "subject_orig": None})
        if subj_norm is not None:
            sx, sy, sw, sh = (float(v) for v in as_boxes(subj_norm, subjects_file, f"{sid} subject_xywh")[0])
            cw, ch = crop[2] - crop[0], crop[3] - crop[1]
            orig = np.array([crop[0] + sx * cw, crop[1] + sy * ch, crop[0] + (sx + sw) * cw, crop[1] + (sy + sh) * ch])
            rec.extra["subject_orig"] = orig
            stem = f.rsplit(".", 1)[0]
            if stem not in dets:
                count["not segmented"] = count.get("not segmented", 0) + 1
                continue
            items = dets[stem]
            boxes = xywh_to_xyxy(np.array([d["xywh"] for d in items], np.float64).reshape(-1, 4))
            idx, why = select_subject(boxes, orig, crop, heuristic_filter)
            if idx is None:
                count[str(why)] = count.get(str(why), 0) + 1
                continue
            rec.subject_box = boxes[idx]
            mid = items[idx].get("mask_id")
            if polys is not None and mid is not None and str(mid) in polys:
                rec.extra["subject_polygon"] = np.asarray(polys[str(mid)], np.float64).reshape(-1, 2)
        records.append(rec)
        count["kept"] = count.get("kept", 0) + 1
    attach_sizes(records)
    return records


def load_quality_folder(root: str | Path, split: str = "all", val_fraction: float = 0.1) -> list[CropRecord]:
    """Labelled outpaints for the bad-outpaint classifier: ``root/good/*.jpg`` (label 0) and ``root/bad/*.jpg``
    (label 1) → records with ``extra["label"]``. ``split``: ``"all"``, or ``"train"`` / ``"val"`` (a stable
    ``val_fraction`` of the files by the sha256 of their names)."""
    import hashlib

    root = Path(root)
    recs = []
    for label, sub in ((0, "good"), (1, "bad")):
        d = root / sub
        if not d.is_dir():
            raise DataFormatError(d, "missing: a quality set needs good/ and bad/ sub-folders of images")
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            h = int(hashlib.sha256(p.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            s = "val" if h < val_fraction else "train"
            if split in ("all", s):
                recs.append(CropRecord(name=f"{sub}/{p.name}", image_path=p, split=s, extra={"label": label}))
    return recs
