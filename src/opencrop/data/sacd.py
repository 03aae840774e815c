"""SACD (subject-aware cropping dataset, as used by GenCrop) → :class:`CropRecord`, one record per subject.

Layout: ``images/<base>.jpg``; ``annotations/<base>_<k>.json`` (one file per subject) with

* ``mask_box``: a JSON **string** holding the subject box ``[x, y, w, h]`` (**xywh** pixels);
* ``best_box``: ``[[x1, y1, x2, y2]]`` (xyxy pixels), the best crop;
* ``crop_box``: ``[[x1, y1, x2, y2], …]`` (xyxy pixels), further good crops;

``masks/<base>_<k>.jpg`` (subject mask) and ``test.json`` ``{"jsons": [annotation file names]}``.

Records: ``name = "<base>_<k>"``, ``gt_crops`` = best_box followed by crop_box (the GT list GenCrop evaluates
against), ``extra["best_box"]`` = ``[4]``, ``subject_box`` = xyxy, ``subject_mask`` = the mask path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from opencrop.boxes import xywh_to_xyxy
from opencrop.data._common import as_boxes, attach_sizes, read_json, resolve_image
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["load_sacd"]


def load_sacd(
    root: str | Path,
    split: str = "test",
    images: str | Path | None = None,
    require_images: bool = False,
) -> list[CropRecord]:
    """Load SACD annotations; ``split="test"`` uses ``test.json`` when present, ``"all"`` every annotation file."""
    root = Path(root)
    ann_dir = root / "annotations"
    if not ann_dir.is_dir():
        raise DataFormatError(root, "no SACD annotations/ folder")
    files = sorted(ann_dir.glob("*.json"))
    if split not in ("all", None):
        tj = root / f"{split}.json"
        if not tj.is_file():
            raise DataFormatError(root, f"no {split}.json listing the {split} annotations; use split='all'")
        listed = read_json(tj)
        names = listed.get("jsons") if isinstance(listed, dict) else listed
        if not isinstance(names, list):
            raise DataFormatError(tj, "expected {'jsons': [file names]}")
        files = [ann_dir / Path(str(n)).name for n in names]
    img_dirs = [Path(images) if images is not None else root / "images"]
    records = []
    for f in files:
        v = read_json(f)
        if not isinstance(v, dict):
            raise DataFormatError(f, "expected a JSON object with mask_box, best_box, crop_box")
        try:
            mb = v["mask_box"]
            mb = json.loads(mb) if isinstance(mb, str) else mb
            subject = xywh_to_xyxy(as_boxes(mb, f, "mask_box"))[0]
            best = as_boxes(v["best_box"], f, "best_box")
            others = as_boxes(v.get("crop_box", []), f, "crop_box", allow_empty=True)
        except KeyError as e:
            raise DataFormatError(f, f"missing key {e}") from e
        except json.JSONDecodeError as e:
            raise DataFormatError(f, f"mask_box is not a JSON-encoded box: {e.msg}") from e
        stem = f.stem
        base = stem.rsplit("_", 1)[0] if "_" in stem else stem
        mask = root / "masks" / f"{stem}.jpg"
        records.append(
            CropRecord(
                name=stem,
                image_path=resolve_image(img_dirs, f"{base}.jpg"),
                gt_crops=np.concatenate([best[:1], others], axis=0),
                subject_box=subject,
                subject_mask=mask if mask.is_file() else None,
                split=split if split not in ("all", None) else None,
                extra={"best_box": best[0]},
            )
        )
    attach_sizes(records, require_images)
    return records
