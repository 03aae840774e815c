"""BlazeFace input preparation (no model needed): the in-place letterbox and the shrink match the plain path."""

from __future__ import annotations

import numpy as np
import pytest
from cues_helpers import photo
from PIL import Image

from opencrop.cues.faces import _letterbox, _shrink


@pytest.mark.parametrize(("size", "wh"), [(128, (128, 85)), (192, (192, 128)), (192, (108, 192)), (192, (64, 40))])
def test_letterbox_matches_float_canvas(size: int, wh: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8)
    out = np.full((1, size, size, 3), 7.0, np.float32)  # stale values from a previous call must not survive
    ox, oy = _letterbox(small, out)
    ref = np.zeros((size, size, 3), np.float32) - 1.0  # the original construction
    ref[oy : oy + wh[1], ox : ox + wh[0]] = small.astype(np.float32) / 127.5 - 1.0
    assert (ox, oy) == ((size - wh[0]) // 2, (size - wh[1]) // 2)
    np.testing.assert_array_equal(out[0], ref)


def test_shrink_is_bilinear_and_close_when_reducing() -> None:
    pil = Image.fromarray(photo("astronaut"))  # 512²
    # < 4× shrink: exactly Pillow's bilinear
    np.testing.assert_array_equal(_shrink(pil, 192), np.asarray(pil.resize((192, 192), Image.BILINEAR)))
    # 4× shrink (2×2 box first): within a few levels of the direct bilinear
    fast = _shrink(pil, 128).astype(int)
    ref = np.asarray(pil.resize((128, 128), Image.BILINEAR)).astype(int)
    assert fast.shape == ref.shape == (128, 128, 3)
    assert np.abs(fast - ref).mean() < 1.0 and np.abs(fast - ref).max() <= 32
    tile = _shrink(pil.crop((0, 0, 320, 512)), 192)
    assert tile.shape == (192, 120, 3)


def test_tiles_run_only_over_people_without_a_face() -> None:
    """analyze() gates the small-face tiles on the SSD's people: skipped when nobody lacks a face and there is no
    group (two or more faces) among the whole-image detections."""
    from opencrop.cues.faces import _tiles, _tiles_over_faceless

    tiles = _tiles(512, 512)
    assert tiles == [(0, 0, 320, 320), (192, 0, 512, 320), (0, 192, 320, 512), (192, 192, 512, 512)]
    face = np.array([[240.0, 60.0, 300.0, 130.0]])
    assert _tiles_over_faceless(tiles, None, face, np.array([0.9]), 0.5) == tiles  # people unknown: all
    assert _tiles_over_faceless(tiles, np.zeros((0, 4)), face, np.array([0.9]), 0.5) == []  # nobody
    person = np.array([[200.0, 40.0, 340.0, 500.0]])
    assert _tiles_over_faceless(tiles, person, face, np.array([0.9]), 0.5) == []  # her face is found
    # the same face below min_score does not count: the person is faceless, the tiles run
    assert _tiles_over_faceless(tiles, person, face, np.array([0.3]), 0.5) == tiles
    small = np.array([[10.0, 10.0, 90.0, 150.0]])  # a faceless person in the top-left corner: every tile runs
    assert _tiles_over_faceless(tiles, np.concatenate([person, small]), face, np.array([0.9]), 0.5) == tiles
    two = np.concatenate([face, face + np.array([100.0, 0.0, 100.0, 0.0])])  # a group of two faces: always tiled
    wide = np.array([[150.0, 40.0, 450.0, 500.0]])
    assert _tiles_over_faceless(tiles, wide, two, np.array([0.9, 0.8]), 0.5) == tiles
    assert _tiles_over_faceless(tiles, wide, np.concatenate([face, face + 1.0]), np.array([0.9, 0.8]), 0.5) == []
