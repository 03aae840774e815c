"""Losses: GAIC SmoothL1 on normalised MOS, HCIC rank loss (clean and as coded), heat-map L1."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from opencrop.nn.losses import heatmap_l1, mos_smooth_l1, rank_loss


def test_mos_smooth_l1_normalises_with_gaic_constants():
    mos = torch.tensor([2.95, 3.75, 1.35])
    assert mos_smooth_l1(torch.tensor([0.0, 1.0, -2.0]), mos).item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.tensor([0.5, 0.0, 0.0])
    expect = F.smooth_l1_loss(pred, torch.tensor([0.0, 1.0, -2.0]))
    assert mos_smooth_l1(pred, mos).item() == pytest.approx(expect.item())
    with pytest.raises(ValueError):
        mos_smooth_l1(torch.zeros(2), torch.zeros(3))


def _loop_rank(p, g, w):
    n = len(p)
    tot = 0.0
    for i, j in itertools.product(range(n), range(n)):
        dg = g[i] - g[j]
        tot += max(0.0, -w(dg) * ((p[i] - p[j]) - dg))
    return tot / (n * (n - 1) / 2)


@pytest.mark.parametrize("as_coded", [False, True])
def test_rank_loss_matches_loop_reference_per_image(as_coded):
    torch.manual_seed(0)
    p, g = torch.randn(7, dtype=torch.float64), torch.rand(7, dtype=torch.float64) * 4 + 1
    w = torch.sin if as_coded else torch.sign
    ref = _loop_rank(p[:3], g[:3], w) + _loop_rank(p[3:], g[3:], w)
    got = rank_loss(p, g, counts=torch.tensor([3, 4]), as_coded=as_coded)
    assert got.item() == pytest.approx(float(ref), rel=1e-10)
    # perfectly ordered predictions with the right gaps give 0
    assert rank_loss(g, g).item() == 0.0


def test_heatmap_l1():
    a, b = torch.zeros(2, 1, 64, 64), torch.full((2, 1, 64, 64), 0.25)
    assert heatmap_l1(a, b).item() == pytest.approx(0.25)
