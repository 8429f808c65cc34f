"""Branch and bound only ever improves its upper bound (issue 11, item 3).

A child box lies inside its parent, so the parent's bound caps the child's;
the upper bound shown to the progress sink and returned must never rise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bounds_helpers import corner_params
from netgen import random_mlp

from paramverify.bounds.branch import Probe, branch_and_bound
from paramverify.bounds.engine import BoundsEngine
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import MaxEpsilon, MinSigma, Problem
from paramverify.specs import InputRegion, QuantizationScheme


class Recorder:
    """A progress sink that keeps every (lower, upper) it is shown."""

    def __init__(self) -> None:
        self.uppers: list[float] = []
        self.lowers: list[float] = []

    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
        if upper is not None:
            self.uppers.append(float(upper))
        if lower is not None:
            self.lowers.append(float(lower))


def _non_increasing(xs: list[float]) -> bool:
    return all(b <= a for a, b in zip(xs, xs[1:]))


def _noisy_bound(seed: int, noise: float):
    """A sound but deliberately non-monotone bound of f(x) = x1 on a box: hi + a fresh random slack."""
    rng = np.random.default_rng(seed)

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return hi[:, 0] + rng.uniform(0.0, noise, len(hi))

    return bound


def _probe(lo, hi, ub, best):
    c = (lo[:, 0] + hi[:, 0]) / 2
    i = int(np.argmax(c))
    return Probe(float(c[i]), c[i])


@pytest.mark.parametrize("with_tighten", [False, True])
def test_non_monotone_bound_gives_monotone_search(with_tighten: bool) -> None:
    rec = Recorder()
    # tighten: sound, sometimes tighter, sometimes looser than the first bound (so its gate switches)
    tighten = _noisy_bound(1, 0.4) if with_tighten else None
    opts = Options(tolerance=1e-12, max_splits=300, progress=rec, timeout_s=None)
    res = branch_and_bound(_noisy_bound(0, 0.5), _probe, np.array([0.0, 0.0]), np.array([1.0, 1.0]), opts,
                           opts.deadline(), batch=2, tighten=None if tighten is None else (lambda lo, hi, ub: tighten(lo, hi)))
    assert res.boxes >= 100 and len(rec.uppers) >= 50
    assert _non_increasing(rec.uppers), "the reported upper bound rose"
    assert res.upper <= rec.uppers[-1]
    assert res.lower <= 1.0 <= res.upper  # still sound: sup f = 1
    assert _non_increasing([-v for v in rec.lowers])  # and the lower end never falls


def test_children_are_capped_by_their_parent() -> None:
    """A bound that gets *worse* on smaller boxes: the root's bound is the best there is."""

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return 1.0 + 1.0 / np.maximum(hi[:, 0] - lo[:, 0], 1e-9) * 0.01  # width 1 -> 1.01, width 1/2 -> 1.02, ...

    rec = Recorder()
    opts = Options(tolerance=1e-12, max_splits=128, progress=rec, timeout_s=None)
    res = branch_and_bound(bound, _probe, np.array([0.0]), np.array([1.0]), opts, opts.deadline(), batch=2)
    assert res.upper == pytest.approx(1.01) and _non_increasing(rec.uppers)
    assert res.lower <= 1.0 <= res.upper


def _quantized_problem(seed: int = 0, n: int = 20, hidden: int = 16, r: float = 0.1) -> Problem:
    graph = load_model(random_mlp(seed, [n, hidden, hidden, 10], "relu", normalise=([0.13] * n, [0.31] * n)))
    x = np.random.default_rng(seed).uniform(0.2, 0.8, n)
    return Problem(graph, QuantizationScheme(8).to_box(graph), InputRegion.box(x - r, x + r))


def test_max_epsilon_search_upper_never_rises() -> None:
    """An 8-bit rounding box over an input box: before the fix the shown upper rose during the search."""
    pr = _quantized_problem()
    rec = Recorder()
    b = BoundsEngine().optimise(pr, MaxEpsilon(), Options(timeout_s=60, tolerance=1e-9, max_splits=500, progress=rec))
    assert b.extra["boxes"] >= 100 and len(rec.uppers) >= 8
    assert _non_increasing(rec.uppers), rec.uppers
    assert b.upper <= min(rec.uppers) and b.lower <= b.upper
    # still an upper bound: sampled (x, p) never beat it
    rng = np.random.default_rng(0)
    g = pr.graph
    xs = rng.uniform(pr.region.lo, pr.region.hi, (200, pr.region.lo.size))
    for _ in range(10):
        assert float(np.max(np.abs(g.evaluate(xs, corner_params(pr.box, rng)) - g.evaluate(xs)))) <= b.upper


def test_min_sigma_search_upper_never_rises() -> None:
    pr = _quantized_problem(r=0.3)
    rec = Recorder()
    b = BoundsEngine().optimise(pr, MinSigma(int(np.argmax(pr.graph.evaluate((pr.region.lo + pr.region.hi) / 2)[0]))),
                                Options(timeout_s=60, tolerance=1e-9, max_splits=300, progress=rec))
    assert len(rec.uppers) >= 2 and _non_increasing(rec.uppers), rec.uppers
    assert b.upper <= min(rec.uppers) and b.lower <= b.upper


def test_point_search_progress_never_rises() -> None:
    """The neuron-split search at a point shows a non-increasing upper bound too (three hidden layers:
    two would go to the LP branch and bound, tests/bounds/test_mlplp.py)."""
    graph = load_model(random_mlp(3, [4, 24, 24, 24, 3], "relu"))
    pr = Problem(graph, QuantizationScheme(4).to_box(graph), InputRegion.point(np.full(4, 0.5)))
    rec = Recorder()
    b = BoundsEngine().optimise(pr, MaxEpsilon(), Options(timeout_s=20, tolerance=1e-9, max_splits=200, progress=rec))
    assert len(rec.uppers) >= 2 and _non_increasing(rec.uppers), rec.uppers
    assert b.lower <= b.upper


def test_tighten_gate_handles_infinite_first_bounds() -> None:
    """A first bound of +inf made finite by tighten is all gain; inf - inf gave NaN (and warnings) in the gate."""
    calls = {"bound": 0, "tighten": 0}

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        calls["bound"] += 1
        return np.full(len(lo), np.inf)

    def tighten(lo: np.ndarray, hi: np.ndarray, ub: np.ndarray) -> np.ndarray:
        calls["tighten"] += 1
        return hi[:, 0].copy()

    rec = Recorder()
    opts = Options(tolerance=1e-3, timeout_s=None, max_splits=10_000, progress=rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NaN arithmetic in the gate
        res = branch_and_bound(bound, _probe, np.array([0.0]), np.array([1.0]), opts, opts.deadline(), batch=2, tighten=tighten)
    assert res.reason == "tolerance" and res.lower <= 1.0 <= res.upper
    assert calls["tighten"] == calls["bound"] and _non_increasing(rec.uppers)


class _Interrupting:
    """A pool (sends without waiting, like RayPool.start) that raises KeyboardInterrupt at its
    ``n``-th send (``where="send"``) or at its ``n``-th wait (``where="wait"``)."""

    def __init__(self, n: int, where: str) -> None:
        self.n, self.where, self.sends, self.waits = n, where, 0, 0

    def start(self, fn):
        def begin(*args):
            self.sends += 1
            if self.where == "send" and self.sends == self.n:
                raise KeyboardInterrupt
            out = fn(*args)

            def finish():
                self.waits += 1
                if self.where == "wait" and self.waits == self.n:
                    raise KeyboardInterrupt
                return out
            return finish
        return begin


@pytest.mark.parametrize("where", ["send", "wait", "probe"])
def test_an_interrupt_anywhere_in_a_step_keeps_the_bracket(where: str) -> None:
    """With steps in flight, boxes taken off the queue for a step count in the upper end until
    their children are queued: an interrupt while a step is sent, awaited or probed leaves a
    bracket around the true supremum (f(x) = x1 on [0, 1]^2: sup 1, exact box bounds)."""
    for n in range(2, 12):
        calls = {"probe": 0}

        def probe(lo, hi, ub, best, n=n, calls=calls):
            calls["probe"] += 1
            if where == "probe" and calls["probe"] == n:
                raise KeyboardInterrupt
            return _probe(lo, hi, ub, best)

        pool = None if where == "probe" else _Interrupting(n, where)
        res = branch_and_bound(lambda lo, hi: hi[:, 0].copy(), probe, np.zeros(2), np.ones(2),
                               Options(timeout_s=None, tolerance=1e-9, max_splits=10_000, pool=pool),
                               Options(timeout_s=None).deadline(), batch=4)
        assert res.reason == "interrupted" and not res.complete, (where, n)
        assert res.lower <= 1.0 <= res.upper, (where, n, res.lower, res.upper)
