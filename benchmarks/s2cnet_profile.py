"""Where one S2CNet score call spends its time (the row of ``benchmarks/learned_latency.py --s2cnet`` with the full
``bbox_num`` object boxes: 1500×1000 JPEG → 384×256, 157 candidates; random weights, which do not change the time).

Two views, each the median of ``--runs`` calls after warm-up, in process CPU time:

* the stages of ``S2CNet.forward_scores`` timed alone on the same inputs: node features (RoI ⊕ RoD → Linear), the
  relations, the graph transformer, the v2 head;
* ``torch.profiler`` self time of the whole score call grouped by op kind (the large products: oneDNN's packed
  linear; the other products; LayerNorm; softmax pieces and other element-wise ops; copies / concatenation /
  indexing), as shares of the ops' self time and those shares of the call's CPU time. The profiler times ops by
  the wall clock, so on a loaded machine only the shares are meaningful.

    PYTHONPATH=src python benchmarks/s2cnet_profile.py --config gaicd_v2 --threads 1 [--precision bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np

#: op name → group of the profile (anything else: "other ops")
GROUPS = {
    "mkldnn::_linear_pointwise": "oneDNN packed linear (large products)",
    "aten::mm": "other products", "aten::addmm": "other products", "aten::bmm": "other products",
    "aten::baddbmm": "other products",
    "aten::native_layer_norm": "LayerNorm", "aten::layer_norm": "LayerNorm",
    "aten::exp": "element-wise / reductions", "aten::amax": "element-wise / reductions",
    "aten::sub": "element-wise / reductions", "aten::div": "element-wise / reductions",
    "aten::sum": "element-wise / reductions", "aten::mul": "element-wise / reductions",
    "aten::add": "element-wise / reductions", "aten::clamp_min": "element-wise / reductions",
    "aten::masked_fill_": "element-wise / reductions", "aten::_softmax": "element-wise / reductions",
    "aten::sqrt": "element-wise / reductions", "aten::mean": "element-wise / reductions",
    "aten::native_batch_norm": "element-wise / reductions", "aten::relu": "element-wise / reductions",
    "aten::copy_": "copies / cat / indexing", "aten::cat": "copies / cat / indexing",
    "aten::index": "copies / cat / indexing", "aten::index_select": "copies / cat / indexing",
    "aten::fill_": "copies / cat / indexing", "aten::empty": "allocation", "aten::empty_strided": "allocation",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=["gaicd_v1", "gaicd_v2"], default="gaicd_v2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = ap.parse_args(argv)

    import torch
    from learned_latency import decode_shrunk, object_sets, test_jpeg  # same folder
    from torch.profiler import ProfilerActivity, profile

    from opencrop.candidates import gaic_grid, ratio_windows
    from opencrop.cues.types import Cues
    from opencrop.models import create_model
    from opencrop.models.s2cnet import PUBLISHED_CONFIGS, _per_crop

    torch.set_num_threads(args.threads)
    img = decode_shrunk(test_jpeg())
    h, w = img.shape[:2]
    boxes = np.concatenate([gaic_grid(w, h), ratio_windows(w, h, "1:1", max_count=40),
                            ratio_windows(w, h, "16:9", max_count=40)])
    torch.manual_seed(0)
    m = create_model("s2cnet", precision=args.precision, **PUBLISHED_CONFIGS[args.config]).eval()
    ob = object_sets(img, m.bbox_num)["full"]
    p = m.prepare(img, Cues(w, h, object_boxes=ob))

    def cpu_ms(fn: object, n: int) -> float:
        for _ in range(5):
            fn()
        t = []
        for _ in range(n):
            c = time.process_time()
            fn()
            t.append(time.process_time() - c)
        return 1000 * statistics.median(t)

    total = cpu_ms(lambda: m.score(p, boxes), args.runs)
    # the stages alone, on the score call's own inputs (input pixels, the model's real-first boxes)
    k = len(boxes)
    rois = torch.cat([torch.zeros(k, 1), torch.as_tensor(boxes, dtype=torch.float32)
                      * torch.tensor([p.sx, p.sy, p.sx, p.sy])], 1)
    obj, _ = m._objects(p.extra["object_boxes"], p.extra["object_mask"], 1, rois)
    d = obj.shape[1]
    all_rois = torch.cat([rois, torch.cat([torch.zeros(d, 1), obj[0]], 1)])
    stages: dict[str, float] = {}
    with torch.inference_mode(), m.precision_context("score"):
        emb = m._box_features(p.features, all_rois)
        crop, objs, idx = emb[:k], emb[k:].view(1, d, -1), torch.zeros(k, dtype=torch.long)
        cc, oc = torch.rand(k, 2), torch.rand(1, d, 2)
        a, s = m.relations.forward_shared(crop, objs, cc, oc, idx)
        x = torch.cat([crop[:, None], _per_crop(objs, idx)], dim=1)
        nm = torch.ones(k, 1 + d, dtype=torch.bool)
        stages["node features (RoI ⊕ RoD → Linear → LN)"] = cpu_ms(lambda: m._box_features(p.features, all_rois),
                                                                   args.runs)
        stages["relations"] = cpu_ms(lambda: m.relations.forward_shared(crop, objs, cc, oc, idx), args.runs)
        run_graph = lambda: m.graph(x, a, s, nm, crop_only=m.head_kind == "crop",  # noqa: E731
                                    distinct=(crop, objs, idx))
        stages["graph transformer"] = cpu_ms(run_graph, args.runs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            m.score(p, boxes)
    groups: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        if ev.key.startswith("aten::") or ev.key.startswith("mkldnn::"):
            groups[GROUPS.get(ev.key, "other ops")] += ev.self_cpu_time_total
    seen = sum(groups.values())
    print(f"S2CNet {args.config} ({args.precision}), {d} object boxes, {k} candidates, {args.threads} thread(s): "
          f"score call {total:.1f} ms process CPU (median of {args.runs})")
    for name, v in stages.items():
        print(f"  stage {name}: {v:.2f} ms")
    print(f"  (the rest: head, boxes, centres, masks: ≈ {total - sum(stages.values()):.2f} ms)")
    print("profile of 10 calls, share of the ops' self time (× the call's CPU time):")
    for name, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name}: {100 * v / seen:.1f} % (≈ {total * v / seen:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
