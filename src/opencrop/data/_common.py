"""Helpers shared by the dataset adapters: strict JSON / table readers, image lookup, box validation.

Every reader raises :class:`~opencrop.errors.DataFormatError` naming the file (and line where known).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from opencrop.errors import DataFormatError

__all__ = [
    "as_boxes",
    "attach_sizes",
    "image_size",
    "parse_table",
    "read_json",
    "resolve_image",
    "sha256_file",
]


def read_json(path: str | Path) -> Any:
    """Parse a JSON file (``.json`` or ``.json.gz``); malformed content raises :class:`DataFormatError`."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, "file not found")
    try:
        if p.suffix == ".gz":
            import gzip

            with gzip.open(p, "rt", encoding="utf-8") as f:
                return json.load(f)
        with p.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(p, f"invalid JSON: {e.msg}", line=e.lineno) from e
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataFormatError(p, f"cannot read: {e}") from e


def parse_table(path: str | Path, ncols: int) -> np.ndarray:
    """Read a whitespace-separated numeric text file with exactly ``ncols`` numbers per non-empty line → ``[L, ncols]``.

    Raises :class:`DataFormatError` naming the file and the 1-based line of the first malformed row.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError as e:
        raise DataFormatError(p, "file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(p, f"cannot read: {e}") from e
    rows: list[list[float]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != ncols:
            raise DataFormatError(p, f"expected {ncols} numbers, got {len(parts)}: {line.strip()!r}", line=i)
        try:
            vals = [float(v) for v in parts]
        except ValueError as e:
            raise DataFormatError(p, f"not a number in {line.strip()!r}", line=i) from e
        if not all(np.isfinite(vals)):
            raise DataFormatError(p, f"non-finite value in {line.strip()!r}", line=i)
        rows.append(vals)
    return np.asarray(rows, dtype=np.float64).reshape(-1, ncols)


def as_boxes(value: Any, source: str | Path, what: str, allow_empty: bool = False) -> np.ndarray:
    """Validate a nested list as ``[N, 4]`` finite float64 boxes (any convention); a single box becomes ``[1, 4]``."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataFormatError(source, f"{what}: not a numeric box list") from e
    if a.ndim == 1 and a.size == 4:
        a = a[None]
    if a.size == 0 and allow_empty:
        return np.zeros((0, 4))
    if a.ndim != 2 or a.shape[1] != 4 or a.shape[0] == 0:
        raise DataFormatError(source, f"{what}: expected boxes of 4 numbers, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataFormatError(source, f"{what}: non-finite coordinate")
    return a


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` of an image file as stored on disk (header only), or ``None`` if unreadable/absent."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, ValueError):
        return None


def resolve_image(dirs: Iterable[Path | None], name: str) -> Path | None:
    """The first ``dir / name`` that exists; else the path in the first existing dir (so a check can report it
    missing); ``None`` when none of the directories exists (annotation-only use)."""
    existing = [d for d in dirs if d is not None and d.is_dir()]
    for d in existing:
        if (d / name).is_file():
            return d / name
    return existing[0] / name if existing else None


def attach_sizes(records: list, require_images: bool = False) -> None:
    """Fill ``width`` / ``height`` of records from their image headers (in place).

    With ``require_images`` a missing or unreadable image raises :class:`DataFormatError` naming it.
    """
    for r in records:
        if r.image_path is None:
            if require_images:
                raise DataFormatError(r.name, "no image directory found for this record")
            continue
        if r.width is not None and r.height is not None and not require_images:
            continue
        size = image_size(r.image_path)
        if size is None:
            if require_images:
                why = "image file missing" if not Path(r.image_path).exists() else "image file unreadable"
                raise DataFormatError(r.image_path, why)
            continue
        r.width, r.height = size


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
