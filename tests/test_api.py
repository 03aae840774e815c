"""Public API: one analysis for several ratios, exact sizes, boxes in original pixels, user hints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import opencrop
from opencrop.api import Cropper, parse_size
from opencrop.candidates import parse_ratio


def _scene(w: int = 900, h: int = 600, subject=(620, 150, 760, 420)) -> np.ndarray:
    """Flat textured background with one strong subject (a saturated red block on a dark base)."""
    rng = np.random.default_rng(0)
    a = (rng.normal(110, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
    x1, y1, x2, y2 = subject
    a[y1:y2, x1:x2] = (220, 30, 30)
    return a


@pytest.fixture(scope="module")
def cropper() -> Cropper:
    return Cropper()


def test_crop_several_ratios_boxes_are_exact_and_inside(cropper: Cropper) -> None:
    img = _scene()
    ratios = ["16:9", "1:1", "4:5", "9:16", "1.91:1"]
    crops = cropper.crop(img, ratios=ratios)
    assert [c.ratio for c in crops] == ratios
    for c in crops:
        x1, y1, x2, y2 = c.box
        assert 0 <= x1 < x2 <= 900 and 0 <= y1 < y2 <= 600
        assert abs((x2 - x1) / (y2 - y1) - parse_ratio(c.ratio)) < 2 / (y2 - y1)
        assert np.isfinite(c.score)


def test_subject_is_kept_whole(cropper: Cropper) -> None:
    """The salient subject sits right of centre: every ratio keeps it entirely."""
    for c in cropper.crop(_scene(), ratios=["1:1", "9:16", "4:5"]):
        x1, y1, x2, y2 = c.box
        assert x1 <= 620 and x2 >= 760 and y1 <= 150 and y2 >= 420, (c.ratio, c.box)


def test_size_gives_exact_output(cropper: Cropper) -> None:
    crops = cropper.crop(_scene(), ratios=["16:9"], size="320x180")
    assert crops[0].image is not None and crops[0].image.size == (320, 180)
    (only,) = cropper.crop(_scene(), ratios=[], size=(200, 250))
    assert only.image.size == (200, 250)
    with pytest.raises(ValueError, match="aspect"):
        cropper.crop(_scene(), ratios=["1:1"], size="320x180")


def test_one_analysis_serves_all_ratios(monkeypatch: pytest.MonkeyPatch, cropper: Cropper) -> None:
    calls = []
    real = cropper.model.prepare
    monkeypatch.setattr(cropper.model, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    cropper.crop(_scene(), ratios=["16:9", "1:1", "9:16"])
    assert len(calls) == 1


def test_boxes_are_in_original_pixels_after_shrink(tmp_path, cropper: Cropper) -> None:
    big = Image.fromarray(_scene()).resize((3600, 2400))
    p = tmp_path / "big.jpg"
    big.save(p, quality=90)
    (c,) = cropper.crop(p, ratios=["1:1"])
    x1, _, x2, y2 = c.box
    assert x2 <= 3600 and y2 <= 2400 and (x2 - x1) > 1000
    assert x1 <= 620 * 4 and x2 >= 760 * 4  # subject kept, in original coordinates


def test_score_arbitrary_boxes(cropper: Cropper) -> None:
    img = _scene()
    s = cropper.score(img, [[560, 100, 820, 460], [0, 0, 260, 360]])
    assert s.shape == (2,) and s[0] > s[1]  # the box around the subject beats an empty corner


def test_focus_and_subject_hints_outrank_content(cropper: Cropper) -> None:
    img = _scene()
    (c,) = cropper.crop(img, ratios=["1:1"], subject=[[40, 200, 200, 380]])
    assert c.box[0] <= 40 and c.box[2] >= 200
    (f,) = cropper.crop(img, ratios=["9:16"], focus=(100, 300))
    cx = (f.box[0] + f.box[2]) / 2
    assert abs(cx - 100) < abs(cx - 690)


def test_module_level_functions() -> None:
    crops = opencrop.crop(_scene(), ratios=["1:1"])
    assert len(crops) == 1 and crops[0].to_dict()["ratio"] == "1:1"
    assert opencrop.score(_scene(), [[0, 0, 100, 100]]).shape == (1,)


def test_parse_size() -> None:
    assert parse_size("1280x720") == (1280, 720)
    for bad in ["1280", "0x10", "axb", "-5x5"]:
        with pytest.raises(ValueError):
            parse_size(bad)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(KeyError, match="composition"):
        Cropper("compositon")
