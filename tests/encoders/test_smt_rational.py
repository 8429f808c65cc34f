"""Rigorous rational bounds on exp, ln, logit and sigmoid; exact float conversion."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders.rational import (
    exp_bounds,
    frac_to_float,
    ln_bounds,
    logit_bounds,
    sigmoid_bounds,
    to_fraction,
)
from paramverify.errors import ModelError

mpmath.mp.dps = 120


def _mp(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


def test_floats_enter_exactly() -> None:
    assert to_fraction(0.1) == Fraction(0.1)
    assert to_fraction(0.1) != Fraction(1, 10)  # the binary value, not the decimal repr
    assert to_fraction(3) == 3 and to_fraction(-0.0) == 0
    with pytest.raises(ModelError):
        to_fraction(float("nan"))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.floats(min_value=-60, max_value=60, allow_nan=False))
def test_exp_bounds_enclose(x: float) -> None:
    q = Fraction(x)
    lo, hi = exp_bounds(q)
    true = mpmath.exp(_mp(q))
    assert _mp(lo) <= true <= _mp(hi)
    assert hi - lo <= Fraction(1, 10**40) * max(hi, 1)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.one_of(st.just(1.0), st.floats(min_value=1e-300, max_value=1e300, allow_nan=False)))
def test_ln_bounds_enclose(x: float) -> None:
    q = Fraction(x)
    lo, hi = ln_bounds(q)
    assert _mp(lo) <= mpmath.log(_mp(q)) <= _mp(hi)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.floats(min_value=1e-12, max_value=1 - 1e-12, allow_nan=False))
def test_logit_bounds_enclose(u: float) -> None:
    q = Fraction(u)
    lo, hi = logit_bounds(q)
    v = _mp(q)
    assert _mp(lo) <= mpmath.log(v / (1 - v)) <= _mp(hi)
    assert float(hi - lo) < 1e-40


def test_logit_half_is_exact_zero() -> None:
    assert logit_bounds(Fraction(1, 2)) == (0, 0)
    with pytest.raises(ValueError):
        logit_bounds(Fraction(1))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.floats(min_value=-2000, max_value=2000, allow_nan=False))
def test_sigmoid_bounds_enclose(z: float) -> None:
    q = Fraction(z)
    lo, hi = sigmoid_bounds(q)
    assert 0 <= lo <= hi <= 1
    # lo <= 1 / (1 + e) <= hi  <=>  1/hi - 1 <= e <= 1/lo - 1, compared with relative precision
    e = mpmath.exp(-_mp(q))
    assert _mp(1 / hi - 1) <= e
    if lo > 0:
        assert e <= _mp(1 / lo - 1)


def test_frac_to_float_is_nearest() -> None:
    assert frac_to_float(Fraction(1, 3)) == 1 / 3
    assert frac_to_float(Fraction(0.1)) == 0.1
    assert math.isclose(frac_to_float(Fraction(10**400 + 1, 10**400)), 1.0)
