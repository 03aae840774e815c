"""Batch inputs: a folder (searched recursively), a list file (one path per line) or a manifest table.

A manifest is a ``.parquet`` or ``.csv`` file with a column ``image`` (or ``path``) of image paths; other columns
are ignored. Relative paths in a list file or manifest are taken as they are (relative to the working directory),
as the list file always did. Parquet needs ``pyarrow`` (installed with ``opencrop[ray]``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from opencrop.errors import DataFormatError

__all__ = ["IMAGE_SUFFIXES", "MANIFEST_SUFFIXES", "iter_inputs", "read_manifest"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".avif", ".heif", ".heic", ".ico",
                  ".tga"}
MANIFEST_SUFFIXES = {".parquet", ".csv"}
_COLUMNS = ("image", "path")


def iter_inputs(src: Path) -> Iterator[tuple[Path, Path]]:
    """``(image path, path relative to the output root)`` of every input: for a folder the path below it (the
    output mirrors the layout), for a list file or manifest the bare file name."""
    if src.is_dir():
        for p in sorted(src.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                yield p, p.relative_to(src)
    elif src.is_file():
        lines = read_manifest(src) if src.suffix.lower() in MANIFEST_SUFFIXES else _list_file(src)
        for line in lines:
            p = Path(line)
            yield p, Path(p.name)
    else:
        raise FileNotFoundError(f"{src}: no such folder, list file or manifest")


def _list_file(src: Path) -> list[str]:
    out = []
    for line in src.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def read_manifest(src: Path) -> list[str]:
    """Image paths of a Parquet/CSV manifest's ``image`` (or ``path``) column, in row order, empty cells dropped.

    Raises:
        DataFormatError: no such column, an unreadable table, or Parquet without ``pyarrow``.
    """
    if src.suffix.lower() == ".csv":
        with open(src, newline="") as fh:
            reader = csv.DictReader(fh)
            col = _column(src, reader.fieldnames or [])
            values = [row.get(col) for row in reader]
    else:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFormatError(src, "a Parquet manifest needs pyarrow: pip install 'opencrop[ray]'") from None
        try:
            schema = pq.read_schema(src)
            col = _column(src, schema.names)
            values = pq.read_table(src, columns=[col]).column(col).to_pylist()
        except DataFormatError:
            raise
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a damaged file
            raise DataFormatError(src, f"cannot read as Parquet ({type(e).__name__}: {e})") from None
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def _column(src: Path, names: list[str]) -> str:
    for c in _COLUMNS:
        if c in names:
            return c
    raise DataFormatError(src, f"a manifest needs a column 'image' or 'path'; it has {list(names)}")
