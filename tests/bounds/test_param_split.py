"""Branch and bound over the parameter box (``paramsplit.py``), used once neuron splits run out.

Linear hidden units leave no neuron to split, so the point search used to stop
at the relaxation's gap ("exhausted"); splitting the parameter box closes it.
Checked: closed brackets whose upper end no sampled parameter beats, labels
that z3 also proves (z3 took 26-28 s on each, so the test samples instead and
checks that a wider box is falsified with a replayed counterexample), a
monotone bound, and Ctrl-C returning the bound proved so far.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bounds_helpers import sampled_outputs
from netgen import random_mlp

from paramverify import api
from paramverify.bounds.local import change_rows, nominal_enclosure
from paramverify.bounds.paramsplit import Piece, param_split, piece_uppers
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.results import Falsified, Verified


def _linear(seed: int, sizes: list[int], delta: float):
    g = load_model(random_mlp(seed, sizes, "linear", False))
    x0 = np.random.default_rng(seed).uniform(-1, 1, sizes[0])
    return api.make_problem(g, delta=delta, x0=x0)


def _sampled_change(problem, n: int, seed: int) -> float:
    x = problem.region.lo[None]
    ys = sampled_outputs(problem.graph, problem.box, x, np.random.default_rng(seed), n)
    return float(np.max(np.abs(ys - problem.graph.evaluate(x))))


@pytest.mark.parametrize(("seed", "delta"), [(1, 0.2), (2, 0.05)])
def test_linear_net_bracket_closes(seed: int, delta: float) -> None:
    problem = _linear(seed, [3, 6, 5, 2], delta)
    b = api.bound(problem, "eps", options=Options(timeout_s=20.0, tolerance=1e-6, seed=seed))
    assert "parameter-box branch-and-bound" in b.method
    assert b.complete and b.upper - b.lower <= 1e-6 and b.witness is not None
    assert _sampled_change(problem, 400, seed) <= b.upper


def test_torch_exported_linear_mlp_bracket_closes(tmp_path) -> None:
    """Three Linear layers and no activation, as torch.onnx.export writes them (Gemm, Gemm, Gemm)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Linear(6, 5), torch.nn.Linear(5, 2)).eval()
    path = tmp_path / "linear.onnx"
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, 3), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    problem = api.make_problem(load_model(str(path)), delta=0.05, x0=[0.3, -0.2, 0.5])
    b = api.bound(problem, "eps", options=Options(timeout_s=20.0, tolerance=1e-6))
    assert "parameter-box branch-and-bound" in b.method
    assert b.complete and b.upper - b.lower <= 1e-6
    assert _sampled_change(problem, 400, 0) <= b.upper


@pytest.mark.parametrize(("seed", "delta"), [(41, 0.1), (52, 0.2)])
def test_labels_proved_by_parameter_splits(seed: int, delta: float) -> None:
    # z3 proves both as well (25.8 s and 27.5 s); the bound engine needs the parameter splits
    problem = _linear(seed, [2, 4, 3, 2], delta)
    v = api.verify(problem, "label", options=Options(timeout_s=20.0, seed=seed))
    assert isinstance(v, Verified) and "parameter-box" in v.method
    x = problem.region.lo[None]
    ys = sampled_outputs(problem.graph, problem.box, x, np.random.default_rng(seed), 300)
    assert np.all(np.argmax(ys, axis=1) == int(np.argmax(problem.graph.evaluate(x))))
    wider = _linear(seed, [2, 4, 3, 2], 2 * delta)
    w = api.verify(wider, "label", options=Options(timeout_s=20.0, seed=seed))
    assert isinstance(w, Falsified) and w.counterexample.replayed


def test_verify_eps_just_above_the_maximum_holds() -> None:
    problem = _linear(1, [3, 6, 5, 2], 0.2)
    b = api.bound(problem, "eps", options=Options(timeout_s=20.0, tolerance=1e-6))
    assert isinstance(api.verify(problem, "eps", epsilon=b.upper * (1 + 1e-4), options=Options(timeout_s=20.0)), Verified)
    below = api.verify(problem, "eps", epsilon=b.lower * (1 - 1e-4), options=Options(timeout_s=20.0))
    assert isinstance(below, Falsified)


def test_bound_is_monotone_and_an_interrupt_keeps_it() -> None:
    problem = _linear(1, [3, 6, 5, 2], 0.2)
    rows = change_rows(nominal_enclosure(problem))
    seen: list[float] = []

    def on_piece(r: int, piece: Piece) -> None:
        seen.append(piece.bound)  # the popped piece holds the current global bound
        if len(seen) == 30:
            raise KeyboardInterrupt

    opts = Options(timeout_s=30.0, tolerance=1e-9)
    res = param_split(problem, rows, np.full(len(rows), np.inf), opts, opts.deadline(), lower=lambda: 0.0, on_piece=on_piece)
    assert res.reason == "interrupted" and len(seen) == 30
    assert all(b <= a for a, b in zip(seen, seen[1:], strict=False))
    lo = {n: problem.box.lo[n] for n in problem.box.names}
    hi = {n: problem.box.hi[n] for n in problem.box.names}
    root = piece_uppers(problem, rows, lo, hi)
    assert np.all(res.uppers <= root) and float(np.max(res.uppers)) < float(np.max(root))
    assert _sampled_change(problem, 400, 3) <= float(np.max(res.uppers))


def test_an_interrupt_before_the_first_piece_keeps_the_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    import paramverify.bounds.paramsplit as ps

    problem = _linear(1, [3, 6, 5, 2], 0.2)
    rows = change_rows(nominal_enclosure(problem))

    def interrupted(*args: object) -> np.ndarray:
        raise KeyboardInterrupt

    monkeypatch.setattr(ps, "piece_uppers", interrupted)
    caps = np.arange(1.0, len(rows) + 1.0)
    opts = Options(timeout_s=5.0)
    res = ps.param_split(problem, rows, caps, opts, opts.deadline(), lower=lambda: 0.0)
    assert res.reason == "interrupted" and np.array_equal(res.uppers, caps)
