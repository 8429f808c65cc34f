"""dReal backend: clean unavailability here, real checks only where ``import dreal`` works."""

from __future__ import annotations

import json
import time
from fractions import Fraction

import numpy as np
import pytest
from known_answers import CASES

from encoders.dreal_backend import DRealBackend, DRealEngine, run_with_timeout
from encoders.engine import slack_ladder
from paramverify.casestudies import get_case_study
from paramverify.cli import main
from paramverify.engines import available_engines, get_engine
from paramverify.errors import BackendUnavailableError, SpecError
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import OutputBound
from paramverify.replay import run_onnxruntime
from paramverify.results import Falsified, Unknown, Verified

HAVE_DREAL = DRealEngine.available()
needs_dreal = pytest.mark.skipif(not HAVE_DREAL, reason=f"dReal not importable: {DRealEngine.unavailable_reason()}")
BY_NAME = {c.name: c for c in CASES}


@pytest.mark.skipif(HAVE_DREAL, reason="dReal is installed")
def test_unavailable_is_reported_not_faked() -> None:
    assert "dreal" not in available_engines()
    with pytest.raises(BackendUnavailableError, match="dreal"):
        get_engine("dreal")
    with pytest.raises(BackendUnavailableError):
        DRealEngine()
    assert "dreal" in DRealBackend.unavailable_reason()


def _send(conn, value) -> None:
    conn.send(value)
    conn.close()


def _sleep(conn, seconds) -> None:
    time.sleep(seconds)
    conn.send("late")


def test_forked_worker_returns_its_answer() -> None:
    assert run_with_timeout(_send, ({"a": 1.5},), 10.0) == ("ok", {"a": 1.5})


def test_forked_worker_is_killed_at_the_timeout() -> None:
    t0 = time.perf_counter()
    assert run_with_timeout(_sleep, (30.0,), 0.2) == ("timeout", None)
    assert time.perf_counter() - t0 < 5.0


@needs_dreal
def test_dreal_sigmoid_global_output_bound() -> None:
    """Through a sigmoid globally (z3 cannot): |dy| <= sig(1) - sig(0.5) < 0.11 for b2 +-0.5 on [-1, 1]^2."""
    problem = BY_NAME["sig231-margin-holds"].problem()
    r = get_engine("dreal").verify(problem, OutputBound(0.2), Options(timeout_s=60))
    assert isinstance(r, Verified)
    r = get_engine("dreal").verify(problem, OutputBound(0.05), Options(timeout_s=60))
    assert isinstance(r, (Falsified, Unknown))
    if isinstance(r, Unknown):
        assert "delta-sat" in r.reason
    else:
        assert r.counterexample.replayed


# ---------------------------------------------------------------------------
# witness hunting slacks and --dreal-precision (issue 11, item 7)


def test_delta_complete_slack_ladder_starts_above_the_precision_and_climbs_gently() -> None:
    for precision in (1e-6, 3e-7, 1e-5):
        ladder = slack_ladder(True, precision)
        assert ladder[0] > Fraction(precision)  # a slack within dReal's delta buys no robustness
        assert ladder[0] <= 2 * Fraction(precision)  # ... but the first step is the smallest that does
        assert all(b / a <= Fraction(5, 2) for a, b in zip(ladder, ladder[1:]))  # no jump over a real margin
        assert Fraction(999, 10**6) <= ladder[-1] <= Fraction(3, 1000)  # up to MAX_SLACK
        assert ladder[-2] < Fraction(999, 10**6)
    assert slack_ladder(True, 0.5) == (Fraction(1),)  # a coarse delta still gets one step above it


def test_exact_slack_ladder_starts_at_zero() -> None:
    ladder = slack_ladder(False, 1e-6)
    assert ladder[0] == 0 and ladder[1] == Fraction(1, 10**7)
    assert all(b / a <= Fraction(5, 2) for a, b in zip(ladder[1:], ladder[2:]))


@pytest.mark.parametrize("bad", [0.0, -1e-6, float("nan"), float("inf")])
def test_bad_precision_is_a_spec_error(bad: float) -> None:
    with pytest.raises(SpecError, match="dreal_precision"):
        slack_ladder(True, bad)


def _cat_argv(*extra: str) -> list[str]:
    cat = get_case_study("cat")
    return ["verify", str(cat.onnx_path), "--property", "eps", "--epsilon", "0.02852", "--delta", "0.005",
            "--domain", "6.3:20.5,2.0:3.9", "--json", "--quiet", *extra]


@pytest.mark.parametrize("bad", ["0", "-1e-6", "nan", "inf"])
def test_cli_rejects_a_bad_dreal_precision(capsys, bad: str) -> None:
    code = main(_cat_argv("--backend", "dreal", f"--dreal-precision={bad}"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "dreal_precision" in err


def test_cli_passes_the_dreal_precision_down(monkeypatch, capsys) -> None:
    seen: list[float] = []

    def fake_verify(problem, kind, *, epsilon=None, sigma=None, backend="bounds", options=None):
        seen.append(options.dreal_precision)
        return Unknown("recorded", backend, 0.0)

    monkeypatch.setattr("paramverify.api.verify", fake_verify)
    assert main(_cat_argv("--backend", "dreal", "--dreal-precision", "2.5e-7")) == 3
    assert main(_cat_argv("--backend", "dreal")) == 3
    assert seen == [2.5e-7, 1e-6]


@needs_dreal
def test_dreal_falsifies_cat_epsilon_near_the_corner(capsys) -> None:
    """bounds falsifies E = 0.02852 at (20.5, 2.0) (the optimum is ~0.0285252); dReal must too.

    The violation's margin (~5e-6) lies between the old slack steps 1e-7 (within dReal's
    delta) and 1e-5 (above the margin), so the old ladder answered unknown.
    """
    code = main(_cat_argv("--backend", "dreal", "--timeout", "60"))
    payload = json.loads(capsys.readouterr().out)
    assert code == 1 and payload["verdict"] == "falsified", payload
    cx = payload["counterexample"]
    assert cx["replayed_on_onnxruntime"]
    assert cx["input"] == pytest.approx([20.5, 2.0], abs=0.05)  # the corner the optimum sits at
    # replay it here too, on onnxruntime, independently of the engine
    g = load_model(get_case_study("cat").onnx_path)
    x = np.array(cx["input"], dtype=np.float64)
    params = {k: np.array(v, dtype=np.float64) for k, v in cx["parameters"].items()}
    assert params["W"].shape == g.initializers["W"].shape
    for name, p in params.items():
        assert np.all(np.abs(p - g.initializers[name]) <= 0.005 * (1 + 1e-12)), name
    y0, yp = run_onnxruntime(g, x), run_onnxruntime(g, x, params)
    assert float(np.max(np.abs(yp - y0))) > 0.02852


@needs_dreal
def test_dreal_precision_reaches_the_solver(monkeypatch) -> None:
    seen: list[float] = []
    original = DRealBackend.check

    def spy(self, builder, formula, timeout_s, options):
        seen.append(options.dreal_precision)
        return original(self, builder, formula, timeout_s, options)

    monkeypatch.setattr(DRealBackend, "check", spy)
    problem = BY_NAME["sig231-margin-holds"].problem()
    r = get_engine("dreal").verify(problem, OutputBound(0.2), Options(timeout_s=60, dreal_precision=1e-4))
    assert isinstance(r, Verified) and seen and set(seen) == {1e-4}
