"""Coverage of SetCrop's k-means anchor priors (``anchor_init: kmeans``) before any training: the share of
evaluation images whose single best crop has IoU ≥ 0.85 (and 0.90) with at least one prior, i.e. the ceiling of
hit@k if the box head never moved the priors, for k = 30 and 90 anchors.

The priors come from the training split of ``data`` as the trainer computes them (the learnability script's
10 % hold-out removed, :meth:`opencrop.models.setcrop.SetCrop.init_from_data`'s rule); the coverage is measured on
``--eval`` (default: every image of the separate synthetic dev set, never used for the priors):

    PYTHONPATH=src python benchmarks/setcrop_anchor_coverage.py runs/learnability/data400 \
        --eval runs/learnability/dev120

Prints one JSON line (percent).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="synthetic GAICD set whose train split gives the priors")
    ap.add_argument("--eval", default="runs/learnability/dev120", help="GAICD set scored (all its splits)")
    ap.add_argument("--holdout", type=float, default=0.1, help="hold-out fraction removed from train (0.1)")
    args = ap.parse_args(argv)
    from opencrop.boxes import box_iou, kmeans_boxes
    from opencrop.data import load_gaicd
    from opencrop.io import probe_image
    from opencrop.models.setcrop import good_crops_normalised
    from opencrop.train.trainer import holdout_split

    train, _ = holdout_split(load_gaicd(args.data, split="train"), args.holdout, 0)
    good = good_crops_normalised(train)
    evals = load_gaicd(args.eval, split="train") + load_gaicd(args.eval, split="test")
    best = []
    for r in evals:
        f = probe_image(r.image_path)
        b = f.from_stored(np.asarray(r.crops, float)[int(np.argmax(r.scores))][None])
        best.append(b / np.array([f.width, f.height, f.width, f.height]))
    best_b = np.concatenate(best)
    out: dict[str, float | int] = {"train_images": len(train), "good_crops": len(good), "n_eval": len(evals)}
    for k in (30, 90):
        iou = box_iou(best_b, kmeans_boxes(good, k, seed=0)).max(axis=1)
        out[f"k{k}_cover@0.85"] = round(100 * float(np.mean(iou >= 0.85)), 1)
        out[f"k{k}_cover@0.90"] = round(100 * float(np.mean(iou >= 0.90)), 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
