"""The deployed int8 model, verified against its float model.

``lower_int8(float_graph, int8_model)`` takes what onnxruntime.quantization
writes (``quantize_static`` in QDQ or QOperator format, ``quantize_dynamic``;
per-tensor or per-channel; int8 or uint8) and returns

* one graph: the float model's structure with the int8 model's activation
  rounding inserted as :mod:`paramverify.ops.quant` nodes (switched off by
  an *enable* scalar that is 0 in the float model), and
* the int8 copy's parameter values: the dequantized weights and biases and
  enable = 1.

A :class:`~paramverify.specs.QuantizedCopy` of those values makes every
differential property a statement about the real int8 function against the
float function on the same input, activation rounding included.  The graph
remembers both ONNX files (``Graph.replay_models``): counterexamples are
replayed on onnxruntime on the float model and on the int8 model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx

from paramverify.ir import Graph, load_model
from paramverify.quantized.match import match
from paramverify.quantized.normalize import QUANT_OPS, is_quantized, normalize


@dataclass(frozen=True, eq=False)
class Int8Lowering:
    graph: Graph
    values: dict[str, np.ndarray]
    n_rounding: int
    formats: tuple[str, ...]


def quant_format(model: onnx.ModelProto) -> tuple[str, ...]:
    ops = {n.op_type for n in model.graph.node}
    out = []
    if "DynamicQuantizeLinear" in ops:
        out.append("dynamic")
    if ops & {"QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool"}:
        out.append("QOperator")
    if "QuantizeLinear" in ops and "DequantizeLinear" in ops and not out:
        out.append("QDQ")
    return tuple(out) or ("QDQ",)


def lower_int8(float_graph: Graph, quantized: onnx.ModelProto, source: str = "<memory>") -> Int8Lowering:
    """See the module docstring; raises SpecError naming the first node that does not correspond."""
    merged = match(float_graph.model, normalize(quantized))
    g = load_model(merged.model)
    g = replace(g, source=float_graph.source, note=float_graph.note, replay_models=(float_graph.model, quantized))
    return Int8Lowering(g, merged.values, merged.n_rounding, quant_format(quantized))


__all__ = ["QUANT_OPS", "Int8Lowering", "is_quantized", "lower_int8", "quant_format"]
