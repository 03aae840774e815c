"""HCIC pseudo heat maps (docs/systems.md §3.3): hand-computed values, range, the > 10 rule, PNG output."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from opencrop.data.heatmaps import (
    dataset_mean_score,
    heatmap_path,
    pseudo_heatmap,
    pseudo_heatmap_float,
    write_heatmaps,
)
from opencrop.data.record import CropRecord


def _brute(crops, scores, width, height):
    """Reference: explicit per-crop masks (fine for tiny test images)."""
    crops = np.trunc(np.asarray(crops, dtype=float)).astype(int)
    masks = np.zeros((len(crops), height, width))
    for i, (x1, y1, x2, y2) in enumerate(crops):
        masks[i, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 1
    area = masks.sum(axis=(1, 2)) / (width * height)
    logit = np.asarray(scores, dtype=float) + 2 * area
    w = np.exp(logit) / np.exp(logit).sum()
    return (w[:, None, None] * masks).sum(0)


def test_two_crops_hand_computed():
    # 4×2 image; crop A = columns 0-1 (area 1/2), crop B = columns 1-3 (area 3/4), equal scores 1.0
    crops = np.array([[0, 0, 2, 2], [1, 0, 4, 2]])
    heat = pseudo_heatmap_float(crops, np.array([1.0, 1.0]), 4, 2, mean_score=3.0)
    wa = 1 / (1 + math.exp(0.5))  # softmax(2.0, 2.5)
    wb = 1 - wa
    np.testing.assert_allclose(heat, [[wa, 1, wb, wb], [wa, 1, wb, wb]], atol=1e-12)
    u8 = pseudo_heatmap(crops, np.array([1.0, 1.0]), 4, 2, mean_score=3.0)
    expect = round((wb - wa) / (1 - wa) * 255)  # 100
    assert u8.dtype == np.uint8
    assert u8.tolist() == [[0, 255, expect, expect]] * 2


def test_float_coordinates_are_truncated_and_clipped():
    crops = np.array([[0.9, 0.2, 2.7, 1.99], [-3, -1, 9, 9]])
    heat = pseudo_heatmap_float(crops, np.array([2.0, 0.5]), 4, 3, mean_score=0.0)
    np.testing.assert_allclose(heat, _brute(np.clip(np.trunc(crops), 0, [4, 3, 4, 3]), [2.0, 0.5], 4, 3))


def test_matches_explicit_masks_and_range():
    rng = np.random.default_rng(0)
    w, h = 23, 17
    x1, y1 = rng.integers(0, 10, 8), rng.integers(0, 8, 8)
    crops = np.stack([x1, y1, x1 + rng.integers(1, 13, 8), y1 + rng.integers(1, 9, 8)], 1)
    scores = rng.uniform(1, 5, 8)
    np.testing.assert_allclose(pseudo_heatmap_float(crops, scores, w, h, 3.0), _brute(crops, scores, w, h), atol=1e-12)
    u8 = pseudo_heatmap(crops, scores, w, h, 3.0)
    assert u8.shape == (h, w) and u8.min() == 0 and u8.max() == 255


def test_more_than_ten_crops_keeps_only_above_dataset_mean():
    # 11 crops: the one good crop (score 4 > mean 3) is the only one kept, so the map is exactly its mask
    crops = np.array([[0, 0, 2, 2]] + [[1, 1, 4, 3]] * 10)
    scores = np.array([4.0] + [2.0] * 10)
    heat = pseudo_heatmap(crops, scores, 5, 4, mean_score=3.0)
    expect = np.zeros((4, 5), np.uint8)
    expect[0:2, 0:2] = 255
    np.testing.assert_array_equal(heat, expect)
    # with exactly 10 crops the rule does not apply: all crops contribute
    heat10 = pseudo_heatmap(crops[:10], scores[:10], 5, 4, mean_score=3.0)
    assert heat10[2, 3] > 0


def test_flat_and_empty_filter_edge_cases():
    full = pseudo_heatmap(np.array([[0, 0, 3, 2]]), np.array([1.0]), 3, 2, mean_score=0.0)
    assert (full == 255).all()  # one crop covering everything: flat map, defined as all content
    many = np.array([[0, 0, 2, 2]] * 11)
    low = pseudo_heatmap(many, np.full(11, 1.0), 4, 2, mean_score=3.0)  # nothing above the mean: keep all
    assert low[:, :2].min() == 255 and low[:, 2:].max() == 0
    with pytest.raises(ValueError):
        pseudo_heatmap(np.zeros((0, 4)), np.zeros(0), 4, 4, 0.0)


def test_write_heatmaps_png(tmp_path):
    recs = [
        CropRecord("a.jpg", width=8, height=6, crops=np.array([[0, 0, 4, 6], [2, 0, 8, 6]]), scores=np.array([4, 2.0])),
        CropRecord("b.jpg", width=5, height=5, crops=np.array([[1, 1, 4, 4]]), scores=np.array([3.0])),
        CropRecord("c.jpg", width=5, height=5),  # no crops: skipped
    ]
    assert dataset_mean_score(recs) == pytest.approx(3.0)
    paths = write_heatmaps(recs, tmp_path / "mask")
    assert paths == [heatmap_path(tmp_path / "mask", "a.jpg"), tmp_path / "mask" / "b.png"]
    a = np.asarray(Image.open(paths[0]))
    assert a.dtype == np.uint8 and a.shape == (6, 8)
    np.testing.assert_array_equal(a, pseudo_heatmap(recs[0].crops, recs[0].scores, 8, 6, 3.0))


def _cli(argv):
    import argparse

    from opencrop.data.heatmaps_cli import register

    parser = argparse.ArgumentParser(prog="opencrop")
    sub = parser.add_subparsers(dest="command")
    groups = {}

    def group(name, help):
        if name not in groups:
            groups[name] = sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command")
        return groups[name]

    register(sub, group)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_gaicd_txt_layout(tmp_path, capsys):
    """`opencrop data heatmaps --format gaicd DIR` on a raw-layout GAICD (yxyx txt, -2 = unannotated)."""
    root = tmp_path / "GAICD"
    for split, name, lines in (("train", "1", ["0 0 6 4 4.0", "0 4 6 8 2.0", "1 1 2 2 -2"]),
                               ("test", "2", ["0 0 3 3 3.0"])):
        (root / "annotations" / split).mkdir(parents=True)
        (root / "annotations" / split / f"{name}.txt").write_text("\n".join(lines) + "\n")
        (root / "images" / split).mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(root / "images" / split / f"{name}.jpg")
    assert _cli(["data", "heatmaps", "--format", "gaicd", str(root)]) == 0
    out = root / "heat_map_gt" / "GAICD" / "mask"
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "2.png"]
    one = np.asarray(Image.open(out / "1.png"))
    # crops x 0-4 (score 4) and x 4-8 (score 2), equal areas: left half 255, right half 0
    assert one.shape == (6, 8) and (one[:, :4] == 255).all() and (one[:, 4:] == 0).all()
    assert "wrote 2 heat maps" in capsys.readouterr().out
    # --out and a missing image: the record is skipped, named on stderr, exit status 1
    (root / "images" / "test" / "2.jpg").unlink()
    assert _cli(["data", "heatmaps", "--format", "gaicd", str(root), "--out", str(tmp_path / "hm")]) == 1
    assert [p.name for p in (tmp_path / "hm").iterdir()] == ["1.png"]
    assert "2.jpg" in capsys.readouterr().err


def test_cli_cpc_synthetic(tmp_path):
    """`--format cpc` on a synthetic raw CPC folder: one map per image, at the image's resolution."""
    from opencrop.data.cpc import load_cpc
    from opencrop.data.synth import write_cpc

    root = tmp_path / "CPC"
    write_cpc(root, n=3, seed=0, size=(64, 48))
    assert _cli(["data", "heatmaps", "--format", "cpc", str(root)]) == 0
    out = root / "heat_map_gt" / "CPC" / "mask"
    recs = load_cpc(root)
    mean = dataset_mean_score(recs)
    for r in recs:  # 24 views > 10: only views above the dataset mean count
        png = np.asarray(Image.open(heatmap_path(out, r.name)))
        assert png.shape == (48, 64) and png.max() == 255
        np.testing.assert_array_equal(png, pseudo_heatmap(r.crops, r.scores, 64, 48, mean))
