"""dReal backend: clean unavailability here, real checks only where ``import dreal`` works."""

from __future__ import annotations

import time

import pytest
from known_answers import CASES

from encoders.dreal_backend import DRealBackend, DRealEngine, run_with_timeout
from paramverify.engines import available_engines, get_engine
from paramverify.errors import BackendUnavailableError
from paramverify.options import Options
from paramverify.properties import OutputBound
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
