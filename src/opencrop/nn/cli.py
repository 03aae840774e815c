"""``opencrop backbones list``: the backbones, their taps, and whether their ImageNet weights are available.

No torch import at module import time (``opencrop --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, group: Callable[..., argparse._SubParsersAction]) -> None:
    g = group("backbones", "ImageNet backbones (feature taps, weight files)")
    p = g.add_parser("list", help="list backbones, their taps and where their weights are")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler=_list)


def _where(weights_name: str) -> str:
    """Path of the first copy found (as ``opencrop models list`` shows it: no verification, never a download)."""
    from opencrop import modelfiles
    from opencrop.nn import weights  # noqa: F401  (registers the backbone files)

    loc = modelfiles.locate(weights_name)
    return str(loc[1]) if loc else "missing"


def _list(args: argparse.Namespace) -> int:
    import torch

    from opencrop.nn import create_backbone, list_backbones

    rows = []
    for name in list_backbones():
        with torch.device("meta"):  # structure only, no memory
            bb = create_backbone(name, with_classifier=False)
        fi = bb.feature_info
        rows.append({
            "name": name,
            "channels": fi.channels(),
            "reduction": fi.reduction(),
            "weights": bb.default_weights,
            "file": _where(bb.default_weights) if bb.default_weights else "-",
        })
    out = sys.stdout
    if args.json:
        for r in rows:
            out.write(json.dumps(r) + "\n")
        return 0
    for r in rows:
        taps = ", ".join(f"{c}@s{s}" for c, s in zip(r["channels"], r["reduction"], strict=True))
        out.write(f"{r['name']:20s} {taps:28s} {r['weights']:30s} {r['file']}\n")
    return 0
