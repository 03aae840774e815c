"""GAICD adapter: the four real annotation forms agree with each other and with the published counts; the raw
.txt form is exercised on synthetic data written in that layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opencrop.candidates import gaic_grid
from opencrop.data import load_dataset, load_gaicd, load_object_boxes
from opencrop.data.synth import synthesize
from opencrop.errors import DataFormatError


@pytest.fixture(scope="module")
def real_gaicd(shared_data: Path) -> dict[str, dict]:
    mat = shared_data / "gaicd-annotations" / "imdb_GAIC1000.mat"
    js = shared_data / "gaicd-annotations" / "gaicd_v1_official_xyxy.json"
    hcic = shared_data / "hcic-annotations" / "GAICD"
    return {
        "mat": {r.name: r for r in load_gaicd(mat, split="all")},
        "json": {r.name: r for r in load_gaicd(js, split="all")},
        "hcic": {r.name: r for r in load_gaicd(hcic, split="all")},
    }


def test_real_counts_and_statistics(real_gaicd: dict[str, dict]) -> None:
    recs = list(real_gaicd["mat"].values())
    n = np.array([len(r.scores) for r in recs])
    assert len(recs) == 1236 and n.sum() == 106853
    assert n.min() == 54 and n.max() == 90
    mos = np.concatenate([r.scores for r in recs])
    assert mos.mean() == pytest.approx(2.943, abs=5e-4) and mos.std() == pytest.approx(0.814, abs=5e-4)
    boxes = np.concatenate([r.crops for r in recs])
    assert boxes[:, 2].max() == 981 and boxes[:, 3].max() == 981  # last bin centre of a 1024 px side
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()  # xyxy after the yxyx swap


def test_real_splits(shared_data: Path) -> None:
    mat = shared_data / "gaicd-annotations" / "imdb_GAIC1000.mat"
    assert [len(load_gaicd(mat, split=s)) for s in ("train", "val", "test")] == [1000, 36, 200]
    hcic = shared_data / "hcic-annotations" / "GAICD"
    assert [len(load_gaicd(hcic, split=s)) for s in ("train", "test")] == [1036, 200]
    assert {r.name for r in load_gaicd(mat, split="test")} == {r.name for r in load_gaicd(hcic, split="test")}
    with pytest.raises(DataFormatError, match="no split 'val'"):
        load_gaicd(hcic, split="val")
    # an explicit source picks that form's file inside a folder
    assert len(load_gaicd(shared_data / "gaicd-annotations", split="val", source="json")) == 36
    with pytest.raises(DataFormatError, match="file not found"):
        load_gaicd(hcic, source="json")


def test_real_forms_agree(real_gaicd: dict[str, dict]) -> None:
    mat, js, hcic = real_gaicd["mat"], real_gaicd["json"], real_gaicd["hcic"]
    assert set(mat) == set(js) == set(hcic)
    for name, r in mat.items():
        np.testing.assert_array_equal(r.crops, js[name].crops)  # same order (.mat order)
        np.testing.assert_array_equal(r.scores, js[name].scores)
        # HCIC sorts by score: compare as sets of (box, score) rows
        a = np.c_[r.crops, r.scores]
        b = np.c_[hcic[name].crops, hcic[name].scores]
        np.testing.assert_array_equal(a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])])
        assert (np.diff(hcic[name].scores) <= 0).all()


def test_real_human_subset(shared_data: Path) -> None:
    hcic = shared_data / "hcic-annotations" / "GAICD"
    recs = load_gaicd(hcic, split="test", subset="human")
    import json

    expected = set(json.loads((hcic / "human_data_split.json").read_text())["test"])
    assert len(recs) == 50 and {r.name for r in recs} == expected
    assert all(r.human_box is not None and r.human_box.shape == (4,) for r in recs)
    assert len(load_gaicd(hcic, split="train", subset="human")) == 289


def test_real_object_boxes(shared_data: Path) -> None:
    d = shared_data / "s2cnet-object-boxes"
    raw = load_object_boxes(d / "s2cnet_GAIC_boxes_raw.json")
    xyxy = load_object_boxes(d / "s2cnet_GAIC_object_boxes_xyxy.json")
    assert set(raw) == set(xyxy) and len(raw) == 1236
    assert sum(len(v) for v in raw.values()) == 12360 - 21  # 21 degenerate placeholders dropped
    for k in raw:
        np.testing.assert_array_equal(raw[k], xyxy[k])
    v2 = load_object_boxes(d / "s2cnet_GAIC-journal_boxes_raw.json")
    assert len(v2) == 3336 and sum(len(v) for v in v2.values()) == 16680 - 13
    # attached to GAICD records via objects=
    recs = load_gaicd(
        shared_data / "hcic-annotations" / "GAICD", split="test", objects=d / "s2cnet_GAIC_object_boxes_xyxy.json"
    )
    assert all(r.object_boxes is not None and r.object_boxes.shape[1] == 4 for r in recs)


@pytest.fixture(scope="module")
def synth_gaicd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("gaicd", tmp_path_factory.mktemp("gaicd"), n=6, seed=3)


def test_synthetic_raw_txt(synth_gaicd: Path) -> None:
    recs = load_gaicd(synth_gaicd, split="all")
    assert len(recs) == 6 and {r.split for r in recs} == {"train", "test"}
    for r in recs:
        assert r.image_path is not None and r.image_path.is_file()
        assert r.image_path.parent.name == r.split
        # exactly the GAIC grid of this image size, in GAIC's integer coordinates; -2 rows skipped
        np.testing.assert_array_equal(r.crops, np.trunc(gaic_grid(r.width, r.height)))
        assert ((r.scores >= 1) & (r.scores <= 5)).all()
        raw = (synth_gaicd / "annotations" / r.split / (Path(r.name).stem + ".txt")).read_text().split("\n")
        n_invalid = sum(line.endswith(" -2") for line in raw)
        assert len([x for x in raw if x]) == 90 and len(r.scores) == 90 - n_invalid
        assert r.object_boxes is not None and len(r.object_boxes) >= 1  # degenerate placeholder filtered
        assert ((r.object_boxes[:, 2] - r.object_boxes[:, 0]) > 1).all()
    import json

    humans = json.loads((synth_gaicd / "human_bboxes.json").read_text())
    assert {r.name for r in recs if r.human_box is not None} == set(humans)
    for r in recs:
        if r.human_box is not None:
            np.testing.assert_array_equal(r.human_box, humans[r.name])
    assert len(load_dataset(f"gaicd:{synth_gaicd}")) == sum(r.split == "test" for r in recs)


def test_tall_image_has_invalid_rows(tmp_path: Path) -> None:
    out = synthesize("gaicd", tmp_path, n=2, seed=0, size=(256, 512))  # 1:2 → 38 valid crops (systems.md §2.1)
    for r in load_gaicd(out, split="all"):
        assert len(r.crops) == 38


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    ann = tmp_path / "annotations" / "test"
    ann.mkdir(parents=True)
    (ann / "1.txt").write_text("10 20 300 400 3.5\n10 20 300 4.0\n")
    with pytest.raises(DataFormatError, match=r"1\.txt:2: expected 5 numbers") as e:
        load_gaicd(tmp_path)
    assert e.value.line == 2
    (ann / "1.txt").write_text("10 20 300 400 3.5\n10 20 300 400 7\n")
    with pytest.raises(DataFormatError, match=r"1\.txt:2: score 7"):
        load_gaicd(tmp_path)
    (ann / "1.txt").write_text("10 20 300 400 x\n")
    with pytest.raises(DataFormatError, match=r"1\.txt:1: not a number"):
        load_gaicd(tmp_path)
    (ann / "1.txt").write_text("300 20 10 400 2.5\n")
    with pytest.raises(DataFormatError, match=r"1\.txt:1: y2 <= y1"):
        load_gaicd(tmp_path)


def test_missing_image_is_reported(synth_gaicd: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "g"
    shutil.copytree(synth_gaicd, root)
    victim = next((root / "images" / "test").glob("*.jpg"))
    victim.unlink()
    recs = load_gaicd(root, split="test")  # annotation-only use still works
    assert any(r.image_path == victim and r.width is None for r in recs)
    with pytest.raises(DataFormatError, match="image file missing") as e:
        load_gaicd(root, split="test", require_images=True)
    assert victim.name in str(e.value)


def test_s2cnet_layout_without_split_folders(synth_gaicd: Path, tmp_path: Path) -> None:
    ann = tmp_path / "annotations"
    ann.mkdir()
    for f in (synth_gaicd / "annotations").rglob("*.txt"):
        (ann / f.name).write_text(f.read_text())
    assert len(load_gaicd(tmp_path, split="all")) == 6
    with pytest.raises(DataFormatError, match="use split='all'"):
        load_gaicd(tmp_path, split="test")
