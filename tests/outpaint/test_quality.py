"""The bad-outpaint classifier: published-file loading, the filter stage, training with the shared trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opencrop.errors import ModelFileError
from opencrop.outpaint import stages
from opencrop.outpaint.backends import CpuOutpainter, QualityFilter
from opencrop.outpaint.quality import QualityClassifier

CFG = Path(__file__).resolve().parents[2] / "configs" / "gencrop_quality.yaml"


def test_loads_a_timm_style_state_dict_and_filters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = QualityClassifier()
    # the published file is a bare timm resnet50 state dict (num_classes=2), maybe saved from DataParallel
    bare = {"module." + k.removeprefix("net."): v for k, v in src.state_dict().items()}
    torch.save(bare, tmp_path / "model.pt")
    f = QualityFilter(tmp_path / "model.pt", device="cpu")
    imgs = [np.random.default_rng(i).integers(0, 255, (64, 80, 3), dtype=np.uint8) for i in range(3)]
    p = f(imgs)
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert np.allclose(p, src.p_bad(imgs), atol=1e-5)
    torch.save({"fc.weight": torch.zeros(2, 10)}, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="missing key"):
        QualityFilter(tmp_path / "wrong.pt")
    # the stage: scores every outpaint once, bad.json from the threshold
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(imgs[0]).save(photos / "imgp1.jpg")
    out = tmp_path / "out"
    stages.paint(photos, out, CpuOutpainter(), variants=2, canvas=128, progress=False)
    assert stages.filter_bad(out, f, progress=False) == 2
    scores = json.loads((out / "quality" / "part0of1.json").read_text())
    assert json.loads((out / "bad.json").read_text()) == sorted(k for k, v in scores.items() if v > 0.5)
    assert stages.filter_bad(out, lambda ims: np.ones(len(ims)), progress=False) == 0  # already scored


def test_trains_with_the_shared_trainer(tmp_path: Path) -> None:
    from opencrop.train.recipe import load_recipe
    from opencrop.train.trainer import train

    rng = np.random.default_rng(0)
    for sub in ("good", "bad"):
        (tmp_path / "q" / sub).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "q" / sub / f"{i}.jpg")
    rec = load_recipe(CFG, ["model.kwargs={size: 64, pretrained_backbone: false}", "train.epochs=1",
                            "train.batch_size=4", "train.num_workers=0", "schedule.name=constant",
                            "data.val_split=none"])
    res = train(rec, tmp_path / "run", data_root=tmp_path / "q", device="cpu", progress=False)
    assert res.epochs_run == 1 and (tmp_path / "run" / "best.pt").is_file()
    f = QualityFilter(tmp_path / "run" / "best.pt", device="cpu")
    assert f([rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)]).shape == (1,)
