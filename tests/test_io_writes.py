"""Writes that cannot lie (issue 14, item 1): a short write or a full disk is an error naming the file, a good
output is never replaced by a bad one, and outputs follow the umask."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop import io as oio

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _pic() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))


def test_full_disk_is_an_error_and_keeps_the_good_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.jpg"
    oio.save_image(_pic(), target)
    good = target.read_bytes()
    real = os.write

    def full(fd: int, data) -> int:  # the first chunk lands, then the disk is full
        if len(data) > 100:
            return real(fd, bytes(data[:100]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(oio.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        oio.save_image(_pic().rotate(90), target)
    monkeypatch.undo()
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]  # no temp file left


def test_short_write_is_an_error_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.png"
    monkeypatch.setattr(oio.os, "write", lambda fd, data: 0)
    with pytest.raises(OSError, match=r"out\.png: short write"):
        oio.save_image(_pic(), target)
    assert not target.exists()


def test_a_file_that_does_not_decode_back_never_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "x.jpg"
    target.write_bytes(b"keep me")
    with pytest.raises(OSError, match="does not decode back"):
        oio.write_atomic(target, b"\xff\xd8 not really a jpeg", oio._check_decodes(str(target)))
    assert target.read_bytes() == b"keep me"


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        p = oio.save_image(_pic(), tmp_path / "a.webp")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o640


def test_encode_image_is_what_save_image_writes(tmp_path: Path) -> None:
    pic = _pic()
    p = oio.save_image(pic, tmp_path / "a.png")
    assert p.read_bytes() == oio.encode_image(pic, "png")
    with pytest.raises(ValueError, match="unknown output format"):
        oio.encode_image(pic, "xyz")


def test_cli_reports_a_failed_write_and_exits_1(tmp_path: Path, monkeypatch, capsys) -> None:
    from opencrop.cli import main

    out = tmp_path / "crops"
    assert main(["crop", str(PHOTO), "-r", "1:1", "--no-cues", "--out", str(out)]) == 0
    good = (out / "astronaut_1x1.jpg").read_bytes()
    monkeypatch.setattr(oio.os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "disk full")))
    assert main(["crop", str(PHOTO), "-r", "1:1", "--no-cues", "--out", str(out), "--quality", "50"]) == 1
    assert "disk full" in capsys.readouterr().err
    assert (out / "astronaut_1x1.jpg").read_bytes() == good
