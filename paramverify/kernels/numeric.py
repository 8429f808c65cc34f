"""Plain float64 evaluation: the reference semantics of an imported model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from scipy import special
from scipy.special import expit


class NumericKernel:
    """Evaluates ops on float64 numpy arrays (constants and variables alike)."""

    #: primitives this kernel cannot hold -> why (none: every primitive is implemented)
    UNSUPPORTED: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def shape(self, a: Any) -> tuple[int, ...]:
        return tuple(np.shape(a))

    def add(self, a: Any, b: Any) -> np.ndarray:
        return np.add(a, b)

    def sub(self, a: Any, b: Any) -> np.ndarray:
        return np.subtract(a, b)

    def mul(self, a: Any, b: Any) -> np.ndarray:
        return np.multiply(a, b)

    def div(self, a: Any, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b)

    def neg(self, a: Any) -> np.ndarray:
        return np.negative(a)

    def matmul(self, a: Any, b: Any) -> np.ndarray:
        return np.matmul(a, b)

    def relu(self, a: Any) -> np.ndarray:
        return np.maximum(a, 0.0)

    def leaky_relu(self, a: Any, alpha: float) -> np.ndarray:
        a = np.asarray(a)
        return np.where(a >= 0, a, alpha * a)

    def sigmoid(self, a: Any) -> np.ndarray:
        return expit(a)

    def tanh(self, a: Any) -> np.ndarray:
        return np.tanh(a)

    def softmax(self, a: Any, axis: int) -> np.ndarray:
        a = np.asarray(a)
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(self, a: Any, axis: int) -> np.ndarray:
        a = np.asarray(a)
        z = a - a.max(axis=axis, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))

    def erf(self, a: Any) -> np.ndarray:
        return special.erf(a)

    def fake_quant(self, a: Any, enable: Any, grid: Any) -> np.ndarray:
        from paramverify.ops.quant import fake_quant

        a = np.asarray(a, dtype=np.float64)
        return a + np.asarray(enable) * (fake_quant(a, grid) - a)

    def dynamic_fake_quant(self, a: Any, enable: Any, qmin: int, qmax: int) -> np.ndarray:
        from paramverify.ops.quant import dynamic_fake_quant

        a = np.asarray(a, dtype=np.float64)
        return a + np.asarray(enable) * (dynamic_fake_quant(a, qmin, qmax) - a)

    def reshape(self, a: Any, shape: tuple[int, ...]) -> np.ndarray:
        return np.reshape(a, shape)

    def transpose(self, a: Any, perm: tuple[int, ...]) -> np.ndarray:
        return np.transpose(a, perm)

    def concat(self, values: Sequence[Any], axis: int) -> np.ndarray:
        return np.concatenate(values, axis=axis)

    def take(self, a: Any, indices: np.ndarray, axis: int) -> np.ndarray:
        return np.take(a, indices, axis=axis)

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> np.ndarray:
        return np.pad(a, pad_width)
