"""Batch inputs: folder, list file and Parquet/CSV manifests (opencrop.engine.inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop.cli import main
from opencrop.engine.inputs import iter_inputs, read_manifest
from opencrop.errors import DataFormatError


def _photos(d: Path, n: int) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        p = d / f"p{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(p)
        out.append(p)
    return out


def test_csv_manifest_reads_the_image_or_path_column(tmp_path: Path) -> None:
    a, b = _photos(tmp_path / "in", 2)
    m = tmp_path / "m.csv"
    m.write_text(f"id,path\n1,{a}\n2,\n3,{b}\n")  # an empty cell is skipped
    assert read_manifest(m) == [str(a), str(b)]
    assert [(str(p), str(r)) for p, r in iter_inputs(m)] == [(str(a), "p0.jpg"), (str(b), "p1.jpg")]
    m.write_text(f"image,path\n{a},{b}\n")  # 'image' wins over 'path'
    assert read_manifest(m) == [str(a)]


def test_manifest_without_the_column_is_a_typed_error(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text("file\nx.jpg\n")
    with pytest.raises(DataFormatError, match=r"m\.csv.*'image' or 'path'"):
        read_manifest(m)


def test_parquet_manifest_and_damaged_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    a, b = _photos(tmp_path / "in", 2)
    m = tmp_path / "m.parquet"
    pq.write_table(pa.table({"image": [str(b), str(a)], "other": [1, 2]}), m)
    assert read_manifest(m) == [str(b), str(a)]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(DataFormatError, match=r"bad\.parquet"):
        read_manifest(bad)


def test_local_batch_over_a_manifest(tmp_path: Path) -> None:
    a, b = _photos(tmp_path / "in", 2)
    m = tmp_path / "m.csv"
    m.write_text(f"image\n{a}\n{b}\n")
    out = tmp_path / "out"
    assert main(["batch", str(m), "--out", str(out), "-r", "1:1", "--no-cues"]) == 0
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in recs) == sorted([str(a), str(b)])
    assert (out / "p0_1x1.jpg").is_file() and (out / "p1_1x1.jpg").is_file()
