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
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np

from opencrop.boxes import denormalize_xyxy, xywh_to_xyxy
from opencrop.data._common import as_boxes, attach_sizes, read_json, resolve_image
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["decode_mask_png", "load_gencrop", "parse_outpaint_name"]

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
        source: ``"auto"`` (testeval when present, else the split file), ``"testeval"`` or ``"split"``.
    """
    root = Path(root)
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
