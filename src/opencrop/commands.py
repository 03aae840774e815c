"""``opencrop crop`` and ``opencrop batch``: the product commands.

Output files are named ``<stem>_<W>x<H ratio>.<ext>`` (``photo_16x9.jpg``) and written atomically; one bad
input never stops the others, and is named on stderr with its problem. Names never collide within one run: when two
outputs would get the same name (``a/x.jpg`` and ``b/x.jpg`` into one folder, ``x.jpg`` and ``x.png``,
``-r 16:9 -r 16x9``) the later one gets ``-2``, ``-3``, ... before its extension and its JSON record says
``"renamed_from"``. A file left by an earlier run is replaced (atomically), as a rerun should.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["register"]

from opencrop.engine.inputs import IMAGE_SUFFIXES, iter_inputs  # noqa: F401  (IMAGE_SUFFIXES: former home)


def _ratio_tag(ratio: str) -> str:
    return ratio.replace(":", "x").replace("/", "x").replace(".", "_")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ratio", "-r", action="append", default=[], metavar="W:H",
                   help="aspect ratio, repeatable (16:9, 1:1, 4:5, 9:16, 1.91:1); default 1:1, or the --size aspect")
    p.add_argument("--size", metavar="WxH", help="resize each output to exactly this size")
    p.add_argument("--model", "-m", default="composition", help="crop model (default: composition)")
    p.add_argument("--weights", help="weight file for learned models")
    p.add_argument("--runtime", choices=["auto", "torch", "onnxruntime"], default="auto",
                   help="learned models: torch, or onnxruntime for a --weights FILE.onnx written by `opencrop export`; "
                   "auto (default): onnxruntime for an .onnx file, or when torch is not installed and FILE.onnx "
                   "lies next to the --weights file")
    p.add_argument("--random-weights", action="store_true",
                   help="allow a learned model without trained weights (its crops are random; every record says so)")
    p.add_argument("--no-cues", action="store_true", help="do not run face/person/object detectors")
    p.add_argument("--cues", metavar="LIST", help="comma-separated cues to run instead of the model's default "
                   "(faces, people, objects, saliency, person_mask); e.g. 'faces' is fastest with people protected "
                   "by their faces only")
    p.add_argument("--format", dest="fmt", default=None, choices=["jpg", "png", "webp"],
                   help="output format (default: the input's when it is jpg/png/webp, else jpg)")
    p.add_argument("--quality", type=int, default=90, help="JPEG/WebP quality (default 90)")
    p.add_argument("--degrade", action="store_true", default=None,
                   help="crop even when a detector cannot run (missing or corrupt model file); every result says so "
                   "in 'degraded' (or OPENCROP_DEGRADE=1). Without it that is an error")
    p.add_argument("--max-pixels", type=int, help="refuse inputs with more pixels (default 100 MP or "
                   "$OPENCROP_MAX_PIXELS)")
    p.add_argument("--max-output-pixels", type=int, help="refuse --size outputs with more pixels (default 40 MP or "
                   "$OPENCROP_MAX_OUTPUT_PIXELS)")
    p.add_argument("--allow-upscale", action="store_true", default=None,
                   help="allow a --size larger than the crop (upscaling); otherwise that image fails")
    p.add_argument("--analysis-size", type=int, default=None,
                   help="long side of the analysis image (default: the model's, 512)")


def register(sub: argparse._SubParsersAction, group: Callable[..., argparse._SubParsersAction]) -> None:
    p = sub.add_parser("crop", help="crop images to one or more aspect ratios",
                       description="Crop each IMAGE to every --ratio from one analysis.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    _common(p)
    p.add_argument("--out", "-o", type=Path, help="write the crops into this directory")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--debug", action="store_true",
                   help="write <stem>_debug.png: the full-size image with every cue and crop labelled, and a legend "
                   "(each crop's rule level, what it cuts, heads fitted to the ratio)")
    p.add_argument("--subject", action="append", default=[], metavar="x1,y1,x2,y2",
                   help="a box (original pixels) that must stay whole; outranks detections; repeatable")
    p.add_argument("--focus", metavar="x,y", help="a point (original pixels) to centre the crop on")
    p.set_defaults(handler=_crop_cmd)

    b = sub.add_parser("batch", help="crop a folder (or a list file) of images; resumable",
                       description="Crop every image under INPUT (a folder, searched recursively, a text file "
                                   "with one path per line, or a .parquet/.csv manifest with a column 'image' or "
                                   "'path') into OUT, mirroring the folder layout. Results are appended to "
                                   "OUT/results.jsonl; --resume skips images already done.")
    b.add_argument("input", type=Path, metavar="INPUT")
    b.add_argument("--out", "-o", type=Path, required=True)
    _common(b)
    b.add_argument("--jobs", "-j", type=int, default=None,
                   help="local: worker processes (default 1); ray: actors, one Cropper each (default: the cluster's "
                   "CPUs)")
    b.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local processes (default) or Ray Data (pip install 'opencrop[ray]'); ray also writes "
                   "OUT/results.parquet")
    b.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (ray://host:10001, 'auto'); default: "
                   "$RAY_ADDRESS, else a local Ray instance on this machine's CPUs")
    b.add_argument("--resume", action="store_true", help="skip images already listed as done in results.jsonl")
    b.set_defaults(handler=_batch_cmd)
    s = sub.add_parser("schema", help="print the JSON schema of the --json / results.jsonl / service records")
    s.set_defaults(handler=_schema_cmd)


def _schema_cmd(args: argparse.Namespace) -> int:
    from opencrop.schema import SCHEMA

    print(json.dumps(SCHEMA, indent=2))
    return 0


def _plan(args: argparse.Namespace) -> Any:
    """The API's own check of ``--ratio`` / ``--size`` (usage errors before any work); default ratio 1:1."""
    from opencrop.api import plan
    from opencrop.limits import Limits

    return plan(args.ratio or (None if args.size else ["1:1"]), args.size,
                Limits(args.max_pixels, args.max_output_pixels, args.allow_upscale))


def _out_suffix(fmt: str | None, src: Path) -> str:
    if fmt:
        return "." + fmt
    suf = src.suffix.lower()
    return suf if suf in (".jpg", ".jpeg", ".png", ".webp") else ".jpg"


def _weights_for_runtime(args: argparse.Namespace) -> str | None:
    """``--weights`` after ``--runtime``: an .onnx file runs on onnxruntime (the registry builds it), a torch file on
    torch; without torch, ``auto`` takes the exported twin ``FILE.onnx`` of ``FILE`` when there is one."""
    import importlib.util

    w = args.weights
    onnx = w is not None and str(w).lower().endswith(".onnx")
    runtime = getattr(args, "runtime", "auto")
    if runtime == "onnxruntime" and not onnx:
        raise ValueError("--runtime onnxruntime runs an exported model: give --weights FILE.onnx (write one with "
                         "`opencrop export MODEL --weights F --out FILE.onnx`)")
    if runtime == "torch" and onnx:
        raise ValueError(f"--runtime torch cannot run {w}: an .onnx file runs with --runtime onnxruntime (or auto)")
    if runtime == "auto" and w is not None and not onnx and importlib.util.find_spec("torch") is None:
        twin = Path(w).with_suffix(".onnx")
        if not twin.is_file():
            raise ImportError(f"--weights {w} needs torch (pip install 'opencrop[torch]'), or its export {twin} "
                              "(opencrop export) for onnxruntime")
        print(f"opencrop: torch is not installed: running {twin} with onnxruntime", file=sys.stderr)
        return str(twin)
    return w


def _make_cropper(args: argparse.Namespace) -> Any:
    from opencrop.api import Cropper

    cues: bool | list[str] = not args.no_cues
    if args.cues and not args.no_cues:
        cues = [c.strip() for c in args.cues.split(",") if c.strip()]
        from opencrop.cues import ALL_CUES

        unknown = set(cues) - ALL_CUES
        if unknown:
            raise ValueError(f"unknown cue(s) {sorted(unknown)}; choose from {sorted(ALL_CUES)}")
    return Cropper(args.model, weights=_weights_for_runtime(args), cues=cues, analysis_size=args.analysis_size,
                   random_weights=args.random_weights, max_pixels=args.max_pixels,
                   max_output_pixels=args.max_output_pixels, allow_upscale=args.allow_upscale, degrade=args.degrade)


def _unique(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``<stem>-2<suffix>``, ``-3``, ... : the first name not in ``taken`` (which it joins)."""
    out, k = path, 1
    while out in taken:
        k += 1
        out = path.with_name(f"{path.stem}-{k}{path.suffix}")
    taken.add(out)
    return out


def _targets(path: Path, out_dir: Path, args: argparse.Namespace, taken: set[Path], debug: bool = False
             ) -> list[Path]:
    """Output paths of ``path``'s crops (one per ``args.ratio``, then the debug overlay), distinct from ``taken``."""
    suffix = _out_suffix(args.fmt, path)
    names = [out_dir / f"{path.stem}_{_ratio_tag(r)}{suffix}" for r in args.ratio]
    if debug:
        names.append(out_dir / f"{path.stem}_debug.png")
    return [_unique(n, taken) for n in names]


def _process(cropper: Any, path: Path, args: argparse.Namespace, targets: list[Path] | None, subject: Any = None,
             focus: Any = None, debug: bool = False) -> dict[str, Any]:
    """Crop one image, writing to ``targets`` (from :func:`_targets`; ``None``: write nothing); returns its JSON
    record. Raises OpenCropError for a bad input."""
    from opencrop.io import save_image

    res = cropper.run(path, ratios=args.ratio, size=args.size, subject=subject, focus=focus,
                      runners_up=3 if debug else 0)
    an, crops = res.analysis, res.crops
    rec = res.to_dict()
    rec["image"] = str(path)
    for i, (c, d) in enumerate(zip(crops, rec["crops"], strict=True)):
        d["output"] = None
        if targets is not None:
            from opencrop.io import crop_image

            pic = c.image if c.image is not None else crop_image(an.image, c.box)
            target = targets[i]
            save_image(pic, target, quality=args.quality)
            d["output"] = str(target)
            wanted = f"{path.stem}_{_ratio_tag(c.ratio)}{target.suffix}"
            if target.name != wanted:
                d["renamed_from"] = wanted
    if debug and targets is not None:
        from opencrop.debug import overlay

        save_image(overlay(an, crops), targets[-1])
        rec["debug"] = str(targets[-1])
    return rec


def _crop_cmd(args: argparse.Namespace) -> int:
    from opencrop.api import parse_numbers
    from opencrop.errors import OpenCropError

    try:
        args.ratio = list(_plan(args).labels)
        subject = [parse_numbers(s, 4, "--subject") for s in args.subject] or None
        focus = tuple(parse_numbers(args.focus, 2, "--focus")) if args.focus else None
        if args.debug and args.out is None:
            raise ValueError("--debug writes an overlay next to the outputs: give --out DIR")
        cropper = _make_cropper(args)
    except (ValueError, KeyError, TypeError, ImportError, OpenCropError) as e:  # bad options, model, weights, cues
        print(f"opencrop crop: error: {e}", file=sys.stderr)
        return _setup_exit(e)
    failed = 0
    taken: set[Path] = set()
    for name in args.images:
        path = Path(name)
        targets = _targets(path, args.out, args, taken, args.debug) if args.out is not None else None
        try:
            rec = _process(cropper, path, args, targets, subject, focus, args.debug)
        except OpenCropError as e:
            print(f"opencrop: {e}", file=sys.stderr)
            failed += 1
            continue
        except ValueError as e:  # e.g. a size whose aspect does not match --ratio
            print(f"opencrop crop: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:  # unwritable output and the like: this input failed, keep going
            print(f"opencrop: {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        _print_record(rec, args.json)
    return 1 if failed else 0


def _setup_exit(e: Exception) -> int:
    """Exit status of a failed set-up: 1 for what the machine lacks (a cue's runtime or model file), 2 for usage
    (including a bad ``--weights`` file, an argument)."""
    from opencrop.errors import CueUnavailableError

    return 1 if isinstance(e, CueUnavailableError | ImportError) else 2


def _print_record(rec: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rec), flush=True)
        return
    for c in rec["crops"]:
        x1, y1, x2, y2 = c["box"]
        tail = f"  -> {c['output']}" if c["output"] else ""
        print(f"{rec['image']}  {c['ratio']:>7}  {x1},{y1},{x2},{y2}  score {c['score']:.3f}{tail}", flush=True)


# -- batch --------------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _batch_one(job: tuple[Path, list[Path], argparse.Namespace]) -> dict[str, Any]:
    path, targets, args = job
    if "cropper" not in _WORKER:
        _WORKER["cropper"] = _make_cropper(args)
    return _batch_record(_WORKER["cropper"], path, targets, args)


def _batch_record(cropper: Any, path: Path, targets: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    """One batch item: crop ``path`` into ``targets`` → its record (``status`` ok / error, ``ms``); a bad input is
    an error record, never an exception (every engine calls this)."""
    from opencrop.errors import OpenCropError

    t0 = time.perf_counter()
    try:
        rec = _process(cropper, path, args, targets)
        rec["status"] = "ok"
    except (OpenCropError, OSError) as e:
        from opencrop.schema import SCHEMA_ID

        rec = {"schema": SCHEMA_ID, "image": str(path), "status": "error", "error": str(e)}
    rec["ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return rec


def _batch_cmd(args: argparse.Namespace) -> int:
    from opencrop.errors import OpenCropError

    try:
        args.ratio = list(_plan(args).labels)
        jobs_in = list(iter_inputs(args.input))
        _make_cropper(args)  # fail fast on a bad model name, missing weights or cue files before forking workers
        if args.engine == "ray":
            from opencrop.engine.ray import require_ray

            require_ray()
    except (ValueError, KeyError, TypeError, FileNotFoundError, ImportError, OpenCropError) as e:
        print(f"opencrop batch: error: {e}", file=sys.stderr)
        return _setup_exit(e)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "results.jsonl"
    done: set[str] = set()
    if log.exists():
        _repair_jsonl(log)
    job_key = _job_key(args)
    if args.resume and log.exists():
        for line in log.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            # done only for the same job: other ratios, size, model or format are work still to do
            if r.get("status") == "ok" and r.get("job") == job_key:
                done.add(r["image"])
    taken: set[Path] = set()  # over every input, done or not, so names are the same on resume
    todo = [(p, targets, args) for p, rel in jobs_in
            if (targets := _targets(p, args.out / rel.parent, args, taken)) and str(p) not in done]
    failed = 0
    t0 = time.perf_counter()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        if args.engine == "ray":
            from opencrop.engine.ray import run_ray

            records = run_ray(todo, args)
        else:
            records = _run_jobs(todo, args.jobs or 1)
        for i, rec in enumerate(records, 1):
            rec["job"] = job_key
            line = (json.dumps(rec) + "\n").encode()
            if os.write(fd, line) != len(line):  # one O_APPEND write per record: whole lines or an error
                raise OSError(f"{log}: short write of a result line")
            os.fsync(fd)
            if rec["status"] != "ok":
                failed += 1
                print(f"opencrop: {rec['error']}", file=sys.stderr)
            if sys.stderr.isatty():
                print(f"\r{i}/{len(todo)} images, {failed} failed", end="", file=sys.stderr)
    finally:
        os.close(fd)
    if args.engine == "ray":
        from opencrop.engine.results import write_parquet

        write_parquet(log, args.out / "results.parquet")
    dt = time.perf_counter() - t0
    print(f"{len(todo) - failed} cropped, {failed} failed, {len(done)} skipped (already done) in {dt:.1f} s; "
          f"results in {log}", file=sys.stderr)
    return 1 if failed else 0


def _job_key(args: argparse.Namespace) -> str:
    """What makes two batch results interchangeable: ratios, size, model, weights, format, quality."""
    return json.dumps([list(args.ratio), args.size, args.model, args.weights, args.fmt, args.quality])


def _repair_jsonl(log: Path) -> None:
    """Cut a half-written last line (a kill during a write) so the next record starts on a line of its own."""
    data = log.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(log, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        print(f"opencrop batch: {log}: dropped a half-written last line ({len(data) - keep} bytes)", file=sys.stderr)


def _run_jobs(todo: list[tuple[Path, list[Path], argparse.Namespace]], jobs: int) -> Iterable[dict[str, Any]]:
    if jobs <= 1 or len(todo) <= 1:
        yield from map(_batch_one, todo)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap(_batch_one, todo, chunksize=1)
