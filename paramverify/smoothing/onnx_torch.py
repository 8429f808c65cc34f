"""A small ONNX -> torch converter for classifiers (float, QDQ, QOperator or dynamic int8).

Conv, Gemm and MatMul with constant weights become ``nn.Conv*d`` / ``nn.Linear``
modules named after their ONNX node (sanitized), so a quantization policy can
address them; every other supported operator (BatchNormalization in inference
form included) runs as a torch function (:mod:`.torch_ops`, :mod:`.torch_qops`).
Subgraphs whose inputs are all constants (e.g. ``DequantizeLinear`` of int8
weights in a QDQ model) are folded at load time, so a QDQ model's quantized
weights are reproduced exactly; activation Quantize/DequantizeLinear pairs run
as fake quantization with ONNX semantics (round half to even, saturate); the
QOperator and dynamic-quantization ops of onnxruntime.quantization follow
onnxruntime's integer arithmetic.  Every unsupported node is listed at once in
one :class:`~paramverify.errors.UnsupportedOpsError`.

Any batch size: a graph exported with a fixed batch of 1 (the dynamo exporter
without ``dynamic_shapes``, or the legacy one without ``dynamic_axes``) bakes
that batch into its Reshape targets; such a graph, and one whose result depends
on the whole tensor (``DynamicQuantizeLinear`` takes its range from it), is run
on each input of a batch separately (``torch.vmap``), as onnxruntime would run
it on one input at a time.  Shape chains (Shape -> Gather -> Concat -> Reshape)
are computed from the tensors at run time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from paramverify.errors import ModelError, UnsupportedOpsError
from paramverify.modelcheck import (
    STANDARD_DOMAINS,
    check_domains,
    check_float_values,
    check_input_size,
    check_structure,
    node_label,
    read_onnx,
    tensor_array,
)
from paramverify.smoothing.torch_ops import FUNCTIONS, Attrs, Fn, torch_pad
from paramverify.smoothing.torch_qops import MS_FUNCTIONS, PER_SAMPLE_OPS, QFUNCTIONS

_ALL: Mapping[str, Fn] = MappingProxyType({**FUNCTIONS, **QFUNCTIONS, **MS_FUNCTIONS})
#: every (domain, op) the converter runs; "" stands for the default domain
SUPPORTED_OPS = frozenset(FUNCTIONS) | frozenset(QFUNCTIONS) | {"Constant"}
SUPPORTED_MS_OPS = frozenset(MS_FUNCTIONS)


# -- the module ------------------------------------------------------------------
@dataclass(frozen=True)
class _Step:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    module: str | None = None  # attribute name of an nn.Module that runs this step
    pre_pad: tuple[int, ...] = ()


class OnnxModule(nn.Module):
    """A torch module that executes a converted ONNX graph (one input, one output)."""

    def __init__(self, steps: list[_Step], constants: dict[str, torch.Tensor], layers: dict[str, nn.Module],
                 input_name: str, input_shape: tuple[int | None, ...], output_name: str, per_sample: bool = False) -> None:
        super().__init__()
        self._steps = tuple(steps)
        self._const_attr: dict[str, str] = {}
        for i, (name, value) in enumerate(constants.items()):
            attr = f"_const_{i}"
            self.register_buffer(attr, value, persistent=False)
            self._const_attr[name] = attr
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.input_name = input_name
        self.input_shape = input_shape
        self.output_name = output_name
        #: run a batch one input at a time (fixed batch 1, or a range taken from the whole tensor)
        self.per_sample = per_sample

    @property
    def static_batch(self) -> int | None:
        """The batch size fixed in the model's input shape (e.g. 1 for a static batch-1 export), else None."""
        first = self.input_shape[0] if self.input_shape else None
        return first if isinstance(first, int) and first >= 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.static_batch
        if k is None or x.dim() != len(self.input_shape) or x.shape[0] == k:
            if self.per_sample and x.shape[0] > 1:  # a range taken from the whole tensor
                return self._per_sample(x)
            return self._run_graph(x)
        if k == 1:
            return self._per_sample(x)
        # A static-batch export (its Reshape constants name the batch size) only accepts
        # batches of exactly k: run any batch as chunks of k, padding the last chunk with
        # copies of its last row (so activation ranges seen by calibration hooks are unchanged).
        outs = []
        for start in range(0, x.shape[0], k):
            chunk = x[start : start + k]
            m = chunk.shape[0]
            if m < k:
                chunk = torch.cat([chunk, chunk[-1:].expand(k - m, *chunk.shape[1:])])
            outs.append(self._run_graph(chunk)[:m])
        return torch.cat(outs)

    def _per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """The graph on each input of ``x`` alone: vectorised by ``torch.vmap``, or one at a time
        while hooks are registered on a layer (calibration reads whole activation tensors)."""
        if any(m._forward_hooks or m._forward_pre_hooks for m in self.modules()):
            return torch.cat([self._run_graph(x[i : i + 1]) for i in range(x.shape[0])])
        return torch.vmap(lambda one: self._run_graph(one.unsqueeze(0)).squeeze(0))(x)

    def _run_graph(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor | None] = {"": None, self.input_name: x}
        for name, attr in self._const_attr.items():
            env[name] = getattr(self, attr)
        for step in self._steps:
            ins = [env[i] for i in step.inputs]
            if step.module is not None:
                arg = ins[0]
                assert arg is not None
                if step.pre_pad:
                    arg = F.pad(arg, list(step.pre_pad))
                outs = [getattr(self, step.module)(arg)]
            else:
                outs = _ALL[step.op](ins, step.attrs)
            for name, value in zip(step.outputs, outs, strict=False):
                env[name] = value
        out = env[self.output_name]
        assert out is not None
        return out


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return torch.from_numpy(np.array(arr, copy=True))


def module_name(name: str, taken: set[str]) -> str:
    """A valid, unused torch submodule name for ONNX node ``name`` (added to ``taken``)."""
    base = re.sub(r"\W", "_", name).strip("_") or "layer"
    if base[0].isdigit() or hasattr(nn.Module, base) or base.startswith("_const"):
        base = "n_" + base
    cand, i = base, 1
    while cand in taken:
        i += 1
        cand = f"{base}_{i}"
    taken.add(cand)
    return cand


def _layer_for(
    node: onnx.NodeProto, a: Attrs, consts: dict[str, torch.Tensor]
) -> tuple[nn.Module, tuple[int, ...]] | None:
    """An nn.Module (and a pre-padding) for Conv/Gemm/MatMul with constant weights."""
    ins = list(node.input)
    op = node.op_type
    if op == "Conv" and len(ins) >= 2 and ins[1] in consts and (len(ins) < 3 or not ins[2] or ins[2] in consts):
        w = consts[ins[1]].float()
        sp = w.dim() - 2
        if sp not in (1, 2, 3) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            return None
        k = list(a.get("kernel_shape", w.shape[2:]))
        pads = list(a.get("pads", [0] * (2 * sp))) if a.get("auto_pad", "NOTSET") == "NOTSET" else [0] * (2 * sp)
        sym = pads[:sp] == pads[sp:]
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[sp]
        group = int(a.get("group", 1))
        has_bias = len(ins) > 2 and bool(ins[2])
        conv = cls(w.shape[1] * group, w.shape[0], k, stride=list(a.get("strides", [1] * sp)),
                   padding=pads[:sp] if sym else 0, dilation=list(a.get("dilations", [1] * sp)),
                   groups=group, bias=has_bias)
        with torch.no_grad():
            conv.weight.copy_(w)
            if has_bias:
                conv.bias.copy_(consts[ins[2]].float())
        return conv, (() if sym else tuple(torch_pad(pads)))
    if op == "Gemm" and ins[1] in consts and not a.get("transA", 0):
        w = consts[ins[1]].float()
        w = w if a.get("transB", 0) else w.t()
        bias = consts.get(ins[2]) if len(ins) > 2 and ins[2] else None
        if w.dim() != 2 or (len(ins) > 2 and ins[2] and bias is None):
            return None
        if bias is not None and bias.numel() not in (1, w.shape[0]):
            return None
        lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
        with torch.no_grad():
            lin.weight.copy_(float(a.get("alpha", 1.0)) * w)
            if bias is not None:
                lin.bias.copy_(float(a.get("beta", 1.0)) * bias.float().reshape(-1).expand(w.shape[0]))
        return lin, ()
    if op == "MatMul" and ins[1] in consts and consts[ins[1]].dim() == 2:
        w = consts[ins[1]].float()
        lin = nn.Linear(w.shape[0], w.shape[1], bias=False)
        with torch.no_grad():
            lin.weight.copy_(w.t())
        return lin, ()
    return None


def load_onnx(source: str | Path | onnx.ModelProto) -> OnnxModule:
    """Convert an ONNX classifier (path or ModelProto) to an :class:`OnnxModule`."""
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ModelError(f"ONNX model {path} does not exist; pass the path of a .onnx file")
        model = read_onnx(path)
    graph = model.graph
    order = [n for _, n in check_structure(model)]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    bad = check_domains((i, n) for i, n in enumerate(graph.node)
                        if not (n.domain == "com.microsoft" and n.op_type in SUPPORTED_MS_OPS)) + [
        (n.op_type, node_label(n, i)) for i, n in enumerate(graph.node)
        if n.op_type not in SUPPORTED_OPS and n.domain in STANDARD_DOMAINS]
    if bad:
        raise UnsupportedOpsError(bad, hint=f"supported (standard ONNX domain): {', '.join(sorted(SUPPORTED_OPS))}; "
                                            f"from com.microsoft: {', '.join(sorted(SUPPORTED_MS_OPS))}")
    arrays = {t.name: tensor_array(t, f"initializer '{t.name}'") for t in graph.initializer}
    for name, arr in arrays.items():
        if arr.dtype.kind == "f":
            check_float_values(arr, f"initializer '{name}'")
    consts: dict[str, torch.Tensor] = {name: _tensor(arr) for name, arr in arrays.items()}
    graph_inputs = [i for i in graph.input if i.name not in consts]
    if len(graph_inputs) != 1 or len(graph.output) < 1:
        raise ModelError(f"expected one graph input and an output, got inputs {[i.name for i in graph_inputs]}")
    inp = graph_inputs[0]
    if not inp.type.tensor_type.HasField("shape"):
        raise ModelError(f"input '{inp.name}' has no shape; export the classifier with its input shape "
                         "(batch, *sample_shape), e.g. torch.onnx.export(..., dynamic_axes={'x': {0: 'batch'}})")
    dims = tuple((d.dim_value if d.HasField("dim_value") else None) for d in inp.type.tensor_type.shape.dim)
    if len(dims) < 2:
        raise ModelError(f"input '{inp.name}' has shape {dims}, but a classifier takes a batch of samples "
                         "(batch, *sample_shape); export it with the batch dimension")
    check_input_size(inp.name, [d or 1 for d in dims])
    steps: list[_Step] = []
    layers: dict[str, nn.Module] = {}
    taken: set[str] = set()
    for i, node in enumerate(order):
        a = _attrs(node)
        if node.op_type in ("Softmax", "LogSoftmax") and opset < 13:
            a.setdefault("axis", 1)
            a["_legacy"] = True
        if node.op_type == "Constant":
            if "value" not in a:
                raise UnsupportedOpsError([("Constant", node.name or f"#{i}")], hint="only 'value' constants")
            consts[node.output[0]] = _tensor(numpy_helper.to_array(a["value"]))
            continue
        real_inputs = [x for x in node.input if x]
        if real_inputs and all(x in consts for x in real_inputs):
            outs = _ALL[node.op_type]([consts.get(x) if x else None for x in node.input], a)
            for name, value in zip(node.output, outs, strict=False):
                consts[name] = value
            continue
        made = _layer_for(node, a, consts)
        if made is not None:
            name = module_name(node.name or f"{node.op_type.lower()}_{i}", taken)
            layers[name] = made[0]
            steps.append(_Step(node.op_type, (node.input[0],), tuple(node.output), {}, name, made[1]))
        else:
            steps.append(_Step(node.op_type, tuple(node.input), tuple(node.output), a))
    used = {x for s in steps for x in s.inputs} | {graph.output[0].name}
    kept = {k: v for k, v in consts.items() if k in used}
    per_sample = (bool(dims) and dims[0] == 1) or any(st.op in PER_SAMPLE_OPS for st in steps)
    return OnnxModule(steps, kept, layers, inp.name, dims, graph.output[0].name, per_sample).eval()


def num_classes_of(model: OnnxModule, example: torch.Tensor) -> int:
    """Number of classes: the width of the output for one example input."""
    with torch.inference_mode():
        out = model(example[:1])
    if out.dim() != 2:
        raise ModelError(f"model output has shape {tuple(out.shape)}; a classifier must output (batch, classes)")
    if out.shape[1] < 2:
        raise ModelError(
            f"model output has shape {tuple(out.shape)}: randomized smoothing needs at least 2 class scores "
            "(the argmax of a single score is always class 0); give the model one output per class, "
            "e.g. [z, -z] or [1 - p, p] for a binary score"
        )
    return int(out.shape[1])
