"""The bound engine (``--backend bounds``, the default).

* Point regions (local properties): CROWN-style linear bounds with
  perturbed weights and best-first neuron-split branch and bound
  (:mod:`paramverify.bounds.point`).
* Box regions (global properties): differential interval bounds
  intersected with differential CROWN (both networks traced with one shared
  input) and input branch and bound (:mod:`paramverify.bounds.searches`).

Both pair the proof with a gradient falsifier for the other side.
Guarantees: ``Verified`` only when every domain of the region is certified
by outward-rounded sound bounds over the whole parameter box; ``Falsified``
only with a counterexample that ``replay.confirm`` reproduced on
onnxruntime; every :class:`Bracket` has a proved side and a concrete side
(a snapped witness whose value is itself bounded soundly, so it holds in
real arithmetic).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from paramverify.bounds.branch import SearchResult
from paramverify.bounds.exact import exact_decision, near_boundary, only_nominal
from paramverify.bounds.interval import down, up
from paramverify.bounds.local import nominal_enclosure
from paramverify.bounds.margins import SplitOutcome, box_label_certified, certify_by_splits
from paramverify.bounds.point import LabelResult, PointResult, point_change, point_labels
from paramverify.bounds.searches import (
    FlipWitness,
    classes_of,
    confirm_in_box,
    scaled_problem,
    search_change,
    search_flips,
)
from paramverify.errors import SpecError
from paramverify.options import Deadline, NullProgress, Options
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
)
from paramverify.quantized.attack import LabelSearch, label_disagreement
from paramverify.replay import witness
from paramverify.results import (
    Bracket,
    Counterexample,
    Falsified,
    MarginBracket,
    Unknown,
    Verdict,
    Verified,
)

_KERNEL = "differential interval + linear bounds"
_LINEAR = "CROWN with perturbed weights"


def _point_method(res: PointResult | LabelResult | int, what: str = "") -> str:
    n = res if isinstance(res, int) else res.domains
    if not isinstance(res, int) and res.how == "lp":
        return (f"bounds: first layer exact + LP branch and bound with Anderson cuts, weak-duality bounds "
                f"({n} domains){what}")
    if not isinstance(res, int) and res.how == "params":
        return f"bounds: {_LINEAR} + neuron splits exhausted, then parameter-box branch-and-bound ({n} pieces){what}"
    split = "neuron-split branch-and-bound" if n > 1 else "no neuron splitting"
    return f"bounds: {_LINEAR} + {split} ({n} domains){what}"


def _point_note(reason: str) -> str:
    notes = {
        "deadline": "stopped at the time limit before reaching the tolerance",
        "max-splits": "stopped at max_splits domains before reaching the tolerance",
        "interrupted": "interrupted; the bracket is the best one proved so far",
        "exhausted": "no unstable neuron left to split in the worst domain; the bound is as tight as the relaxation gets",
        "stalled": "no unstable neuron left to split, and splitting the parameter box stopped lowering the bound",
    }
    return notes.get(reason, reason)


def _method(res: SearchResult, what: str) -> str:
    split = "input branch-and-bound" if res.boxes > 1 else "no input splitting"
    return f"bounds: {_KERNEL} + {split} ({res.boxes} boxes){what}"


def _incomplete_note(res: SearchResult) -> str:
    notes = {
        "deadline": "stopped at the time limit before reaching the tolerance",
        "max-splits": "stopped at max_splits boxes before reaching the tolerance",
        "interrupted": "interrupted; the bracket is the best one proved so far",
        "exhausted": ("no input box left to split (a point region); this search does not split the parameter box "
                      "(the largest change and label certificates at a point do)"),
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
        if only_nominal(problem) and (isinstance(prop, OutputBound) or problem.binary):
            # f_p is f_p0 itself: no output moves, and one output stays on its side of the level
            # (k classes are not shortcut: a tie in the region is a violation even at p0)
            return Verified("bounds: the box holds only the nominal parameters (exact: nothing changes)", time.monotonic() - t0)
        if problem.region.is_point:
            return self._verify_point(problem, prop, options, deadline, t0)
        if isinstance(prop, OutputBound):
            res = search_change(problem, options, deadline, verify_at=prop.epsilon, refute_at=prop.epsilon)
            elapsed = time.monotonic() - t0
            method = _method(res, "")
            if res.reason == "below-threshold":
                return Verified(method, elapsed)
            if res.reason == "above-threshold":
                w: Counterexample = res.witness
                ce = confirm_in_box(problem, prop, w.input, w.parameters)
                if ce is not None:
                    return Falsified(ce, method + " + gradient falsifier", time.monotonic() - t0)
                return Unknown("a violation found in real arithmetic did not reproduce in float64/onnxruntime", method, elapsed)
            return Unknown(f"{_incomplete_note(res)}; max change is in [{res.lower:.6g}, {res.upper:.6g}]", method, elapsed)
        if isinstance(prop, LabelInvariance) and box_label_certified(problem):
            # one CROWN pass on the margin rows of both networks: keeps the correlation between
            # the two logits that the per-output search below loses
            return Verified("bounds: CROWN margin rows of both networks over the box", time.monotonic() - t0)
        found: LabelSearch | None = None
        split: SplitOutcome | None = None
        if isinstance(prop, LabelInvariance) and problem.graph.replay_models is not None:
            left = deadline.remaining()
            # up to half the time: the search spends it only where the float margin comes near the
            # int8-float gap, where the proofs below have little chance anyway
            found = label_disagreement(problem, deadline.within(None if left is None else max(0.5, 0.5 * left)), seed=options.seed,
                                       progress=options.progress)
            if found.counterexample is not None:
                return Falsified(found.counterexample, "bounds: float-margin descent with int8 label checks (replayed on both models)",
                                 time.monotonic() - t0)
            split = _margin_certified(problem, deadline, options)
            if split.certified:
                return Verified("bounds: CROWN margin rows of both networks over the box (input splitting by the float margin's slope)",
                                time.monotonic() - t0)
        if isinstance(prop, (LabelInvariance, MarginLabelInvariance)):
            sigma = prop.sigma if isinstance(prop, MarginLabelInvariance) else 0.0
            res = search_flips(problem, classes_of(problem), options, deadline, verify_sigma=sigma)
            elapsed = time.monotonic() - t0
            method = _method(res, "")
            if res.reason == "below-threshold":
                return Verified(method, elapsed)
            if res.reason == "above-threshold":
                fw: FlipWitness = res.witness
                ce = confirm_in_box(problem, prop, fw.counterexample.input, fw.counterexample.parameters)
                if ce is not None:
                    return Falsified(ce, method + " + gradient falsifier", time.monotonic() - t0)
                return Unknown("a label flip found in real arithmetic did not reproduce on onnxruntime", method, elapsed)
            reason = f"{_incomplete_note(res)}; some boxes could be neither certified nor refuted"
            margin = _margin_bracket(split, found)
            if margin is not None:
                method = f"bounds: CROWN margin rows on {margin.pieces} pieces of the box, then {method.removeprefix('bounds: ')}"
                reason = f"{reason}; {margin.describe()}"
            return Unknown(reason, method, elapsed, margin)
        raise SpecError("property", f"unsupported property {prop!r}")

    def _verify_point(self, problem: Problem, prop: Property, options: Options, deadline: Deadline, t0: float) -> Verdict:
        verdict, gap = self._verify_point_bounds(problem, prop, options, deadline, t0)
        if isinstance(verdict, Unknown) and not deadline.expired() and near_boundary(problem, gap):
            # a boundary case outward rounding cannot decide (a change exactly epsilon, an
            # output exactly at the level, a box of width 0): exact rational arithmetic at x0
            exact = exact_decision(problem, prop, deadline)
            if exact is True:
                return Verified(f"{verdict.method} + exact rational interval arithmetic at x0", time.monotonic() - t0)
            if exact is False:
                point = {n: np.asarray(problem.box.lo[n], dtype=np.float64) for n in problem.box.names}  # a box of width 0
                ce = confirm_in_box(problem, prop, problem.region.lo, point)
                if ce is not None:
                    return Falsified(ce, f"{verdict.method} + exact rational evaluation at x0", time.monotonic() - t0)
                return Unknown("violated in exact rational arithmetic at x0, but the float evaluations "
                               "(float64 / onnxruntime) do not show it: no replayed counterexample",
                               verdict.method, time.monotonic() - t0)
        return verdict

    def _verify_point_bounds(self, problem: Problem, prop: Property, options: Options, deadline: Deadline,
                             t0: float) -> tuple[Verdict, float]:
        """The verdict of the float bounds, and by how much the proved bound misses the threshold."""
        if isinstance(prop, OutputBound):
            res = point_change(problem, options, deadline, verify_at=prop.epsilon)
            method = _point_method(res)
            if res.reason == "holds":
                return Verified(method, time.monotonic() - t0), 0.0
            if res.reason == "refuted" and res.witness is not None:
                ce = confirm_in_box(problem, prop, res.witness.input, res.witness.parameters)
                if ce is not None:
                    return Falsified(ce, method + " + gradient falsifier", time.monotonic() - t0), 0.0
                why = "a violation found in real arithmetic did not reproduce in float64/onnxruntime"
                return Unknown(why, method, time.monotonic() - t0), np.inf
            why = f"{_point_note(res.reason)}; max change is in [{res.lower:.6g}, {res.upper:.6g}]"
            return Unknown(why, method, time.monotonic() - t0), res.upper - prop.epsilon
        if isinstance(prop, (LabelInvariance, MarginLabelInvariance)):
            if isinstance(prop, MarginLabelInvariance) and _margin_below(problem, prop.sigma):
                return Verified("bounds: the point's nominal margin is provably below sigma (vacuous)", time.monotonic() - t0), 0.0
            lab = point_labels(problem, prop, options, deadline)
            method = _point_method(lab)
            if lab.status == "holds":
                return Verified(method, time.monotonic() - t0), 0.0
            if lab.status == "violated" and lab.counterexample is not None:
                how = " + exact rational tie at x0" if lab.reason == "tie" else " + gradient falsifier"
                return Falsified(lab.counterexample, method + how, time.monotonic() - t0), 0.0
            why = f"{_point_note(lab.reason)}; some label rows could be neither certified nor refuted"
            return Unknown(why, method, time.monotonic() - t0), lab.upper
        raise SpecError("property", f"unsupported property {prop!r}")

    # ---------------------------------------------------------------- optimise
    def optimise(self, problem: Problem, objective: Objective, options: Options) -> Bracket:
        """A proved bracket for MaxEpsilon, MinSigma(cls) or MaxDelta."""
        t0 = time.monotonic()
        deadline = options.deadline()
        if isinstance(objective, MaxEpsilon) and only_nominal(problem):
            nominal = {n: np.asarray(problem.box.nominal[n], dtype=np.float64) for n in problem.box.names}
            return Bracket("max_epsilon", 0.0, 0.0, time.monotonic() - t0,
                           "bounds: the box holds only the nominal parameters (exact: nothing changes)", "upper",
                           witness=witness(problem, problem.region.lo, nominal, note="the nominal parameters"), complete=True)
        if isinstance(objective, MaxEpsilon) and problem.region.is_point:
            pres = point_change(problem, options, deadline)
            complete = pres.complete and pres.upper - pres.lower <= options.tolerance
            return Bracket(
                "max_epsilon", pres.lower, pres.upper, time.monotonic() - t0, _point_method(pres, " + gradient falsifier"), "upper",
                witness=pres.witness, complete=complete, note="" if complete else _point_note(pres.reason),
                extra={"domains": pres.domains},
            )
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
    return 0.0 if t == 0.0 else float(up(up(t) * (1 + 1e-12)))  # 0: the parameters are all nominal


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
        # one bisection step gets a share of the remaining time and a few splits
        left = deadline.remaining()
        sub = Deadline(None if left is None else time.monotonic() + max(0.2, left / 8))
        sub_opts = replace(options, max_splits=min(options.max_splits, 64), progress=NullProgress())
        lab = point_labels(problem, LabelInvariance(), sub_opts, sub, scale=t)
        st.boxes += lab.domains
        if lab.status == "holds":
            return True
        if lab.status == "violated" and lab.counterexample is not None:
            y0 = problem.graph.evaluate(lab.counterexample.input)
            cls = int(y0[0, 0] >= problem.level) if problem.binary else int(np.argmax(y0[0]))
            return FlipWitness(lab.counterexample, cls)
        return None
    res = search_flips(sp, classes_of(sp), options, deadline, verify_sigma=sigma or 0.0)
    st.boxes += res.boxes
    if res.reason == "below-threshold":
        return True
    if res.reason == "above-threshold" and isinstance(res.witness, FlipWitness):
        return res.witness
    return None


def _margin_certified(problem: Problem, deadline: Deadline, options: Options) -> SplitOutcome:
    """For an int8 lowering: label certificates by margin rows on pieces of the box, with 75%
    of the remaining time (the rest goes to the interval search and its falsifier)."""
    left = deadline.remaining()
    sub = Deadline(None if left is None else time.monotonic() + 0.75 * left)
    return certify_by_splits(problem, sub, progress=options.progress)


def _margin_bracket(split: SplitOutcome | None, found: LabelSearch | None) -> MarginBracket | None:
    """The int8 margin bracket of an undecided label agreement, when the split proved a floor."""
    if split is None or split.floor is None or split.cls is None or not np.isfinite(split.floor):
        return None
    upper = None
    if found is not None and found.cls == split.cls and np.isfinite(found.lowest_margin):
        upper = found.lowest_margin
    return MarginBracket(split.cls, split.floor, upper, split.pieces)


def _margin_below(problem: Problem, sigma: float) -> bool:
    """True when the nominal margin of the point x0 is provably < sigma (Def 5 is then vacuous there)."""
    f0 = nominal_enclosure(problem)
    if f0.lo.size == 1:
        return bool(f0.hi[0] < problem.level + sigma and f0.lo[0] > problem.level - sigma)
    second_lo = np.sort(f0.lo)[-2]
    return bool(up(np.max(f0.hi) - second_lo) < sigma)


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
    if problem.region.is_point and sigma is not None and _margin_below(problem, sigma):
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
    where = "input branch-and-bound" if not problem.region.is_point else f"the point x0 ({_LINEAR}, neuron splits)"
    return Bracket(
        "max_delta", st.lower, st.upper, time.monotonic() - t0,
        f"bounds: bisection on t with {_KERNEL} at {where} ({st.boxes} boxes) + gradient falsifier", "lower",
        witness=st.witness, complete=complete, note=note, extra={"boxes": st.boxes, **({"sigma": sigma} if sigma is not None else {})},
    )
