"""Latency of GAIC-MobileNetV2 end to end on CPU: decode + shrink a ~1.5 MP JPEG, ``prepare`` (one backbone pass),
``score`` every candidate (GAIC grid ≥ 90 crops of a square analysis image, plus any-ratio windows).

    PYTHONPATH=src python benchmarks/learned_latency.py --threads 2 [--weights gaic.pt] \
        [--md docs/benchmarks-learned.md]

Target: prepare + score ≤ 60 ms on 2 cores. Medians over ``--runs`` after ``--warmup`` runs.

GenCrop (``--model gencrop [--backbone mobilenet_v2|resnet50]``): decode + shrink, ``prepare`` (letterbox to 256,
the whole network: backbone, transformer, 256 proposals scored, subject gating) and ``propose`` for 1:1 and 16:9
(each fitted to the ratio), with a user subject box:

    PYTHONPATH=src python benchmarks/learned_latency.py --model gencrop --backbone resnet50 --threads 2
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", type=Path, default=None, help="an opencrop GAIC model file (default: random init)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--md", type=Path, default=None, help="append the result to this Markdown file")
    ap.add_argument("--model", choices=["gaic", "gencrop"], default="gaic")
    ap.add_argument("--backbone", default="mobilenet_v2", help="GenCrop backbone (mobilenet_v2 | resnet50)")
    args = ap.parse_args(argv)
    if args.model == "gencrop":
        return gencrop_latency(args)

    import torch

    from opencrop.candidates import gaic_grid, ratio_windows
    from opencrop.models import create_model

    torch.set_num_threads(args.threads)
    model = (create_model("gaic", weights=args.weights) if args.weights else create_model("gaic")).eval()
    jpeg = test_jpeg()
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
    line = (f"GAIC-MobileNetV2, {args.threads} threads, 1500×1000 JPEG → analysis {w}×{h} → input "
            f"{p.input_size[0]}×{p.input_size[1]}, {n_boxes} candidates: decode+shrink {med['decode']:.1f} ms, "
            f"prepare {med['prepare']:.1f} ms, score {med['score']:.1f} ms, **prepare+score {med['total']:.1f} ms** "
            f"(median of {args.runs}; fastest {min(tot):.1f} ms; target ≤ 60 ms)")
    return report(args, "Latency", line)


def gencrop_latency(args: argparse.Namespace) -> int:
    import torch

    from opencrop.cues.types import Cues
    from opencrop.models import create_model
    from opencrop.models.base import Request

    torch.set_num_threads(args.threads)
    model = (create_model("gencrop", weights=args.weights) if args.weights
             else create_model("gencrop", backbone=args.backbone)).eval()
    jpeg = test_jpeg()
    dec, prep, prop, tot = [], [], [], []
    for i in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        img = decode_shrunk(jpeg)
        h, w = img.shape[:2]
        cues = Cues(w, h, subjects=np.array([[0.3 * w, 0.1 * h, 0.6 * w, 0.9 * h]], np.float32))
        t1 = time.perf_counter()
        p = model.prepare(img, cues)
        t2 = time.perf_counter()
        for r in (1.0, 16 / 9):
            boxes, _ = model.propose(p, Request(ratio=r))
            assert boxes.shape == (257, 4)
        t3 = time.perf_counter()
        if i >= args.warmup:
            dec.append(1000 * (t1 - t0))
            prep.append(1000 * (t2 - t1))
            prop.append(1000 * (t3 - t2))
            tot.append(1000 * (t3 - t1))
    med = {k: statistics.median(v) for k, v in (("decode", dec), ("prepare", prep), ("propose", prop), ("total", tot))}
    bb = model.config["backbone"]
    line = (f"GenCrop-{bb} ({'trained ' + str(args.weights) if args.weights else 'random init'}), {args.threads} "
            f"threads, 1500×1000 JPEG → analysis {w}×{h} → letterbox 256×256, one subject, 256 proposals: "
            f"decode+shrink {med['decode']:.1f} ms, prepare {med['prepare']:.1f} ms, propose ×2 ratios "
            f"{med['propose']:.2f} ms, **prepare+propose {med['total']:.1f} ms** (median of {args.runs}; fastest "
            f"{min(tot):.1f} ms)")
    return report(args, "GenCrop latency", line)


def report(args: argparse.Namespace, title: str, line: str) -> int:
    """Print ``line`` and, with ``--md``, append it under a dated ``### title`` with the machine → exit code 0."""
    print(line)
    if args.md is not None:
        date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        from learnability import machine  # same folder

        with open(args.md, "a") as fh:
            fh.write(f"### {title} ({date})\n\nMachine: {machine()}; {args.threads} torch thread(s).\n\n{line}.\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
