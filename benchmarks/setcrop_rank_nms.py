"""SetCrop's own metrics (best-crop hit@k, AP) of a trained model file with and without ``rank_nms`` (greedy NMS among
the queries at inference, opencrop's option): choose the IoU on a *development* set, then report the test split once.

    PYTHONPATH=src python benchmarks/setcrop_rank_nms.py runs/diag/F2/setcrop/best.pt \
        --data runs/learnability/dev120 --split all --nms none 0.9 0.8 0.7
    PYTHONPATH=src python benchmarks/setcrop_rank_nms.py runs/diag/F2/setcrop/best.pt \
        --data runs/learnability/data400 --split test --nms none 0.8

Prints one JSON line per setting: ``hit5@0.85``, ``hit10@0.85``, ``hit5@0.90``, ``ap10@0.85`` (%), ``n`` images.
Synthetic data gives synthetic numbers, not benchmark results.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--data", required=True, help="synthetic GAICD directory")
    ap.add_argument("--split", default="test", help="'train', 'test' or 'all' (both: a dev set)")
    ap.add_argument("--nms", nargs="+", default=["none", "0.8"], help="rank_nms values ('none' = the paper)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from opencrop.data import load_gaicd
    from opencrop.eval.runner import evaluate
    from opencrop.models import create_model

    splits = ["train", "test"] if args.split == "all" else [args.split]
    recs = [r for s in splits for r in load_gaicd(args.data, split=s)]
    for v in args.nms:
        nms = None if v == "none" else float(v)
        model = create_model("setcrop", weights=args.weights, rank_nms=nms)
        m = evaluate(model, recs, cues=False).metrics
        keys = ("hit5@0.85", "hit10@0.85", "hit5@0.90", "ap10@0.85")
        print(json.dumps({"rank_nms": nms, **{k: round(float(m[k]), 1) for k in keys}, "n": len(recs)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
