"""Composition model's per-image pass: one shrink serves the saliency map and the gradient map."""

from __future__ import annotations

import numpy as np
import pytest

from opencrop.cues.saliency import saliency, saliency_of, shrink
from opencrop.cues.types import Cues
from opencrop.models.composition import CompositionModel


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    skd = pytest.importorskip("skimage.data")
    from PIL import Image

    return np.asarray(Image.fromarray(skd.coffee()).resize((512, 341), Image.Resampling.LANCZOS))


def test_saliency_of_shrink_is_saliency(photo: np.ndarray) -> None:
    small = shrink(photo)
    assert small.shape == (43, 64, 3) and small.dtype == np.float32
    np.testing.assert_array_equal(saliency_of(small), saliency(photo))
    grey = np.ascontiguousarray(photo[..., 0])
    np.testing.assert_array_equal(saliency_of(shrink(grey)), saliency(grey))


def test_prepare_same_with_and_without_cue_saliency(photo: np.ndarray) -> None:
    m = CompositionModel(use_layout=False)
    cues = Cues(photo.shape[1], photo.shape[0])
    cues.saliency = saliency(photo)
    a, b = m.prepare(photo, None), m.prepare(photo, cues)
    np.testing.assert_array_equal(a.saliency, b.saliency)
    np.testing.assert_array_equal(a.grad_ii, b.grad_ii)
    np.testing.assert_array_equal(a.subjects, b.subjects)
