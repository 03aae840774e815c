"""Agreement of bf16 with fp32 inference (``precision="bf16"``, :meth:`LearnedCropModel.set_precision`): the same
model scores the same candidates of every image at both precisions; per image the Spearman correlation of the two
score vectors, whether their top-1 candidate is the same, the largest absolute score difference, and the fp32-score
regret of the bf16 pick (fp32 top score − fp32 score of the bf16 top candidate).

Images: the test split of a synthetic GAICD folder (``opencrop data synth --format gaicd``, e.g. the one
``benchmarks/learnability.py`` writes), each image's own object boxes as given cues; candidates as in
``benchmarks/learned_latency.py`` (GAIC grid + 40 windows at 1:1 + 40 at 16:9 of the analysis image). **Synthetic
inputs, not benchmark results.**

    PYTHONPATH=src python benchmarks/precision_agreement.py --model s2cnet \\
        --weights runs/learnability/s2cnet-v2/best.pt --data runs/learnability/data160 --threads 1

Without ``--weights`` the model has random weights (``--config`` JSON for its architecture); the output says so.
``--backbone-bf16`` (an experiment, not a model option) runs the bf16 model's ``prepare`` (backbone + fusion)
under ``torch.autocast("cpu", torch.bfloat16)`` too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
from pathlib import Path

import numpy as np


def agreement(s32: np.ndarray, s16: np.ndarray) -> dict[str, float]:
    """Per-image agreement of two score vectors over the same candidates (module docstring)."""
    from scipy.stats import spearmanr

    rho = float(spearmanr(s32, s16)[0]) if np.ptp(s32) > 0 and np.ptp(s16) > 0 else float("nan")
    i32, i16 = int(np.argmax(s32)), int(np.argmax(s16))
    return {"spearman": rho, "top1": float(i32 == i16), "max_abs": float(np.abs(s32 - s16).max()),
            "regret": float(s32[i32] - s32[i16]), "spread": float(np.ptp(s32))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["s2cnet", "gaic"], default="s2cnet")
    ap.add_argument("--weights", type=Path, default=None, help="an opencrop model file / checkpoint (default: random)")
    ap.add_argument("--config", type=json.loads, default={}, metavar="JSON", help="architecture (random weights)")
    ap.add_argument("--data", type=Path, default=Path("runs/learnability/data160"), help="synthetic GAICD folder")
    ap.add_argument("--images", type=int, default=40, help="at most this many test images (≥ 20)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backbone-bf16", action="store_true", help="the bf16 model's prepare under autocast too")
    ap.add_argument("--md", type=Path, default=None, help="append the result to this Markdown file")
    args = ap.parse_args(argv)
    if args.images < 20:
        ap.error("--images must be >= 20")

    import torch

    from opencrop.candidates import gaic_grid, ratio_windows
    from opencrop.cues.types import Cues
    from opencrop.data import load_gaicd
    from opencrop.models import create_model
    from opencrop.train.datasets import read_image

    torch.set_num_threads(args.threads)
    models = {}
    for prec in ("fp32", "bf16"):
        torch.manual_seed(0)  # random weights: the same ones at both precisions
        kw = {} if args.weights is not None else args.config
        models[prec] = create_model(args.model, weights=args.weights, precision=prec, **kw).eval()
    records = load_gaicd(args.data, split="test")[: args.images]
    if len(records) < 20:
        raise SystemExit(f"{args.data}: {len(records)} test images, need >= 20")
    rows = []
    for r in records:
        img = read_image(r.image_path)
        h, w = img.shape[:2]
        cues = None
        if "object_boxes" in models["fp32"].needs:
            ob = r.object_boxes if r.object_boxes is not None else np.zeros((0, 4))
            cues = Cues(w, h, object_boxes=ob)
        boxes = np.concatenate([gaic_grid(w, h), ratio_windows(w, h, "1:1", max_count=40),
                                ratio_windows(w, h, "16:9", max_count=40)])
        s = {}
        for p, m in models.items():
            low = args.backbone_bf16 and p == "bf16"
            with torch.autocast("cpu", dtype=torch.bfloat16) if low else contextlib.nullcontext():
                prepared = m.prepare(img, cues)
            s[p] = np.asarray(m.score(prepared, boxes), np.float64)
        rows.append({**agreement(s["fp32"], s["bf16"]), "n": len(boxes),
                     "objects": 0 if cues is None else len(cues.object_boxes)})
    col = {k: [x[k] for x in rows] for k in rows[0]}
    cfg = models["fp32"].config
    what = (f"trained weights {args.weights}" if args.weights is not None else "**random weights**")
    arch = ", ".join(f"{k}={cfg[k]}" for k in ("bbox_num", "align_size", "head") if k in cfg)
    line = (f"{args.model} ({arch}; {what}; backbone {'bf16' if args.backbone_bf16 else 'fp32'}), {len(rows)} "
            f"synthetic test images of {args.data}, {min(col['n'])}–{max(col['n'])} candidates each, "
            f"{min(col['objects'])}–{max(col['objects'])} object boxes, {args.threads} thread(s): bf16 vs fp32 "
            f"Spearman per image median {statistics.median(col['spearman']):.4f}, min {min(col['spearman']):.4f}; "
            f"top-1 the same in {sum(col['top1']):.0f} / {len(rows)} images; largest |Δscore| "
            f"{max(col['max_abs']):.2e} (median per image {statistics.median(col['max_abs']):.2e}; fp32 score spread "
            f"per image median {statistics.median(col['spread']):.3f}); fp32 regret of the bf16 pick max "
            f"{max(col['regret']):.2e}")
    print(line)
    if args.md is not None:
        from learnability import machine  # same folder

        date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.md, "a") as fh:
            fh.write(f"### bf16 agreement ({date})\n\nMachine: {machine()}.\n\n{line}. Synthetic inputs, not benchmark "
                     "results.\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
