"""The batched falsifier (paramverify/bounds/pgd.py): at least as strong as a plain 20 x 200 PGD.

Values are unproved candidates, so the tests also check that every
returned point lies in its boxes and that its value is what the model
computes there; the engine's own soundness tests cover the proved side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from bounds_helpers import small_conv
from netgen import random_mlp

from paramverify.bounds.pgd import PGDSettings, change_objective, label_objective, pgd
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.specs import AbsoluteDelta, QuantizationScheme

pytest.importorskip("torch")
_BENCH = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

from ref_pgd import reference_pgd  # benchmarks/ref_pgd.py


def _change(graph, x, params) -> float:
    return float(np.max(np.abs(graph.evaluate(x, params) - graph.evaluate(x))))


NETS = [
    ("mlp", lambda: load_model(random_mlp(11, [12, 24, 24, 1], "relu", scale=np.sqrt(2))), AbsoluteDelta(0.02)),
    ("mlp3", lambda: load_model(random_mlp(5, [8, 16, 16, 3], "relu", scale=np.sqrt(2))), AbsoluteDelta(0.05)),
    ("conv", lambda: load_model(small_conv()), QuantizationScheme(4)),
]


@pytest.mark.parametrize("name,make,spec", NETS, ids=[n[0] for n in NETS])
@pytest.mark.parametrize("seed", [0, 1])
def test_output_change_beats_reference_pgd(name, make, spec, seed: int) -> None:
    graph = make()
    box = spec.to_box(graph)
    x = np.random.default_rng(seed).uniform(0, 1, graph.input_size)
    k = graph.n_outputs
    ref = reference_pgd(graph, box, x, x, change_objective(k), seed=seed + 100)
    best = pgd(graph, box, x, x, change_objective(k), np.random.default_rng(seed), Options(timeout_s=None).deadline())[0]
    assert best.value >= ref - 1e-12, (best.value, ref)
    assert box.contains(best.params) and np.array_equal(best.x, x)
    assert best.value == pytest.approx(_change(graph, x, best.params), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_input_and_parameters_beat_reference_pgd(seed: int) -> None:
    """A box region: the inputs move too."""
    graph = load_model(random_mlp(seed, [4, 16, 16, 2], "relu", scale=np.sqrt(2)))
    box = AbsoluteDelta(0.05).to_box(graph)
    lo, hi = np.zeros(4), np.ones(4)
    ref = reference_pgd(graph, box, lo, hi, change_objective(2), seed=seed)
    best = pgd(graph, box, lo, hi, change_objective(2), np.random.default_rng(seed), Options(timeout_s=None).deadline())[0]
    assert best.value >= ref - 1e-12, (best.value, ref)
    assert np.all(best.x >= lo) and np.all(best.x <= hi) and box.contains(best.params)
    assert best.value == pytest.approx(_change(graph, best.x, best.params), rel=1e-9, abs=1e-12)


def test_numpy_back_end_agrees_with_torch() -> None:
    """Without torch the same search runs on the autodiff tape (same start points, same values)."""
    graph = load_model(random_mlp(2, [6, 10, 2], "relu"))
    box = AbsoluteDelta(0.05).to_box(graph)
    x = np.full(6, 0.5)
    st = PGDSettings(restarts=4, steps=12)
    a = pgd(graph, box, x, x, change_objective(2), np.random.default_rng(0), Options().deadline(), st, backend="torch")
    b = pgd(graph, box, x, x, change_objective(2), np.random.default_rng(0), Options().deadline(), st, backend="numpy")
    assert [c.value for c in a] == pytest.approx([c.value for c in b], rel=1e-9)


def test_label_attack_finds_a_flip_and_stops() -> None:
    """Label rows C . f_p + e: a returned value above 0 is a real flip of the nominal label at x0."""
    graph = load_model(random_mlp(4, [6, 16, 4], "relu"))
    x = np.full(6, 0.3)
    y0 = graph.evaluate(x)[0]
    c = int(np.argmax(y0))
    coefs = np.zeros((3, 4))
    for r, j in enumerate(j for j in range(4) if j != c):
        coefs[r, j], coefs[r, c] = 1.0, -1.0
    box = AbsoluteDelta(0.5).to_box(graph)
    best = pgd(graph, box, x, x, label_objective(coefs, np.zeros(3)), np.random.default_rng(0), Options().deadline(), stop_above=0.0)[0]
    assert best.value > 0
    assert int(np.argmax(graph.evaluate(x, best.params)[0])) != c


@pytest.mark.parametrize("seed", [2, 5])
def test_engine_bracket_lower_end_beats_reference_pgd(seed: int) -> None:
    """The engine's witnessed lower end (snapped, re-evaluated soundly) is never below the plain PGD's value."""
    from paramverify import api

    graph = load_model(random_mlp(seed, [16, 32, 32, 2], "relu", scale=np.sqrt(2)))
    x = np.random.default_rng(seed).uniform(0, 1, 16)
    problem = api.make_problem(graph, delta=0.02, x0=x)
    b = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=48, tolerance=1e-2, seed=0))
    ref = reference_pgd(graph, problem.box, x, x, change_objective(2), seed=seed)
    assert b.lower >= ref - 1e-9, (b.lower, ref)
    assert b.lower <= b.upper
    rng = np.random.default_rng(seed)
    for _ in range(20):  # the proved end still holds at sampled vertices of the box
        p = {n: np.where(rng.random(problem.box.lo[n].shape) < 0.5, problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names}
        assert _change(graph, x, p) <= b.upper


@pytest.mark.parametrize("seed", [1, 2])
def test_box_regions_use_the_batched_falsifier(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over an input box the start of the output-change search runs the batched falsifier too: a higher
    (sound, snapped) lower end than the sign-gradient restarts alone, still below the proved bound."""
    from paramverify.bounds import searches
    from paramverify.bounds.sound import box_outputs, change_upper
    from paramverify.properties import Problem
    from paramverify.specs import InputRegion

    g = load_model(random_mlp(seed, [16, 48, 48, 4]))
    c = np.random.default_rng(seed).uniform(-1, 1, 16)
    pr = Problem(g, AbsoluteDelta(0.02).to_box(g), InputRegion.box(c - 0.1, c + 0.1))
    opt = Options(seed=seed)  # no time limit: the falsifier runs all its steps (a result independent of load)
    strong = searches.change_start(pr, opt, opt.deadline())
    monkeypatch.setattr(searches, "PGD_BOX_MIN", 10**9)
    plain = searches.change_start(pr, opt, opt.deadline())
    upper = float(change_upper(box_outputs(g, pr.box, pr.region.lo[None], pr.region.hi[None]))[0])
    assert plain.value < strong.value <= upper
    w = strong.witness
    assert pr.box.contains(w.parameters) and np.all((w.input >= pr.region.lo) & (w.input <= pr.region.hi))
    assert strong.value <= _change(g, w.input[None], w.parameters) + 1e-9
