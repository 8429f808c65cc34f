"""Pooling, reductions and padding: MaxPool, AveragePool, GlobalAveragePool,
GlobalMaxPool, ReduceMean, ReduceSum, Pad.

Everything is written with the linear primitives and ReLU, so it is sound in
every kernel with no new relaxation:

* sums over windows are one matmul with a constant 0/1 matrix, then a
  division by the (constant) element count: exact in real arithmetic;
* ``max(a, b) = a + relu(b - a)``, reduced as a balanced tree over the
  window's taps: piecewise linear, exact in z3 (``relu`` is ``max(., 0)``).
  A tap that falls into the padding is replaced by another tap of the same
  window (max is idempotent), so MaxPool's ``-inf`` padding never appears;
* Pad's reflect/edge/wrap modes are a ``take`` with the padded index list.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from paramverify.errors import ModelError
from paramverify.ops.base import Kernel, Op, const_value
from paramverify.ops.tensor import _axes


@dataclasses.dataclass(frozen=True)
class _Windows:
    """Flat tap indices ``[T, P]`` and masks for T taps at P output positions."""

    index: np.ndarray  # flat input index of every tap (clamped where invalid)
    valid: np.ndarray  # inside the input
    in_pad: np.ndarray  # inside the input or its explicit padding
    out_shape: tuple[int, ...]


def _pads(auto_pad: str, pads: tuple[int, ...], size: Sequence[int], kernel: Sequence[int],
          strides: Sequence[int], dil: Sequence[int], op: str) -> list[tuple[int, int]]:
    n = len(size)
    if auto_pad in ("NOTSET", ""):
        p = pads or (0,) * (2 * n)
        return [(p[i], p[i + n]) for i in range(n)]
    if auto_pad == "VALID":
        return [(0, 0)] * n
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for s, kk, st, d in zip(size, kernel, strides, dil):
            total = max(0, (-(-s // st) - 1) * st + d * (kk - 1) + 1 - s)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        return out
    raise ModelError(f"{op}: auto_pad '{auto_pad}' is not supported")


def windows(size: Sequence[int], kernel: Sequence[int], strides: Sequence[int], dil: Sequence[int],
            pads: Sequence[tuple[int, int]], ceil_mode: bool, op: str) -> _Windows:
    out_shape = []
    for s, kk, st, d, (pb, pe) in zip(size, kernel, strides, dil, pads):
        span = s + pb + pe - d * (kk - 1) - 1
        o = (-(-span // st) if ceil_mode else span // st) + 1
        if ceil_mode and (o - 1) * st >= s + pb:
            o -= 1
        if o <= 0:
            raise ModelError(f"{op}: the window {tuple(kernel)} does not fit the input {tuple(size)}")
        out_shape.append(o)
    grids = np.meshgrid(*[np.arange(o) for o in out_shape], indexing="ij")
    idx, valid, in_pad = [], [], []
    for tap in itertools.product(*[range(kk) for kk in kernel]):
        ok = np.ones(out_shape, dtype=bool)
        inp = np.ones(out_shape, dtype=bool)
        coords = []
        for g, t, s, st, d, (pb, pe) in zip(grids, tap, size, strides, dil, pads):
            c = g * st - pb + t * d
            ok &= (c >= 0) & (c < s)
            inp &= (c >= -pb) & (c < s + pe)
            coords.append(np.clip(c, 0, s - 1))
        idx.append(np.ravel_multi_index(coords, tuple(size)).reshape(-1))
        valid.append(ok.reshape(-1))
        in_pad.append(inp.reshape(-1))
    return _Windows(np.stack(idx), np.stack(valid), np.stack(in_pad), tuple(out_shape))


def _spatial(k: Kernel, x: Any, op: str) -> tuple[int, int, tuple[int, ...]]:
    shape = k.shape(x)
    if len(shape) < 3:
        raise ModelError(f"{op}: input must be (N, C, spatial...), got shape {shape}")
    return shape[0], shape[1], tuple(shape[2:])


def max_reduce(k: Kernel, taps: list[Any]) -> Any:
    """max over a list of same-shaped values as a balanced tree of ``a + relu(b - a)``."""
    while len(taps) > 1:
        nxt = [k.add(a, k.relu(k.sub(b, a))) for a, b in zip(taps[0::2], taps[1::2])]
        if len(taps) % 2:
            nxt.append(taps[-1])
        taps = nxt
    return taps[0]


@dataclasses.dataclass(frozen=True)
class _Pool(Op):
    auto_pad: str = "NOTSET"
    ceil_mode: int = 0
    dilations: tuple[int, ...] = ()
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def _windows(self, size: tuple[int, ...]) -> _Windows:
        n = len(size)
        if len(self.kernel_shape) != n:
            raise ModelError(f"{self.op_type}: kernel_shape {self.kernel_shape} does not fit {n} spatial dimensions")
        strides = self.strides or (1,) * n
        dil = self.dilations or (1,) * n
        pads = _pads(self.auto_pad, self.pads, size, self.kernel_shape, strides, dil, self.op_type)
        return windows(size, self.kernel_shape, strides, dil, pads, bool(self.ceil_mode), self.op_type)


@dataclasses.dataclass(frozen=True)
class MaxPool(_Pool):
    storage_order: int = 0
    op_type: ClassVar[str] = "MaxPool"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        n, c, size = _spatial(k, inputs[0], "MaxPool")
        w = self._windows(size)
        if not w.valid.any(axis=0).all():
            raise ModelError("MaxPool: a window lies entirely in the padding")
        # a padded tap repeats the window's first valid tap (max is idempotent)
        first = w.index[np.argmax(w.valid, axis=0), np.arange(w.index.shape[1])]
        index = np.where(w.valid, w.index, first[None, :])
        flat = k.reshape(inputs[0], (n, c, math.prod(size)))
        seen: set[bytes] = set()
        taps = []
        for row in index:
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                taps.append(k.take(flat, row, 2))
        return k.reshape(max_reduce(k, taps), (n, c) + w.out_shape)


@dataclasses.dataclass(frozen=True)
class AveragePool(_Pool):
    count_include_pad: int = 0
    op_type: ClassVar[str] = "AveragePool"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        n, c, size = _spatial(k, inputs[0], "AveragePool")
        w = self._windows(size)
        p = w.index.shape[1]
        ones = np.zeros((math.prod(size), p))
        cols = np.broadcast_to(np.arange(p), w.index.shape)
        np.add.at(ones, (w.index[w.valid], cols[w.valid]), 1.0)
        count = (w.in_pad if self.count_include_pad else w.valid).sum(axis=0).astype(np.float64)
        flat = k.reshape(inputs[0], (n, c, math.prod(size)))
        y = k.div(k.matmul(flat, ones), count)
        return k.reshape(y, (n, c) + w.out_shape)


def _mean_last(k: Kernel, x: Any, keep: tuple[int, ...], red: tuple[int, ...], mean: bool) -> Any:
    """Sum (or mean) of ``x`` over axes ``red``; the result has the kept axes' shape."""
    shape = k.shape(x)
    perm = keep + red
    if perm != tuple(range(len(shape))):
        x = k.transpose(x, perm)
    kept = tuple(shape[a] for a in keep)
    r = math.prod(shape[a] for a in red)
    y = k.matmul(k.reshape(x, (kept or (1,)) + (r,)), np.ones((r, 1)))
    if mean:
        y = k.div(y, np.asarray(float(r)))
    return k.reshape(y, kept)


@dataclasses.dataclass(frozen=True)
class GlobalAveragePool(Op):
    op_type: ClassVar[str] = "GlobalAveragePool"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        n, c, size = _spatial(k, inputs[0], "GlobalAveragePool")
        y = _mean_last(k, inputs[0], (0, 1), tuple(range(2, 2 + len(size))), True)
        return k.reshape(y, (n, c) + (1,) * len(size))


@dataclasses.dataclass(frozen=True)
class GlobalMaxPool(Op):
    op_type: ClassVar[str] = "GlobalMaxPool"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        n, c, size = _spatial(k, inputs[0], "GlobalMaxPool")
        flat = k.reshape(inputs[0], (n, c, math.prod(size)))
        taps = [k.take(flat, np.array([i]), 2) for i in range(math.prod(size))]
        return k.reshape(max_reduce(k, taps), (n, c) + (1,) * len(size))


@dataclasses.dataclass(frozen=True)
class _Reduce(Op):
    axes: tuple[int, ...] = ()
    keepdims: int = 1
    noop_with_empty_axes: int = 0
    arity: ClassVar[tuple[int, int]] = (1, 2)
    mean: ClassVar[bool] = True

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        shape = k.shape(inputs[0])
        axes = _axes(self.axes, inputs, 1, self.op_type)
        if not axes:
            if self.noop_with_empty_axes:
                return inputs[0]
            axes = tuple(range(len(shape)))
        red = tuple(sorted({a % len(shape) for a in axes}))
        keep = tuple(a for a in range(len(shape)) if a not in red)
        y = _mean_last(k, inputs[0], keep, red, self.mean)
        if self.keepdims:
            y = k.reshape(y, tuple(1 if a in red else d for a, d in enumerate(shape)))
        return y


@dataclasses.dataclass(frozen=True)
class ReduceMean(_Reduce):
    op_type: ClassVar[str] = "ReduceMean"


@dataclasses.dataclass(frozen=True)
class ReduceSum(_Reduce):
    op_type: ClassVar[str] = "ReduceSum"
    mean: ClassVar[bool] = False


@dataclasses.dataclass(frozen=True)
class Pad(Op):
    """constant (any constant value), reflect, edge and wrap modes; negative pads crop."""

    mode: str = "constant"
    pads: tuple[int, ...] = ()
    value: float = 0.0
    op_type: ClassVar[str] = "Pad"
    arity: ClassVar[tuple[int, int]] = (1, 4)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x = inputs[0]
        shape = k.shape(x)
        nd = len(shape)
        raw = [int(v) for v in np.asarray(const_value(inputs[1], "the pads of Pad")).reshape(-1)] if len(inputs) > 1 and inputs[1] is not None else list(self.pads)
        value = self.value
        if len(inputs) > 2 and inputs[2] is not None:
            value = float(np.asarray(const_value(inputs[2], "the constant_value of Pad")).reshape(-1)[0])
        axes = _axes((), inputs, 3, "Pad") or tuple(range(nd))
        axes = tuple(a % nd for a in axes)
        if len(raw) != 2 * len(axes):
            raise ModelError(f"Pad: {len(raw)} pads for {len(axes)} axes")
        width = [(0, 0)] * nd
        for i, a in enumerate(axes):
            width[a] = (raw[i], raw[i + len(axes)])
        if self.mode not in ("constant", "reflect", "edge", "wrap"):
            raise ModelError(f"Pad: mode '{self.mode}' is not supported")
        for a, (b, e) in enumerate(width):  # negative pads crop first
            if b < 0 or e < 0:
                cur = k.shape(x)[a]
                x = k.take(x, np.arange(max(-b, 0), cur - max(-e, 0)), a)
        width = [(max(b, 0), max(e, 0)) for b, e in width]
        if self.mode == "constant":
            y = k.pad(x, tuple(width))
            if value != 0.0 and any(b or e for b, e in width):
                mask = np.pad(np.zeros(k.shape(x)), width, constant_values=1.0) * value
                y = k.add(y, mask)
            return y
        np_mode = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[self.mode]
        for a, (b, e) in enumerate(width):
            if b or e:
                x = k.take(x, np.pad(np.arange(k.shape(x)[a]), (b, e), mode=np_mode), a)
        return x


OPS: tuple[type[Op], ...] = (MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean, ReduceSum, Pad)
