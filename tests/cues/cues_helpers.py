"""Helpers for the cue tests: real scikit-image photos at analysis size (imported by the test modules)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the test photos")


def analysis_size(img: np.ndarray, long_side: int = 512) -> np.ndarray:
    """``img`` as ``[H, W, 3]`` uint8 RGB with its long side shrunk to ``long_side`` (never enlarged)."""
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    if s < 1:
        img = np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS))
    return np.ascontiguousarray(img)


def photo(name: str) -> np.ndarray:
    return analysis_size(getattr(skimage_data, name)())
