"""``opencrop data heatmaps``: write HCIC pseudo heat maps for a GAICD or CPC dataset (docs/systems.md §3.3).

No torch import here (``opencrop --help`` stays fast); the work lives in :mod:`opencrop.data.heatmaps`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["register", "run_heatmaps"]


def register(sub: argparse._SubParsersAction, group: Callable[[str, str], argparse._SubParsersAction]) -> None:
    data = group("data", "dataset tools: convert, synthesise, inspect, auxiliary maps")
    p = data.add_parser(
        "heatmaps",
        help="write HCIC pseudo heat maps (content-preservation targets of HCIC / GAFIC)",
        description=(
            "One uint8 PNG per image: the softmax(score + 2·area)-weighted sum of its annotated crop masks "
            "(only crops above the dataset mean score when an image has more than 10), min-max scaled to 0-255. "
            "Every split is read, and the dataset mean is taken over all of them, as HCIC does."
        ),
    )
    p.add_argument("--format", required=True, choices=("gaicd", "cpc"), help="dataset format")
    p.add_argument("dir", type=Path, metavar="DIR", help="dataset folder or annotation file")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default DIR/heat_map_gt/<GAICD|CPC>/mask)")
    p.add_argument("--max-crops", type=int, default=10,
                   help="above this many crops per image keep only crops scoring above the dataset mean (10)")
    p.set_defaults(handler=run_heatmaps)


def run_heatmaps(args: argparse.Namespace) -> int:
    from opencrop.data.heatmaps import DATASET_DIRS, dataset_mean_score, write_heatmaps
    from opencrop.data.registry import get_loader
    from opencrop.errors import OpenCropError

    root: Path = args.dir
    out = args.out
    if out is None:
        base = root if root.is_dir() else root.parent
        out = base / "heat_map_gt" / DATASET_DIRS[args.format] / "mask"
    try:
        records = get_loader(args.format)(root, split="all")
        mean = dataset_mean_score(records)
        errors: list[str] = []
        paths = write_heatmaps(records, out, mean_score=mean, max_crops=args.max_crops, errors=errors)
    except (OpenCropError, ValueError) as e:
        print(f"opencrop data heatmaps: {e}", file=sys.stderr)
        return 1
    for msg in errors:
        print(f"opencrop data heatmaps: skipped {msg}", file=sys.stderr)
    print(f"wrote {len(paths)} heat maps to {out} (dataset mean score {mean:.3f})")
    return 1 if errors else 0
