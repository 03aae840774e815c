"""Paired seeds of an ablation run by ``benchmarks/learnability.py``: per-seed Markdown rows and the paired
statistics of the test SRCC gap (with minus without), as in docs/benchmarks-learned.md (S2CNet run S5).

    python benchmarks/paired_seeds.py --budget 600 \\
        --pair 0 runs/learnability/s5-s2cnet runs/learnability/s5-s2cnet-noobj \\
        --pair 1 runs/learnability/s5b-s2cnet runs/learnability/s5b-s2cnet-noobj ...

Each run folder holds ``results.json`` (one model) and ``<model>/log.csv``. "CPU s to best" is the sum of the
training epochs' CPU seconds (``epoch_s``) up to the selected epoch; a selected epoch past ``--budget`` is marked
"over budget". Tests: paired t-test and Wilcoxon signed-rank test (``scipy.stats``, two-sided).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path


def load(run: Path) -> dict:
    """``results.json`` of a one-model run folder (its rule-based ``composition`` row aside) plus
    ``cpu_to_best`` (CPU s of training epochs to the selected epoch).
    A missing or multi-model file is an error naming the folder."""
    path = run / "results.json"
    if not path.is_file():
        raise SystemExit(f"paired_seeds: {path} does not exist (run not finished?)")
    rows = [r for r in json.loads(path.read_text()) if r["model"] != "composition"]  # the rule-based baseline row
    if len(rows) != 1:
        raise SystemExit(f"paired_seeds: {path} holds {len(rows)} learned models, expected one")
    r = rows[0]
    log = run / r["model"] / "log.csv"
    with open(log) as fh:
        epochs = list(csv.DictReader(fh))
    r["cpu_to_best"] = sum(float(e["epoch_s"]) for e in epochs if int(e["epoch"]) <= int(r["best_epoch"]))
    return r


def row(seed: str, label: str, r: dict, test: dict, full: bool, budget: float) -> str:
    cells = [seed, label]
    if full:
        over = " (over budget)" if r["cpu_to_best"] > budget else ""
        cells += [f"{r['train_s']:.0f}", f"{r['train_cpu_s']:.0f}", str(r["epochs"]), str(r["best_epoch"]),
                  f"{r['cpu_to_best']:.0f}{over}", f"{r['val_srcc']:.3f}", f"**{test['srcc']:.3f}**"]
    else:
        cells += ["", "", "", "", "", "", f"{test['srcc']:.3f}"]
    cells += [f"{test['pcc']:.3f}", f"{test['acc5']:.1f}", f"{test['acc10']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", nargs=3, action="append", metavar=("SEED", "WITH", "WITHOUT"), required=True,
                    help="a seed and its two run folders (the model with objects, then without)")
    ap.add_argument("--budget", type=float, default=600.0, help="CPU s budget of training epochs")
    args = ap.parse_args(argv)
    from scipy import stats

    gaps, withs, withouts = [], [], []
    for seed, w, wo in args.pair:
        a, b = load(Path(w)), load(Path(wo))
        print(row(seed, a["model"], a, a["test"], True, args.budget))
        if "test_without_objects" in a:
            print(row(seed, f"{a['model']} (test boxes withheld)", a, a["test_without_objects"], False, args.budget))
        print(row(seed, b["model"], b, b["test"], True, args.budget))
        withs.append(a["test"]["srcc"])
        withouts.append(b["test"]["srcc"])
        gaps.append(withs[-1] - withouts[-1])
    n = len(gaps)
    print(f"\n{n} seeds; gaps (with − without): " + ", ".join(f"{g:+.3f}" for g in gaps))
    print(f"means {statistics.mean(withs):.3f} vs {statistics.mean(withouts):.3f}; paired mean gap "
          f"{statistics.mean(gaps):.3f}, sd {statistics.stdev(gaps):.3f}" if n > 1 else "one seed: no statistics")
    if n > 1:
        t = stats.ttest_rel(withs, withouts)
        wx = stats.wilcoxon(withs, withouts)
        print(f"paired t-test: t = {t.statistic:.2f}, df {n - 1}, p = {t.pvalue:.3f} (two-sided); Wilcoxon "
              f"signed-rank: W = {wx.statistic:.1f}, p = {wx.pvalue:.3f} (two-sided, exact for n = {n} without ties)")
        print(f"with objects ahead in {sum(g > 0 for g in gaps)} of {n} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
