"""SSD-MobileNetV2-COCO as ONNX graphs for onnxruntime, converted from the shipped frozen TF graph.

Why: OpenCV's dnn module needs ≈ 45–50 ms per 300² pass on 2 CPU threads; the same network on onnxruntime takes
≈ 8–10 ms for the backbone, the box regressors and the *person* scores, ≈ 20 ms with every COCO class (the 3×3
class heads cost twice the backbone). So the conversion gives two graphs over the same weights:

* ``people``: uint8 RGB ``image [1, 300, 300, 3]`` → ``loc [N, 4]`` (dx, dy, dw, dh), ``priors [N, 4]`` (xyxy
  normalised) and ``person [N]`` (sigmoid);
* ``full``: the same → ``loc``, ``priors`` and ``scores [N, 80]`` (sigmoid) for the 80 COCO classes in
  :data:`CLASS_IDS` (the background channel and the 10 unused ids of the 91-way head are not computed).

(One body graph plus a separate class-head graph saved nothing: two onnxruntime sessions alternating on two cores
make each other's spin-waiting threads compete.) N = 1917 anchors in (map, y, x, anchor) order, the same order as
OpenCV's ``detection_out`` input.

The weights are read through ``cv2.dnn`` (already a dependency: it parses the ``.pb``), batch norms are folded
into the convolutions, and the priors are taken from OpenCV's own ``PriorBox`` layers, so the conversion
reproduces OpenCV's network rather than re-deriving the TF anchor generator. The converted files are derived
data: they are written to the model cache, keyed by the source file's sha256 and :data:`VERSION`, never shipped.
"""

from __future__ import annotations

import numpy as np

from opencrop.cues._onnx import GraphBuilder

__all__ = ["CLASS_IDS", "GRAPHS", "INPUT_SIZE", "NUM_CLASSES", "VERSION", "convert", "decode"]

#: bump when the converted graphs change, so stale cached conversions are rebuilt
VERSION = 3
#: the converted graphs, in :func:`convert`'s order: people only / all classes, float32 / int8 class heads
GRAPHS = ("people", "full", "people-int8", "full-int8")
INPUT_SIZE = 300
NUM_CLASSES = 91  # outputs per anchor of the TF class heads: background + 90 ids, 10 of them unused
#: the COCO class ids the ``full`` graph scores, in column order (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are
#: unused by the TF Object Detection API label map)
CLASS_IDS = tuple(i for i in range(1, NUM_CLASSES) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
_BN_EPS = 1e-3  # TF Object Detection API MobileNetV2 batch-norm epsilon
_P = "FeatureExtractor/MobilenetV2/"
# (expansion, output channels, stride) of expanded_conv, expanded_conv_1 … expanded_conv_16
_BLOCKS = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1),
           (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1),
           (6, 320, 1)]
# extra SSD layers after Conv_1: (1×1 channels, output channels)
_EXTRAS = [(256, 512), (128, 256), (128, 256), (64, 128)]
ANCHORS_PER_MAP = (3, 6, 6, 6, 6, 6)


def _blobs(net, name: str) -> list[np.ndarray]:
    return [np.asarray(b, np.float32) for b in net.getLayer(name).blobs]


def _folded(net, conv: str, bn_scope: str) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``[O, I, kh, kw]`` and bias ``[O]`` of ``conv`` with the batch norm of ``bn_scope`` folded in."""
    (w,) = _blobs(net, conv)
    mean, var, gamma, beta = (b.ravel() for b in _blobs(net, bn_scope + "/BatchNorm/batchnorm/add_1"))
    k = gamma / np.sqrt(var + _BN_EPS)
    return w * k[:, None, None, None], beta - mean * k


class _Net:
    """Emit the layers of the OpenCV-imported network into a :class:`GraphBuilder`."""

    def __init__(self, net, g: GraphBuilder) -> None:
        self.net, self.g = net, g
        self._clip: list[str] = []

    def unit(self, x: str, scope: str, stride: int = 1, depthwise: bool = False, relu6: bool = True) -> str:
        conv = _P + scope + ("/depthwise" if depthwise else "/Conv2D")
        w, b = _folded(self.net, conv, _P + scope)
        y = self.g.conv(x, w, b, stride=stride, group=w.shape[0] if depthwise else 1)
        if not relu6:
            return y
        if not self._clip:
            self._clip = [self.g.const(np.array(v, np.float32), "clip") for v in (0.0, 6.0)]
        return self.g.op("Clip", [y, *self._clip])


def _features(n: _Net, x: str) -> list[str]:
    """The six SSD feature maps (19², 10², 5², 3², 2², 1² for a 300² input)."""
    x = n.unit(x, "Conv", stride=2)
    cin, maps = 32, []
    for i, (t, c, s) in enumerate(_BLOCKS):
        scope = "expanded_conv" + (f"_{i}" if i else "")
        y = x
        if t != 1:
            y = n.unit(y, scope + "/expand")
            if i == 13:
                maps.append(y)  # BoxPredictor_0 reads expanded_conv_13's expansion (576 channels, stride 16)
        y = n.unit(y, scope + "/depthwise", stride=s, depthwise=True)
        y = n.unit(y, scope + "/project", relu6=False)
        x = n.g.op("Add", [x, y]) if s == 1 and cin == c else y
        cin = c
    x = n.unit(x, "Conv_1")
    maps.append(x)
    for j, (mid, out) in enumerate(_EXTRAS, start=2):
        x = n.unit(x, f"layer_19_1_Conv2d_{j}_1x1_{mid}")
        x = n.unit(x, f"layer_19_2_Conv2d_{j}_3x3_s2_{out}_depthwise", stride=2, depthwise=True)
        x = n.unit(x, f"layer_19_2_Conv2d_{j}_3x3_s2_{out}")
        maps.append(x)
    return maps


#: int8 class heads (:func:`_int8_conv`): the input maps are ReLU6 outputs, so [0, 6] is their exact range; the
#: logits are kept on [-4, 8]: a score below sigmoid(-4) = 0.018 is under every threshold (the row floor is 0.05)
#: and one above sigmoid(8) = 0.9997 is certain either way. Fixed ranges: no calibration images, the same scale
#: for a class in the people and the full graph, and the same graph from the same weights everywhere.
INT8_IN_RANGE = (0.0, 6.0)
INT8_LOGIT_RANGE = (-4.0, 8.0)
#: the input on 128 levels (uint8 0…127) and the weights symmetric per output channel on ±127: u8·s8 products summed
#: in pairs stay below 2¹⁵ (2 · 127 · 127), so CPUs without VNNI (AVX2 / AVX-512BW ``vpmaddubsw``, which saturates
#: at 2¹⁵) compute the same sums as VNNI ones. (8-bit input with 7-bit weights instead: scores twice as far from
#: float32 and one subject-benchmark photo worse; docs/benchmarks.md.)
INT8_IN_LEVELS = 127
INT8_WEIGHT_MAX = 127


def _uint8_grid(lo: float, hi: float, levels: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point (float32, uint8 scalars) of the grid of ``levels`` steps on ``[lo, hi]`` (``lo ≤ 0 ≤
    hi``)."""
    scale = np.float32((hi - lo) / levels)
    return np.array(scale, np.float32), np.array(round(-lo / float(scale)), np.uint8)


def _int8_conv(g: GraphBuilder, x: str, w: np.ndarray, b: np.ndarray) -> str:
    """3×3 ``Conv`` of ReLU6 map ``x`` as QDQ nodes that onnxruntime fuses into one ``QLinearConv``: uint8 input on
    :data:`INT8_IN_RANGE` (:data:`INT8_IN_LEVELS` steps), int8 weights per output channel, int32 bias, uint8 output
    on :data:`INT8_LOGIT_RANGE` (dequantised again: the result is float32 like :meth:`GraphBuilder.conv`'s)."""
    s_in, z_in = _uint8_grid(*INT8_IN_RANGE, INT8_IN_LEVELS)
    s_out, z_out = _uint8_grid(*INT8_LOGIT_RANGE)
    amax = np.abs(w).reshape(len(w), -1).max(axis=1)
    s_w = (np.maximum(amax, 1e-12) / INT8_WEIGHT_MAX).astype(np.float32)
    wq = np.clip(np.round(w / s_w[:, None, None, None]), -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX).astype(np.int8)
    s_b = (s_in * s_w).astype(np.float32)
    bq = np.round(b / s_b).astype(np.int32)
    sc_in, zp_in = g.const(s_in, "s_in"), g.const(z_in, "z_in")
    xd = g.op("DequantizeLinear", [g.op("QuantizeLinear", [x, sc_in, zp_in]), sc_in, zp_in])
    wd = g.op("DequantizeLinear", [g.const(wq, "wq"), g.const(s_w, "s_w"), g.const(np.zeros(len(w), np.int8), "z_w")],
              axis=0)
    bd = g.op("DequantizeLinear", [g.const(bq, "bq"), g.const(s_b, "s_b"), g.const(np.zeros(len(b), np.int32), "z_b")],
              axis=0)
    y = g.op("Conv", [xd, wd, bd], kernel_shape=list(w.shape[2:]), strides=[1, 1], group=1, auto_pad="SAME_UPPER")
    sc_out, zp_out = g.const(s_out, "s_out"), g.const(z_out, "z_out")
    return g.op("DequantizeLinear", [g.op("QuantizeLinear", [y, sc_out, zp_out]), sc_out, zp_out])


def _head(n: _Net, maps: list[str], kind: str, per_anchor: int, pick: tuple[int, ...] | None = None,
          int8: bool = False) -> str:
    """Predictor ``kind`` on every map, flattened to ``[N, per_anchor]`` (or ``[N, len(pick)]``: those outputs);
    ``int8``: quantised convolutions (:func:`_int8_conv`)."""
    g, flat = n.g, []
    for i, m in enumerate(maps):
        w, b = _blobs(n.net, f"BoxPredictor_{i}/{kind}/Conv2D")
        b = b.ravel()
        k = per_anchor
        if pick is not None:  # compute only these outputs of each anchor
            idx = (np.arange(ANCHORS_PER_MAP[i])[:, None] * per_anchor + np.asarray(pick)[None]).ravel()
            w, b, k = w[idx], b[idx], len(pick)
        y = _int8_conv(g, m, w, b) if int8 else g.conv(m, w, b)
        y = g.op("Transpose", [y], perm=[0, 2, 3, 1])
        flat.append(g.op("Reshape", [y, g.const(np.array([-1, k], np.int64), "shape")]))
    return g.op("Concat", flat, axis=0)


def _priors(net) -> np.ndarray:
    """OpenCV's priors ``[N, 4]`` xyxy normalised (it computes them from the PriorBox layers of the .pbtxt)."""
    net.setInput(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))
    pri = np.asarray(net.forward("PriorBox/concat"), np.float32)
    return pri[0, 0].reshape(-1, 4)


def convert(net) -> tuple[bytes, ...]:
    """Serialised ONNX models, one per name of :data:`GRAPHS`, from an OpenCV-imported SSD-MobileNetV2-COCO ``net``.

    Each takes uint8 RGB ``image [1, 300, 300, 3]`` (the stretched or padded photo) and gives ``loc [N, 4]`` and
    ``priors [N, 4]``; ``people`` graphs add ``person [N]`` (the person class's sigmoid score only), ``full`` ones
    ``scores [N, 80]`` (sigmoid, columns in :data:`CLASS_IDS` order). The ``-int8`` graphs run the class heads as
    int8 convolutions (:func:`_int8_conv`; backbone and box regressors stay float32).
    """
    priors = _priors(net)
    return tuple(_graph(net, priors, objects=name.startswith("full"), int8=name.endswith("-int8")) for name in GRAPHS)


def _graph(net, priors: np.ndarray, objects: bool, int8: bool = False) -> bytes:
    g = GraphBuilder("ssd_mobilenet_v2_coco_" + ("full" if objects else "people") + ("_int8" if int8 else ""))
    n = _Net(net, g)
    img = g.input("image", np.uint8, [1, INPUT_SIZE, INPUT_SIZE, 3])
    x = g.op("Cast", [img], to=1)
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.op("Add", [g.op("Mul", [x, g.const(np.array(2 / 255, np.float32))]), g.const(np.array(-1.0, np.float32))])
    maps = _features(n, x)
    g.op("Identity", [_head(n, maps, "BoxEncodingPredictor", 4)], out="loc")
    g.op("Identity", [g.const(priors, "priors")], out="priors")
    g.output("loc", np.float32, ["n", 4])
    g.output("priors", np.float32, [len(priors), 4])
    if objects:
        g.op("Sigmoid", [_head(n, maps, "ClassPredictor", NUM_CLASSES, pick=CLASS_IDS, int8=int8)], out="scores")
        g.output("scores", np.float32, ["n", len(CLASS_IDS)])
    else:
        person = _head(n, maps, "ClassPredictor", NUM_CLASSES, pick=(1,), int8=int8)
        g.op("Sigmoid", [g.op("Reshape", [person, g.const(np.array([-1], np.int64), "shape")])], out="person")
        g.output("person", np.float32, ["n"])
    return g.to_bytes()


def decode(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 4]`` xyxy normalised from offsets ``loc [N, 4]`` (dx, dy, dw, dh) and priors ``[N, 4]`` xyxy.

    Centre-size coding with variances 0.1 (centre) and 0.2 (size), as OpenCV's ``DetectionOutput`` decodes them
    (OpenCV's importer has already reordered TF's (dy, dx, dh, dw) regressor channels).
    """
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = priors[:, 0] + pw / 2, priors[:, 1] + ph / 2
    cx = pcx + 0.1 * loc[:, 0] * pw
    cy = pcy + 0.1 * loc[:, 1] * ph
    w = pw * np.exp(0.2 * loc[:, 2])
    h = ph * np.exp(0.2 * loc[:, 3])
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
