"""S2CNet object proposals (Su et al., AAAI'24): Faster R-CNN / Visual Genome boxes per GAICD image.

Forms:

* ``bbox/<id>.txt`` — one box per line ``y1 x1 y2 x2`` (**yxyx** pixels of the original image), 10 per image for
  GAICD v1 and 5 for v2;
* the gathered JSON ``{"<id>.jpg": [[y1, x1, y2, x2], …]}`` (``*_boxes_raw.json``, yxyx) or
  ``{"format": str, "boxes": {"<id>.jpg": [[x1, y1, x2, y2], …]}}`` (``*_object_boxes_xyxy.json``).

Degenerate placeholder boxes (width or height ≤ 1 px) are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opencrop.boxes import yxyx_to_xyxy
from opencrop.data._common import as_boxes, parse_table, read_json
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["attach_object_boxes", "drop_degenerate", "load_object_boxes"]


def drop_degenerate(boxes: np.ndarray, min_size: float = 1.0) -> np.ndarray:
    """Keep xyxy boxes ``[N, 4]`` whose width and height both exceed ``min_size`` pixels."""
    keep = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
    return boxes[keep]


def load_object_boxes(path: str | Path, filter_degenerate: bool = True) -> dict[str, np.ndarray]:
    """Read S2CNet object boxes (``bbox/`` folder of txt, or either JSON form) → ``{"<id>.jpg": [D, 4] xyxy}``."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    if path.is_dir():
        for f in sorted(path.glob("*.txt")):
            out[f.stem + ".jpg"] = yxyx_to_xyxy(parse_table(f, 4))
    else:
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataFormatError(path, "expected a JSON object of boxes per image")
        if "boxes" in data and isinstance(data["boxes"], dict):
            out = {k: as_boxes(v, path, f"image {k}", allow_empty=True) for k, v in data["boxes"].items()}
        else:
            out = {k: yxyx_to_xyxy(as_boxes(v, path, f"image {k}", allow_empty=True)) for k, v in data.items()}
    if filter_degenerate:
        out = {k: drop_degenerate(v) for k, v in out.items()}
    return out


def attach_object_boxes(records: list[CropRecord], path: str | Path) -> None:
    """Set ``object_boxes`` ``[D, 4]`` xyxy on records found in ``path`` (in place)."""
    boxes = load_object_boxes(path)
    for r in records:
        if r.name in boxes:
            r.object_boxes = boxes[r.name]
