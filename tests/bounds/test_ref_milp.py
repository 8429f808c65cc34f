"""The MILP reference of the benchmark tables (benchmarks/ref_milp.py) against z3's exact answer and our bracket."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from bounds_helpers import sampled_outputs
from netgen import random_mlp

from paramverify.bounds.engine import BoundsEngine
from paramverify.engines import get_engine
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import MaxEpsilon, Problem
from paramverify.specs import AbsoluteDelta, InputRegion, QuantizationScheme

_BENCH = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

from ref_milp import max_change  # noqa: E402  (benchmarks/ref_milp.py)


@pytest.mark.parametrize("seed", [0, 1])
def test_milp_maximum_equals_z3_and_lies_in_our_bracket(seed: int) -> None:
    graph = load_model(random_mlp(seed, [2, 3, 3, 2]))
    problem = Problem(graph, AbsoluteDelta(0.1).to_box(graph), InputRegion.point(np.array([0.5, -0.3])))
    m = max_change(problem)
    exact = get_engine("z3").optimise(problem, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=60))
    ours = BoundsEngine().optimise(problem, MaxEpsilon(), Options(tolerance=1e-9, timeout_s=10))
    assert m.solved
    assert m.witness == pytest.approx(m.optimum, abs=1e-7)  # the maximiser is reached by concrete parameters
    assert exact.lower - 1e-6 <= m.witness <= exact.upper + 1e-6
    assert ours.lower - 1e-6 <= m.witness <= ours.upper + 1e-9


def test_milp_witness_is_never_beaten_by_samples_on_a_wider_net() -> None:
    graph = load_model(random_mlp(4, [6, 12, 10, 3]))
    x = np.random.default_rng(4).uniform(0, 1, 6)
    box = QuantizationScheme(bits=4).to_box(graph)
    problem = Problem(graph, box, InputRegion.point(x))
    m = max_change(problem)
    ys = sampled_outputs(graph, box, x[None], np.random.default_rng(0), 3000)
    sampled = float(np.max(np.abs(ys - graph.evaluate(x))))
    assert m.solved and sampled <= m.witness + 1e-9
    assert m.witness == pytest.approx(m.optimum, rel=1e-6)
    ours = BoundsEngine().optimise(problem, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=10))
    assert m.witness <= ours.upper + 1e-9


def test_other_structures_are_refused() -> None:
    graph = load_model(random_mlp(0, [2, 3, 3, 3, 2]))  # three hidden layers
    problem = Problem(graph, AbsoluteDelta(0.1).to_box(graph), InputRegion.point(np.array([0.5, -0.3])))
    with pytest.raises(ValueError, match="expected Gemm, Relu, Gemm"):
        max_change(problem)
