"""Latency of each cue at the 512 px analysis size on scikit-image photos; writes a table into docs/cues.md.

Usage: ``PYTHONPATH=src python benchmarks/cues_latency.py [--runs 15] [--no-write]``. Medians of ``--runs`` timed
calls after two warm-up calls, per photo; the table gives each photo's median and the median over photos.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

DOC = Path(__file__).resolve().parents[1] / "docs" / "cues.md"
BEGIN, END = "<!-- cues_latency:begin -->", "<!-- cues_latency:end -->"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def _photo(name: str, long_side: int = 512) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    if s != 1:
        img = np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.LANCZOS))
    return np.ascontiguousarray(img)


def _median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall-clock ms and median process CPU ms (all threads) of ``runs`` calls after 2 warm-ups."""
    fn()
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ssd(backend: str, fn: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], object]:
    """``fn`` with the SSD runtime forced to ``backend`` (``OPENCROP_SSD_BACKEND``) for the call."""

    def run(im: np.ndarray) -> object:
        old = os.environ.get("OPENCROP_SSD_BACKEND")
        os.environ["OPENCROP_SSD_BACKEND"] = backend
        try:
            return fn(im)
        finally:
            if old is None:
                del os.environ["OPENCROP_SSD_BACKEND"]
            else:
                os.environ["OPENCROP_SSD_BACKEND"] = old

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    from opencrop import cues
    from opencrop.cues.faces import detect_faces
    from opencrop.cues.objects import _threads

    ssd_threads = _threads()
    why = {k: v for k, v in cues.available().items() if v}
    if why:
        raise SystemExit(f"backends unavailable: {why}; run `opencrop models fetch`")
    tasks: dict[str, Callable[[np.ndarray], object]] = {
        "faces: BlazeFace short only": lambda im: detect_faces(im, ranges=("short",)),
        "faces: BlazeFace full only, no tiles": lambda im: detect_faces(im, ranges=("full",), tiles=False),
        "detect_faces (default: short + full + full on tiles)": cues.detect_faces,
        f"people (SSD person-only graph, {ssd_threads} onnxruntime thread(s))": _ssd("onnxruntime", cues.detect_people),
        "people + objects (SSD full graph, onnxruntime)": _ssd("onnxruntime", cues.detect_people_and_objects),
        "people + objects (SSD, OpenCV dnn: the reference runtime)": _ssd("opencv", cues.detect_people_and_objects),
        "person_mask (selfie seg.)": cues.person_mask,
        "saliency (spectral residual)": cues.saliency,
        "analyze: faces + people + saliency": lambda im: cues.analyze(im, want={"faces", "people", "saliency"}),
        "analyze (default cues: + objects)": cues.analyze,
    }
    imgs = {n: _photo(n) for n in PHOTOS}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    res = {t: {n: _median_ms(lambda f=f, im=im: f(im), args.runs) for n, im in imgs.items()} for t, f in tasks.items()}

    import cv2

    head = "| cue | " + " | ".join(f"{n} {imgs[n].shape[1]}×{imgs[n].shape[0]}" for n in PHOTOS) + " | median |"
    lines = [
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {_cpu()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
        f"ai-edge-litert 2 threads; 1-min load average {load:.1f} at the start. Each cell: median wall-clock ms "
        f"(median process CPU ms, all threads, in brackets: less sensitive to other jobs) of {args.runs} runs "
        "after 2 warm-up calls. "
        "Written by `benchmarks/cues_latency.py`.",
        "",
        head,
        "|---|" + "---:|" * (len(PHOTOS) + 1),
    ]
    for t, per in res.items():
        vals = [per[n] for n in PHOTOS]
        cells = " | ".join(f"{w:.1f} ({c:.0f})" for w, c in vals)
        mw = statistics.median(w for w, _ in vals)
        mc = statistics.median(c for _, c in vals)
        lines.append(f"| {t} | {cells} | **{mw:.1f}** ({mc:.0f}) |")
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return
    text = DOC.read_text() if DOC.exists() else f"# Cues\n\n## Latency\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n## Latency\n\n{BEGIN}\n{END}\n"
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1]
    DOC.write_text(f"{pre}{BEGIN}\n{table}\n{END}{post}")
    print(f"\nwrote {DOC}")


if __name__ == "__main__":
    main()
