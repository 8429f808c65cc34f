"""Point regions: CROWN with perturbed weights and best-first neuron-split branch and bound.

At a fixed input ``x0`` every query is about linear *rows* of the perturbed
output: ``value_r = C_r . f_p(x0) + offset_r``.  Output change uses rows
``+-e_o`` with offsets from a sound enclosure of ``f_p0(x0)``; label
invariance uses ``e_j - e_c`` (and the level for one output).

:class:`SplitSearch` bounds ``max_p value_r`` from above, per row: CROWN on
the whole parameter box first, tightened by optimising the lower slopes of
the unstable ReLUs by gradient (alpha-CROWN; every iterate is a complete
outward-rounded bound, the row's result is the smallest), then it splits
unstable neurons (the input of an activation is >= 0 in one child and <= 0
in the other) of the row and domain with the largest bound, best first;
each child's slopes and split multipliers are optimised again (beta-CROWN
style, :mod:`~paramverify.bounds.optimize`).  Guarantee: the returned
``upper[r]`` is >= ``value_r`` for every parameter in the box, because the
leaves of each row's split tree cover the box (a split only restricts the
interval of one neuron's input; domains proved empty are dropped).

An MLP's first layer (``Relu(Gemm(x0, W, b))``) is first replaced by its exact box
of activations (:mod:`~paramverify.bounds.firstlayer`): the same set of outputs,
so the bounds are those of the original problem, at a fraction of the cost per
domain and with no splits spent on that layer.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from paramverify.bounds.backward import backward
from paramverify.bounds.crown import LinearBounds, Split
from paramverify.bounds.firstlayer import cut_first_layer
from paramverify.bounds.interval import Interval, up
from paramverify.bounds.linear import concretize_up
from paramverify.bounds.optimize import optimised_upper
from paramverify.bounds.sound import point_outputs
from paramverify.options import Deadline, Options
from paramverify.properties import Problem

#: gradient steps of the slopes on the whole box before splitting (alpha-CROWN at the root)
ROOT_ITERS = 40
#: gradient steps of the slopes and split multipliers on each child domain (8 left the bound of a random
#: 784-64-64-1 MLP stuck at 4.92 where 20 reach 4.1 in the same time)
CHILD_ITERS = 20
#: ... stopped early once 4 steps improve the batch's mean bound by less than this fraction (on a CNN the
#: bound settles in a few steps, and the rest would cost a third of the search's time)
CHILD_STALL = 1e-3


@dataclass(frozen=True, eq=False)
class Rows:
    """Rows ``C . f_p(x0) + offset``; a row *holds* when its value is < 0 (``strict``) or <= 0."""

    coefs: np.ndarray  # [R, k]
    offsets: np.ndarray  # [R], rounded so that the row is an upper bound of the quantity it stands for
    strict: np.ndarray  # [R] bool
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.offsets)


def nominal_enclosure(problem: Problem) -> Interval:
    """A sound enclosure of ``f_p0(x0)`` (flat, ``[k]``)."""
    box = problem.box
    x = problem.region.lo
    out = point_outputs(problem.graph, box, x, {n: box.nominal[n] for n in box.names})
    return Interval(out.n.lo[0], out.n.hi[0])


def change_rows(f0: Interval) -> Rows:
    """``f_p,o - f_p0,o <= f_p,o - lo(f0_o)`` and ``f_p0,o - f_p,o <= hi(f0_o) - f_p,o``."""
    k = f0.lo.size
    coefs = np.concatenate([np.eye(k), -np.eye(k)])
    offsets = np.concatenate([-f0.lo, f0.hi])
    names = tuple(f"+y{o}" for o in range(k)) + tuple(f"-y{o}" for o in range(k))
    return Rows(coefs, offsets, np.zeros(2 * k, bool), names)


def label_rows(f0_value: np.ndarray, level: float, cls: int | None = None) -> Rows:
    """Rows whose all holding means the nominal label (or ``cls``) is kept at ``x0``."""
    k = f0_value.size
    if k == 1:
        c = int(f0_value[0] >= level) if cls is None else cls
        if c == 1:  # kept iff f_p >= level
            return Rows(np.array([[-1.0]]), np.array([level]), np.array([False]), ("level - y",))
        return Rows(np.array([[1.0]]), np.array([-level]), np.array([True]), ("y - level",))
    c = int(np.argmax(f0_value)) if cls is None else cls
    others = [j for j in range(k) if j != c]
    coefs = np.zeros((k - 1, k))
    for r, j in enumerate(others):
        coefs[r, j] = 1.0
        coefs[r, c] = -1.0
    return Rows(coefs, np.zeros(k - 1), np.ones(k - 1, bool), tuple(f"y{j} - y{c}" for j in others))


def holds(value_upper: float, strict: bool) -> bool:
    return value_upper < 0 if strict else value_upper <= 0


@dataclass(frozen=True, eq=False)
class SearchOutcome:
    """Per-row proved upper bounds and how the search ended."""

    upper: np.ndarray
    domains: int
    complete: bool
    reason: str  # holds | tolerance | exhausted | deadline | max-splits | interrupted | refuted


@dataclass(order=True)
class _Domain:
    key: float
    order: int
    row: int = field(compare=False)
    splits: tuple[Split, ...] = field(compare=False)
    branch: tuple[Split, ...] = field(compare=False)


class SplitSearch:
    """Neuron-split branch and bound over the rows of one point problem (see the module docstring).

    Child domains are evaluated in batches (the trace's domain axis), so one
    backward pass bounds many domains at once.
    """

    def __init__(self, problem: Problem, rows: Rows, box_scale: float | None = None, candidates: int = 3,
                 max_batch: int = 64, optimise_iters: int = CHILD_ITERS, deadline: Deadline | None = None,
                 root_iters: int = ROOT_ITERS, root_time: float | None = None, cut: bool = True) -> None:
        box = problem.box if box_scale is None else problem.box.scaled(box_scale)
        x = problem.region.lo
        # an MLP's first layer is exactly a box of activations at a point: bound the rest only
        self.full_box = box
        self.cut = cut_first_layer(Problem(problem.graph, box, problem.region, problem.level)) if cut else None
        graph = problem.graph
        if self.cut is not None:
            graph, box = self.cut.problem.graph, self.cut.problem.box
        self.lb = LinearBounds(graph, box, x[None], x[None])
        self.rows = rows
        t0 = time.monotonic()
        self.lb.refine(deadline)  # skipping the tightening at the deadline is sound (looser bounds)
        self.refine_time = time.monotonic() - t0  # a domain in a batch costs at most about this much
        self.root = self.lb.trace.snapshot()
        self.keep = {a.index for a in self.lb.acts}
        self.evaluations = 0
        self.candidates = candidates
        self.optimise_iters = optimise_iters
        self.root_iters = root_iters
        left = None if deadline is None else deadline.remaining()
        # the root optimisation takes at most a tenth of the time left (splitting needs the rest)
        self.root_time = root_time if root_time is not None or left is None else 0.1 * left
        self._root: tuple[np.ndarray, dict[int, np.ndarray]] | None = None
        self._root_rows: Rows | None = None
        t = self.lb.trace
        width = max([int(np.prod(nd.shape)) for nd in t.nodes if nd.dom] + [1])
        unstable = max([int(np.sum((t.lo[a.parents[0].index] < 0) & (t.hi[a.parents[0].index] > 0))) for a in self.lb.acts] + [1])
        self.max_batch = int(max(2, min(max_batch, (1 << 22) // (width * 2 * unstable))))

    # ------------------------------------------------------------ bounds
    def _row_bounds(self, coefs: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Upper bounds ``[S, n]`` of the rows (``coefs`` ``[S, n, k]``) on the current domains."""
        lb = self.lb
        y = lb.y
        C = coefs.reshape(coefs.shape[:2] + y.pshape)
        beta, kept = backward(lb.trace, [(y, C)], keep=self.keep)
        # the refined output interval is a sound bound too
        y_lo = lb.trace.view(lb.trace.lo[y.index], y)
        y_hi = lb.trace.view(lb.trace.hi[y.index], y)
        ivb = concretize_up(C, y_lo, y_hi)
        return up(np.minimum(beta, ivb) + offsets), kept

    def _choose(self, kept: dict[int, np.ndarray], s: int, d: int, k: int) -> tuple[Split, ...]:
        """The ``k`` best unstable neurons of domain ``d`` for row ``s`` by a BaBSR-style score (the
        row's coefficient times the relaxation gap); at least one per activation layer that has any."""
        t = self.lb.trace
        per_layer: list[tuple[float, Split]] = []
        allc: list[tuple[float, Split]] = []
        for a in self.lb.acts:
            z = a.parents[0]
            lo, hi = t.lo[z.index], t.hi[z.index]
            if z.dom:
                lo, hi = lo[d], hi[d]
            lo, hi = lo.reshape(-1), hi.reshape(-1)
            unstable = (lo < 0) & (hi > 0)
            if not np.any(unstable) or a.index not in kept:
                continue
            mu = kept[a.index][s, d].reshape(-1)
            w = np.where(unstable, hi - lo, 1.0)
            if a.op in ("relu", "leaky_relu"):
                alpha = a.attrs.get("alpha", 0.0)
                gap_up = -lo * hi / w * (1.0 - alpha)
                gap_lo = 0.5 * np.minimum(-lo, hi) * (1.0 - alpha)
            else:
                gap_up = gap_lo = w * (0.25 if a.op == "sigmoid" else 1.0) * 0.25
            score = np.where(unstable, np.maximum(mu, 0.0) * gap_up + np.maximum(-mu, 0.0) * gap_lo, -1.0)
            order = np.argsort(-score)[:k]
            layer = [(float(score[j]), Split(a.index, int(j), True)) for j in order if score[j] >= 0]
            if layer:
                per_layer.append(layer[0])
                allc.extend(layer)
        allc.sort(key=lambda c: -c[0])
        chosen: list[Split] = []
        for _, sp in per_layer + allc:
            if sp not in chosen and len(chosen) < max(k, len(per_layer)):
                chosen.append(sp)
        return tuple(chosen)

    def evaluate(self, items: Sequence[tuple[int, tuple[Split, ...]]]) -> tuple[np.ndarray, list[tuple[Split, ...]]]:
        """Sound upper bounds of (row, domain) pairs, one batch (-inf where a domain is empty)."""
        t = self.lb.trace
        n = len(items)
        self.evaluations += n
        t.restore(self.root, n=n)
        feasible = self.lb.apply_splits([sp for _, sp in items])
        starts = [t.nodes[s.node].parents[0].index for _, sp in items for s in sp]
        if starts:
            start = min(starts)
            feasible &= t.propagate(start + 1)
            feasible &= self.lb.refine(start=start + 1)
        rows = [r for r, _ in items]
        coefs = self.rows.coefs[rows][None]  # [1, n, k]
        ub, kept = self._row_bounds(coefs, self.rows.offsets[rows][None])
        if self.optimise_iters > 1 and starts:
            y = self.lb.y
            opt, _ = optimised_upper(self.lb, [(y, coefs.reshape((1, n) + y.pshape))], [sp for _, sp in items],
                                     iters=self.optimise_iters, stall=CHILD_STALL)
            ub = np.minimum(ub, up(opt + self.rows.offsets[rows][None]))
        ub = np.where(feasible, ub[0], -np.inf)
        branches = [self._choose(kept, 0, d, self.candidates) if feasible[d] else () for d in range(n)]
        return ub, branches

    def candidate(self, row: int, splits: tuple[Split, ...] = ()) -> dict[str, np.ndarray]:
        """Parameters maximising the relaxed bound of ``row`` on a domain (a falsifier start, unproved)."""
        t = self.lb.trace
        t.restore(self.root, n=1)
        if splits:
            self.lb.apply_splits([splits])
            start = min(t.nodes[s.node].parents[0].index for s in splits)
            t.propagate(start + 1)
            self.lb.refine(start=start + 1)
        hints: dict[str, np.ndarray] = {}
        C = self.rows.coefs[row].reshape((1, 1) + self.lb.y.pshape)
        backward(t, [(self.lb.y, C)], hints=hints, checkpoints=False)
        t.restore(self.root, n=1)
        box = self.lb.box
        params = {n: hints.get(n, np.asarray(box.nominal[n], dtype=np.float64)) for n in box.names}
        return params if self.cut is None else self.cut.lift(params, self.full_box)

    def root_bounds(self) -> np.ndarray:
        """Per row: the smaller of CROWN's bound and the optimised one (slopes tuned on the whole box)."""
        return self._root_state()[0]

    def _root_state(self) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Root bounds ``[R]`` (CROWN's, and alpha-CROWN's on the whole box: ``root_iters`` gradient steps
        of the slopes, at most ``root_time`` s) and CROWN's coefficients at the activations (for branching).

        Rows that CROWN already shows to hold are not optimised.  Cached for the current rows (they can
        be replaced, e.g. shifted by a threshold).
        """
        if self._root is not None and self._root_rows is self.rows:
            return self._root
        t = self.lb.trace
        t.restore(self.root, n=1)
        R = len(self.rows)
        root, kept = self._row_bounds(self.rows.coefs[:, None, :], self.rows.offsets[:, None])
        root = root[:, 0]
        todo = np.array([r for r in range(R) if not holds(float(root[r]), bool(self.rows.strict[r]))], dtype=int)
        if self.root_iters > 1 and self.lb.acts and todo.size:
            y = self.lb.y
            C = self.rows.coefs[todo][:, None, :].reshape((todo.size, 1) + y.pshape)
            opt, _ = optimised_upper(self.lb, [(y, C)], None, iters=self.root_iters, time_limit=self.root_time)
            root = root.copy()
            root[todo] = np.minimum(root[todo], up(opt[:, 0] + self.rows.offsets[todo]))
        t.restore(self.root, n=1)
        self._root, self._root_rows = (root, kept), self.rows
        return self._root

    # ------------------------------------------------------------ search
    def run(
        self,
        options: Options,
        deadline: Deadline,
        *,
        mode: str,
        lower: Callable[[], float] = lambda: -np.inf,
        on_top: Callable[[int, tuple[Split, ...]], None] | None = None,
        label: str = "",
    ) -> SearchOutcome:
        """Best-first splitting of the row domains with the largest bounds.

        ``mode="verify"``: domains whose bound holds (< 0 or <= 0) are
        closed; ends "holds" when none is left.  ``mode="optimise"``: domains
        whose bound is <= ``lower()`` (the falsifier's value) are closed; ends
        at ``options.tolerance``.  ``on_top(row, splits)`` is called when a row
        first becomes the largest, every 16 rounds after, and for every domain
        left with nothing to split (the caller may attack it with the falsifier).
        """
        n_rows = len(self.rows)
        root, kept = self._root_state()
        self.lb.trace.restore(self.root, n=1)
        counter = itertools.count()
        heap: list[_Domain] = []
        stuck = np.full(n_rows, -np.inf)  # leaves without unstable neurons
        shown = np.inf  # the upper bound last shown to the progress sink
        for r in range(n_rows):
            if not self._closed(r, root[r], mode, lower()):
                heapq.heappush(heap, _Domain(-root[r], next(counter), r, (), self._choose(kept, r, 0, self.candidates)))
        seen_top: set[int] = set()
        reason, complete = "exhausted", True
        domains = 1
        pending: list[tuple[int, float]] = []  # domains being split (an interrupt may land here)
        per_parent = 2 * max(1, self.candidates)
        rounds = 0
        batch_time = 0.0  # running estimate of one batch's wall time
        # stop a little early: the caller still has to finish (and was maybe slow to start)
        reserve = 0.0 if options.timeout_s is None else 0.08 * options.timeout_s
        try:
            while heap:
                top = heap[0]
                rounds += 1
                best_low = lower()
                # the open domains' largest bound and the leaves left unsplit (children are capped by
                # their parents, so this never rises; the min keeps what is shown monotone regardless)
                shown = min(shown, max(-top.key, float(np.max(stuck))))
                options.progress.update(f"{label}{domains} domains", best_low if np.isfinite(best_low) else None, shown)
                if mode == "optimise" and -top.key - best_low <= options.tolerance:
                    reason = "tolerance"
                    break
                left = deadline.remaining()
                if left is not None and left <= 2.0 * batch_time + reserve:
                    # the next batch would overrun the budget: stop now
                    reason, complete = "deadline", False
                    break
                if domains >= options.max_splits:
                    reason, complete = "max-splits", False
                    break
                if on_top is not None and (top.row not in seen_top or rounds % 16 == 0):
                    seen_top.add(top.row)
                    on_top(top.row, top.splits)
                    continue  # the attack may have raised the lower end: re-check the top
                parents: list[_Domain] = []
                while heap and len(parents) * per_parent < self.max_batch:
                    d = heapq.heappop(heap)
                    if self._closed(d.row, -d.key, mode, lower()):
                        continue
                    if not d.branch:
                        stuck[d.row] = max(stuck[d.row], -d.key)
                        if on_top is not None:
                            on_top(d.row, d.splits)  # nothing left to split: attack this domain
                        continue
                    parents.append(d)
                if not parents:
                    continue
                # do not start a batch the budget cannot pay for (before the first one, guess from the root)
                guess = batch_time if batch_time > 0 else 0.5 * self.refine_time * min(len(parents) * per_parent, self.max_batch)
                if left is not None and left <= 1.5 * guess + reserve:
                    for d in parents:
                        heapq.heappush(heap, d)
                    reason, complete = "deadline", False
                    break
                pending = [(d.row, -d.key) for d in parents]
                items, owner = [], []
                for j, d in enumerate(parents):
                    for cand in d.branch:
                        for positive in (True, False):
                            items.append((d.row, d.splits + (Split(cand.node, cand.pos, positive),)))
                            owner.append(j)
                ubs, brs = [], []
                t_start = time.monotonic()
                for s in range(0, len(items), self.max_batch):
                    if s and deadline.expired():
                        break  # out of time: parents without all their children go back unchanged
                    u, b = self.evaluate(items[s : s + self.max_batch])
                    ubs.append(u)
                    brs.extend(b)
                elapsed = time.monotonic() - t_start
                batch_time = elapsed if batch_time == 0.0 else max(elapsed, 0.5 * batch_time + 0.5 * elapsed)
                ub_all = np.concatenate(ubs)
                domains += len(ub_all)
                # filtered smart branching: per parent keep the candidate whose worse child is best
                for j, d in enumerate(parents):
                    idx = [i for i, o in enumerate(owner) if o == j and i < len(ub_all)]
                    if len(idx) < 2 * len(d.branch):
                        heapq.heappush(heap, d)
                        continue
                    best = min(range(0, len(idx), 2), key=lambda q: max(ub_all[idx[q]], ub_all[idx[q + 1]]))
                    for i in (idx[best], idx[best + 1]):
                        ub = min(float(ub_all[i]), -d.key)  # a child's domain lies inside its parent's
                        if ub == -np.inf or self._closed(d.row, ub, mode, lower()):
                            continue
                        heapq.heappush(heap, _Domain(-ub, next(counter), d.row, items[i][1], brs[i]))
                pending = []
        except KeyboardInterrupt:
            reason, complete = "interrupted", False
        if not heap and reason == "exhausted":
            if mode == "verify" and not np.any(np.isfinite(stuck)):
                reason = "holds"
            elif mode == "verify":
                complete = False
        for row, ub in pending:
            stuck[row] = max(stuck[row], ub)
        upper = self._final_upper(heap, stuck, root, mode, lower())
        self.lb.trace.restore(self.root, n=1)
        return SearchOutcome(upper, domains, complete, reason)

    def _closed(self, row: int, ub: float, mode: str, low: float) -> bool:
        if mode == "verify":
            return holds(ub, bool(self.rows.strict[row]))
        return ub <= low

    def _final_upper(self, heap: list[_Domain], stuck: np.ndarray, root: np.ndarray, mode: str, low: float) -> np.ndarray:
        """Per row: the largest bound of an open domain, else the threshold its closed domains were under."""
        out = np.full(len(root), -np.inf)
        for d in heap:
            out[d.row] = max(out[d.row], -d.key)
        out = np.maximum(out, stuck)
        # closed domains of a row were below the closing threshold (and below the root bound)
        cap = np.minimum(root, 0.0 if mode == "verify" else low)
        return np.where(np.isfinite(out), np.maximum(out, cap), cap)
