"""Differential interval bounds: nominal, perturbed and their difference, together.

A :class:`DiffValue` carries three sound enclosures of one tensor over the
input region ``X`` and the parameter box ``P``:

* ``n`` -- the nominal value ``v_{p0}(x)``,
* ``p`` -- the perturbed value ``v_p(x)`` (same ``x``),
* ``d`` -- the difference ``v_p(x) - v_{p0}(x)``, bounded *directly*.

Guarantee: for every ``x`` in the input intervals and every ``p`` in the
parameter box, ``v_{p0}(x) in n``, ``v_p(x) in p`` and ``v_p(x) - v_{p0}(x)
in d`` (real arithmetic; float rounding is covered by the interval layer).

Rules: sums are linear; products use the exact identity
``a'b' - ab = a'(b' - b) + (a' - a)b`` (and its mirror), intersected with
``p - n``; monotone activations use the mean-value theorem or the exact
difference rules (relu; sigmoid and tanh, see :func:`sigmoidal_difference`).
Because ``d`` is propagated directly, input correlations cancel, which makes
``|f_p(x) - f_p0(x)|`` over an input box far tighter than ``p - n``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from scipy import special

from paramverify.bounds.interval import (
    TINY,
    TRANSCENDENTAL_REL,
    Interval,
    U,
    as_interval,
    down,
    gamma,
    iadd,
    idiv_const,
    ierf,
    ileaky_relu,
    ilog_softmax,
    imatmul,
    imul,
    intersect,
    irelu,
    isigmoid,
    isoftmax,
    isub,
    itanh,
    sigmoid_value,
    up,
)
from paramverify.bounds.quantround import (
    dyn_error,
    dyn_value,
    enable_flag,
    fq_error,
    fq_value,
)


@dataclass(frozen=True, eq=False)
class DiffValue:
    """(nominal, perturbed, difference) enclosures of one tensor."""

    n: Interval
    p: Interval
    d: Interval

    @staticmethod
    def const(a: Any) -> DiffValue:
        iv = as_interval(a)
        return DiffValue(iv, iv, Interval.zeros(iv.shape))

    @staticmethod
    def input(x: Interval) -> DiffValue:
        """The data input: the same ``x`` feeds the nominal and the perturbed model."""
        return DiffValue(x, x, Interval.zeros(x.shape))

    @staticmethod
    def parameter(nominal: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> DiffValue:
        nominal = np.asarray(nominal, dtype=np.float64)
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        if lo is hi or np.array_equal(lo, hi):  # a point: one difference, rounded both ways
            diff = lo - nominal
            return DiffValue(Interval.const(nominal), Interval(lo, lo, True), Interval(down(diff), up(diff)))
        d = Interval(down(lo - nominal), up(hi - nominal))
        p = Interval(lo, hi)
        return DiffValue(Interval.const(nominal), p, d)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.n.shape

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> DiffValue:
        return DiffValue(self.n.map(fn), self.p.map(fn), self.d.map(fn))


def _narrow(a: Interval, hint: Interval | None) -> Interval:
    """``a`` intersected with another sound enclosure (kept as is where they do not fit or overlap)."""
    if hint is None or np.shape(hint.lo) != np.shape(a.lo):
        return a
    lo, hi = np.maximum(a.lo, hint.lo), np.minimum(a.hi, hint.hi)
    empty = lo > hi
    return Interval(np.where(empty, a.lo, lo), np.where(empty, a.hi, hi))


def as_diff(a: Any) -> DiffValue:
    return a if isinstance(a, DiffValue) else DiffValue.const(a)


def _tighten(n: Interval, p: Interval, d: Interval) -> DiffValue:
    """Intersect ``d`` with ``p - n`` and ``p`` with ``n + d`` (all sound)."""
    d = intersect(d, isub(p, n))
    p = intersect(p, iadd(n, d))
    return DiffValue(n, p, d)


def _vertex_terms(a: Interval, da: Interval, b: Interval, db: Interval, lo_hi: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-term bounds of ``(a + da)(b + db) - ab = a db + da b + da db`` (before summing).

    For fixed ``a, b`` this is bilinear in ``(da, db)``, so its extremes over the
    ``(da, db)`` box are at one of the four vertices; at a vertex it is linear in
    ``a`` and in ``b`` separately, so interval evaluation is exact there.  Hence
    the result is the exact range for independent ``a, da, b, db``.
    ``lo_hi`` broadcasts operands (elementwise or as matmul terms).
    """
    al, ah, bl, bh = lo_hi(a.lo, a.hi, b.lo, b.hi)
    dal, dah, dbl, dbh = lo_hi(da.lo, da.hi, db.lo, db.hi)
    lo = hi = None
    for dav in (dal, dah):
        for dbv in (dbl, dbh):
            t1a, t1b = al * dbv, ah * dbv
            t2a, t2b = dav * bl, dav * bh
            t3 = dav * dbv
            fmax = np.maximum(t1a, t1b) + np.maximum(t2a, t2b) + t3
            fmin = np.minimum(t1a, t1b) + np.minimum(t2a, t2b) + t3
            hi = fmax if hi is None else np.maximum(hi, fmax)
            lo = fmin if lo is None else np.minimum(lo, fmin)
    assert lo is not None and hi is not None
    return lo, hi


def _vertex_terms_point(a: Interval, da: Interval, b: np.ndarray, db: Interval, lo_hi: Callable[..., Any]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_vertex_terms` when ``b`` is a point (a weight's trained value): the same exact range
    from two vertices instead of four.

    ``(a + da)(b + db) - ab = a db + da (b + db)``: for fixed ``db`` it is linear in
    ``a`` and in ``da`` separately (interval evaluation is exact), and it is linear
    in ``db`` for fixed ``a, da``, so its extremes are at ``db``'s two ends.  Each
    term is three roundings of products and sums of ``|a||db| + |da|(|b| + |db|)``,
    the same magnitudes the callers' allowance covers.
    """
    al, ah, bv, _ = lo_hi(a.lo, a.hi, b, b)
    dal, dah, dbl, dbh = lo_hi(da.lo, da.hi, db.lo, db.hi)

    def ends(dbv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = bv + dbv
        t1a, t1b = al * dbv, ah * dbv
        t2a, t2b = dal * c, dah * c
        return np.minimum(t1a, t1b) + np.minimum(t2a, t2b), np.maximum(t1a, t1b) + np.maximum(t2a, t2b)

    lo1, hi1 = ends(dbl)
    lo2, hi2 = ends(dbh)
    return np.minimum(lo1, lo2), np.maximum(hi1, hi2)


#: elements per temporary array of the chunked vertex rule: small enough that a chunk's dozen
#: temporaries stay in a core's L2 cache (with 2**18 the four-vertex rule ran 2.8x slower per
#: element on the 2-core development machine: its temporaries streamed through memory)
VERTEX_CHUNK = 1 << 14


def _bcast(xl: np.ndarray, xh: np.ndarray, yl: np.ndarray, yh: np.ndarray) -> tuple[np.ndarray, ...]:
    """Matmul terms ``[..., m, k, n]``: the first pair is the left operand, the second the right."""
    return xl[..., :, :, None], xh[..., :, :, None], yl[..., None, :, :], yh[..., None, :, :]


def _bcast_swapped(xl: np.ndarray, xh: np.ndarray, yl: np.ndarray, yh: np.ndarray) -> tuple[np.ndarray, ...]:
    """As :func:`_bcast` with the first pair the right operand and the second the left."""
    return xl[..., None, :, :], xh[..., None, :, :], yl[..., :, :, None], yh[..., :, :, None]


def _same(*v: np.ndarray) -> tuple[np.ndarray, ...]:
    """Elementwise terms: the operands as they are (numpy broadcasts them)."""
    return v


def _product_terms(a: DiffValue, b: DiffValue, lo_hi: Callable[..., Any], swapped: Callable[..., Any]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-term bounds of the difference of ``a * b`` (``lo_hi`` lays out the terms: elementwise,
    or ``[..., m, k, n]`` for a matmul, with ``swapped`` the same layout for the operands given
    the other way round): two vertices when either side's trained values are a point (weights
    on the right, as in a Gemm, or on the left, as in a convolution; each term's product
    commutes), else four."""
    if b.n.point:
        return _vertex_terms_point(a.n, a.d, b.n.lo, b.d, lo_hi)
    if a.n.point:
        return _vertex_terms_point(b.n, b.d, a.n.lo, a.d, swapped)
    return _vertex_terms(a.n, a.d, b.n, b.d, lo_hi)


def _diff_mul(a: DiffValue, b: DiffValue) -> Interval:
    lo, hi = _product_terms(a, b, _same, _same)
    mag = a.n.mag * b.d.mag + a.d.mag * b.n.mag + a.d.mag * b.d.mag
    m = mag * gamma(8) + 4 * TINY
    return Interval(down(lo - m), up(hi + m))


def _summed_terms(a: DiffValue, b: DiffValue, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The matmul's :func:`_product_terms` summed over the contraction axis, ``rows`` rows of ``a`` at a time."""
    los, his = [], []
    for s in range(0, a.shape[-2], rows):
        lo, hi = _product_terms(a.map(lambda v, s=s: v[..., s : s + rows, :]), b, _bcast, _bcast_swapped)
        los.append(lo.sum(axis=-2))
        his.append(hi.sum(axis=-2))
    if len(los) == 1:
        return los[0], his[0]
    return np.concatenate(los, axis=-2), np.concatenate(his, axis=-2)


def _diff_matmul(a: DiffValue, b: DiffValue) -> Interval:
    """Exact per-term vertex rule summed over the contraction axis (chunked over rows, and over
    the right operand's stack when the left one is a matrix)."""
    sa, sb = a.n.lo.ndim == 1, b.n.lo.ndim == 1
    if sa:
        a = a.map(lambda v: v[None, :])
    if sb:
        b = b.map(lambda v: v[:, None])
    k = a.shape[-1]
    m_rows, n_cols = a.shape[-2], b.shape[-1]
    if len(a.shape) == 2 and len(b.shape) == 3:
        # a matrix times a stack (a convolution's weights times each sample's patches)
        rows = max(1, min(m_rows, VERTEX_CHUNK // (k * n_cols)))
        items = max(1, VERTEX_CHUNK // (rows * k * n_cols))
        parts = [_summed_terms(a, b.map(lambda v, i=i: v[i : i + items]), rows) for i in range(0, b.shape[0], items)]
        lo = np.concatenate([q[0] for q in parts], axis=0)
        hi = np.concatenate([q[1] for q in parts], axis=0)
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        per_row = max(1, int(np.prod(batch, dtype=np.int64)) * k * n_cols)
        lo, hi = _summed_terms(a, b, max(1, VERTEX_CHUNK // per_row))
    mag = np.matmul(a.n.mag, b.d.mag) + np.matmul(a.d.mag, b.n.mag) + np.matmul(a.d.mag, b.d.mag)
    m = mag * gamma(2 * k + 16) + (3 * k + 8) * TINY
    out = Interval(down(lo - m), up(hi + m))
    if sb:
        out = out.map(lambda v: v[..., 0])
    if sa:
        out = out.map(lambda v: v[..., 0, :])
    return Interval(out.lo, out.hi)


def _bilinear(a: DiffValue, b: DiffValue, op: Callable[[Any, Any], Interval], vertex: Callable[[DiffValue, DiffValue], Interval]) -> DiffValue:
    n = op(a.n, b.n)
    p = op(a.p, b.p)
    a_const = a.d.point and not np.any(a.d.lo)
    b_const = b.d.point and not np.any(b.d.lo)
    if a_const and b_const:
        return DiffValue(n, p, Interval.zeros(n.shape))
    if a_const:
        return _tighten(n, p, op(a.n, b.d))
    if b_const:
        return _tighten(n, p, op(a.d, b.n))
    d1 = iadd(op(a.p, b.d), op(a.d, b.n))
    d2 = iadd(op(a.n, b.d), op(a.d, b.p))
    return _tighten(n, p, intersect(intersect(d1, d2), vertex(a, b)))


# ---------------------------------------------------------------------------
# sigmoid / tanh: the exact difference rule


def _farther(zl: np.ndarray, zh: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.where(np.abs(zl - c) >= np.abs(zh - c), zl, zh)


def sigmoidal_difference(fn: Callable[[np.ndarray], np.ndarray], lipschitz: float, n: Interval, d: Interval) -> Interval:
    """Bounds of ``f(z + delta) - f(z)`` for ``z in n``, ``delta in d``; f = sigmoid or tanh.

    Proof: ``f'`` is even and decreasing in ``|z|``, so for fixed ``delta``
    the map ``z -> f(z + delta) - f(z)`` is symmetric about ``-delta / 2``,
    maximal there when ``delta >= 0`` and minimal there when ``delta <= 0``,
    and monotone away from it; it is increasing in ``delta`` for every
    ``z``.  Hence the upper bound is at ``delta = d.hi`` and ``z`` the point
    of ``n`` closest to (``d.hi >= 0``) or farthest from (``d.hi < 0``)
    ``-d.hi/2``; symmetrically for the lower bound.  ``-delta/2`` and the
    clip are exact in float; the rounding of ``z + delta`` costs at most
    ``lipschitz * u * |z + delta|`` and the library function is covered by
    ``TRANSCENDENTAL_REL``.
    """
    zl, zh = n.lo, n.hi
    with np.errstate(invalid="ignore"):
        c_hi = -d.hi * 0.5
        z_hi = np.where(d.hi >= 0, np.clip(c_hi, zl, zh), _farther(zl, zh, c_hi))
        c_lo = -d.lo * 0.5
        z_lo = np.where(d.lo <= 0, np.clip(c_lo, zl, zh), _farther(zl, zh, c_lo))
        a_hi, a_lo = z_hi + d.hi, z_lo + d.lo
        f1, f0 = fn(a_hi), fn(z_hi)
        g1, g0 = fn(a_lo), fn(z_lo)
        err_hi = lipschitz * 2 * U * np.abs(a_hi) + TRANSCENDENTAL_REL * (np.abs(f1) + np.abs(f0)) + 2 * TINY
        err_lo = lipschitz * 2 * U * np.abs(a_lo) + TRANSCENDENTAL_REL * (np.abs(g1) + np.abs(g0)) + 2 * TINY
        hi = up(up(f1 - f0) + err_hi)
        lo = down(down(g1 - g0) - err_lo)
    span = 1.0 if lipschitz == 0.25 else 2.0
    hi = np.where(np.isnan(hi), span, np.minimum(hi, span))
    lo = np.where(np.isnan(lo), -span, np.maximum(lo, -span))
    return Interval(lo, hi)


class DiffKernel:
    """Runs a graph on :class:`DiffValue` triples (numpy arrays are exact constants).

    ``hints_n`` / ``hints_p``: optional sound enclosures of the nominal and
    perturbed input of each relu of the graph, in call order (from CROWN,
    :func:`paramverify.bounds.sound.hinted_box_outputs`); they are
    intersected with the propagated ones, which keeps more neurons stable
    and the difference rule exact there.
    """

    def __init__(self, hints_n: Sequence[Interval | None] | None = None, hints_p: Sequence[Interval | None] | None = None) -> None:
        self.hints_n = hints_n
        self.hints_p = hints_p
        self._relu = 0

    def _hinted(self, a: DiffValue) -> DiffValue:
        i = self._relu
        self._relu += 1
        if self.hints_n is None or self.hints_p is None or i >= len(self.hints_n) or i >= len(self.hints_p):
            return a
        return DiffValue(_narrow(a.n, self.hints_n[i]), _narrow(a.p, self.hints_p[i]), a.d)

    #: primitives this kernel cannot hold -> why (none: every primitive is implemented)
    UNSUPPORTED: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def shape(self, a: Any) -> tuple[int, ...]:
        return a.shape if isinstance(a, DiffValue) else tuple(np.shape(a))

    # linear ---------------------------------------------------------------
    def add(self, a: Any, b: Any) -> DiffValue:
        a, b = as_diff(a), as_diff(b)
        return DiffValue(iadd(a.n, b.n), iadd(a.p, b.p), iadd(a.d, b.d))

    def sub(self, a: Any, b: Any) -> DiffValue:
        a, b = as_diff(a), as_diff(b)
        return DiffValue(isub(a.n, b.n), isub(a.p, b.p), isub(a.d, b.d))

    def neg(self, a: Any) -> Any:
        if not isinstance(a, DiffValue):
            return np.negative(a)
        return DiffValue(Interval(-a.n.hi, -a.n.lo, a.n.point), Interval(-a.p.hi, -a.p.lo, a.p.point), Interval(-a.d.hi, -a.d.lo, a.d.point))

    def div(self, a: Any, b: np.ndarray) -> DiffValue:
        a = as_diff(a)
        return DiffValue(idiv_const(a.n, b), idiv_const(a.p, b), idiv_const(a.d, b))

    def mul(self, a: Any, b: Any) -> DiffValue:
        a, b = as_diff(a), as_diff(b)
        return _bilinear(a, b, imul, _diff_mul)

    def matmul(self, a: Any, b: Any) -> DiffValue:
        a, b = as_diff(a), as_diff(b)
        return _bilinear(a, b, imatmul, _diff_matmul)

    # activations ------------------------------------------------------------
    def relu(self, a: Any) -> DiffValue:
        a = self._hinted(as_diff(a))
        n, p = irelu(a.n), irelu(a.p)
        # relu(z + delta) - relu(z) lies between min(delta, 0) and max(delta, 0); it
        # equals delta where both sides are active and 0 where both are inactive
        active = (a.n.lo >= 0) & (a.p.lo >= 0)
        dead = (a.n.hi <= 0) & (a.p.hi <= 0)
        lo = np.where(active, a.d.lo, np.minimum(a.d.lo, 0.0))
        hi = np.where(active, a.d.hi, np.maximum(a.d.hi, 0.0))
        lo = np.where(dead, 0.0, lo)
        hi = np.where(dead, 0.0, hi)
        return _tighten(n, p, Interval(lo, hi))

    def leaky_relu(self, a: Any, alpha: float) -> DiffValue:
        a = as_diff(a)
        n, p = ileaky_relu(a.n, alpha), ileaky_relu(a.p, alpha)
        # f(z + delta) - f(z) = s * delta with s an average slope in hull{1, alpha}
        slope = Interval(np.asarray(min(1.0, alpha)), np.asarray(max(1.0, alpha)))
        return _tighten(n, p, imul(slope, a.d))

    def sigmoid(self, a: Any) -> DiffValue:
        a = as_diff(a)
        return _tighten(isigmoid(a.n), isigmoid(a.p), sigmoidal_difference(sigmoid_value, 0.25, a.n, a.d))

    def tanh(self, a: Any) -> DiffValue:
        a = as_diff(a)
        return _tighten(itanh(a.n), itanh(a.p), sigmoidal_difference(np.tanh, 1.0, a.n, a.d))

    def softmax(self, a: Any, axis: int) -> DiffValue:
        a = as_diff(a)
        n, p = isoftmax(a.n, axis), isoftmax(a.p, axis)
        return DiffValue(n, p, isub(p, n))

    def log_softmax(self, a: Any, axis: int) -> DiffValue:
        a = as_diff(a)
        n, p = ilog_softmax(a.n, axis), ilog_softmax(a.p, axis)
        return DiffValue(n, p, isub(p, n))

    def erf(self, a: Any) -> DiffValue:
        # erf' = 2/sqrt(pi) exp(-z^2) is even and decreasing in |z|: the sigmoid/tanh rule holds
        a = as_diff(a)
        return _tighten(ierf(a.n), ierf(a.p), sigmoidal_difference(special.erf, 2.0 / np.sqrt(np.pi) * (1 + 4 * U), a.n, a.d))

    # int8 activation rounding (paramverify.ops.quant): nominal vs rounded -------------
    def fake_quant(self, a: Any, enable: Any, grid: Any) -> DiffValue:
        return self._rounding(a, enable, lambda v: fq_value(v, grid), lambda v: fq_error(v, grid))

    def dynamic_fake_quant(self, a: Any, enable: Any, qmin: int, qmax: int) -> DiffValue:
        return self._rounding(a, enable, lambda v: dyn_value(v, qmin, qmax), lambda v: dyn_error(v, qmin, qmax))

    @staticmethod
    def _rounding(a: Any, enable: Any, value: Callable[[Interval], Interval], error: Callable[[Interval], Interval]) -> DiffValue:
        a, e = as_diff(a), as_diff(enable)
        on_n, on_p = enable_flag(e.n), enable_flag(e.p)
        n = value(a.n) if on_n else a.n
        p = value(a.p) if on_p else a.p
        d = a.d
        if on_p:
            d = iadd(d, error(a.p))
        if on_n:
            d = isub(d, error(a.n))
        return _tighten(n, p, d)

    # exact rearrangements -------------------------------------------------------
    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        return a.map(lambda v: np.reshape(v, shape)) if isinstance(a, DiffValue) else np.reshape(a, shape)

    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any:
        return a.map(lambda v: np.transpose(v, perm)) if isinstance(a, DiffValue) else np.transpose(a, perm)

    def concat(self, values: Sequence[Any], axis: int) -> Any:
        if not any(isinstance(v, DiffValue) for v in values):
            return np.concatenate(values, axis=axis)
        dvs = [as_diff(v) for v in values]

        def cat(get: Callable[[DiffValue], Interval]) -> Interval:
            return Interval(np.concatenate([get(v).lo for v in dvs], axis=axis), np.concatenate([get(v).hi for v in dvs], axis=axis))

        return DiffValue(cat(lambda v: v.n), cat(lambda v: v.p), cat(lambda v: v.d))

    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any:
        return a.map(lambda v: np.take(v, indices, axis=axis)) if isinstance(a, DiffValue) else np.take(a, indices, axis=axis)

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any:
        return a.map(lambda v: np.pad(v, pad_width)) if isinstance(a, DiffValue) else np.pad(a, pad_width)


def diff_parameters(box: Any, t: float | None = None) -> dict[str, DiffValue]:
    """DiffValues of every parameter of a :class:`ParamBox` (optionally ``box.scaled(t)``)."""
    if t is not None:
        box = box.scaled(t)
    return {n: DiffValue.parameter(box.nominal[n], box.lo[n], box.hi[n]) for n in box.names}


def point_parameters(box: Any, values: Mapping[str, np.ndarray]) -> dict[str, DiffValue]:
    """DiffValues for one concrete parameter vector (``n`` = nominal, ``p`` = ``values``)."""
    return {n: DiffValue.parameter(box.nominal[n], values[n], values[n]) for n in box.names}
