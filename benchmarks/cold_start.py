"""Cold start: wall time of one ``opencrop crop`` process on the bundled photo (import, model load, crop, write).

What a shell loop or a one-off CLI call pays per image; the Python API and ``opencrop batch``/``serve`` pay it once.

    python benchmarks/cold_start.py [--runs 7] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "opencrop crop, default cues": [],
    "opencrop crop --no-cues": ["--no-cues"],
    "opencrop --help": None,
}


def _time(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs + 1):  # the first run warms the OS file cache and is dropped
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from latency import _write_section, machine

    exe = [sys.executable, "-m", "opencrop.cli"]
    photo = str(REPO / "examples" / "astronaut.jpg")
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name, extra in CASES.items():
            cmd = exe + (["--help"] if extra is None else ["crop", photo, "--ratio", "16:9", "--out", out, *extra])
            rows.append((name, _time(cmd, args.runs)))
            print(f"{name:40s} {rows[-1][1]:.2f} s", file=sys.stderr)
    import datetime as dt

    lines = ["## Cold start (one CLI process per image)", "",
             f"Measured {dt.date.today().isoformat()} on {machine()}.",
             f"Command: `python benchmarks/cold_start.py`; median of {args.runs} runs after one warm-up, the bundled "
             "512² photo, 16:9.", "", "| command | seconds |", "|---|---:|"]
    lines += [f"| {n} | {t:.2f} |" for n, t in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    _write_section(args.out, "cold_start", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
