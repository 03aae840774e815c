"""Batch throughput: ``opencrop batch`` with the local engine (``--jobs 1``, ``--jobs 2``) and the Ray engine.

Inputs: the scikit-image photos of ``benchmarks/latency.py`` (offline; about 1.5 MP each, JPEG q92), repeated to
``--images`` files in one folder. Each engine runs as one ``opencrop batch`` process into an empty output folder,
``-r 16:9 -r 1:1``, the default model and cues; the time is the process's wall time (start-up, model and detector
loading, Ray start included) and images/s = images / time. A one-image run of each engine gives its fixed cost,
and "steady images/s" = (images − 1) / (time − time of one image). Ray runs a fresh local instance
(``ray.init()`` on this machine's CPUs, as ``--engine ray`` does without ``--ray-address``).

    python benchmarks/batch_engines.py [--images 56] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINES = {"local --jobs 1": ["--jobs", "1"], "local --jobs 2": ["--jobs", "2"],
           "ray (local instance)": ["--engine", "ray"]}


def _run(src: Path, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "opencrop.cli", "batch", str(src), "--out", str(out), "-r", "16:9", "-r", "1:1",
           *extra]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt_ = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    n_out = sum(1 for _ in out.rglob("*.jpg"))
    n_in = sum(1 for _ in src.iterdir())
    if n_out != 2 * n_in:
        raise SystemExit(f"{' '.join(cmd)}: {n_out} crops for {n_in} images")
    return dt_


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=56)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from latency import _write_section, machine, photos

    pics = list(photos().values())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        many, one = Path(tmp) / "many", Path(tmp) / "one"
        many.mkdir()
        one.mkdir()
        for i in range(args.images):
            (many / f"p{i:04d}.jpg").write_bytes(pics[i % len(pics)])
        (one / "p.jpg").write_bytes(pics[0])
        for name, extra in ENGINES.items():
            t1 = _run(one, Path(tmp) / f"o1-{len(rows)}", extra)
            tn = _run(many, Path(tmp) / f"on-{len(rows)}", extra)
            rows.append((name, t1, tn))
            print(f"{name:24s} 1 image {t1:.1f} s, {args.images} images {tn:.1f} s", file=sys.stderr)
    import os

    lines = ["## Batch at scale (engines)", "",
             f"Measured {dt.date.today().isoformat()} on {machine()} ({os.cpu_count()} cores), "
             f"1-min load average {os.getloadavg()[0]:.1f} at the end (other jobs inflate the absolute figures).",
             f"Command: `python benchmarks/batch_engines.py --images {args.images}`; {args.images} real photos "
             "(scikit-image samples, ≈ 1.5 MP JPEG), `-r 16:9 -r 1:1`, default model and cues; one `opencrop batch` "
             "process per row, wall time including start-up.", "",
             "| engine | 1 image (fixed cost), s | all images, s | images/s | steady images/s |",
             "|---|---:|---:|---:|---:|"]
    for name, t1, tn in rows:
        steady = (args.images - 1) / (tn - t1) if tn > t1 else float("nan")
        lines.append(f"| {name} | {t1:.1f} | {tn:.1f} | {args.images / tn:.2f} | {steady:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    _write_section(args.out, "batch_engines", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
