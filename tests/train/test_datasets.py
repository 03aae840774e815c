"""Training dataset: resize per Preprocess, crop sampling, flip with the x1/x2 swap, human box, heat map, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from opencrop.candidates import gaic_grid
from opencrop.data.record import CropRecord
from opencrop.models.preprocess import Preprocess
from opencrop.train.datasets import CropDataset, _hsv_to_rgb, _rgb_to_hsv, collate, photometric_distort


def _record(tmp_path, name="a.jpg", w=150, h=100, human=True):
    rng = np.random.default_rng(0)
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 3] = 255  # bright left third: flips are visible
    arr[..., 1] = rng.integers(0, 255, (h, w))
    Image.fromarray(arr).save(tmp_path / name.replace(".jpg", ".png"))
    crops = gaic_grid(w, h)
    scores = np.linspace(1, 5, len(crops))
    scores[0] = -2  # unannotated
    return CropRecord(name=name, image_path=tmp_path / name.replace(".jpg", ".png"), width=w, height=h,
                      crops=crops, scores=scores, human_box=np.array([10, 20, 60, 90.0]) if human else None)


def test_sample_contract_without_augmentation(tmp_path):
    rec = _record(tmp_path)
    ds = CropDataset([rec], Preprocess.gaic(), crops_per_image=None)
    s = ds[0]
    assert tuple(s["image"].shape) == (3, 256, 384)  # 100 → 256, 150·2.56 = 384
    sx, sy = 384 / 150, 256 / 100
    n = len(rec.crops) - 1  # the −2 crop is dropped
    assert s["rois"].shape == (n, 4) and s["mos"].shape == (n,)
    np.testing.assert_allclose(s["rois"].numpy(), rec.crops[1:] * [sx, sy, sx, sy], rtol=1e-5)
    np.testing.assert_allclose(s["human_box"].numpy(), [10 * sx, 20 * sy, 60 * sx, 90 * sy], rtol=1e-5)
    assert "heatmap" not in s
    s2 = CropDataset([_record(tmp_path, "b.jpg", human=False)], Preprocess.gaic(), crops_per_image=None)[0]
    assert torch.equal(s2["human_box"], torch.full((4,), -1.0))


def test_flip_swaps_x1_x2_and_mirrors_everything(tmp_path):
    rec = _record(tmp_path)
    (tmp_path / "hm").mkdir()
    hm = np.zeros((100, 150), np.uint8)
    hm[:, :50] = 255
    Image.fromarray(hm).save(tmp_path / "hm" / "a.png")
    plain = CropDataset([rec], Preprocess.gaic(), crops_per_image=None, heatmap_dir=tmp_path / "hm")[0]
    flipped = CropDataset([rec], Preprocess.gaic(), crops_per_image=None, flip=1.0, heatmap_dir=tmp_path / "hm")[0]
    W = 384
    r, f = plain["rois"], flipped["rois"]
    assert torch.all(f[:, 2] > f[:, 0])  # the GAIC bug would give x1 > x2
    torch.testing.assert_close(f[:, 0], W - r[:, 2])
    torch.testing.assert_close(f[:, 2], W - r[:, 0])
    torch.testing.assert_close(f[:, [1, 3]], r[:, [1, 3]])
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    hb, hf = plain["human_box"], flipped["human_box"]
    torch.testing.assert_close(hf, torch.stack([W - hb[2], hb[1], W - hb[0], hb[3]]))
    assert plain["heatmap"].shape == (1, 64, 64)
    torch.testing.assert_close(flipped["heatmap"], plain["heatmap"].flip(-1))
    assert plain["heatmap"][0, :, :10].mean() > 0.9 and plain["heatmap"][0, :, -10:].mean() < 0.1


def test_sampling_is_seeded_by_epoch_and_index(tmp_path):
    rec = _record(tmp_path)
    ds = CropDataset([rec], Preprocess.gaic(), crops_per_image=16, flip=0.5, photometric="ssd", seed=3)
    a, b = ds[0], ds[0]
    assert a["rois"].shape == (16, 4)
    assert torch.equal(a["rois"], b["rois"]) and torch.equal(a["image"], b["image"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["rois"], a["rois"])


def test_photometric_distortions_stay_in_range_and_hsv_roundtrips():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 255, (3, 16, 16)).astype(np.float32))
    torch.testing.assert_close(_hsv_to_rgb(_rgb_to_hsv(x / 255)), x / 255, atol=1e-5, rtol=1e-5)
    for style in ("ssd", "colorjitter"):
        for seed in range(5):
            y = photometric_distort(x, np.random.default_rng(seed), style)
            assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 255
    assert photometric_distort(x, rng, "none") is x
    with pytest.raises(ValueError):
        photometric_distort(x, rng, "jpeg")


def test_collate_groups_rois_and_rejects_mixed_sizes(tmp_path):
    ds = CropDataset([_record(tmp_path, "a.jpg"), _record(tmp_path, "b.jpg")], Preprocess.gaic(), crops_per_image=5)
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 256, 384)
    assert batch["rois"].shape == (10, 5) and batch["counts"].tolist() == [5, 5]
    assert batch["rois"][:5, 0].eq(0).all() and batch["rois"][5:, 0].eq(1).all()
    assert batch["human_box"].shape == (2, 4) and batch["name"] == ["a.jpg", "b.jpg"]
    other = CropDataset([_record(tmp_path, "c.jpg", w=100, h=150)], Preprocess.gaic(), crops_per_image=5)[0]
    with pytest.raises(ValueError, match="accumulate"):
        collate([ds[0], other])
