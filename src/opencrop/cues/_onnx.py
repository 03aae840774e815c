"""A minimal ONNX model writer: protobuf wire format by hand, so no ``onnx`` package is needed.

Only what the converted cue detectors use: float32/uint8/int8/int32/int64 initialisers, nodes with int/ints/float
attributes, graph inputs and outputs with (partly symbolic) shapes. The bytes are loaded by
``onnxruntime.InferenceSession``, which validates them. Field numbers follow ``onnx/onnx.proto`` (IR version 8,
default opset 17). It stays hand-written because the conversion runs in the light default install (docs/scale.md);
where the ``onnx`` package is installed the tests check every graph with its full checker and require byte-identical
re-serialisation.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GraphBuilder"]

_FLOAT, _UINT8, _INT8, _INT32, _INT64 = 1, 2, 3, 6, 7  # TensorProto.DataType
_DTYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UINT8, np.dtype(np.int8): _INT8,
           np.dtype(np.int32): _INT32, np.dtype(np.int64): _INT64}
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7  # AttributeProto.AttributeType


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64 → two's complement, 10 bytes
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field_no: int, wire: int) -> bytes:
    return _varint(field_no << 3 | wire)


def _int(field_no: int, v: int) -> bytes:
    return _key(field_no, 0) + _varint(int(v))


def _bytes(field_no: int, b: bytes) -> bytes:
    return _key(field_no, 2) + _varint(len(b)) + b


def _str(field_no: int, s: str) -> bytes:
    return _bytes(field_no, s.encode())


def _float(field_no: int, f: float) -> bytes:
    return _key(field_no, 5) + struct.pack("<f", f)


def _tensor(name: str, a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    if a.dtype not in _DTYPES:
        raise TypeError(f"{name}: dtype {a.dtype} not supported")
    return b"".join(_int(1, d) for d in a.shape) + _int(2, _DTYPES[a.dtype]) + _str(8, name) + _bytes(
        9, a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    )


def _attr(name: str, v: int | float | str | Sequence[int]) -> bytes:
    if isinstance(v, bool | int | np.integer):
        return _str(1, name) + _int(3, int(v)) + _int(20, _ATTR_INT)
    if isinstance(v, float):
        return _str(1, name) + _float(2, v) + _int(20, _ATTR_FLOAT)
    if isinstance(v, str):
        return _str(1, name) + _bytes(4, v.encode()) + _int(20, _ATTR_STRING)
    return _str(1, name) + b"".join(_int(8, int(x)) for x in v) + _int(20, _ATTR_INTS)


def _value_info(name: str, elem: int, shape: Sequence[int | str]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in shape)
    tensor_type = _int(1, elem) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


@dataclass
class GraphBuilder:
    """Build an ONNX graph node by node; :meth:`to_bytes` gives a serialised ``ModelProto``.

    Every helper returns the name of its output, so a network reads as nested calls::

        g = GraphBuilder("demo")
        x = g.input("x", np.float32, [1, 3, "h", "w"])
        g.output(g.op("Relu", [g.conv(x, w, b)]), np.float32, [1, "c", "h", "w"])
    """

    name: str
    _nodes: list[bytes] = field(default_factory=list)
    _inits: list[bytes] = field(default_factory=list)
    _inputs: list[bytes] = field(default_factory=list)
    _outputs: list[bytes] = field(default_factory=list)
    _n: int = 0

    def _fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def input(self, name: str, dtype: type, shape: Sequence[int | str]) -> str:
        self._inputs.append(_value_info(name, _DTYPES[np.dtype(dtype)], shape))
        return name

    def output(self, name: str, dtype: type, shape: Sequence[int | str]) -> None:
        self._outputs.append(_value_info(name, _DTYPES[np.dtype(dtype)], shape))

    def const(self, a: np.ndarray, stem: str = "const") -> str:
        name = self._fresh(stem)
        self._inits.append(_tensor(name, np.asarray(a)))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: object) -> str:
        """One node ``op_type(inputs, **attrs)`` with a single output (named ``out`` or fresh)."""
        out = out or self._fresh(op_type.lower())
        body = b"".join(_str(1, i) for i in inputs) + _str(2, out) + _str(3, out) + _str(4, op_type)
        body += b"".join(_bytes(5, _attr(k, v)) for k, v in attrs.items())  # type: ignore[arg-type]
        self._nodes.append(body)
        return out

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1, group: int = 1,
             out: str | None = None) -> str:
        """``Conv`` with TF "SAME" padding (extra pixel at the end); ``weight`` ``[O, I/group, kh, kw]`` float32."""
        ins = [x, self.const(weight.astype(np.float32), "w")]
        if bias is not None:
            ins.append(self.const(bias.astype(np.float32), "b"))
        k = weight.shape[2:]
        return self.op("Conv", ins, out, kernel_shape=list(k), strides=[stride, stride], group=group,
                       auto_pad="SAME_UPPER")

    def to_bytes(self, opset: int = 17) -> bytes:
        graph = b"".join(_bytes(1, n) for n in self._nodes) + _str(2, self.name)
        graph += b"".join(_bytes(5, t) for t in self._inits)
        graph += b"".join(_bytes(11, v) for v in self._inputs) + b"".join(_bytes(12, v) for v in self._outputs)
        opset_id = _str(1, "") + _int(2, opset)
        return _int(1, 8) + _str(2, "opencrop") + _bytes(7, graph) + _bytes(8, opset_id)
