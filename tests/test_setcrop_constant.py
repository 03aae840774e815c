"""``benchmarks/setcrop_constant.py``: the constant top-k baselines (greedy cover, most frequent) on hand-made
records whose answers are known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from opencrop.data.record import CropRecord

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "setcrop_constant.py"


def _module():
    spec = importlib.util.spec_from_file_location("setcrop_constant", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]
C = [0.0, 0.0, 1.0, 1.0]


def _rec(name: str, best: list[float], w: int = 200, h: int = 100) -> CropRecord:
    scale = np.array([w, h, w, h], dtype=np.float64)
    crops = np.array([C, best], dtype=np.float64) * scale  # the best crop second: argmax, not the first row
    return CropRecord(name=name, width=w, height=h, crops=crops, scores=np.array([2.0, 4.5]))


def test_normalised_best_divides_by_the_size():
    mod = _module()
    out = mod.normalised_best([_rec("a", B, 300, 120)])
    np.testing.assert_allclose(out, [B])


def test_greedy_cover_takes_the_largest_cluster_then_the_uncovered_one():
    mod = _module()
    near_a = [0.0, 0.0, 0.5, 0.52]  # IoU 0.96 with A
    best = np.array([B, A, near_a, A, C], dtype=np.float64)
    picks = mod.greedy_cover(best, k=3, iou=0.85)
    # A's cluster (A, near_a, A: 3 images) first, then B (first of the uncovered ones in order), then C
    np.testing.assert_allclose(picks, [A, B, C])
    # fewer picks when everything is covered
    assert len(mod.greedy_cover(np.array([A, A]), k=5)) == 1


def test_most_frequent_counts_snapped_boxes_and_breaks_ties_by_first_seen():
    mod = _module()
    jitter = [0.003, 0.0, 0.5, 0.497]  # the same box after snapping to 1/24
    best = np.array([C, B, A, jitter, B, A, C], dtype=np.float64)
    out = mod.most_frequent(best, k=3, quant=24)
    np.testing.assert_allclose(out, [A, C, B])  # A 3× (seen after B and C), then C and B 2× each, C seen first
    np.testing.assert_allclose(mod.most_frequent(best, k=1), [A])


def test_constant_metrics_hit_only_where_a_constant_box_matches():
    mod = _module()
    recs = [_rec("a", A), _rec("b", B, 400, 300), _rec("c", [0.1, 0.1, 0.6, 0.9])]
    m = mod.constant_metrics(np.array([A, B]), recs)
    assert m["hit5@0.85"] == pytest.approx(200 / 3)
    m = mod.constant_metrics(np.array([C]), recs)
    assert m["hit5@0.85"] == 0.0
