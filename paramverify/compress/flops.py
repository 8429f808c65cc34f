"""Exact multiply-accumulate counts of an ONNX graph.

Shapes come from ``onnx.shape_inference`` with the batch fixed to 1.  Counted per node:

* ``Conv``: output elements x (input channels / group) x kernel area;
* ``Gemm``: M x N x K; ``MatMul``: output elements x the shared dimension;
* ``BatchNormalization``: one per output element (a scale and a shift, one multiply-add).

Activations, pooling, additions and reshapes are not multiply-accumulates and count 0.  An
operator this module does not know raises :class:`~paramverify.errors.CapabilityError`
unless it is in :data:`FREE_OPS`, so a count is never silently short.
"""

from __future__ import annotations

import math

import onnx
from onnx import shape_inference

from paramverify.errors import CapabilityError, ModelError

FREE_OPS = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Mul", "Add", "Sub", "GlobalAveragePool", "AveragePool",
                      "MaxPool", "Flatten", "Reshape", "Identity", "Tanh", "Clip", "Constant", "Shape", "Gather",
                      "Unsqueeze", "Concat", "Softmax", "ReduceMean"})


def _fixed_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    init_names = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in init_names:
            continue
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    try:
        return shape_inference.infer_shapes(m, strict_mode=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"shape inference failed, so the MACs cannot be counted: {' '.join(str(exc).split())[:300]}") from exc


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims)
    for t in model.graph.initializer:
        out[t.name] = tuple(int(d) for d in t.dims)
    return out


def node_macs(model: onnx.ModelProto) -> list[tuple[str, str, int]]:
    """``(node name, op type, multiply-accumulates)`` for every node, batch 1."""
    m = _fixed_batch(model)
    shapes = _shapes(m)

    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ModelError(f"shape of tensor '{name}' is unknown after shape inference; cannot count its MACs")
        return shapes[name]

    rows = []
    for node in m.graph.node:
        op = node.op_type
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Conv":
            w = shape(node.input[1])
            macs = math.prod(shape(node.output[0])) * w[1] * math.prod(w[2:])
        elif op == "Gemm":
            a, b = shape(node.input[0]), shape(node.input[1])
            m_, k = (a[1], a[0]) if attrs.get("transA", 0) else a
            n = b[0] if attrs.get("transB", 0) else b[1]
            macs = m_ * n * k
        elif op == "MatMul":
            macs = math.prod(shape(node.output[0])) * shape(node.input[0])[-1]
        elif op == "BatchNormalization":
            macs = math.prod(shape(node.output[0]))
        elif op in FREE_OPS:
            macs = 0
        else:
            raise CapabilityError(f"cannot count the multiply-accumulates of ONNX operator {op} (node '{node.name}')")
        rows.append((node.name, op, int(macs)))
    return rows


def onnx_macs(model: onnx.ModelProto) -> int:
    """Total multiply-accumulates of the graph for one input (see the module docstring)."""
    return sum(r[2] for r in node_macs(model))
