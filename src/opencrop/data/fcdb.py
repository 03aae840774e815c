"""FCDB (Chen et al., WACV'17: Flickr Cropping Dataset), one ground-truth crop per image → :class:`CropRecord`.

Sources (``source=``):

* ``"official"`` — ``cropping_training_set.json`` / ``cropping_testing_set.json``: JSON lists of
  ``{"url", "flickr_photo_id", "crop": [x, y, w, h]}`` (**xywh** pixels); the image key is the URL's file name.
  Splits: train (1,369) / test (345). ``sliding_window.json`` (345 test images, xywh, first window = the GT) is
  attached as ``extra["sliding_windows"]`` (xyxy) when present.
* ``"hcic"`` — HCIC's ``image_crop.json`` ``{name: [x, y, w, h]}`` + ``data_split.json``
  ``{"train": 1,261, "test": 319, "human": 176}``.

Records carry ``gt_crops [1, 4]`` xyxy float pixels. Images: ``images/<name>`` (one folder for all splits).
``split="human"`` (HCIC) or ``subset="human"`` with human boxes select the 176-image human subset.
"""

from __future__ import annotations

from pathlib import Path

from opencrop.boxes import xywh_to_xyxy
from opencrop.data._common import as_boxes, attach_sizes, read_json, resolve_image
from opencrop.data.human import attach_human_boxes, select_subset
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["load_fcdb"]

_OFFICIAL = {"train": "cropping_training_set.json", "test": "cropping_testing_set.json"}


def load_fcdb(
    root: str | Path,
    split: str = "test",
    source: str = "auto",
    images: str | Path | None = None,
    human: str | Path | None = None,
    subset: str | None = None,
    require_images: bool = False,
) -> list[CropRecord]:
    """Load FCDB as records with one ``gt_crops`` row (xyxy float pixels)."""
    root = Path(root)
    base = root if root.is_dir() else root.parent
    if source == "auto":
        if any((base / f).is_file() for f in _OFFICIAL.values()) and not root.is_file():
            source = "official"
        elif (base / "image_crop.json").is_file() or root.is_file():
            source = "hcic"
        else:
            raise DataFormatError(root, "no FCDB annotations: expected cropping_*_set.json or image_crop.json")
    img_dirs = [Path(images) if images is not None else base / "images"]
    records: list[CropRecord] = []
    if source == "official":
        splits = list(_OFFICIAL) if split == "all" else [split]
        for s in splits:
            if s not in _OFFICIAL:
                raise DataFormatError(base, f"no split {s!r} in the official FCDB files; use train, test or all")
            f = base / _OFFICIAL[s]
            data = read_json(f)
            if not isinstance(data, list):
                raise DataFormatError(f, "expected a JSON list of {'url', 'crop'}")
            for i, e in enumerate(data):
                if not isinstance(e, dict) or "url" not in e or "crop" not in e:
                    raise DataFormatError(f, f"entry {i}: expected keys 'url' and 'crop'")
                name = str(e["url"]).rsplit("/", 1)[-1]
                gt = xywh_to_xyxy(as_boxes(e["crop"], f, f"entry {i} ({name}) crop"))
                records.append(
                    CropRecord(
                        name=name,
                        image_path=resolve_image(img_dirs, name),
                        gt_crops=gt,
                        split=s,
                        extra={"url": e["url"]},
                    )
                )
        sw = base / "sliding_window.json"
        if sw.is_file():
            windows = {e["filename"]: e["crops"] for e in read_json(sw)}
            for r in records:
                if r.name in windows:
                    r.extra["sliding_windows"] = xywh_to_xyxy(as_boxes(windows[r.name], sw, r.name))
    elif source == "hcic":
        ann = root if root.is_file() else base / "image_crop.json"
        data = read_json(ann)
        if not isinstance(data, dict):
            raise DataFormatError(ann, "expected {name: [x, y, w, h]}")
        sf = ann.parent / "data_split.json"
        if split == "all":
            names, sname = list(data), None
        else:
            if not sf.is_file():
                raise DataFormatError(ann, f"split {split!r} needs data_split.json next to it; use split='all'")
            sp = read_json(sf)
            if split not in sp:
                raise DataFormatError(sf, f"no split {split!r}; available: {', '.join(sp)}")
            names, sname = sp[split], split
        for name in names:
            if name not in data:
                raise DataFormatError(ann, f"image {name} (listed in {sf.name}) has no crop")
            gt = xywh_to_xyxy(as_boxes(data[name], ann, f"image {name}"))
            records.append(CropRecord(name=name, image_path=resolve_image(img_dirs, name), gt_crops=gt, split=sname))
    else:
        raise ValueError(f"unknown FCDB source {source!r}; use auto, official or hcic")
    if human is None and (base / "human_bboxes.json").is_file():
        human = base / "human_bboxes.json"
    if human is not None:
        attach_human_boxes(records, human)
    records = select_subset(records, subset)
    attach_sizes(records, require_images)
    return records
