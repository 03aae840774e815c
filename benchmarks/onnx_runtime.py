"""Crop latency of a learned model on torch vs its ONNX export on onnxruntime (``opencrop export``).

Each learned model (GAIC default config; with ``--all`` also HCIC and GAFIC with the MobileNetV2 backbone, S2CNet
v1, the CPU-sized SetCrop of ``benchmarks/learnability.py`` and GenCrop with MobileNetV2) is built with random
weights (speed does not depend on the values), exported once, and both ``Cropper``s crop the bundled photo
(``examples/astronaut.jpg``, 512², cues off, 16:9 then 16:9 + 1:1 + 4:5); each figure is the median of ``--runs``
calls after a warm-up. A scorer's ONNX graph takes the image with the boxes, so it runs the backbone per scoring
call (2 per ratio) where torch runs it once per image; SetCrop's and GenCrop's graphs run once per image (GenCrop
proposes without re-scoring; SetCrop scores its refinement in numpy).

    python benchmarks/onnx_runtime.py [--runs 15] [--all | --models M ...] [--threads N] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"gaic": {}, "hcic": {"backbone": "mobilenet_v2"}, "gafic": {"backbone": "mobilenet_v2"}, "s2cnet": {},
           "setcrop": None, "gencrop": {"backbone": "mobilenet_v2"}}  # setcrop: learnability.MODEL_KWARGS
RATIOS = {"16:9": ["16:9"], "16:9 + 1:1 + 4:5": ["16:9", "1:1", "4:5"]}


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--all", action="store_true", help="also HCIC, GAFIC, S2CNet, SetCrop, GenCrop (slow exports)")
    ap.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=None, help="these models only")
    ap.add_argument("--threads", type=int, default=None, help="torch and onnxruntime intra-op threads")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from latency import _write_section, machine
    from learnability import MODEL_KWARGS

    from opencrop import Cropper
    from opencrop.models import create_model
    from opencrop.models.export import export_onnx

    photo = REPO / "examples" / "astronaut.jpg"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models or (CONFIGS if args.all else ["gaic"]):
            torch.manual_seed(0)
            cfg = CONFIGS[name] if CONFIGS[name] is not None else MODEL_KWARGS[name]
            model = create_model(name, **{k: v for k, v in cfg.items() if k != "pretrained_backbone"}).eval()
            path = export_onnx(model, Path(tmp) / f"{name}.onnx")
            crop_t = Cropper(model, cues=False, random_weights=True)
            crop_o = Cropper(name, weights=str(path), cues=False, random_weights=True)
            if args.threads:
                crop_o.model.session = _session(path, args.threads)
            for label, ratios in RATIOS.items():
                t = _median_ms(lambda c=crop_t, r=ratios: c.crop(photo, r), args.runs)
                o = _median_ms(lambda c=crop_o, r=ratios: c.crop(photo, r), args.runs)
                rows.append((name, label, t, o))
                print(f"{name} {label}: torch {t:.0f} ms, onnxruntime {o:.0f} ms", file=sys.stderr)
    lines = ["## Learned models: torch vs ONNX export on onnxruntime", "",
             f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}, load average "
             f"{os.getloadavg()[0]:.1f} at the end ({'one thread' if args.threads == 1 else 'default threads'}).",
             f"Command: `python benchmarks/onnx_runtime.py{' --all' if args.all else ''}"
             f"{' --models ' + ' '.join(args.models) if args.models else ''}"
             f"{f' --threads {args.threads}' if args.threads else ''}`; random weights, bundled "
             f"512² photo, cues off, median of {args.runs} `Cropper.crop` calls (decode, preprocessing, scoring, "
             "rules, refinement). For the scorers onnxruntime runs the backbone per scoring call (2 per ratio), "
             "torch once per image; SetCrop's and GenCrop's graphs run once per image.", "",
             "| model | ratios | torch, ms | onnxruntime, ms |", "|---|---|---:|---:|"]
    lines += [f"| {n} | {lab} | {t:.0f} | {o:.0f} |" for n, lab, t, o in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    _write_section(args.out, "onnx_runtime", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
