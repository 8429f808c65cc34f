"""Sound interval arithmetic in float64 and the :class:`IntervalKernel`.

Guarantee: for every op, if the real operands lie in the operand intervals,
the real-arithmetic result lies in the returned interval.  Float rounding is
covered by rounding every elementwise result one ulp outward
(``np.nextafter``) and, for sums and dot products of ``n`` terms, by the
a-priori error bound ``gamma(n) * (|A| @ |B|)`` (Higham, Thm. 3.5) plus an
absolute term for underflow.  Transcendental functions (``exp``, ``expit``,
``tanh``) are not correctly rounded by numpy; their results are widened by a
relative margin of ``TRANSCENDENTAL_REL`` (many times numpy's documented few
ulps) and an absolute ``TINY``.  Sigmoid is evaluated by :func:`sigmoid_value`
(scipy's ``expit`` flushes to 0 below -709.8, where the value is still a
subnormal).  Nothing is clipped to a "reasonable" range: every rule holds at
every float magnitude, with infinite ends where float64 overflows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from scipy import special
from scipy.special import expit

from paramverify.errors import check

#: unit roundoff of float64 (round to nearest)
U = 2.0**-53
#: absolute slack for underflow (a few subnormal spacings)
TINY = 8 * float(np.finfo(np.float64).smallest_subnormal)
#: relative error allowance of numpy/scipy exp, expit and tanh
TRANSCENDENTAL_REL = 64 * U
#: interval x interval matmuls up to this many scalar terms use exact per-term products (when neither
#: operand keeps one sign in every entry: else :func:`_interval_interval_signed` is exact at any size)
EXACT_MATMUL_TERMS = 1 << 22


def gamma(n: int) -> float:
    """Higham's gamma_n = n u / (1 - n u), rounded up generously."""
    nu = n * U
    if nu >= 0.5:
        raise ValueError(f"dot product of {n} terms is too long for the a-priori error bound")
    return float(np.nextafter(nu / (1.0 - nu), np.inf)) * (1.0 + 4 * U)


def down(x: Any) -> np.ndarray:
    """One ulp towards -inf (NaN becomes -inf so a bound never disappears)."""
    return _nan_to(np.nextafter(np.asarray(x, dtype=np.float64), -np.inf), -np.inf)


def up(x: Any) -> np.ndarray:
    """One ulp towards +inf (NaN becomes +inf)."""
    return _nan_to(np.nextafter(np.asarray(x, dtype=np.float64), np.inf), np.inf)


def _nan_to(r: Any, value: float) -> np.ndarray:
    """``r`` with NaN replaced by ``value``: in place for arrays (no second full-size copy:
    on a large model these temporaries set the memory peak)."""
    if isinstance(r, np.ndarray) and r.ndim > 0:
        np.copyto(r, value, where=np.isnan(r))
        return r
    return np.where(np.isnan(r), value, r)


@dataclass(frozen=True, eq=False)
class Interval:
    """Elementwise bounds ``lo <= v <= hi`` (float64 arrays of one shape).

    ``point`` is True when the interval is known to be degenerate
    (``lo is hi`` for a constant), which lets matmul use the exact
    point-by-interval rule.
    """

    lo: np.ndarray
    hi: np.ndarray
    point: bool = False

    def __post_init__(self) -> None:
        check(np.shape(self.lo) == np.shape(self.hi), f"interval shapes differ: {np.shape(self.lo)} {np.shape(self.hi)}")

    @staticmethod
    def const(a: Any) -> Interval:
        arr = np.asarray(a, dtype=np.float64)
        return Interval(arr, arr, True)

    @staticmethod
    def zeros(shape: tuple[int, ...]) -> Interval:
        z = np.zeros(shape)
        return Interval(z, z, True)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.lo))

    @property
    def mag(self) -> np.ndarray:
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def contains(self, v: Any, slack: float = 0.0) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return (self.lo - slack <= v) & (v <= self.hi + slack)

    def map(self, fn: Any) -> Interval:
        """Apply an exact linear rearrangement (reshape, take, ...) to both ends."""
        lo = fn(self.lo)
        return Interval(lo, lo if self.point else fn(self.hi), self.point)


def as_interval(a: Any) -> Interval:
    return a if isinstance(a, Interval) else Interval.const(a)


# ---------------------------------------------------------------------------
# elementwise arithmetic


def iadd(a: Any, b: Any) -> Interval:
    a, b = as_interval(a), as_interval(b)
    return Interval(down(a.lo + b.lo), up(a.hi + b.hi))


def isub(a: Any, b: Any) -> Interval:
    a, b = as_interval(a), as_interval(b)
    return Interval(down(a.lo - b.hi), up(a.hi - b.lo))


def ineg(a: Any) -> Interval:
    a = as_interval(a)
    return Interval(-a.hi, -a.lo, a.point)


def imul(a: Any, b: Any) -> Interval:
    a, b = as_interval(a), as_interval(b)
    if a.point or b.point:
        c, v = (a, b) if a.point else (b, a)
        p1, p2 = c.lo * v.lo, c.lo * v.hi
        return Interval(down(np.minimum(p1, p2)), up(np.maximum(p1, p2)))
    p = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
    lo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3]))
    hi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
    return Interval(down(lo), up(hi))


def idiv_const(a: Any, c: np.ndarray) -> Interval:
    a = as_interval(a)
    c = np.asarray(c, dtype=np.float64)
    if np.any(c == 0):
        raise ZeroDivisionError("division by a constant that contains 0")
    q1, q2 = a.lo / c, a.hi / c
    return Interval(down(np.minimum(q1, q2)), up(np.maximum(q1, q2)))


def iscale(a: Interval, c: Any) -> Interval:
    return imul(a, np.asarray(c, dtype=np.float64))


def intersect(a: Interval, b: Interval) -> Interval:
    """Both are sound enclosures of the same value, so their intersection is too."""
    lo, hi = np.maximum(a.lo, b.lo), np.minimum(a.hi, b.hi)
    check(bool(np.all(lo <= hi)), "empty intersection of two sound enclosures (rounding bug)")
    return Interval(lo, hi)


def hull(a: Interval, b: Interval) -> Interval:
    return Interval(np.minimum(a.lo, b.lo), np.maximum(a.hi, b.hi))


def widen(lo: np.ndarray, hi: np.ndarray, rel: float, absolute: float = TINY) -> Interval:
    """Widen by ``rel * |v| + absolute`` on each side (for inexact library functions)."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    return Interval(down(lo - (np.abs(lo) * rel + absolute)), up(hi + (np.abs(hi) * rel + absolute)))


# ---------------------------------------------------------------------------
# matmul


def _promote(a: Interval, b: Interval) -> tuple[Interval, Interval, bool, bool]:
    sa = sb = False
    if a.lo.ndim == 1:
        a, sa = a.map(lambda v: v[None, :]), True
    if b.lo.ndim == 1:
        b, sb = b.map(lambda v: v[:, None]), True
    return a, b, sa, sb


def _margin(mag_a: np.ndarray, mag_b: np.ndarray, k: int) -> np.ndarray:
    """Upper bound of the rounding error of a length-k dot product (products and sums)."""
    return np.matmul(mag_a, mag_b) * gamma(2 * k + 8) + (k + 4) * TINY


def _point_interval(a: np.ndarray, b: Interval) -> Interval:
    """Point matrix ``a`` times interval matrix ``b`` (midpoint-radius, exact in reals)."""
    mid = (b.lo + b.hi) * 0.5
    rad = up(np.maximum(up(b.hi - mid), up(mid - b.lo)))
    k = a.shape[-1]
    c = np.matmul(a, mid)
    abs_a = np.abs(a)
    r = np.matmul(abs_a, rad)
    m = _margin(abs_a, np.abs(mid) + rad, k)
    return Interval(down(down(c - r) - m), up(up(c + r) + m))


def _interval_point(a: Interval, b: np.ndarray) -> Interval:
    mid = (a.lo + a.hi) * 0.5
    rad = up(np.maximum(up(a.hi - mid), up(mid - a.lo)))
    k = b.shape[-2]
    c = np.matmul(mid, b)
    abs_b = np.abs(b)
    r = np.matmul(rad, abs_b)
    m = _margin(np.abs(mid) + rad, abs_b, k)
    return Interval(down(down(c - r) - m), up(up(c + r) + m))


def _interval_interval_exact(a: Interval, b: Interval) -> Interval:
    """Exact per-term products (min/max of the four corners), summed; chunked over rows."""
    k = a.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m_rows, n_cols = a.shape[-2], b.shape[-1]
    per_row = max(1, int(np.prod(batch, dtype=np.int64)) * k * n_cols)
    chunk = max(1, (1 << 20) // per_row)
    blo, bhi = b.lo[..., None, :, :], b.hi[..., None, :, :]
    los, his = [], []
    for s in range(0, m_rows, chunk):
        alo = a.lo[..., s : s + chunk, :, None]
        ahi = a.hi[..., s : s + chunk, :, None]
        p1, p2, p3, p4 = alo * blo, alo * bhi, ahi * blo, ahi * bhi
        los.append(np.minimum(np.minimum(p1, p2), np.minimum(p3, p4)).sum(axis=-2))
        his.append(np.maximum(np.maximum(p1, p2), np.maximum(p3, p4)).sum(axis=-2))
    lo = np.concatenate(los, axis=-2) if len(los) > 1 else los[0]
    hi = np.concatenate(his, axis=-2) if len(his) > 1 else his[0]
    m = _margin(a.mag, b.mag, k)
    return Interval(down(lo - m), up(hi + m))


def _signed_rows(a: Interval, b: Interval) -> Interval:
    """Exact ``a @ b`` where every entry of ``a`` keeps one sign (``lo >= 0`` or ``hi <= 0``).

    Per term, with ``a`` in ``[al, ah]``, ``al >= 0``: the smallest product is
    ``al * max(bl, 0) + ah * min(bl, 0)`` and the largest ``ah * max(bh, 0) + al * min(bh, 0)``
    (one of each pair is zero); with ``ah <= 0``: ``al * max(bh, 0) + ah * min(bh, 0)`` and
    ``al * min(bl, 0) + ah * max(bl, 0)``.  So the exact sums are matrix products of the
    sign-split ends: the same enclosure as the per-term rule at the cost of a few BLAS
    products, for any number of rows.  Rounding: every term of the (at most) four products
    summed for one end is bounded by ``|a| |b|`` in magnitude and only one pair is nonzero
    per term, so ``gamma(2k + 8) |a| @ |b|`` (with the underflow term) covers the products,
    the sums and the three additions, as for the per-term rule.
    """
    pos = a.lo >= 0.0
    alp, ahp = np.where(pos, a.lo, 0.0), np.where(pos, a.hi, 0.0)
    blp, bln = np.maximum(b.lo, 0.0), np.minimum(b.lo, 0.0)
    bhp, bhn = np.maximum(b.hi, 0.0), np.minimum(b.hi, 0.0)
    lo = np.matmul(alp, blp) + np.matmul(ahp, bln)
    hi = np.matmul(ahp, bhp) + np.matmul(alp, bhn)
    if not np.all(pos):
        aln, ahn = np.where(pos, 0.0, a.lo), np.where(pos, 0.0, a.hi)
        lo = lo + np.matmul(aln, bhp) + np.matmul(ahn, bhn)
        hi = hi + np.matmul(aln, bln) + np.matmul(ahn, blp)
    m = _margin(a.mag, b.mag, a.shape[-1])
    return Interval(down(lo - m), up(hi + m))


def _one_sign(v: Interval) -> bool:
    return bool(np.all(np.isfinite(v.lo)) and np.all(np.isfinite(v.hi)) and np.all((v.lo >= 0.0) | (v.hi <= 0.0)))


def _interval_interval_signed(a: Interval, b: Interval) -> Interval | None:
    """The exact product by :func:`_signed_rows` when ``a`` (or else ``b``, by transposing)
    keeps one sign in every entry and both are finite; None otherwise.

    The common case (inputs in [0, 1], relu outputs): exact whatever the number of rows,
    so a box's enclosure does not depend on the batch it is evaluated in.
    """
    if _one_sign(a) and np.all(np.isfinite(b.lo)) and np.all(np.isfinite(b.hi)):
        return _signed_rows(a, b)
    if _one_sign(b) and np.all(np.isfinite(a.lo)) and np.all(np.isfinite(a.hi)):
        t = _signed_rows(b.map(_swap), a.map(_swap))
        return t.map(_swap)
    return None


def _swap(v: np.ndarray) -> np.ndarray:
    return np.swapaxes(v, -1, -2)


def _interval_interval_midrad(a: Interval, b: Interval) -> Interval:
    """Rump's midpoint-radius product (at most 1.5x wider than exact); for big operands."""
    ma = (a.lo + a.hi) * 0.5
    ra = up(np.maximum(up(a.hi - ma), up(ma - a.lo)))
    mb = (b.lo + b.hi) * 0.5
    rb = up(np.maximum(up(b.hi - mb), up(mb - b.lo)))
    k = a.shape[-1]
    c = np.matmul(ma, mb)
    abs_ma, abs_mb = np.abs(ma), np.abs(mb)
    r = np.matmul(abs_ma, rb) + np.matmul(ra, abs_mb) + np.matmul(ra, rb)
    m = _margin(abs_ma + ra, abs_mb + rb, k) * 2.0
    return Interval(down(down(c - r) - m), up(up(c + r) + m))


def imatmul(a: Any, b: Any) -> Interval:
    """Sound enclosure of ``a @ b`` (numpy matmul semantics, 1-D operands promoted)."""
    a, b = as_interval(a), as_interval(b)
    a, b, sa, sb = _promote(a, b)
    if a.point and b.point:
        c = np.matmul(a.lo, b.lo)
        m = _margin(np.abs(a.lo), np.abs(b.lo), a.shape[-1])
        out = Interval(down(c - m), up(c + m))
    elif a.point:
        out = _point_interval(a.lo, b)
    elif b.point:
        out = _interval_point(a, b.lo)
    else:
        signed = _interval_interval_signed(a, b)
        if signed is not None:
            out = signed
        else:
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            terms = int(np.prod(batch, dtype=np.int64)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
            out = _interval_interval_exact(a, b) if terms <= EXACT_MATMUL_TERMS else _interval_interval_midrad(a, b)
    if sb:
        out = out.map(lambda v: v[..., 0])
    if sa:
        out = out.map(lambda v: v[..., 0, :])
    return Interval(out.lo, out.hi)


# ---------------------------------------------------------------------------
# activations


def irelu(a: Any) -> Interval:
    a = as_interval(a)
    return Interval(np.maximum(a.lo, 0.0), np.maximum(a.hi, 0.0), a.point)


def ileaky_relu(a: Any, alpha: float) -> Interval:
    a = as_interval(a)
    if alpha >= 0:
        lo = np.where(a.lo >= 0, a.lo, alpha * a.lo)
        hi = np.where(a.hi >= 0, a.hi, alpha * a.hi)
        return Interval(down(lo), up(hi))
    # non-monotone: hull of the endpoint images and 0 when 0 is inside
    f_lo = np.where(a.lo >= 0, a.lo, alpha * a.lo)
    f_hi = np.where(a.hi >= 0, a.hi, alpha * a.hi)
    lo = np.minimum(f_lo, f_hi)
    hi = np.maximum(f_lo, f_hi)
    inside = (a.lo < 0) & (a.hi > 0)
    lo = np.where(inside, np.minimum(lo, 0.0), lo)
    return Interval(down(lo), up(hi))


def sigmoid_value(v: Any) -> np.ndarray:
    """sigmoid(v) in float64 with a small relative error at every magnitude.

    ``scipy.special.expit`` flushes to 0 below about -709.8 (it divides by
    ``1 + exp(-v)``, which overflows), where the true value is still a
    subnormal up to 4.5e-309.  Below -40, ``exp(v)`` is the value within a
    relative 4.3e-18 (``sigmoid(v) = exp(v) / (1 + exp(v))``), far inside
    ``TRANSCENDENTAL_REL``.
    """
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(under="ignore"):
        return np.where(v < -40.0, np.exp(np.minimum(v, 0.0)), expit(v))


def sigmoid_enclosure(v: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sound (lower, upper) bounds of sigmoid at the float64 points ``v``."""
    s = sigmoid_value(v)
    w = widen(s, s, TRANSCENDENTAL_REL)
    return np.clip(w.lo, 0.0, 1.0), np.clip(w.hi, 0.0, 1.0)


def tanh_enclosure(v: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sound (lower, upper) bounds of tanh at the float64 points ``v``."""
    t = np.tanh(np.asarray(v, dtype=np.float64))
    w = widen(t, t, TRANSCENDENTAL_REL)
    return np.clip(w.lo, -1.0, 1.0), np.clip(w.hi, -1.0, 1.0)


def isigmoid(a: Any) -> Interval:
    a = as_interval(a)
    return Interval(sigmoid_enclosure(a.lo)[0], sigmoid_enclosure(a.hi)[1])


def itanh(a: Any) -> Interval:
    a = as_interval(a)
    return Interval(tanh_enclosure(a.lo)[0], tanh_enclosure(a.hi)[1])


def erf_enclosure(v: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sound (lower, upper) bounds of erf at the float64 points ``v``."""
    e = special.erf(np.asarray(v, dtype=np.float64))
    w = widen(e, e, TRANSCENDENTAL_REL)
    return np.clip(w.lo, -1.0, 1.0), np.clip(w.hi, -1.0, 1.0)


def ierf(a: Any) -> Interval:
    """erf is increasing: its ends' images, widened for the library's error."""
    a = as_interval(a)
    return Interval(erf_enclosure(a.lo)[0], erf_enclosure(a.hi)[1])


def _softmax_sums(a: Interval, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of ``s_i = sum_{j != i} exp(x_j - x_i)`` with the axis moved last.

    Upper: x_j at its upper end, x_i at its lower end; lower: the reverse.
    O(k^2) along ``axis``; exp and the sums are widened outward.
    """
    lo_m = np.moveaxis(a.lo, axis, -1)
    hi_m = np.moveaxis(a.hi, axis, -1)
    k = lo_m.shape[-1]
    off = ~np.eye(k, dtype=bool)
    with np.errstate(over="ignore"):
        # e_up[..., i, j] >= exp(hi_j - lo_i), e_dn[..., i, j] <= exp(lo_j - hi_i)
        e_up = np.exp(up(hi_m[..., None, :] - lo_m[..., :, None])) * (1 + TRANSCENDENTAL_REL) + TINY
        e_dn = np.maximum(np.exp(down(lo_m[..., None, :] - hi_m[..., :, None])) * (1 - TRANSCENDENTAL_REL) - TINY, 0.0)
    s_up = up(np.where(off, e_up, 0.0).sum(axis=-1) * (1 + gamma(k + 2)))
    s_dn = down(np.where(off, e_dn, 0.0).sum(axis=-1) * (1 - gamma(k + 2)))
    return np.maximum(s_dn, 0.0), s_up


def isoftmax(a: Any, axis: int) -> Interval:
    """softmax_i = 1 / (1 + s_i), s_i = sum_{j != i} exp(x_j - x_i) (see :func:`_softmax_sums`)."""
    a = as_interval(a)
    s_dn, s_up = _softmax_sums(a, axis)
    lo = down(down(1.0 / up(1.0 + s_up)) * (1 - 4 * U))
    hi = up(up(1.0 / down(1.0 + s_dn)) * (1 + 4 * U))
    lo = np.clip(np.where(np.isnan(lo), 0.0, lo), 0.0, 1.0)
    hi = np.clip(np.where(np.isnan(hi), 1.0, hi), 0.0, 1.0)
    return Interval(np.moveaxis(lo, -1, axis), np.moveaxis(hi, -1, axis))


def ilog_softmax(a: Any, axis: int) -> Interval:
    """log_softmax_i = -log1p(s_i), decreasing in s_i; log1p is widened like exp."""
    a = as_interval(a)
    s_dn, s_up = _softmax_sums(a, axis)
    with np.errstate(over="ignore", invalid="ignore"):
        l_up, l_dn = np.log1p(s_up), np.log1p(s_dn)
    lo = down(-(l_up * (1 + TRANSCENDENTAL_REL) + TINY))
    hi = np.minimum(up(-(l_dn * (1 - TRANSCENDENTAL_REL) - TINY)), 0.0)
    lo = np.where(np.isnan(lo), -np.inf, lo)
    hi = np.where(np.isnan(hi), 0.0, hi)
    return Interval(np.moveaxis(lo, -1, axis), np.moveaxis(hi, -1, axis))


# ---------------------------------------------------------------------------
# the kernel


class IntervalKernel:
    """Runs a graph on :class:`Interval` values (numpy arrays are exact constants).

    Every result encloses the real-arithmetic result for all operand values
    in the operand intervals.  Arithmetic on two constants is rounded
    outward too (it returns an :class:`Interval`), so nothing computed in
    float is ever treated as exact.
    """

    #: primitives this kernel cannot hold -> why (none: every primitive is implemented)
    UNSUPPORTED: ClassVar[Mapping[str, str]] = MappingProxyType({})


    def shape(self, a: Any) -> tuple[int, ...]:
        return a.shape if isinstance(a, Interval) else tuple(np.shape(a))

    def add(self, a: Any, b: Any) -> Interval:
        return iadd(a, b)

    def sub(self, a: Any, b: Any) -> Interval:
        return isub(a, b)

    def mul(self, a: Any, b: Any) -> Interval:
        return imul(a, b)

    def div(self, a: Any, b: np.ndarray) -> Interval:
        return idiv_const(a, b)

    def neg(self, a: Any) -> Any:
        return ineg(a) if isinstance(a, Interval) else np.negative(a)

    def matmul(self, a: Any, b: Any) -> Interval:
        return imatmul(a, b)

    def relu(self, a: Any) -> Interval:
        return irelu(a)

    def leaky_relu(self, a: Any, alpha: float) -> Interval:
        return ileaky_relu(a, alpha)

    def sigmoid(self, a: Any) -> Interval:
        return isigmoid(a)

    def tanh(self, a: Any) -> Interval:
        return itanh(a)

    def softmax(self, a: Any, axis: int) -> Interval:
        return isoftmax(a, axis)

    def log_softmax(self, a: Any, axis: int) -> Interval:
        return ilog_softmax(a, axis)

    def erf(self, a: Any) -> Interval:
        return ierf(a)

    def fake_quant(self, a: Any, enable: Any, grid: Any) -> Any:
        from paramverify.bounds.quantround import enable_flag, fq_value

        return fq_value(as_interval(a), grid) if enable_flag(enable) else a

    def dynamic_fake_quant(self, a: Any, enable: Any, qmin: int, qmax: int) -> Any:
        from paramverify.bounds.quantround import dyn_value, enable_flag

        return dyn_value(as_interval(a), qmin, qmax) if enable_flag(enable) else a

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        return a.map(lambda v: np.reshape(v, shape)) if isinstance(a, Interval) else np.reshape(a, shape)

    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any:
        return a.map(lambda v: np.transpose(v, perm)) if isinstance(a, Interval) else np.transpose(a, perm)

    def concat(self, values: Sequence[Any], axis: int) -> Any:
        if not any(isinstance(v, Interval) for v in values):
            return np.concatenate(values, axis=axis)
        ivs = [as_interval(v) for v in values]
        return Interval(np.concatenate([v.lo for v in ivs], axis=axis), np.concatenate([v.hi for v in ivs], axis=axis))

    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any:
        return a.map(lambda v: np.take(v, indices, axis=axis)) if isinstance(a, Interval) else np.take(a, indices, axis=axis)

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any:
        return a.map(lambda v: np.pad(v, pad_width)) if isinstance(a, Interval) else np.pad(a, pad_width)
