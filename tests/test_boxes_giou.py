"""GIoU in opencrop.boxes: hand-computed values, torch = NumPy, gradients, degenerate boxes."""

import numpy as np
import pytest
import torch

from opencrop import boxes as B


def test_giou_hand_computed():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 0, 30, 10], [2, 2, 8, 8]])
    # overlap: IoU 25/175, hull 15x15; identical: 1; disjoint: hull 30x10, union 200; inside: IoU 36/100, hull = a
    want = [25 / 175 - (225 - 175) / 225, 1.0, 0 - (300 - 200) / 300, 36 / 100]
    np.testing.assert_allclose(B.generalized_box_iou(a, b), [want])
    assert B.generalized_box_iou(b, a).shape == (4, 1)


def test_giou_bounds_and_iou_relation():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (30, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, (30, 2))], 1)
    g, iou = B.generalized_box_iou(a, a[::-1]), B.box_iou(a, a[::-1])
    assert (g <= iou + 1e-12).all() and (g >= -1).all() and (g <= 1).all()
    np.testing.assert_allclose(np.diagonal(B.generalized_box_iou(a, a)), 1.0)


def test_giou_torch_matches_numpy_and_has_gradients():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1, (6, 2))
    a = np.concatenate([xy, xy + rng.uniform(0.05, 0.5, (6, 2))], 1)
    b = a[::-1].copy() + 0.1
    ta = torch.tensor(a, requires_grad=True)
    g = B.generalized_box_iou(ta, torch.tensor(b))
    np.testing.assert_allclose(g.detach().numpy(), B.generalized_box_iou(a, b), rtol=1e-10)
    (1 - g).sum().backward()
    assert torch.isfinite(ta.grad).all() and ta.grad.abs().sum() > 0


def test_giou_degenerate_pairs_are_zero():
    p = np.array([[3.0, 3.0, 3.0, 3.0]])
    assert B.generalized_box_iou(p, p)[0, 0] == 0.0
    t = torch.tensor(p, requires_grad=True)
    B.generalized_box_iou(t, t).sum().backward()
    assert torch.isfinite(t.grad).all()
    # a zero-area box against a real one: IoU 0, hull = the real box, union = the real box
    assert B.generalized_box_iou(p, np.array([[0.0, 0.0, 10.0, 10.0]]))[0, 0] == pytest.approx(0.0)
