"""Batch results as a Parquet table (one row per record of ``results.jsonl``, the same fields)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read_records", "write_parquet"]

_KNOWN = ("image", "status", "error", "job", "ms", "width", "height", "crops", "degraded", "notes")


def read_records(log: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of a ``results.jsonl`` (a line cut by a kill is skipped)."""
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_parquet(log: Path, out: Path) -> Path:
    """Write every record of ``log`` to ``out`` atomically. Columns: ``image``, ``status``, ``error``, ``job``
    (the resume key), ``ms``, ``width``, ``height``, ``crops`` (list of ``{ratio, box [x1, y1, x2, y2] original
    pixels, score, output, renamed_from, warning}``), ``degraded``, ``notes`` and ``extra`` (any other keys, as
    JSON). Needs ``pyarrow``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    crop = pa.struct([("ratio", pa.string()), ("box", pa.list_(pa.int64())), ("score", pa.float64()),
                      ("output", pa.string()), ("renamed_from", pa.string()), ("warning", pa.string())])
    schema = pa.schema([("image", pa.string()), ("status", pa.string()), ("error", pa.string()),
                        ("job", pa.string()), ("ms", pa.float64()), ("width", pa.int64()), ("height", pa.int64()),
                        ("crops", pa.list_(crop)), ("degraded", pa.list_(pa.string())),
                        ("notes", pa.list_(pa.string())), ("extra", pa.string())])
    rows = []
    for r in read_records(log):
        row = {k: r.get(k) for k in _KNOWN}
        rest = {k: v for k, v in r.items() if k not in _KNOWN}
        row["extra"] = json.dumps(rest) if rest else None
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return out
