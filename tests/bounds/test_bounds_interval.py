"""IntervalKernel: outward rounding and containment of sampled evaluations."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from paramverify.bounds.interval import (
    Interval,
    IntervalKernel,
    iadd,
    imatmul,
    imul,
    isigmoid,
    isoftmax,
    itanh,
)


def _exact_dot(a: np.ndarray, b: np.ndarray) -> list[list[Fraction]]:
    return [[sum((Fraction(float(a[i, k])) * Fraction(float(b[k, j])) for k in range(a.shape[1])), Fraction(0))
             for j in range(b.shape[1])] for i in range(a.shape[0])]


def test_matmul_rounds_outward_where_naive_float_is_wrong() -> None:
    a = np.array([[1e16, 1.0, -1e16]])
    b = np.array([[1.0], [1.0], [1.0]])
    assert float((a @ b)[0, 0]) != 1.0  # naive float64 loses the 1
    iv = imatmul(a, b)
    assert iv.lo[0, 0] <= 1.0 <= iv.hi[0, 0]


def test_constant_sum_contains_exact_rational() -> None:
    iv = iadd(np.array([0.1]), np.array([0.2]))
    exact = Fraction(0.1) + Fraction(0.2)
    assert Fraction(float(iv.lo[0])) <= exact <= Fraction(float(iv.hi[0]))
    assert iv.lo[0] < iv.hi[0]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), point_a=st.booleans(), point_b=st.booleans())
def test_matmul_contains_exact_products(seed: int, point_a: bool, point_b: bool) -> None:
    rng = np.random.default_rng(seed)
    alo = rng.standard_normal((3, 4)) * 10.0 ** rng.integers(-3, 4)
    ahi = alo if point_a else alo + rng.random((3, 4))
    blo = rng.standard_normal((4, 2))
    bhi = blo if point_b else blo + rng.random((4, 2))
    iv = imatmul(Interval(alo, ahi, point_a), Interval(blo, bhi, point_b))
    for _ in range(5):
        a = rng.uniform(alo, ahi)
        b = rng.uniform(blo, bhi)
        exact = _exact_dot(a, b)
        for i in range(3):
            for j in range(2):
                assert Fraction(float(iv.lo[i, j])) <= exact[i][j] <= Fraction(float(iv.hi[i, j]))


def test_exact_interval_matmul_is_tighter_than_midrad(monkeypatch: pytest.MonkeyPatch) -> None:
    import paramverify.bounds.interval as ivmod

    rng = np.random.default_rng(1)
    a = Interval(rng.standard_normal((2, 5)), rng.standard_normal((2, 5)) + 3)
    b = Interval(rng.standard_normal((5, 3)) - 1, rng.standard_normal((5, 3)) + 2)
    exact = imatmul(a, b)
    monkeypatch.setattr(ivmod, "EXACT_MATMUL_TERMS", 0)
    mid = imatmul(a, b)
    assert np.all(exact.lo >= mid.lo) and np.all(exact.hi <= mid.hi)
    for _ in range(200):
        v = rng.uniform(a.lo, a.hi) @ rng.uniform(b.lo, b.hi)
        assert np.all(exact.contains(v)) and np.all(mid.contains(v))


@settings(max_examples=40, deadline=None)
@given(lo=st.floats(-50, 50), width=st.floats(0, 20), lo2=st.floats(-5, 5), width2=st.floats(0, 5))
def test_elementwise_ops_contain_samples(lo: float, width: float, lo2: float, width2: float) -> None:
    a = Interval(np.array([lo]), np.array([lo + width]))
    b = Interval(np.array([lo2]), np.array([lo2 + width2]))
    k = IntervalKernel()
    xs = np.linspace(lo, lo + width, 7)
    ys = np.linspace(lo2, lo2 + width2, 7)
    prod = imul(a, b)
    sig, th = isigmoid(a), itanh(a)
    leaky = k.leaky_relu(a, 0.1)
    for x in xs:
        assert sig.lo[0] <= expit(x) <= sig.hi[0]
        assert th.lo[0] <= np.tanh(x) <= th.hi[0]
        assert leaky.lo[0] <= (x if x >= 0 else 0.1 * x) <= leaky.hi[0]
        for y in ys:
            assert Fraction(float(prod.lo[0])) <= Fraction(float(x)) * Fraction(float(y)) <= Fraction(float(prod.hi[0]))


def test_softmax_enclosure_contains_samples() -> None:
    rng = np.random.default_rng(3)
    lo = rng.standard_normal((4, 5)) * 3
    hi = lo + rng.random((4, 5)) * 2
    iv = isoftmax(Interval(lo, hi), axis=1)
    assert np.all(iv.lo >= 0) and np.all(iv.hi <= 1)
    for _ in range(300):
        x = rng.uniform(lo, hi)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
        assert np.all(iv.contains(s))


def test_shape_ops_apply_to_both_ends() -> None:
    k = IntervalKernel()
    a = Interval(np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3) + 1)
    t = k.transpose(a, (1, 0))
    assert t.shape == (3, 2) and t.hi[2, 1] == 6.0
    c = k.concat([a, np.zeros((2, 1))], axis=1)
    assert c.shape == (2, 4) and c.hi[0, 3] == 0.0
    p = k.pad(k.reshape(a, (1, 6)), ((0, 0), (1, 1)))
    assert p.shape == (1, 8) and p.lo[0, 0] == 0.0
    assert k.take(a, np.array([2, 0]), axis=1).lo.tolist() == [[2.0, 0.0], [5.0, 3.0]]


def _one_sign(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> Interval:
    """An interval matrix whose every entry keeps one sign (some entries negative, some zero-ended)."""
    lo = rng.uniform(0.0, scale, shape)
    hi = lo + rng.uniform(0.0, scale, shape)
    lo[rng.random(shape) < 0.1] = 0.0
    neg = rng.random(shape) < 0.3
    return Interval(np.where(neg, -hi, lo), np.where(neg, -lo, hi))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), left=st.booleans())
def test_signed_interval_matmul_is_the_exact_product(seed: int, left: bool) -> None:
    """One operand keeps one sign per entry: the sign-split BLAS products equal the per-term
    rule (exact in reals) up to rounding, and contain every product of points in the boxes."""
    import paramverify.bounds.interval as ivmod

    rng = np.random.default_rng(seed)
    scale = 10.0 ** float(rng.integers(-3, 4))
    signed = _one_sign(rng, (3, 4) if left else (4, 2), scale)
    other_lo = rng.standard_normal((4, 2) if left else (3, 4))
    other = Interval(other_lo, other_lo + rng.random(other_lo.shape))
    a, b = (signed, other) if left else (other, signed)
    got = ivmod._interval_interval_signed(a, b)
    assert got is not None
    ref = ivmod._interval_interval_exact(a, b)
    tol = 1e-12 * (np.abs(ref.lo) + np.abs(ref.hi) + 1.0)
    assert np.all(np.abs(got.lo - ref.lo) <= tol) and np.all(np.abs(got.hi - ref.hi) <= tol)
    corners = [(a.lo, b.lo), (a.lo, b.hi), (a.hi, b.lo), (a.hi, b.hi)]
    for x, y in corners + [(rng.uniform(a.lo, a.hi), rng.uniform(b.lo, b.hi)) for _ in range(5)]:
        exact = _exact_dot(x, y)
        for i in range(3):
            for j in range(2):
                assert Fraction(float(got.lo[i, j])) <= exact[i][j] <= Fraction(float(got.hi[i, j]))


def test_interval_matmul_does_not_depend_on_the_batch() -> None:
    """Branch and bound evaluates its boxes in batches of 128 in one process and in chunks of
    16 on Ray workers: a box's enclosure must be the same either way (before, a batch over
    ``EXACT_MATMUL_TERMS`` switched to the looser midpoint-radius product, which also made
    the workers' CROWN pass tighter and its gate keep it on: 3x the work per box)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0.0, 1.0, (128, 784))
    a = Interval(np.clip(x - 0.03, 0.0, 1.0), np.clip(x + 0.03, 0.0, 1.0))  # pixels: non-negative
    w = rng.standard_normal((784, 64)) * 0.05
    b = Interval(w - np.abs(w) / 256, w + np.abs(w) / 256)  # a rounding box of the weights
    whole = imatmul(a, b)
    parts = [imatmul(Interval(a.lo[s : s + 16], a.hi[s : s + 16]), b) for s in range(0, 128, 16)]
    lo, hi = np.concatenate([p.lo for p in parts]), np.concatenate([p.hi for p in parts])
    np.testing.assert_allclose(whole.lo, lo, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(whole.hi, hi, rtol=1e-12, atol=1e-12)
