"""LVRN's 1,745 predefined anchors, regenerated (opencrop._lvrn) and checked against the released pickle."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from opencrop import _lvrn
from opencrop.boxes import box_iou
from opencrop.candidates import lvrn_anchors

PKL_SHA256 = "dbb268450422fe9972815deb3826e3175eccd4d968af01b1d573b2eba217a40b"


def _areas(a: np.ndarray) -> np.ndarray:
    return (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])


def test_shape_dtype_count():
    a = lvrn_anchors()
    assert a.shape == (1745, 4)
    assert a.dtype == np.float64


def test_inside_unit_square_and_valid():
    a = lvrn_anchors()
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.all(a[:, 2] > a[:, 0]) and np.all(a[:, 3] > a[:, 1])
    np.testing.assert_array_equal(a.min(axis=0)[:2], [0.0, 0.0])
    np.testing.assert_array_equal(a.max(axis=0)[2:], [1.0, 1.0])


def test_area_range():
    ar = _areas(lvrn_anchors())
    assert ar.min() == pytest.approx(0.17765625)  # "0.178"
    assert ar.max() == pytest.approx(0.81)  # 0.9 × 0.9
    assert ar.min() > _lvrn.MIN_FULL_IOU


def test_nms_property():
    """No two anchors overlap at IoU ≥ 0.85 (the union NMS threshold); no duplicates."""
    a = lvrn_anchors()
    iou = box_iou(a, a)
    np.fill_diagonal(iou, 0.0)
    assert iou.max() < _lvrn.UNION_NMS
    assert len(np.unique(a, axis=0)) == len(a)


def test_cached_and_copied():
    a = lvrn_anchors()
    a[0] = -1.0
    b = lvrn_anchors()
    assert b[0, 0] == 0.0
    assert b is not lvrn_anchors()


def test_window_rule_examples():
    # 800×800, scale 0.9, 4:3: w = 720, h = 540; free 80 × 260 → 5 × 13 positions, x step 16, y step 20.
    w = _lvrn._slide(800, 800, 720, 540)
    assert w.shape == (65, 4)
    np.testing.assert_allclose(w[1] * 800, [0, 20, 720, 560])
    np.testing.assert_allclose(w[13] * 800, [16, 0, 736, 540])  # x-position outermost
    # 800×800, 16:9: h = ⌊720 / (16/9)⌋ = 405, free y 395 → 19 positions, y = ⌊i · 395 / 19⌋.
    w = _lvrn._slide(800, 800, 720, 405)
    np.testing.assert_allclose(w[:4, 1] * 800, [0, 20, 41, 62])
    # Free space 0 still gives 5 (identical) positions, as the script does; NMS removes the repeats.
    w = _lvrn._slide(800, 800, 800, 600)
    assert len(np.unique(w[:, 0])) == 1 and len(w) == 50


def test_greedy_nms_order_semantics():
    # Box 1 overlaps box 0 (suppressed); box 2 overlaps only box 1, which was suppressed, so box 2 survives.
    b = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [0.2, 0.0, 1.2, 1.0]])
    kept = _lvrn._greedy_nms(b, 0.8)
    np.testing.assert_array_equal(kept, b[[0, 2]])


def test_overlap_pairs_match_dense():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.4, (400, 2))
    wh = rng.choice([0.5, 0.52, 0.55, 0.6], (400, 2))
    b = np.concatenate([xy, xy + wh], axis=1)
    b = np.concatenate([b, b[:20]])  # duplicates too
    for t in (0.85, 0.95):
        iou = box_iou(b, b)
        di, dj = np.nonzero(np.triu(iou >= t, k=1))
        i, j = _lvrn._overlap_pairs(b, t)
        np.testing.assert_array_equal(i, di)
        np.testing.assert_array_equal(j, dj)


@pytest.mark.slow
def test_published_script_thresholds_do_not_give_the_released_set():
    """The thresholds written in generatePdefinedAnchors.py (0.90 / 0.90 / 0.15) give 6,492 anchors, not 1,745."""
    assert len(_lvrn._generate(0.90, 0.90, 0.15)) == 6492


def _load_reference(shared_data) -> np.ndarray:
    path = shared_data / "anchors" / "lvrn_pdefined_anchors.pkl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == PKL_SHA256, "refusing to unpickle: checksum mismatch"
    return np.asarray(pickle.loads(raw), dtype=np.float64)


def test_matches_released_pickle(shared_data):
    ref = _load_reference(shared_data)
    a = lvrn_anchors()
    assert ref.shape == a.shape == (1745, 4)
    # Same set, up to 1e-6 (each box matched in both directions).
    d = np.abs(a[:, None, :] - ref[None, :, :]).max(axis=2)
    assert np.all(d.min(axis=1) < 1e-6), f"{int((d.min(axis=1) >= 1e-6).sum())} regenerated boxes not in the pickle"
    assert np.all(d.min(axis=0) < 1e-6), f"{int((d.min(axis=0) >= 1e-6).sum())} pickle boxes not regenerated"
    # Same order, and in fact the same float64 values bit for bit.
    np.testing.assert_array_equal(a, ref)
