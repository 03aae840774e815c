"""The outpainting pipeline on a few photos, offline: CPU outpainter, opencrop's cues, resumability, parts, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop.data.gencrop import load_outpaint, parse_outpaint_name
from opencrop.outpaint import stages
from opencrop.outpaint.backends import CpuOutpainter, CueSegmenter, MissingExtraError, NoCaptioner, require
from opencrop.outpaint.classical import extend_fill, paste_geometry


def _cues_or_skip() -> None:
    from opencrop.cues.analyze import available

    av = available()
    for cue in ("people", "person_mask"):
        if av[cue] is not None:
            pytest.skip(f"{cue} backend unavailable: {av[cue]} (run `opencrop models fetch`)")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    skimage = pytest.importorskip("skimage")
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(d / "imgastronaut.jpg")  # one person
    Image.fromarray(skimage.data.coffee()).save(d / "imgcoffee.jpg")  # no person
    Image.fromarray(skimage.data.astronaut()[40:460, 60:400]).save(d / "imgastro-crop.jpg")
    return d


def test_paste_geometry_and_cpu_fill() -> None:
    rng = np.random.default_rng(0)
    for w, h in ((640, 480), (300, 1200), (1600, 200)):
        x, y, pw, ph = paste_geometry(w, h, rng)
        assert 0 <= x and x + pw <= 512 and 0 <= y and y + ph <= 512
        assert abs(pw / ph - w / h) < 0.05 * w / h
        assert pw * ph <= 0.5 * 512 * 512 + 1 or max(pw, ph) <= 0.9 * 512
    photo = rng.integers(0, 255, (100, 150, 3), dtype=np.uint8)
    out = extend_fill(photo, (20, 30, 150, 100), 256, rng)
    assert out.shape == (256, 256, 3) and np.array_equal(out[30:130, 20:170], photo)
    assert out[200:, 200:].std() > 0  # filled, not left black
    with pytest.raises(ValueError, match="paste rectangle"):
        extend_fill(photo, (0, 0, 10, 10))


def test_pipeline_end_to_end_resumable_and_loadable(photos: Path, tmp_path: Path) -> None:
    _cues_or_skip()
    out = tmp_path / "out"
    res = stages.run_all(photos, out, NoCaptioner(), CpuOutpainter(), None, CueSegmenter(), variants=2,
                         progress=False)
    assert res["written"] == {"caption": 3, "paint": 6, "filter": 0, "segment": 9}
    names = sorted(p.name for p in (out / "images").iterdir())
    assert len(names) == 6 and all(parse_outpaint_name(n)[0] in ("astronaut", "coffee", "astro-crop") for n in names)
    for n in names:  # the GT crop is the pasted photo, exactly inside the 512² canvas
        _, box = parse_outpaint_name(n)
        assert Image.open(out / "images" / n).size == (512, 512) and box[2] <= 512 and box[3] <= 512
    subjects = json.loads((out / "subjects.json").read_text())
    assert "astronaut" in subjects and "coffee" not in subjects
    assert json.loads((out / "bad.json").read_text()) == []
    splits = {s: json.loads((out / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    assert sorted(e["id"] for v in splits.values() for e in v) == sorted(subjects)
    recs = [r for s in ("train", "val", "test") for r in load_outpaint(out, s)]
    assert recs and all(r.subject_box is not None and r.extra["source_id"] != "coffee" for r in recs)
    everything = load_outpaint(out, "all")  # no split: subject-less photos stay, without a subject
    assert {r.extra["source_id"] for r in everything if r.subject_box is None} == {"coffee"}
    # a second run finds everything done
    again = stages.run_all(photos, out, NoCaptioner(), CpuOutpainter(), None, CueSegmenter(), variants=2,
                           progress=False)
    assert again["written"] == {"caption": 0, "paint": 0, "filter": 0, "segment": 0}
    # bad.json entries are dropped by the loader
    (out / "bad.json").write_text(json.dumps([recs[0].name]))
    assert recs[0].name not in {r.name for r in load_outpaint(out, "all")}
    assert recs[0].name in {r.name for r in load_outpaint(out, "all", bad_filter=False)}


def test_parts_split_the_work(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    a = stages.paint(photos, out, CpuOutpainter(), part=(0, 2), variants=1, progress=False)
    b = stages.paint(photos, out, CpuOutpainter(), part=(1, 2), variants=1, progress=False)
    assert a + b == 3 and len(list((out / "images").iterdir())) == 3
    assert stages.paint(photos, out, CpuOutpainter(), variants=2, progress=False) == 3  # only the missing ones
    with pytest.raises(ValueError, match="0 <= i < n"):
        stages.paint(photos, out, CpuOutpainter(), part=(2, 2), progress=False)


def test_all_stages_in_parts_cover_everything(photos: Path, tmp_path: Path) -> None:
    """Each worker segments the outpaints of its own photos: a part's slice does not depend on which other
    workers' outpaints already exist (it once did, and a full run afterwards found items no part had done)."""
    _cues_or_skip()
    out = tmp_path / "out"
    for i in (1, 0):
        stages.run_all(photos, out, NoCaptioner(), CpuOutpainter(), None, CueSegmenter(), part=(i, 2), variants=2,
                       progress=False)
    again = stages.run_all(photos, out, NoCaptioner(), CpuOutpainter(), None, CueSegmenter(), variants=2,
                           progress=False)
    assert again["written"] == {"caption": 0, "paint": 0, "filter": 0, "segment": 0}
    assert len(json.loads((out / "subjects.json").read_text())) == 2


def test_cli_runs_the_stages(photos: Path, tmp_path: Path, capsys) -> None:
    _cues_or_skip()
    from opencrop.cli import main

    out = tmp_path / "o"
    assert main(["outpaint", "paint", str(photos), str(out), "--variants", "1", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"painted": 3}
    assert main(["outpaint", "segment", str(photos), str(out), "--no-progress"]) == 0
    assert main(["outpaint", "select", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(v["photos"] for v in rep.values()) == 2
    assert main(["outpaint", "caption", str(photos), str(out), "--captioner", "blip2"]) == 1
    assert "local model directory" in capsys.readouterr().err


def test_missing_extra_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"opencrop\[outpaint\]"):
        require("no_such_package_xyz", "testing")
