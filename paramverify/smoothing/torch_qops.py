"""Quantized ONNX operators as torch functions, for :mod:`.onnx_torch`.

What onnxruntime.quantization writes besides QuantizeLinear/DequantizeLinear:

* QOperator format: ``QLinearConv``, ``QLinearMatMul`` and, in the
  ``com.microsoft`` domain, ``QGemm``, ``QLinearAdd``, ``QLinearMul``,
  ``QLinearAveragePool``, ``QLinearGlobalAveragePool``, ``QLinearConcat``,
  ``QLinearLeakyRelu``, ``QLinearSigmoid``;
* dynamic quantization: ``DynamicQuantizeLinear``, ``MatMulInteger``, ``ConvInteger``.

Quantized tensors are float tensors holding the integer values.  The integer
products are accumulated in float32 (exact while the sums stay below 2**24,
within one float32 rounding of onnxruntime's int32 beyond), then requantized
as onnxruntime does: multiply by the float scale ratio, round half to even,
add the zero point, saturate to the zero point's type.  Elementwise and pooling
ops dequantize, compute in float and requantize, so a value on a rounding tie
may land one step away from onnxruntime's.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch

from paramverify.smoothing.torch_ops import Attrs, Fn, conv, pool, qrange

Ins = list[torch.Tensor | None]


def _f(t: torch.Tensor | None) -> torch.Tensor:
    return torch.zeros(()) if t is None else t.float()


def _opt(ins: Ins, i: int) -> torch.Tensor | None:
    return ins[i] if len(ins) > i else None


def _requant(y: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    """round(y) + zero point, saturated to the zero point's type (uint8 when absent)."""
    lo, hi = qrange(zero)
    return torch.clamp(torch.round(y) + _f(zero), lo, hi)


def _deq(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    return (x.float() - _f(zero)) * scale.float()


def _channel(t: torch.Tensor, rank: int, axis: int = 1) -> torch.Tensor:
    """A per-channel scale or zero point shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    t = t.float()
    if t.numel() == 1:
        return t.reshape(())
    shape = [1] * rank
    shape[axis] = t.numel()
    return t.reshape(shape)


def _qlinear_conv(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    x, xs, xz, w, ws, wz, ys, yz = ins[:8]
    assert x is not None and w is not None and xs is not None and ws is not None and ys is not None
    bias = _opt(ins, 8)
    wi = w.float() - _channel(_f(wz), w.dim(), 0)
    acc = conv([x.float() - _f(xz), wi, None if bias is None else bias.float()], a)[0]
    mult = xs.float() * _channel(ws, acc.dim()) / ys.float()
    return [_requant(acc * mult, yz)]


def _qlinear_matmul(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    x, xs, xz, w, ws, wz, ys, yz = ins[:8]
    assert x is not None and w is not None and xs is not None and ws is not None and ys is not None
    acc = (x.float() - _f(xz)) @ (w.float() - _f(wz))
    return [_requant(acc * (xs.float() * ws.float() / ys.float()), yz)]


def _qgemm(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    x, xs, xz, w, ws, wz = ins[:6]
    assert x is not None and w is not None and xs is not None and ws is not None
    c, ys, yz = _opt(ins, 6), _opt(ins, 7), _opt(ins, 8)
    xi = x.float() - _f(xz)
    trans_b = bool(a.get("transB", 0))
    wi = w.float() - (_f(wz).reshape(-1, 1) if trans_b and _f(wz).numel() > 1 else _f(wz))
    xi = xi.transpose(-1, -2) if a.get("transA", 0) else xi
    wi = wi.transpose(-1, -2) if trans_b else wi
    acc = float(a.get("alpha", 1.0)) * (xi @ wi)
    if c is not None:
        acc = acc + c.float()
    real = acc * (xs.float() * ws.float().reshape(-1))
    return [real if ys is None else _requant(real / ys.float(), yz)]


def _binary(fn: str) -> Fn:
    def run(ins: Ins, a: Attrs) -> list[torch.Tensor]:
        x, xs, xz, y, ysc, yzp, cs, cz = ins[:8]
        assert x is not None and xs is not None and y is not None and ysc is not None and cs is not None
        u, v = _deq(x, xs, xz), _deq(y, ysc, yzp)
        return [_requant((u + v if fn == "add" else u * v) / cs.float(), cz)]

    return run


def _unary(fn: str) -> Fn:
    def run(ins: Ins, a: Attrs) -> list[torch.Tensor]:
        x, xs, xz, ys, yz = ins[:5]
        assert x is not None and xs is not None and ys is not None
        u = _deq(x, xs, xz)
        if a.get("channels_last", 0):
            u = u.movedim(-1, 1)
        if fn == "avgpool":
            u = pool("avg")([u], a)[0]
        elif fn == "globalavg":
            u = u.mean(dim=tuple(range(2, u.dim())), keepdim=True)
        elif fn == "leakyrelu":
            u = torch.nn.functional.leaky_relu(u, float(a.get("alpha", 0.01)))
        else:
            u = torch.sigmoid(u)
        if a.get("channels_last", 0):
            u = u.movedim(1, -1)
        return [_requant(u / ys.float(), yz)]

    return run


def _qlinear_concat(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    ys, yz = ins[0], ins[1]
    assert ys is not None
    parts = []
    for i in range(2, len(ins), 3):
        x, xs, xz = ins[i], ins[i + 1], ins[i + 2]
        assert x is not None and xs is not None
        parts.append(_deq(x, xs, xz))
    return [_requant(torch.cat(parts, dim=int(a["axis"])) / ys.float(), yz)]


def _dynamic_quantize(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    """ONNX DynamicQuantizeLinear: uint8 over the range of ``x`` widened to hold 0."""
    x = ins[0]
    assert x is not None
    x = x.float()
    lo = torch.clamp(x.amin(), max=0.0)
    hi = torch.clamp(x.amax(), min=0.0)
    scale = (hi - lo) / 255.0
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero = torch.clamp(torch.round(-lo / safe), 0, 255)
    y = torch.clamp(torch.round(x / safe) + zero, 0, 255)
    return [y, scale, zero]


def _matmul_integer(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return [(x.float() - _f(_opt(ins, 2))) @ (w.float() - _f(_opt(ins, 3)))]


def _conv_integer(ins: Ins, a: Attrs) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    wz = _opt(ins, 3)
    wi = w.float() - (_channel(wz, w.dim(), 0) if wz is not None else 0.0)
    return conv([x.float() - _f(_opt(ins, 2)), wi, None], a)


#: ops in the default ONNX domain
QFUNCTIONS: Mapping[str, Fn] = MappingProxyType(
    {
        "QLinearConv": _qlinear_conv,
        "QLinearMatMul": _qlinear_matmul,
        "DynamicQuantizeLinear": _dynamic_quantize,
        "MatMulInteger": _matmul_integer,
        "ConvInteger": _conv_integer,
    }
)

#: onnxruntime's contrib ops (domain com.microsoft)
MS_FUNCTIONS: Mapping[str, Fn] = MappingProxyType(
    {
        "QGemm": _qgemm,
        "QLinearAdd": _binary("add"),
        "QLinearMul": _binary("mul"),
        "QLinearAveragePool": _unary("avgpool"),
        "QLinearGlobalAveragePool": _unary("globalavg"),
        "QLinearLeakyRelu": _unary("leakyrelu"),
        "QLinearSigmoid": _unary("sigmoid"),
        "QLinearConcat": _qlinear_concat,
    }
)

#: ops whose result depends on the whole tensor's range: a batch is evaluated one input at a time
PER_SAMPLE_OPS = frozenset({"DynamicQuantizeLinear"})
