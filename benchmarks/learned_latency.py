"""Latency of GAIC-MobileNetV2 end to end on CPU: decode + shrink a ~1.5 MP JPEG, ``prepare`` (one backbone pass),
``score`` every candidate (GAIC grid ≥ 90 crops of a square analysis image, plus any-ratio windows).

    PYTHONPATH=src python benchmarks/learned_latency.py --threads 2 [--weights gaic.pt] \
        [--md docs/benchmarks-learned.md]

Target: prepare + score ≤ 60 ms on 2 cores. Medians over ``--runs`` after ``--warmup`` runs.

``--s2cnet`` adds S2CNet (GAICD v1 and v2 configurations, random weights) on the same image and candidates, each
with the photo's detected people / objects and with the full ``bbox_num`` object boxes (as the published GAICD box
files give), interleaved with GAIC run by run, and prints each one's time as a multiple of GAIC's (target ≤ 1.5×).
The detector itself is not timed (every pipeline runs cues; S2CNet's are people + objects).

``--precision bf16`` builds GAIC and S2CNet with ``precision="bf16"`` (``LearnedCropModel.set_precision``: bfloat16
products, CPU) and also times GAIC at fp32, interleaved: every S2CNet row is then given as a multiple of both GAICs
(bf16 against bf16 is like for like; bf16 S2CNet against fp32 GAIC alone does not show the target met):

    PYTHONPATH=src python benchmarks/learned_latency.py --s2cnet --precision bf16 --threads 1 [--backbone-bf16]

``--backbone-bf16`` (an experiment, not a model option) also runs the bf16 models' ``prepare`` (backbone + fusion)
under ``torch.autocast("cpu", torch.bfloat16)``.

``--setcrop`` adds SetCrop (a set predictor, random weights: its time does not depend on them) in the two
configurations of :data:`SETCROP_CONFIGS`, interleaved with GAIC run by run: decode + shrink to its own input short
side, ``prepare`` (the whole network: backbone, transformer, heads) and ``propose`` for 1:1, 16:9 and any ratio
(query boxes, ratio adjustment); its "score" column is that ``propose``. Each one's time is a multiple of GAIC's
(wall and process CPU), measured in the same process:

    PYTHONPATH=src python benchmarks/learned_latency.py --threads 1 --setcrop [--setcrop-only-cpu]

GenCrop (``--model gencrop [--backbone mobilenet_v2|resnet50]``): decode + shrink, ``prepare`` (letterbox to 256,
the whole network: backbone, transformer, 256 proposals scored, subject gating) and ``propose`` for 1:1 and 16:9
(each fitted to the ratio), with a user subject box:

    PYTHONPATH=src python benchmarks/learned_latency.py --model gencrop --backbone resnet50 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
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


def object_sets(img: np.ndarray, bbox_num: int) -> dict[str, np.ndarray]:
    """Object boxes for S2CNet: ``"cues"`` = people + COCO objects detected on the analysis image by
    :mod:`opencrop.cues` (mapped by :func:`opencrop.models.s2cnet.object_boxes_from_cues`; a missing
    detector is an error), ``"full"`` = ``bbox_num`` boxes spread over the image (what the published GAICD box
    files give)."""
    from opencrop.cues import analyze
    from opencrop.models.s2cnet import object_boxes_from_cues

    h, w = img.shape[:2]
    cues = analyze(img, want={"people", "objects"})  # a missing detector is an error, not an empty set
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.7, (bbox_num, 2)) * [w, h]
    wh = rng.uniform(0.1, 0.3, (bbox_num, 2)) * [w, h]
    return {"cues": object_boxes_from_cues(cues, bbox_num), "full": np.concatenate([xy, xy + wh], 1)}


#: SetCrop configurations timed beside GAIC: the published one (ResNet-50-DC5, short side 600 / max 1333, 6 + 6
#: layers, d 256, FFN 2048, 90 queries) and the CPU-sized one of ``benchmarks/learnability.py``
SETCROP_CONFIGS: dict[str, dict] = {
    "setcrop-cpu": {"backbone": "mobilenet_v2", "hidden_dim": 128, "nheads": 4, "enc_layers": 2, "dec_layers": 3,
                    "dim_feedforward": 512, "num_queries": 90, "input_size": 224, "max_input_size": 448},
    # the same with opencrop's valid_head="roi" (GAIC's crop head on the 90 query boxes)
    "setcrop-cpu roi": {"backbone": "mobilenet_v2", "hidden_dim": 128, "nheads": 4, "enc_layers": 2, "dec_layers": 3,
                        "dim_feedforward": 512, "num_queries": 90, "input_size": 224, "max_input_size": 448,
                        "valid_head": "roi"},
    "setcrop (published R50-DC5)": {"backbone": "resnet50"},
}


def time_setcrop(model: object, jpeg: bytes) -> tuple[dict[str, float], str]:
    """One SetCrop run end to end → ``({"decode", "prepare", "score", "total", "cpu"}`` in seconds, shape note).
    Decode + shrink to the model's input short side, ``prepare`` (backbone + transformer + heads), then ``propose``
    for 1:1, 16:9 and any ratio ("score"; ``total`` / ``cpu`` = prepare + propose)."""
    from opencrop.models.base import Request

    t0 = time.perf_counter()
    img = decode_shrunk(jpeg, model.preprocess.size)
    t1, c1 = time.perf_counter(), time.process_time()
    p = model.prepare(img)
    t2 = time.perf_counter()
    for r in (1.0, 16 / 9, None):
        b, _ = model.propose(p, Request(ratio=r, top_k=5))
        assert len(b) == model.config["num_queries"]
    t3, c3 = time.perf_counter(), time.process_time()
    note = (f"analysis {img.shape[1]}×{img.shape[0]} → input {p.input_size[0]}×{p.input_size[1]}, "
            f"{model.config['num_queries']} queries, propose ×3 ratios")
    return {"decode": t1 - t0, "prepare": t2 - t1, "score": t3 - t2, "total": t3 - t1, "cpu": c3 - c1}, note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", type=Path, default=None, help="an opencrop GAIC model file (default: random init)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--s2cnet", action="store_true",
                    help="also S2CNet v1 / v2 on the same candidates, interleaved with GAIC (ratio vs GAIC)")
    ap.add_argument("--setcrop", action="store_true",
                    help="also SetCrop (published R50-DC5 and CPU-sized), interleaved with GAIC (ratio vs GAIC)")
    ap.add_argument("--setcrop-only-cpu", action="store_true",
                    help="with --setcrop: only the CPU-sized SetCrop (query and roi validity heads)")
    ap.add_argument("--md", type=Path, default=None, help="append the result to this Markdown file")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="inference precision of GAIC and S2CNet (bf16: GAIC fp32 is timed too, as a second baseline)")
    ap.add_argument("--backbone-bf16", action="store_true",
                    help="with --precision bf16: the bf16 models' prepare under torch.autocast too (experiment)")
    ap.add_argument("--model", choices=["gaic", "gencrop"], default="gaic")
    ap.add_argument("--backbone", default="mobilenet_v2", help="GenCrop backbone (mobilenet_v2 | resnet50)")
    args = ap.parse_args(argv)
    if args.model == "gencrop":
        return gencrop_latency(args)

    import torch

    from opencrop.candidates import gaic_grid, ratio_windows
    from opencrop.cues.types import Cues
    from opencrop.models import create_model

    torch.set_num_threads(args.threads)
    if args.precision != "fp32" and (args.model != "gaic" or args.setcrop):
        ap.error("--precision bf16 is implemented for GAIC and S2CNet only (not with --setcrop / --model gencrop)")
    if args.backbone_bf16 and args.precision == "fp32":
        ap.error("--backbone-bf16 needs --precision bf16")

    def prepare(m: object, img: np.ndarray, cues: object) -> object:
        low = args.backbone_bf16 and getattr(m, "precision", "fp32") != "fp32"
        with torch.autocast("cpu", dtype=torch.bfloat16) if low else contextlib.nullcontext():
            return m.prepare(img, cues) if cues is not None else m.prepare(img)

    def gaic(precision: str) -> object:
        return create_model("gaic", weights=args.weights, precision=precision).eval()

    jpeg = test_jpeg()
    img0 = decode_shrunk(jpeg)
    # (label, model, cues) — GAIC first (the baselines); S2CNet with the photo's detected objects and with the full
    # box count
    runs: list[tuple[str, object, object]] = [("GAIC-MobileNetV2", gaic("fp32"), None)]
    if args.precision != "fp32":
        runs.insert(0, (f"GAIC-MobileNetV2 {args.precision}", gaic(args.precision), None))
    if args.s2cnet:
        from opencrop.models.s2cnet import PUBLISHED_CONFIGS

        for tag in ("gaicd_v1", "gaicd_v2"):
            torch.manual_seed(0)
            m = create_model("s2cnet", precision=args.precision, **PUBLISHED_CONFIGS[tag]).eval()
            for kind, ob in object_sets(img0, m.bbox_num).items():
                runs.append((f"S2CNet {tag} {args.precision} ({len(ob)} objects, {kind})", m,
                             Cues(img0.shape[1], img0.shape[0], object_boxes=ob)))
    setcrops: dict[str, object] = {}
    if args.setcrop:
        for tag, kw in SETCROP_CONFIGS.items():
            if args.setcrop_only_cpu and not tag.startswith("setcrop-cpu"):
                continue
            torch.manual_seed(0)
            setcrops[f"SetCrop {tag}"] = create_model("setcrop", **kw).eval()
            runs.append((f"SetCrop {tag}", setcrops[f"SetCrop {tag}"], None))
    notes: dict[str, str] = {}
    times: dict[str, dict[str, list[float]]] = {lab: {"decode": [], "prepare": [], "score": [], "total": [], "cpu": []}
                                                for lab, _, _ in runs}
    n_boxes = 0
    for i in range(args.warmup + args.runs):
        for lab, m, cues in runs:  # interleaved: load changes hit every model alike
            if lab in setcrops:
                st, notes[lab] = time_setcrop(m, jpeg)
                if i >= args.warmup:
                    for k, v in st.items():
                        times[lab][k].append(1000 * v)
                continue
            t0 = time.perf_counter()
            img = decode_shrunk(jpeg)
            h, w = img.shape[:2]
            boxes = np.concatenate([gaic_grid(w, h), ratio_windows(w, h, "1:1", max_count=40),
                                    ratio_windows(w, h, "16:9", max_count=40)])
            t1, c1 = time.perf_counter(), time.process_time()
            p = prepare(m, img, cues)
            t2 = time.perf_counter()
            s = m.score(p, boxes)
            t3, c3 = time.perf_counter(), time.process_time()
            assert s.shape == (len(boxes),)
            if i >= args.warmup:
                for k, v in (("decode", t1 - t0), ("prepare", t2 - t1), ("score", t3 - t2), ("total", t3 - t1),
                             ("cpu", c3 - c1)):
                    times[lab][k].append(1000 * v)
            n_boxes = len(boxes)
    lines = []
    meds = {lab: {k: statistics.median(v) for k, v in times[lab].items()} for lab, _, _ in runs}
    bases = [lab for lab, _, _ in runs if lab.startswith("GAIC")]  # GAIC at --precision first, then fp32
    for lab, _m, _ in runs:
        med = meds[lab]
        ratio = "" if lab.startswith("GAIC") else "".join(
            f"; **{med['total'] / meds[b]['total']:.2f}× {b}** (CPU time {med['cpu'] / meds[b]['cpu']:.2f}×)"
            for b in bases)
        if lab in setcrops:
            lines.append(f"{lab}, {args.threads} threads, 1500×1000 JPEG → {notes[lab]}: decode+shrink "
                         f"{med['decode']:.1f} ms, prepare {med['prepare']:.1f} ms, propose {med['score']:.1f} ms, "
                         f"**prepare+propose {med['total']:.1f} ms** (process CPU {med['cpu']:.1f} ms; median of "
                         f"{args.runs}; fastest {min(times[lab]['total']):.1f} ms){ratio}")
            continue
        target = "target ≤ 60 ms" if lab.startswith("GAIC") else "target ≤ 1.5× GAIC"
        lines.append(f"{lab}, {args.threads} threads, 1500×1000 JPEG → analysis {w}×{h} → input "
                     f"{p.input_size[0]}×{p.input_size[1]}, {n_boxes} candidates: "
                     f"decode+shrink {med['decode']:.1f} ms, prepare {med['prepare']:.1f} ms, "
                     f"score {med['score']:.1f} ms, **prepare+score "
                     f"{med['total']:.1f} ms** (process CPU {med['cpu']:.1f} ms; median of {args.runs}; "
                     f"fastest {min(times[lab]['total']):.1f} ms; "
                     f"{target}){ratio}")
    for line in lines:
        print(line)
    if args.md is not None:
        date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        from learnability import machine  # same folder

        with open(args.md, "a") as fh:
            body = "\n".join(f"* {ln}." for ln in lines)
            fh.write(f"### Latency ({date})\n\nMachine: {machine()}; {args.threads} torch thread(s); precision "
                     f"{args.precision}{' (backbone bf16 too)' if args.backbone_bf16 else ''}.\n\n{body}\n\n")
    return 0


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
