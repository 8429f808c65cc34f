"""The SMT engine shared by every backend: verify by refutation, replay every model.

``SmtEngine.decide`` is one verify-style query:

1. encode the negation (relaxed: a superset of the true violations);
2. ``unsat`` -> the property holds (in real arithmetic, exact float64
   parameters);
3. ``sat`` -> read (x, p) from the model, snap and replay it with
   :func:`paramverify.replay.confirm` (float64 and onnxruntime) and check it
   exactly in rational arithmetic where the ops allow; if it does not
   replay, re-ask in strict mode with growing slack for a robust
   violation; a violation is only reported once it replays;
4. ``unknown``/timeout -> unknown with the solver's reason.

``verify`` maps this to ``Verified`` / ``Falsified`` / ``Unknown``;
``optimise`` runs the bisections of :mod:`encoders.bisect`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from encoders.base import CAP_DELTA, ExactOnlyBuilder, SolverBackend
from encoders.decision import Decision
from encoders.encode import (
    Encoding,
    LabelQuery,
    Network,
    Query,
    build_network,
    choose_head,
    encode,
    property_for,
    query_for,
    subqueries,
)
from encoders.rational import frac_to_float, to_fraction
from paramverify.errors import BackendUnavailableError, CapabilityError, SpecError
from paramverify.options import Deadline, Options
from paramverify.properties import Objective, Problem, Property, labels
from paramverify.replay import confirm, snap_witness
from paramverify.results import (
    Bracket,
    Counterexample,
    Falsified,
    Unknown,
    Verdict,
    Verified,
)
from paramverify.specs import InputRegion, ParamBox

#: the largest slack (in head space: outputs or logits) a witness hunt asks for
MAX_SLACK = Fraction(1, 10**3)
#: the first strict slack of an exact backend (about a float32 ulp of an output near 1)
EXACT_SLACK = Fraction(1, 10**7)
#: a 1-2-5 ladder: each step at most 2.5x the last, so a real margin is never overshot by much
_LADDER = (Fraction(1), Fraction(2), Fraction(5))


def slack_ladder(delta_complete: bool, precision: float) -> tuple[Fraction, ...]:
    """The slacks tried, in order, when a solver model does not replay.

    Exact backends (z3) start at 0 (a real violation that float32 rounding
    may still hide), then ``EXACT_SLACK * {1, 2, 5, 10, ...}``.  A
    delta-complete backend (dReal) may weaken every constraint by its
    precision, so a slack at or below it buys no robustness: its ladder is
    ``precision * {2, 5, 10, 20, ...}``.  Both stop at the first step that
    reaches ``MAX_SLACK`` (a single step when the precision is already above it).
    """
    if delta_complete:
        if not (isinstance(precision, (int, float)) and math.isfinite(precision) and precision > 0):
            raise SpecError("dreal_precision", f"must be a finite number > 0, got {precision!r}", "e.g. --dreal-precision 1e-6")
        base = to_fraction(precision)
        out: list[Fraction] = []
    else:
        base = EXACT_SLACK
        out = [Fraction(0)]
    top = MAX_SLACK * Fraction(999, 1000)  # a ladder built on a binary 1e-6 reaches 1e-3 only nearly
    scale = base
    while True:
        for m in _LADDER:
            s = scale * m
            if delta_complete and s <= base:
                continue
            out.append(s)
            if s >= top:
                return tuple(out)
        scale *= 10


#: witness hunting (the strict re-queries of one disjunct) gets at most
#: RETRY_BUDGET x max(RETRY_MIN_S, RETRY_FACTOR x the first query's time) in all
RETRY_MIN_S = 2.0
RETRY_FACTOR = 5.0
RETRY_BUDGET = 3.0


def model_point(enc: Encoding, model: Mapping[str, Fraction | float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Float64 (x, params) of a solver model (constants stay exact-as-float)."""

    def val(d: Any) -> float:
        if isinstance(d, str):
            v = model.get(d, 0.0)
            return frac_to_float(v) if isinstance(v, Fraction) else float(v)
        return frac_to_float(d)

    x = np.array([val(d) for d in enc.x], dtype=np.float64)
    params = {n: np.vectorize(val, otypes=[np.float64])(d) if d.size else np.zeros(d.shape) for n, d in enc.params.items()}
    return x, params


def fixed_problem(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> Problem:
    """The problem restricted to one input and one parameter vector."""
    box = ParamBox(problem.box.nominal, dict(params), dict(params), "witness")
    return Problem(problem.graph, box, InputRegion(np.asarray(x, dtype=np.float64), np.asarray(x, dtype=np.float64)), problem.level)


def exact_violation(problem: Problem, query: Query, x: np.ndarray, params: Mapping[str, np.ndarray]) -> bool | None:
    """Does (x, params) violate the query in exact real arithmetic?  None if not computable."""
    try:
        enc = encode(fixed_problem(problem, x, params), query, ExactOnlyBuilder(), strict=True)
    except CapabilityError:
        return None
    assert isinstance(enc.formula, bool)
    return enc.formula


class SmtEngine:
    """verify/optimise over any :class:`~encoders.base.SolverBackend`."""

    name: ClassVar[str] = "smt"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    backend_cls: ClassVar[type[SolverBackend]]

    def __init__(self) -> None:
        if not self.available():
            raise BackendUnavailableError(f"backend '{self.name}' is not available: {self.unavailable_reason()}")
        self.backend: SolverBackend = self.backend_cls()

    @classmethod
    def available(cls) -> bool:
        return cls.backend_cls.available()

    @classmethod
    def unavailable_reason(cls) -> str:
        return cls.backend_cls.unavailable_reason()

    # ------------------------------------------------------------ one query
    def _timeout(self, options: Options, deadline: Deadline) -> float | None:
        rem = deadline.remaining()
        t = options.query_timeout_s
        if rem is None:
            return t
        return rem if t is None else min(t, rem)

    def decide(self, problem: Problem, query: Query, options: Options, deadline: Deadline, box: ParamBox | None = None) -> Decision:
        """One refutation query on ``problem`` (with ``box`` replacing its box).

        The query is split into :func:`~encoders.encode.subqueries` over one
        shared network encoding: it holds iff every disjunct is unsat.
        """
        t0 = time.perf_counter()
        scoped = problem if box is None else Problem(problem.graph, box, problem.region, problem.level)
        head = choose_head(scoped, query)
        builder = self.backend.builder()
        net = build_network(scoped, head, builder)
        models: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        reasons: list[str] = []
        saw_sat = False
        for sub in subqueries(scoped, query):
            status, cx, reason = self._decide_one(net, scoped, sub, options, deadline, models)
            if status == "violated":
                return Decision("violated", cx, "", tuple(models), time.perf_counter() - t0, head.note)
            if status == "unknown":
                reasons.append(reason)
                if deadline.expired():
                    break
            elif status == "sat":
                saw_sat = True
                reasons.append(reason)
        dt = time.perf_counter() - t0
        if saw_sat:
            return Decision("sat", None, reasons[0], tuple(models), dt, head.note)
        if reasons:
            return Decision("unknown", None, reasons[0], tuple(models), dt, head.note)
        return Decision("holds", time_s=dt, note=head.note)

    def _decide_one(
        self, net: Network, problem: Problem, query: Query, options: Options, deadline: Deadline,
        models: list[tuple[np.ndarray, dict[str, np.ndarray]]],
    ) -> tuple[str, Counterexample | None, str]:
        """("holds" | "violated" | "sat" | "unknown", counterexample, reason) for one disjunct."""
        prop = property_for(query)
        first_reason = ""
        hunt_end: float | None = None  # perf_counter time at which witness hunting stops
        slacks = slack_ladder(CAP_DELTA in self.backend.capabilities, options.dreal_precision)
        for attempt, slack in enumerate((None, *slacks)):
            if deadline.expired() or (hunt_end is not None and time.perf_counter() >= hunt_end):
                reason = first_reason or "time budget exhausted before the solver could answer"
                return ("sat" if attempt else "unknown"), None, reason
            enc = net.encoding(query, strict=slack is not None, slack=slack or Fraction(0))
            timeout = self._timeout(options, deadline)
            if hunt_end is not None:  # witness hunting may not cost much more than the first answer
                left = hunt_end - time.perf_counter()
                timeout = left if timeout is None else min(timeout, left)
            ans = self.backend.check(net.builder, enc.formula, timeout, options)
            if attempt == 0:
                hunt_end = time.perf_counter() + RETRY_BUDGET * max(RETRY_MIN_S, RETRY_FACTOR * ans.time_s)
            if ans.status == "unsat":
                if attempt == 0:
                    return "holds", None, ""
                break  # no robust violation with this much slack
            if ans.status == "unknown":
                if attempt == 0:
                    return "unknown", None, ans.reason
                break
            x, params = model_point(enc, ans.model)
            xs, ps = snap_witness(problem, x, params)
            models.append((xs, ps))
            cx = self._replay(problem, query, prop, xs, ps)
            if cx is not None:
                return "violated", cx, ""
            if not first_reason:
                first_reason = (
                    f"{self.backend.describe_sat(options)} did not replay: the snapped counterexample "
                    "does not violate the property on onnxruntime / float64"
                )
        return "sat", None, first_reason + "; stricter re-queries found no replayable violation"

    def _replay(self, problem: Problem, query: Query, prop: Property, xs: np.ndarray, ps: dict[str, np.ndarray]) -> Counterexample | None:
        cx = confirm(problem, prop, xs, ps)
        if cx is None:
            return None
        if (isinstance(query, LabelQuery) and query.cls is not None
                and int(labels(problem.graph.evaluate(cx.input), problem.level)[0]) != query.cls):
            return None
        if exact_violation(problem, query, cx.input, cx.parameters) is False:
            return None
        return cx

    # --------------------------------------------------------------- Engine
    def verify(self, problem: Problem, prop: Property, options: Options) -> Verdict:
        """Verified (unsat: proof), Falsified (replayed model), or Unknown(reason)."""
        t0 = time.perf_counter()
        deadline = options.deadline()
        query = query_for(prop)
        try:
            d = self.decide(problem, query, options, deadline)
        except KeyboardInterrupt:
            return Unknown("interrupted", self.name, time.perf_counter() - t0)
        dt = time.perf_counter() - t0
        method = self.name + (f" ({d.note})" if d.note else "")
        if d.status == "holds":
            return Verified(method, dt)
        if d.status == "violated":
            assert d.counterexample is not None
            return Falsified(d.counterexample, method, dt)
        return Unknown(d.reason, method, dt)

    def optimise(self, problem: Problem, objective: Objective, options: Options) -> Bracket:
        """A proved bracket of ``objective`` by bisection over refutation queries."""
        from encoders.bisect import optimise

        return optimise(self, problem, objective, options)
