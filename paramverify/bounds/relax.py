"""Sound linear relaxations of the activations, for linear bound propagation.

For a pre-activation interval ``[l, u]`` every function here returns float64
arrays ``(a_up, b_up, a_lo, b_lo)`` such that, for every *real* ``z`` in
``[l, u]``,

    a_lo * z + b_lo  <=  f(z)  <=  a_up * z + b_up

holds in real arithmetic for the stored float values of the slopes and
intercepts.  The slopes are chosen heuristically (the usual CROWN choices:
chords, tangents, tangents through an end point); soundness never depends
on that choice, because the intercepts are computed afterwards by a
rigorous argument:

* piecewise-linear ``f`` (ReLU, LeakyReLU): ``f(z) - a z`` is piecewise
  linear, so its extremes over ``[l, u]`` lie at ``l``, ``u`` or the kink 0;
* sigmoid and tanh are convex on ``z <= 0`` and concave on ``z >= 0``.  On a
  segment where the line must lie on the curve's convex side (above a convex
  piece, below a concave piece) it suffices to check the segment's ends; on
  the other side the tangent inequality ``f(z) <= f(t) + f'(t)(z - t)``
  (concave; reversed for convex) at any point ``t`` of the segment bounds
  ``f(z) - a z`` by ``f(t) - a t + (f'(t) - a)(z - t)``, which is maximised
  over the segment's ends.  ``t`` is where ``f'(t) = a`` (tight), but any ``t``
  is sound.

Every float operation is rounded outward: products and differences carry a
relative margin of a few units of roundoff, and the library functions
(``expit``, ``tanh``) are enclosed with ``TRANSCENDENTAL_REL`` as in
:mod:`paramverify.bounds.interval`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from paramverify.bounds.interval import (
    TINY,
    U,
    down,
    sigmoid_enclosure,
    sigmoid_value,
    tanh_enclosure,
    up,
)
from paramverify.errors import check

Enclosure = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: relative margin for one float product or difference (several roundings)
_REL = 8 * U


@dataclass(frozen=True, eq=False)
class Relaxation:
    """Slopes and intercepts of a lower and an upper line (see the module docstring)."""

    a_up: np.ndarray
    b_up: np.ndarray
    a_lo: np.ndarray
    b_lo: np.ndarray


def _minus_a_e_up(f_hi: np.ndarray, a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """An upper bound of ``F - a e`` for every real ``F <= f_hi`` (a, e exact floats)."""
    ae = a * e
    v = f_hi - ae
    return up(v + _REL * (np.abs(f_hi) + np.abs(ae)) + TINY)


def _minus_a_e_lo(f_lo: np.ndarray, a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """A lower bound of ``F - a e`` for every real ``F >= f_lo``."""
    ae = a * e
    v = f_lo - ae
    return down(v - _REL * (np.abs(f_lo) + np.abs(ae)) - TINY)


def _prod_hi(xl: np.ndarray, xh: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Upper bound of ``x * y`` for ``x`` in ``[xl, xh]`` and a float ``y``."""
    p = np.maximum(xl * y, xh * y)
    return up(p + _REL * np.abs(p) + TINY)


# ---------------------------------------------------------------------------
# piecewise linear: relu and leaky relu


def _pwl(z: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(z >= 0, z, alpha * z)


def _pwl_intercepts(l: np.ndarray, u: np.ndarray, a: np.ndarray, alpha: float, upper: bool) -> np.ndarray:
    """Sound intercept for slope ``a``: the extreme of ``f(z) - a z`` over ``l``, ``u`` and 0."""
    cands = []
    for e in (l, u, np.clip(0.0, l, u)):
        fe = _pwl(e, alpha)
        # alpha * e may round; enclose f(e) by one ulp each way
        f_lo, f_hi = (fe, fe) if alpha in (0.0, 1.0) else (down(fe), up(fe))
        cands.append(_minus_a_e_up(f_hi, a, e) if upper else _minus_a_e_lo(f_lo, a, e))
    out = cands[0]
    for c in cands[1:]:
        out = np.maximum(out, c) if upper else np.minimum(out, c)
    return out


def relu_relaxation(l: np.ndarray, u: np.ndarray, alpha: float = 0.0, lower_slope: np.ndarray | None = None) -> Relaxation:
    """ReLU (``alpha = 0``) or LeakyReLU: chord above, an adaptive line below.

    ``lower_slope`` (optional, in ``[min(alpha, 1), max(alpha, 1)]``) overrides
    the lower slope of unstable neurons (alpha-CROWN); the default picks 1
    when ``u >= -l`` else ``alpha``.  For ``alpha > 1`` the function is
    concave and the roles of chord and adaptive line swap.
    """
    l = np.asarray(l, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    active = l >= 0
    dead = u <= 0
    width = np.where(u > l, u - l, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        chord = (_pwl(u, alpha) - _pwl(l, alpha)) / width
    chord = np.where(active, 1.0, np.where(dead, alpha, chord))
    chord = np.clip(chord, min(alpha, 1.0), max(alpha, 1.0))
    if lower_slope is None:
        adaptive = np.where(u >= -l, 1.0, alpha)
    else:
        adaptive = np.clip(np.asarray(lower_slope, dtype=np.float64), min(alpha, 1.0), max(alpha, 1.0))
    adaptive = np.where(active, 1.0, np.where(dead, alpha, adaptive))
    a_up, a_lo = (chord, adaptive) if alpha <= 1.0 else (adaptive, chord)
    b_up = _pwl_intercepts(l, u, a_up, alpha, True)
    b_lo = _pwl_intercepts(l, u, a_lo, alpha, False)
    # stable neurons are exactly linear: keep their intercepts exactly 0
    exact = active | dead
    b_up = np.where(exact, 0.0, b_up)
    b_lo = np.where(exact, 0.0, b_lo)
    return Relaxation(a_up, b_up, a_lo, b_lo)


# ---------------------------------------------------------------------------
# sigmoid and tanh


@dataclass(frozen=True)
class _Sigmoidal:
    """A function convex on z <= 0 and concave on z >= 0, with enclosures of f and f'."""

    f: Callable[[np.ndarray], np.ndarray]
    enclose: Enclosure
    d_max: float  # f'(0), the largest slope

    def deriv(self, z: np.ndarray) -> np.ndarray:
        """f'(z) in float (a heuristic for slopes; accurate in saturation, never NaN)."""
        z = np.asarray(z, dtype=np.float64)
        with np.errstate(over="ignore"):
            if self.d_max == 0.25:
                return sigmoid_value(z) * sigmoid_value(-z)
            return 1.0 / np.cosh(z) ** 2

    def deriv_enclosure(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.enclose(z)
        if self.d_max == 0.25:
            # s (1 - s) is concave in s with its top at s = 1/2
            p_lo = np.minimum(lo * (1.0 - lo), hi * (1.0 - hi))
            p_hi = np.where((lo <= 0.5) & (hi >= 0.5), 0.25, np.maximum(lo * (1.0 - lo), hi * (1.0 - hi)))
        else:
            m_lo = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(lo * lo, hi * hi))
            m_hi = np.maximum(lo * lo, hi * hi)
            p_lo, p_hi = 1.0 - m_hi, 1.0 - m_lo
        return down(p_lo - _REL - TINY), up(p_hi + _REL + TINY)

    def tangent_point(self, a: np.ndarray, side: float) -> np.ndarray:
        """The z with f'(z) = a on the side sign(z) = side (0 if a >= f'(0)); a heuristic only.

        Solved in a form that stays accurate for tiny slopes (deep saturation,
        where ``f'`` underflows): ``1 - s`` resp. ``1 - t`` is computed without
        cancellation, so the point grows like ``-log(a)`` instead of capping.
        """
        a = np.clip(np.nan_to_num(a, nan=self.d_max), 1e-300, self.d_max)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.d_max == 0.25:
                # s (1 - s) = a with s >= 1/2: 1 - s = 2a / (1 + sqrt(1 - 4a))
                q = 2.0 * a / (1.0 + np.sqrt(np.maximum(1.0 - 4.0 * a, 0.0)))
                z = np.log1p(-q) - np.log(q)
            else:
                # 1 - t^2 = a: t = sqrt(1 - a), 1 - t = a / (1 + t), z = artanh(t)
                t = np.sqrt(np.maximum(1.0 - a, 0.0))
                z = 0.5 * (np.log1p(t) - np.log(a / (1.0 + t)))
        z = np.where(np.isfinite(z), np.maximum(z, 0.0), 0.0)
        return side * z


SIGMOID = _Sigmoidal(sigmoid_value, sigmoid_enclosure, 0.25)
TANH = _Sigmoidal(np.tanh, tanh_enclosure, 1.0)


def _tangent_bound(fn: _Sigmoidal, a: np.ndarray, s0: np.ndarray, s1: np.ndarray, side: float, upper: bool) -> np.ndarray:
    """Bound of ``f(z) - a z`` on the segment [s0, s1] (inside one curvature side) by a tangent.

    upper=True on the concave side (z >= 0): ``f(z) - a z <= f(t) - a t + (f'(t) - a)(z - t)``;
    upper=False on the convex side: the reverse inequality.
    """
    t = np.clip(fn.tangent_point(a, side), s0, s1)
    f_lo, f_hi = fn.enclose(t)
    d_lo, d_hi = fn.deriv_enclosure(t)
    base = _minus_a_e_up(f_hi, a, t) if upper else _minus_a_e_lo(f_lo, a, t)
    corr = None
    for e in (s0, s1):
        dz_lo, dz_hi = down(e - t), up(e - t)
        for d in (d_lo, d_hi):
            g = d - a
            g_lo, g_hi = down(g - _REL * np.abs(g)), up(g + _REL * np.abs(g))
            if upper:
                c = np.maximum(np.maximum(_prod_hi(g_lo, g_hi, dz_lo), _prod_hi(g_lo, g_hi, dz_hi)), 0.0)
                corr = c if corr is None else np.maximum(corr, c)
            else:
                c = np.minimum(np.minimum(-_prod_hi(g_lo, g_hi, -dz_lo), -_prod_hi(g_lo, g_hi, -dz_hi)), 0.0)
                corr = c if corr is None else np.minimum(corr, c)
    check(corr is not None, "tangent bound without a correction term")
    return up(base + corr) if upper else down(base + corr)


def _end_bound(fn: _Sigmoidal, a: np.ndarray, e: np.ndarray, upper: bool) -> np.ndarray:
    f_lo, f_hi = fn.enclose(e)
    return _minus_a_e_up(f_hi, a, e) if upper else _minus_a_e_lo(f_lo, a, e)


def _sound_intercept(fn: _Sigmoidal, l: np.ndarray, u: np.ndarray, a: np.ndarray, upper: bool) -> np.ndarray:
    """The extreme of ``f(z) - a z`` over [l, u], bounded soundly (see the module docstring)."""
    neg = l < 0  # a convex piece [l, min(u, 0)] exists
    pos = u > 0  # a concave piece [max(l, 0), u] exists
    c0, c1 = np.minimum(u, 0.0), np.maximum(l, 0.0)
    pick = np.maximum if upper else np.minimum
    fill = -np.inf if upper else np.inf
    out = np.full(np.shape(l), fill)
    if upper:
        # convex piece: the ends; concave piece: a tangent
        out = np.where(neg, pick(out, pick(_end_bound(fn, a, l, True), _end_bound(fn, a, c0, True))), out)
        out = np.where(pos, pick(out, _tangent_bound(fn, a, c1, u, 1.0, True)), out)
    else:
        out = np.where(pos, pick(out, pick(_end_bound(fn, a, c1, False), _end_bound(fn, a, u, False))), out)
        out = np.where(neg, pick(out, _tangent_bound(fn, a, l, c0, -1.0, False)), out)
    # a degenerate interval l = u = 0 belongs to neither piece
    at0 = ~neg & ~pos
    return np.where(at0, _end_bound(fn, a, l, upper), out)


def _through_point(fn: _Sigmoidal, p: np.ndarray, lo: np.ndarray, hi: np.ndarray, iters: int = 24) -> np.ndarray:
    """Bisection for d in [lo, hi] whose tangent passes through (p, f(p)) (a heuristic only)."""
    fp = fn.f(p)
    # beyond |z| = cap the float derivative is negligible: a bracket past it only costs resolution
    cap = 40.0 if fn.d_max == 0.25 else 20.0
    a, b = np.clip(lo, -cap, cap), np.clip(hi, -cap, cap)
    for _ in range(iters):
        m = 0.5 * (a + b)
        # g increases in m on either side (f''(m) (p - m) > 0), so the root lies right where g < 0
        g = fn.f(m) + fn.deriv(m) * (p - m) - fp
        right = g < 0
        a = np.where(right, m, a)
        b = np.where(right, b, m)
    return 0.5 * (a + b)


def sigmoidal_relaxation(fn: _Sigmoidal, l: np.ndarray, u: np.ndarray) -> Relaxation:
    """CROWN-style lines for sigmoid / tanh on [l, u], with sound intercepts, at every magnitude.

    The interval is never clipped: the intercepts are rigorous for any finite
    ``[l, u]`` (a line that is sound on a clipped interval is not sound on the
    real one, since a non-zero slope leaves the bounded curve far outside).
    Where an end is infinite or NaN, or the intercept computation overflows,
    the constant lines ``f(l) <= f(z) <= f(u)`` (f increasing) are used.
    """
    l = np.asarray(l, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    finite = np.isfinite(l) & np.isfinite(u)
    # placeholders where an end is not finite (replaced by constant lines below)
    l_in, u_in = l, u
    l = np.where(finite, l, 0.0)
    u = np.where(finite, u, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        width = u - l
        narrow = ~(width > 1e-9 * (1.0 + np.abs(l) + np.abs(u)))
        safe_w = np.where(narrow | ~np.isfinite(width), 1.0, width)
        fl_, fu_ = fn.f(l), fn.f(u)
        chord = np.where(narrow, fn.deriv(0.5 * l + 0.5 * u), (fu_ - fl_) / safe_w)
        chord = np.where(np.isfinite(width), chord, 0.0)
        mid_slope = fn.deriv(0.5 * l + 0.5 * u)
        mixed = (l < 0) & (u > 0)
        # upper line: chord on convex, tangent at mid on concave, tangent through (l, f(l)) when mixed
        d_up = _through_point(fn, l, np.zeros_like(u), np.where(mixed, u, 0.0))
        up_mixed = np.where(fn.deriv(u) >= chord, chord, fn.deriv(d_up))  # chord lies above when f'(u) >= chord
        a_up = np.where(u <= 0, chord, np.where(l >= 0, mid_slope, up_mixed))
        d_lo = _through_point(fn, u, np.where(mixed, l, 0.0), np.zeros_like(l))
        lo_mixed = np.where(fn.deriv(l) >= chord, chord, fn.deriv(d_lo))
        a_lo = np.where(l >= 0, chord, np.where(u <= 0, mid_slope, lo_mixed))
        a_up = np.where(narrow, mid_slope, a_up)
        a_lo = np.where(narrow, mid_slope, a_lo)
        a_up = np.clip(np.nan_to_num(a_up, nan=0.0), 0.0, fn.d_max)
        a_lo = np.clip(np.nan_to_num(a_lo, nan=0.0), 0.0, fn.d_max)
        b_up = _sound_intercept(fn, l, u, a_up, True)
        b_lo = _sound_intercept(fn, l, u, a_lo, False)
    # constant lines: sound for every z in [l, u] because f is increasing
    c_lo = fn.enclose(l_in)[0]
    c_hi = fn.enclose(u_in)[1]
    ok_up = finite & np.isfinite(b_up)
    ok_lo = finite & np.isfinite(b_lo)
    a_up = np.where(ok_up, a_up, 0.0)
    b_up = np.where(ok_up, b_up, c_hi)
    a_lo = np.where(ok_lo, a_lo, 0.0)
    b_lo = np.where(ok_lo, b_lo, c_lo)
    return Relaxation(a_up, b_up, a_lo, b_lo)
