"""Activation ops: Relu, LeakyRelu, Sigmoid, Tanh, Softmax, LogSoftmax, Clip, Erf, Gelu."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import math

import numpy as np

from paramverify.errors import ModelError
from paramverify.ops.base import Kernel, Op, const_value


@dataclasses.dataclass(frozen=True)
class Relu(Op):
    op_type: ClassVar[str] = "Relu"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.relu(inputs[0])


@dataclasses.dataclass(frozen=True)
class LeakyRelu(Op):
    alpha: float = 0.01
    op_type: ClassVar[str] = "LeakyRelu"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.leaky_relu(inputs[0], self.alpha)


@dataclasses.dataclass(frozen=True)
class Sigmoid(Op):
    op_type: ClassVar[str] = "Sigmoid"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.sigmoid(inputs[0])


@dataclasses.dataclass(frozen=True)
class Tanh(Op):
    op_type: ClassVar[str] = "Tanh"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.tanh(inputs[0])


@dataclasses.dataclass(frozen=True)
class Softmax(Op):
    """Opset >= 13 semantics: normalise along ``axis`` alone."""

    axis: int = -1
    op_type: ClassVar[str] = "Softmax"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.softmax(inputs[0], self.axis)


@dataclasses.dataclass(frozen=True)
class LogSoftmax(Op):
    """Opset >= 13 semantics: normalise along ``axis`` alone."""

    axis: int = -1
    op_type: ClassVar[str] = "LogSoftmax"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.log_softmax(inputs[0], self.axis)


@dataclasses.dataclass(frozen=True)
class Clip(Op):
    """clip(x, lo, hi) = min(max(x, lo), hi) with ``max(x, lo) = lo + relu(x - lo)`` and
    ``min(y, hi) = y - relu(y - hi)``: piecewise linear, exact in every kernel (ReLU6 too).

    The bounds are constants: inputs 1, 2 (opset >= 11) or the attributes.
    """

    min: float = -math.inf
    max: float = math.inf
    op_type: ClassVar[str] = "Clip"
    arity: ClassVar[tuple[int, int]] = (1, 3)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        lo, hi = self.min, self.max
        if len(inputs) > 1 and inputs[1] is not None:
            lo = float(np.asarray(const_value(inputs[1], "the min of Clip")).reshape(-1)[0])
        if len(inputs) > 2 and inputs[2] is not None:
            hi = float(np.asarray(const_value(inputs[2], "the max of Clip")).reshape(-1)[0])
        if math.isnan(lo) or math.isnan(hi):
            raise ModelError("Clip: a NaN bound")
        y = inputs[0]
        if lo > -math.inf:
            y = k.add(k.relu(k.sub(y, lo)), lo)
        if hi < math.inf:
            y = k.sub(y, k.relu(k.sub(y, hi)))
        return y


@dataclasses.dataclass(frozen=True)
class Erf(Op):
    op_type: ClassVar[str] = "Erf"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.erf(inputs[0])


@dataclasses.dataclass(frozen=True)
class Gelu(Op):
    """Opset 20: ``x Phi(x) = x (1 + erf(x / sqrt 2)) / 2``, or the tanh approximation."""

    approximate: str = "none"
    op_type: ClassVar[str] = "Gelu"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x = inputs[0]
        if self.approximate == "none":
            inner = k.erf(k.div(x, np.asarray(math.sqrt(2.0))))
        elif self.approximate == "tanh":
            cube = k.mul(k.mul(x, x), x)
            inner = k.tanh(k.mul(k.add(x, k.mul(cube, 0.044715)), math.sqrt(2.0 / math.pi)))
        else:
            raise ModelError(f"Gelu: approximate='{self.approximate}' is not supported")
        return k.mul(x, k.mul(k.add(inner, 1.0), 0.5))


OPS: tuple[type[Op], ...] = (Relu, LeakyRelu, Sigmoid, Tanh, Softmax, LogSoftmax, Clip, Erf, Gelu)
