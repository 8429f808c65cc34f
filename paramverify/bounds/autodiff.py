"""A small reverse-mode autodiff kernel over the Kernel primitives.

Values are :class:`Var` nodes on a :class:`Tape`; numpy arrays are
constants.  Because every ONNX op is written against the Kernel protocol,
gradients come for free for every op, Conv included.  Used only to *search*
(falsifier, witness refinement); nothing it computes is trusted as a proof.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from scipy import special
from scipy.special import expit

from paramverify.bounds.scatter import scatter_add

Vjp = Callable[[np.ndarray], np.ndarray]


class Var:
    """One tensor on the tape: its float64 value and its parents' vector-Jacobian products."""

    __slots__ = ("grad", "parents", "value")

    def __init__(self, value: np.ndarray, parents: Sequence[tuple[Var, Vjp]] = ()) -> None:
        self.value = np.asarray(value, dtype=np.float64)
        self.parents = tuple(parents)
        self.grad: np.ndarray | None = None


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` down to ``shape`` (undo numpy broadcasting)."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def _val(a: Any) -> np.ndarray:
    return a.value if isinstance(a, Var) else np.asarray(a, dtype=np.float64)


class Tape:
    """Records Vars in creation order (a topological order) and runs the backward pass."""

    def __init__(self) -> None:
        self.nodes: list[Var] = []

    def var(self, value: Any) -> Var:
        v = Var(np.array(value, dtype=np.float64))
        self.nodes.append(v)
        return v

    def node(self, value: np.ndarray, parents: Sequence[tuple[Any, Vjp]]) -> Any:
        live = [(p, f) for p, f in parents if isinstance(p, Var)]
        if not live:
            return value
        v = Var(value, live)
        self.nodes.append(v)
        return v

    def backward(self, out: Var) -> None:
        """Accumulate d out / d node into ``node.grad`` for every node (``out`` scalar)."""
        for n in self.nodes:
            n.grad = None
        out.grad = np.ones_like(out.value)
        for n in reversed(self.nodes):
            if n.grad is None:
                continue
            for parent, vjp in n.parents:
                g = vjp(n.grad)
                parent.grad = g if parent.grad is None else parent.grad + g


class AutodiffKernel:
    """Kernel whose values are :class:`Var` (or numpy constants) recorded on ``tape``."""

    #: primitives this kernel cannot hold -> why (none: every primitive is implemented)
    UNSUPPORTED: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, tape: Tape) -> None:
        self.tape = tape

    def shape(self, a: Any) -> tuple[int, ...]:
        return tuple(np.shape(_val(a)))

    def add(self, a: Any, b: Any) -> Any:
        va, vb = _val(a), _val(b)
        return self.tape.node(va + vb, [(a, lambda g: _unbroadcast(g, va.shape)), (b, lambda g: _unbroadcast(g, vb.shape))])

    def sub(self, a: Any, b: Any) -> Any:
        va, vb = _val(a), _val(b)
        return self.tape.node(va - vb, [(a, lambda g: _unbroadcast(g, va.shape)), (b, lambda g: _unbroadcast(-g, vb.shape))])

    def mul(self, a: Any, b: Any) -> Any:
        va, vb = _val(a), _val(b)
        return self.tape.node(va * vb, [(a, lambda g: _unbroadcast(g * vb, va.shape)), (b, lambda g: _unbroadcast(g * va, vb.shape))])

    def div(self, a: Any, b: np.ndarray) -> Any:
        va, vb = _val(a), np.asarray(b, dtype=np.float64)
        return self.tape.node(va / vb, [(a, lambda g: _unbroadcast(g / vb, va.shape))])

    def neg(self, a: Any) -> Any:
        return self.tape.node(-_val(a), [(a, lambda g: -g)])

    def matmul(self, a: Any, b: Any) -> Any:
        va, vb = _val(a), _val(b)
        a2 = va[None, :] if va.ndim == 1 else va
        b2 = vb[:, None] if vb.ndim == 1 else vb
        out = np.matmul(a2, b2)

        def ga(g: np.ndarray) -> np.ndarray:
            g2 = g.reshape(out.shape)
            r = np.matmul(g2, np.swapaxes(b2, -1, -2))
            return _unbroadcast(r, a2.shape).reshape(va.shape)

        def gb(g: np.ndarray) -> np.ndarray:
            g2 = g.reshape(out.shape)
            r = np.matmul(np.swapaxes(a2, -1, -2), g2)
            return _unbroadcast(r, b2.shape).reshape(vb.shape)

        res = out
        if vb.ndim == 1:
            res = res[..., 0]
        if va.ndim == 1:
            res = res[..., 0, :] if vb.ndim > 1 else res[..., 0]
        return self.tape.node(res, [(a, ga), (b, gb)])

    def fake_quant(self, a: Any, enable: Any, grid: Any) -> Any:
        from paramverify.ops.quant import fake_quant

        return self._rounded(a, enable, lambda v: fake_quant(v, grid))

    def dynamic_fake_quant(self, a: Any, enable: Any, qmin: int, qmax: int) -> Any:
        from paramverify.ops.quant import dynamic_fake_quant

        return self._rounded(a, enable, lambda v: dynamic_fake_quant(v, qmin, qmax))

    def _rounded(self, a: Any, enable: Any, fn: Any) -> Any:
        """``x + e (fq(x) - x)`` with the straight-through gradient in ``x``."""
        va, ve = _val(a), _val(enable)
        step = fn(va) - va
        return self.tape.node(va + ve * step, [(a, lambda g: g), (enable, lambda g: _unbroadcast(g * step, ve.shape))])

    def relu(self, a: Any) -> Any:
        va = _val(a)
        return self.tape.node(np.maximum(va, 0.0), [(a, lambda g: g * (va > 0))])

    def leaky_relu(self, a: Any, alpha: float) -> Any:
        va = _val(a)
        slope = np.where(va >= 0, 1.0, alpha)
        return self.tape.node(va * slope, [(a, lambda g: g * slope)])

    def sigmoid(self, a: Any) -> Any:
        s = expit(_val(a))
        return self.tape.node(s, [(a, lambda g: g * s * (1.0 - s))])

    def tanh(self, a: Any) -> Any:
        t = np.tanh(_val(a))
        return self.tape.node(t, [(a, lambda g: g * (1.0 - t * t))])

    def softmax(self, a: Any, axis: int) -> Any:
        va = _val(a)
        e = np.exp(va - va.max(axis=axis, keepdims=True))
        s = e / e.sum(axis=axis, keepdims=True)
        return self.tape.node(s, [(a, lambda g: s * (g - (g * s).sum(axis=axis, keepdims=True)))])

    def log_softmax(self, a: Any, axis: int) -> Any:
        va = _val(a)
        z = va - va.max(axis=axis, keepdims=True)
        e = np.exp(z)
        tot = e.sum(axis=axis, keepdims=True)
        s = e / tot
        return self.tape.node(z - np.log(tot), [(a, lambda g: g - s * g.sum(axis=axis, keepdims=True))])

    def erf(self, a: Any) -> Any:
        va = _val(a)
        slope = 2.0 / np.sqrt(np.pi) * np.exp(-va * va)
        return self.tape.node(special.erf(va), [(a, lambda g: g * slope)])

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        va = _val(a)
        return self.tape.node(np.reshape(va, shape), [(a, lambda g: np.reshape(g, va.shape))])

    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any:
        inv = tuple(np.argsort(perm))
        return self.tape.node(np.transpose(_val(a), perm), [(a, lambda g: np.transpose(g, inv))])

    def concat(self, values: Sequence[Any], axis: int) -> Any:
        vals = [_val(v) for v in values]
        out = np.concatenate(vals, axis=axis)
        ax = axis % out.ndim
        bounds = np.cumsum([0] + [v.shape[ax] for v in vals])
        parents = []
        for i, v in enumerate(values):
            s, e = int(bounds[i]), int(bounds[i + 1])
            parents.append((v, lambda g, s=s, e=e: np.take(g, np.arange(s, e), axis=ax)))
        return self.tape.node(out, parents)

    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any:
        va = _val(a)
        idx = np.asarray(indices)
        ax = axis % va.ndim
        out = np.take(va, idx, axis=ax)

        def vjp(g: np.ndarray) -> np.ndarray:
            gm = np.reshape(g, va.shape[:ax] + (idx.size,) + va.shape[ax + 1 :])
            return np.moveaxis(scatter_add(np.moveaxis(gm, ax, -1), idx.reshape(-1), va.shape[ax]), -1, ax)

        return self.tape.node(out, [(a, vjp)])

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any:
        va = _val(a)
        sl = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, va.shape))
        return self.tape.node(np.pad(va, pad_width), [(a, lambda g: g[sl])])


def value_of(v: Any) -> np.ndarray:
    """The float64 value of a Var or constant."""
    return _val(v)
