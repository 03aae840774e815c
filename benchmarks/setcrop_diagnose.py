"""Diagnose a trained SetCrop model file on a synthetic *development* set (never the test split that is reported).

Write the development set once with another seed than the learnability data, then pass a ``best.pt`` and the
architecture kwargs it was built with (``MODEL_KWARGS["setcrop"]`` of ``benchmarks/learnability.py`` + overrides):

    PYTHONPATH=src python -m opencrop data synth --format gaicd --out runs/learnability/dev120 --n 120 --seed 1
    PYTHONPATH=src python benchmarks/setcrop_diagnose.py runs/x/setcrop/best.pt '{"backbone": "mobilenet_v2", ...}'

Prints one JSON line (percent where marked): ``hit5`` / ``hit10`` (best crop in the top 5 / 10 queries by validity,
IoU 0.85, %), ``anyQ`` (any of the queries hits it: the ceiling of every ranking, %), ``top1v`` / ``top5v`` (mean
1st and 5th highest validity), ``v_best_q`` / ``rank_best_q`` (validity and 0-based rank of the query closest to
the best crop), ``dup5`` (mean pairwise IoU of the top 5: near duplicates?), ``nms90`` / ``nms80`` / ``nms70``
(hit@5 after greedy NMS at that IoU, %: would duplicate suppression help?) and ``ap10@0.85``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("kwargs", nargs="?", type=json.loads, default={})
    ap.add_argument("--data", default="runs/learnability/dev120", help="synthetic GAICD dev set (all splits used)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from opencrop.api import Cropper
    from opencrop.boxes import box_iou, nms
    from opencrop.data import load_gaicd
    from opencrop.eval.metrics import set_prediction_metrics
    from opencrop.eval.runner import read_frame
    from opencrop.models import create_model

    kw = {k: (False if k == "pretrained_backbone" else v) for k, v in args.kwargs.items()}
    model = create_model("setcrop", weights=args.weights, **kw)
    recs = load_gaicd(args.data, split="train") + load_gaicd(args.data, split="test")
    cropper = Cropper(model, cues=False, random_weights=True)
    pct = ("hit5", "hit10", "anyQ", "nms90", "nms80", "nms70")
    stats: dict[str, list[float]] = {k: [] for k in (*pct[:3], "top1v", "top5v", "v_best_q", "rank_best_q", "dup5",
                                                     *pct[3:])}
    boxes, scores, crops_all, mos_all = [], [], [], []
    for r in recs:
        frame = read_frame(r, cropper.analysis_size)
        qb, val = model.query_boxes(cropper.analyze(frame).prepared)
        qb = frame.to_original(qb)
        crops = frame.from_stored(r.crops)
        iou = box_iou(crops[int(np.argmax(r.scores))][None], qb)[0]
        hit = iou >= 0.85
        order = np.argsort(-val, kind="stable")
        stats["hit5"].append(hit[order[:5]].any())
        stats["hit10"].append(hit[order[:10]].any())
        stats["anyQ"].append(hit.any())
        stats["top1v"].append(val[order[0]])
        stats["top5v"].append(val[order[4]])
        q = int(np.argmax(iou))
        stats["v_best_q"].append(val[q])
        stats["rank_best_q"].append(int(np.where(order == q)[0][0]))
        top = qb[order[:5]]
        stats["dup5"].append(box_iou(top, top)[np.triu_indices(5, 1)].mean())
        for t in (90, 80, 70):
            keep = np.asarray(nms(torch.as_tensor(qb), torch.as_tensor(val), t / 100))[:5]
            stats[f"nms{t}"].append(hit[keep].any())
        boxes.append(qb)
        scores.append(val)
        crops_all.append(crops)
        mos_all.append(r.scores)
    out = {k: round(float(np.mean(v)) * (100 if k in pct else 1), 3) for k, v in stats.items()}
    out["ap10@0.85"] = round(set_prediction_metrics(boxes, scores, crops_all, mos_all)["ap10@0.85"], 1)
    out["n"] = len(recs)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
