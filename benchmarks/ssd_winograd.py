"""Would Winograd F(2×2, 3×3) make the SSD's two big 3×3 class heads cheaper on onnxruntime? (Negative result.)

The heads on the 19² map (576 → 240 channels) and the 10² map (1280 → 480) are about 60 % of the full SSD pass.
Here each is built as an ONNX graph both ways with **synthetic (random) weights and inputs** of the real shapes:
the direct ``Conv``, and Winograd (input transform as a grouped 4×4 stride-2 ``Conv``, 16 batched ``MatMul``s with
the transformed weights, output transform as one ``MatMul``). Prints the 1-thread process CPU ms (median of 30)
of each and the largest output difference.

    python benchmarks/ssd_winograd.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cues_latency import _median_ms

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def _direct(c: int, h: int, k: int, w: np.ndarray, b: np.ndarray) -> bytes:
    from opencrop.cues._onnx import GraphBuilder

    g = GraphBuilder("direct")
    x = g.input("x", np.float32, [1, c, h, h])
    y = g.op("Transpose", [g.conv(x, w, b)], perm=[0, 2, 3, 1])
    g.op("Reshape", [y, g.const(np.array([-1, k], np.int64))], out="y")
    g.output("y", np.float32, ["n", k])
    return g.to_bytes()


def _winograd(c: int, h: int, k: int, w: np.ndarray, b: np.ndarray) -> bytes:
    from opencrop.cues._onnx import GraphBuilder

    t = (h + 1) // 2
    g = GraphBuilder("winograd")
    x = g.input("x", np.float32, [1, c, h, h])
    kin = np.tile(np.einsum("ai,bj->abij", BT, BT).reshape(1, 16, 4, 4), (c, 1, 1, 1)).reshape(c * 16, 1, 4, 4)
    pad = 2 * t + 1 - h
    u = g.op("Conv", [x, g.const(kin.astype(np.float32))], kernel_shape=[4, 4], strides=[2, 2], group=c,
             pads=[1, 1, pad, pad])
    u = g.op("Transpose", [g.op("Reshape", [u, g.const(np.array([c, 16, t * t], np.int64))])], perm=[1, 0, 2])
    v = np.einsum("ai,kcij,bj->abkc", G, w.astype(np.float64), G).reshape(16, k, c).astype(np.float32)
    m = g.op("Reshape", [g.op("MatMul", [g.const(v), u]), g.const(np.array([16, k * t * t], np.int64))])
    y = g.op("MatMul", [g.const(np.einsum("ia,jb->ijab", AT, AT).reshape(4, 16).astype(np.float32)), m])
    y = g.op("Transpose", [g.op("Reshape", [y, g.const(np.array([2, 2, k, t, t], np.int64))])], perm=[3, 0, 4, 1, 2])
    y = g.op("Reshape", [y, g.const(np.array([2 * t, 2 * t, k], np.int64))])
    if 2 * t != h:
        y = g.op("Slice", [y, g.const(np.array([0, 0], np.int64)), g.const(np.array([h, h], np.int64)),
                           g.const(np.array([0, 1], np.int64))])
    y = g.op("Add", [y, g.const(b.astype(np.float32))])
    g.op("Reshape", [y, g.const(np.array([-1, k], np.int64))], out="y")
    g.output("y", np.float32, ["n", k])
    return g.to_bytes()


def _cpu_ms(fn, reps: int = 30) -> float:
    return _median_ms(fn, reps)[1]


def main() -> int:
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    rng = np.random.default_rng(0)
    for c, h, k in ((576, 19, 240), (1280, 10, 480)):
        w = (rng.standard_normal((k, c, 3, 3)) * 0.02).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        x = (np.maximum(rng.standard_normal((1, c, h, h)), 0) * 3).astype(np.float32)
        d, wi = (ort.InferenceSession(f(c, h, k, w, b), o, providers=["CPUExecutionProvider"])
                 for f in (_direct, _winograd))
        diff = float(np.abs(d.run(None, {"x": x})[0] - wi.run(None, {"x": x})[0]).max())
        print(f"{h}² × {c} → {k}: direct {_cpu_ms(lambda: d.run(None, {'x': x})):.2f} ms, Winograd "  # noqa: B023
              f"{_cpu_ms(lambda: wi.run(None, {'x': x})):.2f} ms, max difference {diff:.1e}")  # noqa: B023
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
