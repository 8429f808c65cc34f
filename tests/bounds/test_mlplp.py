"""LP branch and bound with cuts for two-hidden-layer ReLU MLPs at a point (paramverify.bounds.mlplp).

Hand-computed weak duality, Anderson cuts checked at sampled integral points, every bound
against the exact maximum (z3, and the MILP reference of the benchmarks) and against
sampled parameters, on hand-built and torch-exported networks.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from bounds_helpers import sampled_outputs
from netgen import random_mlp
from scipy.optimize import linprog

from paramverify.bounds.engine import BoundsEngine
from paramverify.bounds.firstlayer import cut_first_layer
from paramverify.bounds.local import change_rows, nominal_enclosure
from paramverify.bounds.mlplp import LPSearch, build_milp, safe_upper
from paramverify.engines import get_engine
from paramverify.ir import load_model
from paramverify.options import Deadline, Options
from paramverify.properties import MaxEpsilon, Problem
from paramverify.specs import AbsoluteDelta, InputRegion, QuantizationScheme

_BENCH = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

from ref_milp import max_change  # noqa: E402  (benchmarks/ref_milp.py)


def test_weak_duality_by_hand() -> None:
    # max x + y  s.t.  x + 2y <= 4,  0 <= x <= 3,  0 <= y <= 3: optimum 3 + 0.5 = 3.5 (y = 1: 4 + max(0, 0) ... )
    obj, A, b = np.array([1.0, 1.0]), np.array([[1.0, 2.0]]), np.array([4.0])
    lb, ub = np.zeros(2), np.full(2, 3.0)
    assert safe_upper(obj, A, b, lb, ub, np.array([0.0])) == pytest.approx(6.0) and safe_upper(obj, A, b, lb, ub, np.array([0.0])) >= 6.0
    # y = 1: r = (0, -1): 4 + max(0, 0) + max(0, -3) = 4
    assert safe_upper(obj, A, b, lb, ub, np.array([1.0])) == pytest.approx(4.0)
    # y = 0.5 is the optimal multiplier: r = (0.5, 0): 2 + 1.5 = 3.5
    v = safe_upper(obj, A, b, lb, ub, np.array([0.5]))
    assert v >= 3.5 and v == pytest.approx(3.5)
    # negative or NaN multipliers are clipped to 0 (still a bound)
    assert safe_upper(obj, A, b, lb, ub, np.array([-2.0])) >= 6.0
    assert safe_upper(obj, A, b, lb, ub, np.array([np.nan])) >= 6.0


@pytest.mark.parametrize("seed", range(5))
def test_safe_bound_covers_random_lps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 6, 9
    A, b = rng.standard_normal((m, n)), rng.uniform(0.5, 2.0, m)
    obj = rng.standard_normal(n)
    lb, ub = -rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    res = linprog(-obj, A_ub=A, b_ub=b, bounds=np.stack([lb, ub], 1), method="highs")
    bound = safe_upper(obj, A, b, lb, ub, -res.ineqlin.marginals)
    assert bound >= -res.fun - 1e-12 and bound == pytest.approx(-res.fun, abs=1e-9)
    pts = lb + rng.random((20000, n)) * (ub - lb)
    feas = pts[np.all(pts @ A.T <= b, axis=1)]
    assert feas.size and np.all(feas @ obj <= bound)
    # any multipliers give a bound, however poor
    assert np.all(feas @ obj <= safe_upper(obj, A, b, lb, ub, rng.uniform(0, 3, m)))


def _milp(seed: int, sizes=(5, 7, 6, 3), delta=0.05, row=0):
    graph = load_model(random_mlp(seed, list(sizes)))
    x = np.random.default_rng(seed).uniform(-1, 1, sizes[0])
    problem = Problem(graph, AbsoluteDelta(delta).to_box(graph), InputRegion.point(x))
    cut = cut_first_layer(problem)
    rows = change_rows(nominal_enclosure(problem))
    return problem, cut, rows, build_milp(cut, rows.coefs[row], float(rows.offsets[row]))


@pytest.mark.parametrize("seed", range(4))
def test_anderson_cuts_hold_at_sampled_integral_points(seed: int) -> None:
    _, _, _, m = _milp(seed)
    A, b, lb, ub, uk, zi = m.base()
    nv = A.shape[1]
    rng = np.random.default_rng(seed)
    for _ in range(300):
        h = m.hl + rng.random(m.n1) * (m.hu - m.hl)
        if rng.random() < 0.5:
            h = np.where(rng.random(m.n1) < 0.5, m.hl, m.hu)
        u = m.wu @ h + m.bu
        for k in uk:
            z = 1.0 if u[k] >= 0 else 0.0
            t = rng.random() * max(u[k], 0.0)  # any t in [0, relu(u_k(h))]
            inside = rng.random(m.n1) < 0.5
            row, delta = m.cut(int(k), inside, nv, m.n1 + m.n2 + zi[int(k)])
            v = np.zeros(nv)
            v[: m.n1], v[m.n1 + k], v[m.n1 + m.n2 + zi[int(k)]] = h, t, z
            assert row @ v <= delta + 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_rows_hold_at_achievable_points(seed: int) -> None:
    """Every base row holds where the maximiser can be: t_k = relu(u_k(h)) (c > 0), relu(l_k(h)) (c < 0)."""
    _, _, _, m = _milp(seed)
    A, b, lb, ub, uk, zi = m.base()
    rng = np.random.default_rng(seed + 10)
    for _ in range(500):
        h = m.hl + rng.random(m.n1) * (m.hu - m.hl)
        u, low = m.wu @ h + m.bu, m.wl @ h + m.bl
        t = np.where(m.c > 0, np.maximum(u, 0), np.maximum(low, 0))
        z = (u[uk] >= 0).astype(float)
        v = np.concatenate([h, t, z])
        assert np.all(A @ v <= b + 1e-9)
        assert np.all(lb - 1e-12 <= v) and np.all(v <= ub + 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_encloses_the_exact_maximum(seed: int) -> None:
    problem, cut, rows, _ = _milp(seed, sizes=(4, 6, 5, 2), delta=0.08)
    exact = max_change(problem)  # HiGHS, with a concrete witness
    uppers = []
    for r in range(len(rows)):
        m = build_milp(cut, rows.coefs[r], float(rows.offsets[r]))
        out = LPSearch(m)
        out.run(Deadline(None))
        assert out.done and out.complete
        uppers.append(out.upper)
    assert max(uppers) >= exact.witness - 1e-9
    assert max(uppers) == pytest.approx(exact.optimum, abs=1e-6)  # run to the end: exact up to the LP
    ys = sampled_outputs(problem.graph, problem.box, problem.region.lo[None], np.random.default_rng(1), 3000)
    assert float(np.max(np.abs(ys - problem.graph.evaluate(problem.region.lo)))) <= max(uppers)


def test_resumed_search_never_raises_its_bound() -> None:
    _, _, _, m = _milp(3, sizes=(6, 10, 9, 2), delta=0.1)
    s = LPSearch(m)
    seen = [s.upper]
    import time

    for _ in range(10):
        s.run(Deadline(time.monotonic() + 0.05))
        seen.append(s.upper)
        if s.done:
            break
    assert all(b <= a for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("seed", [0, 1])
def test_engine_agrees_with_z3(seed: int) -> None:
    graph = load_model(random_mlp(seed, [2, 3, 3, 2]))
    problem = Problem(graph, AbsoluteDelta(0.1).to_box(graph), InputRegion.point(np.array([0.5, -0.3])))
    exact = get_engine("z3").optimise(problem, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=60))
    ours = BoundsEngine().optimise(problem, MaxEpsilon(), Options(tolerance=1e-9, timeout_s=10))
    assert "LP branch and bound" in ours.method
    assert ours.lower <= exact.upper + 1e-9 and exact.lower <= ours.upper + 1e-9
    assert ours.gap <= 1e-6


def test_torch_mlp_bits_box_bracket_is_sound(tmp_path) -> None:
    torch.manual_seed(5)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12), torch.nn.ReLU(),
                            torch.nn.Linear(12, 4)).eval()
    path = tmp_path / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.zeros(1, 8), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    graph = load_model(onnx.load(str(path)))
    x = np.random.default_rng(0).uniform(0, 1, 8)
    box = QuantizationScheme(bits=4).to_box(graph)
    problem = Problem(graph, box, InputRegion.point(x))
    b = BoundsEngine().optimise(problem, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=20))
    assert "LP branch and bound" in b.method
    exact = max_change(problem)
    assert b.lower <= exact.witness + 1e-9 <= b.upper + 2e-9
    ys = sampled_outputs(graph, box, x[None], np.random.default_rng(0), 4000)
    assert float(np.max(np.abs(ys - graph.evaluate(x)))) <= b.upper


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epsilon_threshold_verdicts_on_either_side_of_the_exact_maximum(seed: int) -> None:
    from paramverify.properties import OutputBound
    from paramverify.results import Falsified, Verified

    graph = load_model(random_mlp(seed, [5, 8, 7, 2]))
    x = np.random.default_rng(seed).uniform(0, 1, 5)
    problem = Problem(graph, AbsoluteDelta(0.05).to_box(graph), InputRegion.point(x))
    exact = max_change(problem)
    above = BoundsEngine().verify(problem, OutputBound(exact.optimum * 1.01 + 1e-6), Options(timeout_s=20))
    below = BoundsEngine().verify(problem, OutputBound(exact.witness * 0.99), Options(timeout_s=20))
    assert isinstance(above, Verified)
    assert isinstance(below, Falsified)


@pytest.mark.parametrize("seed", range(6))
def test_label_verdicts_agree_with_z3(seed: int) -> None:
    from paramverify.properties import LabelInvariance
    from paramverify.results import Falsified, Unknown, Verified

    graph = load_model(random_mlp(seed, [3, 5, 4, 3]))
    x = np.random.default_rng(seed + 7).uniform(-1, 1, 3)
    problem = Problem(graph, AbsoluteDelta(0.15).to_box(graph), InputRegion.point(x))
    ours = BoundsEngine().verify(problem, LabelInvariance(), Options(timeout_s=20))
    exact = get_engine("z3").verify(problem, LabelInvariance(), Options(timeout_s=60))
    assert not isinstance(ours, Unknown)
    if not isinstance(exact, Unknown):
        assert type(ours) is type(exact)
    if isinstance(ours, Falsified):
        assert ours.counterexample is not None
    assert isinstance(ours, (Verified, Falsified))


def test_ctrl_c_inside_a_split_keeps_the_domain(monkeypatch) -> None:
    """A KeyboardInterrupt while a domain's children are bounded puts the domain back: the bound
    reported after the interrupt is the domain's own, never below the exact maximum."""
    rng = np.random.default_rng(0)
    graph = load_model(random_mlp(11, [20, 24, 24, 1]))
    x = rng.uniform(0, 1, 20)
    problem = Problem(graph, AbsoluteDelta(0.02).to_box(graph), InputRegion.point(x))
    cut = cut_first_layer(problem)
    rows = change_rows(nominal_enclosure(problem))
    exact = max_change(problem)
    interrupted = 0
    for r in range(len(rows)):
        s = LPSearch(build_milp(cut, rows.coefs[r], float(rows.offsets[r])))
        root = -s.heap[0][0]

        def flaky(fix):
            raise KeyboardInterrupt  # the first child of the first split

        monkeypatch.setattr(s, "_solve", flaky)
        s.run(Deadline(None))
        monkeypatch.undo()
        if s.reason != "interrupted":
            continue  # the root needed no split
        interrupted += 1
        assert not s.complete and len(s.heap) == 1  # the domain is back in the queue
        assert s.upper == root
    assert interrupted >= 1
    assert max(LPSearch(build_milp(cut, rows.coefs[r], float(rows.offsets[r]))).upper for r in range(len(rows))) \
        >= exact.witness - 1e-9
