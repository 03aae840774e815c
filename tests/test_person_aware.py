"""Issue 3's promise: on photos with people, no crop at 1:1, 4:5, 16:9, 9:16 or 1.91:1 cuts a detected face,
and a group stays together whenever some window of the ratio can hold it. Real detectors on real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from opencrop.api import Cropper
from opencrop.candidates import ratio_windows
from opencrop.cues import available
from opencrop.cues.constraints import face_terms, group_fit

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the photos")

RATIOS = ["1:1", "4:5", "16:9", "9:16", "1.91:1"]


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.LANCZOS))


def _photos() -> dict[str, np.ndarray]:
    astro = skimage_data.astronaut()
    a384 = _resize(astro, 384, 384)
    edge = np.full((384, 683, 3), 120, np.uint8)
    edge[:, 683 - 250:] = a384[:, :250]  # a person leaving the frame on the right
    small = np.asarray(Image.fromarray(skimage_data.coffee()).resize((1200, 800)))
    small = small.copy()
    small[800 - 300:, 60:360] = _resize(astro, 300, 300)  # a small person low in a wide scene
    return {
        "astronaut": astro,
        "astronaut_upscaled": _resize(astro, 1225, 1225),  # peers.md's regression case
        "pair": np.concatenate([astro, astro], axis=1),  # a group of two, side by side
        "grid": np.concatenate([np.concatenate([a384] * 2, axis=1)] * 2, axis=0),  # a group of four
        "edge": edge,
        "small_in_scene": small,
        "camera": np.stack([skimage_data.camera()] * 3, axis=-1),
    }


@pytest.fixture(scope="module")
def cropper() -> Cropper:
    missing = [c for c in ("faces", "people") if available().get(c) is not None]
    if missing:
        pytest.skip(f"cue backends unavailable: {missing} (run `opencrop models fetch`)")
    return Cropper()


@pytest.mark.parametrize("name", list(_photos()))
def test_no_crop_cuts_a_face(cropper: Cropper, name: str) -> None:
    img = _photos()[name]
    an = cropper.analyze(img)
    faces = an.cues.faces.boxes.astype(np.float64)
    if name.startswith(("astronaut", "pair", "grid", "edge")):
        assert len(faces) >= {"pair": 2, "grid": 4}.get(name, 1), f"{name}: faces not detected"
    sx, sy = an.image.scale
    h, w = an.image.pixels.shape[:2]
    for c in cropper.crop(an, ratios=RATIOS):
        box = np.array(c.box, np.float64)[None] * [sx, sy, sx, sy]
        t = face_terms(box, faces)
        assert not t.cut[0], f"{name} {c.ratio}: crop {c.box} cuts a face"
        if group_fit(ratio_windows(w, h, c.ratio), faces).any():
            assert t.n_kept[0] == len(faces), f"{name} {c.ratio}: the group fits but was split"


def test_astronaut_16_9_keeps_the_head(cropper: Cropper) -> None:
    """peers.md §1.3: smartcrop.py/js and a centre crop behead her at 16:9; the head is at y ≈ 60–190 / 1225."""
    (c,) = cropper.crop(_photos()["astronaut_upscaled"], ratios=["16:9"])
    assert c.box[1] <= 60 * 1225 / 512 * 0.5
