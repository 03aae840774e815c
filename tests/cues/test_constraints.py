"""Cut constraints on hand-computed cases (xyxy pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from opencrop.cues.constraints import (
    WEIGHTS,
    body_cut_penalty,
    face_cut,
    face_drop,
    face_terms,
    group_box,
    group_fit,
    head_boxes,
)

FACE = np.array([[100.0, 100.0, 200.0, 200.0]])  # 100 × 100 face


def test_face_kept_cut_dropped():
    boxes = np.array(
        [
            [0, 0, 400, 400],  # kept
            [0, 0, 150, 400],  # cuts the face's right half
            [0, 0, 400, 150],  # cuts the bottom half (the beheading case, upside down)
            [0, 0, 90, 400],  # face entirely right of the crop: dropped
            [0, 0, 101, 400],  # 1 px (1 %) of the face inside: within tol → dropped, not cut
            [99, 99, 201, 201],  # tight
            [102, 0, 400, 400],  # 2 % of the face's width outside: within tol → kept
            [104, 0, 400, 400],  # 4 % outside → cut
        ],
        dtype=float,
    )
    t = face_terms(boxes, FACE, tol=0.02)
    assert t.state[:, 0].tolist() == [0, 1, 1, 2, 2, 0, 0, 1]
    assert face_cut(boxes, FACE).tolist() == [False, True, True, False, False, False, False, True]
    assert face_drop(boxes, FACE).tolist() == [False, False, False, True, True, False, False, False]
    assert t.n_kept.tolist() == [1, 0, 0, 0, 0, 1, 1, 0]


def test_no_faces_nothing_cut():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], dtype=float)
    empty = np.zeros((0, 4))
    assert not face_cut(boxes, empty).any() and not face_drop(boxes, empty).any()
    assert group_fit(boxes, empty).all()
    assert group_box(empty) is None


def test_group_fit_and_box():
    faces = np.array([[10, 10, 30, 30], [200, 20, 230, 50]], dtype=float)
    boxes = np.array([[0, 0, 240, 100], [0, 0, 100, 100], [5, 5, 235, 55]], dtype=float)
    assert group_fit(boxes, faces).tolist() == [True, False, True]
    np.testing.assert_allclose(group_box(faces), [10, 10, 230, 50])
    t = face_terms(boxes, faces)
    assert t.n_kept.tolist() == [2, 1, 2] and t.dropped.tolist() == [False, True, False]


def test_head_boxes_grow_up_most():
    hb = head_boxes(FACE)
    np.testing.assert_allclose(
        hb[0],
        [100 - WEIGHTS.head_pad_side * 100, 100 - WEIGHTS.head_pad_top * 100,
         200 + WEIGHTS.head_pad_side * 100, 200 + WEIGHTS.head_pad_bottom * 100],
    )
    assert WEIGHTS.head_pad_top > WEIGHTS.head_pad_bottom  # hair above matters more than the chin's margin


def test_body_cut_penalty_ordering():
    person = np.array([[100.0, 0.0, 200.0, 500.0]])  # head rows 0-100, feet rows 450-500
    boxes = np.array(
        [
            [0, -10, 400, 510],  # whole person: 0
            [300, 0, 600, 500],  # person not in the crop: dropped, not cut → 0
            [0, 60, 400, 510],  # top of the head cut
            [0, -10, 400, 470],  # feet cut
            [0, -10, 190, 510],  # 10 % off one side
        ],
        dtype=float,
    )
    p = body_cut_penalty(boxes, person)
    assert p.dtype == np.float32 and p.shape == (5,)
    assert p[0] == 0 and p[1] == 0
    head_cut, feet_cut, side_cut = p[2], p[3], p[4]
    assert head_cut > feet_cut > side_cut > 0
    assert (p >= 0).all() and (p <= 1).all()
    # exact value for the side cut: any_cut + 10 % of every region lost
    expected = WEIGHTS.any_cut + 0.1 * (WEIGHTS.head + WEIGHTS.feet + WEIGHTS.body)
    assert side_cut == pytest.approx(expected, rel=1e-5)


def test_body_cut_penalty_weighs_big_confident_people():
    people = np.array([[0, 0, 100, 400], [300, 300, 320, 340]], dtype=float)  # big subject, small passer-by
    cut_small = np.array([[0, 0, 310, 400]], dtype=float)
    cut_big = np.array([[50, 0, 400, 400]], dtype=float)
    small, big = body_cut_penalty(cut_small, people)[0], body_cut_penalty(cut_big, people)[0]
    assert big > small > 0
    low_conf = body_cut_penalty(cut_big, people, scores=np.array([0.5, 1.0]))[0]
    assert low_conf == pytest.approx(big * 0.5, rel=1e-5)
    assert body_cut_penalty(cut_big, np.zeros((0, 4))).tolist() == [0.0]


def test_vectorised_shapes_and_errors():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, (1000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 200, (1000, 2))], axis=1)
    faces = np.array([[100, 100, 150, 160], [250, 80, 300, 140]], dtype=float)
    t = face_terms(boxes, faces)
    assert t.state.shape == (1000, 2) and t.cut.shape == (1000,)
    assert ((t.n_cut + t.n_dropped + t.n_kept) == 2).all()
    assert body_cut_penalty(boxes, faces).shape == (1000,)
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        face_cut(boxes[:, :3], faces)
