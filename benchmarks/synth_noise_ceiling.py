"""The ceiling of best-crop hit@k on synthetic GAICD: rank the 90 grid crops by their **noise-free** composition
quality (:func:`opencrop.data.synth.composition_quality`, before the MOS noise of ``quality_to_mos``) and count the
images whose noisy best crop (the annotation's maximum MOS) is within IoU 0.85 of one of the top k.

The scenes are rebuilt by replaying :func:`opencrop.data.synth.write_gaicd`'s random stream with the same ``--n``
and ``--seed``; every replayed MOS row must equal the annotation file of ``--data`` (so a changed generator cannot
give a silently wrong ceiling).

    PYTHONPATH=src python benchmarks/synth_noise_ceiling.py --data runs/learnability/data400 --n 400 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def replay(n: int, seed: int) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]:
    """``[(split, name, boxes [90, 4] xyxy, noise-free quality [90], MOS [90])]`` in ``write_gaicd``'s order;
    aspect-invalid crops get quality −inf and MOS −2 as in the files."""
    from opencrop.data.synth import (
        _size,
        _split_names,
        composition_quality,
        gaicd_raw_grid,
        quality_to_mos,
        render_scene,
    )

    rng = np.random.default_rng(seed)
    out = []
    for i, split in enumerate(_split_names(n)):
        w, h = _size(None, rng)
        scene = render_scene(rng, w, h)
        boxes, valid = gaicd_raw_grid(w, h)
        q = composition_quality(scene, boxes)
        mos = quality_to_mos(q, rng)
        out.append((split, f"{300000 + i}", boxes, np.where(valid, q, -np.inf), np.where(valid, mos, -2.0)))
    return out


def hit(boxes: np.ndarray, rank: np.ndarray, mos: np.ndarray, k: int, iou: float = 0.85) -> bool:
    """Whether the best-MOS crop has IoU ≥ ``iou`` with one of the ``k`` crops ranked highest by ``rank``."""
    from opencrop.boxes import box_iou

    top = boxes[np.argsort(-rank, kind="stable")[:k]]
    return bool((box_iou(boxes[int(np.argmax(mos))][None], top) >= iou).any())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the synthetic GAICD directory written with --n/--seed")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--k", type=int, nargs="*", default=[1, 5, 10])
    args = ap.parse_args(argv)
    rows = replay(args.n, args.seed)
    for split, name, _, _, mos in rows:
        ann = np.loadtxt(args.data / "annotations" / split / f"{name}.txt", ndmin=2)[:, 4]
        if ann.shape != mos.shape or not np.allclose(ann, mos, atol=1e-6):
            raise SystemExit(f"{args.data}: {split}/{name}.txt differs from the replay of --n {args.n} --seed "
                             f"{args.seed}: not that data set, or the generator changed")
    print(f"{args.data} (n {args.n}, seed {args.seed}; replay matches every annotation file)")
    print("| split | images | " + " | ".join(f"hit@{k} (0.85)" for k in args.k) + " |")
    print("|---|---:|" + "---:|" * len(args.k))
    for split in ("train", "test", "all"):
        sel = [r for r in rows if split in ("all", r[0])]
        cells = [100 * np.mean([hit(b, q, m, k) for _, _, b, q, m in sel]) for k in args.k]
        print(f"| {split} | {len(sel)} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
