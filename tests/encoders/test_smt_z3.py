"""z3 engine: exact answers, replayed counterexamples, capability errors, timeouts, brackets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from known_answers import CASES, argmax3, lin1, make_model, mlp, sig231
from netgen import random_mlp
from onnx import helper

from encoders.bisect import scale_of
from encoders.z3_backend import Z3Engine
from paramverify.casestudies import get_case_study
from paramverify.engines import available_engines, get_engine
from paramverify.errors import CapabilityError, SpecError
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
    violates,
)
from paramverify.replay import run_onnxruntime
from paramverify.results import Falsified, Unknown, Verified
from paramverify.specs import AbsoluteDelta, InputRegion, ParamBox

ENGINE = Z3Engine()
BY_NAME = {c.name: c for c in CASES}


def test_registered_and_available() -> None:
    assert "z3" in available_engines()
    e = get_engine("z3")
    assert e.name == "z3" and {"exact", "global", "optimise"} <= e.capabilities


@pytest.mark.parametrize("name", ["lin1-eps-holds", "lin1-eps-fails", "relu221-point-fails", "sig231-margin-fails", "argmax3-point-fails"])
def test_exact_verdicts_and_replayed_counterexamples(name: str) -> None:
    case = BY_NAME[name]
    problem = case.problem()
    r = ENGINE.verify(problem, case.prop, Options())
    assert r.name == case.verdict
    if isinstance(r, Falsified):
        cx = r.counterexample
        assert cx.replayed and problem.box.contains(cx.parameters)
        y0 = run_onnxruntime(problem.graph, cx.input)
        yp = run_onnxruntime(problem.graph, cx.input, cx.parameters)
        assert violates(case.prop, y0, yp, problem.level)[0]


def test_boundary_epsilon_is_exact() -> None:
    """On the exact box W in [1.75, 2.25], b in [0.75, 1.25], |dy| reaches 0.5 exactly:
    OutputBound(0.5) holds, the next float below 0.5 is refuted."""
    g = load_model(lin1())
    nominal = {"W1": g.initializers["W1"], "b1": g.initializers["b1"]}
    box = ParamBox(nominal, {"W1": np.array([[1.75]]), "b1": np.array([0.75])}, {"W1": np.array([[2.25]]), "b1": np.array([1.25])})
    problem = Problem(g, box, InputRegion.box([0.0], [1.0]))
    assert isinstance(ENGINE.verify(problem, OutputBound(0.5), Options()), Verified)
    r = ENGINE.verify(problem, OutputBound(float(np.nextafter(0.5, 0))), Options())
    assert isinstance(r, Falsified)
    # the specs' absolute box is p0 +- delta exactly where float64 computes the ends exactly
    # (2 +- 0.25, 1 +- 0.25 here), so it is the same box and 0.5 holds (issue 11, item 5)
    spec_box = Problem(g, AbsoluteDelta(0.25).to_box(g), InputRegion.box([0.0], [1.0]))
    assert isinstance(ENGINE.verify(spec_box, OutputBound(0.5), Options()), Verified)


def test_sigmoid_output_global_bound_is_a_capability_error() -> None:
    g = load_model(sig231())
    problem = Problem(g, AbsoluteDelta(0.1).to_box(g), InputRegion.box([-1, -1], [1, 1]))
    with pytest.raises(CapabilityError, match="z3 has no exp"):
        ENGINE.verify(problem, OutputBound(0.1), Options())
    with pytest.raises(CapabilityError):
        ENGINE.optimise(problem, MaxEpsilon(), Options())


def test_interior_tanh_is_a_capability_error() -> None:
    g = load_model(random_mlp(0, [2, 3, 1], "tanh"))
    problem = Problem(g, AbsoluteDelta(0.1).to_box(g), InputRegion.point([0.1, 0.2]), level=0.0)
    with pytest.raises(CapabilityError, match="dreal"):
        ENGINE.verify(problem, LabelInvariance(), Options())


def test_final_softmax_labels_use_the_scores_but_margins_need_exp() -> None:
    base = argmax3()
    nodes = list(base.graph.node)
    nodes[-1] = helper.make_node("Softmax", [nodes[-1].input[0]], ["y"], axis=-1)
    inits = {i.name: np.frombuffer(i.raw_data, dtype=np.float32).reshape(tuple(i.dims)) for i in base.graph.initializer}
    g = load_model(make_model(nodes, inits, 2, 3, "argmax3_softmax"))
    point = InputRegion.point([1.0, 0.5])
    ok = Problem(g, AbsoluteDelta(0.2, ("b2",)).to_box(g), point)
    bad = Problem(g, AbsoluteDelta(0.3, ("b2",)).to_box(g), point)
    assert isinstance(ENGINE.verify(ok, LabelInvariance(), Options()), Verified)
    assert isinstance(ENGINE.verify(bad, LabelInvariance(), Options()), Falsified)
    with pytest.raises(CapabilityError):
        ENGINE.verify(ok, MarginLabelInvariance(0.1), Options())


def _hard_problem() -> Problem:
    g = load_model(random_mlp(3, [2, 12, 1]))
    return Problem(g, AbsoluteDelta(0.05).to_box(g), InputRegion.box([-1] * 2, [1] * 2), level=0.0)


def test_query_timeout_gives_unknown() -> None:
    r = ENGINE.verify(_hard_problem(), MarginLabelInvariance(0.5), Options(query_timeout_s=0.02))
    assert isinstance(r, Unknown)
    assert "timed out" in r.reason


def test_spent_deadline_gives_unknown() -> None:
    r = ENGINE.verify(BY_NAME["lin1-eps-holds"].problem(), OutputBound(0.5), Options(timeout_s=0.0))
    assert isinstance(r, Unknown) and "time budget" in r.reason


def test_deadline_returns_valid_incomplete_bracket() -> None:
    case = BY_NAME["relu221-eps-w2"]
    b = ENGINE.optimise(case.problem(), MaxEpsilon(), Options(timeout_s=0.0))
    assert not b.complete and "time budget" in b.note
    assert b.lower <= case.optimum <= b.upper


class _Interrupt:
    def __init__(self, after: int) -> None:
        self.left = after

    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
        self.left -= 1
        if self.left <= 0:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["relu221-eps-w2", "argmax2-minsigma", "relu221-point-maxdelta"])
def test_interrupt_keeps_the_proved_bracket(name: str) -> None:
    case = BY_NAME[name]
    b = ENGINE.optimise(case.problem(), case.objective, Options(progress=_Interrupt(3)))
    assert not b.complete and "interrupted" in b.note
    assert b.lower - 1e-12 <= case.optimum <= b.upper + 1e-12
    assert b.upper - b.lower > 0


def test_brackets_have_witnesses_on_the_witness_side() -> None:
    eps = ENGINE.optimise(BY_NAME["relu221-eps-w2"].problem(), MaxEpsilon(), Options(tolerance=1e-5))
    assert eps.proof_side == "upper" and eps.witness is not None
    w = eps.witness
    assert math.isclose(float(np.max(np.abs(w.perturbed_output - w.nominal_output))), eps.lower, rel_tol=1e-9)
    case = BY_NAME["relu221-point-maxdelta"]
    d = ENGINE.optimise(case.problem(), case.objective, Options(tolerance=1e-5))
    assert d.proof_side == "lower" and d.witness is not None and d.witness.replayed
    assert float(scale_of(case.problem(), d.witness.parameters)) <= d.upper
    assert d.upper - d.lower <= 1e-5


def test_min_sigma_without_flips_is_zero() -> None:
    case = BY_NAME["lin1-label-holds"]
    b = ENGINE.optimise(case.problem(), MinSigma(1), Options())
    assert (b.lower, b.upper) == (0.0, 0.0) and b.complete and "no input" in b.note


def test_max_delta_capped_at_t_max() -> None:
    case = BY_NAME["lin1-maxdelta"]
    b = ENGINE.optimise(case.problem(), MaxDelta(t_max=0.5), Options())
    assert (b.lower, b.upper) == (0.5, 0.5) and b.complete


def test_min_sigma_rejects_unknown_class() -> None:
    with pytest.raises(SpecError):
        ENGINE.optimise(BY_NAME["argmax2-minsigma"].problem(), MinSigma(5), Options())


@pytest.mark.parametrize(
    ("study", "delta", "sigma", "verdict"),
    [("ath-relu", 0.01, 0.3, "verified"), ("ath-relu", 0.1, 0.1, "falsified"), ("ath-linear", 0.01, 0.1, "verified"), ("cat", 0.1, 0.3, "falsified")],
)
def test_case_studies_through_the_logit(study: str, delta: float, sigma: float, verdict: str) -> None:
    cs = get_case_study(study)
    g = load_model(cs.onnx_path)
    lo, hi = cs.domain
    problem = Problem(g, AbsoluteDelta(delta).to_box(g), InputRegion.box(lo, hi), cs.level)
    r = ENGINE.verify(problem, MarginLabelInvariance(sigma), Options(query_timeout_s=60))
    assert r.name == verdict
    assert "logit" in r.method


# ---------------------------------------------------------------------------
# soundness sweep: z3 never contradicts sampling and its counterexamples replay


def _sample_violation(problem: Problem, prop, rng: np.random.Generator) -> bool:
    r = problem.region
    xs = r.lo + (r.hi - r.lo) * rng.random((256, r.size))
    xs = np.vstack([xs, r.lo, r.hi])
    y0 = problem.graph.evaluate(xs)
    for _ in range(64):
        params = {n: np.where(rng.random(problem.box.lo[n].shape) < 0.5, problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names}
        if violates(prop, y0, problem.graph.evaluate(xs, params), problem.level).any():
            return True
    return False


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    delta=st.sampled_from([0.01, 0.05, 0.2]),
    point=st.booleans(),
    prop=st.sampled_from([LabelInvariance(), MarginLabelInvariance(0.3), OutputBound(0.2)]),
    n_out=st.sampled_from([1, 3]),
)
def test_soundness_against_sampling(seed: int, delta: float, point: bool, prop, n_out: int) -> None:
    g = load_model(random_mlp(seed, [2, 3, n_out]))
    rng = np.random.default_rng(seed)
    region = InputRegion.point(rng.uniform(-1, 1, 2)) if point else InputRegion.box([-1, -1], [1, 1])
    problem = Problem(g, AbsoluteDelta(delta).to_box(g), region, level=0.0)
    r = ENGINE.verify(problem, prop, Options(timeout_s=10, query_timeout_s=5))
    if isinstance(r, Verified):
        assert not _sample_violation(problem, prop, rng)
    elif isinstance(r, Falsified):
        cx = r.counterexample
        y0 = run_onnxruntime(g, cx.input)
        yp = run_onnxruntime(g, cx.input, cx.parameters)
        assert violates(prop, y0, yp, problem.level)[0]
    else:
        assert r.reason


def test_mlp_helper_matches_hand_formula() -> None:
    g = load_model(mlp([([[2.0]], [1.0])]))
    assert g.evaluate([3.0])[0, 0] == 7.0


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_max_epsilon_bracket_covers_every_sampled_change(seed: int) -> None:
    """At a point (global brackets are checked by the known answers; z3 needs ~1 s per global query)."""
    g = load_model(random_mlp(seed, [2, 4, 2]))
    rng = np.random.default_rng(seed)
    region = InputRegion.point(rng.uniform(-1, 1, 2))
    problem = Problem(g, AbsoluteDelta(0.05).to_box(g), region)
    b = ENGINE.optimise(problem, MaxEpsilon(), Options(tolerance=1e-4, timeout_s=30, query_timeout_s=10))
    assert b.complete and b.upper - b.lower <= 1e-4
    xs = region.lo + (region.hi - region.lo) * rng.random((200, 2))
    y0 = g.evaluate(xs)
    for _ in range(50):
        params = {n: rng.uniform(problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names}
        assert np.max(np.abs(g.evaluate(xs, params) - y0)) <= b.upper + 1e-12
    w = b.witness
    assert w is not None and problem.box.contains(w.parameters)
    assert float(np.max(np.abs(w.perturbed_output - w.nominal_output))) >= b.lower - 1e-9
