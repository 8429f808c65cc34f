"""Linear-algebra and elementwise arithmetic ops: Gemm, MatMul, Add, Sub, Mul, Div."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from paramverify.errors import ModelError
from paramverify.ops.base import ROLE_BIAS, ROLE_CONSTANT, ROLE_WEIGHT, Kernel, Op, const_value


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


@dataclasses.dataclass(frozen=True)
class Add(Op):
    """An initializer operand of Add is a bias (PyTorch exports Linear as MatMul + Add)."""

    op_type: ClassVar[str] = "Add"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_BIAS, 1: ROLE_BIAS}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.add(inputs[0], inputs[1])


@dataclasses.dataclass(frozen=True)
class Sub(Op):
    """Initializer operands of Sub are constants (input normalisation) by default."""

    op_type: ClassVar[str] = "Sub"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_CONSTANT, 1: ROLE_CONSTANT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.sub(inputs[0], inputs[1])


@dataclasses.dataclass(frozen=True)
class Mul(Op):
    op_type: ClassVar[str] = "Mul"
    input_roles: ClassVar[dict[int, str]] = {0: ROLE_CONSTANT, 1: ROLE_CONSTANT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.mul(inputs[0], inputs[1])


@dataclasses.dataclass(frozen=True)
class Div(Op):
    """Division by a constant only (the divisor may not be perturbed)."""

    op_type: ClassVar[str] = "Div"
    input_roles: ClassVar[dict[int, str]] = {1: ROLE_CONSTANT}
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.div(inputs[0], const_value(inputs[1], "the divisor of Div"))


OPS: tuple[type[Op], ...] = (Gemm, MatMul, Add, Sub, Mul, Div)
