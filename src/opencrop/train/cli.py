"""``opencrop train RECIPE.yaml``; no torch import at module level (``opencrop weights import``: models/cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, group) -> None:  # group: cli.build_parser's helper
    p = sub.add_parser(
        "train",
        help="train a learned crop model from a YAML recipe",
        description="Train a learned crop model (configs/*.yaml). Overrides: section.key=value, e.g. train.epochs=5.",
    )
    p.add_argument("recipe", type=Path, help="recipe file, e.g. configs/gaic_gaicd.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides (train.epochs=5)")
    p.add_argument("--data", type=Path, default=None, help="dataset directory (overrides data.root)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda when available)")
    p.add_argument("--select-on-test", action="store_true",
                   help="select the best epoch on the TEST split (the original papers' optimistic protocol)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from opencrop.errors import OpenCropError
    from opencrop.train.recipe import RecipeError, load_recipe
    from opencrop.train.trainer import train

    try:
        recipe = load_recipe(args.recipe, args.overrides)
    except RecipeError as e:
        print(f"opencrop train: {e}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / args.recipe.stem
    from opencrop.nn.device import resolve_device

    try:
        resolve_device(args.device)  # a usage error before any data is read
    except ValueError as e:
        print(f"opencrop train: error: {e}", file=sys.stderr)
        return 2
    try:
        res = train(recipe, out, data_root=args.data, resume=args.resume, device=args.device,
                    select_on_test=args.select_on_test, progress=not args.no_progress)
    except RecipeError as e:
        print(f"opencrop train: {e}", file=sys.stderr)
        return 2
    except OpenCropError as e:
        print(f"opencrop train: {e}", file=sys.stderr)
        return 1
    best = "n/a" if res.best_value is None else f"{res.best_value:.4f}"
    print(f"{res.run_dir}: {res.epochs_run} epochs; best {res.select_metric} {best} at epoch {res.best_epoch}; "
          f"model file {res.best_path}")
    if res.test_metrics:
        print("test: " + " ".join(f"{k} {v:.4f}" for k, v in sorted(res.test_metrics.items())))
    return 0
