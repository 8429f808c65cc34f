"""A fixed fast subset of the soundness corpus (``benchmarks/bench_soundness.py`` runs >= 1,000).

The extreme-scale tier (``benchmarks/soundness_extreme.py``, ``bench_soundness.py --tier extreme``)
runs 40 of its networks here: inputs, boxes and weights up to 1e6, pre-activations up to 1e8,
every kernel against a 50-digit reference.

Every proved bound of the bound engine on 32 random small networks is
checked against z3's exact answers, against sampling (re-evaluated in exact
rational arithmetic) and against the bracket's own witness; z3's proofs are
checked the same way.  Zero violations are required.  The checker itself is
tested too: a deliberately wrong bound must be caught.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

_BENCH = str(Path(__file__).resolve().parents[1] / "benchmarks")
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

import bench_soundness as bs  # benchmarks/bench_soundness.py
import soundness_extreme as sx  # benchmarks/soundness_extreme.py
from onnx import TensorProto, helper, numpy_helper

from paramverify.ir import Graph, load_model
from paramverify.results import Bracket

SEEDS = range(32)
CFG = bs.CorpusConfig(bounds_timeout_s=0.1, z3_timeout_s=0.2, tolerance=1e-3, param_samples=16,
                      input_samples=8, z3_optimise_every=0, max_exact_rechecks=6)


@pytest.fixture(scope="module")
def reports() -> list[dict]:
    return bs.run_corpus(SEEDS, CFG, jobs=2, verbose=False)


def test_no_soundness_violations(reports: list[dict]) -> None:
    found = [v for r in reports for v in r["violations"]]
    assert found == [], "\n".join(found)


def test_no_crashes(reports: list[dict]) -> None:
    errors = [f"seed {r['seed']}: {e}" for r in reports for e in r["errors"]]
    assert errors == [], "\n".join(errors)


def test_the_subset_exercises_every_check(reports: list[dict]) -> None:
    c = bs.summarise(reports)["counts"]
    assert c.get("eps_brackets", 0) >= 15
    assert c.get("eps_witness_checked", 0) >= 15
    assert c.get("z3_eps_at_upper_V", 0) >= 8  # z3 independently proves the bound engine's upper ends
    assert c.get("z3_optimum_inside_bracket", 0) >= 4
    assert c.get("label_VV", 0) + c.get("label_FF", 0) >= 12  # both engines definite and agreeing
    assert c.get("sigma_brackets", 0) >= 6
    assert c.get("delta_brackets", 0) == 11  # every third seed
    assert c.get("samples", 0) >= 3000


def test_exact_evaluator_matches_float64() -> None:
    for seed in range(6):
        case = bs.make_case(seed)
        g, _ = bs.build(case)
        ex = bs.ExactNet(g)  # re-exported from benchmarks/soundness_exact.py
        x = (case.lo + case.hi) / 2
        y = g.evaluate(x)[0]
        head = [float(v) for v in ex.head(x)]
        if ex.sigmoid:
            head = [1 / (1 + np.exp(-v)) for v in head]
        np.testing.assert_allclose(head, y, rtol=1e-12, atol=1e-12)


def _line(w: float, b: float) -> Graph:
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1)], "line",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(np.array([[w]], np.float32), "W"), numpy_helper.from_array(np.array([b], np.float32), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return load_model(model)


def test_exact_change_and_flip_by_hand() -> None:
    # y = 2 x: w 2 -> 3 at x = 0.5 moves y by exactly 1/2; w -> -1 flips the label at x = 0.3 (0.6 -> -0.3)
    ex = bs.ExactNet(_line(2.0, 0.0))
    params = {"W": np.array([[3.0]]), "B": np.array([0.0])}
    assert ex.head([0.5], params) == [Fraction(3, 2)]
    assert ex.change([0.5], params) == Fraction(1, 2)
    assert ex.flips([0.3], {"W": np.array([[-1.0]]), "B": np.array([0.0])}, 0.5)
    assert not ex.flips([0.3], params, 0.5)
    assert ex.margin([0.3], 0.5) == pytest.approx(0.1)


def test_cases_are_deterministic_and_varied() -> None:
    a, b = bs.make_case(17), bs.make_case(17)
    assert a.describe() == b.describe() and np.array_equal(a.lo, b.lo)
    cases = [bs.make_case(s) for s in range(200)]
    assert {c.activation for c in cases} == {"relu", "linear", "leaky_relu"}
    assert {len(c.sizes) for c in cases} == {3, 4}
    assert {c.sizes[-1] for c in cases} == {1, 2, 3}
    assert any(c.sigmoid_output for c in cases) and not all(c.sigmoid_output for c in cases)
    assert any(c.point for c in cases) and not all(c.point for c in cases)
    assert any(c.params is None for c in cases) and any(c.params for c in cases)


def test_the_checker_catches_a_wrong_upper_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    real_bound = bs.api.bound

    def halved(problem, kind, **kw):
        b = real_bound(problem, kind, **kw)
        if kind != "eps" or kw.get("backend") != "bounds":
            return b
        return Bracket(b.quantity, 0.0, b.lower / 2, b.time_s, "planted bug", "upper")

    monkeypatch.setattr(bs.api, "bound", halved)
    seed = next(s for s in range(100) if not bs.make_case(s).sigmoid_output and bs.make_case(s).point)
    rep = bs.check_case(seed, CFG)
    assert any("exceeds the proved upper bound" in v or "refutes the proved upper bound" in v for v in rep.violations)


# ---------------------------------------------------------------------------
# the extreme-scale tier (benchmarks/soundness_extreme.py): magnitudes up to 1e6 / 1e8

EXTREME_SEEDS = range(40)
# label verdicts get a longer wall-clock budget than the eps brackets: a decided query returns at once,
# and the coverage check below (>= 5 verified, >= 5 falsified) then holds on a loaded machine too
XCFG = bs.CorpusConfig(bounds_timeout_s=0.15, label_timeout_s=0.6, tolerance=1e-4, input_samples=6)


@pytest.fixture(scope="module")
def extreme_reports() -> list[dict]:
    return bs.run_corpus(EXTREME_SEEDS, XCFG, jobs=2, verbose=False, fn=sx.run_one)


def test_extreme_tier_has_no_violations_or_crashes(extreme_reports: list[dict]) -> None:
    found = [v for r in extreme_reports for v in r["violations"]]
    found += [f"seed {r['seed']}: {e}" for r in extreme_reports for e in r["errors"]]
    assert found == [], "\n".join(found)


def test_extreme_tier_reaches_every_magnitude_and_kernel(extreme_reports: list[dict]) -> None:
    c = bs.summarise(extreme_reports)["counts"]
    for act in sx.ACTIVATIONS:
        assert c.get(f"cases_{act}", 0) >= 8
    for key in ("head_identity", "head_sigmoid", "head_softmax", "skip", "bias_dead", "bias_on", "bias_centre",
                "regime_wide_inputs", "regime_huge_weights", "regime_huge_preact"):
        assert c.get(key, 0) >= 2, key
    # weights up to 1e6, inputs up to 1e6 (boxes as wide), pre-activations up to 1e8
    assert c.get("weights_max_ge_1e5", 0) + c.get("weights_max_ge_1e6", 0) >= 5
    assert c.get("inputs_max_ge_1e5", 0) >= 5
    assert c.get("preacts_max_ge_1e7", 0) + c.get("preacts_max_ge_1e8", 0) >= 5
    for kernel in ("kernel_interval_kernel", "kernel_differential_kernel", "kernel_differential_CROWN"):
        assert c.get(kernel, 0) == len(EXTREME_SEEDS), kernel
    assert c.get("kernel_point", 0) >= len(EXTREME_SEEDS)
    assert c.get("label_V", 0) >= 5 and c.get("label_F", 0) >= 5
    assert c.get("eps_witness_checked", 0) >= 30 and c.get("delta_brackets", 0) == 10
    assert c.get("enclosure_checks", 0) >= 20_000


def test_extreme_reference_matches_float64() -> None:
    for seed in range(8):
        case = sx.make_xcase(seed)
        g, _ = sx.build(case)
        x = (case.lo + case.hi) / 2
        ref = [float(v) for v in sx.MpNet(case).outputs(x)]
        np.testing.assert_allclose(ref, g.evaluate(x)[0], rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(ref)))))


def test_extreme_checker_catches_the_old_clipped_relaxation(monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 11: sigmoid/tanh lines built on the interval clipped to +-1e6 are wrong outside it
    import paramverify.bounds.backward as backward

    real = backward.sigmoidal_relaxation
    monkeypatch.setattr(backward, "sigmoidal_relaxation",
                        lambda fn, l, u: real(fn, np.maximum(l, -1e6), np.minimum(u, 1e6)))
    rep = sx.check_xcase(62, XCFG)
    assert rep.violations, "the planted clipping bug went unnoticed"
    monkeypatch.undo()
    assert sx.check_xcase(62, XCFG).violations == []
