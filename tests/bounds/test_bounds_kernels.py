"""DiffKernel and IntervalKernel contain every sampled evaluation; autodiff gradients are right."""

from __future__ import annotations

import numpy as np
import pytest
from bounds_helpers import corner_params, small_conv, softmax_mlp
from hypothesis import given, settings
from hypothesis import strategies as st
from netgen import ACTIVATIONS, random_mlp
from scipy.special import expit

from paramverify.bounds.differential import (
    DiffKernel,
    DiffValue,
    _diff_matmul,
    _diff_mul,
    diff_parameters,
    sigmoidal_difference,
)
from paramverify.bounds.falsify import evaluate, output_change
from paramverify.bounds.interval import Interval, IntervalKernel
from paramverify.bounds.sound import box_outputs
from paramverify.ir import load_model
from paramverify.specs import AbsoluteDelta


def _check_containment(graph, box, lo, hi, rng, n_samples: int = 40) -> None:
    out = box_outputs(graph, box, lo[None], hi[None])
    iv = graph.run(IntervalKernel(), Interval(graph.as_batch(lo), graph.as_batch(hi)),
                   {n: Interval(box.lo[n], box.hi[n]) for n in box.names})
    iv_lo, iv_hi = iv.lo.reshape(1, -1), iv.hi.reshape(1, -1)
    slack = 1e-12
    for i in range(n_samples):
        params = corner_params(box, rng) if i % 2 else box.sample(rng)
        xs = rng.uniform(lo, hi, size=(8, lo.size))
        if i == 0:
            xs[0] = lo
            xs[1] = hi
        y0 = graph.evaluate(xs)
        yp = graph.evaluate(xs, params)
        assert np.all(out.n.lo - slack <= y0) and np.all(y0 <= out.n.hi + slack)
        assert np.all(out.p.lo - slack <= yp) and np.all(yp <= out.p.hi + slack)
        assert np.all(out.d.lo - slack <= yp - y0) and np.all(yp - y0 <= out.d.hi + slack)
        assert np.all(iv_lo - slack <= yp) and np.all(yp <= iv_hi + slack)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    activation=st.sampled_from(ACTIVATIONS),
    sigmoid_output=st.booleans(),
    k=st.sampled_from([1, 3]),
    delta=st.sampled_from([0.001, 0.05, 0.3]),
)
def test_kernels_contain_samples(seed: int, activation: str, sigmoid_output: bool, k: int, delta: float) -> None:
    graph = load_model(random_mlp(seed, [3, 5, 4, k], activation, sigmoid_output))
    box = AbsoluteDelta(delta).to_box(graph)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-2, 1, 3)
    hi = lo + rng.uniform(0, 2, 3)
    _check_containment(graph, box, lo, hi, rng)


def test_conv_and_softmax_models_are_contained() -> None:
    rng = np.random.default_rng(0)
    for model, d in ((small_conv(), 16), (softmax_mlp(), 3)):
        graph = load_model(model)
        box = AbsoluteDelta(0.02).to_box(graph)
        lo = rng.uniform(-1, 0, d)
        _check_containment(graph, box, lo, lo + 0.3, rng, n_samples=15)


def test_differential_never_looser_and_usually_much_tighter() -> None:
    ratios = []
    for seed in range(6):
        graph = load_model(random_mlp(seed, [2, 6, 1], "relu", sigmoid_output=True))
        box = AbsoluteDelta(0.01).to_box(graph)
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
        out = box_outputs(graph, box, lo[None], hi[None])
        sep = graph.run(IntervalKernel(), Interval(lo[None], hi[None]), {n: Interval(box.lo[n], box.hi[n]) for n in box.names})
        nom = graph.run(IntervalKernel(), Interval(lo[None], hi[None]))
        sep_lo, sep_hi = sep.lo - nom.hi, sep.hi - nom.lo
        assert np.all(out.d.lo >= sep_lo) and np.all(out.d.hi <= sep_hi)
        ratios.append(float(np.max(out.d.hi - out.d.lo) / np.max(sep_hi - sep_lo)))
    assert np.median(ratios) < 0.5


def test_point_bound_is_exact_for_one_hidden_layer() -> None:
    """At a fixed input, the per-neuron parameters are independent, so the bound is attained at a corner."""
    graph = load_model(random_mlp(4, [2, 3, 1], "relu", sigmoid_output=True))
    box = AbsoluteDelta(0.05).to_box(graph)
    x = np.array([0.4, -0.7])
    out = box_outputs(graph, box, x[None], x[None])
    best = -np.inf
    rng = np.random.default_rng(0)
    for _ in range(4000):
        p = corner_params(box, rng)
        best = max(best, float((graph.evaluate(x, p) - graph.evaluate(x))[0, 0]))
    assert best <= out.d.hi[0, 0] + 1e-12
    assert out.d.hi[0, 0] - best < 1e-3 * out.d.hi[0, 0]


@pytest.mark.parametrize("fn,lip", [(expit, 0.25), (np.tanh, 1.0)])
def test_sigmoidal_difference_matches_brute_force(fn, lip: float) -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        zl = rng.uniform(-4, 4)
        zh = zl + rng.uniform(0, 3)
        dl = rng.uniform(-1, 1)
        dh = dl + rng.uniform(0, 1)
        iv = sigmoidal_difference(fn, lip, Interval(np.array([zl]), np.array([zh])), Interval(np.array([dl]), np.array([dh])))
        z, dd = np.meshgrid(np.linspace(zl, zh, 301), np.linspace(dl, dh, 51))
        vals = fn(z + dd) - fn(z)
        assert iv.lo[0] <= vals.min() + 1e-15 and vals.max() <= iv.hi[0] + 1e-15
        assert vals.max() > iv.hi[0] - 1e-3 and vals.min() < iv.lo[0] + 1e-3  # tight (grid resolution)


def test_relu_difference_rule() -> None:
    k = DiffKernel()
    n = Interval(np.array([-1.0, 2.0, -3.0]), np.array([1.0, 3.0, -2.0]))
    d = Interval(np.array([-0.5, -0.5, -0.5]), np.array([0.5, 0.5, 0.5]))
    p = Interval(n.lo + d.lo, n.hi + d.hi)
    out = k.relu(DiffValue(n, p, d))
    assert out.d.lo[1] == -0.5 and out.d.hi[1] == 0.5  # active: d passes through
    assert out.d.lo[2] == 0.0 and out.d.hi[2] == 0.0  # dead on both sides
    assert out.d.lo[0] == -0.5 and out.d.hi[0] == 0.5


@pytest.mark.parametrize("which", ["mlp", "conv", "softmax"])
def test_autodiff_gradients_match_finite_differences(which: str) -> None:
    model = {"mlp": random_mlp(3, [3, 4, 2], "tanh", True), "conv": small_conv(), "softmax": softmax_mlp(1)}[which]
    graph = load_model(model)
    box = AbsoluteDelta(0.1).to_box(graph)
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, graph.input_size)
    params = box.sample(rng)
    obj = output_change(1, 1.0)
    _, xv, pv, _ = evaluate(graph, box, x, params, obj)
    h = 1e-6
    for i in rng.choice(graph.input_size, 3, replace=False):
        e = np.zeros_like(x)
        e[i] = h
        fd = (evaluate(graph, box, x + e, params, obj)[0] - evaluate(graph, box, x - e, params, obj)[0]) / (2 * h)
        assert abs(np.asarray(xv.grad).reshape(-1)[i] - fd) < 1e-5
    name = box.names[0]
    idx = tuple(int(rng.integers(s)) for s in params[name].shape)
    plus = {n: v.copy() for n, v in params.items()}
    minus = {n: v.copy() for n, v in params.items()}
    plus[name][idx] += h
    minus[name][idx] -= h
    fd = (evaluate(graph, box, x, plus, obj)[0] - evaluate(graph, box, x, minus, obj)[0]) / (2 * h)
    assert abs(pv[name].grad[idx] - fd) < 1e-5


def test_parameters_outside_the_box_stay_constant() -> None:
    graph = load_model(random_mlp(0, [2, 3, 1]))
    box = AbsoluteDelta(0.1, params=("W2",)).to_box(graph)
    vals = diff_parameters(box)
    assert set(vals) == {"W2"}
    x = np.array([[0.1, 0.2]])
    out = box_outputs(graph, box, x, x)
    y = graph.evaluate(x)
    assert out.n.lo[0, 0] <= y[0, 0] <= out.n.hi[0, 0]


def _weights(rng: np.random.Generator, shape: tuple[int, ...], symmetric: bool) -> tuple[np.ndarray, Interval, DiffValue, DiffValue]:
    """Trained weights, their box, and two DiffValues of them: a point (the two-vertex rule) and a
    one-ulp interval (the general four-vertex rule)."""
    w = rng.normal(size=shape)
    r = rng.uniform(0, 0.1, shape)
    dw = Interval(-r, r) if symmetric else Interval(-2 * r, r)
    point = DiffValue(Interval(w, w, point=True), Interval(w + dw.lo, w + dw.hi), dw)
    return w, dw, point, DiffValue(Interval(w, np.nextafter(w, np.inf)), point.p, dw)


def _activations(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[Interval, Interval, DiffValue]:
    xn = rng.normal(size=shape)
    x = Interval(xn, xn + rng.uniform(0, 0.5, shape))
    dlo = rng.normal(scale=0.1, size=shape)
    dx = Interval(dlo, dlo + rng.uniform(0, 0.2, shape))
    return x, dx, DiffValue(x, Interval(x.lo + dx.lo, x.hi + dx.hi), dx)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), stack=st.sampled_from([1, 3, 2000]), symmetric=st.booleans(),
       form=st.sampled_from(["gemm", "conv", "mul"]))
def test_product_difference_with_trained_weights_is_the_exact_vertex_range(seed: int, stack: int, symmetric: bool, form: str) -> None:
    """``x W`` (a Gemm: W on the right, ``stack`` rows of x), ``W @ patches`` (a convolution: W
    on the left, a stack of ``stack`` samples' patches) or ``x * w`` (elementwise), W a point
    with its box: the two-vertex rule gives the range of the general four-vertex rule (to
    rounding) and contains every sampled ``(x + dx)(W + dW) - x W``, ends of the boxes
    included; 2,000 rows or samples span several chunks."""
    rng = np.random.default_rng(seed)
    if form == "conv":
        w, dw, w_point, w_wide = _weights(rng, (3, 5), symmetric)
        x, dx, xv = _activations(rng, (stack, 5, 6))
        fast, general = _diff_matmul(w_point, xv), _diff_matmul(w_wide, xv)
        assert fast.lo.shape == (stack, 3, 6)
    elif form == "gemm":
        w, dw, w_point, w_wide = _weights(rng, (5, 4), symmetric)
        x, dx, xv = _activations(rng, (stack, 5))
        fast, general = _diff_matmul(xv, w_point), _diff_matmul(xv, w_wide)
    else:
        w, dw, w_point, w_wide = _weights(rng, (5,), symmetric)
        x, dx, xv = _activations(rng, (stack, 5))
        fast, general = _diff_mul(xv, w_point), _diff_mul(w_wide, xv)  # the general rule, operands swapped
    assert np.allclose(fast.lo, general.lo, rtol=1e-9, atol=1e-9) and np.allclose(fast.hi, general.hi, rtol=1e-9, atol=1e-9)
    for i in range(40):
        pick = (lambda iv: np.where(rng.random(iv.lo.shape) < 0.5, iv.lo, iv.hi)) if i % 2 else (lambda iv: rng.uniform(iv.lo, iv.hi))
        e, xs, d = pick(dw), pick(x), pick(dx)
        if form == "conv":
            diff = (w + e) @ (xs + d) - w @ xs
        elif form == "gemm":
            diff = (xs + d) @ (w + e) - xs @ w
        else:
            diff = (xs + d) * (w + e) - xs * w
        assert np.all(fast.lo <= diff + 1e-12) and np.all(diff <= fast.hi + 1e-12)
