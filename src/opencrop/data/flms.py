"""FLMS (Fang et al., ACM MM'14), 500 images with up to 10 expert crops each → :class:`CropRecord`.

Sources (``source=``):

* ``"mat"``  — the raw ``500_image_dataset.mat``: ``img_gt`` is an ``N × 1`` struct array whose elements hold
  ``(filename, bbox)`` with ``bbox`` ``[M, 4]`` **yxyx** pixels, padded with −1 rows (dropped here). Images in
  ``image/`` (raw layout) or ``images/``.
* ``"json"`` — HCIC's ``image_crop.json`` ``{name: [[x1, y1, x2, y2] × 9–10]}`` (xyxy, no padding).

Also :func:`load_flms_design` for the design-constraint file ``FLMS_blank_aspect.json`` (Nishiyasu et al. 2023).
FLMS is a test-only benchmark: ``split`` may be ``"test"`` or ``"all"`` (the same 500 images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opencrop.boxes import yxyx_to_xyxy
from opencrop.data._common import as_boxes, attach_sizes, read_json, resolve_image
from opencrop.data.human import attach_human_boxes, select_subset
from opencrop.data.record import CropRecord
from opencrop.errors import DataFormatError

__all__ = ["load_flms", "load_flms_design", "read_flms_mat"]

_JSON_NAMES = ("image_crop.json", "image_crop_from_hcic.json")


def read_flms_mat(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``500_image_dataset.mat`` → ``{filename: [M, 4] xyxy float pixels}`` with the −1 padding rows removed."""
    import scipy.io

    path = Path(path)
    try:
        img_gt = scipy.io.loadmat(str(path))["img_gt"]
    except (KeyError, ValueError, OSError, TypeError) as e:
        raise DataFormatError(path, f"not an FLMS .mat file with 'img_gt': {e}") from e
    out: dict[str, np.ndarray] = {}
    for i in range(img_gt.shape[0]):
        try:
            entry = img_gt[i, 0] if img_gt.ndim == 2 else img_gt[i]
            name = str(np.asarray(entry[0]).ravel()[0])
            raw = np.asarray(entry[1], dtype=np.float64).reshape(-1, 4)
        except (IndexError, TypeError, ValueError) as e:
            raise DataFormatError(path, f"img_gt[{i}]: expected (filename, bbox N×4): {e}") from e
        keep = ~(raw < 0).any(axis=1)
        out[name] = yxyx_to_xyxy(raw[keep])
    return out


def _flms_base(root: Path) -> Path:
    return root if root.is_dir() else root.parent


def load_flms(
    root: str | Path,
    split: str = "test",
    source: str = "auto",
    images: str | Path | None = None,
    human: str | Path | None = None,
    subset: str | None = None,
    require_images: bool = False,
) -> list[CropRecord]:
    """Load FLMS as records with ``gt_crops [M ≤ 10, 4]`` xyxy float pixels."""
    root = Path(root)
    base = _flms_base(root)
    if split not in ("test", "all", None):
        raise ValueError(f"FLMS is a test-only set; split must be 'test' or 'all', got {split!r}")
    if source == "auto":
        if root.is_file():
            source = "mat" if root.suffix == ".mat" else "json"
        elif (root / "500_image_dataset.mat").is_file():
            source = "mat"
        elif any((root / n).is_file() for n in _JSON_NAMES):
            source = "json"
        else:
            raise DataFormatError(root, "no FLMS annotations: expected 500_image_dataset.mat or image_crop.json")
    if source == "mat":
        gts = read_flms_mat(root if root.is_file() else root / "500_image_dataset.mat")
    elif source == "json":
        ann = root if root.is_file() else next((root / n for n in _JSON_NAMES if (root / n).is_file()), root)
        data = read_json(ann)
        if not isinstance(data, dict):
            raise DataFormatError(ann, "expected {name: [[x1, y1, x2, y2], ...]}")
        gts = {}
        for k, v in data.items():
            b = as_boxes(v, ann, f"image {k}")
            gts[k] = b[~(b < 0).any(axis=1)]
    else:
        raise ValueError(f"unknown FLMS source {source!r}; use auto, mat or json")
    img_dirs = [Path(images)] if images is not None else [base / "image", base / "images"]
    records = [
        CropRecord(name=n, image_path=resolve_image(img_dirs, n), gt_crops=g, split="test") for n, g in gts.items()
    ]
    if human is None and (base / "human_bboxes.json").is_file():
        human = base / "human_bboxes.json"
    if human is not None:
        attach_human_boxes(records, human)
    records = select_subset(records, subset)
    attach_sizes(records, require_images)
    return records


def load_flms_design(
    root: str | Path, images: str | Path | None = None, require_images: bool = False
) -> list[CropRecord]:
    """Load ``FLMS_blank_aspect.json`` (cropping under design constraints): one record per (image, constraint).

    Each record: ``name`` = the entry key, ``gt_crops [1, 4]`` = ``blank_aspect_bbox`` (xyxy pixels),
    ``extra["layout_region"]`` = ``blank_space`` (xyxy pixels, lies inside the GT),
    ``extra["aspect_ratio"]`` = the GT's **height / width** (float), ``extra["image_name"]``,
    ``extra["blank_space_index"]``. ``image_path`` points at the FLMS image.
    """
    root = Path(root)
    ann = root if root.is_file() else root / "FLMS_blank_aspect.json"
    data = read_json(ann)
    if not isinstance(data, dict):
        raise DataFormatError(ann, "expected {key: {'image_name', 'aspect_ratio', 'blank_space', ...}}")
    base = _flms_base(root)
    img_dirs = [Path(images)] if images is not None else [base / "image", base / "images"]
    records = []
    for key, v in data.items():
        try:
            image_name = str(v["image_name"])
            ratio = float(v["aspect_ratio"])
            region = as_boxes(v["blank_space"], ann, f"{key} blank_space")[0]
            gt = as_boxes(v["blank_aspect_bbox"], ann, f"{key} blank_aspect_bbox")
            idx = int(v["blank_space_index"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataFormatError(ann, f"entry {key}: bad or missing field ({e})") from e
        records.append(
            CropRecord(
                name=key,
                image_path=resolve_image(img_dirs, image_name),
                gt_crops=gt,
                split="test",
                extra={
                    "image_name": image_name,
                    "aspect_ratio": ratio,
                    "layout_region": region,
                    "blank_space_index": idx,
                },
            )
        )
    attach_sizes(records, require_images)
    return records
