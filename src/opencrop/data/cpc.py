"""CPC (Wei et al., CVPR'18: "Good View Hunting"), 24 scored views per image → :class:`CropRecord`.

Sources (``source=``):

* ``"raw"``  — ``CollectedAnnotationsRaw/<name>.jpg.txt``: a JSON-encoded **string** (double-encoded JSON) of
  ``{"scores": [[24 ints] per worker], "bboxes": [24 × [x1, y1, x2, y2]]}``; the score of a view is the mean over
  workers. Images in ``images/<name>.jpg``.
* ``"hcic"`` — HCIC's ``image_crop.json``: ``{name: {"bboxes": [24 × xyxy], "scores": [24]}}``.

Boxes are **xyxy** pixels. CPC has no official split: ``split="all"`` (default) returns everything; any other split
needs a ``data_split.json`` ``{split: [names]}`` next to the annotations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from opencrop.data._common import as_boxes, attach_sizes, read_json, resolve_image
from opencrop.data.human import attach_human_boxes, select_subset
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["load_cpc", "parse_cpc_raw"]


def parse_cpc_raw(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One raw CPC file → ``(boxes [24, 4] xyxy pixels, mean scores [24])``; accepts single or double encoding."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(obj, str):
            obj = json.loads(obj)
    except FileNotFoundError as e:
        raise DataFormatError(path, "file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(path, f"invalid JSON: {e}", line=getattr(e, "lineno", None)) from e
    if not isinstance(obj, dict) or "scores" not in obj or "bboxes" not in obj:
        raise DataFormatError(path, "expected {'scores': [[...] per worker], 'bboxes': [[x1, y1, x2, y2], ...]}")
    boxes = as_boxes(obj["bboxes"], path, "bboxes")
    try:
        votes = np.asarray(obj["scores"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataFormatError(path, "scores: not a rectangular numeric list (workers × views)") from e
    if votes.ndim == 1:
        votes = votes[None]
    if votes.ndim != 2 or votes.shape[1] != boxes.shape[0]:
        raise DataFormatError(path, f"scores shape {votes.shape} does not match {boxes.shape[0]} boxes")
    return boxes, votes.mean(axis=0)


def load_cpc(
    root: str | Path,
    split: str = "all",
    source: str = "auto",
    images: str | Path | None = None,
    human: str | Path | None = None,
    subset: str | None = None,
    require_images: bool = False,
) -> list[CropRecord]:
    """Load CPC as records with ``crops [24, 4]`` xyxy float pixels and ``scores [24]`` (mean votes)."""
    root = Path(root)
    base = root if root.is_dir() else root.parent
    if source == "auto":
        if root.is_file():
            source = "hcic"
        elif (root / "CollectedAnnotationsRaw").is_dir():
            source = "raw"
        elif (root / "image_crop.json").is_file():
            source = "hcic"
        else:
            raise DataFormatError(root, "no CPC annotations: expected CollectedAnnotationsRaw/ or image_crop.json")
    img_dirs = [Path(images) if images is not None else base / "images"]
    records: list[CropRecord] = []
    if source == "raw":
        for f in sorted((root / "CollectedAnnotationsRaw").glob("*.txt")):
            name = f.name[: -len(".txt")]
            boxes, scores = parse_cpc_raw(f)
            records.append(CropRecord(name=name, image_path=resolve_image(img_dirs, name), crops=boxes, scores=scores))
    elif source == "hcic":
        ann = root if root.is_file() else root / "image_crop.json"
        data = read_json(ann)
        if not isinstance(data, dict):
            raise DataFormatError(ann, "expected {name: {'bboxes': [...], 'scores': [...]}}")
        for name, v in data.items():
            if not isinstance(v, dict) or "bboxes" not in v or "scores" not in v:
                raise DataFormatError(ann, f"image {name}: expected keys 'bboxes' and 'scores'")
            boxes = as_boxes(v["bboxes"], ann, f"image {name} bboxes")
            scores = np.asarray(v["scores"], dtype=np.float64).reshape(-1)
            if scores.shape[0] != boxes.shape[0]:
                raise DataFormatError(ann, f"image {name}: {boxes.shape[0]} boxes but {scores.size} scores")
            records.append(CropRecord(name=name, image_path=resolve_image(img_dirs, name), crops=boxes, scores=scores))
    else:
        raise ValueError(f"unknown CPC source {source!r}; use auto, raw or hcic")
    if split not in ("all", None):
        sf = base / "data_split.json"
        if not sf.is_file():
            raise DataFormatError(base, f"CPC has no official split; split {split!r} needs data_split.json")
        sp = read_json(sf)
        if split not in sp:
            raise DataFormatError(sf, f"no split {split!r}; available: {', '.join(sp)}")
        keep = set(sp[split])
        records = [r for r in records if r.name in keep]
        for r in records:
            r.split = split
    if human is None and (base / "human_bboxes.json").is_file():
        human = base / "human_bboxes.json"
    if human is not None:
        attach_human_boxes(records, human)
    records = select_subset(records, subset)
    attach_sizes(records, require_images)
    return records
