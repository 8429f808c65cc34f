"""BoundsEngine: hand-computed optima, verdicts, brackets, deadlines and sampling soundness."""

from __future__ import annotations

import numpy as np
import pytest
from bounds_helpers import corner_params, linear_1d, relu_221
from netgen import random_mlp

from paramverify.bounds.branch import Probe, branch_and_bound
from paramverify.bounds.engine import BoundsEngine
from paramverify.bounds.sound import point_outputs
from paramverify.engines import get_engine
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import (
    LabelInvariance,
    MarginLabelInvariance,
    MaxDelta,
    MaxEpsilon,
    MinSigma,
    OutputBound,
    Problem,
    label_kept,
    margins,
)
from paramverify.results import Falsified, Verified
from paramverify.specs import AbsoluteDelta, InputRegion

ENGINE = BoundsEngine()


def _problem(model, delta: float, lo, hi=None) -> Problem:
    graph = load_model(model)
    region = InputRegion.point(lo) if hi is None else InputRegion.box(lo, hi)
    return Problem(graph, AbsoluteDelta(delta).to_box(graph), region)


def test_engine_is_registered() -> None:
    engine = get_engine("bounds")
    assert engine.name == "bounds" and "global" in engine.capabilities and BoundsEngine.available()


def test_linear_1d_epsilon_is_delta_times_max_abs_x_plus_one() -> None:
    pr = _problem(linear_1d(0.5, 0.25), 0.125, [-2.0], [3.0])
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-9))
    assert b.lower <= 0.5 <= b.upper and b.gap <= 1e-9 and b.complete
    assert b.proof_side == "upper" and b.witness is not None


def test_relu_221_epsilon_matches_hand_computation() -> None:
    # f = relu(x1) + relu(x2) on [0,1]^2; the largest change is at x = (1, 1):
    # 2 (1 + d)(1 + 3d) + d - 2 = 9 d + 6 d^2
    d = 0.125
    pr = _problem(relu_221([[1, 0], [0, 1]], [0, 0], [1, 1], 0.0), d, [0.0, 0.0], [1.0, 1.0])
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-9))
    expected = 9 * d + 6 * d * d
    assert b.lower <= expected <= b.upper and b.gap <= 1e-9
    assert np.allclose(b.witness.input, [1.0, 1.0])


def test_max_delta_point_hand_computed() -> None:
    # z = w x + b at x0 = 1 with w = 1, b = 0.5; box |dw|, |db| <= 0.25 t: z_min = 1.5 - 0.5 t, flips for t > 3
    pr = _problem(linear_1d(1.0, 0.5, sigmoid=True), 0.25, [1.0])
    b = ENGINE.optimise(pr, MaxDelta(), Options(tolerance=1e-6))
    assert b.lower <= 3.0 <= b.upper and b.gap < 1e-5
    assert b.proof_side == "lower" and b.witness is not None
    yp = pr.graph.evaluate(b.witness.input, b.witness.parameters)
    assert yp[0, 0] < 0.5  # the witness really flips


def test_min_sigma_linear_sigmoid_hand_computed() -> None:
    # z = x (w = 1, b = 0) on [-2, 2], |dw|, |db| <= 0.1: a class-1 point x >= 0 flips iff
    # min_p z = 0.9 x - 0.1 < 0, i.e. x < 1/9; sup margin = sigmoid(1/9) - 0.5
    pr = _problem(linear_1d(1.0, 0.0, sigmoid=True), 0.1, [-2.0], [2.0])
    b = ENGINE.optimise(pr, MinSigma(1), Options(tolerance=1e-6))
    expected = 1 / (1 + np.exp(-1 / 9)) - 0.5
    assert b.lower <= expected <= b.upper and b.gap <= 1e-5
    w = b.witness
    assert not label_kept(pr.graph.evaluate(w.input), pr.graph.evaluate(w.input, w.parameters), 0.5)[0]


def test_verdicts_output_bound_and_labels() -> None:
    pr = _problem(relu_221([[1, 0], [0, 1]], [0, 0], [1, 1], 0.0), 0.125, [0.0, 0.0], [1.0, 1.0])
    assert isinstance(ENGINE.verify(pr, OutputBound(1.25), Options()), Verified)
    v = ENGINE.verify(pr, OutputBound(1.0), Options())
    assert isinstance(v, Falsified) and v.counterexample.replayed
    cs = _problem(linear_1d(1.0, 0.0, sigmoid=True), 0.1, [-2.0], [2.0])
    flip = ENGINE.verify(cs, LabelInvariance(), Options())
    assert isinstance(flip, Falsified) and flip.counterexample.replayed
    assert isinstance(ENGINE.verify(cs, MarginLabelInvariance(0.05), Options()), Verified)
    assert isinstance(ENGINE.verify(cs, MarginLabelInvariance(0.02), Options()), Falsified)


def test_point_label_invariance() -> None:
    pr = _problem(linear_1d(1.0, 0.5, sigmoid=True), 0.25, [1.0])
    assert isinstance(ENGINE.verify(pr, LabelInvariance(), Options()), Verified)
    pr4 = Problem(pr.graph, pr.box.scaled(4.0), pr.region)
    assert isinstance(ENGINE.verify(pr4, LabelInvariance(), Options()), Falsified)


def test_tiny_timeout_returns_valid_incomplete_bracket() -> None:
    graph = load_model(random_mlp(0, [4, 16, 16, 3], "relu"))
    pr = Problem(graph, AbsoluteDelta(0.01).to_box(graph), InputRegion.box(-np.ones(4), np.ones(4)))
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(timeout_s=0.05, tolerance=1e-12))
    assert not b.complete and b.note and b.lower <= b.upper
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (200, 4))
    best = max(float(np.max(np.abs(graph.evaluate(xs, corner_params(pr.box, rng)) - graph.evaluate(xs)))) for _ in range(10))
    assert best <= b.upper


def test_interrupt_keeps_best_bracket() -> None:
    calls = {"n": 0}

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return 1.0 - np.minimum(np.abs(lo - 0.3), np.abs(hi - 0.3))[:, 0] * (~((lo <= 0.3) & (hi >= 0.3)))[:, 0]

    def probe(lo, hi, ub, best):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        c = (lo[:, 0] + hi[:, 0]) / 2
        v = 1.0 - np.abs(c - 0.3)
        i = int(np.argmax(v))
        return Probe(float(v[i]), c[i])

    res = branch_and_bound(bound, probe, np.array([0.0]), np.array([1.0]), Options(tolerance=1e-12), Options().deadline(), batch=1)
    assert res.reason == "interrupted" and not res.complete
    assert res.lower <= 1.0 <= res.upper


@pytest.mark.parametrize("seed", range(4))
def test_sampling_never_beats_a_proved_bound(seed: int) -> None:
    activation = ("relu", "tanh", "sigmoid", "leaky_relu")[seed]
    graph = load_model(random_mlp(seed, [2, 3, 1], activation, sigmoid_output=True))
    lo, hi = np.array([-2.0, -1.0]), np.array([1.0, 2.0])
    pr = Problem(graph, AbsoluteDelta(0.02).to_box(graph), InputRegion.box(lo, hi))
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-6, seed=seed))
    rng = np.random.default_rng(seed)
    best = 0.0
    for i in range(300):
        params = corner_params(pr.box, rng) if i % 2 else pr.box.sample(rng)
        xs = rng.uniform(lo, hi, (20, 2))
        best = max(best, float(np.max(np.abs(graph.evaluate(xs, params) - graph.evaluate(xs)))))
    assert best <= b.upper
    # the witness's own value lies inside the bracket
    w = b.witness
    wv = float(np.max(np.abs(graph.evaluate(w.input, w.parameters) - graph.evaluate(w.input))))
    assert b.lower - 1e-12 <= wv <= b.upper
    # a Verified verdict survives 1,000 sampled (x, p)
    eps = b.upper * 1.001
    assert isinstance(ENGINE.verify(pr, OutputBound(eps), Options(seed=seed)), Verified)
    for i in range(50):
        params = corner_params(pr.box, rng) if i % 2 else pr.box.sample(rng)
        xs = rng.uniform(lo, hi, (20, 2))
        assert np.max(np.abs(graph.evaluate(xs, params) - graph.evaluate(xs))) <= eps


@pytest.mark.parametrize("seed", range(3))
def test_min_sigma_bracket_contains_sampled_flips(seed: int) -> None:
    graph = load_model(random_mlp(seed + 10, [2, 3, 1], "relu", sigmoid_output=True, scale=2.0))
    lo, hi = np.array([-2.0, -2.0]), np.array([2.0, 2.0])
    pr = Problem(graph, AbsoluteDelta(0.05).to_box(graph), InputRegion.box(lo, hi))
    rng = np.random.default_rng(seed)
    xs = rng.uniform(lo, hi, (400, 2))
    y0 = graph.evaluate(xs)
    for cls in (0, 1):
        b = ENGINE.optimise(pr, MinSigma(cls), Options(tolerance=1e-4, seed=seed))
        assert b.lower <= b.upper
        best = 0.0
        for _ in range(100):
            yp = graph.evaluate(xs, corner_params(pr.box, rng))
            flipped = ~label_kept(y0, yp, 0.5) & ((y0[:, 0] >= 0.5) == bool(cls))
            if flipped.any():
                best = max(best, float(margins(y0, 0.5)[flipped].max()))
        assert best <= b.upper
        if b.witness is not None:
            w = b.witness
            out = point_outputs(graph, pr.box, w.input, w.parameters)
            assert out.n.lo[0, 0] - 0.5 >= b.lower - 1e-12 if cls == 1 else 0.5 - out.n.hi[0, 0] >= b.lower - 1e-12


def test_max_delta_box_with_sigma_is_consistent() -> None:
    pr = _problem(linear_1d(1.0, 0.0, sigmoid=True), 0.1, [-2.0], [2.0])
    b = ENGINE.optimise(pr, MaxDelta(sigma=0.05), Options(tolerance=1e-3, timeout_s=20))
    assert b.lower <= b.upper and b.lower > 0
    # labels are provably kept at the lower end, so no sampled flip with margin >= sigma exists there
    box = pr.box.scaled(b.lower)
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, (500, 1))
    y0 = pr.graph.evaluate(xs)
    for _ in range(50):
        yp = pr.graph.evaluate(xs, corner_params(box, rng))
        assert not np.any(~label_kept(y0, yp, 0.5) & (margins(y0, 0.5) >= 0.05))
