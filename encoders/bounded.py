"""Exact interval bounds alongside solver terms: stable ReLUs and decided comparisons fold away.

:class:`BoundedBuilder` wraps any :class:`~encoders.base.TermBuilder`.  Each
term carries rational bounds ``lo <= value <= hi`` valid for every
assignment inside the variables' declared domain (exact interval arithmetic
on Fractions; no rounding).  With them:

* ``relu(t)`` is ``t`` when ``lo >= 0`` and the constant ``Fraction(0)``
  when ``hi <= 0`` (the phase is fixed on the whole domain), so the solver
  sees fewer case splits (the symbolic kernel accepts a Fraction wherever a
  term may appear);
* a comparison the bounds decide becomes a Python ``bool``, and the
  encoder's constant folding drops it (a whole disjunct may fold to False:
  that sub-query is unsat without a solver call).

Soundness: the domain constraints themselves are built from the unbounded
variables (see :func:`encoders.encode.build_network`) and always asserted,
so every model lies in the domain where the bounds hold; each rewrite is an
identity on the domain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from encoders.base import TermBuilder

Num = Fraction | float  # float only for +-inf
_INF = math.inf


@dataclass(frozen=True, eq=False)
class Bounded:
    """A solver term with bounds valid on the declared domain."""

    term: Any
    lo: Num
    hi: Num


def _mul_bounds(a: Bounded, b: Bounded) -> tuple[Num, Num]:
    if any(isinstance(v, float) for v in (a.lo, a.hi, b.lo, b.hi)):
        return -_INF, _INF
    products = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return min(products), max(products)


def _scale(q: Fraction, lo: Num, hi: Num) -> tuple[Num, Num]:
    if q == 0:
        return Fraction(0), Fraction(0)
    a, b = (q * lo, q * hi) if not isinstance(lo, float) and not isinstance(hi, float) else (_fmul(q, lo), _fmul(q, hi))
    return (a, b) if q > 0 else (b, a)


def _fmul(q: Fraction, v: Num) -> Num:
    if isinstance(v, float):
        return v if q > 0 else -v
    return q * v


class BoundedBuilder:
    """Wraps a builder; see the module doc.  Unknown attributes go to the inner builder."""

    def __init__(self, inner: TermBuilder) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:  # ctx, nonlinear, ... of the inner builder
        return getattr(self.inner, name)

    @property
    def variables(self) -> dict[str, Any]:
        return self.inner.variables

    @property
    def side_constraints(self) -> list[Any]:
        return self.inner.side_constraints

    def declare_bounds(self, v: Bounded, lo: Fraction, hi: Fraction) -> Bounded:
        """The variable ``v`` known to lie in ``[lo, hi]`` (its domain constraint is asserted)."""
        return Bounded(v.term, lo, hi)

    # ------------------------------------------------------------ terms
    def const(self, q: Fraction) -> Bounded:
        return Bounded(self.inner.const(q), q, q)

    def var(self, name: str) -> Bounded:
        return Bounded(self.inner.var(name), -_INF, _INF)

    def linear(self, constant: Fraction, terms: Sequence[tuple[Fraction, Any]]) -> Bounded:
        lo: Num = constant
        hi: Num = constant
        for q, t in terms:
            a, b = _scale(q, t.lo, t.hi)
            lo, hi = lo + a, hi + b
        return Bounded(self.inner.linear(constant, [(q, t.term) for q, t in terms]), lo, hi)

    def mul(self, a: Bounded, b: Bounded) -> Bounded:
        lo, hi = _mul_bounds(a, b)
        return Bounded(self.inner.mul(a.term, b.term), lo, hi)

    def div(self, a: Bounded, b: Bounded) -> Bounded:
        lo, hi = -_INF, _INF
        finite = not any(isinstance(v, float) for v in (a.lo, a.hi, b.lo, b.hi))
        if finite and (b.lo > 0 or b.hi < 0):
            inv = Bounded(None, 1 / b.hi, 1 / b.lo)
            lo, hi = _mul_bounds(a, inv)
        return Bounded(self.inner.div(a.term, b.term), lo, hi)

    def relu(self, a: Bounded) -> Bounded | Fraction:
        if a.lo >= 0:
            return a
        if a.hi <= 0:
            return Fraction(0)  # an exact constant: the kernel folds it further
        return Bounded(self.inner.relu(a.term), Fraction(0), a.hi)

    def leaky_relu(self, a: Bounded, alpha: Fraction) -> Bounded:
        if a.lo >= 0:
            return a
        if a.hi <= 0 and alpha >= 0:
            lo, hi = _scale(alpha, a.lo, a.hi)
            return Bounded(self.inner.linear(Fraction(0), [(alpha, a.term)]), lo, hi)
        return Bounded(self.inner.leaky_relu(a.term, alpha), -_INF, _INF)

    def exp(self, a: Bounded) -> Bounded:
        return Bounded(self.inner.exp(a.term), Fraction(0), _INF)

    def sigmoid(self, a: Bounded) -> Bounded:
        return Bounded(self.inner.sigmoid(a.term), Fraction(0), Fraction(1))

    def tanh(self, a: Bounded) -> Bounded:
        return Bounded(self.inner.tanh(a.term), Fraction(-1), Fraction(1))

    # --------------------------------------------------------- formulas
    def compare(self, op: str, a: Bounded, b: Bounded) -> Any:
        """A formula, or a Python bool when the bounds decide it on the whole domain."""
        d_lo, d_hi = a.lo - b.hi, a.hi - b.lo  # a - b in [d_lo, d_hi]
        if op in (">=", ">"):
            if d_lo > 0 or (op == ">=" and d_lo == 0):
                return True
            if d_hi < 0 or (op == ">" and d_hi == 0):
                return False
        else:
            if d_hi < 0 or (op == "<=" and d_hi == 0):
                return True
            if d_lo > 0 or (op == "<" and d_lo == 0):
                return False
        return self.inner.compare(op, a.term, b.term)

    def and_(self, formulas: Sequence[Any]) -> Any:
        return self.inner.and_(formulas)

    def or_(self, formulas: Sequence[Any]) -> Any:
        return self.inner.or_(formulas)

    def true(self) -> Any:
        return self.inner.true()

    def false(self) -> Any:
        return self.inner.false()
