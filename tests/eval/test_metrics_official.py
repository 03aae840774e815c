"""``gaicd_metrics`` equals the official GAICD evaluators on the real GAICD v1 test annotations, for every key.

The reference below is a plain-Python, float64 re-statement of the evaluation loop in GAIC's ``test()``
(HuiZeng/Grid-Anchor-based-Image-Cropping-Pytorch ``TrainModel.py`` / ``TestAccuracy.py``, same in lld533's fork)
and HCIC's ``compute_acc`` (bcmi/Human-Centric-Image-Cropping ``test.py``), written independently of
:mod:`opencrop.eval.metrics`: Python's stable ``sorted(..., reverse=True)``, ``list.index`` ranks, explicit loops,
``scipy.stats`` correlations and ``sum(...) / n`` means.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from opencrop.data import load_gaicd
from opencrop.eval.metrics import gaicd_metrics

stats = pytest.importorskip("scipy.stats")


def official_reference(preds: list[np.ndarray], gts: list[np.ndarray]) -> tuple[dict[str, float], list, list]:
    """Every ``gaicd_metrics`` key the way the original scripts compute it (accuracies ×100 for percent).

    Returns ``(metrics, per-image SRCC, per-image PCC)``.
    """
    ks, ns, decay = (1, 2, 3, 4), (5, 10), {5: 0.2, 10: 0.1}
    acc = {(k, n): 0.0 for k in ks for n in ns}
    wacc = {(k, n): 0.0 for k in ks for n in ns}
    srcc, pcc, few = [], [], 0
    for p, g in zip(preds, gts, strict=True):
        mos = [float(v) for v in g]
        out = [float(v) for v in p]
        id_mos = sorted(range(len(mos)), key=lambda c: mos[c], reverse=True)
        id_out = sorted(range(len(out)), key=lambda c: out[c], reverse=True)
        few += len(mos) < 10
        for n in ns:
            cut = mos[id_mos[n - 1]]
            for k in ks:
                hits = 0.0
                for j in range(k):
                    if mos[id_out[j]] >= cut:
                        hits += 1.0
                acc[k, n] += hits / k
        rank_of_returned = [id_mos.index(id_out[j]) for j in range(4)]
        for k in ks:
            ranks = sorted(rank_of_returned[:k])
            for n in ns:
                total = 0.0
                for j in range(k):
                    if ranks[j] <= n - 1:
                        total += math.exp(-decay[n] * (ranks[j] - j))
                wacc[k, n] += total / k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            srcc.append(float(stats.spearmanr(mos, out)[0]))
            pcc.append(float(stats.pearsonr(mos, out)[0]))
    n_img = len(gts)
    ref: dict[str, float] = {"srcc": sum(srcc) / n_img, "pcc": sum(pcc) / n_img}
    for n in ns:
        for k in ks:
            ref[f"acc{k}_{n}"] = 100.0 * acc[k, n] / n_img
            ref[f"wacc{k}_{n}"] = 100.0 * wacc[k, n] / n_img
        ref[f"acc{n}"] = sum(ref[f"acc{k}_{n}"] for k in ks) / len(ks)
        ref[f"wacc{n}"] = sum(ref[f"wacc{k}_{n}"] for k in ks) / len(ks)
    ref["n_images"] = n_img
    ref["n_undefined_corr"] = sum(1 for s, c in zip(srcc, pcc, strict=True) if math.isnan(s) or math.isnan(c))
    ref["n_few_crops"] = few
    return ref, srcc, pcc


def assert_same(ours: dict[str, float], ref: dict[str, float]) -> None:
    assert set(ours) == set(ref)
    for key, want in ref.items():
        got = ours[key]
        if math.isnan(want):
            assert math.isnan(got), key
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), key


@pytest.fixture(scope="module")
def gaicd_test_mos(shared_data: Path) -> list[np.ndarray]:
    recs = load_gaicd(shared_data / "gaicd-annotations" / "gaicd_v1_official_xyxy.json", split="test")
    assert len(recs) == 200
    return [r.scores for r in recs]


def _predictions(kind: str, mos: list[np.ndarray]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "random":
        return [rng.normal(size=g.size) for g in mos]
    if kind == "rounded-noise":  # many prediction ties, unrelated to the GT
        return [np.round(rng.normal(size=g.size)) for g in mos]
    if kind == "coarse-gt":  # ties that mostly fall inside GT tie groups and near the top
        return [np.floor(g + rng.normal(scale=0.3, size=g.size)) for g in mos]
    if kind == "gt":
        return [g.copy() for g in mos]
    if kind == "constant-on-some":
        preds = [rng.normal(size=g.size) for g in mos]
        for i in (0, 17, 199):
            preds[i] = np.full(mos[i].size, 0.5)
        return preds
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["random", "rounded-noise", "coarse-gt", "gt", "constant-on-some"])
def test_equals_official_evaluator_on_real_gaicd(gaicd_test_mos: list[np.ndarray], kind: str) -> None:
    preds = _predictions(kind, gaicd_test_mos)
    ref, srcc, pcc = official_reference(preds, gaicd_test_mos)
    ours = gaicd_metrics(preds, gaicd_test_mos)
    assert_same(ours, ref)
    assert ours["n_few_crops"] == 0  # GAICD v1 test: 54–90 crops per image, the original code's domain
    if kind == "constant-on-some":
        assert ours["n_undefined_corr"] == 3 and math.isnan(ours["srcc"]) and math.isnan(ours["pcc"])
        defined = [i for i, s in enumerate(srcc) if not math.isnan(s)]
        zero = gaicd_metrics(preds, gaicd_test_mos, undefined_corr="zero")
        skip = gaicd_metrics(preds, gaicd_test_mos, undefined_corr="skip")
        assert zero["srcc"] == pytest.approx(sum(srcc[i] for i in defined) / 200, abs=1e-12)
        assert zero["pcc"] == pytest.approx(sum(pcc[i] for i in defined) / 200, abs=1e-12)
        assert skip["srcc"] == pytest.approx(sum(srcc[i] for i in defined) / len(defined), abs=1e-12)
        assert skip["pcc"] == pytest.approx(sum(pcc[i] for i in defined) / len(defined), abs=1e-12)
        assert_same({**zero, "srcc": ref["srcc"], "pcc": ref["pcc"]}, ref)  # nothing else changes
    else:
        assert ours["n_undefined_corr"] == 0
    if kind == "gt":
        assert ours["srcc"] == pytest.approx(1.0) and ours["pcc"] == pytest.approx(1.0)
        assert all(ours[f"{a}{k}_{n}"] == pytest.approx(100.0) for a in ("acc", "wacc") for k in (1, 2, 3, 4)
                   for n in (5, 10))


def test_old_generous_ranks_differ_from_official(gaicd_test_mos: list[np.ndarray]) -> None:
    """The generous Acc_w rule is a different metric on real data: the reference above would catch it."""
    preds = _predictions("coarse-gt", gaicd_test_mos)
    ref, _, _ = official_reference(preds, gaicd_test_mos)
    gen = gaicd_metrics(preds, gaicd_test_mos, wacc_ranks="generous")
    wkeys = [f"wacc{k}_{n}" for k in (1, 2, 3, 4) for n in (5, 10)]
    assert all(gen[k] >= ref[k] - 1e-9 for k in wkeys)  # the best free rank never lowers a term
    assert max(gen[k] - ref[k] for k in wkeys) > 0.5
    assert all(gen[k] == pytest.approx(ref[k]) for k in ref if not k.startswith("wacc"))


def test_real_gaicd_reversed_and_invariances(gaicd_test_mos: list[np.ndarray]) -> None:
    m = gaicd_metrics([-s for s in gaicd_test_mos], gaicd_test_mos)
    assert m["srcc"] == pytest.approx(-1.0) and m["pcc"] == pytest.approx(-1.0)
    assert m["acc1_5"] < 5.0
    pred = _predictions("random", gaicd_test_mos)
    base = gaicd_metrics(pred, gaicd_test_mos)
    # the official MOS normalisation (MOS − 2.95) / 0.8 and float32 predictions change nothing
    norm = gaicd_metrics([p.astype(np.float32) for p in pred], [(g - 2.95) / 0.8 for g in gaicd_test_mos])
    assert norm == pytest.approx(base, rel=1e-6)
    # a monotone transform of the predictions leaves SRCC and every accuracy unchanged
    mono = gaicd_metrics([np.exp(p) for p in pred], gaicd_test_mos)
    assert {k: v for k, v in mono.items() if k != "pcc"} == pytest.approx(
        {k: v for k, v in base.items() if k != "pcc"}, rel=1e-12)
