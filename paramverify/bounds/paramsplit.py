"""Branch and bound over the parameter box at a point input, for when the box is the bottleneck.

Neuron splits cannot tighten a bound whose gap sits in the products of
perturbed weights with perturbed activations: linear or smooth hidden units,
or a ReLU network with no unstable neuron left in its worst domain.  There
the parameter box itself is split.  A *piece* is a sub-box of the parameter
box; its row bounds are the point search's root bounds on that sub-box
(:class:`~paramverify.bounds.local.SplitSearch`: CROWN with perturbed
weights, optimised slopes, the first-layer cut where it applies), capped
row by row by its parent's, so a piece's bound never exceeds its parent's.

Guarantee: the pieces on the queue always cover the whole box (a popped
piece is replaced by two halves that cover it), so for every row the
largest bound over the pieces bounds the row over the box, at every moment:
time limit, ``max_splits`` and Ctrl-C return that (monotone) bound.

Choice of the split (heuristic; soundness never depends on it): the worst
piece's worst row is differentiated at the piece's extreme corners; the
``candidates`` coordinates whose gradient changes most across the piece
(times their width) are each tried, and the one whose worse half bounds the
row lowest is kept (a small strong-branching step; the halves it computed
are the children).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from paramverify.bounds.falsify import evaluate
from paramverify.bounds.local import Rows, SplitSearch
from paramverify.options import Deadline, Options
from paramverify.properties import Problem
from paramverify.specs import ParamBox

#: slope-optimisation steps per piece (the whole box got more at the root)
PIECE_ITERS = 8
#: coordinates tried per split (strong branching among the best first-order scores)
CANDIDATES = 3
#: splits over which the bound must fall by more than STALL_REL of its magnitude, else the search stops
#: ("stalled": e.g. a row exactly at its threshold, which only exact arithmetic decides)
STALL_WINDOW = 64
STALL_REL = 1e-9
#: share of the time limit left to the caller (as the neuron-split search does)
RESERVE = 0.05

Params = dict[str, np.ndarray]
Coord = tuple[str, int]


@dataclass(frozen=True, eq=False)
class Piece:
    """A sub-box of the parameter box and its proved row bounds."""

    uppers: np.ndarray  # [R]
    lo: Params
    hi: Params

    @property
    def bound(self) -> float:
        return float(np.max(self.uppers))

    def midpoint(self) -> Params:
        return {n: self.lo[n] + (self.hi[n] - self.lo[n]) / 2 for n in self.lo}


@dataclass(frozen=True, eq=False)
class ParamSplitResult:
    """Per-row bounds over the whole box (each at most the caps it started from) and how it ended."""

    uppers: np.ndarray
    pieces: int
    reason: str  # tolerance | holds | exhausted | stalled | deadline | max-splits | interrupted


def piece_uppers(problem: Problem, rows: Rows, lo: Mapping[str, np.ndarray], hi: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sound upper bounds ``[R]`` of the rows over the parameters in ``[lo, hi]`` at the point ``x0``."""
    box = ParamBox(problem.box.nominal, dict(lo), dict(hi), problem.box.description)
    sub = Problem(problem.graph, box, problem.region, problem.level)
    return SplitSearch(sub, rows, root_iters=PIECE_ITERS).root_bounds()


def _halves(piece: Piece, c: Coord) -> tuple[tuple[Params, Params], tuple[Params, Params]]:
    """The two halves of ``piece`` along coordinate ``c`` (they share the midpoint: together they cover it)."""
    name, i = c
    lo, hi = piece.lo[name].reshape(-1), piece.hi[name].reshape(-1)
    mid = min(max(lo[i] + (hi[i] - lo[i]) / 2, lo[i]), hi[i])
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[i] = right_lo[i] = mid
    shape = piece.lo[name].shape
    return ((dict(piece.lo), {**piece.hi, name: left_hi.reshape(shape)}),
            ({**piece.lo, name: right_lo.reshape(shape)}, dict(piece.hi)))


def _scores(problem: Problem, rows: Rows, piece: Piece, r: int) -> list[Coord]:
    """Coordinates of positive width, best first by ``width x |g(hi) - g(lo)|`` (ties: ``width x |g(mid)|``),
    ``g`` the gradient of row ``r`` at the piece's two extreme corners and its midpoint.

    A coordinate the row is affine in (a last bias) or that acts alone leaves no gap to a
    relaxation: one half keeps the parent's maximiser and its bound.  The change of its
    gradient across the piece measures how much it interacts with the rest of the box.
    """
    from paramverify.bounds.point import row_objective  # point imports this module

    box = ParamBox(problem.box.nominal, piece.lo, piece.hi)
    objective = row_objective(rows.coefs[r])
    x = problem.region.lo

    def grads(at: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _, _, pv, _ = evaluate(problem.graph, box, x, at, objective)
        return {n: np.zeros(np.shape(at[n])) if pv[n].grad is None else np.asarray(pv[n].grad, dtype=np.float64) for n in box.names}

    g_lo, g_hi, g_mid = grads(piece.lo), grads(piece.hi), grads(piece.midpoint())
    scored: list[tuple[float, float, Coord]] = []
    for n in box.names:
        width = (piece.hi[n] - piece.lo[n]).reshape(-1)
        inter = width * np.abs(g_hi[n] - g_lo[n]).reshape(-1)
        first = width * np.abs(g_mid[n]).reshape(-1)
        for i in np.flatnonzero(width > 0):
            scored.append((float(inter[i]), float(first[i]), (n, int(i))))
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    return [c for _, _, c in scored]


def param_split(problem: Problem, rows: Rows, caps: np.ndarray, options: Options, deadline: Deadline,
                lower: Callable[[], float] | None = None, decide: bool = False,
                on_piece: Callable[[int, Piece], None] | None = None, candidates: int = CANDIDATES,
                label: str = "") -> ParamSplitResult:
    """Best-first splitting of the parameter box.  ``caps`` ``[R]``: sound row bounds already proved
    (e.g. by neuron splits).  ``on_piece(row, piece)``: called for each piece popped (a falsifier hook;
    its exceptions propagate).

    Optimise (``decide`` False): until the bound is within ``options.tolerance`` of ``lower()``.
    Decide (``decide`` True): a piece on which every row holds (``< 0``, or ``<= 0`` where not
    strict) is closed; "holds" once every piece is.  Either way time, ``max_splits`` and Ctrl-C
    end it with the bound proved so far; a split that would likely overrun the time limit (twice
    the median of the last 8 splits' times, plus a reserve for the caller) is not started.  Progress goes to
    ``options.progress`` as ``label`` + the piece count."""
    caps = np.asarray(caps, dtype=np.float64)
    lo0 = {n: np.asarray(problem.box.lo[n], dtype=np.float64) for n in problem.box.names}
    hi0 = {n: np.asarray(problem.box.hi[n], dtype=np.float64) for n in problem.box.names}
    order = itertools.count()
    queue: list[tuple[float, int, Piece]] = []
    closed = np.full(caps.shape, -np.inf)  # row bounds of the closed pieces (decide mode)
    popped: Piece | None = None
    reason = "exhausted"
    pieces = 1
    history: list[float] = []
    split_s: list[float] = []  # wall time of each split
    reserve = 0.0 if options.timeout_s is None else RESERVE * options.timeout_s

    def is_open(u: np.ndarray) -> np.ndarray:
        return np.where(rows.strict, u >= 0, u > 0) if decide else np.ones(u.shape, dtype=bool)

    def push(piece: Piece) -> None:
        nonlocal closed
        open_ = is_open(piece.uppers)
        if not np.any(open_):
            closed = np.maximum(closed, piece.uppers)
            return
        heapq.heappush(queue, (-float(np.max(piece.uppers[open_])), next(order), piece))

    try:
        push(Piece(np.minimum(piece_uppers(problem, rows, lo0, hi0), caps), lo0, hi0))
        while True:
            if not queue:
                reason = "holds"
                break
            bound = -queue[0][0]
            low = None if lower is None else lower()
            options.progress.update(f"{label}{pieces} parameter pieces", low, None if decide else bound)
            if not decide and low is not None and bound - low <= options.tolerance:
                reason = "tolerance"
                break
            left = deadline.remaining()
            typical = float(np.median(split_s[-8:])) if split_s else 0.0
            if deadline.expired() or (left is not None and left <= 2.0 * typical + reserve):
                reason = "deadline"
                break
            if pieces >= options.max_splits:
                reason = "max-splits"
                break
            history.append(bound)
            if len(history) > STALL_WINDOW and history[-1 - STALL_WINDOW] - bound <= STALL_REL * max(1.0, abs(bound)):
                reason = "stalled"
                break
            t0 = time.monotonic()
            popped = heapq.heappop(queue)[2]
            r = int(np.argmax(np.where(is_open(popped.uppers), popped.uppers, -np.inf)))
            if on_piece is not None:
                on_piece(r, popped)
            best: tuple[float, list[Piece]] | None = None
            for c in _scores(problem, rows, popped, r)[:max(1, candidates)]:
                kids = [Piece(np.minimum(piece_uppers(problem, rows, lo, hi), popped.uppers), lo, hi) for lo, hi in _halves(popped, c)]
                worst = max(float(k.uppers[r]) for k in kids)
                if best is None or worst < best[0]:
                    best = (worst, kids)
                if deadline.expired():
                    break
            if best is None:  # every coordinate of the worst piece has width 0: nothing to split
                push(popped)
                popped = None
                reason = "exhausted"
                break
            for kid in best[1]:
                push(kid)
            pieces += 1
            popped = None
            split_s.append(time.monotonic() - t0)
    except KeyboardInterrupt:
        reason = "interrupted"
    held = [p.uppers for _, _, p in queue] + ([popped.uppers] if popped is not None else [])
    if not held and not np.all(np.isfinite(closed)):
        return ParamSplitResult(caps, pieces, reason)  # stopped before the root piece was bounded
    return ParamSplitResult(np.minimum(np.max(held + [closed], axis=0), caps), pieces, reason)
