"""Run the shared known-answer table (``tests/known_answers.py``) on every engine.

Engines whose module does not import yet, whose solver is not installed, or
that raise ``CapabilityError`` for a row are skipped for that row.  Every
engine must never contradict a known verdict and its brackets must contain
the known optimum; engines declaring the "exact" capability must also get
every verdict right and close every bracket.  The default engine (``bounds``,
what users get without ``--backend``) must also get every verdict right and
prove its side of every bracket to within the tolerance: it is incomplete in
general, but every row of this table is small enough for it to decide.
"""

from __future__ import annotations

import numpy as np
import pytest
from known_answers import CASES, KnownAnswer

from paramverify.engines import ENGINES, get_engine
from paramverify.errors import BackendUnavailableError, CapabilityError
from paramverify.options import Options
from paramverify.properties import MaxDelta, violates
from paramverify.replay import confirm, run_onnxruntime
from paramverify.results import Falsified, Unknown, Verified

TOL = 1e-4
#: the engine users get without --backend: it must decide every row of the table
DEFAULT_ENGINE = "bounds"


def _engine(name: str):
    try:
        return get_engine(name)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    except ImportError as exc:  # the engine's module is not written yet
        pytest.skip(f"engine {name!r} does not import: {exc}")


def _options(engine) -> Options:
    exact = "exact" in engine.capabilities
    # incomplete engines get a short budget: the table checks soundness, not their speed
    return Options(timeout_s=10.0 if exact else 2.0, tolerance=TOL, query_timeout_s=5.0, max_splits=5000)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("engine_name", list(ENGINES))
def test_known_answer(engine_name: str, case: KnownAnswer) -> None:
    engine = _engine(engine_name)
    problem = case.problem()
    exact = "exact" in engine.capabilities
    try:
        if case.prop is not None:
            result = engine.verify(problem, case.prop, _options(engine))
        else:
            result = engine.optimise(problem, case.objective, _options(engine))
    except CapabilityError as exc:
        pytest.skip(f"{engine_name} cannot answer {case.name}: {exc}")

    if case.prop is not None:
        opposite = "falsified" if case.verdict == "verified" else "verified"
        assert result.name != opposite, f"{engine_name} contradicts the known verdict: {case.why}"
        if isinstance(result, Falsified):
            cx = result.counterexample
            assert cx.replayed
            assert problem.box.contains(cx.parameters)
            assert np.all(cx.input >= problem.region.lo) and np.all(cx.input <= problem.region.hi)
            y0 = run_onnxruntime(problem.graph, cx.input)
            yp = run_onnxruntime(problem.graph, cx.input, cx.parameters)
            assert violates(case.prop, y0, yp, problem.level)[0]
            assert confirm(problem, case.prop, cx.input, cx.parameters) is not None
        if exact or engine_name == DEFAULT_ENGINE:
            assert result.name == case.verdict, f"{engine_name}: {result.name} {getattr(result, 'reason', '')}"
        else:  # an incomplete optional backend may say unknown, never the opposite (checked above)
            assert isinstance(result, (Verified, Falsified, Unknown)), result
        return

    bracket = result
    assert case.optimum is not None
    assert bracket.lower - 1e-9 <= case.optimum <= bracket.upper + 1e-9, (
        f"{engine_name}: [{bracket.lower}, {bracket.upper}] misses {case.optimum} ({case.why})"
    )
    assert bracket.proof_side == ("lower" if isinstance(case.objective, MaxDelta) else "upper")
    if exact:
        assert bracket.complete, bracket.note
        assert bracket.upper - bracket.lower <= 10 * TOL
    if engine_name == DEFAULT_ENGINE:  # the proved side is tight (the witness side may still be open)
        proved = bracket.lower if bracket.proof_side == "lower" else bracket.upper
        assert abs(proved - case.optimum) <= 10 * TOL, f"proved {bracket.proof_side} {proved} vs {case.optimum}"
