"""Activation ops: Relu, LeakyRelu, Sigmoid, Tanh, Softmax."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from paramverify.ops.base import Kernel, Op


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


OPS: tuple[type[Op], ...] = (Relu, LeakyRelu, Sigmoid, Tanh, Softmax)
