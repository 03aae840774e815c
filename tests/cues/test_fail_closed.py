"""Fail closed: a missing or corrupt cue model is an error unless the caller asks to degrade, and then every result
says so; ``opencrop models verify`` finds damaged files, derived ones too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from opencrop import Cropper, modelfiles
from opencrop.cli import main
from opencrop.errors import CueUnavailableError

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "examples" / "astronaut.jpg"


def test_cropper_refuses_a_missing_face_model(no_backends):
    with pytest.raises(CueUnavailableError, match="faces") as e:
        Cropper()  # before any image: a crop could cut heads
    assert "faces" in e.value.missing and "opencrop models fetch" in str(e.value)


def test_degraded_results_say_so(no_backends, monkeypatch):
    cropper = Cropper(degrade=True)
    rec = cropper.run(PHOTO, ratios=["16:9"]).to_dict()
    assert "faces" in rec["degraded"] and rec["degraded"] == sorted(cropper.degraded)
    assert any(n.startswith("degraded: faces unavailable") for n in rec["notes"])
    monkeypatch.setenv("OPENCROP_DEGRADE", "1")  # the environment switch does the same
    assert "faces" in Cropper().run(PHOTO, ratios=["1:1"]).to_dict()["degraded"]


def test_cues_off_on_purpose_is_not_degraded(no_backends):
    rec = Cropper(cues=False).run(PHOTO, ratios=["1:1"]).to_dict()
    assert "degraded" not in rec


def test_a_corrupt_face_model_is_an_error(no_backends):
    real = modelfiles.get_file("blazeface-short")
    (no_backends / real.filename).write_bytes(b"\0" * 1000)  # right name, wrong bytes
    with pytest.raises(CueUnavailableError, match="sha256"):
        Cropper()


def test_cli_fails_closed_and_degrades_on_request(no_backends, capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["crop", str(PHOTO), "-r", "1:1", "--json", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "faces" in err and "--degrade" in err and not out.exists()
    assert main(["crop", str(PHOTO), "-r", "1:1", "--json", "--degrade"]) == 0
    assert "faces" in json.loads(capsys.readouterr().out)["degraded"]
    rc = main(["batch", str(PHOTO.parent), "--out", str(out), "-r", "1:1"])
    assert rc == 1 and "faces" in capsys.readouterr().err


def _installed(name: str) -> Path:
    loc = modelfiles.locate(name)
    if loc is None:
        pytest.skip(f"{name} is not present here (run `opencrop models fetch`)")
    return loc[1]


def test_models_verify_finds_damaged_files(tmp_path, monkeypatch, capsys):
    src = _installed("blazeface-short")
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path))
    for mf in modelfiles.list_files():
        monkeypatch.delenv(mf.env_var, raising=False)
    shutil.copy(src, tmp_path / src.name)
    good = modelfiles.write_derived(modelfiles.derived_dir() / "a.onnx", b"converted bytes")
    bad = modelfiles.write_derived(modelfiles.derived_dir() / "b.onnx", b"converted bytes")
    bad.write_bytes(b"converted bytez")  # same size, one byte changed
    rc = main(["models", "verify", "--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["files"]}
    assert rc == 1
    assert rows["blazeface-short"]["status"] == "ok"
    assert rows["blazeface-full"]["status"] == "missing"  # a default file is absent in this cache
    assert rows[good.name]["status"] == "ok" and rows[bad.name]["status"] == "damaged"
    data = bytearray((tmp_path / src.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / src.name).write_bytes(bytes(data))
    main(["models", "verify", "--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["files"]}
    assert rows["blazeface-short"]["status"] == "damaged" and "sha256" in rows["blazeface-short"]["problem"]


def test_a_damaged_ssd_conversion_is_rebuilt(tmp_path, monkeypatch):
    from opencrop.cues import objects

    for name in ("ssd-mobilenet-v2-coco", "ssd-mobilenet-v2-coco-pbtxt"):
        src = _installed(name)
        monkeypatch.setenv(modelfiles.get_file(name).env_var, str(src))
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("OPENCROP_CACHE", str(tmp_path))
    people, *_ = objects.convert_for_onnxruntime()
    path = objects._converted_paths()[0]
    modelfiles.verify_derived(path)
    path.write_bytes(b"\0" * len(people))  # damaged on disk, same size
    again, *_ = objects.convert_for_onnxruntime()
    assert again == people and path.read_bytes() == people
    modelfiles.verify_derived(path)
