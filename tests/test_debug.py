"""The debug overlay: full-size picture, chosen boxes in their colours, saliency tinted, labelled detections, and a
legend that names each crop's rule level, what it cuts and which heads had to be fitted."""

from __future__ import annotations

import numpy as np
from PIL import Image

from opencrop.api import Crop, Cropper
from opencrop.cues.types import Detections
from opencrop.debug import CROP_COLOURS, MAX_SIDE, MIN_SIDE, explain, overlay


def _scene(w: int = 1500, h: int = 1000) -> np.ndarray:
    a = np.full((h, w, 3), 100, np.uint8)
    a[int(h * 0.27):int(h * 0.73), int(w * 0.62):int(w * 0.84)] = (40, 40, 200)
    return a


def test_overlay_is_full_size_with_chosen_box_saliency_and_legend(tmp_path) -> None:
    a = _scene()
    path = tmp_path / "scene.png"
    Image.fromarray(a).save(path)
    cropper = Cropper(cues=False)
    an = cropper.analyze(path)
    assert an.frame.pixels.shape[1] < a.shape[1]  # the analysis image is shrunk; the overlay is not
    crops = cropper.crop(an, ratios=["1:1"], runners_up=2)
    im = np.asarray(overlay(an, crops))
    assert im.shape[1] == a.shape[1] and im.shape[0] > a.shape[0]  # full width, legend panel below
    x1, y1, _, y2 = crops[0].box
    ys = np.arange(y1 + 40, y2 - 40)
    left_edge = im[ys, min(x1 + 1, a.shape[1] - 1)]
    assert (np.abs(left_edge.astype(int) - CROP_COLOURS[0]).sum(axis=1) < 40).mean() > 0.9
    sal = an.prepared.saliency
    iy, ix = np.unravel_index(np.argmax(sal), sal.shape)
    y, x = int((iy + 0.5) * a.shape[0] / sal.shape[0]), int((ix + 0.5) * a.shape[1] / sal.shape[1])
    assert int(im[y, x, 0]) > int(a[y, x, 0]) + 30  # the most salient point is tinted red
    legend = im[a.shape[0]:]
    assert (legend == CROP_COLOURS[0]).all(axis=-1).sum() > 50  # the crop's swatch is in the legend


def test_small_images_are_enlarged_and_huge_ones_capped() -> None:
    cropper = Cropper(cues=False)
    small = cropper.analyze(_scene(300, 200))
    assert overlay(small, cropper.crop(small, ["1:1"])).size[0] == MIN_SIDE
    big = cropper.analyze(_scene(6000, 1500))
    assert overlay(big, cropper.crop(big, ["16:9"])).size[0] == MAX_SIDE


def test_explain_names_rule_level_cuts_fitted_heads_and_ignored_faces() -> None:
    a = _scene(1500, 1000)
    cropper = Cropper(cues=False)
    an = cropper.analyze(a)
    sx, _ = an.frame.scale
    # a big face in a person box (plausible), a weak face on nothing (ignored), a dog at the left edge
    an.cues.faces = Detections(np.array([[600, 200, 900, 800], [50, 50, 80, 80]], np.float32) * sx,
                               np.array([0.95, 0.56], np.float32), ["face", "face"])
    an.cues.people = Detections(np.array([[450, 100, 1050, 1000]], np.float32) * sx, np.array([0.9], np.float32),
                                ["person"])
    an.cues.objects = Detections(np.array([[0, 500, 500, 1000]], np.float32) * sx, np.array([0.8], np.float32),
                                 ["dog"])
    crops = cropper.crop(an, ratios=["16:9", "1:1"])
    info = explain(an, crops)
    assert len(info["crops"]) == 2
    wide, square = info["crops"]
    assert square.startswith("1:1")
    assert wide.startswith("16:9") and f"level {crops[0].level}:" in wide
    assert "too big for 16:9" in wide  # the grown head is taller than any 16:9 window of this image
    assert "user subjects" not in wide  # no user subject: the level text says only what applies
    assert "1 ignored as implausible" in info["cues"][0]
    # a crop that has half the dog inside says so; one that holds it whole or misses it does not mention it
    half = Crop("1:1", (250, 0, 1250, 1000), 0.0)
    whole, away = Crop("1:1", (0, 0, 1000, 1000), 0.0), Crop("1:1", (500, 0, 1500, 1000), 0.0)
    lines = explain(an, [half, whole, away])["crops"]
    assert "dog 0.80 (50% inside)" in lines[0]
    assert "dog" not in lines[1] and "dog" not in lines[2]


def test_explain_without_faces_says_the_score_decided() -> None:
    cropper = Cropper(cues=False)
    an = cropper.analyze(_scene(600, 400))
    line = explain(an, cropper.crop(an, ["1:1"]))["crops"][0]
    assert "no face or subject to protect" in line


def test_explain_with_a_user_subject_names_it() -> None:
    cropper = Cropper(cues=False)
    a = _scene(600, 400)
    res = cropper.run(a, ["9:16"], subject=[[20, 50, 120, 350]])
    info = explain(res.analysis, res.crops)
    assert "user subjects whole" in info["crops"][0]
    assert "1 subject box" in info["cues"][1]
