"""The bound engine (``--backend bounds``, the default): sound differential interval
bounds with input branch and bound, and a gradient falsifier for the other side.

Guarantees: ``Verified`` only when every box of the input region is
certified by outward-rounded differential interval bounds over the whole
parameter box; ``Falsified`` only with a counterexample that
``replay.confirm`` reproduced on onnxruntime; every :class:`Bracket` has a
proved side (interval bounds) and a concrete side (a snapped witness whose
value is itself bounded soundly, so it holds in real arithmetic).
"""

from __future__ import annotations

import time

import numpy as np

from paramverify.bounds.branch import SearchResult
from paramverify.bounds.falsify import ascend, flip_score
from paramverify.bounds.interval import down, up
from paramverify.bounds.searches import (
    FlipWitness,
    classes_of,
    nominal_params,
    scaled_problem,
    search_change,
    search_flips,
    sound_flip,
)
from paramverify.bounds.sound import box_outputs, label_kept_certified
from paramverify.errors import SpecError
from paramverify.options import Deadline, Options
from paramverify.properties import (
    LabelInvariance,
    MarginLabelInvariance,
    MaxDelta,
    MaxEpsilon,
    MinSigma,
    Objective,
    OutputBound,
    Problem,
    Property,
    margins,
)
from paramverify.replay import confirm
from paramverify.results import (
    Bracket,
    Counterexample,
    Falsified,
    Unknown,
    Verdict,
    Verified,
)

_KERNEL = "differential interval bounds"


def _method(res: SearchResult, what: str) -> str:
    split = "input branch-and-bound" if res.boxes > 1 else "no input splitting"
    return f"bounds: {_KERNEL} + {split} ({res.boxes} boxes){what}"


def _incomplete_note(res: SearchResult) -> str:
    notes = {
        "deadline": "stopped at the time limit before reaching the tolerance",
        "max-splits": "stopped at max_splits boxes before reaching the tolerance",
        "interrupted": "interrupted; the bracket is the best one proved so far",
        "exhausted": "no input box left to split (a point region); parameter-space splitting is not implemented",
    }
    return notes.get(res.reason, res.reason)


class BoundsEngine:
    """Sound bound propagation + branch and bound (see the module docstring)."""

    name: str = "bounds"
    capabilities: frozenset[str] = frozenset({"sigmoid", "tanh", "softmax", "global", "optimise"})

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def unavailable_reason(cls) -> str:
        return ""

    # ------------------------------------------------------------------ verify
    def verify(self, problem: Problem, prop: Property, options: Options) -> Verdict:
        """Verified / Falsified (replayed) / Unknown for Def 1-5 on the problem's region."""
        t0 = time.monotonic()
        deadline = options.deadline()
        if isinstance(prop, OutputBound):
            res = search_change(problem, options, deadline, verify_at=prop.epsilon, refute_at=prop.epsilon)
            elapsed = time.monotonic() - t0
            method = _method(res, "")
            if res.reason == "below-threshold":
                return Verified(method, elapsed)
            if res.reason == "above-threshold":
                w: Counterexample = res.witness
                ce = confirm(problem, prop, w.input, w.parameters)
                if ce is not None:
                    return Falsified(ce, method + " + gradient falsifier", time.monotonic() - t0)
                return Unknown("a violation found in real arithmetic did not reproduce in float64/onnxruntime", method, elapsed)
            return Unknown(f"{_incomplete_note(res)}; max change is in [{res.lower:.6g}, {res.upper:.6g}]", method, elapsed)
        if isinstance(prop, (LabelInvariance, MarginLabelInvariance)):
            sigma = prop.sigma if isinstance(prop, MarginLabelInvariance) else 0.0
            res = search_flips(problem, classes_of(problem), options, deadline, verify_sigma=sigma)
            elapsed = time.monotonic() - t0
            method = _method(res, "")
            if res.reason == "below-threshold":
                return Verified(method, elapsed)
            if res.reason == "above-threshold":
                fw: FlipWitness = res.witness
                ce = confirm(problem, prop, fw.counterexample.input, fw.counterexample.parameters)
                if ce is not None:
                    return Falsified(ce, method + " + gradient falsifier", time.monotonic() - t0)
                return Unknown("a label flip found in real arithmetic did not reproduce on onnxruntime", method, elapsed)
            return Unknown(f"{_incomplete_note(res)}; some boxes could be neither certified nor refuted", method, elapsed)
        raise SpecError("property", f"unsupported property {prop!r}")

    # ---------------------------------------------------------------- optimise
    def optimise(self, problem: Problem, objective: Objective, options: Options) -> Bracket:
        """A proved bracket for MaxEpsilon, MinSigma(cls) or MaxDelta."""
        t0 = time.monotonic()
        deadline = options.deadline()
        if isinstance(objective, MaxEpsilon):
            res = search_change(problem, options, deadline)
            return self._bracket("max_epsilon", res, t0, options.tolerance, res.witness)
        if isinstance(objective, MinSigma):
            classes = classes_of(problem)
            if objective.cls not in classes:
                raise SpecError("cls", f"class {objective.cls} does not exist", f"choose from {classes}")
            res = search_flips(problem, [objective.cls], options, deadline)
            w = res.witness.counterexample if isinstance(res.witness, FlipWitness) else None
            note = "" if w is not None or res.upper > 0 else "no label of this class can flip: sigma = 0"
            return self._bracket("min_sigma", res, t0, options.tolerance, w, note, {"class": objective.cls})
        if isinstance(objective, MaxDelta):
            return max_delta(problem, objective, options, deadline, t0)
        raise SpecError("objective", f"unsupported objective {objective!r}")

    @staticmethod
    def _bracket(
        quantity: str, res: SearchResult, t0: float, tolerance: float, w: Counterexample | None, note: str = "", extra: dict | None = None
    ) -> Bracket:
        complete = res.complete and res.upper - res.lower <= tolerance
        if not complete:
            note = "; ".join(s for s in (note, _incomplete_note(res)) if s)
        return Bracket(
            quantity, res.lower, res.upper, time.monotonic() - t0, _method(res, " + gradient falsifier"), "upper",
            witness=w, complete=complete, note=note, extra={"boxes": res.boxes, **(extra or {})},
        )


# ---------------------------------------------------------------------------
# MaxDelta


def _scale_of(problem: Problem, params: dict[str, np.ndarray]) -> float:
    """The smallest t (rounded up) with ``params`` inside ``box.scaled(t)``."""
    box = problem.box
    t = 0.0
    for n in box.names:
        dev = params[n] - box.nominal[n]
        rad = np.where(dev >= 0, box.hi[n] - box.nominal[n], box.nominal[n] - box.lo[n])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(dev == 0, 0.0, up(up(np.abs(dev)) / down(np.abs(rad))))
        t = max(t, float(np.max(r, initial=0.0)))
    return float(up(up(t) * (1 + 1e-12)))


class _DeltaState:
    def __init__(self, t_max: float) -> None:
        self.lower = 0.0
        self.upper = t_max
        self.witness: Counterexample | None = None
        self.boxes = 0


def _certify(problem: Problem, t: float, sigma: float | None, options: Options, deadline: Deadline, st: _DeltaState) -> bool | FlipWitness | None:
    """True: labels provably kept under box.scaled(t); a FlipWitness: a certain flip; None: undecided."""
    sp = scaled_problem(problem, t)
    if problem.region.is_point:
        out = box_outputs(sp.graph, sp.box, problem.region.lo[None], problem.region.hi[None])
        st.boxes += 1
        return True if bool(label_kept_certified(out, problem.level, sigma)[0]) else None
    res = search_flips(sp, classes_of(sp), options, deadline, verify_sigma=sigma or 0.0)
    st.boxes += res.boxes
    if res.reason == "below-threshold":
        return True
    if res.reason == "above-threshold" and isinstance(res.witness, FlipWitness):
        return res.witness
    return None


def _flip_at_point(problem: Problem, t: float, sigma: float | None) -> FlipWitness | None:
    """Parameter ascent at the point x0 towards a flip of its nominal label."""
    sp = scaled_problem(problem, t)
    x0 = problem.region.lo
    y0 = problem.graph.evaluate(x0)
    if sigma is not None and margins(y0, problem.level)[0] < sigma:
        return None
    cls = int(y0[0, 0] >= problem.level) if problem.binary else int(np.argmax(y0[0]))
    cand = ascend(sp.graph, sp.box, x0, x0, x0, nominal_params(sp.box), flip_score(cls, problem.level, problem.binary), 8)
    got = sound_flip(sp, cand.x, cand.params, cls)
    return None if got is None else got.witness


def _record_flip(problem: Problem, fw: FlipWitness, st: _DeltaState) -> None:
    t_w = _scale_of(problem, fw.counterexample.parameters)
    if t_w <= st.upper:
        st.upper = t_w
        st.witness = fw.counterexample
    elif st.witness is None:
        st.witness = fw.counterexample  # flips just above the cap: kept as evidence only


def max_delta(problem: Problem, objective: MaxDelta, options: Options, deadline: Deadline, t0: float) -> Bracket:
    """Bisection on t: certified t raise the lower end, witnessed flips lower the upper end."""
    sigma = objective.sigma
    st = _DeltaState(objective.t_max)
    if problem.region.is_point and sigma is not None:
        y0 = problem.graph.evaluate(problem.region.lo)
        if margins(y0, problem.level)[0] < sigma:
            return Bracket("max_delta", objective.t_max, objective.t_max, time.monotonic() - t0,
                           "bounds: the point's margin is below sigma, so no label is constrained", "lower",
                           note="vacuous: margin < sigma", extra={"sigma": sigma})
    search_hi = objective.t_max
    first = True
    stop = ""
    try:
        while st.upper - st.lower > options.tolerance and search_hi - st.lower > options.tolerance:
            if deadline.expired():
                stop = "stopped at the time limit"
                break
            t = objective.t_max if first else (st.lower + min(search_hi, st.upper)) / 2
            first = False
            got = _certify(problem, t, sigma, options, deadline, st)
            if got is True:
                st.lower = t
            else:
                if isinstance(got, FlipWitness):
                    _record_flip(problem, got, st)
                elif problem.region.is_point:
                    fw = _flip_at_point(problem, t, sigma)
                    if fw is not None:
                        _record_flip(problem, fw, st)
                search_hi = min(search_hi, t)
            options.progress.update(f"max delta: t = {t:.6g}", st.lower, st.upper)
    except KeyboardInterrupt:
        stop = "interrupted"
    if not stop and deadline.expired() and st.upper - st.lower > options.tolerance:
        stop = "stopped at the time limit"
    complete = not stop and st.upper - st.lower <= options.tolerance
    note = stop
    if not complete and not stop:
        note = (
            "bounds could neither certify nor refute some t in the gap (a deeper net's bounds are loose at a point, "
            "or float32 witnesses cannot get closer to the flip boundary)"
        )
    if st.witness is None and st.upper == objective.t_max and st.lower < objective.t_max:
        note = "; ".join(s for s in (note, "no flip found up to t_max; the upper end is t_max") if s)
    where = "input branch-and-bound" if not problem.region.is_point else "the point x0"
    return Bracket(
        "max_delta", st.lower, st.upper, time.monotonic() - t0,
        f"bounds: bisection on t with {_KERNEL} at {where} ({st.boxes} boxes) + gradient falsifier", "lower",
        witness=st.witness, complete=complete, note=note, extra={"boxes": st.boxes, **({"sigma": sigma} if sigma is not None else {})},
    )
