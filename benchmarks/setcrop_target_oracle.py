"""Ceiling of SetCrop's validity targets: hit@5 (IoU 0.85, best crop) if a model ranked the annotated crops
exactly by the training target it is given (no learning error), on a synthetic GAICD split.

    PYTHONPATH=src python benchmarks/setcrop_target_oracle.py runs/learnability/data400 --split test

Rankings (ties broken at random, mean over 50 draws): the good crops (MOS ≥ 4, else the ties at the maximum)
first; the specified targets (good = 1, the others clamp(0.5 · (MOS − 2) / 1.5, 0, 0.5)); ``good_num`` k = 1, 3, 5.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--split", default="test")
    args = ap.parse_args(argv)
    from opencrop.boxes import box_iou
    from opencrop.data import load_gaicd

    rng = np.random.default_rng(0)
    res: dict[str, list[float]] = {}

    def hit(b: np.ndarray, m: np.ndarray, key: np.ndarray) -> float:
        best = b[int(np.argmax(m))][None]
        draws = [np.argsort(-(key + 1e-3 * rng.random(len(m))))[:5] for _ in range(50)]
        return float(np.mean([(box_iou(best, b[o])[0] >= 0.85).any() for o in draws]))

    for r in load_gaicd(args.data, split=args.split):
        b, m = np.asarray(r.crops, float), np.asarray(r.scores, float)
        good = m >= 4
        if not good.any():
            good = m == m.max()
        soft = np.clip(0.5 * (m - 2) / 1.5, 0, 0.5)
        res.setdefault("good crops first", []).append(hit(b, m, good.astype(float)))
        res.setdefault("specified targets", []).append(hit(b, m, np.where(good, 1.0, soft)))
        for k in (1, 3, 5):
            g = np.zeros(len(m), bool)
            g[np.argsort(-m, kind="stable")[:k]] = True
            res.setdefault(f"good_num {k}", []).append(hit(b, m, np.where(g, 1.0, soft)))
        res.setdefault("crops with MOS >= 3.5 (mean count)", []).append(float((m >= 3.5).sum()))
    for k, v in res.items():
        print(f"{k}: {np.mean(v) * (1 if 'count' in k else 100):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
