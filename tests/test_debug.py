"""The debug overlay draws the chosen box in its colour, on the analysis image, with saliency tinted."""

from __future__ import annotations

import numpy as np

from opencrop.api import Cropper
from opencrop.debug import overlay


def test_overlay_draws_chosen_box_and_saliency() -> None:
    a = np.full((300, 450, 3), 100, np.uint8)
    a[80:220, 280:380] = (40, 40, 200)
    cropper = Cropper(cues=False)
    an = cropper.analyze(a)
    crops = cropper.crop(an, ratios=["1:1"], runners_up=2)
    im = np.asarray(overlay(an, crops))
    assert im.shape == a.shape
    x1, y1, _, y2 = crops[0].box  # analysis image = original here (small input)
    ys = np.arange(y1 + 20, y2 - 20)
    left_edge = im[ys, min(x1 + 1, im.shape[1] - 1)]
    assert (np.abs(left_edge.astype(int) - [0, 230, 64]).sum(axis=1) < 40).mean() > 0.9  # green outline
    # saliency is tinted red: at the most salient point the red channel rises well above the input's
    sal = an.prepared.saliency
    iy, ix = np.unravel_index(np.argmax(sal), sal.shape)
    y, x = int((iy + 0.5) * a.shape[0] / sal.shape[0]), int((ix + 0.5) * a.shape[1] / sal.shape[1])
    assert int(im[y, x, 0]) > int(a[y, x, 0]) + 30
