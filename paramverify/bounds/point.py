"""Point-region queries of the bound engine: output change, labels, and the largest delta.

Proof side: :class:`~paramverify.bounds.local.SplitSearch` (CROWN with
perturbed weights + neuron splits).  Concrete side: the batched falsifier
(:func:`~paramverify.bounds.pgd.pgd`: restarts, momentum, vertex jumps) on
the rows with the largest bounds, then projected sign-gradient ascent over
the parameter box (:func:`~paramverify.bounds.falsify.ascend`) from the
relaxation's maximiser of each domain that becomes the largest during the
search; every candidate is snapped into
the box and re-evaluated soundly (:func:`~paramverify.bounds.searches.sound_change`)
or replayed on onnxruntime (:func:`~paramverify.replay.confirm`) before it
counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.bounds.autodiff import AutodiffKernel
from paramverify.bounds.exact import exact_nominal
from paramverify.bounds.falsify import Objective, ascend, output_change
from paramverify.bounds.interval import up
from paramverify.bounds.local import (
    Rows,
    SplitSearch,
    change_rows,
    holds,
    label_rows,
    nominal_enclosure,
)
from paramverify.bounds.mlplp import LPSearch, ReluMilp, build_milp, witness_params
from paramverify.bounds.paramsplit import Piece, param_split
from paramverify.bounds.pgd import (
    PGDSettings,
    RowObjective,
    change_objective,
    label_objective,
    pgd,
)
from paramverify.bounds.searches import confirm_in_box, nominal_params, sound_change
from paramverify.options import Deadline, Options
from paramverify.properties import Problem, Property
from paramverify.results import Counterexample

#: sign-gradient steps per falsifier attack on one row
ATTACK_STEPS = 12
#: share of the time limit the batched falsifier (:func:`~paramverify.bounds.pgd.pgd`) may use
PGD_SHARE = 0.5
#: the same for label certificates (the falsifier stops at the first flip; the splitting search needs the rest)
PGD_LABEL_SHARE = 0.15
#: the batched falsifier gets PGD_SHARE when the first proved bound exceeds this multiple of the quick
#: attacks' value (a wide bracket), else PGD_NARROW_SHARE
PGD_GATE = 1.2
PGD_NARROW_SHARE = 0.1
#: share of the time limit the LP branch and bound leaves unused (the caller still has to finish)
LP_RESERVE = 0.05
#: seconds one row's LP branch and bound runs before the row with the largest bound is chosen again
LP_SLICE_S = 1.0


def row_objective(coefs: np.ndarray) -> Objective:
    """``C . f_p(x)`` as a falsifier objective."""
    c = np.asarray(coefs, dtype=np.float64).reshape(1, -1)

    def obj(k: AutodiffKernel, yp: Any, y0: Any) -> Any:
        shape = k.shape(yp)
        flat = k.reshape(yp, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))
        return k.mul(flat, c)

    return obj


def _attack(problem: Problem, objective: Objective, start: Mapping[str, np.ndarray] | None = None,
            steps: int = ATTACK_STEPS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = problem.region.lo
    p0 = nominal_params(problem.box) if start is None else dict(start)
    cand = ascend(problem.graph, problem.box, x, x, x, p0, objective, steps)
    return cand.x, dict(cand.params)


def _strong(problem: Problem, obj: RowObjective, options: Options, deadline: Deadline, stop_above: float = np.inf,
            starts: list[Mapping[str, np.ndarray]] = (), share: float = PGD_SHARE) -> list:
    """The batched falsifier over the parameter box at x0: restarts (also from ``starts``), momentum,
    vertex jumps (candidates only); at most ``share`` of the time limit."""
    x = problem.region.lo
    limit = None if options.timeout_s is None else share * options.timeout_s
    return pgd(problem.graph, problem.box, x, x, obj, np.random.default_rng(options.seed), deadline, PGDSettings(),
               time_limit=limit, stop_above=stop_above, starts=[(x, p) for p in starts])


def _near(deadline: Deadline, options: Options) -> bool:
    """Too close to the deadline to start a falsifier attack (keeps a tenth of the budget)."""
    left = deadline.remaining()
    return left is not None and left <= 0.1 * (options.timeout_s or 0.0) + 0.05


@dataclass(frozen=True, eq=False)
class PointResult:
    """A proved ``upper`` (or a decision ``reason``) and the witnessed ``lower`` end of the largest change."""

    lower: float
    upper: float
    witness: Counterexample | None
    domains: int
    complete: bool
    reason: str
    #: "split": neuron-split branch and bound (local.py); "lp": LP branch and bound with cuts (mlplp.py);
    #: "params": neuron splits ran out, then the parameter box was split (paramsplit.py)
    how: str = "split"


# ---------------------------------------------------------------------------
# output change


def point_change(problem: Problem, options: Options, deadline: Deadline, verify_at: float | None = None) -> PointResult:
    """MaxEpsilon at x0 (``verify_at`` None) or the decision ``max change <= verify_at``.

    Decision reasons: "holds" (proved), "refuted" (the witness exceeds it),
    otherwise incomplete.
    """
    f0 = nominal_enclosure(problem)
    rows = change_rows(f0)
    k = f0.lo.size
    search = SplitSearch(problem, rows, deadline=deadline)
    best = sound_change(problem, problem.region.lo, nominal_params(problem.box))
    state = {"best": best}
    attacked: set[int] = set()

    def record(params: Mapping[str, np.ndarray]) -> float:
        """Keep ``params`` as the witness when their (sound) change beats the best one; the best value."""
        got = sound_change(problem, problem.region.lo, params)
        if got.value > state["best"].value:
            state["best"] = got
        return state["best"].value

    def row_change(r: int) -> Objective:
        return output_change(r % k, 1.0 if r < k else -1.0)

    def attack(r: int, splits: tuple) -> None:
        """Falsifier on row r: from the relaxation's maximiser of the domain, and (once) from nominal."""
        if _near(deadline, options):
            return
        starts = [search.candidate(r, splits)]
        if r not in attacked:
            attacked.add(r)
            starts.append(None)
        for start in starts:
            if start is not None:
                record(start)
            record(_attack(problem, row_change(r), start)[1])

    root = search.root_bounds()
    for r in np.argsort(-root)[:2]:
        attack(int(r), ())
    gap_open = float(np.max(root)) - state["best"].value > options.tolerance
    if gap_open and not _near(deadline, options):
        # the batched falsifier on the largest rows (snapped and re-evaluated soundly): half the budget when the
        # first bracket is wide, a short run when it is narrow (the splitting search and its attacks from the
        # relaxation's maximisers need the time there)
        wide = float(np.max(root)) > PGD_GATE * state["best"].value
        stop = np.inf if verify_at is None else verify_at
        top = [int(r) for r in np.argsort(-root)[:2]]
        starts = [search.candidate(r) for r in top]
        share = PGD_SHARE if wide else PGD_NARROW_SHARE
        for c in _strong(problem, change_objective(k), options, deadline, stop, starts, share)[:1]:
            record(c.params)
    if verify_at is None and search.cut is not None:
        lp = _lp_change(search, rows, root, state, record, options, deadline)
        if lp is not None:
            return lp
    if verify_at is not None:
        shifted = Rows(rows.coefs, up(rows.offsets - verify_at), np.zeros(len(rows), bool), rows.names)
        search.rows = shifted
        if state["best"].value > verify_at:
            return PointResult(state["best"].value, float(np.max(root)), state["best"].witness, 1, True, "refuted")

        def refuted(r: int, splits: tuple) -> None:
            attack(r, splits)
            if state["best"].value > verify_at:
                raise _Refuted

        def beats(r: int, params: dict[str, np.ndarray]) -> bool:
            return record(params) > verify_at

        shifted_root = up(np.asarray(root, dtype=np.float64) - verify_at)
        lp = _lp_verify(search, shifted, shifted_root, options, deadline, beats,
                        "max epsilon <= threshold (LP branch and bound): ")
        if lp is not None:
            status, n, up_ = lp
            best_v, w = state["best"].value, state["best"].witness
            if status == "refuted":
                return PointResult(best_v, float(np.max(root)), w, n, True, "refuted", "lp")
            if status == "holds":
                return PointResult(best_v, max(verify_at, best_v), w, n, True, "holds", "lp")
            return PointResult(best_v, max(up_ + verify_at, best_v), w, n, False, status, "lp")

        try:
            out = search.run(options, deadline, mode="verify", on_top=refuted, label="max epsilon <= threshold: ")
            if out.reason == "exhausted" and not _near(deadline, options):
                # no neuron left to split: split the parameter box
                def piece_refuted(r: int, piece: Piece) -> None:
                    if not _near(deadline, options) and beats(r, _attack(problem, row_change(r), piece.midpoint())[1]):
                        raise _Refuted

                ps = param_split(problem, shifted, out.upper, options, deadline, decide=True, on_piece=piece_refuted,
                                 label="max epsilon <= threshold: ")
                up_ = float(np.max(ps.uppers)) + verify_at
                return PointResult(state["best"].value, max(up_, state["best"].value), state["best"].witness, ps.pieces,
                                   ps.reason == "holds", ps.reason, "params")
        except _Refuted:
            return PointResult(state["best"].value, float(np.max(root)), state["best"].witness, search.evaluations, True, "refuted")
        up_ = float(np.max(out.upper)) + verify_at
        return PointResult(state["best"].value, max(up_, state["best"].value), state["best"].witness, out.domains, out.complete, out.reason)
    out = search.run(options, deadline, mode="optimise", lower=lambda: state["best"].value, on_top=attack, label="max epsilon: ")
    if out.reason == "exhausted" and not _near(deadline, options):
        # no neuron left to split: the gap is in the parameter box itself
        def piece_attack(r: int, piece: Piece) -> None:
            if not _near(deadline, options):
                record(_attack(problem, row_change(r), piece.midpoint())[1])

        ps = param_split(problem, rows, out.upper, options, deadline, lower=lambda: state["best"].value, on_piece=piece_attack,
                         label="max epsilon: ")
        upper = max(float(np.max(ps.uppers)), state["best"].value, 0.0)
        complete = ps.reason == "tolerance"
        return PointResult(state["best"].value, upper, state["best"].witness, ps.pieces, complete, ps.reason, "params")
    upper = max(float(np.max(out.upper)), state["best"].value, 0.0)
    return PointResult(state["best"].value, upper, state["best"].witness, out.domains, out.complete, out.reason)


def _row_milps(search: SplitSearch, rows: Rows) -> list[ReluMilp] | None:
    """Each row's exact program (:func:`~paramverify.bounds.mlplp.build_milp`) when the search cut a
    first layer off a two-hidden-layer ReLU MLP; None otherwise."""
    if search.cut is None:
        return None
    milps = [build_milp(search.cut, rows.coefs[r], float(rows.offsets[r])) for r in range(len(rows))]
    return None if any(m is None for m in milps) else [m for m in milps if m is not None]


def _lp_change(search: SplitSearch, rows: Rows, root: np.ndarray, state: dict,
               record: Callable[[Mapping[str, np.ndarray]], float], options: Options, deadline: Deadline) -> PointResult | None:
    """MaxEpsilon of a two-hidden-layer ReLU MLP: branch and bound with linear programs and cuts per row
    (:mod:`~paramverify.bounds.mlplp`), always continuing the row with the largest bound; None for
    other networks.  ``record(params)``: keeps a witness that beats ``state["best"]``."""
    milps = _row_milps(search, rows)
    if milps is None:
        return None
    cut = search.cut
    assert cut is not None  # _row_milps needs it
    best = lambda: state["best"].value  # noqa: E731
    # a row's search starts when the row is first chosen (its root relaxation costs time)
    searches: list[LPSearch | None] = [None] * len(milps)
    # stop a little early, as the splitting search does: the caller still has to finish
    reserve = 0.0 if options.timeout_s is None else LP_RESERVE * options.timeout_s
    root = np.asarray(root, dtype=np.float64)

    def uppers() -> np.ndarray:
        return np.minimum(root, [np.inf if s is None else s.upper for s in searches])

    interrupted = False
    while not interrupted:
        open_ = [r for r, s in enumerate(searches) if s is None or not s.done]
        left = deadline.remaining()
        if not open_ or (left is not None and left <= reserve):
            break
        u = uppers()
        r = max(open_, key=lambda q: u[q])
        if u[r] <= best() + options.tolerance:
            break
        if searches[r] is None:
            searches[r] = LPSearch(milps[r], best, options.tolerance)
            continue
        search_r = searches[r]
        assert search_r is not None
        slice_s = LP_SLICE_S if left is None else min(LP_SLICE_S, left - reserve)
        n_done = sum(s.domains for s in searches if s is not None)
        budget = max(0, options.max_splits - n_done + search_r.domains)

        def shown(bound: float, r: int = r) -> None:
            u2 = uppers()
            u2[r] = min(u2[r], bound)
            options.progress.update("max epsilon (LP branch and bound): ", best(), float(max(np.max(u2), best())))

        search_r.run(deadline.within(slice_s), budget, progress=shown)
        if search_r.best_h is not None:
            record(witness_params(cut, rows.coefs[r], milps[r], search_r.best_h, search.full_box))
        interrupted = deadline.interrupted() or search_r.reason == "interrupted"
        if sum(s.domains for s in searches if s is not None) >= options.max_splits:
            break
    u = uppers()
    complete = float(np.max(u)) <= best() + options.tolerance or all(s is not None and s.done and s.complete for s in searches)
    reason = "interrupted" if interrupted else ("tolerance" if complete else "deadline")
    upper = max(float(np.max(u)), best(), 0.0)
    return PointResult(best(), upper, state["best"].witness, sum(s.domains for s in searches if s is not None), complete,
                       reason, "lp")


def _lp_verify(search: SplitSearch, rows: Rows, root: np.ndarray, options: Options, deadline: Deadline,
               refutes: Callable[[int, dict[str, np.ndarray]], bool], label: str) -> tuple[str, int, float] | None:
    """Do the rows hold (< 0 where strict, else <= 0)?  LP branch and bound per row for a
    two-hidden-layer ReLU MLP (:mod:`~paramverify.bounds.mlplp`), the row with the largest bound
    first (rows whose ``root`` bound already holds are done); the relaxation's integral points are
    offered to ``refutes`` (True ends the search).

    Returns (holds | refuted | deadline | interrupted | exhausted, domains, largest open bound),
    or None for other networks."""
    milps = _row_milps(search, rows)
    if milps is None:
        return None
    cut = search.cut
    assert cut is not None  # _row_milps needs it
    proved = [holds(float(root[r]), bool(rows.strict[r])) for r in range(len(rows))]
    searches: list[LPSearch | None] = [None] * len(rows)  # started when first chosen

    def upper(r: int) -> float:
        s = searches[r]
        return float(root[r]) if s is None else min(float(root[r]), s.upper)

    tried: set[tuple[int, bytes]] = set()
    interrupted = False
    while True:
        open_ = [r for r in range(len(rows)) if not proved[r] and (searches[r] is None or not searches[r].done)]
        if not open_ or deadline.expired():
            break
        r = max(open_, key=upper)
        options.progress.update(label, None, max(upper(q) for q in range(len(rows))))
        m = milps[r]
        s = searches[r]
        if s is None:
            searches[r] = LPSearch(m, closed_at=0.0, strict=bool(rows.strict[r]))
            continue
        s.run(deadline.within(LP_SLICE_S))
        if s.best_h is not None and (r, s.best_h.tobytes()) not in tried:
            tried.add((r, s.best_h.tobytes()))
            if refutes(r, witness_params(cut, rows.coefs[r], m, s.best_h, search.full_box)):
                return "refuted", sum(x.domains for x in searches if x is not None), max(upper(q) for q in range(len(rows)))
        if deadline.interrupted() or s.reason == "interrupted":
            interrupted = True
            break
    domains = sum(x.domains for x in searches if x is not None)
    top = max(upper(q) for q in range(len(rows)))
    if all(proved[q] or (searches[q] is not None and searches[q].holds) for q in range(len(rows))):  # type: ignore[union-attr]
        return "holds", domains, top
    if interrupted:
        return "interrupted", domains, top
    return ("deadline" if deadline.expired() else "exhausted"), domains, top


class _Refuted(Exception):
    """Internal: the falsifier found a violation during a decision search."""


# ---------------------------------------------------------------------------
# labels


@dataclass(frozen=True, eq=False)
class LabelResult:
    """``holds`` (proved), ``violated`` (a replayed counterexample) or ``unknown`` (with the reason)."""

    status: str  # holds | violated | unknown
    counterexample: Counterexample | None
    domains: int
    reason: str  # holds | refuted | tie (violated at the nominal parameters) | why unknown
    upper: float = np.inf  # unknown: the largest proved bound of a label row (the rows hold at <= 0 / < 0)
    how: str = "split"  # as PointResult.how


def point_labels(problem: Problem, prop: Property, options: Options, deadline: Deadline, scale: float | None = None) -> LabelResult:
    """Is the nominal label of x0 kept for every parameter of the box (``box.scaled(scale)``)?"""
    f0 = nominal_enclosure(problem)
    y0 = problem.graph.evaluate(problem.region.lo)[0]
    sp = problem if scale is None else Problem(problem.graph, problem.box.scaled(scale), problem.region, problem.level)
    cls = None
    # the nominal class must be certain, else the rows are not the property: from the
    # enclosure, or (a tie, an output at the level) from exact rational outputs
    if not _class_certain(f0, problem.level, y0):
        nominal = exact_nominal(problem, deadline)
        if nominal is None:
            return LabelResult("unknown", None, 0, "the nominal output is too close to a tie to fix the label")
        cls, tie = nominal
        if tie and sp.box.contains(nominal_params(sp.box)):
            return _tie(sp, prop)
    rows = label_rows(y0, problem.level, cls)
    if deadline.expired():  # each root step below costs seconds on a large net: check between them
        return LabelResult("unknown", None, 0, _stopped(deadline))
    search = SplitSearch(problem, rows, scale, deadline=deadline)
    if deadline.expired():
        return LabelResult("unknown", None, 0, _stopped(deadline))
    found: dict[str, Counterexample] = {}

    def attack(r: int, splits: tuple) -> None:
        if _near(deadline, options) or found:
            return
        start = search.candidate(r, splits)
        for p in (start, _attack(sp, row_objective(rows.coefs[r]), start)[1], _attack(sp, row_objective(rows.coefs[r]))[1]):
            ce = confirm_in_box(sp, prop, sp.region.lo, p)
            if ce is not None:
                found["ce"] = ce
                raise _Refuted

    root = search.root_bounds()
    if all(holds(float(root[r]), bool(rows.strict[r])) for r in range(len(rows))):
        return LabelResult("holds", None, 1, "holds")
    try:
        for r in np.argsort(-root)[:1]:
            attack(int(r), ())
        if not _near(deadline, options):
            # the batched falsifier on every label row (each candidate replayed on onnxruntime)
            starts = [search.candidate(int(r)) for r in np.argsort(-root)[:3]]
            for c in _strong(sp, label_objective(rows.coefs, rows.offsets), options, deadline, 0.0, starts, PGD_LABEL_SHARE)[:3]:
                if c.value >= 0:
                    ce = confirm_in_box(sp, prop, sp.region.lo, c.params)
                    if ce is not None:
                        found["ce"] = ce
                        raise _Refuted
        def flips(r: int, params: dict[str, np.ndarray]) -> bool:
            ce = confirm_in_box(sp, prop, sp.region.lo, params)
            if ce is not None:
                found["ce"] = ce
            return ce is not None

        lp = _lp_verify(search, rows, root, options, deadline, flips, "labels (LP branch and bound): ")
        if lp is not None:
            status, n, up_ = lp
            if status == "refuted":
                raise _Refuted
            if status == "holds":
                return LabelResult("holds", None, n, "holds", how="lp")
            return LabelResult("unknown", None, n, status, up_, how="lp")
        out = search.run(options, deadline, mode="verify", on_top=attack, label="labels: ")
        if out.reason == "exhausted" and not _near(deadline, options):
            # no neuron left to split: split the parameter box
            def piece_flips(r: int, piece: Piece) -> None:
                if not _near(deadline, options) and flips(r, _attack(sp, row_objective(rows.coefs[r]), piece.midpoint())[1]):
                    raise _Refuted

            ps = param_split(sp, rows, out.upper, options, deadline, decide=True, on_piece=piece_flips, label="labels: ")
            if ps.reason == "holds":
                return LabelResult("holds", None, ps.pieces, "holds", how="params")
            return LabelResult("unknown", None, ps.pieces, ps.reason, float(np.max(ps.uppers)), how="params")
    except _Refuted:
        return LabelResult("violated", found["ce"], search.evaluations, "refuted")
    if out.reason == "holds":
        return LabelResult("holds", None, out.domains, "holds")
    return LabelResult("unknown", None, out.domains, out.reason, float(np.max(out.upper)))


def _tie(problem: Problem, prop: Property) -> LabelResult:
    """The top two nominal logits tie exactly: the winner does not strictly beat its rival at
    the nominal parameters (which lie in the box), so the label is not kept there.

    Reported only when onnxruntime shows it too (float32 evaluation can break an exact tie).
    """
    ce = confirm_in_box(problem, prop, problem.region.lo, nominal_params(problem.box))
    if ce is not None:
        return LabelResult("violated", ce, 0, "tie")
    return LabelResult("unknown", None, 0, (
        "the top two nominal outputs tie exactly, so in real arithmetic the label is not kept even at the nominal "
        "parameters, but the float evaluations (float64 / onnxruntime) break the tie: no replayed counterexample"))


def _stopped(deadline: Deadline) -> str:
    return "interrupted" if deadline.interrupted() else "deadline"


def _class_certain(f0: Any, level: float, y0: np.ndarray) -> bool:
    if y0.size == 1:
        return bool(f0.lo[0] >= level or f0.hi[0] < level)
    c = int(np.argmax(y0))
    others = np.arange(y0.size) != c
    return bool(f0.lo[c] > np.max(f0.hi[others]))
