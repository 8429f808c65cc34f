"""ONNX operators as torch functions, for :mod:`.onnx_torch` (float ops; the quantized ones are
in :mod:`.torch_qops`).

Each entry of :data:`FUNCTIONS` takes the node's inputs (``None`` for an omitted
optional input) and its attributes, and returns its outputs.  Quantized values
are held as float tensors of integer values (exact up to 2**24).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F

from paramverify.errors import ModelError

Attrs = Mapping[str, Any]
Fn = Callable[[list[torch.Tensor | None], Attrs], list[torch.Tensor]]


# -- functional implementations -------------------------------------------------
def pads_of(attrs: Attrs, spatial: int, x: torch.Tensor, kernel: Sequence[int], strides: Sequence[int],
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


def torch_pad(pads: Sequence[int]) -> list[int]:
    """ONNX [b1..bn, e1..en] over spatial dims -> F.pad's last-dim-first order."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[n + i]]
    return out


def pool(kind: str) -> Fn:
    def run(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
        x = ins[0]
        assert x is not None
        k = list(a["kernel_shape"])
        sp = len(k)
        strides = list(a.get("strides", [1] * sp))
        dil = list(a.get("dilations", [1] * sp))
        pads = pads_of(a, sp, x, k, strides, dil)
        ceil = bool(a.get("ceil_mode", 0))
        sym = pads[:sp] == pads[sp:] and all(p <= kk // 2 for p, kk in zip(pads[:sp], k, strict=True))
        if kind == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[sp]
            if not sym:
                x = F.pad(x, torch_pad(pads), value=float("-inf"))
                pads = [0] * (2 * sp)
            return [fn(x, k, strides, pads[:sp], dil, ceil_mode=ceil)]
        include = bool(a.get("count_include_pad", 0))
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[sp]
        if not sym:
            if not include and any(pads):
                raise ModelError("AveragePool with asymmetric pads and count_include_pad=0 is not supported")
            x = F.pad(x, torch_pad(pads))
            pads = [0] * (2 * sp)
        return [fn(x, k, strides, pads[:sp], ceil_mode=ceil, count_include_pad=include)]

    return run


def _qshape(scale: torch.Tensor, x: torch.Tensor, axis: int) -> list[int]:
    if scale.dim() == 0 or scale.numel() == 1:
        return [1] * 0
    shape = [1] * x.dim()
    shape[axis % x.dim()] = scale.numel()
    return shape


def qrange(zero: torch.Tensor | None) -> tuple[int, int]:
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
    lo, hi = qrange(zero)
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


def conv(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    b = ins[2] if len(ins) > 2 else None
    sp = w.dim() - 2
    k = list(a.get("kernel_shape", w.shape[2:]))
    strides = list(a.get("strides", [1] * sp))
    dil = list(a.get("dilations", [1] * sp))
    x = F.pad(x, torch_pad(pads_of(a, sp, x, k, strides, dil)))
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



def _reduce(kind: str) -> Fn:
    def run(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
        x = ins[0]
        assert x is not None
        axes = _axes(ins, a)
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.dim()))
        dims = tuple(v % x.dim() for v in axes)
        return [x.mean(dim=dims, keepdim=keep) if kind == "mean" else x.sum(dim=dims, keepdim=keep)]

    return run


def _slice(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x = ins[0]
    assert x is not None

    def vals(i: int, key: str) -> list[int] | None:
        if len(ins) > i and ins[i] is not None:
            return [int(v) for v in ins[i].tolist()]
        return list(a[key]) if key in a else None

    starts, ends = vals(1, "starts"), vals(2, "ends")
    assert starts is not None and ends is not None
    axes = vals(3, "axes") or list(range(len(starts)))
    steps = vals(4, "steps") or [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    flips = []
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        ax %= x.dim()
        size = x.shape[ax]
        if sp > 0:
            lo = max(0, min(size, st + size if st < 0 else st))
            hi = max(0, min(size, en + size if en < 0 else en))
            index[ax] = slice(lo, hi, sp)
        else:  # torch has no negative steps: take the range forwards, then flip
            lo = max(-1, min(size - 1, st + size if st < 0 else st))
            hi = max(-1, min(size - 1, en + size if en < 0 else en))
            picked = list(range(lo, hi, sp))
            index[ax] = slice(picked[-1], picked[0] + 1, -sp) if picked else slice(0, 0)
            flips.append(ax)
    y = x[tuple(index)]
    return [y.flip(flips) if flips else y]


def _gelu(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    return [F.gelu(ins[0], approximate="tanh" if a.get("approximate", "none") == "tanh" else "none")]


def _constant_of_shape(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    shape = [int(v) for v in ins[0].tolist()]
    value = a.get("value")
    fill = torch.from_numpy(np.array(numpy_helper.to_array(value))).reshape(()) if value is not None else torch.tensor(0.0)
    return [torch.full(shape, fill.item(), dtype=fill.dtype)]


def _expand(ins: list[torch.Tensor | None], a: Attrs) -> list[torch.Tensor]:
    x, shape_t = ins[0], ins[1]
    assert x is not None and shape_t is not None
    shape = [int(v) for v in shape_t.tolist()]
    rank = max(len(shape), x.dim())
    shape = [1] * (rank - len(shape)) + shape
    xs = [1] * (rank - x.dim()) + list(x.shape)
    return [x.reshape(xs).expand([max(s, t) if 1 in (s, t) else s for s, t in zip(xs, shape, strict=True)])]


def _one(f: Callable[..., torch.Tensor]) -> Fn:
    return lambda ins, a: [f(*ins)]


FUNCTIONS: Mapping[str, Fn] = MappingProxyType(
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
        "Conv": conv,
        "BatchNormalization": _batchnorm,
        "MaxPool": pool("max"),
        "AveragePool": pool("avg"),
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
        "Cast": lambda ins, a: [ins[0].to(ONNX_TO_TORCH[int(a["to"])])],
        "Erf": _one(torch.erf),
        "Gelu": _gelu,
        "Sqrt": _one(torch.sqrt),
        "Pow": _one(torch.pow),
        "ReduceMean": _reduce("mean"),
        "ReduceSum": _reduce("sum"),
        "Slice": _slice,
        "Expand": _expand,
        "ConstantOfShape": _constant_of_shape,
    }
)

ONNX_TO_TORCH: Mapping[int, torch.dtype] = MappingProxyType(
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
