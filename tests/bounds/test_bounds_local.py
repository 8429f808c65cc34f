"""Point regions: neuron-split branch and bound, exact answers from z3, verdicts, quantized copies."""

from __future__ import annotations

import numpy as np
import pytest
from bounds_helpers import corner_params, sampled_outputs
from netgen import random_mlp

from paramverify.bounds.engine import BoundsEngine
from paramverify.bounds.local import (
    SplitSearch,
    change_rows,
    label_rows,
    nominal_enclosure,
)
from paramverify.engines import get_engine
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import (
    LabelInvariance,
    MaxDelta,
    MaxEpsilon,
    OutputBound,
    Problem,
    label_kept,
)
from paramverify.results import Falsified, Unknown, Verified
from paramverify.specs import (
    AbsoluteDelta,
    InputRegion,
    QuantizationScheme,
    QuantizedCopy,
    quantize,
)

ENGINE = BoundsEngine()


def _point(seed: int, sizes: list[int], delta: float, activation: str = "relu", x: np.ndarray | None = None) -> Problem:
    graph = load_model(random_mlp(seed, sizes, activation))
    if x is None:
        x = np.random.default_rng(seed).uniform(-1, 1, sizes[0])
    return Problem(graph, AbsoluteDelta(delta).to_box(graph), InputRegion.point(x))


def _sampled_change(problem: Problem, n: int = 200) -> float:
    rng = np.random.default_rng(0)
    x = problem.region.lo
    ys = sampled_outputs(problem.graph, problem.box, x[None], rng, n)
    return float(np.max(np.abs(ys - problem.graph.evaluate(x))))


@pytest.mark.parametrize("seed", [0, 1])
def test_max_epsilon_agrees_with_exact_z3(seed: int) -> None:
    pr = _point(seed, [2, 3, 3, 2], 0.1, x=np.array([0.5, -0.3]))
    exact = get_engine("z3").optimise(pr, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=30))
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-9, timeout_s=10))
    assert b.lower <= exact.upper and exact.lower <= b.upper  # both enclose the same optimum
    assert b.gap <= 1e-9 and b.complete
    w = b.witness
    wv = float(np.max(np.abs(pr.graph.evaluate(w.input, w.parameters) - pr.graph.evaluate(w.input))))
    assert b.lower - 1e-12 <= wv <= b.upper and pr.box.contains(w.parameters)


def test_labels_agree_with_exact_z3() -> None:
    z3 = get_engine("z3")
    verdicts = set()
    for seed, delta in ((2, 0.05), (3, 0.4)):
        pr = _point(seed, [2, 4, 3], delta)
        mine = ENGINE.verify(pr, LabelInvariance(), Options(timeout_s=10))
        exact = z3.verify(pr, LabelInvariance(), Options(timeout_s=30))
        assert {type(mine), type(exact)} != {Verified, Falsified}
        assert not isinstance(mine, Unknown)
        verdicts.add(type(mine))
        if isinstance(mine, Falsified):
            ce = mine.counterexample
            assert ce.replayed and pr.box.contains(ce.parameters)
            assert not label_kept(pr.graph.evaluate(ce.input), pr.graph.evaluate(ce.input, ce.parameters), 0.5)[0]
    assert verdicts == {Verified, Falsified}


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_split_search_stays_above_samples_and_below_the_root(activation: str) -> None:
    pr = _point(7, [4, 10, 10, 3], 0.05, activation)
    search = SplitSearch(pr, change_rows(nominal_enclosure(pr)))
    root = search.root_bounds()
    out = search.run(Options(tolerance=1e-9), Options(timeout_s=1.0).deadline(), mode="optimise", lower=lambda: 0.0)
    assert np.all(out.upper <= root + 1e-12)
    best = _sampled_change(pr)
    assert best <= float(np.max(out.upper)) + 1e-12


def test_point_bracket_is_valid_when_time_runs_out() -> None:
    graph = load_model(random_mlp(0, [16, 64, 64, 64, 10], "relu"))
    x = np.random.default_rng(0).uniform(0, 1, 16)
    pr = Problem(graph, QuantizationScheme(4).to_box(graph), InputRegion.point(x))
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-12, timeout_s=0.5))
    assert not b.complete and b.note and b.lower <= b.upper
    assert _sampled_change(pr, 100) <= b.upper + 1e-12
    w = b.witness
    assert pr.box.contains(w.parameters)
    assert b.lower <= float(np.max(np.abs(pr.graph.evaluate(w.input, w.parameters) - pr.graph.evaluate(w.input)))) + 1e-12


def test_interrupt_in_the_split_search_keeps_a_valid_bound() -> None:
    pr = _point(1, [5, 16, 16, 2], 0.05)
    search = SplitSearch(pr, change_rows(nominal_enclosure(pr)))

    class Interrupt:
        calls = 0

        def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
            Interrupt.calls += 1
            if Interrupt.calls == 4:
                raise KeyboardInterrupt

    out = search.run(Options(tolerance=1e-12, progress=Interrupt()), Options(timeout_s=None).deadline(), mode="optimise")
    assert out.reason == "interrupted" and not out.complete
    assert _sampled_change(pr) <= float(np.max(out.upper)) + 1e-12


def test_output_bound_verdicts_at_a_point() -> None:
    pr = _point(4, [3, 8, 8, 2], 0.02)
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=5))
    assert isinstance(ENGINE.verify(pr, OutputBound(b.upper * 1.01 + 1e-9), Options(timeout_s=5)), Verified)
    v = ENGINE.verify(pr, OutputBound(b.lower * 0.99), Options(timeout_s=5))
    assert isinstance(v, Falsified) and v.counterexample.replayed


@pytest.mark.parametrize("sizes", [[3, 2], [3, 4, 2]])
def test_networks_without_activations_are_exact(sizes: list[int]) -> None:
    pr = _point(8, sizes, 0.05, "linear")
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-9, timeout_s=5))
    assert b.complete and b.gap <= 1e-9
    assert _sampled_change(pr) <= b.upper + 1e-12
    assert isinstance(ENGINE.verify(pr, LabelInvariance(), Options(timeout_s=5)), (Verified, Falsified))


def test_label_rows_follow_the_level_convention() -> None:
    one_hi = label_rows(np.array([0.7]), 0.5)
    assert one_hi.coefs.tolist() == [[-1.0]] and one_hi.offsets.tolist() == [0.5] and not one_hi.strict[0]
    one_lo = label_rows(np.array([0.2]), 0.5)
    assert one_lo.coefs.tolist() == [[1.0]] and one_lo.strict[0]
    multi = label_rows(np.array([0.1, 0.9, 0.3]), 0.5)
    assert multi.coefs.tolist() == [[1.0, -1.0, 0.0], [0.0, -1.0, 1.0]] and all(multi.strict)


def test_max_delta_at_a_point_with_linear_bounds() -> None:
    pr = _point(5, [3, 8, 8, 3], 1.0)
    b = ENGINE.optimise(pr, MaxDelta(t_max=1.0), Options(tolerance=1e-3, timeout_s=10))
    assert 0 < b.lower <= b.upper and b.proof_side == "lower"
    rng = np.random.default_rng(5)
    x = pr.region.lo
    y0 = pr.graph.evaluate(x)
    safe = pr.box.scaled(b.lower)
    for _ in range(300):
        assert label_kept(y0, pr.graph.evaluate(x, corner_params(safe, rng)), 0.5)[0]
    if b.witness is not None:
        assert not label_kept(y0, pr.graph.evaluate(b.witness.input, b.witness.parameters), 0.5)[0]


def test_mnist_sized_point_label_is_certified() -> None:
    graph = load_model(random_mlp(0, [784, 64, 64, 10], "relu"))
    x = np.zeros(784)
    x[300:420] = np.linspace(0.2, 1.0, 120)
    pr = Problem(graph, QuantizationScheme(8).to_box(graph), InputRegion.point(x))
    v = ENGINE.verify(pr, LabelInvariance(), Options(timeout_s=30))
    assert isinstance(v, Verified)
    rng = np.random.default_rng(0)
    y0 = graph.evaluate(x)
    assert all(label_kept(y0, graph.evaluate(x, corner_params(pr.box, rng)), 0.5)[0] for _ in range(20))


def _copy(graph, bits: int) -> QuantizedCopy:
    scheme = QuantizationScheme(bits)
    return QuantizedCopy({n: quantize(graph.initializers[n], scheme)[0].astype(np.float32).astype(np.float64)
                          for n in graph.default_parameters()})


def test_quantized_copy_global_equivalence_and_label_agreement() -> None:
    graph = load_model(random_mlp(1, [2, 16, 16, 1], "relu", sigmoid_output=True))
    copy = _copy(graph, 6)
    box = copy.to_box(graph)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    pr = Problem(graph, box, InputRegion.box(lo, hi))
    b = ENGINE.optimise(pr, MaxEpsilon(), Options(tolerance=1e-4, timeout_s=10))
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 81), np.linspace(-1, 1, 81)), -1).reshape(-1, 2)
    diff = np.abs(graph.evaluate(g, copy.values) - graph.evaluate(g))
    assert float(diff.max()) <= b.upper and b.lower <= b.upper and b.gap <= 1e-4
    flips = ~label_kept(graph.evaluate(g), graph.evaluate(g, copy.values), 0.5)
    v = ENGINE.verify(pr, LabelInvariance(), Options(timeout_s=10))
    if flips.any():
        assert isinstance(v, Falsified) and v.counterexample.replayed and box.contains(v.counterexample.parameters)
    else:
        assert not isinstance(v, Falsified)
    point = Problem(graph, box, InputRegion.point(g[int(np.argmax(diff))]))
    pb = ENGINE.optimise(point, MaxEpsilon(), Options(tolerance=1e-9, timeout_s=5))
    assert pb.lower <= float(diff.max()) <= pb.upper + 1e-12 and pb.gap <= 1e-9


def test_quantized_copy_label_at_points_matches_evaluation() -> None:
    graph = load_model(random_mlp(6, [3, 12, 4], "relu"))
    copy = _copy(graph, 3)
    box = copy.to_box(graph)
    rng = np.random.default_rng(6)
    seen = set()
    for x in rng.uniform(-1, 1, (12, 3)):
        kept = bool(label_kept(graph.evaluate(x), graph.evaluate(x, copy.values), 0.5)[0])
        v = ENGINE.verify(Problem(graph, box, InputRegion.point(x)), LabelInvariance(), Options(timeout_s=5))
        assert isinstance(v, Verified) if kept else isinstance(v, Falsified)
        seen.add(kept)
    assert seen == {True, False}


def test_optimised_bounds_hold_on_split_domains() -> None:
    """beta/alpha-optimised bounds are tighter than plain CROWN and above every sample of the domain."""
    from paramverify.bounds.crown import Split
    from paramverify.bounds.optimize import optimised_upper

    pr = _point(9, [3, 6, 6, 2], 0.15)
    rows = change_rows(nominal_enclosure(pr))
    search = SplitSearch(pr, rows, optimise_iters=1)
    lb, t = search.lb, search.lb.trace
    unstable = [(a.index, int(k)) for a in lb.acts
                for k in np.flatnonzero((t.lo[a.parents[0].index].reshape(-1) < 0) & (t.hi[a.parents[0].index].reshape(-1) > 0))]
    assert len(unstable) >= 3
    rng = np.random.default_rng(9)
    domains = [tuple(Split(unstable[i][0], unstable[i][1], bool(rng.random() < 0.5)) for i in rng.choice(len(unstable), 2, replace=False))
               for _ in range(6)]
    r = int(np.argmax(search.root_bounds()))
    plain, _ = search.evaluate([(r, d) for d in domains])
    t.restore(search.root, n=len(domains))
    feasible = lb.apply_splits(domains) & t.propagate(0) & lb.refine()
    coefs = np.broadcast_to(rows.coefs[r].reshape(1, 1, 1, -1), (1, len(domains), 1, rows.coefs.shape[1])).copy()
    opt, _ = optimised_upper(lb, [(lb.y, coefs)], domains, iters=12)
    opt = opt[0] + rows.offsets[r]
    t.restore(search.root, n=1)
    # pre-activations of the sampled networks, to keep the samples inside each domain
    g, x = pr.graph, pr.region.lo
    act_layer = {a.index: i for i, a in enumerate(lb.acts)}
    for _ in range(3000):
        p = corner_params(pr.box, rng) if rng.random() < 0.5 else pr.box.sample(rng)
        z1 = p["W1"] @ x + p["b1"]
        z2 = p["W2"] @ np.maximum(z1, 0) + p["b2"]
        zs = (z1, z2)
        value = float(rows.coefs[r] @ g.evaluate(x, p)[0] + rows.offsets[r])
        for d, dom in enumerate(domains):
            if all((zs[act_layer[s.node]][s.pos] >= 0) == s.positive for s in dom):
                assert feasible[d] and value <= opt[d] + 1e-12
    assert np.all(opt[feasible] <= plain[feasible] + 1e-12) and np.any(opt[feasible] < plain[feasible] - 1e-9)


def test_root_bounds_optimise_the_slopes_soundly() -> None:
    """alpha-CROWN on the whole box: tighter than CROWN's first bound on some row, never looser on any,
    and above the row's value for every sampled parameter (corners included)."""
    pr = _point(9, [3, 6, 6, 2], 0.15)
    rows = change_rows(nominal_enclosure(pr))
    crown = SplitSearch(pr, rows, root_iters=1).root_bounds()
    opt = SplitSearch(pr, rows).root_bounds()
    assert np.all(opt <= crown) and np.any(opt < crown - 1e-6)
    rng = np.random.default_rng(9)
    g, x = pr.graph, pr.region.lo
    worst = np.full(len(rows), -np.inf)
    for _ in range(2000):
        p = corner_params(pr.box, rng) if rng.random() < 0.5 else pr.box.sample(rng)
        worst = np.maximum(worst, rows.coefs @ g.evaluate(x, p)[0] + rows.offsets)
    assert np.all(worst <= opt)


def test_root_optimisation_stops_at_its_time_limit() -> None:
    """A root budget of 0 s leaves one pass (CROWN's slopes): the bound is CROWN's, still sound."""
    from paramverify.bounds.optimize import optimised_upper

    pr = _point(9, [3, 6, 6, 2], 0.15)
    rows = change_rows(nominal_enclosure(pr))
    crown = SplitSearch(pr, rows, root_iters=1).root_bounds()
    timed = SplitSearch(pr, rows, root_time=0.0).root_bounds()
    np.testing.assert_array_equal(timed, crown)
    lb = SplitSearch(pr, rows, root_iters=1).lb
    C = rows.coefs[:, None, :].reshape((len(rows), 1) + lb.y.pshape)
    one, _ = optimised_upper(lb, [(lb.y, C)], None, iters=1)
    capped, _ = optimised_upper(lb, [(lb.y, C)], None, iters=50, time_limit=0.0)
    full, _ = optimised_upper(lb, [(lb.y, C)], None, iters=50)
    np.testing.assert_array_equal(capped, one)
    assert np.all(full <= one) and np.any(full < one - 1e-6)


def test_slope_optimisation_stops_once_the_bound_settles() -> None:
    """``stall``: the optimisation ends when the last steps barely lower the bound; a huge tolerance ends it
    after the first window (the same bound as that many steps), none runs every step."""
    from paramverify.bounds.optimize import STALL_WINDOW, optimised_upper

    pr = _point(9, [3, 6, 6, 2], 0.15)
    rows = change_rows(nominal_enclosure(pr))
    lb = SplitSearch(pr, rows, root_iters=1).lb
    C = rows.coefs[:, None, :].reshape((len(rows), 1) + lb.y.pshape)
    window, _ = optimised_upper(lb, [(lb.y, C)], None, iters=STALL_WINDOW + 1)
    stalled, _ = optimised_upper(lb, [(lb.y, C)], None, iters=50, stall=np.inf)
    full, _ = optimised_upper(lb, [(lb.y, C)], None, iters=50, stall=None)
    np.testing.assert_array_equal(stalled, window)
    assert np.all(full <= stalled)
