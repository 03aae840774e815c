"""The SSD on LiteRT (XNNPACK) instead of onnxruntime: same network, same 300² inputs, speed per pass.

A question for the default cues' latency (issue #13): would the TFLite runtime that already runs the face detector
run the SSD faster than onnxruntime? The frozen TF graph's feature extractor and box predictors (``Preprocessor/sub``
→ ``concat``, ``concat_1``: box encodings and the 91-way class logits of the 1917 anchors) are converted to a
float32 ``.tflite`` with TensorFlow's converter — TensorFlow is needed for that step only, in a separate
environment, never by opencrop:

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.20.0
    /tmp/tfenv/bin/python benchmarks/ssd_litert.py --convert /tmp/ssd_fp32.tflite \
        --pb ~/.cache/opencrop/models/ssd_mobilenet_v2_coco_frozen_inference_graph.pb

(the ``.pb`` that ``opencrop models fetch`` put in the model cache).

Then, in opencrop's environment (``ai-edge-litert`` and ``onnxruntime`` are its dependencies):

    python benchmarks/ssd_litert.py --tflite /tmp/ssd_fp32.tflite [--reps 30]

prints, for 1 and 2 threads, the median wall and process CPU ms per pass of the LiteRT graph (all 91 classes in
float32) and of the cue's two onnxruntime graphs (``full``: float32, 80 classes; ``full-int8``: int8 class heads,
the default), interleaved on the seven ``benchmarks/latency.py`` photos at the cue's 300² input, and the largest
difference between LiteRT's and onnxruntime's float32 class scores (the same network: ≈ 1e-5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def convert(pb: Path, out: Path) -> None:
    """Write the float32 TFLite graph of the frozen graph ``pb``'s feature extractor + box predictors (needs
    ``tensorflow``)."""
    import tensorflow as tf

    conv = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(pb), ["Preprocessor/sub"], ["concat", "concat_1"], {"Preprocessor/sub": [1, 300, 300, 3]})
    out.write_bytes(conv.convert())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _inputs() -> list[np.ndarray]:
    """The 300² uint8 RGB inputs the cue makes from the seven latency photos (``objects._pad_to_aspect`` + resize)."""
    import cv2
    from latency import photos

    from opencrop import Cropper
    from opencrop.cues import objects
    from opencrop.io import load_frame

    c = Cropper(cues=())
    out = []
    for data in photos().values():
        px = load_frame(data, c.analysis_size, c.limits.max_pixels).pixels
        padded, _ = objects._pad_to_aspect(px, objects.MAX_ASPECT)
        out.append(cv2.resize(padded, (300, 300), interpolation=cv2.INTER_LINEAR))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--convert", type=Path, help="write the TFLite graph here (needs tensorflow) and stop")
    ap.add_argument("--pb", type=Path, help="with --convert: the SSD's frozen TF graph")
    ap.add_argument("--tflite", type=Path, help="the converted TFLite graph to time")
    ap.add_argument("--reps", type=int, default=15, help="interleaved rounds per photo")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    if args.convert:
        if not args.pb:
            ap.error("--convert needs --pb PATH")
        convert(args.pb.expanduser(), args.convert)
        return 0
    if not args.tflite:
        ap.error("give --convert OUT or --tflite PATH")
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    from cues_latency import _cpu

    from opencrop.cues import objects
    from opencrop.cues._ssd_onnx import CLASS_IDS

    xs = _inputs()
    paths = objects._converted_paths()
    names = {"full": paths[1], "full-int8": paths[3]}
    cols = np.asarray(CLASS_IDS)
    print(f"{_cpu()}; onnxruntime {ort.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| threads | graph | wall ms | CPU ms |\n|---:|---|---:|---:|")
    for th in args.threads:
        it = Interpreter(str(args.tflite), num_threads=th)
        it.allocate_tensors()
        inp = it.get_input_details()[0]["index"]
        logits = next(d["index"] for d in it.get_output_details() if d["shape"][-1] == 91)

        def lite(x: np.ndarray, it=it, inp=inp, logits=logits) -> np.ndarray:
            it.set_tensor(inp, (x[None].astype(np.float32) * (2 / 255) - 1).astype(np.float32))
            it.invoke()
            return it.get_tensor(logits)[0]

        runs = {"LiteRT XNNPACK, float32, 91 classes": lite}
        sessions = {}
        for label, p in names.items():
            o = ort.SessionOptions()
            o.intra_op_num_threads = th
            o.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the cue
            sessions[label] = ort.InferenceSession(str(p), o, providers=["CPUExecutionProvider"])
            runs[f"onnxruntime {label}"] = lambda x, s=sessions[label]: s.run(["scores"], {"image": x[None]})[0]
        diff = max(float(np.abs(1 / (1 + np.exp(-lite(x)[:, cols])) - runs["onnxruntime full"](x)).max()) for x in xs)
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        for x in xs:
            for f in runs.values():
                f(x)
            for k in range(args.reps):
                order = list(runs.items())
                for label, f in order[k % len(order):] + order[: k % len(order)]:
                    t, c = time.perf_counter(), time.process_time()
                    f(x)
                    wall[label].append((time.perf_counter() - t) * 1e3)
                    cpu[label].append((time.process_time() - c) * 1e3)
        for label in runs:
            print(f"| {th} | {label} | {statistics.median(wall[label]):.1f} | {statistics.median(cpu[label]):.1f} |")
        print(f"(threads {th}: max |LiteRT − onnxruntime float32| class score {diff:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
