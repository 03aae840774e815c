"""Constant top-k baselines for SetCrop's best-crop hit@k: the same k crops (relative to the image) for every image.

The k boxes come from the **training split's** best crops only (by default the trainer's split: ``data.val_split:
holdout``, 10 % hold-out, seed 0, so the 270 images SetCrop trains on), normalised by each image's size:

* ``cover``: greedy cover — repeatedly the training best crop that lies within IoU ``--iou`` of the most training
  best crops not yet covered (ties: the first in name order);
* ``frequent``: the k most frequent training best crops (boxes equal after snapping to ``1 / --quant`` of the
  side, 24 = half a GAICD grid bin, so the pixel truncation of the released grid does not split a crop).

Each constant list is then scored with :func:`opencrop.eval.metrics.set_prediction_metrics` (the metric of the
SetCrop tables; IoU is unchanged by scaling the axes, so normalised boxes scaled to each image are exact):

    PYTHONPATH=src python benchmarks/setcrop_constant.py --train runs/learnability/data400 \
        --eval runs/learnability/data400:test runs/learnability/dev120:all

Prints one JSON line per (set, method): ``hit5@0.85``, ``hit10@0.85``, ``hit5@0.90`` (%), ``n`` images and the
boxes. Synthetic data gives synthetic numbers, not benchmark results.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def normalised_best(records: Sequence[Any]) -> np.ndarray:
    """``[N, 4]`` best crop (first of maximum MOS, as the metric) of every record, xyxy / (w, h, w, h)."""
    out = []
    for r in records:
        if not r.width or not r.height:
            raise ValueError(f"{r.name}: image size unknown")
        best = np.asarray(r.crops, dtype=np.float64)[int(np.argmax(r.scores))]
        out.append(best / np.array([r.width, r.height, r.width, r.height], dtype=np.float64))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[A, B]`` IoU of xyxy boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def greedy_cover(best: np.ndarray, k: int, iou: float = 0.85) -> np.ndarray:
    """``[≤k, 4]``: greedily the training best crop covering (IoU ≥ ``iou``) the most not yet covered best crops."""
    hits = _iou(best, best) >= iou  # [candidate, image]
    covered = np.zeros(len(best), dtype=bool)
    picks: list[int] = []
    for _ in range(min(k, len(best))):
        gain = (hits & ~covered[None, :]).sum(1)
        gain[picks] = -1
        c = int(np.argmax(gain))
        if gain[c] <= 0:
            break
        picks.append(c)
        covered |= hits[c]
    return best[picks]


def most_frequent(best: np.ndarray, k: int, quant: int = 24) -> np.ndarray:
    """``[≤k, 4]``: the ``k`` most frequent best crops after snapping to ``1 / quant`` (ties: first seen)."""
    keys = [tuple(v) for v in np.round(best * quant).astype(int).tolist()]
    counts = Counter(keys)
    first = {key: i for i, key in reversed(list(enumerate(keys)))}
    ranked = sorted(counts, key=lambda key: (-counts[key], first[key]))[:k]
    return np.asarray(ranked, dtype=np.float64).reshape(-1, 4) / quant


def constant_metrics(boxes: np.ndarray, records: Sequence[Any]) -> dict[str, float]:
    """SetCrop's metrics of predicting ``boxes`` (normalised, best first) on every record."""
    from opencrop.eval.metrics import set_prediction_metrics

    preds, scores = [], []
    for r in records:
        preds.append(boxes * np.array([r.width, r.height, r.width, r.height], dtype=np.float64))
        scores.append(np.arange(len(boxes), 0, -1, dtype=np.float64))
    return set_prediction_metrics(preds, scores, [r.crops for r in records], [r.scores for r in records])


def _load(spec: str) -> list[Any]:
    from opencrop.data import load_gaicd

    root, _, split = spec.partition(":")
    splits = ["train", "test"] if split == "all" else [split or "test"]
    return [r for s in splits for r in load_gaicd(root, split=s)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="synthetic GAICD directory whose train split gives the boxes")
    ap.add_argument("--holdout", type=float, default=0.1,
                    help="leave out the trainer's seeded hold-out (fraction; 0 = the whole train split)")
    ap.add_argument("--eval", nargs="+", required=True, metavar="DIR[:SPLIT]", help="split: train, test or all")
    ap.add_argument("--k", type=int, default=10, help="constant boxes (hit@5 uses the first 5)")
    ap.add_argument("--iou", type=float, default=0.85, help="greedy cover IoU")
    ap.add_argument("--quant", type=int, default=24, help="snapping of 'frequent'")
    args = ap.parse_args(argv)
    from opencrop.data import load_gaicd
    from opencrop.train.trainer import holdout_split

    train = load_gaicd(args.train, split="train")
    if args.holdout > 0:
        train, _ = holdout_split(train, args.holdout, 0)
    best = normalised_best(train)
    methods = {"cover": greedy_cover(best, args.k, args.iou), "frequent": most_frequent(best, args.k, args.quant)}
    for spec in args.eval:
        recs = _load(spec)
        for name, boxes in methods.items():
            m = constant_metrics(boxes, recs)
            keys = ("hit5@0.85", "hit10@0.85", "hit5@0.90")
            print(json.dumps({"set": spec, "method": name, **{k: round(float(m[k]), 1) for k in keys},
                              "n": len(recs), "n_train": len(train),
                              "boxes5": np.round(boxes[:5], 3).tolist()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
