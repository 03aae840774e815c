"""``opencrop batch --engine ray`` on a local 2-CPU Ray cluster started here: the same records and outputs as the
local engine, a bad file as an error record, resume across engines, results.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop.cli import main

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'opencrop[ray]')")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _inputs(d: Path) -> Path:
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(("a.jpg", "b.jpg", "sub/c.png", "sub/a.jpg", "d.jpg")):
        px = rng.normal(100, 10, (120 + 10 * i, 180, 3)).clip(0, 255).astype(np.uint8)
        px[30:90, 100 + 10 * i: 150 + 5 * i] = (200, 40, 40)
        Image.fromarray(px).save(d / name)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return d


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "ms"}


def test_ray_engine_matches_local_and_resumes(cluster, tmp_path: Path) -> None:
    src = _inputs(tmp_path / "in")
    argv = ["-r", "1:1", "-r", "16:9", "--no-cues", "--format", "jpg"]
    assert main(["batch", str(src), "--out", str(tmp_path / "local"), *argv]) == 1  # the broken file
    out = tmp_path / "ray"
    assert main(["batch", str(src), "--out", str(out), *argv, "--engine", "ray", "--jobs", "2"]) == 1
    local = {r["image"]: _strip(r) for r in _records(tmp_path / "local")}
    recs = _records(out)
    assert len(recs) == 6
    got = {r["image"]: _strip(r) for r in recs}
    assert got.keys() == local.keys()
    for image, r in got.items():
        want = json.loads(json.dumps(local[image]).replace(str(tmp_path / "local"), str(out)))
        assert r == want, image  # same boxes, scores, output names (the two a.jpg: no collision), same job key
    bad = got[str(src / "broken.jpg")]
    assert bad["status"] == "error" and "broken.jpg" in bad["error"]
    for r in got.values():
        for c in r.get("crops", []):
            x1, y1, x2, y2 = c["box"]
            with Image.open(c["output"]) as im:
                assert im.size == (x2 - x1, y2 - y1)
    table = pq.read_table(out / "results.parquet")
    assert table.num_rows == 6 and sorted(table.column("status").to_pylist()) == ["error"] + ["ok"] * 5
    rows = {r["image"]: r for r in table.to_pylist()}
    for image, r in got.items():  # the Parquet rows carry the same records
        assert rows[image]["status"] == r["status"] and rows[image]["job"] == r["job"]
        assert [c["box"] for c in rows[image]["crops"] or []] == [c["box"] for c in r.get("crops", [])]

    # resume: only the broken file is redone, by either engine (same job key)
    assert main(["batch", str(src), "--out", str(out), *argv, "--engine", "ray", "--resume"]) == 1
    again = _records(out)[6:]
    assert [(r["image"], r["status"]) for r in again] == [(str(src / "broken.jpg"), "error")]
    assert main(["batch", str(src), "--out", str(out), *argv, "--resume"]) == 1
    assert [r["image"] for r in _records(out)[7:]] == [str(src / "broken.jpg")]
    assert pq.read_table(out / "results.parquet").num_rows == 7  # written by the last ray run


def test_ray_engine_over_a_parquet_manifest(cluster, tmp_path: Path) -> None:
    import pyarrow as pa

    src = _inputs(tmp_path / "in")
    m = tmp_path / "m.parquet"
    pq.write_table(pa.table({"image": [str(src / "a.jpg"), str(src / "sub" / "a.jpg")]}), m)
    out = tmp_path / "out"
    assert main(["batch", str(m), "--out", str(out), "-r", "1:1", "--no-cues", "--engine", "ray"]) == 0
    recs = sorted(_records(out), key=lambda r: r["image"])
    assert [r["status"] for r in recs] == ["ok", "ok"]
    outputs = sorted(r["crops"][0]["output"] for r in recs)
    assert outputs == [str(out / "a_1x1-2.jpg"), str(out / "a_1x1.jpg")]  # both in the root: the later is renamed
    assert all(Path(o).is_file() for o in outputs)
