"""Linear-algebra and elementwise arithmetic ops: Gemm, MatMul, Add, Sub, Mul, Div."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from paramverify.errors import ModelError
from paramverify.ops.base import ROLE_BIAS, ROLE_CONSTANT, ROLE_WEIGHT, Kernel, Op, const_value, is_const


def _int_consts(*values: Any) -> bool:
    """Integer constants (shape arithmetic): evaluated exactly in numpy by every kernel."""
    return all(is_const(v) and np.asarray(v).dtype.kind in "iub" for v in values)


def _swap_last(k: Kernel, a: Any) -> Any:
    nd = len(k.shape(a))
    perm = tuple(range(nd - 2)) + (nd - 1, nd - 2)
    return k.transpose(a, perm)


@dataclasses.dataclass(frozen=True)
class Gemm(Op):
    """Y = alpha * A' @ B' + beta * C, A' = A.T if transA, B' = B.T if transB."""

    alpha: float = 1.0
    beta: float = 1.0
    transA: int = 0
    transB: int = 0

    op_type: ClassVar[str] = "Gemm"
    input_roles: ClassVar[dict[int, str]] = {1: ROLE_WEIGHT, 2: ROLE_BIAS}
    arity: ClassVar[tuple[int, int]] = (2, 3)

    def channel_axis(self, index: int, ndim: int) -> int | None:
        if ndim != 2:
            return None
        if index == 1:
            return 0 if self.transB else 1
        if index == 0:  # A as the weight: its rows (or columns with transA) are the outputs
            return 1 if self.transA else 0
        return None

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        a, b = inputs[0], inputs[1]
        if self.transA:
            a = _swap_last(k, a)
        if self.transB:
            b = _swap_last(k, b)
        y = k.matmul(a, b)
        if self.alpha != 1.0:
            y = k.mul(y, self.alpha)
        if len(inputs) > 2:
            c = inputs[2]
            if self.beta != 1.0:
                c = k.mul(c, self.beta)
            y = k.add(y, c)
        return y


@dataclasses.dataclass(frozen=True)
class MatMul(Op):
    op_type: ClassVar[str] = "MatMul"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_WEIGHT, 1: ROLE_WEIGHT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        a, b = k.shape(inputs[0]), k.shape(inputs[1])
        if a and b and a[-1] != (b[-2] if len(b) >= 2 else b[0]):
            raise ModelError(
                f"MatMul of shapes {list(a)} and {list(b)}: the inner dimensions differ. paramverify reads the "
                "input's first axis as the batch, so W @ x with a column-vector input [n, 1] is not supported; "
                "export the model as x @ W^T with a row input [1, n] (or [N, n])"
            )
        return k.matmul(inputs[0], inputs[1])

    def channel_axis(self, index: int, ndim: int) -> int | None:
        if ndim < 2:
            return None
        return ndim - 1 if index == 1 else ndim - 2  # x @ W: W's columns; W @ x: W's rows


@dataclasses.dataclass(frozen=True)
class Add(Op):
    """An initializer operand of Add is a bias (PyTorch exports Linear as MatMul + Add)."""

    op_type: ClassVar[str] = "Add"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_BIAS, 1: ROLE_BIAS}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if _int_consts(*inputs):
            return np.add(inputs[0], inputs[1])
        return k.add(inputs[0], inputs[1])


@dataclasses.dataclass(frozen=True)
class Sub(Op):
    """Initializer operands of Sub are constants (input normalisation) by default."""

    op_type: ClassVar[str] = "Sub"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_CONSTANT, 1: ROLE_CONSTANT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if _int_consts(*inputs):
            return np.subtract(inputs[0], inputs[1])
        return k.sub(inputs[0], inputs[1])


@dataclasses.dataclass(frozen=True)
class Mul(Op):
    op_type: ClassVar[str] = "Mul"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_CONSTANT, 1: ROLE_CONSTANT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if _int_consts(*inputs):
            return np.multiply(inputs[0], inputs[1])
        return k.mul(inputs[0], inputs[1])


@dataclasses.dataclass(frozen=True)
class Div(Op):
    """Division by a constant only (the divisor may not be perturbed)."""

    op_type: ClassVar[str] = "Div"
    input_roles: ClassVar[dict[int, str]] = {1: ROLE_CONSTANT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if _int_consts(*inputs):
            a, b = np.asarray(inputs[0]), np.asarray(inputs[1])
            return np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))  # ONNX integer Div truncates
        return k.div(inputs[0], const_value(inputs[1], "the divisor of Div"))


OPS: tuple[type[Op], ...] = (Gemm, MatMul, Add, Sub, Mul, Div)
