"""HCIC human boxes (Zhang et al., ECCV'22) and the human evaluation subsets.

Files (all **xyxy** integer pixels of the released image):

* GAICD / FCDB / FLMS ``human_bboxes.json``: ``{name: [x1, y1, x2, y2]}``.
* CPC ``human_bboxes.json``: ``{name: {"bbox": [x1, y1, x2, y2], "weight": W, "height": H}}`` — ``weight`` is a
  misspelling of the image **width**.

Subsets: GAICD human test = 50 images (``human_data_split.json``), FCDB human = 176, FLMS human = 39; in every case
the subset is "the images that have a human box", which :func:`select_subset` implements.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from opencrop.data._common import as_boxes, read_json
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["HumanBox", "attach_human_boxes", "load_human_boxes", "select_subset"]


class HumanBox(NamedTuple):
    """One image's main person: ``box [4]`` xyxy float pixels, plus the image size when the file gives it (CPC)."""

    box: np.ndarray
    width: int | None
    height: int | None


def load_human_boxes(path: str | Path) -> dict[str, HumanBox]:
    """Read an HCIC ``human_bboxes.json`` (either form) → ``{name: HumanBox(box xyxy [4], width, height)}``."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataFormatError(path, "expected {name: [x1, y1, x2, y2]} or {name: {'bbox', 'weight', 'height'}}")
    out: dict[str, HumanBox] = {}
    for name, v in data.items():
        if isinstance(v, dict):
            if "bbox" not in v:
                raise DataFormatError(path, f"image {name}: no 'bbox' key")
            box = as_boxes(v["bbox"], path, f"image {name} bbox")[0]
            w = v.get("width", v.get("weight"))  # CPC: 'weight' is the width
            h = v.get("height")
            out[name] = HumanBox(box, int(w) if w is not None else None, int(h) if h is not None else None)
        else:
            out[name] = HumanBox(as_boxes(v, path, f"image {name}")[0], None, None)
    return out


def attach_human_boxes(records: list[CropRecord], path: str | Path) -> None:
    """Set ``human_box`` (and a missing width/height, from CPC's file) on the records named in ``path`` (in place)."""
    boxes = load_human_boxes(path)
    for r in records:
        hb = boxes.get(r.name)
        if hb is None:
            continue
        r.human_box = hb.box
        if r.width is None and hb.width is not None:
            r.width, r.height = hb.width, hb.height


def select_subset(records: list[CropRecord], subset: str | None) -> list[CropRecord]:
    """``None`` / ``"all"`` → all records; ``"human"`` → records with a human box (HCIC's human subsets)."""
    if subset in (None, "all", "full"):
        return records
    if subset == "human":
        return [r for r in records if r.human_box is not None]
    raise ValueError(f"unknown subset {subset!r}; use 'human' or 'all'")
