"""NMS against a plain greedy loop."""

from __future__ import annotations

import pytest
import torch

from opencrop.ops import box_iou_matrix, nms


def ref_nms(boxes: torch.Tensor, scores: torch.Tensor, t: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            bi, bj = boxes[i].tolist(), boxes[j].tolist()
            iw = max(0.0, min(bi[2], bj[2]) - max(bi[0], bj[0]))
            ih = max(0.0, min(bi[3], bj[3]) - max(bi[1], bj[1]))
            inter = iw * ih
            union = (bi[2] - bi[0]) * (bi[3] - bi[1]) + (bj[2] - bj[0]) * (bj[3] - bj[1]) - inter
            if union > 0 and inter / union > t:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def test_hand_example():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) suppresses box 0 (IoU 0.9) and box 1 (IoU 0.67); box 2 is disjoint
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("t", [0.3, 0.5, 0.7])
def test_matches_greedy_loop(seed, t):
    gen = torch.Generator().manual_seed(seed)
    n = 120
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 50
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 30 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.randint(0, 20, (n,), generator=gen).double()  # many ties: stable order
    assert nms(boxes, scores, t).tolist() == ref_nms(boxes, scores, t)


def test_chain_needs_many_steps():
    # each box overlaps only the next one: greedy keeps every other box
    n = 15
    x = torch.arange(n, dtype=torch.float64) * 6
    boxes = torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)
    scores = torch.linspace(1, 0, n)
    assert nms(boxes, scores, 0.2).tolist() == list(range(0, n, 2))


def test_empty_and_iou_matrix():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    a = torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 5, 5]])
    iou = box_iou_matrix(a, a)
    torch.testing.assert_close(iou[0, 1], torch.tensor(1 / 7))
    assert iou[2, 2] == 0 and iou[0, 2] == 0
    with pytest.raises(ValueError):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
