"""The SSD with int8 class heads against the float32 graph: speed of the pass and agreement of the detections.

Photos: the 25 of ``benchmarks/subject.py`` (shipped with installed packages) and the 7 JPEGs of
``benchmarks/latency.py``; each is loaded as ``Cropper.analyze`` loads it (``load_frame`` at the default analysis
size) and goes through the cue's own preprocessing (``objects._raw``: grey padding beyond 4:3, 300² stretch).

* **Agreement** (``objects._raw`` with ``OPENCROP_SSD_PRECISION`` fp32, then int8): per class, the float32
  detections at the cue's thresholds (person 0.5, objects 0.4) with an int8 detection of the same class at
  IoU ≥ 0.7 that also passes (matched, with the score difference), those without (lost), int8 detections without a
  float32 one (gained); the same for the object proposals (score 0.2 up to the class threshold).
* **Speed**: the converted ``full`` and ``full-int8`` sessions (the cue's session options) on the same 300² inputs,
  interleaved (every input, both graphs in alternating order, ``--reps`` rounds), 1 and 2 intra-op threads;
  median wall and process CPU ms per pass.

* ``--ort-quantize DIR``: also ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights,
  uint8 activations, MinMax calibration on the same photos' 300² inputs) of the float32 graph, quantising the
  whole net, every Conv, Conv + Add + Clip without the box regressors, or the class-head Convs only: agreement and
  speed of each beside the cue's graph (needs the ``onnx`` package).

  ``--ort-skip K ...`` adds Conv + Add + Clip with the first K Convs (stem and early blocks) left float.

    python benchmarks/ssd_int8.py [--reps 3] [--threads 1 2] [--ort-quantize /tmp/ssd-ort [--ort-skip 10 25 40]]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cues_latency import _cpu

IOU = 0.7


def analysis_images() -> dict[str, np.ndarray]:
    """Photo name → the analysis image ``Cropper.analyze`` hands to the cues (``[H, W, 3]`` uint8 RGB)."""
    import latency
    import subject

    from opencrop import Cropper
    from opencrop.io import load_frame

    c = Cropper(cues=())
    photos, skipped = subject.load_photos()
    for s in skipped:
        print(f"skipped: {s}", file=sys.stderr)
    srcs: dict[str, object] = {p.name: p.pixels for p in photos}
    srcs.update({f"latency:{n}": b for n, b in latency.photos().items()})
    return {n: load_frame(b, c.analysis_size, c.limits.max_pixels).pixels
            for n, b in srcs.items()}


def _rows(img: np.ndarray, precision: str) -> np.ndarray:
    from opencrop.cues import objects

    os.environ["OPENCROP_SSD_PRECISION"] = precision
    try:
        assert objects.runtime() == f"onnxruntime, {'int8 class heads' if precision == 'int8' else 'float32'}"
        return objects._raw(img)
    finally:
        del os.environ["OPENCROP_SSD_PRECISION"]


@contextlib.contextmanager
def _as_int8_graph(session):
    """The cue's ``full-int8`` session replaced by ``session`` (an onnxruntime.quantization variant) meanwhile."""
    from opencrop.cues import objects
    from opencrop.cues._runtime import Lazy

    sessions = objects._ORT.get().sessions
    saved = sessions["full-int8"]
    sessions["full-int8"] = Lazy(lambda: session)
    try:
        yield
    finally:
        sessions["full-int8"] = saved


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy box ``a`` ``[4]`` with each of ``b`` ``[M, 4]``."""
    x1, y1 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x2, y2 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


def _tier(rows: np.ndarray, tier: str) -> np.ndarray:
    from opencrop.cues.objects import PROPOSAL_SCORE

    thr = np.where(rows[:, 0] == 1, 0.5, 0.4)
    keep = rows[:, 1] >= thr if tier == "detections" else (rows[:, 1] >= PROPOSAL_SCORE) & (rows[:, 1] < thr)
    return rows[keep]


def agreement(images: dict[str, np.ndarray], session=None) -> tuple[dict, list[str]]:
    """``{tier: {class: {"ref", "matched", "lost", "gained", "diffs"}}}`` and one line per lost/gained box, for the
    cue's int8 graph or ``session`` in its place."""
    from opencrop.cues.objects import COCO_LABELS

    stats: dict = {t: defaultdict(lambda: {"ref": 0, "matched": 0, "lost": 0, "gained": 0, "diffs": []})
                   for t in ("detections", "proposals")}
    changes = []
    for name, img in images.items():
        ref = _rows(img, "fp32")
        with _as_int8_graph(session) if session is not None else contextlib.nullcontext():
            new = _rows(img, "int8")
        for tier, st in stats.items():
            a, b = _tier(ref, tier), _tier(new, tier)
            used: set[int] = set()
            for d in a:
                label = COCO_LABELS[int(d[0])]
                st[label]["ref"] += 1
                same = [j for j in np.nonzero(b[:, 0] == d[0])[0] if j not in used]
                ious = _iou(d[2:], b[same, 2:]) if same else np.zeros(0)
                if len(ious) and ious.max() >= IOU:
                    j = same[int(np.argmax(ious))]
                    used.add(j)
                    st[label]["matched"] += 1
                    st[label]["diffs"].append(float(b[j, 1] - d[1]))
                else:
                    st[label]["lost"] += 1
                    changes.append(f"{tier} lost: {name} {label} {d[1]:.3f}")
            for j, e in enumerate(b):
                if j not in used:
                    st[COCO_LABELS[int(e[0])]]["gained"] += 1
                    changes.append(f"{tier} gained: {name} {COCO_LABELS[int(e[0])]} {e[1]:.3f}")
    return stats, changes


def speed(images: dict[str, np.ndarray], threads: int, reps: int, paths: dict[str, Path] | None = None
          ) -> dict[str, tuple[float, float]]:
    """Median wall and CPU ms per pass of the ``full`` and ``full-int8`` graphs (and of the models in ``paths``, with
    the same session options), interleaved."""
    import cv2
    import onnxruntime as ort

    from opencrop.cues import objects
    from opencrop.cues._ssd_onnx import GRAPHS

    os.environ["OPENCROP_SSD_THREADS"] = str(threads)
    try:
        sess = {g: objects._session(GRAPHS.index(g)) for g in ("full", "full-int8")}
        opts = sess["full"].get_session_options()
        sess.update({k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                     for k, p in (paths or {}).items()})
    finally:
        del os.environ["OPENCROP_SSD_THREADS"]
    xs = []
    for img in images.values():
        padded, _ = objects._pad_to_aspect(img, objects.MAX_ASPECT)
        xs.append(cv2.resize(padded, (300, 300), interpolation=cv2.INTER_LINEAR)[None])
    for s in sess.values():
        s.run(None, {"image": xs[0]})
    wall: dict[str, list[float]] = {g: [] for g in sess}
    cpu: dict[str, list[float]] = {g: [] for g in sess}
    order = list(sess)
    for r in range(reps):
        for i, x in enumerate(xs):
            k = (r * len(xs) + i) % len(order)
            for g in order[k:] + order[:k]:  # rotating order
                t, c = time.perf_counter(), time.process_time()
                sess[g].run(None, {"image": x})
                wall[g].append((time.perf_counter() - t) * 1000)
                cpu[g].append((time.process_time() - c) * 1000)
    return {g: (statistics.median(wall[g]), statistics.median(cpu[g])) for g in sess}


#: onnxruntime.quantization variants (static QDQ, MinMax calibration on the photos' 300² inputs, per-channel int8
#: weights, uint8 activations), compared with the cue's own int8 graph
ORT_VARIANTS = ("whole net", "every Conv", "Conv + Add + Clip, box regressors float", "class-head Convs only")


def ort_variants(images: dict[str, np.ndarray], folder: Path, skips: tuple[int, ...] = ()) -> dict[str, Path]:
    """Quantise the cached float32 ``full`` graph with ``onnxruntime.quantization`` (needs the ``onnx`` package, the
    export extra) in each of :data:`ORT_VARIANTS`, and as Conv + Add + Clip with the first ``k`` Convs (graph
    order: the stem, then the blocks) and everything before them float, for each ``k`` of ``skips``; the model
    files written to ``folder``."""
    import cv2
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from opencrop.cues import objects
    from opencrop.cues._ssd_onnx import GRAPHS

    objects.convert_for_onnxruntime()
    src = objects._converted_paths()[GRAPHS.index("full")]
    xs = [cv2.resize(objects._pad_to_aspect(im, objects.MAX_ASPECT)[0], (300, 300),
                     interpolation=cv2.INTER_LINEAR)[None] for im in images.values()]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(xs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"image": x}

    folder.mkdir(parents=True, exist_ok=True)
    pre = folder / "full-pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    m = onnx.load(str(pre))
    out_ch = {i.name: i.dims[0] for i in m.graph.initializer}
    nodes = list(m.graph.node)
    convs = [(n.name, out_ch[n.input[1]]) for n in nodes if n.op_type == "Conv"]
    conv_at = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    heads = [n for n, c in convs if c in (3 * 80, 6 * 80)]  # class heads: 80 scores per anchor
    loc = [n for n, c in convs if c in (3 * 4, 6 * 4)]  # box regressors: 4 offsets per anchor
    kwargs = {"whole net": {},
              "every Conv": {"op_types_to_quantize": ["Conv"]},
              "Conv + Add + Clip, box regressors float": {"op_types_to_quantize": ["Conv", "Add", "Clip"],
                                                          "nodes_to_exclude": loc},
              "class-head Convs only": {"op_types_to_quantize": ["Conv"], "nodes_to_quantize": heads}}
    for k in skips:
        kwargs[f"Conv + Add + Clip after the first {k} of {len(convs)} Convs, box regressors float"] = {
            "op_types_to_quantize": ["Conv", "Add", "Clip"],
            "nodes_to_exclude": [n.name for n in nodes[: conv_at[k]]] + loc}
    paths = {}
    for name in kwargs:
        paths[name] = folder / f"full-ort-{len(paths)}.onnx"
        quantize_static(str(pre), str(paths[name]), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, **kwargs[name])
    return paths


def _totals(st: dict) -> tuple[int, int, int, int, np.ndarray]:
    ref, matched, lost, gained = (sum(s[k] for s in st.values()) for k in ("ref", "matched", "lost", "gained"))
    return ref, matched, lost, gained, np.abs([d for s in st.values() for d in s["diffs"]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="interleaved timing rounds over every photo")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="onnxruntime intra-op threads")
    ap.add_argument("--no-speed", action="store_true", help="agreement only")
    ap.add_argument("--ort-quantize", type=Path, metavar="DIR",
                    help="also compare onnxruntime.quantization's static variants (written to DIR; needs onnx)")
    ap.add_argument("--ort-skip", type=int, nargs="*", default=[], metavar="K",
                    help="with --ort-quantize: also Conv + Add + Clip with the first K Convs float")
    args = ap.parse_args()
    import onnxruntime as ort

    from opencrop.cues import objects

    if objects.backend() != "onnxruntime":
        raise SystemExit("the int8 graphs run on onnxruntime; it is unavailable here")
    start = dt.datetime.now(dt.timezone.utc)
    load0 = os.getloadavg()[0]
    images = analysis_images()
    print(f"{start:%Y-%m-%d %H:%M} UTC, {_cpu()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}; "
          f"{len(images)} photos; 1-min load {load0:.1f} at the start\n")
    stats, changes = agreement(images)
    for tier, st in stats.items():
        print(f"{tier} (IoU ≥ {IOU}, same class):\n")
        print("| class | float32 | matched | lost | gained | median / max abs score diff |")
        print("|---|---:|---:|---:|---:|---|")
        tot = {"ref": 0, "matched": 0, "lost": 0, "gained": 0, "diffs": []}
        for label in sorted(st, key=lambda k: -st[k]["ref"]):
            s = st[label]
            d = np.abs(s["diffs"])
            print(f"| {label} | {s['ref']} | {s['matched']} | {s['lost']} | {s['gained']} | "
                  + (f"{np.median(d):.4f} / {d.max():.4f} |" if len(d) else "- |"))
            for k in tot:
                tot[k] += s[k]
        d = np.abs(tot["diffs"])
        print(f"| **all** | {tot['ref']} | {tot['matched']} | {tot['lost']} | {tot['gained']} | "
              + (f"{np.median(d):.4f} / {d.max():.4f} |" if len(d) else "- |") + "\n")
    for line in changes:
        print(line)
    variants = {}
    if args.ort_quantize:
        import onnxruntime as ort

        variants = ort_variants(images, args.ort_quantize, tuple(args.ort_skip))
        print("\nonnxruntime.quantization static QDQ variants (MinMax calibration on these photos):\n")
        print("| variant | detections matched / lost / gained | proposals matched / lost / gained | "
              "median / max abs score diff (detections) |")
        print("|---|---|---|---|")
        rows = {"cue's int8 class heads (fixed ranges)": stats}
        for name, path in variants.items():
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            rows[f"ort: {name}"] = agreement(images, sess)[0]
        for name, st in rows.items():
            (_, dm, dl, dg, d), (_, pm, pl, pg, _) = _totals(st["detections"]), _totals(st["proposals"])
            print(f"| {name} | {dm} / {dl} / {dg} | {pm} / {pl} / {pg} | {np.median(d):.4f} / {d.max():.4f} |")
    if not args.no_speed:
        print("\n| intra-op threads | graph | wall ms | CPU ms | speed-up wall / CPU | load |")
        print("|---:|---|---:|---:|---|---:|")
        for t in args.threads:
            r = speed(images, t, args.reps, {f"ort: {k}": p for k, p in variants.items()})
            fw, fc = r["full"]
            for g, (w, c) in r.items():
                print(f"| {t} | {g} | {w:.1f} | {c:.1f} | {fw / w:.2f} / {fc / c:.2f} | {os.getloadavg()[0]:.1f} |")
    print(f"\nended {dt.datetime.now(dt.timezone.utc):%H:%M} UTC, 1-min load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
