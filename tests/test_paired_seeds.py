"""``benchmarks/paired_seeds.py``: per-seed rows, the over-budget mark and the paired tests, on hand-made run
folders (the format ``benchmarks/learnability.py`` writes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_seeds.py"


def _module():
    spec = importlib.util.spec_from_file_location("paired_seeds", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(root: Path, name: str, model: str, srcc: float, epoch_s: list[float], best: int,
         withheld: float | None = None) -> Path:
    run = root / name
    (run / model).mkdir(parents=True)
    test = {"srcc": srcc, "pcc": srcc + 0.01, "acc5": 20.0, "acc10": 30.0}
    row = {"model": model, "train_s": 900.0, "train_cpu_s": sum(epoch_s) + 20, "epochs": len(epoch_s),
           "best_epoch": best, "val_srcc": 0.5, "test": test}
    if withheld is not None:
        row["test_without_objects"] = {**test, "srcc": withheld}
    comp = {"model": "composition", "test": {"srcc": 0.1}}  # the rule-based row is ignored
    (run / "results.json").write_text(json.dumps([row, comp]))
    lines = ["epoch,epoch_s"] + [f"{i + 1},{s}" for i, s in enumerate(epoch_s)]
    (run / model / "log.csv").write_text("\n".join(lines) + "\n")
    return run


def test_rows_budget_mark_and_paired_tests(tmp_path, capsys):
    from scipy import stats  # a core dependency: no skip

    withs, withouts, args = [0.70, 0.55, 0.72, 0.60], [0.50, 0.56, 0.52, 0.45], []
    for i, (a, b) in enumerate(zip(withs, withouts, strict=True)):
        wa = _run(tmp_path, f"w{i}", "s2cnet", a, [300.0, 310.0], 2 if i == 0 else 1, withheld=0.3)
        wb = _run(tmp_path, f"n{i}", "s2cnet-noobj", b, [280.0, 290.0], 1)
        args += ["--pair", str(i), str(wa), str(wb)]
    assert _module().main(["--budget", "600", *args]) == 0
    out = capsys.readouterr().out
    assert "| 0 | s2cnet | 900 | 630 | 2 | 2 | 610 (over budget) | 0.500 | **0.700** | 0.710 | 20.0 | 30.0 |" in out
    assert "| 1 | s2cnet | 900 | 630 | 2 | 1 | 300 | 0.500 | **0.550** |" in out
    assert "| 0 | s2cnet (test boxes withheld) |  |  |  |  |  |  | 0.300 |" in out
    t, w = stats.ttest_rel(withs, withouts), stats.wilcoxon(withs, withouts)
    assert f"p = {t.pvalue:.3f}" in out and f"t = {t.statistic:.2f}, df 3" in out
    assert f"W = {w.statistic:.1f}, p = {w.pvalue:.3f}" in out
    assert "gaps (with − without): +0.200, -0.010, +0.200, +0.150" in out
    assert "ahead in 3 of 4 seeds" in out


def test_missing_run_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(SystemExit, match=r"results\.json does not exist"):
        _module().main(["--pair", "0", str(tmp_path / "a"), str(tmp_path / "b")])
