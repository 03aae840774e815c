import numpy as np
import pytest
import torch

from opencrop import boxes as B


def test_converters_round_trip():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (20, 2))
    wh = rng.uniform(1, 50, (20, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1)
    np.testing.assert_allclose(B.xywh_to_xyxy(B.xyxy_to_xywh(xyxy)), xyxy)
    np.testing.assert_allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(xyxy)), xyxy)
    np.testing.assert_allclose(B.yxyx_to_xyxy(B.xyxy_to_yxyx(xyxy)), xyxy)
    np.testing.assert_allclose(B.denormalize_xyxy(B.normalize_xyxy(xyxy, 640, 480), 640, 480), xyxy)


def test_yxyx_order():
    np.testing.assert_array_equal(B.yxyx_to_xyxy(np.array([10, 20, 30, 40])), [20, 10, 40, 30])
    np.testing.assert_array_equal(B.xywh_to_xyxy(np.array([10, 20, 30, 40])), [10, 20, 40, 60])


def test_iou_hand_computed():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30], [3, 3, 3, 3]])
    np.testing.assert_allclose(B.box_iou(a, b), [[25 / 175, 1.0, 0.0, 0.0]])


def test_iou_torch_matches_numpy():
    rng = np.random.default_rng(1)
    a = np.sort(rng.uniform(0, 50, (7, 2, 2)), axis=1).transpose(0, 2, 1).reshape(7, 4)[:, [0, 2, 1, 3]]
    b = a[::-1].copy() + 3
    np.testing.assert_allclose(B.box_iou(torch.tensor(a), torch.tensor(b)).numpy(), B.box_iou(a, b), rtol=1e-6)


def test_displacement_formula():
    d = B.boundary_displacement(np.array([[0, 0, 100, 50]]), np.array([[10, 5, 90, 50]]), 200, 100)
    assert d.shape == (1, 1)
    assert d[0, 0] == pytest.approx((10 + 10) / 200 + (5 + 0) / 100)


def test_truncating_denormalize():
    out = B.denormalize_xyxy(np.array([0.333, 0.5, 0.999, 1.0]), 100, 10, truncate=True)
    np.testing.assert_array_equal(out, [33, 5, 99, 10])


def test_nms_numpy_equals_torch_on_random_boxes() -> None:
    """One NMS for both array kinds: the NumPy path (used by the cues, torch-free) gives the torch path's indices."""
    nms = B.nms
    rng = np.random.default_rng(3)
    for t in (0.3, 0.5, 0.7):
        xy = rng.random((150, 2)) * 50
        b = np.concatenate([xy, xy + rng.random((150, 2)) * 30 + 1], 1)
        s = rng.integers(0, 20, 150).astype(np.float64)  # ties: both keep input order among equals
        got = nms(b, s, t)
        assert got.dtype == np.int64 and len(got) > 0
        np.testing.assert_array_equal(got, nms(torch.from_numpy(b), torch.from_numpy(s), t).numpy())
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_kmeans_boxes_finds_hand_made_clusters_with_the_iou_distance():
    from opencrop.boxes import kmeans_boxes

    # three tight groups of normalised boxes: mean of each group is the expected centre
    groups = [
        np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.52, 0.5], [0.02, 0.0, 0.5, 0.48]]),
        np.array([[0.5, 0.5, 1.0, 1.0], [0.5, 0.48, 1.0, 1.0]]),
        np.array([[0.1, 0.1, 0.9, 0.9], [0.1, 0.12, 0.9, 0.9], [0.1, 0.1, 0.92, 0.9], [0.08, 0.1, 0.9, 0.9]]),
    ]
    boxes = np.concatenate(groups)
    for seed in range(5):
        c = kmeans_boxes(boxes, 3, seed=seed)
        assert c.shape == (3, 4)
        for g in groups:  # every group's mean is one centre
            assert np.abs(c - g.mean(0)).max(1).min() < 1e-12, (seed, c)
    np.testing.assert_array_equal(kmeans_boxes(boxes, 3, seed=1), kmeans_boxes(boxes, 3, seed=1))
    # the IoU distance, not the L2 one: a small box inside a large one is far from it
    nested = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.98, 1.0], [0.4, 0.4, 0.6, 0.6], [0.4, 0.4, 0.61, 0.6]])
    c = kmeans_boxes(nested, 2)
    assert sorted(np.round(c[:, 2] - c[:, 0], 3).tolist()) == [0.205, 0.99]
    # fewer distinct boxes than k: the distinct boxes, repeated
    c = kmeans_boxes(np.array([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 2, 2]]), 5)
    assert c.shape == (5, 4) and {tuple(r) for r in c} == {(0, 0, 1, 1), (1, 1, 2, 2)}
    with pytest.raises(ValueError, match="x2 > x1"):
        kmeans_boxes(np.array([[0, 0, 0, 1]]), 1)
    with pytest.raises(ValueError, match="no boxes"):
        kmeans_boxes(np.zeros((0, 4)), 1)
