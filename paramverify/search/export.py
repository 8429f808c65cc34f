"""Export a mixed-precision policy as a QDQ ONNX model.

Every quantized Conv/Gemm/MatMul gets

* its weight as integers (int8 storage, values in the policy's ``b``-bit
  range; uint8 for asymmetric weights) followed by ``DequantizeLinear``
  (per output channel via ``axis`` when the weights are quantized per
  channel), so the dequantized weight equals
  :func:`~paramverify.smoothing.quant.quantize_weight` bit for bit;
* its input activation through ``Clip -> QuantizeLinear -> DequantizeLinear``
  with the statically calibrated scale and zero point; the ``Clip`` to
  ``[(qmin - z) s, (qmax - z) s]`` restricts the 8-bit storage type to the
  ``b``-bit grid (opset 17 has no 2..7-bit types) and is left out when the
  grid is the storage type's full range.

Biases stay float (fine-tuned values when the search fine-tuned), as in the
fake-quantized model.  :func:`check_qdq` runs the result on onnxruntime
(graph optimisations off: the ONNX spec semantics) and compares it with the
torch fake-quantized model.  Per-channel activation quantization is not
exportable (it would need Min/Max, which the smoothing loader lacks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

from paramverify.errors import SpecError
from paramverify.search.layers import OnnxLayer, onnx_layers
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import FakeQuantLayer, QuantSpec, qparams


def _weight_ints(w: torch.Tensor, spec: QuantSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integers, scale and zero point of ``quantize_weight(w, spec)`` (the same float32 ops)."""
    w = w.detach().float().cpu()
    if spec.per_channel:
        flat = w.reshape(w.shape[0], -1)
        scale, zero = qparams(flat.min(dim=1).values, flat.max(dim=1).values, spec)
        shape = (w.shape[0],) + (1,) * (w.dim() - 1)
        q = torch.clamp(torch.round(w / scale.reshape(shape)) + zero.reshape(shape), spec.qmin, spec.qmax)
    else:
        scale, zero = qparams(w.min(), w.max(), spec)
        q = torch.clamp(torch.round(w / scale) + zero, spec.qmin, spec.qmax)
    return q.numpy(), scale.numpy().astype(np.float32), zero.numpy()


def _storage(spec: QuantSpec) -> tuple[type, int, int]:
    if spec.qmin >= 0:
        if spec.qmax > 255:
            raise SpecError("bits", f"{spec.bits}-bit asymmetric values do not fit uint8", "use at most 8 bits")
        return np.uint8, 0, 255
    if spec.qmax > 127:
        raise SpecError("bits", f"{spec.bits}-bit symmetric values do not fit int8", "use at most 8 bits")
    return np.int8, -128, 127


@dataclass(frozen=True)
class _Plan:
    layer: OnnxLayer
    module: FakeQuantLayer
    base: nn.Module


def export_qdq(model: onnx.ModelProto, base: nn.Module, quantized: nn.Module) -> onnx.ModelProto:
    """The QDQ model of ``quantized`` (a :func:`quantize_model` copy of ``base``).

    ``model`` is the float ONNX model that ``base`` was loaded from (``base``
    may carry fine-tuned weights; the export writes them).  Raises
    :class:`SpecError` for what QDQ in this opset cannot express.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise SpecError("model", f"opset {opset} has no per-axis DequantizeLinear", "export the model with opset >= 13")
    mapping = onnx_layers(model, load_onnx(model))  # checked against the file's own weights
    base_modules = dict(base.named_modules())
    plans: dict[int, _Plan] = {}
    for name, mod in quantized.named_modules():
        if isinstance(mod, FakeQuantLayer):
            lay = mapping[name]
            if base_modules[name].weight.shape != mod.layer.weight.shape:
                raise SpecError("base", f"layer {name!r} of the base model does not match the quantized copy")
            plans[lay.node_index] = _Plan(lay, mod, base_modules[name])
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
    new_inits: list[onnx.TensorProto] = []
    drop: set[str] = set()
    nodes: list[onnx.NodeProto] = []
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for i in node.input:
            uses[i] = uses.get(i, 0) + 1
    for idx, node in enumerate(model.graph.node):
        plan = plans.get(idx)
        if plan is None:
            nodes.append(node)
            continue
        node = _copy(node)
        lay, mod = plan.layer, plan.module
        tag = lay.name
        if mod.policy.weight is not None:
            spec = mod.policy.weight
            q, scale, zero = _weight_ints(plan.base.weight, spec)
            expect = mod.layer.weight.detach().float().cpu().numpy()
            got = (q.astype(np.float32) - zero.reshape((-1,) + (1,) * (q.ndim - 1)).astype(np.float32)
                   if spec.per_channel else q.astype(np.float32) - np.float32(zero))
            got = got * (scale.reshape((-1,) + (1,) * (q.ndim - 1)) if spec.per_channel else scale)
            assert np.array_equal(got, expect), f"export of {tag}: integers do not reproduce the fake-quantized weight"
            dtype, _, _ = _storage(spec)
            q_onnx = q.T if lay.transposed else q
            q_arr = np.ascontiguousarray(q_onnx).astype(dtype)
            zp = zero.astype(dtype).reshape(scale.shape)
            names = (f"{tag}.weight_quantized", f"{tag}.weight_scale", f"{tag}.weight_zero_point", f"{tag}.weight_dq")
            new_inits += [numpy_helper.from_array(q_arr, names[0]), numpy_helper.from_array(scale, names[1]),
                          numpy_helper.from_array(zp, names[2])]
            attrs: dict[str, Any] = {"axis": lay.axis} if spec.per_channel else {}
            nodes.append(helper.make_node("DequantizeLinear", list(names[:3]), [names[3]], name=f"{tag}_weight_dq", **attrs))
            node.input[1] = names[3]
            if uses.get(lay.weight, 0) == 1:
                drop.add(lay.weight)
        if lay.bias is not None:
            bias = plan.base.bias.detach().float().cpu().numpy()
            old = numpy_helper.to_array(inits[lay.bias])
            inits[lay.bias].CopyFrom(numpy_helper.from_array(bias.reshape(old.shape).astype(old.dtype), lay.bias))
        if mod.policy.activation is not None:
            nodes += _activation_chain(node, mod, tag, new_inits)
        nodes.append(node)
    kept = [t for t in g.initializer if t.name not in drop]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(out)
    return out


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    c = onnx.NodeProto()
    c.CopyFrom(node)
    return c


def _activation_chain(node: onnx.NodeProto, mod: FakeQuantLayer, tag: str,
                      new_inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """Clip -> QuantizeLinear -> DequantizeLinear on the node's data input (rewired in place)."""
    spec = mod.policy.activation
    assert spec is not None
    if spec.per_channel:
        raise SpecError("activation.per_channel", "per-channel activation quantization cannot be exported",
                        "use per-tensor activations")
    scale = mod.act_scale.detach().float().cpu().numpy().reshape(()).astype(np.float32)
    zero = mod.act_zero.detach().float().cpu().numpy().reshape(())
    dtype, smin, smax = _storage(spec)
    src = node.input[0]
    names = {k: f"{tag}.input_{k}" for k in ("scale", "zero_point", "clip_lo", "clip_hi", "clipped", "q", "dq")}
    new_inits += [numpy_helper.from_array(scale, names["scale"]),
                  numpy_helper.from_array(np.array(zero).astype(dtype), names["zero_point"])]
    out: list[onnx.NodeProto] = []
    if (spec.qmin, spec.qmax) != (smin, smax):
        lo = np.float32((np.float32(spec.qmin) - np.float32(zero)) * scale)
        hi = np.float32((np.float32(spec.qmax) - np.float32(zero)) * scale)
        new_inits += [numpy_helper.from_array(np.array(lo, np.float32), names["clip_lo"]),
                      numpy_helper.from_array(np.array(hi, np.float32), names["clip_hi"])]
        out.append(helper.make_node("Clip", [src, names["clip_lo"], names["clip_hi"]], [names["clipped"]],
                                    name=f"{tag}_input_clip"))
        src = names["clipped"]
    out.append(helper.make_node("QuantizeLinear", [src, names["scale"], names["zero_point"]], [names["q"]],
                                name=f"{tag}_input_q"))
    out.append(helper.make_node("DequantizeLinear", [names["q"], names["scale"], names["zero_point"]], [names["dq"]],
                                name=f"{tag}_input_dq"))
    node.input[0] = names["dq"]
    return out


def run_ort(model: onnx.ModelProto, x: np.ndarray, optimized: bool = False) -> np.ndarray:
    """onnxruntime outputs; ``optimized=False`` disables graph optimisations (spec semantics)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                     else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = inp.shape[0] if inp.shape else None
    if not isinstance(k, int) or k < 1 or len(x) == k:
        return np.asarray(sess.run(None, {inp.name: x})[0])
    # a static-batch export (e.g. batch 1) takes exactly k inputs per run: chunks of k, the last padded
    outs = []
    for start in range(0, len(x), k):
        chunk = x[start : start + k]
        m = len(chunk)
        if m < k:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], k - m, axis=0)])
        outs.append(np.asarray(sess.run(None, {inp.name: chunk})[0])[:m])
    return np.concatenate(outs)


def check_qdq(model: onnx.ModelProto, quantized: nn.Module, x: np.ndarray) -> Mapping[str, Any]:
    """Compare the QDQ model on onnxruntime with the fake-quantized torch model on ``x``.

    Returns the largest absolute logit difference and the label agreement
    (spec semantics), and the label agreement with onnxruntime's optimised
    integer kernels (which may round differently).
    """
    with torch.inference_mode():
        ref = quantized.cpu()(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    spec_out = run_ort(model, x, optimized=False)
    opt_out = run_ort(model, x, optimized=True)
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    return {
        "inputs": len(x),
        "max_abs_diff": float(np.max(np.abs(spec_out - ref))),
        "max_rel_diff": float(np.max(np.abs(spec_out - ref)) / max(scale, 1e-12)),
        "label_agreement": float(np.mean(spec_out.argmax(1) == ref.argmax(1))),
        "label_agreement_optimized": float(np.mean(opt_out.argmax(1) == ref.argmax(1))),
    }


def count_qdq(model: onnx.ModelProto) -> dict[str, int]:
    """How many QuantizeLinear / DequantizeLinear / Clip nodes a model has."""
    out = {"QuantizeLinear": 0, "DequantizeLinear": 0, "Clip": 0}
    for n in model.graph.node:
        if n.op_type in out:
            out[n.op_type] += 1
    return out


__all__ = ["check_qdq", "count_qdq", "export_qdq", "run_ort"]
