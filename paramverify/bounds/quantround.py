"""Sound enclosures of int8 activation rounding (the ops of :mod:`paramverify.ops.quant`).

For a fixed grid (scale ``s``, zero point ``z``, integer range
``[qmin, qmax]``, real range ``[L, H] = [(qmin - z) s, (qmax - z) s]``) the
deployed value is ``fq(x) = (clip(round(x / s) + z, qmin, qmax) - z) s``.
Write ``c(x) = clip(x, L, H)``; then ``|fq(x) - c(x)| <= s / 2`` and
``c(x) - x`` is non-increasing, so over ``x in [lo, hi]``

    fq(x) - x in [c(hi) - hi - h, c(lo) - lo + h],

with ``h = s/2`` widened by ``ROUND_REL`` (relative to ``s`` and to the
grid's largest magnitude) for the float32 arithmetic onnxruntime uses to
form ``x / s`` and the requantization multiplier.  The value itself is
enclosed by rounding the ends: ``round(t) >= ceil(t - 1/2)`` and
``round(t) <= floor(t + 1/2)`` for ``t = x / s`` widened the same way.

Dynamic quantization (uint8 grid from the tensor's own range, per sample):
``s <= (max(hi, 0) - min(lo, 0)) / 255`` over the enclosure and the grid
covers the range up to ``s / 2``, so ``|fq(x) - x| <= s / 2``.

The enable scalar must be exactly 0 (float model: identity) or 1 (int8
model) in every enclosure; anything else (a scaled box) raises
:class:`CapabilityError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paramverify.bounds.interval import TINY, Interval, as_interval, down, up
from paramverify.errors import CapabilityError
from paramverify.ops.quant import Grid

#: relative allowance for onnxruntime's float32 quantization arithmetic
ROUND_REL = 2.0**-20


def enable_flag(e: Any) -> bool:
    """True for an enable of exactly 1, False for exactly 0; else CapabilityError."""
    iv = as_interval(e)
    if np.all(iv.lo == 0) and np.all(iv.hi == 0):
        return False
    if np.all(iv.lo == 1) and np.all(iv.hi == 1):
        return True
    raise CapabilityError("an int8 model's activation rounding is either on or off; its parameter box cannot be scaled or widened")


def half_step(grid: Grid) -> float:
    """The rounding error bound ``h`` of one grid (see the module docstring)."""
    mag = max(abs(grid.low), abs(grid.high))
    return float(up(0.5 * grid.scale * (1 + ROUND_REL) + ROUND_REL * mag + TINY))


def fq_error(a: Interval, grid: Grid) -> Interval:
    """Encloses ``fq(x) - x`` for ``x`` in ``a``."""
    L, H, h = grid.low, grid.high, half_step(grid)
    lo = np.minimum(0.0, down(H - a.hi)) + np.maximum(0.0, down(L - a.hi))
    hi = np.minimum(0.0, up(H - a.lo)) + np.maximum(0.0, up(L - a.lo))
    return Interval(down(down(lo) - h), up(up(hi) + h))


def fq_value(a: Interval, grid: Grid) -> Interval:
    """Encloses ``fq(x)`` for ``x`` in ``a`` (fq is non-decreasing)."""
    return grid_values(*fq_index_range(a, grid), grid)


def fq_index_range(a: Interval, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Integers ``k_lo <= k_hi`` (float arrays) with ``fq(x) / s`` in ``[k_lo, k_hi]`` for ``x`` in ``a``."""
    s = grid.scale
    t_lo = down(a.lo / s)
    t_hi = up(a.hi / s)
    q_lo = np.ceil(down(t_lo - 0.5 - ROUND_REL * (np.abs(t_lo) + 1)))
    q_hi = np.floor(up(t_hi + 0.5 + ROUND_REL * (np.abs(t_hi) + 1)))
    kmin, kmax = grid.qmin - grid.zero_point, grid.qmax - grid.zero_point
    return np.clip(q_lo, kmin, kmax), np.clip(q_hi, kmin, kmax)


def grid_values(k_lo: np.ndarray, k_hi: np.ndarray, grid: Grid) -> Interval:
    """Encloses the grid values ``k s`` for integers ``k`` in ``[k_lo, k_hi]`` as onnxruntime forms them."""
    s = grid.scale
    # (integer of at most 17 bits) * (a float32 scale) is exact in float64: a range inside one
    # rounding cell is that grid value exactly; otherwise widen for onnxruntime's float32 product
    slack = np.where(k_lo == k_hi, 0.0, ROUND_REL * max(abs(grid.low), abs(grid.high)) + TINY)
    exact = slack == 0
    return Interval(np.where(exact, k_lo * s, down(k_lo * s - slack)), np.where(exact, k_hi * s, up(k_hi * s + slack)))


def dynamic_half_step(a: Interval, qmin: int, qmax: int) -> np.ndarray:
    """Per sample (axis 0): an upper bound of half the dynamic grid's step, shaped to broadcast."""
    n = a.lo.shape[0] if a.lo.ndim else 1
    lo = np.minimum(a.lo.reshape(n, -1).min(axis=1), 0.0)
    hi = np.maximum(a.hi.reshape(n, -1).max(axis=1), 0.0)
    s = up(up(hi - lo) / (qmax - qmin)) * (1 + ROUND_REL)
    h = up(0.5 * s * (1 + ROUND_REL) + TINY)
    return h.reshape((n,) + (1,) * (a.lo.ndim - 1)) if a.lo.ndim else h.reshape(())


def dyn_error(a: Interval, qmin: int, qmax: int) -> Interval:
    h = np.broadcast_to(dynamic_half_step(a, qmin, qmax), a.shape)
    return Interval(-h, h.copy())


def dyn_value(a: Interval, qmin: int, qmax: int) -> Interval:
    e = dyn_error(a, qmin, qmax)
    return Interval(down(a.lo + e.lo), up(a.hi + e.hi))
