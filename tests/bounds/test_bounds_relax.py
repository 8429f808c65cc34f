"""Sound activation relaxations: the lines enclose the function on the whole interval, and touch it."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from paramverify.bounds.relax import (
    SIGMOID,
    TANH,
    relu_relaxation,
    sigmoidal_relaxation,
)


def _grid(l: float, u: float, n: int = 101) -> np.ndarray:
    z = np.linspace(l, u, n)
    return np.concatenate([z, [l, u, np.clip(0.0, l, u)]])


@settings(max_examples=40, deadline=None)
@given(l=st.floats(-30, 30), width=st.one_of(st.just(0.0), st.floats(1e-9, 1e-3), st.floats(1e-3, 40)),
       alpha=st.sampled_from([0.0, 0.1, 0.3, 2.0]))
def test_piecewise_linear_lines_enclose_exactly(l: float, width: float, alpha: float) -> None:
    u = l + width
    r = relu_relaxation(np.array([l]), np.array([u]), alpha)
    a_up, b_up, a_lo, b_lo = (Fraction(float(v[0])) for v in (r.a_up, r.b_up, r.a_lo, r.b_lo))
    fa = Fraction(alpha)
    for z in _grid(l, u, 25):
        zf = Fraction(float(z))
        f = zf if zf >= 0 else fa * zf  # the model's semantics in exact arithmetic
        assert a_lo * zf + b_lo <= f <= a_up * zf + b_up


@pytest.mark.parametrize("fn,f", [(SIGMOID, expit), (TANH, np.tanh)])
@settings(max_examples=40, deadline=None)
@given(l=st.floats(-40, 40), width=st.one_of(st.just(0.0), st.floats(1e-10, 1e-4), st.floats(1e-4, 60)))
def test_sigmoidal_lines_enclose(fn, f, l: float, width: float) -> None:
    u = l + width
    r = sigmoidal_relaxation(fn, np.array([l]), np.array([u]))
    z = _grid(l, u, 401)
    fz = f(z)
    ulp = np.spacing(np.abs(fz)) * 2
    # screen in float, then check the closest points in exact arithmetic against the library
    # value (the relaxation carries a much larger margin than the library's few-ulp error)
    worst = np.argsort(r.a_up[0] * z + r.b_up[0] - fz)[:8].tolist() + np.argsort(fz - r.a_lo[0] * z - r.b_lo[0])[:8].tolist()
    for zi, fi, ui in zip(z[worst], fz[worst], ulp[worst]):
        zf = Fraction(float(zi))
        assert Fraction(float(r.a_up[0])) * zf + Fraction(float(r.b_up[0])) >= Fraction(float(fi - ui))
        assert Fraction(float(r.a_lo[0])) * zf + Fraction(float(r.b_lo[0])) <= Fraction(float(fi + ui))


@pytest.mark.parametrize("fn,f", [(SIGMOID, expit), (TANH, np.tanh)])
def test_sigmoidal_lines_touch_the_curve(fn, f) -> None:
    rng = np.random.default_rng(0)
    l = rng.uniform(-6, 6, 500)
    u = l + rng.exponential(2.0, 500)
    r = sigmoidal_relaxation(fn, l, u)
    z = l[:, None] + (u - l)[:, None] * np.linspace(0, 1, 4001)[None]
    gap_up = np.min(r.a_up[:, None] * z + r.b_up[:, None] - f(z), axis=1)
    gap_lo = np.min(f(z) - r.a_lo[:, None] * z - r.b_lo[:, None], axis=1)
    assert np.all(gap_up >= -1e-15) and np.all(gap_lo >= -1e-15)
    scale = (u - l) * (0.25 if fn is SIGMOID else 1.0)
    # tangents touch up to the grid resolution, chords at the ends
    assert np.all(gap_up <= 1e-5 * scale + 1e-12) and np.all(gap_lo <= 1e-5 * scale + 1e-12)


def test_relu_stable_neurons_are_exact_and_unstable_use_the_chord() -> None:
    r = relu_relaxation(np.array([1.0, -3.0, -1.0]), np.array([2.0, -1.0, 3.0]))
    assert r.a_up[0] == r.a_lo[0] == 1.0 and r.b_up[0] == r.b_lo[0] == 0.0
    assert r.a_up[1] == r.a_lo[1] == 0.0 and r.b_up[1] == r.b_lo[1] == 0.0
    assert r.a_up[2] == pytest.approx(0.75) and r.b_up[2] == pytest.approx(0.75) and r.b_up[2] >= 0.75
    assert r.a_lo[2] == 1.0 and r.b_lo[2] <= 0.0
    custom = relu_relaxation(np.array([-1.0]), np.array([3.0]), lower_slope=np.array([0.3]))
    assert custom.a_lo[0] == 0.3
