"""The real transformers / diffusers code paths of the pipeline, with tiny random models built in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

import hf_tiny

from opencrop.errors import ModelFileError
from opencrop.outpaint import stages
from opencrop.outpaint.backends import Blip2Captioner, CpuOutpainter, SD2Outpainter


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hf")
    return {"sd": hf_tiny.sd_inpaint_dir(d), "blip": hf_tiny.blip2_dir(d)}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    from PIL import Image

    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(((60, 40), (40, 50))):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"img{i}.jpg")
    return d


def test_blip2_captions_and_sd2_outpaints_through_the_stages(tiny, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cap = Blip2Captioner(tiny["blip"], device="cpu", max_new_tokens=4)
    assert stages.caption(photos, out, cap, progress=False) == 2
    texts = [(out / "captions" / f"blip{i}.txt").read_text() for i in range(2)]
    assert all(isinstance(t, str) and t.endswith("\n") for t in texts)
    sd = SD2Outpainter(tiny["sd"], device="cpu", steps=2)
    assert stages.paint(photos, out, sd, variants=1, canvas=64, progress=False) == 2
    from PIL import Image

    from opencrop.data.gencrop import parse_outpaint_name

    for f in sorted((out / "images").iterdir()):
        _, (x1, y1, x2, y2) = parse_outpaint_name(f.name)
        im = np.asarray(Image.open(f))
        assert im.shape == (64, 64, 3)
        outside = np.ones((64, 64), bool)
        outside[int(y1) : int(y2), int(x1) : int(x2)] = False
        assert im[outside].std() > 0  # the diffusion model painted the border
    assert stages.paint(photos, out, CpuOutpainter(), variants=1, canvas=64, progress=False) == 0  # resumable


def test_backends_want_a_local_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="local model directory"):
        SD2Outpainter(None)
    with pytest.raises(ModelFileError, match="not a directory"):
        Blip2Captioner(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="cannot load"):
        SD2Outpainter(tmp_path / "empty")
