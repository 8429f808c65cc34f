"""Exact rationals and rigorous rational bounds on exp, ln, sigmoid and logit.

Every float64 enters a solver as ``Fraction(float)`` (the float's exact
binary value, never its decimal repr).  Irrational constants (``logit(l)``,
``sigmoid(z0)``) are bracketed by rationals: Python's ``decimal`` computes
``exp`` and ``ln`` correctly rounded (half-even) at the context precision,
so the neighbours ``next_minus()`` / ``next_plus()`` of a result enclose the
true value; arguments are converted with directed rounding first and the
functions are monotone, so each returned ``(lo, hi)`` satisfies
``lo <= f(q) <= hi`` exactly.
"""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

from paramverify.errors import ModelError

#: decimal digits used for the bounds (width of a bracket ~ 10^-45 relative)
DIGITS = 50
#: beyond this |z|, sigmoid is bracketed by [0, 1e-300] / [1 - 1e-300, 1]
_SIGMOID_SATURATION = 800
_TINY = Fraction(1, 10**300)


def to_fraction(v: object) -> Fraction:
    """The exact rational value of a finite float / int (numpy scalars too)."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (bool,)):
        return Fraction(int(v))
    if isinstance(v, int):
        return Fraction(v)
    f = float(v)  # type: ignore[arg-type]
    if not math.isfinite(f):
        raise ModelError(f"non-finite constant {f!r} in the model; SMT encodings need finite values")
    return Fraction(f)


def _context(rounding: str) -> decimal.Context:
    # exponent range +-999999: wide enough for every float64 and every exp/ln result we
    # need, small enough that the neighbours of a result stay cheap as Fractions
    return decimal.Context(prec=DIGITS, rounding=rounding, Emax=999_999, Emin=-999_999)


def _dec(q: Fraction, rounding: str) -> decimal.Decimal:
    """``q`` rounded to DIGITS significant digits in direction ``rounding``."""
    ctx = _context(rounding)
    return ctx.divide(decimal.Decimal(q.numerator), decimal.Decimal(q.denominator))


def exp_bounds(q: Fraction) -> tuple[Fraction, Fraction]:
    """Rationals ``lo <= exp(q) <= hi`` (``lo > 0``) for ``|q| < 2e6``."""
    if q == 0:
        return Fraction(1), Fraction(1)
    if abs(q) >= 2_000_000:
        raise ValueError("exp argument out of range for the rational bounds")
    near = _context(decimal.ROUND_HALF_EVEN)
    lo_arg, hi_arg = _dec(q, decimal.ROUND_FLOOR), _dec(q, decimal.ROUND_CEILING)
    lo = near.exp(lo_arg).next_minus(near)
    hi = near.exp(hi_arg).next_plus(near)
    lo_f = Fraction(lo)
    if lo_f <= 0:  # pragma: no cover - exp never underflows at the magnitudes sigmoid_bounds passes
        lo_f = Fraction(0)
    return lo_f, Fraction(hi)


def ln_bounds(q: Fraction) -> tuple[Fraction, Fraction]:
    """Rationals ``lo <= ln(q) <= hi`` for ``q > 0``."""
    if q <= 0:
        raise ValueError("ln of a non-positive number")
    if q == 1:
        return Fraction(0), Fraction(0)
    near = _context(decimal.ROUND_HALF_EVEN)
    lo_arg, hi_arg = _dec(q, decimal.ROUND_FLOOR), _dec(q, decimal.ROUND_CEILING)
    if lo_arg <= 0:  # q below the decimal range: not a float64, keep it safe
        raise ValueError("ln argument underflows")  # pragma: no cover
    lo = near.ln(lo_arg).next_minus(near)
    hi = near.ln(hi_arg).next_plus(near)
    return Fraction(lo), Fraction(hi)


def logit_bounds(u: Fraction) -> tuple[Fraction, Fraction]:
    """Rationals ``lo <= ln(u / (1 - u)) <= hi`` for ``0 < u < 1``; exact 0 at 1/2."""
    if not 0 < u < 1:
        raise ValueError(f"logit needs 0 < u < 1, got {u}")
    if u == Fraction(1, 2):
        return Fraction(0), Fraction(0)
    a_lo, a_hi = ln_bounds(u)
    b_lo, b_hi = ln_bounds(1 - u)
    return a_lo - b_hi, a_hi - b_lo


def sigmoid_bounds(z: Fraction) -> tuple[Fraction, Fraction]:
    """Rationals ``lo <= 1 / (1 + exp(-z)) <= hi`` with ``0 <= lo <= hi <= 1``."""
    if z == 0:
        return Fraction(1, 2), Fraction(1, 2)
    if z >= _SIGMOID_SATURATION:
        # sigmoid(z) >= 1 - exp(-z) >= 1 - 1e-300
        return 1 - _TINY, Fraction(1)
    if z <= -_SIGMOID_SATURATION:
        # sigmoid(z) <= exp(z) <= 1e-300
        return Fraction(0), _TINY
    e_lo, e_hi = exp_bounds(-z)
    return 1 / (1 + e_hi), 1 / (1 + e_lo)


def frac_to_float(q: Fraction) -> float:
    """Nearest float64 (Python's correctly rounded int division)."""
    return q.numerator / q.denominator
