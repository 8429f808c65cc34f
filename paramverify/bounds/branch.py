"""Best-first branch and bound over an input box, batched.

The caller supplies ``bound(lo, hi) -> ub`` (a *sound* upper bound of the
objective on each of N boxes, ``-inf`` where the box holds nothing that
counts) and ``probe(lo, hi, ub, best) -> Probe | None`` (concrete points,
already soundly re-evaluated, that raise the lower bound).  Guarantee:
the returned ``upper`` is >= the objective's supremum over the region
(every discarded box had ``ub`` at most the returned upper), and
``lower`` is the value of a concrete witness (or the caller's floor).

Monotone: ``bound`` need not be (interval and linear relaxations of a
sub-box can come out looser than the parent's), so a child's bound is
capped by its parent's (the child lies inside the parent, so the parent's
bound holds for it too), and the upper bound reported -- to the progress
sink and in the result -- is the smallest one reached so far (each was
sound when reported, and the supremum does not change).
The search stops at the tolerance, at a verification threshold, at the
deadline, at ``max_splits`` boxes or on KeyboardInterrupt, and always
returns the best valid bracket reached.

Two steps are in flight: step t+1 is chosen from the queue and sent before
step t's children are probed and queued (so step t+1 is chosen without
them, and with the lower bound from before step t's probe: keeping a box
longer is sound, it is dropped when popped if it cannot beat the lower
bound by then).  One process runs the same sequence, so the numbers do not
depend on where the bound work runs.  With ``Options.pool``
(``--workers``/``--ray-address``) each step's bound work (:class:`BoundStep`)
runs as tasks, one per chunk of boxes; a pool that can send a batch without
waiting (``start``) then computes step t+1 while the driver waits for the
last tasks of step t and probes its children, so the workers do not wait
for each other at every step.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.errors import check
from paramverify.options import Deadline, Options

#: search steps sent before the oldest one is waited for (see the module docstring)
IN_FLIGHT = 2

BoundFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: tighten(lo, hi, ub) -> a (costlier) sound bound of the same boxes, applied only to boxes that survive ``ub``
TightenFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Probe:
    """A soundly evaluated lower bound ``value`` attained by ``witness``."""

    value: float
    witness: Any


ProbeFn = Callable[[np.ndarray, np.ndarray, np.ndarray, float], "Probe | None"]


@dataclass(frozen=True, eq=False)
class BoundStep:
    """The bound work of one search step on N child boxes, as one function of row-wise
    arrays (so that ``Options.pool`` can evaluate it in chunks of boxes, one task per
    chunk, with one round trip per step).

    ``self(lo, hi, cap, keep_ub, use_tighten)`` returns ``[2, N]``: row 0 is ``bound``
    capped by the parents' bounds ``cap``; row 1 is that, lowered by ``tighten`` on the
    boxes whose row-0 bound exceeds ``keep_ub`` when ``use_tighten`` (else row 0).
    Row by row, so a chunk of the rows gives those rows of the whole.
    """

    bound: BoundFn
    tighten: TightenFn | None = None

    def __call__(self, lo: np.ndarray, hi: np.ndarray, cap: np.ndarray, keep_ub: float, use_tighten: bool) -> np.ndarray:
        ub = np.minimum(self.bound(lo, hi), cap)
        final = ub
        if use_tighten and self.tighten is not None:
            live = np.flatnonzero(ub > keep_ub)
            if live.size:
                final = ub.copy()
                final[live] = np.minimum(ub[live], self.tighten(lo[live], hi[live], ub[live]))
        return np.stack([ub, final])


@dataclass(frozen=True, eq=False)
class _Step:
    """A search step sent and not yet settled: its children, the bounds to wait for, whether
    ``tighten`` runs on them, when it was sent, and its parents' largest bound (which the
    bracket's upper end counts until the children are queued)."""

    lo: np.ndarray
    hi: np.ndarray
    finish: Callable[[], np.ndarray]
    tightened: bool
    sent: float
    top: float


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Outcome of :func:`branch_and_bound`; ``lower <= sup <= upper`` always holds."""

    lower: float
    upper: float
    witness: Any
    boxes: int
    complete: bool
    reason: str  # tolerance | exhausted | below-threshold | above-threshold | deadline | max-splits | interrupted


def branch_and_bound(
    bound: BoundFn,
    probe: ProbeFn,
    lo: np.ndarray,
    hi: np.ndarray,
    options: Options,
    deadline: Deadline,
    *,
    floor: float = -np.inf,
    initial: Probe | None = None,
    verify_at: float | None = None,
    strict: bool = False,
    refute_at: float | None = None,
    batch: int = 64,
    label: str = "",
    tighten: TightenFn | None = None,
) -> SearchResult:
    """Maximise over the box [lo, hi]; see the module docstring.

    ``floor``: a value the supremum is known to be at least (e.g. 0).
    ``verify_at``: stop as soon as the upper bound is <= it (< it when
    ``strict``); boxes below it are discarded.  ``refute_at``: stop as soon
    as the lower bound exceeds it.  Without either, stop when
    ``upper - lower <= options.tolerance``.  ``tighten``: a second, costlier
    bound applied only to the boxes the first one cannot discard; the
    smaller of the two is used (both are sound).
    """
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    work = BoundStep(bound, tighten)
    # --workers/--ray-address: the bound work as tasks; the queue and the bracket stay here.  A pool
    # that can send a batch without waiting (RayPool.start) gets each step's tasks sent before the
    # driver probes the previous step's boxes, so the probe runs while the workers compute.
    begin: Callable[..., Callable[[], np.ndarray]]
    pipelined = options.pool is not None and callable(getattr(options.pool, "start", None))
    if pipelined:
        begin = options.pool.start(work)  # type: ignore[union-attr]
    else:
        step = work if options.pool is None else options.pool.spread(work)

        def begin(*args: Any) -> Callable[[], np.ndarray]:
            out = step(*args)
            return lambda: out
    scale = np.where(hi > lo, hi - lo, 1.0)
    best = initial if initial is not None else Probe(floor, None)
    if best.value < floor:
        best = Probe(floor, best.witness)
    counter = itertools.count()
    heap: list[tuple[float, int, np.ndarray, np.ndarray]] = []
    final_ub = -np.inf  # boxes too small to split
    boxes = 1
    reported = np.inf  # the smallest upper bound reported so far (each one was sound)

    discarded = -np.inf  # largest ub of a box dropped for being below verify_at
    pending = -np.inf  # largest ub of the boxes being split right now (an interrupt may land here)

    def keep(ub: float) -> bool:
        nonlocal discarded
        if verify_at is not None and (ub < verify_at if strict else ub <= verify_at):
            discarded = max(discarded, ub)
            return False
        return ub > best.value

    def push(blo: np.ndarray, bhi: np.ndarray, ub: np.ndarray) -> None:
        nonlocal final_ub
        for i in range(len(ub)):
            if not keep(float(ub[i])):
                continue
            w = bhi[i] - blo[i]
            splittable = np.any(w > np.maximum(np.abs(blo[i]), np.abs(bhi[i])) * 1e-13 + 1e-300)
            if splittable:
                heapq.heappush(heap, (-float(ub[i]), next(counter), blo[i], bhi[i]))
            else:
                final_ub = max(final_ub, float(ub[i]))

    def upper() -> float:
        """The current sound upper bound, never above one returned before."""
        nonlocal reported
        top = -heap[0][0] if heap else -np.inf
        reported = min(reported, max(best.value, final_ub, top, floor, discarded, pending))
        check(reported >= best.value, f"branch and bound: upper {reported!r} below the witnessed lower {best.value!r}")
        return reported

    gate = {"calls": 0, "used": 0, "useful": 0}

    def bound_all(blo: np.ndarray, bhi: np.ndarray, cap: np.ndarray) -> np.ndarray:
        return bound_start(blo, bhi, cap)()

    def gate_next() -> bool:
        """Whether the next step runs ``tighten`` (see :func:`bound_start`)."""
        if tighten is None:
            return False
        gate["calls"] += 1
        return not (gate["used"] >= 3 and 2 * gate["useful"] < gate["used"] and gate["calls"] % 8)

    def bound_start(blo: np.ndarray, bhi: np.ndarray, cap: np.ndarray,
                    use_tighten: bool | None = None) -> Callable[[], np.ndarray]:
        """``bound`` capped by the parents' bounds ``cap``, then ``tighten`` on the surviving boxes
        while it pays for itself (sent now; the returned function waits for the bounds).

        It pays when it closes a good part of the distance between a box's
        capped first bound and the value that would discard the box, or when
        it improves the boxes more than the first bound improved them on their
        parents' (then it is what moves the search at all); after three
        batches that did neither, it is retried only every eighth batch.
        Skipping it never loosens a bound: the parent's (possibly tightened)
        bound caps every child either way.
        """
        use = gate_next() if use_tighten is None else use_tighten
        keep_ub = max(best.value, -np.inf if verify_at is None else verify_at)
        pending_work = begin(blo, bhi, cap, keep_ub, use)
        return lambda: gate_update(pending_work(), keep_ub, use, cap)

    def gate_update(both: np.ndarray, keep_ub: float, use: bool, cap: np.ndarray) -> np.ndarray:
        """The step's bounds from ``BoundStep``'s two rows; the gate's statistics updated."""
        ub = both[0]
        if not use:
            return ub
        live = np.flatnonzero(ub > keep_ub)
        if live.size:
            tight = both[1][live]
            span = ub[live] - keep_ub if np.isfinite(keep_ub) else np.abs(ub[live]) + 1e-300
            with np.errstate(invalid="ignore"):
                gained = ub[live] - tight
                rel = gained / np.maximum(span, 1e-300)
                # an infinite first bound made finite is all gain; inf - inf is no information
                rel = np.where(np.isinf(ub[live]) & np.isfinite(tight), 1.0, np.nan_to_num(rel, nan=0.0))
                gained = np.nan_to_num(gained, nan=0.0)
                cheap = float(np.median(cap[live] - ub[live]))  # inf at the root
            gain = float(np.median(rel))
            gate["used"] += 1
            gate["useful"] += int(gain >= 0.1 or float(np.median(gained)) > cheap)
            ub = ub.copy()
            ub[live] = tight
        return ub

    # seconds per child box of the last step with and without ``tighten`` (the two differ by orders
    # of magnitude on conv nets, so a cheap step's pace must not size a tightened one)
    pace = {True: 0.0, False: 0.0}

    def probe_better(now: Probe, clo: np.ndarray, chi: np.ndarray, ub: np.ndarray) -> Probe:
        got = probe(clo, chi, ub, now.value)
        return got if got is not None and got.value > now.value else now

    def fit(n: int, use: bool) -> int:
        """At most ``n`` boxes, fewer when the last such step's pace says ``n`` would overrun the
        deadline; 0 when even one box (two children) would."""
        left = deadline.remaining()
        per_box = pace[use]
        if left is None or per_box <= 0.0:
            return n
        if left < 2.0 * per_box:
            return 0
        return max(1, min(n, int(left / (2.0 * per_box))))

    refuted = refute_at is not None and best.value > refute_at
    if verify_at is not None and deadline.expired() and not refuted:
        # a decision run with no time left (e.g. its falsifier used it up): no bound is computed
        # (that could take long on a large net); undecided, nothing is claimed
        return SearchResult(best.value, np.inf, best.witness, 0, False, "interrupted" if deadline.interrupted() else "deadline")
    ub0 = bound_all(lo[None], hi[None], np.array([np.inf]))
    got = probe(lo[None], hi[None], ub0, best.value)
    if got is not None and got.value > best.value:
        best = got
    push(lo[None], hi[None], ub0)
    reason, complete = "exhausted", True
    inflight: deque[_Step] = deque()  # oldest first; at most IN_FLIGHT (see the module docstring)

    def settle() -> None:
        """Wait for the oldest step in flight, probe its children and queue them."""
        nonlocal best, pending
        step = inflight.popleft()
        ub = step.finish()
        if pipelined:  # from sending to receiving, which may include the end of the step before
            pace[step.tightened] = (time.monotonic() - step.sent) / len(step.lo)
        best = probe_better(best, step.lo, step.hi, ub)
        push(step.lo, step.hi, ub)
        pending = max((other.top for other in inflight), default=-np.inf)

    try:
        while True:
            up_now = upper()
            options.progress.update(f"{label}{boxes} boxes", best.value, up_now)
            if refute_at is not None and best.value > refute_at:
                reason = "above-threshold"
                break
            if not inflight and verify_at is not None and not heap and (final_ub < verify_at if strict else final_ub <= verify_at):
                reason = "below-threshold"
                break
            if not heap and not inflight:
                reason = "exhausted"
                break
            if verify_at is None and up_now - best.value <= options.tolerance:
                reason = "tolerance"
                break
            if deadline.expired():
                reason, complete = "deadline", False
                break
            if boxes >= options.max_splits:
                reason, complete = "max-splits", False
                break
            if not heap or len(inflight) >= IN_FLIGHT:
                settle()
                continue
            use = gate_next()
            room = fit(batch, use)
            if use and room == 0:  # the costly pass would overrun: this step goes without it
                use, room = False, fit(batch, False)
            if room == 0:
                reason, complete = "deadline", False
                break
            take = []
            while heap and len(take) < room:
                negub, _, blo, bhi = heapq.heappop(heap)
                if keep(-negub):
                    take.append((blo, bhi, -negub))
                    pending = max(pending, -negub)  # off the heap: the bracket counts it from now on
            if not take:
                continue
            plo = np.stack([t[0] for t in take])
            phi = np.stack([t[1] for t in take])
            dim = np.argmax((phi - plo) / scale, axis=1)
            rows = np.arange(len(take))
            mid = (plo[rows, dim] + phi[rows, dim]) * 0.5
            lo_a, hi_a = plo.copy(), phi.copy()
            hi_a[rows, dim] = mid
            lo_b, hi_b = plo.copy(), phi.copy()
            lo_b[rows, dim] = mid
            clo = np.concatenate([lo_a, lo_b])
            chi = np.concatenate([hi_a, hi_b])
            caps = np.array([t[2] for t in take])
            t_sent = time.monotonic()
            finish = bound_start(clo, chi, np.concatenate([caps, caps]), use)  # a child lies inside its parent
            if not pipelined:  # computed right here
                pace[use] = (time.monotonic() - t_sent) / len(clo)
            inflight.append(_Step(clo, chi, finish, use, t_sent, float(np.max(caps))))
            boxes += len(clo)
        while inflight:  # the steps already sent: their bounds and probes only tighten the bracket
            settle()
    except KeyboardInterrupt:
        reason, complete = "interrupted", False  # a batch in flight on Ray is dropped (see distributed/runtime.py)
    return SearchResult(best.value, upper(), best.witness, boxes, complete, reason)
