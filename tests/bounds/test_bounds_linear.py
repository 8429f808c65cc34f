"""CROWN with perturbed weights: enclosures of sampled evaluations, rounding, tightness."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from bounds_helpers import (
    batchnorm_mlp,
    make_model,
    sampled_outputs,
    small_conv,
    softmax_mlp,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from netgen import ACTIVATIONS, random_mlp
from onnx import helper

from paramverify.bounds.crown import LinearBounds
from paramverify.bounds.local import SplitSearch, change_rows, nominal_enclosure
from paramverify.bounds.sound import box_outputs
from paramverify.ir import load_model
from paramverify.properties import Problem
from paramverify.specs import (
    AbsoluteDelta,
    InputRegion,
    QuantizationScheme,
    QuantizedCopy,
    quantize,
)


def _output_bounds(lb: LinearBounds) -> tuple[np.ndarray, np.ndarray]:
    """Per sample [N, k]: CROWN lower and upper bounds of every output."""
    k = int(np.prod(lb.y.pshape))
    ub = lb.upper([(lb.y, lb.rows(lb.y, np.concatenate([np.eye(k), -np.eye(k)])))])
    return -ub[k:].T, ub[:k].T


def _check(graph, box, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, n: int = 30) -> None:
    lb = LinearBounds(graph, box, lo[None], hi[None])
    lb.refine()
    low, upp = _output_bounds(lb)
    xs = rng.uniform(lo, hi, (6, lo.size))
    xs[0], xs[-1] = lo, hi
    ys = sampled_outputs(graph, box, xs, rng, n)
    assert np.all(ys >= low - 1e-12) and np.all(ys <= upp + 1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), activation=st.sampled_from(ACTIVATIONS), sigmoid_output=st.booleans(),
       delta=st.sampled_from([1e-3, 0.03, 0.2]), point=st.booleans())
def test_linear_bounds_contain_samples(seed: int, activation: str, sigmoid_output: bool, delta: float, point: bool) -> None:
    graph = load_model(random_mlp(seed, [3, 6, 5, 2], activation, sigmoid_output))
    box = AbsoluteDelta(delta).to_box(graph)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-2, 1, 3)
    hi = lo if point else lo + rng.uniform(0, 1.5, 3)
    _check(graph, box, lo, hi, rng)


@pytest.mark.parametrize("which", ["conv", "softmax", "batchnorm"])
def test_conv_softmax_batchnorm_are_contained(which: str) -> None:
    model, d = {"conv": (small_conv(), 16), "softmax": (softmax_mlp(2), 3), "batchnorm": (batchnorm_mlp(1), 4)}[which]
    graph = load_model(model)
    rng = np.random.default_rng(1)
    for params in (None, tuple(graph.default_parameters())[:2]):
        box = AbsoluteDelta(0.03, params=params).to_box(graph)
        lo = rng.uniform(-1, 0, d)
        _check(graph, box, lo, lo, rng, n=20)
        _check(graph, box, lo, lo + 0.2, rng, n=20)


def test_per_channel_and_per_element_boxes() -> None:
    graph = load_model(random_mlp(5, [4, 8, 3], "relu"))
    rng = np.random.default_rng(5)
    per_channel = AbsoluteDelta({"W1": rng.uniform(0, 0.05, 8), "b1": 0.01, "W2": rng.uniform(0, 0.05, (3, 8))}).to_box(graph)
    quant = QuantizationScheme(4, per_channel=True).to_box(graph)
    for box in (per_channel, quant):
        x = rng.uniform(-1, 1, 4)
        _check(graph, box, x, x, rng)
        _check(graph, box, x - 0.3, x + 0.3, rng)


def test_quantized_copy_is_exact_at_a_point() -> None:
    graph = load_model(random_mlp(2, [3, 8, 8, 2], "tanh"))
    scheme = QuantizationScheme(4)
    values = {n: quantize(graph.initializers[n], scheme)[0].astype(np.float32).astype(np.float64) for n in graph.default_parameters()}
    box = QuantizedCopy(values).to_box(graph)
    x = np.array([0.2, -0.4, 0.9])
    lb = LinearBounds(graph, box, x[None], x[None])
    low, upp = _output_bounds(lb)
    y = graph.evaluate(x, values)
    assert np.all(low <= y) and np.all(y <= upp) and np.max(upp - low) < 1e-12


def test_matmul_rounding_is_covered() -> None:
    """y = 1e16 x1 + x2 - 1e16 x3 at x = (1, 1, 1) is exactly 1; naive float64 gives 0."""
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": [[2.0**53], [1.0], [-(2.0**53)]]}, 3, 1)
    graph = load_model(model)
    x = np.ones(3)
    assert float(graph.evaluate(x)[0, 0]) != 1.0
    box = AbsoluteDelta(0.0).to_box(graph)
    lb = LinearBounds(graph, box, x[None], x[None])
    low, upp = _output_bounds(lb)
    assert Fraction(float(low[0, 0])) <= 1 <= Fraction(float(upp[0, 0]))
    f0 = nominal_enclosure(Problem(graph, box, InputRegion.point(x)))
    assert f0.lo[0] <= 1.0 <= f0.hi[0]


def test_crown_is_much_tighter_than_interval_bounds_on_a_deep_point() -> None:
    graph = load_model(random_mlp(0, [30, 40, 40, 40, 4], "relu"))
    box = AbsoluteDelta(0.002).to_box(graph)
    x = np.random.default_rng(0).uniform(0, 1, 30)
    ibp = box_outputs(graph, box, x[None], x[None]).p
    lb = LinearBounds(graph, box, x[None], x[None])
    lb.refine()
    low, upp = _output_bounds(lb)
    assert np.all(low >= ibp.lo - 1e-12) and np.all(upp <= ibp.hi + 1e-12)
    assert np.max(upp - low) < 0.5 * np.max(ibp.hi - ibp.lo)


def test_stable_relu_network_bound_is_attained() -> None:
    """With every neuron stable the bound is exact: its own maximiser attains it."""
    graph = load_model(random_mlp(3, [5, 6, 6, 1], "relu", scale=0.3))
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 5)
    box = AbsoluteDelta(1e-4).to_box(graph)
    problem = Problem(graph, box, InputRegion.point(x))
    search = SplitSearch(problem, change_rows(nominal_enclosure(problem)))
    t = search.lb.trace
    assert all(np.all((t.lo[a.parents[0].index] >= 0) | (t.hi[a.parents[0].index] <= 0)) for a in search.lb.acts)
    root = search.root_bounds()
    for r in range(2):
        p = search.candidate(r)
        assert box.contains(p)
        value = float(search.rows.coefs[r] @ graph.evaluate(x, p)[0] + search.rows.offsets[r])
        assert value <= root[r] + 1e-12 and root[r] - value < 1e-9


def test_differential_trace_bounds_the_change_over_a_box() -> None:
    graph = load_model(random_mlp(4, [2, 8, 8, 1], "tanh"))
    box = AbsoluteDelta(0.01).to_box(graph)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    lb = LinearBounds(graph, box, lo[None], hi[None], differential=True)
    lb.refine()
    assert lb.y0 is not None
    ones = np.ones((1, 1))
    up_d = lb.upper([(lb.y, lb.rows(lb.y, ones)), (lb.y0, lb.rows(lb.y0, -ones))])[0, 0]
    lo_d = -lb.upper([(lb.y, lb.rows(lb.y, -ones)), (lb.y0, lb.rows(lb.y0, ones))])[0, 0]
    rng = np.random.default_rng(4)
    xs = rng.uniform(lo, hi, (300, 2))
    y0 = graph.evaluate(xs)
    for i in range(20):
        p = box.sample(rng) if i % 2 else {n: np.where(rng.random(box.lo[n].shape) < 0.5, box.lo[n], box.hi[n]) for n in box.names}
        d = graph.evaluate(xs, p) - y0
        assert np.all(d <= up_d + 1e-12) and np.all(d >= lo_d - 1e-12)


def test_tighten_runs_crown_in_groups_of_boxes_with_the_same_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many input boxes go through CROWN in groups (large temporaries are zero-filled memory
    mappings at every call: 128 MNIST boxes at once cost up to 1.9x the CPU time of small
    groups); a box's enclosure is the same in a group as in one call."""
    from paramverify.bounds import sound

    g = load_model(random_mlp(4, [40, 16, 16, 3]))  # largest initializer 640 values
    box = QuantizationScheme(8).to_box(g)
    rng = np.random.default_rng(2)
    c = rng.uniform(-1.0, 1.0, (24, 40))
    lo, hi = c - 0.05, c + 0.05
    calls: list[int] = []
    crown = sound.linear_outputs

    def counted(graph, b, glo, ghi):
        calls.append(len(glo))
        return crown(graph, b, glo, ghi)

    monkeypatch.setattr(sound, "linear_outputs", counted)
    monkeypatch.setattr(sound, "CROWN_GROUP_VALUES", 640 * 10)  # 10 boxes per group
    assert sound.crown_group_rows(g) == 10
    grouped = sound.tight_box_outputs(g, box, lo, hi)
    assert calls == [10, 10, 4]
    monkeypatch.setattr(sound, "CROWN_GROUP_VALUES", 1 << 40)
    whole = sound.tight_box_outputs(g, box, lo, hi)
    assert calls[3:] == [24]
    for a, b in ((grouped.n, whole.n), (grouped.p, whole.p), (grouped.d, whole.d)):
        np.testing.assert_allclose(a.lo, b.lo, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.hi, b.hi, rtol=1e-12, atol=1e-12)
