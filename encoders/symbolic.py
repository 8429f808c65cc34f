"""The symbolic kernel: ONNX ops over arrays of exact rationals and solver terms.

A value is a :class:`Sym`, a numpy object array whose elements are either
``Fraction`` (an exact constant) or an opaque solver term made by a
:class:`~encoders.base.TermBuilder`.  Plain numpy operands are constants and
enter as ``Fraction(float)``, i.e. the exact binary value of each float64.
Constant sub-expressions are folded in exact rational arithmetic, so the
encoding is the network evaluated in real arithmetic on the exact float64
parameters: no rounding anywhere.

``Sym`` wraps the array (instead of being one) so that
:func:`paramverify.ops.base.is_const`, which treats every ``np.ndarray`` as
a constant, never mistakes symbolic values for constants.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from encoders.base import ExactOnlyBuilder, TermBuilder
from encoders.rational import to_fraction
from paramverify.errors import CapabilityError, ModelError
from paramverify.ir import Graph
from paramverify.ops.base import is_const

_ZERO = Fraction(0)
_ONE = Fraction(1)


@dataclass(frozen=True, eq=False)
class Sym:
    """An array of ``Fraction`` constants and solver terms (dtype object)."""

    a: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.a.shape)


def is_num(v: Any) -> bool:
    """True for an exact constant element (Fraction or int)."""
    return isinstance(v, (Fraction, int)) and not isinstance(v, bool)


def fractions_of(arr: Any) -> np.ndarray:
    """A numpy constant as an object array of exact Fractions."""
    arr = np.asarray(arr)
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(arr.reshape(-1)):
        flat[i] = to_fraction(v.item() if hasattr(v, "item") else v)
    return out


class SymbolicKernel:
    """Implements :class:`paramverify.ops.base.Kernel` over :class:`Sym` values.

    Guarantee: for any assignment of the builder's variables, the terms
    denote exactly the real-arithmetic value of the op graph (ReLU as
    ``max(., 0)``); constants are folded exactly.  Ops the builder cannot
    express (``exp`` for z3) raise ``CapabilityError``.
    """

    #: primitives no SMT builder here can hold -> why
    UNSUPPORTED: ClassVar[Mapping[str, str]] = MappingProxyType({
        "log_softmax": "op LogSoftmax: the symbolic kernel (z3/dReal/SMT-LIB) has no log; for label properties "
                       "drop it (it is skipped automatically as the final op) or use --backend bounds",
        "erf": "op Erf/Gelu: the symbolic kernel (z3/dReal/SMT-LIB) has no erf; use --backend bounds",
    })

    def __init__(self, builder: TermBuilder) -> None:
        self.b = builder

    # ------------------------------------------------------------ helpers
    def lift(self, v: Any) -> np.ndarray:
        if isinstance(v, Sym):
            return v.a
        if is_const(v):
            return fractions_of(v)
        raise TypeError(f"symbolic kernel got an unexpected value of type {type(v).__name__}")

    def term(self, e: Any) -> Any:
        """An element as a solver term (constants become exact rational terms)."""
        return self.b.const(Fraction(e)) if is_num(e) else e

    def _lin(self, c: Fraction, pairs: list[tuple[Fraction, Any]]) -> Any:
        pairs = [(q, t) for q, t in pairs if q != 0]
        if not pairs:
            return c
        if c == 0 and len(pairs) == 1 and pairs[0][0] == 1:
            return pairs[0][1]
        return self.b.linear(c, pairs)

    def _elementwise(self, fn: Any, *values: Any) -> Sym:
        arrays = np.broadcast_arrays(*[self.lift(v) for v in values])
        out = np.empty(arrays[0].shape, dtype=object)
        flat = out.reshape(-1)
        for i, items in enumerate(zip(*[a.reshape(-1) for a in arrays])):
            flat[i] = fn(*items)
        return Sym(out)

    def _add2(self, x: Any, y: Any) -> Any:
        if is_num(x) and is_num(y):
            return Fraction(x) + y
        if is_num(x):
            return self._lin(Fraction(x), [(_ONE, y)])
        if is_num(y):
            return self._lin(Fraction(y), [(_ONE, x)])
        return self._lin(_ZERO, [(_ONE, x), (_ONE, y)])

    def _sub2(self, x: Any, y: Any) -> Any:
        return self._add2(x, self._neg1(y))

    def _neg1(self, x: Any) -> Any:
        return -Fraction(x) if is_num(x) else self._lin(_ZERO, [(-_ONE, x)])

    def _mul2(self, x: Any, y: Any) -> Any:
        if is_num(x) and is_num(y):
            return Fraction(x) * y
        if is_num(x):
            return self._lin(_ZERO, [(Fraction(x), y)])
        if is_num(y):
            return self._lin(_ZERO, [(Fraction(y), x)])
        return self.b.mul(x, y)

    def _dot(self, row: Sequence[Any], col: Sequence[Any]) -> Any:
        c = _ZERO
        pairs: list[tuple[Fraction, Any]] = []
        for x, y in zip(row, col):
            if is_num(x) and is_num(y):
                c += Fraction(x) * y
            elif is_num(x):
                if x != 0:
                    pairs.append((Fraction(x), y))
            elif is_num(y):
                if y != 0:
                    pairs.append((Fraction(y), x))
            else:
                pairs.append((_ONE, self.b.mul(x, y)))
        return self._lin(c, pairs)

    # ------------------------------------------------------------- Kernel
    def shape(self, a: Any) -> tuple[int, ...]:
        return a.shape if isinstance(a, Sym) else tuple(np.shape(a))

    def add(self, a: Any, b: Any) -> Sym:
        return self._elementwise(self._add2, a, b)

    def sub(self, a: Any, b: Any) -> Sym:
        return self._elementwise(self._sub2, a, b)

    def mul(self, a: Any, b: Any) -> Sym:
        return self._elementwise(self._mul2, a, b)

    def div(self, a: Any, b: np.ndarray) -> Sym:
        inv = fractions_of(b)
        for i, v in enumerate(inv.reshape(-1)):
            if v == 0:
                raise ModelError("division by a zero constant")
            inv.reshape(-1)[i] = 1 / v
        return self._elementwise(self._mul2, a, Sym(inv))

    def neg(self, a: Any) -> Sym:
        return self._elementwise(self._neg1, a)

    def matmul(self, a: Any, b: Any) -> Sym:
        A, B = self.lift(a), self.lift(b)
        squeeze_a, squeeze_b = A.ndim == 1, B.ndim == 1
        if squeeze_a:
            A = A.reshape(1, -1)
        if squeeze_b:
            B = B.reshape(-1, 1)
        if A.shape[-1] != B.shape[-2]:
            raise ModelError(f"matmul: shapes {A.shape} and {B.shape} do not fit")
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        A = np.broadcast_to(A, batch + A.shape[-2:])
        B = np.broadcast_to(B, batch + B.shape[-2:])
        n, m = A.shape[-2], B.shape[-1]
        out = np.empty(batch + (n, m), dtype=object)
        for idx in itertools.product(*[range(d) for d in batch]):
            Ai, Bi, Oi = A[idx], B[idx], out[idx]
            for i in range(n):
                row = list(Ai[i])
                for j in range(m):
                    Oi[i, j] = self._dot(row, list(Bi[:, j]))
        if squeeze_a:
            out = out.reshape(out.shape[:-2] + (m,))
        if squeeze_b:
            out = out.reshape(out.shape[:-1])
        return Sym(out)

    def relu(self, a: Any) -> Sym:
        return self._elementwise(lambda x: max(Fraction(x), _ZERO) if is_num(x) else self.b.relu(x), a)

    def leaky_relu(self, a: Any, alpha: float) -> Sym:
        al = to_fraction(alpha)

        def one(x: Any) -> Any:
            if is_num(x):
                return Fraction(x) if x >= 0 else al * x
            return self.b.leaky_relu(x, al)

        return self._elementwise(one, a)

    def sigmoid(self, a: Any) -> Sym:
        return self._elementwise(lambda x: self.b.sigmoid(self.term(x)), a)

    def tanh(self, a: Any) -> Sym:
        return self._elementwise(lambda x: self.b.tanh(self.term(x)), a)

    def softmax(self, a: Any, axis: int) -> Sym:
        A = self.lift(a)
        e = np.empty(A.shape, dtype=object)
        for i, x in enumerate(A.reshape(-1)):
            e.reshape(-1)[i] = self.b.exp(self.term(x))
        moved = np.moveaxis(e, axis, -1)
        out = np.empty(moved.shape, dtype=object)
        for idx in itertools.product(*[range(d) for d in moved.shape[:-1]]):
            total = self.b.linear(_ZERO, [(_ONE, t) for t in moved[idx]])
            for j, t in enumerate(moved[idx]):
                out[idx + (j,)] = self.b.div(t, total)
        return Sym(np.moveaxis(out, -1, axis))

    def log_softmax(self, a: Any, axis: int) -> Sym:
        raise CapabilityError(self.UNSUPPORTED["log_softmax"])

    def erf(self, a: Any) -> Sym:
        raise CapabilityError(self.UNSUPPORTED["erf"])

    # ------------------------------------------------ linear, exact reshapes
    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        return np.reshape(a, shape) if not isinstance(a, Sym) else Sym(a.a.reshape(shape))

    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any:
        return np.transpose(a, perm) if not isinstance(a, Sym) else Sym(np.transpose(a.a, perm))

    def concat(self, values: Sequence[Any], axis: int) -> Any:
        if not any(isinstance(v, Sym) for v in values):
            return np.concatenate(values, axis=axis)
        return Sym(np.concatenate([self.lift(v) for v in values], axis=axis))

    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any:
        return np.take(a, indices, axis=axis) if not isinstance(a, Sym) else Sym(np.take(a.a, indices, axis=axis))

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any:
        if not isinstance(a, Sym):
            return np.pad(a, pad_width)
        src = a.a
        out = np.empty(tuple(d + lo + hi for d, (lo, hi) in zip(src.shape, pad_width)), dtype=object)
        out.fill(_ZERO)
        out[tuple(slice(lo, lo + d) for d, (lo, _) in zip(src.shape, pad_width))] = src
        return Sym(out)


def flat(value: Any) -> list[Any]:
    """The elements of a kernel value (Sym or numpy) in C order, constants as Fractions."""
    if isinstance(value, Sym):
        return list(value.a.reshape(-1))
    return list(fractions_of(value).reshape(-1))


def exact_outputs(graph: Graph, x: np.ndarray, params: Mapping[str, np.ndarray] | None = None) -> list[Fraction]:
    """The graph's outputs in exact rational arithmetic on exact float64 inputs.

    Raises ``CapabilityError`` when the graph has an op without a rational
    semantics (sigmoid, tanh, softmax).
    """
    k = SymbolicKernel(ExactOnlyBuilder())
    xs = Sym(fractions_of(graph.as_batch(x)[:1]))
    ps = {n: Sym(fractions_of(v)) for n, v in (params or {}).items()}
    out = flat(graph.run(k, xs, ps))
    assert all(is_num(v) for v in out)
    return [Fraction(v) for v in out]
