"""GAIC and HCIC multi-scale fusion."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from opencrop.nn import GAICFusion, HCICFusion


def _taps(b=2, h4=8, w4=12, c=(32, 96, 320)):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, c[0], 2 * h4, 2 * w4, generator=g), torch.randn(b, c[1], h4, w4, generator=g),
            torch.randn(b, c[2], h4 // 2, w4 // 2, generator=g))


def test_gaic_fusion_matches_original_formula():
    f3, f4, f5 = _taps()
    fus = GAICFusion((32, 96, 320), reddim=8)
    out = fus(f3, f4, f5)
    assert out.shape == (2, 8, 8, 12)
    # the original code: UpsamplingBilinear2d(scale_factor=0.5 / 2), i.e. align_corners=True
    down = torch.nn.UpsamplingBilinear2d(scale_factor=0.5)(f3)
    up = torch.nn.UpsamplingBilinear2d(scale_factor=2.0)(f5)
    expect = fus.dimred(torch.cat((down, f4, 0.5 * up), 1))
    torch.testing.assert_close(out, expect)
    assert fus.dimred.in_channels == 448 and fus.dimred.bias is not None


def test_gaic_fusion_odd_sizes_resize_to_f4():
    f3, f4, f5 = torch.randn(1, 4, 17, 25), torch.randn(1, 5, 9, 13), torch.randn(1, 6, 5, 7)
    out = GAICFusion((4, 5, 6), reddim=3)(f3, f4, f5)
    assert out.shape == (1, 3, 9, 13)


@pytest.mark.parametrize("relu", [False, True])
def test_hcic_fusion(relu):
    f3, f4, f5 = _taps(c=(512, 512, 512))
    fus = HCICFusion((512, 512, 512), reddim=32, relu=relu)
    out = fus(f3, f4, f5)
    assert out.shape == (2, 32, 8, 12)
    r3 = F.interpolate(f3, size=(8, 12), mode="bilinear", align_corners=True)
    r5 = F.interpolate(f5, size=(8, 12), mode="bilinear", align_corners=True)
    expect = fus.feat_ext(fus.f3_layer(r3) + fus.f4_layer(f4) + fus.f5_layer(r5))
    torch.testing.assert_close(out, F.relu(expect) if relu else expect)
    assert (out >= 0).all() == relu or not relu


def test_fusion_rejects_wrong_channel_list():
    with pytest.raises(ValueError):
        GAICFusion((1, 2))
    with pytest.raises(ValueError):
        HCICFusion((1, 2, 3, 4))
