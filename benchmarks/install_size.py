"""Installed size and cold start of each opencrop install flavour (issue 15: a light install).

For each extra set (default: none, ``torch``, ``serve``, ``torch,serve``) this makes a fresh venv, runs
``pip install -c constraints.txt '.[extras]'``, and reports the size of its site-packages, whether torch got
installed, and the wall time of a one-off ``opencrop crop examples/astronaut.jpg -r 16:9 -r 1:1 --json`` process
(median of 5 after one warm-up run that compiles the .pyc files; model files come from the opencrop cache, so run
``opencrop models fetch`` once first).

    python benchmarks/install_size.py [--extras "" torch serve ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(extras: str, root: Path) -> dict:
    venv = root / (extras.replace(",", "+") or "default")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt")]
    t0 = time.perf_counter()
    subprocess.run([*pip, f"{REPO}[{extras}]" if extras else str(REPO)], check=True)
    install_s = time.perf_counter() - t0
    site = next((venv / "lib").glob("python3*/site-packages"))
    has_torch = (site / "torch").is_dir()
    cmd = [str(venv / "bin" / "opencrop"), "crop", str(REPO / "examples" / "astronaut.jpg"), "-r", "16:9", "-r",
           "1:1", "--json"]
    times = []
    for i in range(6):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        if i:
            times.append(time.perf_counter() - t)
    return {"extras": extras or "(none)", "site_mb": _size(site) / 1e6, "torch": has_torch,
            "install_s": install_s, "cold_start_s": statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", nargs="*", default=["", "torch", "serve", "torch,serve"])
    ap.add_argument("--keep", type=Path, help="make the venvs here and keep them")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="opencrop-install-"))
    try:
        rows = [measure(e, root) for e in args.extras]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"# {date.today()} · {platform.processor() or platform.machine()} · Python {platform.python_version()}")
    print("| extras | site-packages | torch installed | pip install | `opencrop crop` one-off (median of 5) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['extras']} | {r['site_mb']:.0f} MB | {'yes' if r['torch'] else 'no'} | {r['install_s']:.0f} s | "
              f"{r['cold_start_s']:.2f} s |")


if __name__ == "__main__":
    main()
