"""GAICD v1 / v2 (Zeng et al., CVPR'19 / TPAMI'20) in its four on-disk forms → :class:`CropRecord`.

Sources (``source=``):

* ``"txt"``  — the raw release: ``annotations/{split}/<id>.txt``, lines ``y1 x1 y2 x2 score`` (**yxyx** integer
  pixels, MOS in [1, 5]); score −2 marks a crop that was not annotated and is skipped. Images in
  ``images/{split}/<id>.jpg``. Also used for GAICD v2 ("GAIC-journal"). Splits: the sub-folders present.
* ``"mat"``  — the authors' ``imdb_GAIC1000.mat`` (4 × N yxyx matrices). Splits follow ``imdb.images.set``:
  train 1,000 / val 36 / test 200.
* ``"json"`` — ``gaicd_v1_official_xyxy.json`` (xyxy, the ``.mat`` converted). Splits as the ``.mat`` (``imdb_set``).
* ``"hcic"`` — HCIC's ``image_crop.json`` (xyxy, crops sorted by score) + ``original_data_split.json``
  (train 1,036 / test 200).

Every record has ``crops [N, 4]`` xyxy float pixels of the released image (1024 px long side) and ``scores [N]``.
``split="all"`` returns every image. Optional extras: HCIC human boxes (``human=``, default
``<root>/human_bboxes.json``) and S2CNet object boxes (``objects=``, default ``<root>/bbox``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opencrop.boxes import yxyx_to_xyxy
from opencrop.data._common import as_boxes, attach_sizes, parse_table, read_json, resolve_image
from opencrop.data.human import attach_human_boxes, select_subset
from opencrop.data.record import CropRecord
from opencrop.data.s2cnet import attach_object_boxes
from opencrop.errors import DataFormatError

__all__ = ["INVALID_SCORE", "detect_gaicd_source", "load_gaicd", "parse_gaicd_txt"]

#: raw GAICD score of a grid crop that violates a constraint and was not annotated
INVALID_SCORE = -2.0
_SOURCES = ("txt", "mat", "json", "hcic")
_FILE_NAMES = {
    "txt": "annotations",
    "mat": "imdb_GAIC1000.mat",
    "json": "gaicd_v1_official_xyxy.json",
    "hcic": "image_crop.json",
}


def detect_gaicd_source(root: str | Path) -> tuple[str, Path]:
    """Which GAICD form ``root`` holds → ``(source, annotation path)``; raises :class:`DataFormatError` if none."""
    root = Path(root)
    if root.is_file():
        if root.suffix == ".mat":
            return "mat", root
        if root.suffix == ".json":
            data = read_json(root)
            return ("json" if isinstance(data, dict) and "images" in data and "meta" in data else "hcic"), root
        raise DataFormatError(root, "not a GAICD annotation file (.mat or .json expected)")
    if (root / "annotations").is_dir():
        return "txt", root / "annotations"
    for name, src in (
        ("imdb_GAIC1000.mat", "mat"),
        ("gaicd_v1_official_xyxy.json", "json"),
        ("image_crop.json", "hcic"),
    ):
        if (root / name).is_file():
            return src, root / name
    raise DataFormatError(
        root,
        "no GAICD annotations found: expected annotations/<split>/*.txt, imdb_GAIC1000.mat, "
        "gaicd_v1_official_xyxy.json or image_crop.json",
    )


def _image_dirs(root: Path, images: str | Path | None, folder: str | None) -> list[Path | None]:
    base = Path(images) if images is not None else (root if root.is_dir() else root.parent) / "images"
    return [base / folder if folder else None, base]


def load_gaicd(
    root: str | Path,
    split: str = "test",
    source: str = "auto",
    images: str | Path | None = None,
    human: str | Path | None = None,
    objects: str | Path | None = None,
    subset: str | None = None,
    require_images: bool = False,
) -> list[CropRecord]:
    """Load GAICD (v1 or v2) annotations as records with ``crops`` (xyxy float pixels) and ``scores`` (MOS).

    Args:
        root: the dataset folder (``annotations/``, ``images/``) or an annotation file / folder of one of the
            four forms (see the module docstring).
        split: ``"train" | "val" | "test" | "all"``.
        source: ``"auto" | "txt" | "mat" | "json" | "hcic"``.
        images: image folder (holding ``{split}/<id>.jpg`` or ``<id>.jpg``); default ``<root>/images``.
        human: HCIC ``human_bboxes.json`` to attach (default ``<root>/human_bboxes.json`` when present).
        objects: S2CNet ``bbox/`` folder or gathered JSON to attach (default ``<root>/bbox`` when present).
        subset: ``None`` (all) or ``"human"`` (records with a human box).
        require_images: raise :class:`DataFormatError` for a missing / unreadable image.
    """
    root = Path(root)
    if source == "auto":
        source, ann = detect_gaicd_source(root)
    elif source in _SOURCES:
        ann = root
        if root.is_dir():
            if source == "mat" and not (root / _FILE_NAMES["mat"]).is_file():
                ann = next(iter(sorted(root.glob("*.mat"))), root / _FILE_NAMES["mat"])
            else:
                ann = root / _FILE_NAMES[source]
    else:
        raise ValueError(f"unknown GAICD source {source!r}; use one of auto, {', '.join(_SOURCES)}")
    loader = {"txt": _load_txt, "mat": _load_mat, "json": _load_json, "hcic": _load_hcic}[source]
    records = loader(ann, split, root, images)
    base = root if root.is_dir() else root.parent
    if human is None and (base / "human_bboxes.json").is_file():
        human = base / "human_bboxes.json"
    if human is not None:
        attach_human_boxes(records, human)
    if objects is None and (base / "bbox").is_dir():
        objects = base / "bbox"
    if objects is not None:
        attach_object_boxes(records, objects)
    records = select_subset(records, subset)
    attach_sizes(records, require_images)
    return records


def _check_split(split: str, available: list[str], source: Path) -> None:
    if split != "all" and split not in available:
        raise DataFormatError(source, f"no split {split!r}; available: {', '.join([*available, 'all'])}")


def parse_gaicd_txt(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One raw GAICD annotation file → ``(crops [N, 4] xyxy float pixels, MOS [N])`` with −2 rows skipped.

    Raises :class:`DataFormatError` naming the file and line for a malformed row, a score outside [0, 5] (other
    than −2) or a degenerate box.
    """
    table = parse_table(path, 5)
    bad = (table[:, 4] != INVALID_SCORE) & ((table[:, 4] < 0) | (table[:, 4] > 5))
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 1
        raise DataFormatError(path, f"score {table[line - 1, 4]} outside [0, 5] and not -2", line=line)
    degenerate = (table[:, 2] <= table[:, 0]) | (table[:, 3] <= table[:, 1])
    if degenerate.any():
        line = int(np.flatnonzero(degenerate)[0]) + 1
        raise DataFormatError(path, "y2 <= y1 or x2 <= x1 (expected y1 x1 y2 x2 score)", line=line)
    valid = table[table[:, 4] != INVALID_SCORE]
    return yxyx_to_xyxy(valid[:, :4]), valid[:, 4].copy()


def _load_txt(ann: Path, split: str, root: Path, images: str | Path | None) -> list[CropRecord]:
    if not ann.is_dir():
        raise DataFormatError(ann, "annotation folder not found")
    subdirs = sorted(d.name for d in ann.iterdir() if d.is_dir())
    if subdirs:
        _check_split(split, subdirs, ann)
        folders = subdirs if split == "all" else [split]
        files = [(f, s) for s in folders for f in sorted((ann / s).glob("*.txt"))]
    else:  # S2CNet layout: annotations/<id>.txt without split folders
        if split != "all":
            raise DataFormatError(ann, f"no split folders here, so split {split!r} is unknown; use split='all'")
        files = [(f, None) for f in sorted(ann.glob("*.txt"))]
    records = []
    for f, s in files:
        boxes, scores = parse_gaicd_txt(f)
        name = f.stem + ".jpg"
        records.append(
            CropRecord(
                name=name,
                image_path=resolve_image(_image_dirs(root, images, s), name),
                crops=boxes,
                scores=scores,
                split=s,
            )
        )
    return records


def _load_mat(ann: Path, split: str, root: Path, images: str | Path | None) -> list[CropRecord]:
    import scipy.io

    try:
        imdb = scipy.io.loadmat(str(ann), squeeze_me=True, struct_as_record=False)["imdb"]
        paths = [str(p) for p in np.atleast_1d(imdb.meta.img_path)]
        all_boxes = list(np.atleast_1d(imdb.bbox.boxes))
        all_scores = list(np.atleast_1d(imdb.bbox.gt_scores))
        # imdb.images.set codes are 1 = train, 2 = test, 3 = val (not meta.sets' order): use the index lists
        sets: list[str | None] = [None] * len(paths)
        for sname, field in (("train", "trainSet"), ("val", "valSet"), ("test", "testSet")):
            for k in np.atleast_1d(getattr(imdb.images, field)).astype(int):
                sets[k - 1] = sname
    except (KeyError, AttributeError, ValueError, OSError, IndexError) as e:
        raise DataFormatError(ann, f"not a GAICD imdb .mat file: {e}") from e
    if not (len(paths) == len(all_boxes) == len(all_scores) == len(sets)):
        raise DataFormatError(ann, "imdb fields have different lengths")
    _check_split(split, ["train", "val", "test"], ann)
    records = []
    for i, (p, b, s, sname) in enumerate(zip(paths, all_boxes, all_scores, sets, strict=True)):
        if split != "all" and sname != split:
            continue
        b = np.asarray(b, dtype=np.float64).reshape(4, -1).T  # 4 × N yxyx → N × 4
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        if b.shape[0] != s.shape[0]:
            raise DataFormatError(ann, f"image {i + 1} ({p}): {b.shape[0]} boxes but {s.shape[0]} scores")
        name = Path(p).name
        folder = Path(p).parent.name or None
        records.append(
            CropRecord(
                name=name,
                image_path=resolve_image(_image_dirs(root, images, folder), name),
                crops=yxyx_to_xyxy(b),
                scores=s,
                split=sname,
                extra={"folder": folder},
            )
        )
    return records


def _load_json(ann: Path, split: str, root: Path, images: str | Path | None) -> list[CropRecord]:
    data = read_json(ann)
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise DataFormatError(ann, "expected {'meta': ..., 'images': {name: {...}}}")
    sets = sorted({str(v.get("imdb_set")) for v in data["images"].values()})
    _check_split(split, sets, ann)
    records = []
    for name, v in data["images"].items():
        if split != "all" and v.get("imdb_set") != split:
            continue
        try:
            crops, mos = v["crops_xyxy"], v["mos"]
        except (KeyError, TypeError) as e:
            raise DataFormatError(ann, f"image {name}: missing key {e}") from e
        boxes = as_boxes(crops, ann, f"image {name} crops_xyxy")
        scores = np.asarray(mos, dtype=np.float64)
        if scores.shape != (boxes.shape[0],):
            raise DataFormatError(ann, f"image {name}: {boxes.shape[0]} crops but {scores.size} scores")
        records.append(
            CropRecord(
                name=name,
                image_path=resolve_image(_image_dirs(root, images, v.get("folder")), name),
                crops=boxes,
                scores=scores,
                split=v.get("imdb_set"),
                extra={"folder": v.get("folder")},
            )
        )
    return records


def _load_hcic(ann: Path, split: str, root: Path, images: str | Path | None) -> list[CropRecord]:
    data = read_json(ann)
    if not isinstance(data, dict):
        raise DataFormatError(ann, "expected {name: {'bbox': [...], 'score': [...]}}")
    split_file = ann.parent / "original_data_split.json"
    name_split: dict[str, str] = {}
    if split_file.is_file():
        sp = read_json(split_file)
        name_split = {n: k for k, names in sp.items() for n in names}
        _check_split(split, sorted(sp), split_file)
    elif split != "all":
        raise DataFormatError(ann, f"split {split!r} needs original_data_split.json next to it; use split='all'")
    records = []
    for name, v in data.items():
        s = name_split.get(name)
        if split != "all" and s != split:
            continue
        try:
            boxes = as_boxes(v["bbox"], ann, f"image {name} bbox")
            scores = np.asarray(v["score"], dtype=np.float64)
        except (KeyError, TypeError) as e:
            raise DataFormatError(ann, f"image {name}: missing key {e}") from e
        if scores.shape != (boxes.shape[0],):
            raise DataFormatError(ann, f"image {name}: {boxes.shape[0]} boxes but {scores.size} scores")
        records.append(
            CropRecord(
                name=name,
                image_path=resolve_image(_image_dirs(root, images, s), name),
                crops=boxes,
                scores=scores,
                split=s,
            )
        )
    return records
