"""``opencrop data check`` and ``opencrop data synth``. No torch at import time."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["register"]

_SYNTH_FORMATS = ("gaicd", "cpc", "fcdb", "flms", "sacd", "gencrop")


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 512x384, got {s!r}") from e
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError("size must be at least 64x64")
    return w, h


def register(sub: argparse._SubParsersAction, group: Callable[[str, str], argparse._SubParsersAction]) -> None:
    g = group("data", "dataset tools: check a download, write synthetic data")
    c = g.add_parser("check", help="verify a dataset download (counts, missing images, malformed annotations)")
    c.add_argument("root", metavar="DIR", help="dataset folder (or annotation file)")
    c.add_argument("--format", required=True, help="gaicd, cpc, fcdb, flms, flms-design, sacd or gencrop")
    c.set_defaults(handler=_check)
    s = g.add_parser("synth", help="write a synthetic dataset in a real on-disk format (not benchmark data)")
    s.add_argument("--format", required=True, choices=_SYNTH_FORMATS)
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--n", type=int, default=20, help="number of images (default 20)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=_size, metavar="WxH", help="image size (default: a seeded mix of shapes)")
    s.set_defaults(handler=_synth)


def _check(args: argparse.Namespace) -> int:
    from opencrop.data.check import check_dataset

    try:
        rep = check_dataset(args.format, args.root)
    except ValueError as e:
        print(f"opencrop data check: {e}", file=sys.stderr)
        return 2
    print(rep.format())
    return 0 if rep.ok else 1


def _synth(args: argparse.Namespace) -> int:
    import time

    from opencrop.data.synth import synthesize

    if args.n < 1:
        print("opencrop data synth: --n must be at least 1", file=sys.stderr)
        return 2
    t = time.perf_counter()
    out = synthesize(args.format, args.out, n=args.n, seed=args.seed, size=args.size)
    dt = time.perf_counter() - t
    print(f"wrote {args.n} synthetic {args.format} images to {out} in {dt:.1f} s (synthetic: not benchmark data)")
    return 0
