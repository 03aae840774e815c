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

__all__ = ["CLASS_IDS", "INPUT_SIZE", "NUM_CLASSES", "VERSION", "convert", "decode"]

#: bump when the converted graphs change, so stale cached conversions are rebuilt
VERSION = 2
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


def _head(n: _Net, maps: list[str], kind: str, per_anchor: int, pick: tuple[int, ...] | None = None) -> str:
    """Predictor ``kind`` on every map, flattened to ``[N, per_anchor]`` (or ``[N, len(pick)]``: those outputs)."""
    g, flat = n.g, []
    for i, m in enumerate(maps):
        w, b = _blobs(n.net, f"BoxPredictor_{i}/{kind}/Conv2D")
        b = b.ravel()
        k = per_anchor
        if pick is not None:  # compute only these outputs of each anchor
            idx = (np.arange(ANCHORS_PER_MAP[i])[:, None] * per_anchor + np.asarray(pick)[None]).ravel()
            w, b, k = w[idx], b[idx], len(pick)
        y = g.conv(m, w, b)
        y = g.op("Transpose", [y], perm=[0, 2, 3, 1])
        flat.append(g.op("Reshape", [y, g.const(np.array([-1, k], np.int64), "shape")]))
    return g.op("Concat", flat, axis=0)


def _priors(net) -> np.ndarray:
    """OpenCV's priors ``[N, 4]`` xyxy normalised (it computes them from the PriorBox layers of the .pbtxt)."""
    net.setInput(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))
    pri = np.asarray(net.forward("PriorBox/concat"), np.float32)
    return pri[0, 0].reshape(-1, 4)


def convert(net) -> tuple[bytes, bytes]:
    """``(people, full)`` serialised ONNX models from an OpenCV-imported SSD-MobileNetV2-COCO ``net``.

    Both take uint8 RGB ``image [1, 300, 300, 3]`` (the stretched or padded photo) and give ``loc [N, 4]`` and
    ``priors [N, 4]``; ``people`` adds ``person [N]`` (the person class's sigmoid score only), ``full`` adds
    ``scores [N, 80]`` (sigmoid, columns in :data:`CLASS_IDS` order).
    """
    priors = _priors(net)
    return _graph(net, priors, objects=False), _graph(net, priors, objects=True)


def _graph(net, priors: np.ndarray, objects: bool) -> bytes:
    g = GraphBuilder("ssd_mobilenet_v2_coco_" + ("full" if objects else "people"))
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
        g.op("Sigmoid", [_head(n, maps, "ClassPredictor", NUM_CLASSES, pick=CLASS_IDS)], out="scores")
        g.output("scores", np.float32, ["n", len(CLASS_IDS)])
    else:
        person = _head(n, maps, "ClassPredictor", NUM_CLASSES, pick=(1,))
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
