"""``opencrop eval``: evaluate a registered model on a dataset and print the paper's table beside ours.

No torch at import time: everything heavy is imported inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, group: Callable[[str, str], argparse._SubParsersAction]) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a crop model on a benchmark (GAICD, CPC, FCDB, FLMS, SACD, GenCrop)",
        description="Evaluate a registered crop model on FORMAT:DIR and print the paper's table beside ours.",
    )
    p.add_argument("--model", required=True, help="registered model name (see `opencrop models`)")
    p.add_argument("--weights", help="weight file passed to the model (only when given)")
    p.add_argument("--precision", choices=["fp32", "bf16"],
                   help="inference precision of a learned model (bf16: gaic / s2cnet on a CPU with native bf16; "
                        "recorded in --json)")
    p.add_argument("--dataset", required=True, metavar="FORMAT:DIR", help="e.g. gaicd:/data/GAICD, flms:/data/FLMS")
    p.add_argument("--split", help="split name (default: the format's test split)")
    p.add_argument("--subset", choices=["human"], help="HCIC human subset")
    p.add_argument(
        "--candidates",
        default="auto",
        choices=["auto", "lvrn", "grid", "ratios"],
        help="candidates for GT-crop datasets: LVRN anchors (HCIC protocol), the GAIC grid or "
        "1:1/4:3/3:4/16:9/9:16 windows; "
        "auto = lvrn when the anchors are available, else grid",
    )
    p.add_argument("--anchors", help="LVRN pdefined_anchors.pkl (sha256-checked)")
    p.add_argument(
        "--set-metrics",
        action="store_true",
        help="GAICD: also Rethinking's best-crop hit rate and AP over good crops (MOS >= 4), in the JSON",
    )
    p.add_argument("--random-weights", action="store_true",
                   help="allow a learned model without trained weights (its numbers are meaningless)")
    p.add_argument("--no-cues", action="store_true", help="do not run the detectors the model uses")
    p.add_argument("--degrade", action="store_true",
                   help="evaluate even when a detector the model uses cannot run (the output says which)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images (smoke tests)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write metrics and per-image predictions here")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import opencrop.models.baselines  # noqa: F401  (registers the baselines)
    from opencrop.data.registry import load_dataset, parse_spec
    from opencrop.errors import OpenCropError
    from opencrop.eval.paper_numbers import paper_table
    from opencrop.eval.report import format_table
    from opencrop.eval.runner import evaluate, resolve_lvrn_anchors, stderr_progress
    from opencrop.models import create_model

    try:
        fmt, _ = parse_spec(args.dataset)
        records = load_dataset(args.dataset, split=args.split, subset=args.subset)
    except (ValueError, TypeError, OpenCropError) as e:
        print(f"opencrop eval: {e}", file=sys.stderr)
        return 2 if isinstance(e, (ValueError, TypeError)) else 1
    if args.limit:
        records = records[: args.limit]
    if not records:
        print(f"opencrop eval: {args.dataset}: no images in split {args.split or 'default'}", file=sys.stderr)
        return 1
    try:
        model = create_model(args.model, **({"weights": args.weights} if args.weights else {}),
                             **({"precision": args.precision} if args.precision else {}))
    except KeyError as e:
        print(f"opencrop eval: {e.args[0]}", file=sys.stderr)
        return 2
    except TypeError as e:  # e.g. --weights for a model without weights
        print(f"opencrop eval: model {args.model!r} does not take these options: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # e.g. --precision bf16 for a model without it
        print(f"opencrop eval: {e}", file=sys.stderr)
        return 2
    except OpenCropError as e:  # a missing or corrupt weight file
        print(f"opencrop eval: {e}", file=sys.stderr)
        return 1
    from opencrop.api import Cropper
    from opencrop.errors import CueUnavailableError, UntrainedModelError
    from opencrop.models.base import CUE_NAMES

    want = sorted(set(getattr(model, "needs", ())) & CUE_NAMES) if not args.no_cues else []
    try:
        cropper = Cropper(model, cues=want or False, random_weights=args.random_weights, degrade=args.degrade or None)
    except UntrainedModelError as e:
        print(f"opencrop eval: {e}", file=sys.stderr)
        return 2
    except CueUnavailableError as e:
        print(f"opencrop eval: {e}", file=sys.stderr)
        return 1
    anchors = None
    if args.candidates in ("auto", "lvrn"):
        try:
            anchors = resolve_lvrn_anchors(args.anchors)
        except OpenCropError as e:
            print(f"opencrop eval: {e}", file=sys.stderr)
            return 1
    try:
        res = evaluate(
            cropper, records, args.candidates, anchors, None if args.quiet else stderr_progress, args.set_metrics
        )
    except OpenCropError as e:
        print(f"opencrop eval: {e}", file=sys.stderr)
        return 1
    paper = paper_table(fmt, args.subset)
    title = (
        f"{args.dataset} split={args.split or 'default'}"
        + (f" subset={args.subset}" if args.subset else "")
        + f": {len(records)} images"
        + (f", candidates={res.candidates}" if res.candidates else "")
    )
    print(format_table(res.protocol, args.model, res.metrics, paper, title))
    if cropper.random_weights:
        print(f"note: {args.model} ran with random weights (--random-weights): these are not results", file=sys.stderr)
    if cropper.degraded:
        print(f"note: degraded: {', '.join(sorted(cropper.degraded))} could not run (--degrade)", file=sys.stderr)
    if args.json_out:
        out = {
            "model": args.model,
            "weights": args.weights,
            "dataset": args.dataset,
            "format": fmt,
            "split": args.split,
            "subset": args.subset,
            "protocol": res.protocol,
            "candidates": res.candidates,
            "metrics": res.metrics,
            "random_weights": cropper.random_weights,
            "precision": getattr(model, "precision", "fp32"),
            "degraded": cropper.degraded,
            "paper": paper,
            "per_image": res.per_image,
        }
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=1))
    return 0
