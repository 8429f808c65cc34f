"""Optimisation by bisection over refutation queries: MaxEpsilon, MinSigma, MaxDelta.

Each probe is one :meth:`~encoders.decision.Decider.decide` call (the z3 or dReal engine).  An unsat
answer proves one side of the bracket; a solver model, snapped and
evaluated on the model, gives the other (witness) side.  Witness values are
computed in exact rational arithmetic on the snapped witness where the ops
allow it (rounded towards the inside of the bracket), so both ends refer to
the same real-arithmetic semantics; otherwise the float64 value is used and
clamped to the proved end (noted in the bracket).

Search and bracket are kept apart: a sat answer whose model did not replay
still steers the search (the solver's real model exists), but only
witnessed values move the reported bracket.  A run that hits the deadline,
a solver ``unknown`` or KeyboardInterrupt returns the best valid bracket
with ``complete=False`` and a note.

MaxDelta's t is the scale of the real box ``p0 -/+ t r``.  Probes run on
:func:`scaled_outward` boxes (exact scaling, rounded outward), so a proof at t
covers the real box at t; a witness's scale is bounded from above against a
lower bound on the real radius (:func:`witness_scale_bound`), so a flip at
exactly t* (an output exactly at the level, a label flipped there) gives an
upper end >= t*: the bracket always contains the optimum.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np

from encoders.decision import Decider, Decision
from encoders.encode import Head, LabelQuery, OutputQuery, Query, choose_head, without_trailing_identity
from encoders.rational import sigmoid_bounds, to_fraction
from encoders.symbolic import exact_outputs
from paramverify.errors import CapabilityError, SpecError
from paramverify.ops.activation import Sigmoid
from paramverify.options import Deadline, Options
from paramverify.properties import (
    MaxDelta,
    MaxEpsilon,
    MinSigma,
    Objective,
    Problem,
    margins,
)
from paramverify.replay import witness as make_witness
from paramverify.results import Bracket, Counterexample
from paramverify.specs import ParamBox


#: extra probes spent moving a lagging witness end towards the solver's knowledge
POLISH_PROBES = 6


def floor_float(q: Fraction) -> float:
    """The largest float64 <= q."""
    f = q.numerator / q.denominator
    return float(np.nextafter(f, -np.inf)) if Fraction(f) > q else f


def ceil_float(q: Fraction) -> float:
    """The smallest float64 >= q."""
    f = q.numerator / q.denominator
    return float(np.nextafter(f, np.inf)) if Fraction(f) < q else f


# ---------------------------------------------------------------------------
# exact witness values


def head_values(head: Head, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[list[Fraction], list[Fraction]] | None:
    """Exact nominal and perturbed head outputs at a witness, or None (no rational semantics)."""
    try:
        return exact_outputs(head.graph, x), exact_outputs(head.graph, x, params)
    except CapabilityError:
        return None


def _sig_interval(head: Head, z: Fraction) -> tuple[Fraction, Fraction]:
    return sigmoid_bounds(z) if head.kind == "logit" else (z, z)


def output_change(problem: Problem, head: Head, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[float, bool]:
    """A lower bound on max_i |f_p(x)_i - f_p0(x)_i| and whether it is exact-arithmetic."""
    hv = head_values(head, x, params)
    if hv is None or head.kind == "order":
        y0, yp = problem.graph.evaluate(x), problem.graph.evaluate(x, params)
        return float(np.max(np.abs(yp - y0))), False
    best = Fraction(0)
    for z0, zp in zip(*hv):
        a_lo, a_hi = _sig_interval(head, z0)
        b_lo, b_hi = _sig_interval(head, zp)
        best = max(best, b_lo - a_hi, a_lo - b_hi)
    return floor_float(best), True


def witness_margin(problem: Problem, head: Head, x: np.ndarray) -> tuple[float, bool]:
    """A lower bound on the nominal margin at ``x`` and whether it is exact-arithmetic."""
    try:
        z0 = exact_outputs(head.graph, x)
    except CapabilityError:
        z0 = None
    if z0 is None or head.kind == "order":
        return float(margins(problem.graph.evaluate(x), problem.level)[0]), False
    level = to_fraction(problem.level)
    if len(z0) == 1:
        lo, hi = _sig_interval(head, z0[0])
        return floor_float(max(Fraction(0), lo - level, level - hi)), True
    top = sorted(z0)
    return floor_float(top[-1] - top[-2]), True


def _deviations(box: ParamBox, params: dict[str, np.ndarray]) -> Iterator[tuple[Fraction, Any, Any]]:
    """``(p - p0, p0, the box end on the side of the deviation)`` for every parameter off its nominal value (exact)."""
    for n in box.names:
        p0 = box.nominal[n].reshape(-1)
        for p, nom, lo, hi in zip(np.asarray(params[n]).reshape(-1), p0, box.lo[n].reshape(-1), box.hi[n].reshape(-1)):
            dev = to_fraction(p) - to_fraction(nom)
            if dev != 0:
                yield dev, nom, hi if dev > 0 else lo


def scale_of(problem: Problem, params: dict[str, np.ndarray]) -> Fraction:
    """The smallest t with ``params`` inside ``box.scaled(t)`` (exact, on the float box's ends)."""
    t = Fraction(0)
    for dev, nom, end in _deviations(problem.box, params):
        room = to_fraction(end) - to_fraction(nom)
        if room == 0:
            return Fraction(-1)  # outside every scaled box: cannot happen for a snapped witness
        t = max(t, dev / room)
    return t


#: relative allowance for the roundings that made a box's float ends from its real radius
#: (a radius computed with a few float operations, e.g. ``fraction * |p0|``, is off by < 8 ulps)
_RADIUS_ROUNDING = Fraction(1, 2**50)


def _inner_room(nom: float, end: float) -> Fraction | None:
    """A lower bound on the real radius behind one float end of a box, or None.

    Boxes are built as ``p0 -/+ r`` rounded to nearest and then one ulp
    outward (:func:`paramverify.specs._box`), so the end two ulps inward is at
    most ``p0 + r`` whenever ``r`` is a float; the factor ``1 - 2^-50`` covers a
    radius that was itself rounded.  None when that leaves no room (a radius of
    a few ulps): no scale can then be bounded from above.
    """
    towards = np.float64(nom)
    inner = float(np.nextafter(np.nextafter(np.float64(end), towards), towards))
    room = (to_fraction(inner) - to_fraction(nom)) * (1 - _RADIUS_ROUNDING)
    if room == 0 or (room > 0) != (end > nom):
        return None
    return abs(room)


def witness_scale_bound(problem: Problem, params: dict[str, np.ndarray]) -> Fraction | None:
    """An upper bound on the real scale t of a witness: ``|p - p0| <= t r`` for the real radius r.

    :func:`scale_of` measures a witness against the box's float ends, which
    lie up to a couple of ulps outside the real box ``p0 -/+ r``; a flip found
    at the real scale t* would then be reported a hair below t*, and the
    bracket of the largest delta would exclude its own optimum.  Here each
    deviation is divided by a lower bound on the real radius (see
    :func:`_inner_room`), so the result is never below the witness's real
    scale.  None if some deviation has no bounded scale.
    """
    t = Fraction(0)
    for dev, nom, end in _deviations(problem.box, params):
        room = _inner_room(float(nom), float(end))
        if room is None:
            return None
        t = max(t, abs(dev) / room)
    return t


def scaled_outward(box: ParamBox, t: float) -> ParamBox:
    """``box.scaled(t)`` computed exactly and rounded outward to float64.

    ``p0 + t (end - p0)`` rounded to nearest can fall a hair inside the real
    scaled box (most for small t and large p0), so a proof on
    ``box.scaled(t)`` need not cover every parameter at scale t; this box does.
    """
    tq = to_fraction(t)
    lo: dict[str, np.ndarray] = {}
    hi: dict[str, np.ndarray] = {}
    for n in box.names:
        nom = box.nominal[n]
        lo[n] = _outward_affine(nom, box.lo[n], tq, floor_float)
        hi[n] = _outward_affine(nom, box.hi[n], tq, ceil_float)
    return ParamBox(box.nominal, MappingProxyType(lo), MappingProxyType(hi), f"{box.description} x {t:g}")


def _outward_affine(nom: np.ndarray, end: np.ndarray, t: Fraction, rnd: Any) -> np.ndarray:
    flat = [rnd(to_fraction(a) + t * (to_fraction(b) - to_fraction(a))) for a, b in zip(nom.reshape(-1), end.reshape(-1))]
    return np.array(flat, dtype=np.float64).reshape(np.shape(end))


# ---------------------------------------------------------------------------
# the run state shared by the three objectives


@dataclass
class _Run:
    engine: Decider
    problem: Problem
    options: Options
    quantity: str
    proof_side: str
    deadline: Deadline = field(init=False)
    t0: float = field(default_factory=time.perf_counter)
    queries: int = 0
    notes: list[str] = field(default_factory=list)
    stopped: str = ""
    approximate: bool = False
    head_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.deadline = self.options.deadline()

    def probe(self, query: Query, box: Any = None) -> Decision | None:
        """One query; None (and ``stopped`` set) when the run must stop."""
        if self.deadline.expired():
            self.stopped = "time budget exhausted"
            return None
        self.queries += 1
        d = self.engine.decide(self.problem, query, self.options, self.deadline, box)
        if d.note:
            self.head_note = d.note
        if d.status == "unknown":
            self.stopped = f"solver gave up: {d.reason}"
            return None
        return d

    def report(self, lower: float, upper: float) -> None:
        self.options.progress.update(f"{self.quantity} in [{lower:.6g}, {upper:.6g}] ({self.queries} queries)", lower, upper)

    def bracket(self, lower: float, upper: float, wit: Counterexample | None, complete: bool) -> Bracket:
        notes = list(self.notes)
        if self.stopped:
            notes.insert(0, f"stopped early: {self.stopped}")
        if lower > upper:  # only possible with float64 witness values (no rational semantics)
            if self.proof_side == "upper":
                lower = upper
            else:
                upper = lower
            notes.append("float64 witness value clamped to the proved end")
        elif self.approximate:
            notes.append("witness value evaluated in float64 (the ops have no exact rational semantics)")
        method = self.engine.name + (f" ({self.head_note})" if self.head_note else "")
        return Bracket(
            self.quantity, lower, upper, time.perf_counter() - self.t0, method, self.proof_side,  # type: ignore[arg-type]
            wit, complete and not self.stopped, "; ".join(notes),
            {"queries": self.queries, "backend": self.engine.name, **self.extra},
        )


def optimise(engine: Decider, problem: Problem, objective: Objective, options: Options) -> Bracket:
    """Dispatch on the objective; see the module docstring for the guarantees."""
    if isinstance(objective, MaxEpsilon):
        return _max_epsilon(engine, problem, options)
    if isinstance(objective, MinSigma):
        return _min_sigma(engine, problem, objective, options)
    if isinstance(objective, MaxDelta):
        return _max_delta(engine, problem, objective, options)
    raise TypeError(f"unknown objective {objective!r}")


def _ends_in_sigmoid(problem: Problem) -> bool:
    g = without_trailing_identity(problem.graph)
    return bool(g.nodes) and isinstance(g.nodes[-1].op, Sigmoid) and g.nodes[-1].output == g.output_name


def _next_probe(search_lo: float, search_hi: float, start: float) -> float:
    if math.isinf(search_hi):
        return max(2 * search_lo, start)
    return (search_lo + search_hi) / 2


# ---------------------------------------------------------------------------
# MaxEpsilon: proof side upper


def _max_epsilon(engine: Decider, problem: Problem, options: Options) -> Bracket:
    run = _Run(engine, problem, options, "max_epsilon", "upper")
    tol = options.tolerance
    head = choose_head(problem, OutputQuery(Fraction(0)))
    x0 = problem.region.lo
    nominal = {n: problem.box.nominal[n] for n in problem.box.names}
    lower, wit = 0.0, make_witness(problem, x0, nominal, note="nominal parameters (output change 0)")
    upper = 1.0 if _ends_in_sigmoid(problem) else math.inf  # sigmoid outputs lie in (0, 1)
    search_lo, search_hi = 0.0, upper
    try:
        while upper - lower > tol and search_hi - search_lo > tol / 2:
            eps = _next_probe(max(search_lo, lower), search_hi, 1e-3)
            d = run.probe(OutputQuery(to_fraction(eps)))
            if d is None:
                break
            if d.status == "holds":
                upper = search_hi = eps
            else:
                search_lo = max(search_lo, eps)
                for xs, ps in d.models:
                    v, exact = output_change(problem, head, xs, ps)
                    if v > lower:
                        lower, wit = v, make_witness(problem, xs, ps, note="largest output change found")
                        run.approximate = run.approximate or not exact
            run.report(lower, upper)
    except KeyboardInterrupt:
        run.stopped = "interrupted"
    complete = upper - lower <= tol
    if not complete and not run.stopped:
        run.notes.append("search converged but the witness side lags (solver models lost value when snapped to float32)")
    return run.bracket(lower, upper, wit, complete)


# ---------------------------------------------------------------------------
# MinSigma(cls): proof side upper


def _min_sigma(engine: Decider, problem: Problem, objective: MinSigma, options: Options) -> Bracket:
    k = problem.graph.n_outputs
    n_classes = 2 if k == 1 else k
    if not isinstance(objective.cls, (int, np.integer)) or not 0 <= objective.cls < n_classes:
        raise SpecError("cls", f"must be a class index in 0..{n_classes - 1}, got {objective.cls!r}")
    cls = int(objective.cls)
    run = _Run(engine, problem, options, "min_sigma", "upper", extra={"class": cls})
    tol = options.tolerance
    head = choose_head(problem, LabelQuery(Fraction(1), cls))
    level = problem.level
    upper = max(abs(level), abs(1 - level)) if (k == 1 and _ends_in_sigmoid(problem)) else math.inf
    lower, wit = 0.0, None
    search_lo, search_hi = 0.0, upper
    try:
        d = run.probe(LabelQuery(None, cls))
        if d is not None and d.status == "holds":
            run.notes.append(f"no input of class {cls} can flip")
            return run.bracket(0.0, 0.0, None, True)
        if d is not None:
            lower, wit = _best_margin(problem, head, d, lower, wit, run)
            polish, target = 0, 0.0
            while upper - lower > tol:
                if search_hi - search_lo > tol / 2:
                    s = _next_probe(max(search_lo, lower), search_hi, 1.0)
                    target = search_lo
                elif polish < POLISH_PROBES and target > lower:
                    # the solver knows flips up to search_lo that did not replay: look a bit
                    # lower, where a flip has room to survive the float32 snapping
                    polish += 1
                    s = (lower + target) / 2
                else:
                    break
                d = run.probe(LabelQuery(to_fraction(s), cls))
                if d is None:
                    break
                if d.status == "holds":
                    upper = search_hi = min(search_hi, s)
                else:
                    search_lo = max(search_lo, s)
                    before = lower
                    lower, wit = _best_margin(problem, head, d, lower, wit, run)
                    if lower == before:
                        target = s
                run.report(lower, upper)
    except KeyboardInterrupt:
        run.stopped = "interrupted"
    complete = upper - lower <= tol
    if not complete and not run.stopped:
        run.notes.append("search converged but the witness side lags (solver models did not replay after snapping)")
    return run.bracket(lower, upper, wit, complete)


def _best_margin(problem: Problem, head: Head, d: Decision, lower: float, wit: Counterexample | None, run: _Run) -> tuple[float, Counterexample | None]:
    if d.status != "violated" or d.counterexample is None:
        return lower, wit
    m, exact = witness_margin(problem, head, d.counterexample.input)
    if m > lower:
        run.approximate = run.approximate or not exact
        return m, d.counterexample
    return lower, wit


# ---------------------------------------------------------------------------
# MaxDelta(sigma): proof side lower


def _max_delta(engine: Decider, problem: Problem, objective: MaxDelta, options: Options) -> Bracket:
    if not (objective.t_max > 0 and math.isfinite(objective.t_max)):
        raise SpecError("t_max", f"must be a finite number > 0, got {objective.t_max!r}")
    sigma = None if objective.sigma is None else to_fraction(objective.sigma)
    query = LabelQuery(sigma)
    run = _Run(engine, problem, options, "max_delta", "lower", extra={} if sigma is None else {"sigma": float(sigma)})
    tol = options.tolerance
    t_max = float(objective.t_max)
    # the quantity is min(t*, t_max): t_max is the upper end until a flip is witnessed
    lower, upper, wit = 0.0, t_max, None
    search_lo, search_hi = 0.0, math.inf
    try:
        if sigma is None or sigma == 0:  # ties at the nominal parameters flip already at t = 0
            d = run.probe(query, problem.box.scaled(0.0))
            if d is not None and d.status == "violated":
                return run.bracket(0.0, 0.0, d.counterexample, True)
        polish, target = 0, math.inf
        while not run.stopped and upper - lower > tol:
            polishing = False
            if search_hi - search_lo > tol / 2:
                t = min(t_max, _next_probe(search_lo, search_hi, 1.0))
                target = search_hi
            elif polish < POLISH_PROBES and upper - target > tol / 2:
                # flips known below search_hi did not replay: look a bit higher for robust ones
                # (a probe that lowers the witnessed end halves the gap and is not counted)
                polish, polishing = polish + 1, True
                t = (target + upper) / 2
            else:
                break
            d = run.probe(query, scaled_outward(problem.box, t))
            if d is None:
                break
            if d.status == "holds":
                lower = search_lo = max(search_lo, t)
                if t >= t_max:
                    run.notes.append(f"labels are kept up to t_max = {t_max:g}; the search stops there")
                    return run.bracket(t_max, t_max, None, True)
            else:
                search_hi = min(search_hi, t)
                tw = _witness_scale(problem, d.counterexample) if d.status == "violated" and d.counterexample else math.inf
                if tw < upper:
                    if polishing:  # progress: not counted against POLISH_PROBES
                        polish -= 1
                    upper, wit = tw, d.counterexample
                    search_hi = min(search_hi, tw)
                else:
                    target = t
            run.report(lower, upper)
    except KeyboardInterrupt:
        run.stopped = "interrupted"
    complete = upper - lower <= tol
    if wit is None and lower < t_max:
        run.notes.append("no flip witnessed below t_max; the upper end is t_max")
    elif not complete and not run.stopped:
        run.notes.append("search converged but the witness side lags (solver models did not replay after snapping)")
    return run.bracket(lower, upper, wit, complete)


def _witness_scale(problem: Problem, cx: Counterexample) -> float:
    """A float64 upper bound on the real scale of a witness (inf if none can be given).

    Not capped at the probed t: the probed box is rounded outward, so a
    witness inside it may lie a hair beyond the real box at scale t.
    """
    bound = witness_scale_bound(problem, cx.parameters)
    return math.inf if bound is None else ceil_float(bound)


__all__ = [
    "ceil_float", "floor_float", "optimise", "output_change", "scale_of", "scaled_outward",
    "witness_margin", "witness_scale_bound",
]
