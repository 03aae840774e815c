"""Latency of GAIC-MobileNetV2 end to end on CPU: decode + shrink a ~1.5 MP JPEG, ``prepare`` (one backbone pass),
``score`` every candidate (GAIC grid ≥ 90 crops of a square analysis image, plus any-ratio windows).

    PYTHONPATH=src python benchmarks/learned_latency.py --threads 2 [--weights gaic.pt] \
        [--md docs/benchmarks-learned.md]
    PYTHONPATH=src python benchmarks/learned_latency.py --threads 1 --models gaic setcrop-cpu setcrop --setcrop-runs 5

SetCrop (a set predictor) is timed beside it: decode, ``prepare`` (the whole network) and ``propose`` for three
ratios, with random weights (the time does not depend on them).

Target: prepare + score ≤ 60 ms on 2 cores. Medians over ``--runs`` after ``--warmup`` runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import time
from pathlib import Path

import numpy as np


def test_jpeg(width: int = 1500, height: int = 1000) -> bytes:
    """A ~1.5 MP photo-like JPEG (scikit-image's astronaut, resized) or, without scikit-image, a textured scene."""
    from PIL import Image

    try:
        from skimage import data

        img = Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC)
    except ImportError:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((width, height), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def decode_shrunk(jpeg: bytes, short_side: int = 256) -> np.ndarray:
    """Decode with JPEG DCT scaling (``draft``) to the smallest size whose short side is ≥ ``short_side``, then
    resize so the short side is ``short_side`` exactly (the analysis image)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        w, h = im.size
        s = short_side / min(w, h)
        im.draft("RGB", (max(1, int(w * s)), max(1, int(h * s))))
        im = im.convert("RGB")
        w2, h2 = im.size
        s2 = short_side / min(w2, h2)
        if s2 < 1:
            im = im.resize((round(w2 * s2), round(h2 * s2)), Image.BILINEAR)
        return np.asarray(im)


#: SetCrop configurations timed beside GAIC: the published one (ResNet-50-DC5, short side 600, 6 + 6 layers, d 256,
#: 90 queries) and the CPU-sized one of ``benchmarks/learnability.py``
SETCROP_CONFIGS: dict[str, dict] = {
    "setcrop": {"backbone": "resnet50"},
    "setcrop-cpu": {"backbone": "mobilenet_v2", "hidden_dim": 128, "nheads": 4, "enc_layers": 2, "dec_layers": 3,
                    "dim_feedforward": 512, "num_queries": 90, "input_size": 224, "max_input_size": 448},
}


def time_setcrop(label: str, jpeg: bytes, runs: int, warmup: int) -> str:
    """SetCrop end to end: decode + shrink to its input short side, ``prepare`` (backbone + transformer + heads,
    the whole network), then ``propose`` for 1:1, 16:9 and any ratio (query boxes, ratio adjustment)."""
    from opencrop.models import create_model
    from opencrop.models.base import Request

    kw = SETCROP_CONFIGS[label]
    model = create_model("setcrop", **kw).eval()
    dec, prep, prop, tot = [], [], [], []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        img = decode_shrunk(jpeg, model.preprocess.size)
        t1 = time.perf_counter()
        p = model.prepare(img)
        t2 = time.perf_counter()
        for r in (1.0, 16 / 9, None):
            b, _ = model.propose(p, Request(ratio=r, top_k=5))
            assert len(b) == model.config["num_queries"]
        t3 = time.perf_counter()
        if i >= warmup:
            dec.append(1000 * (t1 - t0))
            prep.append(1000 * (t2 - t1))
            prop.append(1000 * (t3 - t2))
            tot.append(1000 * (t3 - t1))
    med = [statistics.median(v) for v in (dec, prep, prop, tot)]
    cfg = ", ".join(f"{k}={v}" for k, v in model.config.items() if k in (
        "backbone", "hidden_dim", "enc_layers", "dec_layers", "num_queries", "input_size", "max_input_size"))
    return (f"SetCrop ({label}: {cfg}), 1500×1000 JPEG → analysis {img.shape[1]}×{img.shape[0]} → input "
            f"{p.input_size[0]}×{p.input_size[1]}: decode+shrink {med[0]:.1f} ms, prepare {med[1]:.1f} ms, "
            f"propose ×3 ratios {med[2]:.1f} ms, **prepare+propose {med[3]:.1f} ms** (median of {runs}; fastest "
            f"{min(tot):.1f} ms)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", type=Path, default=None, help="an opencrop GAIC model file (default: random init)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=["gaic"], choices=["gaic", *SETCROP_CONFIGS],
                    help="gaic and/or SetCrop (published size: setcrop; CPU-sized: setcrop-cpu)")
    ap.add_argument("--setcrop-runs", type=int, default=None, help="runs for SetCrop (default: --runs)")
    ap.add_argument("--md", type=Path, default=None, help="append the result to this Markdown file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    jpeg = test_jpeg()
    lines = [time_gaic(jpeg, args) if name == "gaic" else
             time_setcrop(name, jpeg, args.setcrop_runs or args.runs, min(args.warmup, args.setcrop_runs or args.runs))
             for name in args.models]
    for line in lines:
        print(line)
    if args.md is not None:
        date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        from learnability import machine  # same folder

        with open(args.md, "a") as fh:
            body = "\n\n".join(f"{line}." for line in lines)
            fh.write(f"### Latency ({date})\n\nMachine: {machine()}; {args.threads} torch thread(s).\n\n{body}\n\n")
    return 0


def time_gaic(jpeg: bytes, args: argparse.Namespace) -> str:
    """GAIC-MobileNetV2: decode + shrink, ``prepare`` (one backbone pass), ``score`` every candidate."""
    from opencrop.candidates import gaic_grid, ratio_windows
    from opencrop.models import create_model

    model = (create_model("gaic", weights=args.weights) if args.weights else create_model("gaic")).eval()
    dec, prep, sc, tot = [], [], [], []
    n_boxes = 0
    for i in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        img = decode_shrunk(jpeg)
        h, w = img.shape[:2]
        boxes = np.concatenate([gaic_grid(w, h), ratio_windows(w, h, "1:1", max_count=40),
                                ratio_windows(w, h, "16:9", max_count=40)])
        t1 = time.perf_counter()
        p = model.prepare(img)
        t2 = time.perf_counter()
        s = model.score(p, boxes)
        t3 = time.perf_counter()
        assert s.shape == (len(boxes),)
        if i >= args.warmup:
            dec.append(1000 * (t1 - t0))
            prep.append(1000 * (t2 - t1))
            sc.append(1000 * (t3 - t2))
            tot.append(1000 * (t3 - t1))
        n_boxes = len(boxes)
    med = {k: statistics.median(v) for k, v in (("decode", dec), ("prepare", prep), ("score", sc), ("total", tot))}
    return (f"GAIC-MobileNetV2, {args.threads} threads, 1500×1000 JPEG → analysis {w}×{h} → input "
            f"{p.input_size[0]}×{p.input_size[1]}, {n_boxes} candidates: decode+shrink {med['decode']:.1f} ms, "
            f"prepare {med['prepare']:.1f} ms, score {med['score']:.1f} ms, **prepare+score {med['total']:.1f} ms** "
            f"(median of {args.runs}; fastest {min(tot):.1f} ms; target ≤ 60 ms)")


if __name__ == "__main__":
    raise SystemExit(main())
