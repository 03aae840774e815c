"""``opencrop outpaint caption|paint|filter|segment|select|all``: GenCrop's data pipeline. No torch at import."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _part(s: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in s.split("/"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--part must be i/n, e.g. 0/4, got {s!r}") from e
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--part {s}: need n >= 1 and 0 <= i < n")
    return i, n


def register(sub: argparse._SubParsersAction, group: Callable[..., argparse._SubParsersAction]) -> None:
    g = group("outpaint", "GenCrop's data pipeline: caption, outpaint, filter, segment, select photos")

    def common(p: argparse.ArgumentParser, photos: bool = True) -> None:
        if photos:
            p.add_argument("photos", type=Path, help="folder of photos img<ID>.jpg")
        p.add_argument("out", type=Path, help="output folder (the published layout)")
        p.add_argument("--part", type=_part, default=None, metavar="i/n", help="process the i-th of n slices")
        p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
        p.add_argument("--no-progress", action="store_true")

    def caption_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--captioner", choices=["none", "blip2"], default="none",
                       help="none (empty prompts, for --outpainter cpu) or blip2 (needs --blip DIR)")
        p.add_argument("--blip", type=Path, default=None, help="local BLIP-2 model directory (save_pretrained)")

    def paint_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--outpainter", choices=["cpu", "sd2"], default="cpu",
                       help="cpu (classical, offline) or sd2 (Stable-Diffusion-2 inpainting, needs --sd DIR)")
        p.add_argument("--sd", type=Path, default=None, help="local SD-2-inpainting directory (save_pretrained)")
        p.add_argument("--variants", type=int, default=5, help="outpaints per photo (5)")
        p.add_argument("--canvas", type=int, default=512, help="canvas side in pixels (512)")
        p.add_argument("--steps", type=int, default=50)
        p.add_argument("--guidance", type=float, default=4.0)
        p.add_argument("--seed", type=int, default=0)

    def filter_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quality", type=Path, default=None,
                       help="bad-outpaint classifier: an opencrop model file or quality_model/model.pt "
                            "(without it every outpaint is kept, and the command says so)")

    def seg_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--segmenter", choices=["cues", "yolov8"], default="cues",
                       help="cues (opencrop's person detector + person mask) or yolov8 (needs --yolo FILE)")
        p.add_argument("--yolo", type=Path, default=None, help="local yolov8*-seg.pt")
        p.add_argument("--cls", default="person", help="COCO class of the subject (person)")

    for name, help_, opts, photos in (
        ("caption", "caption every photo (captions/blip<ID>.txt)", [caption_opts], True),
        ("paint", "outpaint every photo into canvases (images/img<ID>_X_Y_W_H.jpg)", [paint_opts], True),
        ("filter", "score outpaints with the bad-outpaint classifier (bad.json)", [filter_opts], False),
        ("segment", "segment photos and outpaints (detect.json.gz, mask.npz, subjects.json)", [seg_opts], True),
        ("select", "write train/val/test splits and report the heuristic filter", [], False),
        ("all", "every stage in order", [caption_opts, paint_opts, filter_opts, seg_opts], True),
    ):
        p = g.add_parser(name, help=help_, description=help_)
        common(p, photos)
        for o in opts:
            o(p)
        if name == "select":
            p.add_argument("--val", type=float, default=0.05)
            p.add_argument("--test", type=float, default=0.05)
            p.add_argument("--no-bad-filter", action="store_true")
            p.add_argument("--no-heuristic-filter", action="store_true")
        p.set_defaults(handler=_run, stage=name)


def _backends(args: argparse.Namespace) -> dict[str, Any]:
    from opencrop.outpaint import backends as B

    out: dict[str, Any] = {}
    st = args.stage
    if st in ("caption", "all"):
        out["captioner"] = B.Blip2Captioner(args.blip, args.device) if args.captioner == "blip2" else B.NoCaptioner()
    if st in ("paint", "all"):
        out["outpainter"] = (B.SD2Outpainter(args.sd, args.device, args.steps, args.guidance)
                             if args.outpainter == "sd2" else B.CpuOutpainter())
    if st in ("filter", "all"):
        out["classifier"] = B.QualityFilter(args.quality, args.device) if args.quality is not None else None
    if st in ("segment", "all"):
        out["segmenter"] = (B.YoloSegmenter(args.yolo, args.cls, args.device) if args.segmenter == "yolov8"
                            else B.CueSegmenter(args.cls))
    return out


def _run(args: argparse.Namespace) -> int:
    from opencrop.errors import OpenCropError
    from opencrop.outpaint import stages

    prog = not args.no_progress
    try:
        b = _backends(args)
        st = args.stage
        if st == "caption":
            res: Any = {"captioned": stages.caption(args.photos, args.out, b["captioner"], args.part, progress=prog)}
        elif st == "paint":
            res = {"painted": stages.paint(args.photos, args.out, b["outpainter"], args.part, args.variants,
                                           args.canvas, args.seed, progress=prog)}
        elif st == "filter":
            res = {"scored": stages.filter_bad(args.out, b["classifier"], args.part, progress=prog)}
        elif st == "segment":
            res = {"segmented": stages.segment(args.photos, args.out, b["segmenter"], args.part, progress=prog)}
        elif st == "select":
            res = stages.select(args.out, args.val, args.test, not args.no_bad_filter, not args.no_heuristic_filter)
        else:
            res = stages.run_all(args.photos, args.out, b["captioner"], b["outpainter"], b["classifier"],
                                 b["segmenter"], args.part, args.variants, args.canvas, args.seed, progress=prog)
    except (OpenCropError, ValueError) as e:
        print(f"opencrop outpaint {args.stage}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(res))
    return 0
