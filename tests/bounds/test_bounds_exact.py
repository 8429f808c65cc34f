"""Exact decisions at ties and levels (issue 11, item 5).

Outward-rounded enclosures cannot decide a question whose answer sits exactly
on a boundary; the bound engine now decides these by exact rational
evaluation at the point and reports Verified / Falsified (replayed) like z3.
Conventions (docs/index.md): one output is class 1 iff ``f >= l``; a label is
kept when the nominal winner still *strictly* beats every other class.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from bounds_helpers import linear_1d, make_model
from onnx import TensorProto, helper, numpy_helper

from paramverify.bounds.engine import BoundsEngine
from paramverify.bounds.exact import exact_decision, exact_nominal
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import LabelInvariance, MarginLabelInvariance, MaxDelta, MaxEpsilon, OutputBound, Problem
from paramverify.replay import run_onnxruntime
from paramverify.results import Falsified, Unknown, Verified
from paramverify.specs import AbsoluteDelta, InputRegion, ParamBox

ENGINE = BoundsEngine()
OPTS = Options(timeout_s=20.0, tolerance=1e-6)


def _point(model: onnx.ModelProto, delta: float, x0: float, level: float = 0.5) -> Problem:
    g = load_model(model)
    return Problem(g, AbsoluteDelta(delta).to_box(g), InputRegion.point([x0]), level)


def _tie_model() -> onnx.ModelProto:
    """Two identical logits: y = (x, x)."""
    return make_model([helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1)], {"W": [[1.0], [1.0]], "B": [0.0, 0.0]}, 1, 2)


def _sigmoid_at_level() -> onnx.ModelProto:
    """sigmoid(x - 0.5): exactly 0.5 (the level) at x = 0.5."""
    return linear_1d(1.0, -0.5, sigmoid=True)


# ---------------------------------------------------------------- ties of two logits


def test_exact_tie_with_delta_0_is_falsified_and_replayed() -> None:
    v = ENGINE.verify(_point(_tie_model(), 0.0, 0.5), LabelInvariance(), OPTS)
    assert isinstance(v, Falsified) and v.counterexample.replayed
    assert v.counterexample.perturbed_output[0] == v.counterexample.perturbed_output[1]  # the tie itself
    assert "tie" in v.method


def test_exact_tie_flips_for_every_delta_and_max_delta_is_0() -> None:
    pr = _point(_tie_model(), 1.0, 0.5)
    assert isinstance(ENGINE.verify(Problem(pr.graph, pr.box.scaled(0.01), pr.region), LabelInvariance(), OPTS), Falsified)
    b = ENGINE.optimise(pr, MaxDelta(), OPTS)
    assert (b.lower, b.upper) == (0.0, 0.0) and b.complete and b.witness is not None


def test_tie_that_float32_breaks_is_unknown_not_verified() -> None:
    """(1 + 2^-24) + 2^-24 equals 1 + 2^-23 in real arithmetic, but float32 rounds the left side to 1:
    the label is not kept in real arithmetic (exact tie), yet onnxruntime shows a strict win.
    Neither Verified (false in real arithmetic) nor Falsified (no replayed counterexample) is sound."""
    c1, c2 = np.float32(2.0**-24), np.float32(2.0**-23)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c1"], ["a"]), helper.make_node("Add", ["a", "c1"], ["y0"]),
         helper.make_node("Add", ["x", "c2"], ["y1"]), helper.make_node("Concat", ["y0", "y1"], ["y"], axis=1)],
        "float_tie",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.array([c1]), "c1"), numpy_helper.from_array(np.array([c2]), "c2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    pr = _point(model, 0.0, 1.0)
    ort = run_onnxruntime(pr.graph, np.array([1.0]))[0]
    assert ort[1] > ort[0]  # the premise: float32 breaks the tie
    assert exact_nominal(pr) == (0, True)
    v = ENGINE.verify(pr, LabelInvariance(), OPTS)
    assert isinstance(v, Unknown) and "exact" in v.reason


# ---------------------------------------------------------------- one output exactly at the level


@pytest.mark.parametrize("model", [linear_1d(1.0, 0.0), _sigmoid_at_level()], ids=["linear", "sigmoid"])
def test_output_exactly_at_level_is_class_1_and_kept_at_delta_0(model: onnx.ModelProto) -> None:
    pr = _point(model, 0.0, 0.5)
    assert exact_nominal(pr) == (1, False)
    assert isinstance(ENGINE.verify(pr, LabelInvariance(), OPTS), Verified)


@pytest.mark.parametrize("model", [linear_1d(1.0, 0.0), _sigmoid_at_level()], ids=["linear", "sigmoid"])
def test_output_exactly_at_level_flips_for_a_tiny_delta(model: onnx.ModelProto) -> None:
    pr = _point(model, 0.001, 0.5)
    v = ENGINE.verify(pr, LabelInvariance(), OPTS)
    assert isinstance(v, Falsified) and v.counterexample.replayed
    ce = v.counterexample
    assert ce.parameters["W"].item() < 1.0 and ce.perturbed_output[0] < 0.5  # e.g. W = 0.999
    assert pr.box.contains(ce.parameters)


def test_max_delta_at_the_level_is_0_with_a_witness() -> None:
    pr = _point(linear_1d(1.0, 0.0), 1.0, 0.5)
    b = ENGINE.optimise(pr, MaxDelta(), OPTS)
    assert b.lower == 0.0 and b.upper <= OPTS.tolerance and b.complete
    assert b.witness is not None
    yp = pr.graph.evaluate(b.witness.input, b.witness.parameters)
    assert yp[0, 0] < 0.5  # the witness really flips


# ---------------------------------------------------------------- output bound met with equality


def test_epsilon_equal_to_the_true_maximum_is_verified() -> None:
    # y = W x + B at x = 0.5, |dW|, |dB| <= 0.25: the largest change is 0.25 * 0.5 + 0.25 = 0.375 exactly
    pr = _point(linear_1d(1.0, 0.0), 0.25, 0.5)
    assert isinstance(ENGINE.verify(pr, OutputBound(0.375), OPTS), Verified)
    below = ENGINE.verify(pr, OutputBound(0.37), OPTS)
    assert isinstance(below, Falsified) and below.counterexample.replayed


def test_epsilon_0_with_delta_0_is_verified() -> None:
    pr = _point(linear_1d(0.7, 0.1), 0.0, 0.3)
    assert isinstance(ENGINE.verify(pr, OutputBound(0.0), OPTS), Verified)


def test_exact_decision_is_sound_on_the_box() -> None:
    """True only where no parameter of the box violates: a margin sigma at the level is vacuous."""
    pr = _point(linear_1d(1.0, 0.0), 0.25, 0.5)
    assert exact_decision(pr, OutputBound(0.375)) is True
    assert exact_decision(pr, OutputBound(0.37)) is None  # violated, but not decided on a non-degenerate box
    assert exact_decision(pr, LabelInvariance()) is None
    assert exact_decision(pr, MarginLabelInvariance(0.01)) is True
    assert exact_decision(_point(_tie_model(), 0.0, 0.5), LabelInvariance()) is False


def test_absolute_box_is_exact_where_float64_is_exact() -> None:
    """The box is p0 +- delta in real arithmetic: kept exact where float64 computes it exactly,
    widened by one ulp where it does not (so it still covers the real-number box)."""
    g = load_model(linear_1d(1.0, 0.0))
    box = AbsoluteDelta(0.25).to_box(g)
    assert box.hi["W"].item() == 1.25 and box.lo["W"].item() == 0.75 and box.lo["B"].item() == -0.25
    box = AbsoluteDelta(0.1).to_box(g)
    assert box.hi["W"].item() > 1.0 + 0.1 and box.lo["W"].item() < 1.0 - 0.1


# ---------------------------------------------------------------- boxes of width 0


def _fixed_copy(model: onnx.ModelProto, values: dict[str, float], x0: float) -> Problem:
    """A box of width 0 away from the nominal parameters (a fixed quantized copy, say)."""
    g = load_model(model)
    fixed = {n: np.full(g.initializers[n].shape, v) for n, v in values.items()}
    box = ParamBox({n: g.initializers[n] for n in values}, fixed, fixed, "fixed copy")
    return Problem(g, box, InputRegion.point([x0]))


def test_fixed_copy_exactly_at_level_is_verified_exactly() -> None:
    # nominal 1 * 0.5 + 0 = 0.5 and the copy 1.5 * 0.5 - 0.25 = 0.5: both exactly at the level, class 1 kept
    pr = _fixed_copy(linear_1d(1.0, 0.0), {"W": 1.5, "B": -0.25}, 0.5)
    v = ENGINE.verify(pr, LabelInvariance(), OPTS)
    assert isinstance(v, Verified) and "exact" in v.method
    eps = ENGINE.verify(pr, OutputBound(0.0), OPTS)  # the change is exactly 0
    assert isinstance(eps, Verified) and "exact" in eps.method


def test_fixed_copy_just_below_level_is_falsified_exactly() -> None:
    pr = _fixed_copy(linear_1d(1.0, 0.0), {"W": 1.5, "B": -0.25 - 2.0**-20}, 0.5)
    assert exact_decision(pr, LabelInvariance()) is False
    v = ENGINE.verify(pr, LabelInvariance(), OPTS)
    assert isinstance(v, Falsified) and v.counterexample.replayed


def test_nominal_box_over_a_region_changes_nothing() -> None:
    g = load_model(linear_1d(0.7, 0.1))
    pr = Problem(g, AbsoluteDelta(0.0).to_box(g), InputRegion.box([-1.0], [1.0]))
    assert isinstance(ENGINE.verify(pr, OutputBound(0.0), OPTS), Verified)
    assert isinstance(ENGINE.verify(pr, LabelInvariance(), OPTS), Verified)  # one output: same side of l
    b = ENGINE.optimise(pr, MaxEpsilon(), OPTS)
    assert (b.lower, b.upper) == (0.0, 0.0) and b.complete and b.witness is not None


def test_nominal_box_with_ties_in_the_region_is_not_verified() -> None:
    """k classes: a tie anywhere in the region breaks 'strictly wins' even at p0."""
    g = load_model(_tie_model())
    pr = Problem(g, AbsoluteDelta(0.0).to_box(g), InputRegion.box([-1.0], [1.0]))
    assert not isinstance(ENGINE.verify(pr, LabelInvariance(), Options(timeout_s=1.0)), Verified)


def test_tie_at_nominal_but_a_fixed_copy_that_breaks_it_is_verified() -> None:
    """The tie only refutes when p0 is in the box: a copy where class 0 strictly wins keeps the label."""
    g = load_model(_tie_model())
    fixed = {"W": np.array([[1.0], [1.0]]), "B": np.array([0.25, 0.0])}
    pr = Problem(g, ParamBox({n: g.initializers[n] for n in fixed}, fixed, fixed, "fixed copy"), InputRegion.point([0.5]))
    assert isinstance(ENGINE.verify(pr, LabelInvariance(), OPTS), Verified)
    fixed = {"W": np.array([[1.0], [1.0]]), "B": np.array([0.0, 0.25])}
    pr = Problem(g, ParamBox({n: g.initializers[n] for n in fixed}, fixed, fixed, "fixed copy"), InputRegion.point([0.5]))
    v = ENGINE.verify(pr, LabelInvariance(), OPTS)
    assert isinstance(v, Falsified) and v.counterexample.replayed


def test_level_kept_for_every_parameter_is_verified_exactly() -> None:
    """y = W * 0 + 0.5 is exactly at the level for every W: the label (class 1) is kept."""
    g = load_model(linear_1d(1.0, 0.5))
    pr = Problem(g, AbsoluteDelta(0.5, params=("W",)).to_box(g), InputRegion.point([0.0]))
    v = ENGINE.verify(pr, LabelInvariance(), OPTS)
    assert isinstance(v, Verified) and "exact" in v.method
