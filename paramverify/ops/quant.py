"""Activation quantization as ops: the rounding step of a deployed int8 model.

These two ops do not occur in exported models; :mod:`paramverify.quantized`
inserts them when it lowers an onnxruntime int8 model (QDQ, QOperator or
dynamic) onto the structure of its float model.  Each takes the tensor and
an *enable* scalar (an initializer: 0 in the float model, 1 in the int8
copy), so one graph computes both models and the differential kernels bound
their difference directly:

* ``ActivationQuantize`` -- ``QuantizeLinear`` then ``DequantizeLinear`` with
  a fixed per-tensor grid: ``(clip(round(x / s) + z, qmin, qmax) - z) * s``,
  round half to even (ONNX semantics);
* ``DynamicActivationQuantize`` -- ``DynamicQuantizeLinear`` then the
  dequantization: the uint8 grid is chosen from the tensor's own range
  (``s = (max(x, 0) - min(x, 0)) / 255``), per sample.

A kernel runs them through ``k.fake_quant(x, enable, grid)`` and
``k.dynamic_fake_quant(x, enable, qmin, qmax)``; a kernel without them
(the SMT encoders) raises :class:`CapabilityError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from paramverify.errors import CapabilityError
from paramverify.ops.base import Kernel, Op, is_const

ENABLE_NAME = "__int8_enable"


@dataclasses.dataclass(frozen=True)
class Grid:
    """A per-tensor quantization grid: values ``(q - zero_point) * scale``, ``qmin <= q <= qmax``."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int

    @property
    def low(self) -> float:
        return (self.qmin - self.zero_point) * self.scale

    @property
    def high(self) -> float:
        return (self.qmax - self.zero_point) * self.scale


def fake_quant(x: Any, grid: Grid) -> np.ndarray:
    """ONNX QuantizeLinear + DequantizeLinear in float64 (round half to even, saturate)."""
    q = np.clip(np.rint(np.asarray(x, dtype=np.float64) / grid.scale) + grid.zero_point, grid.qmin, grid.qmax)
    return (q - grid.zero_point) * grid.scale


def dynamic_grid(x: np.ndarray, qmin: int = 0, qmax: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Per sample (axis 0): DynamicQuantizeLinear's scale and zero point."""
    flat = np.asarray(x, dtype=np.float64).reshape(np.shape(x)[0], -1)
    lo = np.minimum(flat.min(axis=1), 0.0)
    hi = np.maximum(flat.max(axis=1), 0.0)
    scale = (hi - lo) / (qmax - qmin)
    safe = np.where(scale > 0, scale, 1.0)
    zero = np.clip(np.rint(qmin - lo / safe), qmin, qmax)
    return scale, zero


def dynamic_fake_quant(x: Any, qmin: int = 0, qmax: int = 255) -> np.ndarray:
    """DynamicQuantizeLinear + dequantization in float64, per sample (axis 0)."""
    x = np.asarray(x, dtype=np.float64)
    scale, zero = dynamic_grid(x, qmin, qmax)
    view = (-1,) + (1,) * (x.ndim - 1)
    s, z = scale.reshape(view), zero.reshape(view)
    safe = np.where(s > 0, s, 1.0)
    q = np.clip(np.rint(x / safe) + z, qmin, qmax)
    return np.where(s > 0, (q - z) * s, 0.0)


def _no_kernel(k: Kernel) -> CapabilityError:
    return CapabilityError(
        f"{type(k).__name__} has no model of int8 activation rounding; use the bound engine (--backend bounds)"
    )


@dataclasses.dataclass(frozen=True)
class ActivationQuantize(Op):
    """``x + enable * (fake_quant(x) - x)``: identity in the float model, the int8 rounding in the copy."""

    scale: float = 1.0
    zero_point: int = 0
    qmin: int = -128
    qmax: int = 127
    op_type: ClassVar[str] = "ActivationQuantize"
    domain: ClassVar[str] = "ai.paramverify"  # written only by paramverify.quantized, never read from a user's file
    arity: ClassVar[tuple[int, int]] = (2, 2)

    @property
    def grid(self) -> Grid:
        return Grid(self.scale, self.zero_point, self.qmin, self.qmax)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x, enable = inputs
        if is_const(enable) and not np.any(enable):
            return x
        fn = getattr(k, "fake_quant", None)
        if fn is None:
            raise _no_kernel(k)
        return fn(x, enable, self.grid)


@dataclasses.dataclass(frozen=True)
class DynamicActivationQuantize(Op):
    """``x + enable * (dynamic_fake_quant(x) - x)`` (quantize_dynamic's activations)."""

    qmin: int = 0
    qmax: int = 255
    op_type: ClassVar[str] = "DynamicActivationQuantize"
    domain: ClassVar[str] = "ai.paramverify"
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x, enable = inputs
        if is_const(enable) and not np.any(enable):
            return x
        fn = getattr(k, "dynamic_fake_quant", None)
        if fn is None:
            raise _no_kernel(k)
        return fn(x, enable, self.qmin, self.qmax)


OPS = (ActivationQuantize, DynamicActivationQuantize)
