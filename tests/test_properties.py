"""Property-based tests (hypothesis): every image size × ratio × output size either gives valid crops or a typed
error — never an untyped exception (issue 14, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencrop.api import Cropper
from opencrop.errors import OpenCropError, UpscaleError

_CROPPER: dict[str, Cropper] = {}


def _cropper(allow_upscale: bool = False) -> Cropper:
    key = f"c{allow_upscale}"
    if key not in _CROPPER:
        _CROPPER[key] = Cropper(cues=False, allow_upscale=allow_upscale)
    return _CROPPER[key]


# extreme aspects too: one side up to 4000 px while the other may be 1 px
sizes = st.one_of(
    st.tuples(st.integers(1, 600), st.integers(1, 600)),
    st.tuples(st.integers(1, 8), st.integers(200, 4000)),
    st.tuples(st.integers(200, 4000), st.integers(1, 8)),
)
ratios = st.one_of(
    st.tuples(st.integers(1, 2000), st.integers(1, 2000)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.sampled_from(["16:9", "1:1", "9:16", "1.91:1", "4:5", "0:1", "-1:2", "nan", "inf", "a:b", "1e308:1e-308"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=sizes, ratio=ratios, seed=st.integers(0, 3))
def test_any_size_and_ratio_gives_a_valid_crop_or_a_typed_error(size: tuple[int, int], ratio: str, seed: int) -> None:
    h, w = size
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    try:
        (c,) = _cropper().crop(img, ratios=[ratio])
    except (ValueError, OpenCropError):
        return  # a clear, typed error (bad ratio)
    x1, y1, x2, y2 = c.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert np.isfinite(c.score)
    got, want = (x2 - x1) / (y2 - y1), eval_ratio(ratio)
    assert abs(got / want - 1) <= 0.01 or c.warning  # exact, or the record says why not


def eval_ratio(r: str) -> float:
    from opencrop.candidates import parse_ratio

    return parse_ratio(r)


_SIDES = st.tuples(st.integers(1, 300), st.integers(1, 300))


@settings(max_examples=60, deadline=None)
@given(out=_SIDES, size=_SIDES)
def test_any_output_size_is_exact(out: tuple[int, int], size: tuple[int, int]) -> None:
    h, w = size
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    (c,) = _cropper(allow_upscale=True).crop(img, ratios=[], size=out)
    assert c.image is not None and c.image.size == out
    box_w, box_h = c.box[2] - c.box[0], c.box[3] - c.box[1]
    if out[0] > box_w or out[1] > box_h:  # without --allow-upscale that is an error naming the image
        with pytest.raises(UpscaleError, match="upscaled"):
            _cropper().crop(img, ratios=[], size=out)


def test_output_pixel_limit_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="exceeds the output limit"):
        _cropper().crop(np.zeros((20, 20, 3), np.uint8), ratios=[], size="30000x30000")
    big = Cropper(cues=False, max_output_pixels=10**9, allow_upscale=True)
    assert big.limits.max_output_pixels == 10**9


def test_input_pixel_limit_is_configurable(monkeypatch) -> None:
    from opencrop.errors import ImageTooLargeError

    img = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ImageTooLargeError, match="exceeds the limit of 9,999"):
        Cropper(cues=False, max_pixels=9_999).crop(img)
    monkeypatch.setenv("OPENCROP_MAX_PIXELS", "5000")
    with pytest.raises(ImageTooLargeError):
        Cropper(cues=False).crop(img)
    with pytest.raises(ValueError, match="Pillow"):
        Cropper(cues=False, max_pixels=10**12)


def test_importing_opencrop_leaves_pillow_alone() -> None:
    import subprocess
    import sys

    code = "import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import opencrop, opencrop.io; " \
           "assert I.MAX_IMAGE_PIXELS == before, I.MAX_IMAGE_PIXELS"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("bad", ["0x10", "10x0", "-5x5", "nanx3", "axb", "10"])
def test_bad_sizes_are_value_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="size"):
        _cropper().crop(np.zeros((20, 20, 3), np.uint8), ratios=[], size=bad)
