"""``opencrop data check``: counts per split, missing images and malformed files, exit 0/1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opencrop.cli import main
from opencrop.data.check import check_dataset
from opencrop.data.synth import synthesize


@pytest.fixture(scope="module")
def gaicd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("gaicd", tmp_path_factory.mktemp("chk"), n=5, seed=9, size=(200, 150))


def test_check_ok(gaicd: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", str(gaicd), "--format", "gaicd"]) == 0
    out = capsys.readouterr().out
    assert "images annotated: 5 (test: 1, train: 4)" in out and "OK" in out


def test_check_reports_missing_and_malformed(gaicd: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "broken"
    shutil.copytree(gaicd, root)
    victim = next((root / "images" / "train").glob("*.jpg"))
    victim.unlink()
    rep = check_dataset("gaicd", root)
    assert rep.missing_images == [str(victim)] and not rep.ok
    assert main(["data", "check", str(root), "--format", "gaicd"]) == 1
    assert "missing image files: 1" in capsys.readouterr().out
    anns = sorted((root / "annotations").rglob("*.txt"))
    anns[0].write_text("1 2 3\n")
    anns[1].write_text(anns[1].read_text() + "5 5 100 100 nan?\n")
    rep = check_dataset("gaicd", root)
    assert len(rep.problems) == 2  # every malformed file is reported
    assert f"{anns[0]}:1: expected 5 numbers" in rep.problems[0]
    assert main(["data", "check", str(root), "--format", "gaicd"]) == 1


def test_check_other_formats(tmp_path: Path, shared_data: Path) -> None:
    flms = synthesize("flms", tmp_path / "flms", n=2, seed=1, size=(200, 150))
    assert check_dataset("flms", flms).ok
    rep = check_dataset("fcdb", shared_data / "hcic-annotations" / "FCDB")  # annotations only, no images
    assert not rep.ok and rep.counts == {"all": 1580}
    assert any("no image folder" in p for p in rep.problems)
    assert not check_dataset("cpc", tmp_path / "nothing").ok
