"""GAIC RoIAlign / RoDAlign and torchvision-style RoIAlign against float64 loop references and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from opencrop.ops import rod_align, rod_align_avg, roi_align, roi_align_avg, roi_align_torchvision

# ---------------------------------------------------------------------------------------------------------------
# float64 loop references, written from the kernels' per-element description (one output element at a time)


def _bilinear_gaic(f: np.ndarray, h: float, w: float) -> float:
    H, W = f.shape
    hs = max(min(math.floor(h), H - 2), 0)
    ws = max(min(math.floor(w), W - 2), 0)
    hr, wr = h - hs, w - ws
    h1, w1 = min(hs + 1, H - 1), min(ws + 1, W - 1)
    return (f[hs, ws] * (1 - hr) * (1 - wr) + f[hs, w1] * (1 - hr) * wr
            + f[h1, ws] * hr * (1 - wr) + f[h1, w1] * hr * wr)


def ref_roi_align(feat: np.ndarray, rois: np.ndarray, P: int, scale: float) -> np.ndarray:
    K, (_, C, H, W) = rois.shape[0], feat.shape
    out = np.zeros((K, C, P, P))
    for k in range(K):
        b = int(rois[k, 0])
        x1, y1, x2, y2 = (float(v) * scale for v in rois[k, 1:])
        bw = max(x2 - x1 + 1.0, 0.0) / (P - 1)
        bh = max(y2 - y1 + 1.0, 0.0) / (P - 1)
        for c in range(C):
            for ph in range(P):
                for pw in range(P):
                    h, w = ph * bh + y1, pw * bw + x1
                    if h < 0 or h >= H or w < 0 or w >= W:
                        continue
                    out[k, c, ph, pw] = _bilinear_gaic(feat[b, c], h, w)
    return out


def ref_rod_align(feat: np.ndarray, rois: np.ndarray, P: int, scale: float) -> np.ndarray:
    K, (_, C, H, W) = rois.shape[0], feat.shape
    out = np.zeros((K, C, P, P))
    bh, bw = (H - 1.001) / (P - 1), (W - 1.001) / (P - 1)
    for k in range(K):
        b = int(rois[k, 0])
        x1, y1, x2, y2 = (float(v) * scale for v in rois[k, 1:])
        for c in range(C):
            for ph in range(P):
                for pw in range(P):
                    h, w = ph * bh, pw * bw
                    if y1 <= h <= y2 and x1 <= w <= x2:
                        continue
                    out[k, c, ph, pw] = _bilinear_gaic(feat[b, c], h, w)
    return out


def _bilinear_tv(f: np.ndarray, y: float, x: float) -> float:
    H, W = f.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= H - 1:
        yl = yh = H - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= W - 1:
        xl = xh = W - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    return (f[yl, xl] * (1 - ly) * (1 - lx) + f[yl, xh] * (1 - ly) * lx
            + f[yh, xl] * ly * (1 - lx) + f[yh, xh] * ly * lx)


def ref_roi_align_tv(feat, rois, P, scale, sampling_ratio=-1, aligned=False):
    K, C = rois.shape[0], feat.shape[1]
    out = np.zeros((K, C, P, P))
    off = 0.5 if aligned else 0.0
    for k in range(K):
        b = int(rois[k, 0])
        x1, y1, x2, y2 = (float(v) * scale - off for v in rois[k, 1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / P, rw / P
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / P)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / P)
        count = max(gh * gw, 1)
        for c in range(C):
            for ph in range(P):
                for pw in range(P):
                    acc = 0.0
                    for iy in range(gh):
                        y = y1 + ph * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            x = x1 + pw * bw + (ix + 0.5) * bw / gw
                            acc += _bilinear_tv(feat[b, c], y, x)
                    out[k, c, ph, pw] = acc / count
    return out


def random_rois(gen: torch.Generator, K: int, B: int, img_h: float, img_w: float, margin: float = 0.2) -> torch.Tensor:
    """Random boxes, some hanging over the image edges."""
    x1 = (torch.rand(K, generator=gen, dtype=torch.float64) * (1 + margin) - margin) * img_w
    y1 = (torch.rand(K, generator=gen, dtype=torch.float64) * (1 + margin) - margin) * img_h
    bw = torch.rand(K, generator=gen, dtype=torch.float64) * img_w * 0.9 + 1
    bh = torch.rand(K, generator=gen, dtype=torch.float64) * img_h * 0.9 + 1
    b = torch.randint(0, B, (K,), generator=gen).double()
    return torch.stack([b, x1, y1, x1 + bw, y1 + bh], 1)


# ---------------------------------------------------------------------------------------------------------------
# hand-computed values


def test_roi_align_hand_values_ramp():
    # f[y, x] = 10 y + x on a 4×5 map; bilinear reproduces an affine ramp exactly, also when it extrapolates
    f = (10 * torch.arange(4.0).view(4, 1) + torch.arange(5.0).view(1, 5)).double().view(1, 1, 4, 5)
    # box (0, 0)-(2, 1) at scale 1: roi_w = 3, roi_h = 2, P = 3 -> x in {0, 1.5, 3}, y in {0, 1, 2}
    out = roi_align(f, torch.tensor([[0.0, 0, 0, 2, 1]], dtype=torch.float64), 3, 1.0)
    expect = torch.tensor([[0, 1.5, 3], [10, 11.5, 13], [20, 21.5, 23]], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0], expect)
    # last column: w = 4.5 is in [W-1, W): extrapolates from columns 3, 4 -> 4.5; w = 6 is >= W -> 0
    out = roi_align(f, torch.tensor([[0.0, 3, 0, 4, 0]], dtype=torch.float64), 3, 1.0)
    # roi_w = 2 -> x in {3, 4, 5}; roi_h = 1 -> y in {0, 0.5, 1}
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor([3.0, 8, 13], dtype=torch.float64))
    torch.testing.assert_close(out[0, 0, :, 1], torch.tensor([4.0, 9, 14], dtype=torch.float64))
    torch.testing.assert_close(out[0, 0, :, 2], torch.zeros(3, dtype=torch.float64))  # x = 5 >= W


def test_roi_align_extrapolates_inside_last_pixel():
    f = (10 * torch.arange(4.0).view(4, 1) + torch.arange(5.0).view(1, 5)).double().view(1, 1, 4, 5)
    # x1 = 4.5: roi_w = 1.5, P = 2 -> x in {4.5, 6}; y in {0, 2}
    out = roi_align(f, torch.tensor([[0.0, 4.5, 0, 5, 1]], dtype=torch.float64), 2, 1.0)
    torch.testing.assert_close(out[0, 0], torch.tensor([[4.5, 0], [24.5, 0]], dtype=torch.float64))


def test_roi_align_spatial_scale_and_negative_side():
    f = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4)
    # image box (-16, 0)-(16, 16) at 1/16 -> (-1, 0)-(1, 1): x in {-1, 0.5, 2}, y in {0, 1, 2}
    out = roi_align(f, torch.tensor([[0.0, -16, 0, 16, 16]], dtype=torch.float64), 3, 1 / 16)
    expect = torch.tensor([[0, 0.5, 2], [0, 4.5, 6], [0, 8.5, 10]], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0], expect)


def test_rod_align_hand_values():
    # 3×3 map, P = 3: grid h, w in {0, 0.9995, 1.999}; the closed box (1, 1)-(2, 2) contains only the (2, 2) sample
    # (0.9995 < 1); the others are plain bilinear samples of the ramp 3 h + w
    f = torch.arange(9.0, dtype=torch.float64).view(1, 1, 3, 3)
    out = rod_align(f, torch.tensor([[0.0, 1, 1, 2, 2]], dtype=torch.float64), 3, 1.0)
    g = torch.tensor([0.0, 0.9995, 1.999], dtype=torch.float64)
    expect = 3 * g.view(3, 1) + g.view(1, 3)
    expect[2, 2] = 0
    torch.testing.assert_close(out[0, 0], expect)
    # a box covering the whole map blanks everything; a closed edge exactly on a sample blanks it
    out = rod_align(f, torch.tensor([[0.0, 0, 0, 2, 2]], dtype=torch.float64), 3, 1.0)
    assert torch.count_nonzero(out) == 0
    out = rod_align(f, torch.tensor([[0.0, 0, 0, 0, 0]], dtype=torch.float64), 3, 1.0)
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 0, 1] != 0 and out[0, 0, 1, 0] != 0


def test_avg_variants_are_pooled_plain_ops():
    gen = torch.Generator().manual_seed(3)
    f = torch.randn(2, 3, 7, 9, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 6, 2, 7 * 16, 9 * 16)
    for avg, plain in ((roi_align_avg, roi_align), (rod_align_avg, rod_align)):
        got = avg(f, rois, 4, 1 / 16)
        assert got.shape == (6, 3, 4, 4)
        torch.testing.assert_close(got, F.avg_pool2d(plain(f, rois, 5, 1 / 16), 2, 1))


def test_degenerate_one_pixel_axis_is_constant():
    f = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64).view(1, 1, 1, 3)  # H = 1
    out = roi_align(f, torch.tensor([[0.0, 0, 0, 1, 0]], dtype=torch.float64), 2, 1.0)
    # y in {0, 1}: y = 1 >= H -> 0; x in {0, 2}
    torch.testing.assert_close(out[0, 0], torch.tensor([[1.0, 4.0], [0, 0]], dtype=torch.float64))
    out = rod_align(f, torch.tensor([[0.0, 5, 5, 6, 6]], dtype=torch.float64), 2, 1.0)
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor([1.0, 1.0], dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------------------
# random inputs against the loop references


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("P", [2, 3, 5])
def test_gaic_ops_match_loop_reference(seed, P):
    gen = torch.Generator().manual_seed(seed)
    B, C, H, W = 2, 3, 5, 7
    f = torch.randn(B, C, H, W, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 9, B, H * 16, W * 16)
    odd = torch.tensor([[0, 50, 40, 20, 10],  # x2 < x1, y2 < y1: roi size clamps to 0, all samples at (x1', y1')
                        [1, 30, 30, 30, 30],  # a point
                        [1, -90, -70, -20, -30],  # entirely above-left of the map
                        [0, 200, 100, 400, 300]], dtype=torch.float64)  # entirely right of the map
    rois = torch.cat([rois, odd])
    npf, npr = f.numpy(), rois.numpy()
    torch.testing.assert_close(roi_align(f, rois, P, 1 / 16), torch.from_numpy(ref_roi_align(npf, npr, P, 1 / 16)))
    torch.testing.assert_close(rod_align(f, rois, P, 1 / 16), torch.from_numpy(ref_rod_align(npf, npr, P, 1 / 16)))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("P", "sr", "aligned"), [(2, -1, False), (3, 2, False), (4, -1, True), (5, 1, True)])
def test_torchvision_roi_align_matches_loop_reference(seed, P, sr, aligned):
    gen = torch.Generator().manual_seed(seed)
    B, C, H, W = 2, 2, 6, 8
    f = torch.randn(B, C, H, W, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 8, B, H * 8, W * 8)
    extra = torch.tensor([[1.0, 10, 10, 10.5, 10.2], [0.0, 40, 30, 70, 60],
                          [0.0, 30, 30, 20, 10],  # x2 < x1: 1-pixel roi, or no samples at all when aligned
                          [1.0, -40, -30, -9, -9], [0.0, 70, 50, 90, 70]], dtype=torch.float64)  # off the map
    rois = torch.cat([rois, extra])
    got = roi_align_torchvision(f, rois, P, 1 / 8, sampling_ratio=sr, aligned=aligned)
    ref = ref_roi_align_tv(f.numpy(), rois.numpy(), P, 1 / 8, sr, aligned)
    torch.testing.assert_close(got, torch.from_numpy(ref))


def test_float32_matches_float64():
    gen = torch.Generator().manual_seed(7)
    f = torch.randn(1, 8, 16, 24, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 30, 1, 256, 384, margin=0.0)
    for op in (roi_align, rod_align, roi_align_avg, rod_align_avg, roi_align_torchvision):
        a = op(f.float(), rois.float(), 5, 1 / 16)
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), op(f, rois, 5, 1 / 16), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# routing, empties, gradients, errors


@pytest.mark.parametrize("op", [roi_align, rod_align, roi_align_avg, rod_align_avg, roi_align_torchvision])
def test_batch_index_routing(op):
    gen = torch.Generator().manual_seed(11)
    f = torch.randn(3, 2, 6, 6, generator=gen, dtype=torch.float64)
    rois = random_rois(gen, 7, 3, 96, 96)
    out = op(f, rois, 3, 1 / 16)
    for b in range(3):
        sel = rois[:, 0] == b
        if sel.any():
            single = rois[sel].clone()
            single[:, 0] = 0
            torch.testing.assert_close(out[sel], op(f[b : b + 1], single, 3, 1 / 16))


@pytest.mark.parametrize("op", [roi_align, rod_align, roi_align_avg, rod_align_avg, roi_align_torchvision])
def test_empty_rois(op):
    f = torch.randn(2, 4, 5, 5, requires_grad=True)
    out = op(f, torch.zeros(0, 5), 3, 1 / 16)
    assert out.shape == (0, 4, 3, 3)
    out.sum().backward()
    assert f.grad is not None and torch.count_nonzero(f.grad) == 0


@pytest.mark.parametrize("op", [roi_align, rod_align, roi_align_avg, rod_align_avg, roi_align_torchvision])
def test_gradcheck(op):
    gen = torch.Generator().manual_seed(5)
    f = torch.randn(2, 1, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(gen, 4, 2, 80, 96)
    assert torch.autograd.gradcheck(lambda x: op(x, rois, 3, 1 / 16), (f,))
    rois_g = rois.clone().requires_grad_(True)
    op(f, rois_g, 3, 1 / 16).sum().backward()
    assert rois_g.grad is None  # no gradient to the boxes


def test_bad_inputs():
    f = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="Tensor\\[K, 5\\]"):
        roi_align(f, torch.zeros(2, 4), 3, 1.0)
    with pytest.raises(ValueError, match="B, C, H, W"):
        rod_align(torch.zeros(4, 4), torch.zeros(1, 5), 3, 1.0)
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(f, torch.tensor([[1.0, 0, 0, 1, 1]]), 3, 1.0)
    with pytest.raises(ValueError, match=">= 2"):
        roi_align(f, torch.zeros(1, 5), 1, 1.0)
    assert roi_align_avg(f, torch.zeros(1, 5), 1, 1.0).shape == (1, 1, 1, 1)


def test_rectangular_output_size():
    f = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    rois = torch.tensor([[0.0, 8, 8, 60, 40]], dtype=torch.float64)
    assert roi_align(f, rois, (3, 5), 1 / 8).shape == (1, 2, 3, 5)
    assert rod_align_avg(f, rois, (4, 2), 1 / 8).shape == (1, 2, 4, 2)
    assert roi_align_torchvision(f, rois, (2, 3), 1 / 8).shape == (1, 2, 2, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("op", [roi_align, rod_align, roi_align_avg, rod_align_avg, roi_align_torchvision])
def test_cuda_matches_cpu(op):
    gen = torch.Generator().manual_seed(9)
    f = torch.randn(2, 8, 16, 24, generator=gen)
    rois = random_rois(gen, 90, 2, 256, 384).float()
    cpu = op(f, rois, 9, 1 / 16)
    fc = f.cuda().requires_grad_(True)
    gpu = op(fc, rois.cuda(), 9, 1 / 16)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)
    gpu.sum().backward()
    fr = f.clone().requires_grad_(True)
    op(fr, rois, 9, 1 / 16).sum().backward()
    torch.testing.assert_close(fc.grad.cpu(), fr.grad, atol=1e-4, rtol=1e-4)


def test_module_wrappers():
    from opencrop.ops import RoDAlign, RoDAlignAvg, RoIAlign, RoIAlignAvg

    gen = torch.Generator().manual_seed(2)
    f = torch.randn(1, 3, 8, 8, generator=gen)
    rois = random_rois(gen, 4, 1, 128, 128).float()
    for mod, fn in ((RoIAlign, roi_align), (RoDAlign, rod_align), (RoIAlignAvg, roi_align_avg),
                    (RoDAlignAvg, rod_align_avg)):
        m = mod(4, 1 / 16)
        torch.testing.assert_close(m(f, rois), fn(f, rois, 4, 1 / 16))
        assert "spatial_scale=0.0625" in repr(m)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 5e-3), (torch.bfloat16, 5e-2)])
def test_half_precision_features(dtype, tol):
    gen = torch.Generator().manual_seed(4)
    f = torch.randn(2, 4, 8, 12, generator=gen)
    rois = random_rois(gen, 10, 2, 128, 192, margin=0.0).float()
    for op in (roi_align, rod_align, roi_align_avg, rod_align_avg, roi_align_torchvision):
        out = op(f.to(dtype), rois, 5, 1 / 16)
        assert out.dtype == dtype  # sample positions stay float32, as in the kernels
        torch.testing.assert_close(out.float(), op(f, rois, 5, 1 / 16), atol=tol, rtol=tol)
