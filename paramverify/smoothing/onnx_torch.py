"""A small ONNX -> torch converter for classifiers (float or QDQ-quantized).

Conv, Gemm and MatMul with constant weights become ``nn.Conv*d`` / ``nn.Linear``
modules named after their ONNX node (sanitized), so a quantization policy can
address them; every other supported operator (BatchNormalization in inference
form included) runs as a torch function.  Subgraphs whose inputs are
all constants (e.g. ``DequantizeLinear`` of int8 weights in a QDQ model) are
folded at load time, so a QDQ model's quantized weights are reproduced exactly;
activation Quantize/DequantizeLinear pairs run as fake quantization with ONNX
semantics (round half to even, saturate).  Every unsupported node is listed at
once in one :class:`~paramverify.errors.UnsupportedOpsError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from torch import nn

from paramverify.errors import ModelError, UnsupportedOpsError

Attrs = Mapping[str, Any]
Fn = Callable[[list[torch.Tensor | None], Attrs], list[torch.Tensor]]


# -- functional implementations -------------------------------------------------
def _pads(attrs: Attrs, spatial: int, x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int],
          dilations: Sequence[int]) -> list[int]:
    """ONNX pads [b1, b2, ..., e1, e2, ...] (auto_pad resolved) for ``x``."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        pads = list(attrs.get("pads", [0] * (2 * spatial)))
        return [0] * (2 * spatial) if auto == "VALID" else pads
    begins, ends = [], []
    for i in range(spatial):
        size = x.shape[2 + i]
        out = -(-size // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins + ends


def _torch_pad(pads: Sequence[int]) -> list[int]:
    """ONNX [b1..bn, e1..en] over spatial dims -> F.pad's last-dim-first order."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[n + i]]
    return out


def _pool(kind: str) -> Fn:
    def run(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
        x = ins[0]
        assert x is not None
        k = list(a["kernel_shape"])
        sp = len(k)
        strides = list(a.get("strides", [1] * sp))
        dil = list(a.get("dilations", [1] * sp))
        pads = _pads(a, sp, x, k, strides, dil)
        ceil = bool(a.get("ceil_mode", 0))
        sym = pads[:sp] == pads[sp:] and all(p <= kk // 2 for p, kk in zip(pads[:sp], k, strict=True))
        if kind == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[sp]
            if not sym:
                x = F.pad(x, _torch_pad(pads), value=float("-inf"))
                pads = [0] * (2 * sp)
            return [fn(x, k, strides, pads[:sp], dil, ceil_mode=ceil)]
        include = bool(a.get("count_include_pad", 0))
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[sp]
        if not sym:
            if not include and any(pads):
                raise ModelError("AveragePool with asymmetric pads and count_include_pad=0 is not supported")
            x = F.pad(x, _torch_pad(pads))
            pads = [0] * (2 * sp)
        return [fn(x, k, strides, pads[:sp], ceil_mode=ceil, count_include_pad=include)]

    return run


def _qshape(scale: torch.Tensor, x: torch.Tensor, axis: int) -> list[int]:
    if scale.dim() == 0 or scale.numel() == 1:
        return [1] * 0
    shape = [1] * x.dim()
    shape[axis % x.dim()] = scale.numel()
    return shape


def _qrange(zero: torch.Tensor | None) -> tuple[int, int]:
    if zero is None or zero.dtype == torch.uint8:
        return 0, 255
    if zero.dtype == torch.int8:
        return -128, 127
    if zero.dtype == torch.int16:
        return -32768, 32767
    if zero.dtype == torch.int32:
        return -(2**31), 2**31 - 1
    raise ModelError(f"QuantizeLinear zero point of type {zero.dtype} is not supported")


def _scale_zero(
    ins: list[torch.Tensor | None], a: Attrs
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(x, scale, zero point as float, raw zero point) of a Quantize/DequantizeLinear node,
    the scale and zero point shaped to broadcast against ``x`` along ``axis``."""
    x, scale = ins[0], ins[1]
    assert x is not None and scale is not None
    zero = ins[2] if len(ins) > 2 else None
    shape = _qshape(scale, x, int(a.get("axis", 1)))
    s = scale.float().reshape(shape) if shape else scale.float().reshape(())
    z = zero.float().reshape(s.shape) if zero is not None else torch.zeros_like(s)
    return x, s, z, zero


def _quantize(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, s, z, zero = _scale_zero(ins, a)
    lo, hi = _qrange(zero)
    # the result holds integer values in float32 (exact up to 2**24)
    return [torch.clamp(torch.round(x.float() / s) + z, lo, hi)]


def _dequantize(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, s, z, _ = _scale_zero(ins, a)
    return [(x.float() - z) * s]


def _reshape(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, shape_t = ins[0], ins[1]
    assert x is not None and shape_t is not None
    shape = [int(v) for v in shape_t.tolist()]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(shape)]


def _axes(ins: list[torch.Tensor | None], a: Attrs) -> list[int] | None:
    if len(ins) > 1 and ins[1] is not None:
        return [int(v) for v in ins[1].tolist()]
    return list(a["axes"]) if "axes" in a else None


def _unsqueeze(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x = ins[0]
    assert x is not None
    axes = _axes(ins, a) or []
    rank = x.dim() + len(axes)
    for ax in sorted(v % rank for v in axes):
        x = x.unsqueeze(ax)
    return [x]


def _squeeze(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x = ins[0]
    assert x is not None
    axes = _axes(ins, a)
    if axes is None:
        return [x.squeeze()]
    return [x.squeeze(tuple(v % x.dim() for v in axes))]


def _gemm(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    x = x.transpose(0, 1) if a.get("transA", 0) else x
    w = w.transpose(0, 1) if a.get("transB", 0) else w
    y = float(a.get("alpha", 1.0)) * (x @ w)
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(a.get("beta", 1.0)) * ins[2]
    return [y]


def _conv(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    b = ins[2] if len(ins) > 2 else None
    sp = w.dim() - 2
    k = list(a.get("kernel_shape", w.shape[2:]))
    strides = list(a.get("strides", [1] * sp))
    dil = list(a.get("dilations", [1] * sp))
    x = F.pad(x, _torch_pad(_pads(a, sp, x, k, strides, dil)))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[sp]
    return [fn(x, w, b, strides, 0, dil, int(a.get("group", 1)))]


def _batchnorm(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, scale, bias, mean, var = ins[:5]
    assert x is not None
    return [F.batch_norm(x, mean, var, scale, bias, False, 0.0, float(a.get("epsilon", 1e-5)))]


def _softmax(log: bool) -> Fn:
    def run(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
        x = ins[0]
        assert x is not None
        axis = int(a.get("axis", -1))
        if a.get("_legacy", False):  # opset < 13: coerce to 2-D at axis
            shape = x.shape
            flat = x.reshape(int(np.prod(shape[:axis])), -1)
            y = torch.log_softmax(flat, 1) if log else torch.softmax(flat, 1)
            return [y.reshape(shape)]
        return [torch.log_softmax(x, axis) if log else torch.softmax(x, axis)]

    return run


def _clip(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x = ins[0]
    assert x is not None
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    lo_v = float(lo) if lo is not None else None
    hi_v = float(hi) if hi is not None else None
    return [torch.clamp(x, lo_v, hi_v)]


def _pad(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x = ins[0]
    assert x is not None
    pads = [int(v) for v in ins[1].tolist()] if len(ins) > 1 and ins[1] is not None else list(a["pads"])
    value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else float(a.get("value", 0.0))
    mode = a.get("mode", "constant")
    n = len(pads) // 2
    tp: list[int] = []
    for i in reversed(range(n)):
        tp += [pads[i], pads[n + i]]
    while len(tp) >= 2 and tp[-2:] == [0, 0]:
        tp = tp[:-2]  # torch only pads trailing dims; drop leading zero pairs
    if mode != "constant":
        return [F.pad(x, tp, mode={"reflect": "reflect", "edge": "replicate"}[mode])]
    return [F.pad(x, tp, value=value)]


def _flatten(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x = ins[0]
    assert x is not None
    axis = int(a.get("axis", 1)) % max(x.dim(), 1)
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def _gather(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, idx = ins[0], ins[1]
    assert x is not None and idx is not None
    axis = int(a.get("axis", 0)) % x.dim()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx).long()
    picked = torch.index_select(x, axis, idx.reshape(-1))
    return [picked.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1 :]))]


def _one(f: Callable[..., torch.Tensor]) -> Fn:
    return lambda ins, a: [f(*ins)]


_FUNCTIONS: Mapping[str, Fn] = MappingProxyType(
    {
        "Relu": _one(torch.relu),
        "Sigmoid": _one(torch.sigmoid),
        "Tanh": _one(torch.tanh),
        "LeakyRelu": lambda ins, a: [F.leaky_relu(ins[0], float(a.get("alpha", 0.01)))],
        "Clip": _clip,
        "Add": _one(torch.add),
        "Sub": _one(torch.sub),
        "Mul": _one(torch.mul),
        "Div": lambda ins, a: [ins[0] / ins[1]],
        "Neg": _one(torch.neg),
        "MatMul": _one(torch.matmul),
        "Gemm": _gemm,
        "Conv": _conv,
        "BatchNormalization": _batchnorm,
        "MaxPool": _pool("max"),
        "AveragePool": _pool("avg"),
        "GlobalAveragePool": lambda ins, a: [ins[0].mean(dim=tuple(range(2, ins[0].dim())), keepdim=True)],
        "GlobalMaxPool": lambda ins, a: [ins[0].amax(dim=tuple(range(2, ins[0].dim())), keepdim=True)],
        "Flatten": _flatten,
        "Reshape": _reshape,
        "Transpose": lambda ins, a: [ins[0].permute(*(a.get("perm") or reversed(range(ins[0].dim()))))],
        "Squeeze": _squeeze,
        "Unsqueeze": _unsqueeze,
        "Concat": lambda ins, a: [torch.cat([t for t in ins if t is not None], dim=int(a["axis"]))],
        "Shape": lambda ins, a: [torch.tensor(list(ins[0].shape), dtype=torch.int64)],
        "Gather": _gather,
        "Identity": lambda ins, a: [ins[0]],
        "Dropout": lambda ins, a: [ins[0]],
        "Softmax": _softmax(False),
        "LogSoftmax": _softmax(True),
        "Pad": _pad,
        "QuantizeLinear": _quantize,
        "DequantizeLinear": _dequantize,
        "Cast": lambda ins, a: [ins[0].to(_ONNX_TO_TORCH[int(a["to"])])],
    }
)

_ONNX_TO_TORCH: Mapping[int, torch.dtype] = MappingProxyType(
    {
        onnx.TensorProto.FLOAT: torch.float32,
        onnx.TensorProto.DOUBLE: torch.float64,
        onnx.TensorProto.FLOAT16: torch.float16,
        onnx.TensorProto.INT64: torch.int64,
        onnx.TensorProto.INT32: torch.int32,
        onnx.TensorProto.INT8: torch.int8,
        onnx.TensorProto.UINT8: torch.uint8,
        onnx.TensorProto.BOOL: torch.bool,
    }
)

SUPPORTED_OPS = frozenset(_FUNCTIONS) | {"Constant"}


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
                 input_name: str, input_shape: tuple[int | None, ...], output_name: str) -> None:
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

    @property
    def static_batch(self) -> int | None:
        """The batch size fixed in the model's input shape (e.g. 1 for a static batch-1 export), else None."""
        first = self.input_shape[0] if self.input_shape else None
        return first if isinstance(first, int) and first >= 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.static_batch
        if k is None or x.dim() != len(self.input_shape) or x.shape[0] == k:
            return self._run_graph(x)
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
                outs = _FUNCTIONS[step.op](ins, step.attrs)
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
        return conv, (() if sym else tuple(_torch_pad(pads)))
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
        try:
            model = onnx.load(str(path))
        except (OSError, ValueError, DecodeError) as exc:
            raise ModelError(f"cannot read ONNX model {path}: {exc}") from exc
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    bad = [(n.op_type, n.name or f"#{i}") for i, n in enumerate(graph.node)
           if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx")]
    if bad:
        raise UnsupportedOpsError(bad, hint=f"supported: {', '.join(sorted(SUPPORTED_OPS))}")
    consts: dict[str, torch.Tensor] = {t.name: _tensor(numpy_helper.to_array(t)) for t in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in consts]
    if len(graph_inputs) != 1 or len(graph.output) < 1:
        raise ModelError(f"expected one graph input and an output, got inputs {[i.name for i in graph_inputs]}")
    inp = graph_inputs[0]
    dims = tuple((d.dim_value if d.HasField("dim_value") else None) for d in inp.type.tensor_type.shape.dim)
    steps: list[_Step] = []
    layers: dict[str, nn.Module] = {}
    taken: set[str] = set()
    for i, node in enumerate(graph.node):
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
            outs = _FUNCTIONS[node.op_type]([consts.get(x) if x else None for x in node.input], a)
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
    return OnnxModule(steps, kept, layers, inp.name, dims, graph.output[0].name).eval()


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
