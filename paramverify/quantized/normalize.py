"""Step 1 of the int8 lowering: an onnxruntime int8 model as float ops plus rounding nodes.

Every integer tensor is replaced by its dequantized value ``(q - z) s``; then

* ``QuantizeLinear`` (+ ``DequantizeLinear``) is an ``ActivationQuantize``
  node on that value (weights and biases are dequantized into float
  initializers: ``(w - z_w) s_w`` per tensor or per channel, int32 biases
  ``b s_x s_w``);
* a QOperator op (``QLinearConv``, ``QLinearMatMul``, ``QGemm``,
  ``QLinearAdd``, ``QLinearMul``, ``QLinearAveragePool``,
  ``QLinearGlobalAveragePool``, ``QLinearLeakyRelu``, ``QLinearSigmoid``,
  ``QLinearConcat``) is its float op on the dequantized inputs followed by
  the rounding to its output grid (exact: integer accumulation is exact and
  requantization rounds the real value);
* ``quantize_dynamic``'s ``DynamicQuantizeLinear`` -> ``MatMulInteger`` /
  ``ConvInteger`` -> ``Cast`` -> ``Mul(scales)`` chain is a
  ``DynamicActivationQuantize`` node followed by the float MatMul / Conv
  with the dequantized weight;
* ops that keep values on the grid (MaxPool, Flatten, Reshape, ...) run
  on the dequantized values, and a requantization to the same grid right
  after them is dropped (it is the identity there).

The result is a list of ``NodeProto`` in float semantics with float64
initializers; :mod:`paramverify.quantized.match` lines it up with the float
model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from paramverify.errors import SpecError
from paramverify.ops.quant import ENABLE_NAME, Grid

FQ_OPS = ("ActivationQuantize", "DynamicActivationQuantize")
#: ops onnxruntime.quantization writes; any of them marks a model as int8
QUANT_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearConcat",
})
#: ops whose output stays on the input's grid
GRID_PRESERVING = frozenset({"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather"})
_QLINEAR_UNARY = {
    "QLinearAveragePool": "AveragePool", "QLinearGlobalAveragePool": "GlobalAveragePool",
    "QLinearLeakyRelu": "LeakyRelu", "QLinearSigmoid": "Sigmoid",
}
FIELD = "quantized_model"


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QUANT_OPS for n in model.graph.node)


@dataclass
class Quant:
    """An integer tensor: its dequantized value is the normalized tensor ``name`` on ``grid``."""

    name: str
    grid: Grid | None  # None: a dynamic grid
    tag: str = ""


@dataclass
class DynScale:
    tag: str
    factor: np.ndarray


@dataclass
class Acc:
    """An int32 accumulator of MatMulInteger / ConvInteger, scaled later by ``Mul``."""

    op: str
    data: str
    weight_unit: np.ndarray
    attrs: list[Any]
    tag: str
    origin: str


@dataclass
class Normalized:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    #: normalized node output -> 'name (op)' of the int8 node it came from
    origin: dict[str, str] = field(default_factory=dict)
    input_name: str = ""
    output_name: str = ""


def _fail(problem: str, fix: str = "") -> SpecError:
    return SpecError(FIELD, problem, fix)


def _range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


class Normalizer:
    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.model = model
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.out = Normalized()
        self.kind: dict[str, Any] = {}
        self.on_grid: dict[str, Grid] = {}
        self.count = 0
        inputs = [i.name for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise _fail(f"must have one data input and one output (it has {len(inputs)} and {len(g.output)})")
        self.out.input_name = inputs[0]

    # ------------------------------------------------------------------ helpers
    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}__q8n{self.count}"

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise _fail(f"{what} '{name}' is not a constant; only static quantization parameters are supported")
        return self.consts[name]

    def value(self, name: str, node: onnx.NodeProto) -> str:
        """The normalized float tensor holding the (dequantized) value of ``name``."""
        k = self.kind.get(name)
        if isinstance(k, Quant):
            return k.name
        if k is None and name in self.consts:
            arr = self.consts[name]
            if arr.dtype.kind != "f":
                return name  # an integer constant (a shape); copied as is
            self.out.inits[name] = arr.astype(np.float64)
            return name
        if k is None or isinstance(k, str):
            return k or name
        raise _fail(f"node '{node.name}' ({node.op_type}): input '{name}' is an intermediate integer result this lowering does not follow")

    def grid(self, scale: str, zero: str | None, what: str) -> Grid:
        s = np.asarray(self.const(scale, f"{what} scale"), dtype=np.float64)
        z = self.const(zero, f"{what} zero point") if zero else np.zeros((), np.uint8)
        if s.size != 1 or z.size != 1:
            raise _fail(f"{what}: per-channel quantization of an activation is not supported (scale has {s.size} values)")
        qmin, qmax = _range(z.dtype)
        if not s.reshape(-1)[0] > 0:
            raise _fail(f"{what}: scale must be positive")
        return Grid(float(s.reshape(-1)[0]), int(z.reshape(-1)[0]), qmin, qmax)

    def dequant_const(self, q: str, scale: str, zero: str | None, axis: int) -> np.ndarray:
        w = self.const(q, "weight").astype(np.float64)
        s = np.asarray(self.const(scale, "weight scale"), dtype=np.float64)
        z = np.asarray(self.const(zero, "weight zero point"), dtype=np.float64) if zero else np.zeros(())
        return (w - _along(z, w.ndim, axis)) * _along(s, w.ndim, axis)

    def add_init(self, base: str, arr: np.ndarray) -> str:
        name = self.fresh(base)
        self.out.inits[name] = np.asarray(arr, dtype=np.float64)
        return name

    def emit(self, op: str, inputs: list[str], output: str, origin: onnx.NodeProto, attrs: list[Any] | None = None, **kw: Any) -> str:
        node = helper.make_node(op, inputs, [output], name=output, **kw)
        if attrs:
            node.attribute.extend(attrs)
        self.out.nodes.append(node)
        self.out.origin[output] = f"'{origin.name or origin.output[0]}' ({origin.op_type})"
        return output

    def quantize(self, x: str, grid: Grid, out: str, origin: onnx.NodeProto) -> None:
        """Round normalized tensor ``x`` to ``grid``; the int8 tensor ``out`` then holds it."""
        if self.on_grid.get(x) == grid:
            self.kind[out] = Quant(x, grid)
            return
        y = self.emit("ActivationQuantize", [x, ENABLE_NAME], self.fresh(out), origin, None, domain="ai.paramverify",
                      scale=grid.scale, zero_point=grid.zero_point, qmin=grid.qmin, qmax=grid.qmax)
        self.on_grid[y] = grid
        self.kind[out] = Quant(y, grid)

    def quant_input(self, name: str, node: onnx.NodeProto, scale: str, zero: str | None) -> str:
        """The dequantized value of an int8 input (activation or constant) of a QOperator node."""
        k = self.kind.get(name)
        if isinstance(k, Quant):
            if k.grid is not None and k.grid != self.grid(scale, zero, f"node '{node.name}' input"):
                raise _fail(f"node '{node.name}' ({node.op_type}) reads '{name}' with another scale than it was written with")
            return k.name
        if name in self.consts:
            return self.add_init(name, self.dequant_const(name, scale, zero, -1))
        raise _fail(f"node '{node.name}' ({node.op_type}): input '{name}' is not a quantized tensor")

    # --------------------------------------------------------------------- run
    def run(self) -> Normalized:
        for node in self.model.graph.node:
            self.node(node)
        out = self.model.graph.output[0].name
        k = self.kind.get(out)
        if isinstance(k, (Quant, DynScale, Acc)):
            raise _fail(f"its output '{out}' is an integer tensor", "end the model with DequantizeLinear")
        self.out.output_name = self.value(out, self.model.graph.node[-1])
        return self.out

    def node(self, n: onnx.NodeProto) -> None:
        op, ins, outs = n.op_type, list(n.input), list(n.output)
        get = lambda i: ins[i] if len(ins) > i and ins[i] else None
        if op == "Constant":
            self.consts[outs[0]] = numpy_helper.to_array(helper.get_attribute_value(n.attribute[0]))
        elif op == "QuantizeLinear":
            if ins[0] in self.consts:
                raise _fail(f"node '{n.name}': QuantizeLinear of a constant is not supported")
            self.quantize(self.value(ins[0], n), self.grid(ins[1], get(2), f"node '{n.name}'"), outs[0], n)
        elif op == "DequantizeLinear":
            k = self.kind.get(ins[0])
            if ins[0] in self.consts:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                self.out.inits[outs[0]] = self.dequant_const(ins[0], ins[1], get(2), axis)
            elif isinstance(k, Quant):
                if k.grid is not None and k.grid != self.grid(ins[1], get(2), f"node '{n.name}'"):
                    raise _fail(f"node '{n.name}' dequantizes '{ins[0]}' with another scale than it was quantized with")
                self.kind[outs[0]] = k.name
            else:
                raise _fail(f"node '{n.name}' (DequantizeLinear): input '{ins[0]}' is not a quantized tensor")
        elif op == "QLinearConv" or op == "QLinearMatMul":
            x = self.quant_input(ins[0], n, ins[1], ins[2])
            if op == "QLinearConv":
                w = self.add_init(ins[3], self.dequant_const(ins[3], ins[4], ins[5], 0))
                inputs = [x, w]
                if get(8):
                    sx = np.asarray(self.const(ins[1], "scale"), np.float64)
                    sw = np.asarray(self.const(ins[4], "scale"), np.float64)
                    inputs.append(self.add_init(ins[8], self.const(ins[8], "bias").astype(np.float64) * sx * sw))
                y = self.emit("Conv", inputs, self.fresh(outs[0]), n, list(n.attribute))
            else:
                w = self.quant_input(ins[3], n, ins[4], ins[5])
                y = self.emit("MatMul", [x, w], self.fresh(outs[0]), n)
            self.quantize(y, self.grid(ins[6], ins[7], f"node '{n.name}' output"), outs[0], n)
        elif op == "QGemm":
            self.qgemm(n, ins, get)
        elif op in ("QLinearAdd", "QLinearMul"):
            a = self.quant_input(ins[0], n, ins[1], get(2))
            b = self.quant_input(ins[3], n, ins[4], get(5))
            y = self.emit(op[len("QLinear"):], [a, b], self.fresh(outs[0]), n)
            self.quantize(y, self.grid(ins[6], get(7), f"node '{n.name}' output"), outs[0], n)
        elif op in _QLINEAR_UNARY:
            attrs = [a for a in n.attribute if a.name != "channels_last"]
            if any(a.name == "channels_last" and a.i for a in n.attribute):
                raise _fail(f"node '{n.name}' ({op}): channels_last layout is not supported")
            x = self.quant_input(ins[0], n, ins[1], get(2))
            y = self.emit(_QLINEAR_UNARY[op], [x], self.fresh(outs[0]), n, attrs)
            self.quantize(y, self.grid(ins[3], get(4), f"node '{n.name}' output"), outs[0], n)
        elif op == "QLinearConcat":
            xs = [self.quant_input(ins[i], n, ins[i + 1], ins[i + 2]) for i in range(2, len(ins), 3)]
            y = self.emit("Concat", xs, self.fresh(outs[0]), n, list(n.attribute))
            self.quantize(y, self.grid(ins[0], ins[1], f"node '{n.name}' output"), outs[0], n)
        elif op == "DynamicQuantizeLinear":
            y = self.emit("DynamicActivationQuantize", [self.value(ins[0], n), ENABLE_NAME], self.fresh(outs[0]), n,
                          None, domain="ai.paramverify", qmin=0, qmax=255)
            self.kind[outs[0]] = Quant(y, None, tag=outs[0])
            self.kind[outs[1]] = DynScale(outs[0], np.ones(()))
            self.kind[outs[2]] = "__dynamic_zero_point__"
        elif op in ("MatMulInteger", "ConvInteger"):
            k = self.kind.get(ins[0])
            if not isinstance(k, Quant) or k.grid is not None:
                raise _fail(f"node '{n.name}' ({op}): its first input must come from DynamicQuantizeLinear")
            w = self.const(ins[1], "weight").astype(np.float64)
            z = np.asarray(self.consts[ins[3]], np.float64) if get(3) else np.zeros(())
            unit = w - _along(z, w.ndim, 0 if op == "ConvInteger" else -1)
            self.kind[outs[0]] = Acc("Conv" if op == "ConvInteger" else "MatMul", k.name, unit, list(n.attribute), k.tag,
                                     f"'{n.name}' ({op})")
        elif op == "Cast" and isinstance(self.kind.get(ins[0]), Acc):
            self.kind[outs[0]] = self.kind[ins[0]]
        elif op == "Mul" and self.mul_scales(n, ins, outs):
            pass
        elif op == "Reshape" and ins[0] in self.consts and ins[1] in self.consts:
            arr = np.reshape(self.consts[ins[0]], self.consts[ins[1]].astype(np.int64))
            self.consts[outs[0]] = arr
        else:
            self.plain(n, ins, outs)

    def qgemm(self, n: onnx.NodeProto, ins: list[str], get: Any) -> None:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if float(attrs.get("alpha", 1.0)) != 1.0 or int(attrs.get("transA", 0)):
            raise _fail(f"node '{n.name}' (QGemm): alpha != 1 or transA is not supported")
        trans_b = int(attrs.get("transB", 0))
        a = self.quant_input(ins[0], n, ins[1], get(2))
        w = self.add_init(ins[3], self.dequant_const(ins[3], ins[4], get(5), 0 if trans_b else 1))
        inputs = [a, w]
        if get(6):
            sa = np.asarray(self.const(ins[1], "scale"), np.float64)
            sb = np.asarray(self.const(ins[4], "scale"), np.float64)
            inputs.append(self.add_init(ins[6], self.const(ins[6], "bias").astype(np.float64) * sa * sb))
        out = n.output[0]
        y = self.emit("Gemm", inputs, self.fresh(out) if get(7) else out, n, None, transB=trans_b)
        if get(7):
            self.quantize(y, self.grid(ins[7], get(8), f"node '{n.name}' output"), out, n)

    def mul_scales(self, n: onnx.NodeProto, ins: list[str], outs: list[str]) -> bool:
        """quantize_dynamic's scale products; True when handled."""
        ka, kb = self.kind.get(ins[0]), self.kind.get(ins[1])
        for x, y, kx in ((ins[0], ins[1], ka), (ins[1], ins[0], kb)):
            if isinstance(kx, DynScale) and y in self.consts:
                self.kind[outs[0]] = DynScale(kx.tag, kx.factor * np.asarray(self.consts[y], np.float64))
                return True
        for kx, ky in ((ka, kb), (kb, ka)):
            if isinstance(kx, Acc) and isinstance(ky, DynScale):
                if kx.tag != ky.tag:
                    raise _fail(f"node '{n.name}' scales {kx.origin} with the scale of another tensor")
                f = ky.factor
                if kx.op == "Conv":
                    f = f.reshape(-1)
                    f = f.reshape((-1,) + (1,) * (kx.weight_unit.ndim - 1)) if f.size > 1 else f.reshape(())
                w = self.add_init(outs[0] + "_weight", kx.weight_unit * f)
                self.emit(kx.op, [kx.data, w], outs[0], n, kx.attrs)
                return True
        return False

    def plain(self, n: onnx.NodeProto, ins: list[str], outs: list[str]) -> None:
        qin = [self.kind.get(i) for i in ins if i]
        grids = [k.grid for k in qin if isinstance(k, Quant)]
        if any(isinstance(k, (DynScale, Acc)) for k in qin):
            raise _fail(f"node '{n.name}' ({n.op_type}) uses an integer intermediate in a way this lowering does not follow")
        if grids and n.op_type not in GRID_PRESERVING:
            raise _fail(f"node '{n.name}' ({n.op_type}) on an integer tensor is not supported")
        inputs = [self.value(i, n) if i else "" for i in ins]
        self.emit(n.op_type, inputs, outs[0] if not grids else self.fresh(outs[0]), n, list(n.attribute))
        if len(outs) > 1 and any(outs[1:]):
            raise _fail(f"node '{n.name}' ({n.op_type}): only single-output nodes are supported")
        if grids:
            y = self.out.nodes[-1].output[0]
            first = qin[0]
            g = first.grid if isinstance(first, Quant) else None
            self.kind[outs[0]] = Quant(y, g, first.tag if isinstance(first, Quant) else "")
            src = first.name if isinstance(first, Quant) else None
            if g is not None and src in self.on_grid:
                self.on_grid[y] = g
        elif inputs and inputs[0] in self.on_grid and n.op_type in GRID_PRESERVING:
            self.on_grid[outs[0]] = self.on_grid[inputs[0]]


def _along(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Broadcast a per-channel vector along ``axis`` of an ``ndim`` tensor (scalars unchanged)."""
    v = np.asarray(v, dtype=np.float64)
    if v.size <= 1:
        return v.reshape(())
    view = [1] * ndim
    view[axis % ndim] = v.size
    return v.reshape(view)


def normalize(model: onnx.ModelProto) -> Normalized:
    return Normalizer(model).run()
