"""Why the SSD runs on onnxruntime, with spinning off, one thread per core, next to the face detector.

Times (median ms over 5 photos at 512 px, after warm-up) for:
* the backbone alone: torch (``opencrop.nn.MobileNetV2`` features, channels-last) vs the onnxruntime person-only
  graph (backbone + box regressors + person head) at 300²;
* the onnxruntime graphs alone with 1 or 2 threads and spin-waiting on or off;
* ``analyze()`` for faces + people and for the default cues with the SSD on 1 or 2 threads, spinning on or off
  (spinning workers compete with the face detector running next to them), against the same cues called one after
  the other (what the overlap gains).

Writes a table into docs/cues.md.

    python benchmarks/ssd_runtime.py [--runs 15] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cues_latency import DOC, PHOTOS, _cpu, _photo

BEGIN, END = "<!-- ssd_runtime:begin -->", "<!-- ssd_runtime:end -->"


def _ms(fn: Callable[[], object], runs: int) -> float:
    for _ in range(3):
        fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t)


def _over_photos(make: Callable[[np.ndarray], Callable[[], object]], imgs: list[np.ndarray], runs: int) -> float:
    return statistics.median(_ms(make(im), runs) for im in imgs)


def _session(path: Path, threads: int, spin: bool):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    import cv2
    import torch

    from opencrop.cues import analyze, detect_faces, detect_people, detect_people_and_objects, saliency
    from opencrop.cues import objects as ssd
    from opencrop.cues._ssd_onnx import GRAPHS
    from opencrop.nn import MobileNetV2

    ssd.convert_for_onnxruntime()
    paths = ssd._converted_paths()  # the graphs the cue runs (OPENCROP_SSD_PRECISION: int8 class heads by default)
    people_path, full_path = (paths[GRAPHS.index(ssd._graph_name(objects))] for objects in (False, True))
    imgs = [_photo(n) for n in PHOTOS]
    small = [np.ascontiguousarray(cv2.resize(im, (300, 300)))[None] for im in imgs]
    rows: list[tuple[str, float]] = []

    torch.set_num_threads(2)
    net = MobileNetV2().eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 300, 300).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        rows.append(("torch MobileNetV2 features (backbone only), 300², 2 threads, channels-last",
                     _ms(lambda: net.features(x), args.runs)))
    for threads in (1, 2):
        for spin in (False, True):
            s = _session(people_path, threads, spin)
            f = _session(full_path, threads, spin)
            tag = f"{threads} thread(s), spinning {'on' if spin else 'off'}"
            rows.append((f"onnxruntime person-only graph alone, {tag}", statistics.median(
                _ms(lambda b=b, s=s: s.run(["loc", "person"], {"image": b}), args.runs) for b in small)))
            rows.append((f"onnxruntime full graph alone, {tag}", statistics.median(
                _ms(lambda b=b, f=f: f.run(["loc", "scores"], {"image": b}), args.runs) for b in small)))

    faces_people = {"faces", "people", "saliency"}
    for threads in ("1", "2"):
        os.environ["OPENCROP_SSD_THREADS"] = threads
        for spin in (False, True):
            ssd._ALLOW_SPINNING = spin
            ssd._ORT.reset()
            tag = f"SSD {threads} thread(s), spinning {'on' if spin else 'off'}"
            rows.append((f"analyze faces + people + saliency, {tag}",
                         _over_photos(lambda im: lambda: analyze(im, want=faces_people), imgs, args.runs)))
            rows.append((f"analyze default cues, {tag}", _over_photos(lambda im: lambda: analyze(im), imgs, args.runs)))
        ssd._ALLOW_SPINNING = False
        ssd._ORT.reset()
        rows.append((f"faces, then people, then saliency (no overlap), SSD {threads} thread(s)", _over_photos(
            lambda im: lambda: (detect_faces(im), detect_people(im), saliency(im)), imgs, args.runs)))
        rows.append((f"faces, then people + objects, then saliency (no overlap), SSD {threads} thread(s)",
                     _over_photos(lambda im: lambda: (detect_faces(im), detect_people_and_objects(im),
                                                      saliency(im)), imgs, args.runs)))
    del os.environ["OPENCROP_SSD_THREADS"]
    ssd._ORT.reset()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {_cpu()}, {os.cpu_count()} CPUs; "
        f"1-min load average {load:.1f} at the end. Median ms over {', '.join(PHOTOS)} at 512 px ({args.runs} runs "
        "each after 3 warm-ups). Written by `benchmarks/ssd_runtime.py`.",
        "",
        "| what | ms |",
        "|---|---:|",
    ] + [f"| {name} | {ms:.1f} |" for name, ms in rows]
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return
    text = DOC.read_text()
    if BEGIN not in text:
        text += f"\n## SSD runtime choices\n\n{BEGIN}\n{END}\n"
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1]
    DOC.write_text(f"{pre}{BEGIN}\n{table}\n{END}{post}")
    print(f"\nwrote {DOC}")


if __name__ == "__main__":
    main()
