"""GenCrop on the synthetic outpainted set: samples, the shared trainer (train, resume, test metrics), crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from opencrop.data.gencrop import load_outpaint, select_subject
from opencrop.data.synth import synthesize
from opencrop.models.gencrop import Letterbox
from opencrop.train.gencrop_data import GenCropSamples, collate, sample_window

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "gencrop_outpaint.yaml"
SMALL = ["model.kwargs={backbone: mobilenet_v2, pretrained_backbone: false, ff: 32}", "train.batch_size=4",
         "train.num_workers=0", "train.amp=false", "schedule.name=constant"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return synthesize("gencrop", tmp_path_factory.mktemp("gc") / "gc", n=10, seed=3) / "outpaint"


def test_window_holds_the_crop_and_stays_inside() -> None:
    rng = np.random.default_rng(0)
    for crop in ([100, 50, 300, 450], [10, 200, 400, 400], [0, 0, 512, 300]):
        for _ in range(50):
            x, y, w, h = sample_window(np.array(crop, float), 512, 512, rng)
            assert x <= crop[0] and y <= crop[1] and x + w >= crop[2] and y + h >= crop[3]
            assert x >= 0 and y >= 0 and x + w <= 512 and y + h <= 512


def test_samples_map_crop_subject_and_valid(data: Path) -> None:
    recs = load_outpaint(data, "train")
    assert recs and all(r.subject_box is not None and r.extra["subject_polygon"] is not None for r in recs)
    ds = GenCropSamples(recs, Letterbox(), use_subject=True, train=False)
    s = ds[0]
    assert s["image"].shape == (4, 256, 256)
    v, c, sb, mb = s["valid"], s["crop"], s["subject_box"], s["subject_mask_box"]
    assert (v[2] - v[0] == 256) or (v[3] - v[1] == 256)
    assert (c[:2] >= v[:2] - 1).all() and (c[2:] <= v[2:] + 1).all()
    assert (sb[:2] >= c[:2] - 1).all() and (sb[2:] <= c[2:] + 1).all()  # the subject is inside the photo
    assert torch.allclose(mb, sb, atol=3)  # polygon box ≈ detection box
    again = ds[0]
    assert torch.equal(again["image"], s["image"])  # fixed windows for validation
    tr = GenCropSamples(recs, Letterbox(), train=True, flip=0.5, seed=1)
    tr.set_epoch(0)
    a = tr[0]["crop"]
    tr.set_epoch(1)
    assert not torch.equal(a, tr[0]["crop"])
    b = collate([ds[0], ds[1]])
    assert b["image"].shape == (2, 4, 256, 256) and len(b["name"]) == 2


def test_heuristic_filter_rules() -> None:
    crop = np.array([100.0, 100, 300, 300])
    subj = np.array([150.0, 120, 220, 290])
    assert select_subject(np.zeros((0, 4)), subj, crop) == (None, "no detection")
    assert select_subject(np.array([[0, 0, 10, 10.0]]), subj, crop)[1] == "no detection matches the subject"
    ok = np.array([[148.0, 118, 222, 292]])
    assert select_subject(ok, subj, crop) == (0, None)
    hallucinated = np.concatenate([ok, [[320.0, 320, 400, 420]]])
    assert select_subject(hallucinated, subj, crop)[1] == "hallucinated subject outside the crop"
    assert select_subject(hallucinated, subj, crop, heuristic=False) == (0, None)
    big = np.concatenate([ok, [[100.0, 100, 300, 300]]])
    assert select_subject(big, subj, crop)[1] == "a detection is more than twice the subject"


def test_trainer_trains_resumes_and_tests(data: Path, tmp_path: Path) -> None:
    from opencrop.train.recipe import load_recipe
    from opencrop.train.trainer import train

    res = train(load_recipe(RECIPE, [*SMALL, "train.epochs=2"]), tmp_path / "run", data_root=data, device="cpu",
                progress=False)
    assert res.epochs_run == 2 and res.select_metric == "iou" and 0.0 <= res.best_value <= 1.0
    assert set(res.test_metrics) >= {"iou", "bde", "loss"}
    res2 = train(load_recipe(RECIPE, [*SMALL, "train.epochs=3"]), tmp_path / "run", data_root=data, device="cpu",
                 resume=True, progress=False)
    assert res2.epochs_run == 3 and [h["epoch"] for h in res2.history] == [1, 2, 3]
    # the resumed epoch 3 equals an uninterrupted 3-epoch run
    full = train(load_recipe(RECIPE, [*SMALL, "train.epochs=3"]), tmp_path / "full", data_root=data, device="cpu",
                 progress=False)
    assert full.history[-1]["train_loss"] == pytest.approx(res2.history[-1]["train_loss"], rel=1e-5)

    from opencrop.api import Cropper

    cropper = Cropper("gencrop", weights=str(res.last_path), cues=False)
    img = next((data / "photos").iterdir())
    (c,) = cropper.crop(img, ratios=["4:5"], subject=[[40, 40, 120, 200]])
    x1, y1, x2, y2 = c.box
    assert abs((x2 - x1) / (y2 - y1) - 0.8) < 0.02
    assert x1 <= 40 and y1 <= 40 and x2 >= 120 and y2 >= 200  # the subject is kept whole
