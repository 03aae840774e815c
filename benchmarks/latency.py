"""End-to-end latency: opencrop vs libvips attention and smartcrop.py on the same photos, in one run.

JPEG bytes in → a cropped, resized JPEG (q85) out, in memory; 1:1 → 512×512 and 16:9 → 640×360. Photos are
scikit-image samples (offline): astronaut, coffee, chelsea, rocket and stereo_motorcycle Lanczos-upscaled to
about 1.5 MP, plus retina (2.0 MP) and hubble_deep_field at native size, saved as JPEG q92 — the set of
``../shared/docs/peers.md`` §1.1. Every method gets the same bytes and writes the same output size at the same
JPEG quality (q85, 4:2:0 chroma, no optimised Huffman tables: Pillow's and libvips' defaults at q85).

The methods are **interleaved**: for each photo and ratio, one warm-up call of every method, then ``--reps``
rounds that call every method once (in a rotating order), so a burst of load from other processes hits every
method alike. Each cell is the median over photos of the per-photo median wall time; beside it the same for the
process CPU time (all threads) per image, which other jobs on the machine barely change.

Peers are installed for the benchmark only: ``pip install 'opencrop[bench]'`` (pyvips[binary], smartcrop).

    python benchmarks/latency.py --cues [--reps 9] [--out docs/benchmarks.md] [--models composition gaic]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

TARGETS = {"1:1": (512, 512), "16:9": (640, 360)}


def photos() -> dict[str, bytes]:
    from skimage import data

    out: dict[str, bytes] = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "retina", "hubble_deep_field"):
        a = getattr(data, name)()
        if name == "stereo_motorcycle":
            a = a[0]
        im = Image.fromarray(a).convert("RGB")
        if name not in ("retina", "hubble_deep_field"):
            s = (1.5e6 / (im.width * im.height)) ** 0.5
            im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=92)
        out[name] = buf.getvalue()
    return out


def _jpeg(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def vips_attention(data: bytes, ratio: str) -> bytes:
    import pyvips

    w, h = TARGETS[ratio]
    return pyvips.Image.thumbnail_buffer(data, w, height=h, crop="attention").write_to_buffer(".jpg[Q=85]")


def smartcrop_py(data: bytes, ratio: str) -> bytes:
    import smartcrop

    w, h = TARGETS[ratio]
    im = Image.open(io.BytesIO(data)).convert("RGB")
    c = smartcrop.SmartCrop().crop(im, 100, round(100 * h / w))["top_crop"]
    box = (c["x"], c["y"], c["x"] + c["width"], c["y"] + c["height"])
    return _jpeg(im.crop(box).resize((w, h), Image.Resampling.LANCZOS))


def centre_pillow(data: bytes, ratio: str) -> bytes:
    w, h = TARGETS[ratio]
    im = Image.open(io.BytesIO(data)).convert("RGB")
    r = w / h
    cw, ch = (im.height * r, im.height) if im.width / im.height > r else (im.width, im.width / r)
    x, y = (im.width - cw) / 2, (im.height - ch) / 2
    return _jpeg(im.crop((round(x), round(y), round(x + cw), round(y + ch))).resize((w, h), Image.Resampling.LANCZOS))


def opencrop_fn(model: str, cues: bool | list[str]) -> Callable[[bytes, str], bytes]:
    from opencrop import Cropper

    cropper = Cropper(model, cues=cues)

    def run(data: bytes, ratio: str) -> bytes:
        (c,) = cropper.crop(data, ratios=[ratio], size=TARGETS[ratio])
        return _jpeg(c.image)

    return run


def opencrop_both(model: str, cues: bool | list[str]) -> Callable[[bytes, str], bytes]:
    """Both ratios from one analysis (the amortised multi-ratio case); timed per image, not per ratio."""
    from opencrop import Cropper

    cropper = Cropper(model, cues=cues)

    def run(data: bytes, ratio: str) -> bytes:
        an = cropper.analyze(data)
        outs = [_jpeg(cropper.crop(an, ratios=[r], size=TARGETS[r])[0].image) for r in TARGETS]
        return outs[0]

    return run


def time_interleaved(methods: dict[str, Callable[[bytes, str], bytes]], data: bytes, ratio: str, reps: int
                     ) -> dict[str, tuple[float, float]]:
    """Per method: median (wall ms, process CPU ms) of ``reps`` calls on ``data``, the methods interleaved."""
    names = list(methods)
    for n in names:
        methods[n](data, ratio)  # warm-up
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for k in range(reps):
        for n in names[k % len(names):] + names[: k % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            methods[n](data, ratio)
            wall[n].append((time.perf_counter() - t) * 1000)
            cpu[n].append((time.process_time() - c) * 1000)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in names}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import PIL
    import torch

    vips = ""
    try:
        import pyvips

        vips = f", libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    except ImportError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, Pillow {PIL.__version__}, "
            f"torch {torch.__version__}{vips}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")
    ap.add_argument("--reps", type=int, default=9, help="interleaved rounds per photo and ratio")
    ap.add_argument("--models", nargs="*", default=["composition"], help="opencrop models to time")
    ap.add_argument("--cues", action="store_true", help="also time opencrop with face/person cues on")
    args = ap.parse_args(argv)

    imgs = photos()
    methods: dict[str, Callable[[bytes, str], bytes]] = {}
    try:
        import pyvips  # noqa: F401

        methods["libvips thumbnail crop=attention"] = vips_attention
    except ImportError:
        print("pyvips not installed: skipping libvips (pip install 'opencrop[bench]')", file=sys.stderr)
    try:
        import smartcrop  # noqa: F401

        methods["smartcrop.py (ratio-style) + Pillow"] = smartcrop_py
    except ImportError:
        print("smartcrop not installed: skipping smartcrop.py", file=sys.stderr)
    methods["Pillow centre crop (baseline)"] = centre_pillow
    for m in args.models:
        methods[f"opencrop {m}, cues off"] = opencrop_fn(m, cues=False)
        if args.cues:
            methods[f"opencrop {m}, cues: faces"] = opencrop_fn(m, cues=["faces", "saliency"])
            methods[f"opencrop {m}, cues: faces + people"] = opencrop_fn(m, cues=["faces", "people", "saliency"])
            methods[f"opencrop {m}, cues: faces + people/objects (default)"] = opencrop_fn(m, cues=True)
    methods["opencrop composition, both ratios from one analysis (per image)"] = opencrop_both("composition", False)

    load0 = os.getloadavg()[0]
    started = dt.datetime.now(dt.timezone.utc)
    per: dict[str, dict[str, list[tuple[float, float]]]] = {n: {r: [] for r in TARGETS} for n in methods}
    for ratio in TARGETS:
        for img, d in imgs.items():
            for n, v in time_interleaved(methods, d, ratio, args.reps).items():
                per[n][ratio].append(v)
            print(f"{ratio:5s} {img:18s} done", file=sys.stderr)
    rows = {n: {r: (statistics.median(v[0] for v in per[n][r]), statistics.median(v[1] for v in per[n][r]))
                for r in TARGETS} for n in methods}
    load1 = os.getloadavg()[0]
    ref = rows.get("libvips thumbnail crop=attention")
    cmd = "python benchmarks/latency.py" + (" --cues" if args.cues else "") + (
        f" --reps {args.reps}" if args.reps != 9 else "")
    lines = [
        "## End-to-end latency (JPEG → cropped JPEG)",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}; 1-min load average {load0:.1f} at the start, "
        f"{load1:.1f} at the end.",
        f"Command: `{cmd}`. Methods interleaved ({args.reps} rounds per photo and ratio after a warm-up); "
        "median over 7 photos (≈1.5 MP) of per-photo medians; 1:1 → 512×512, 16:9 → 640×360, q85. "
        "CPU: process CPU time per image, all threads.",
        "",
        "| method | 1:1 ms | 16:9 ms | 1:1 CPU ms | 16:9 CPU ms |" + (
            " × libvips wall (1:1 / 16:9) | × libvips CPU (1:1 / 16:9) |" if ref else ""),
        "|---|---:|---:|---:|---:|" + ("---:|---:|" if ref else ""),
    ]
    for name, r in rows.items():
        cells = f"| {name} | {r['1:1'][0]:.1f} | {r['16:9'][0]:.1f} | {r['1:1'][1]:.1f} | {r['16:9'][1]:.1f} |"
        if ref:
            cells += (f" {r['1:1'][0] / ref['1:1'][0]:.2f} / {r['16:9'][0] / ref['16:9'][0]:.2f} |"
                      f" {r['1:1'][1] / ref['1:1'][1]:.2f} / {r['16:9'][1] / ref['16:9'][1]:.2f} |")
        lines.append(cells)
    table = "\n".join(lines) + "\n"
    print(table)
    _write_section(args.out, "latency", table)
    return 0


def _write_section(path: Path, key: str, text: str) -> None:
    """Replace the block between ``<!-- key:start -->`` and ``<!-- key:end -->`` in ``path`` (append if absent)."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    old = path.read_text() if path.exists() else "# Benchmarks\n\nEvery number here comes from a script in "\
        "`benchmarks/`; rerun it to reproduce.\n"
    block = f"{start}\n{text}{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
