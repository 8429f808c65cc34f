"""A one-shot label certificate over a whole input box by CROWN margin rows.

For the nominal class ``c`` (the float label at the box's centre), the rows
``f_p0(x)_c - f_p0(x)_j`` and ``f_p(x)_c - f_p(x)_j`` (every ``j != c``) are
bounded below by CROWN with perturbed weights, both networks traced with
the shared input.  When every lower bound is > 0, the nominal label is
``c`` on the whole box and every parameter of the box keeps it: Def 4
holds.  Margin rows keep the correlation between the two logits that
per-output intervals lose, which decides most int8-vs-float balls at once.
For an int8 lowering whose input goes straight into its input quantization
(:func:`int8_input_grid`), the int8 rows are also bounded on the *grid box*
``[fq(lo), fq(hi)]`` by the lowering without that input rounding
(:func:`without_input_rounding`): ``int8(x) = N(fq(x))`` and ``fq`` is
non-decreasing, so ``fq(x)`` lies in the grid box for every ``x`` in
``[lo, hi]``, and ``N`` there has neither the input's rounding error nor the
saturation's unstable relus (``fq`` saturates at the grid's range).  When
that bound does not settle every row, its relu slopes are optimised
(alpha-CROWN, :func:`~paramverify.bounds.optimize.optimised_upper`); every
iterate is a sound bound.  The smallest bound of each row is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from paramverify.bounds.crown import LinearBounds
from paramverify.bounds.interval import Interval
from paramverify.bounds.optimize import optimised_upper
from paramverify.bounds.quantround import fq_index_range, grid_values
from paramverify.errors import CapabilityError
from paramverify.ir import Graph, Node
from paramverify.ops.quant import ActivationQuantize, Grid
from paramverify.options import Deadline, ProgressSink
from paramverify.properties import Problem

#: slope-optimisation steps on int8 rows the plain bound leaves open (about 0.1 s on a digits CNN)
ALPHA_ITERS = 20


def box_label_certified(problem: Problem) -> bool:
    """True only when Def 4 provably holds on the problem's box (k >= 2 classes)."""
    region = problem.region
    if region.is_point:
        return False
    return bool(_certified(problem, region.lo[None], region.hi[None])[0])


def _certified(problem: Problem, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per box ``[N, d]``: does every margin row of both networks stay below 0 (see the module docstring)?"""
    _, nominal_ok, perturbed_ok, _ = _rows_bounded(problem, lo, hi)
    return nominal_ok & perturbed_ok


def _margin_rows(k: int, c: int) -> np.ndarray:
    """Rows ``f_j - f_c`` (every ``j != c``): their upper bounds must be < 0."""
    rows = np.zeros((k - 1, k))
    rows[:, c] = -1.0
    rows[np.arange(k - 1), [j for j in range(k) if j != c]] = 1.0
    return rows


def _rows_bounded(problem: Problem, lo: np.ndarray, hi: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per box ``[N, d]``: the nominal class ``c`` at its centre, whether the nominal (float) rows
    and whether the perturbed (int8) rows are all below 0 on it, and a proved lower bound of the
    perturbed network's margin ``f_p(x)_c - max_j f_p(x)_j`` on it (``-inf`` where no bound was found)."""
    g, box = problem.graph, problem.box
    ys = g.evaluate((lo + hi) / 2)
    k = ys.shape[1]
    classes = np.argmax(ys, axis=1)
    nominal_ok = np.zeros(len(lo), dtype=bool)
    perturbed_ok = np.zeros(len(lo), dtype=bool)
    floor = np.full(len(lo), -np.inf)
    if k < 2:
        return classes, nominal_ok, perturbed_ok, floor
    grid = int8_input_grid(problem)
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        rows = _margin_rows(k, int(c))
        try:
            lb = LinearBounds(g, box, lo[idx], hi[idx], differential=True)
            lb.refine()
            assert lb.y0 is not None
            zero = np.zeros_like(rows)
            u = lb.upper([(lb.y, lb.rows(lb.y, np.concatenate([rows, zero]))),
                          (lb.y0, lb.rows(lb.y0, np.concatenate([zero, rows])))])
            if grid is not None and np.any(u[: k - 1] >= 0):
                k_lo, k_hi = fq_index_range(Interval(lo[idx], hi[idx]), grid)
                u[: k - 1] = np.minimum(u[: k - 1], _grid_rows_upper(problem, grid, k_lo, k_hi, rows, alpha=np.all(u[k - 1 :] < 0, axis=0)))
        except (CapabilityError, ValueError):
            continue
        perturbed_ok[idx] = np.all(u[: k - 1] < 0, axis=0)
        nominal_ok[idx] = np.all(u[k - 1 :] < 0, axis=0)
        floor[idx] = -np.max(u[: k - 1], axis=0)
    return classes, nominal_ok, perturbed_ok, floor


def _grid_rows_upper(problem: Problem, grid: Grid, k_lo: np.ndarray, k_hi: np.ndarray, rows: np.ndarray,
                     alpha: np.ndarray | bool = True) -> np.ndarray:
    """Upper bounds ``[rows, N]`` of the int8 rows over the grid boxes ``[k_lo s, k_hi s]`` (``[N, d]``),
    by the lowering without its input rounding; slopes optimised where ``alpha`` and the plain
    bound leaves a row open."""
    values = grid_values(k_lo, k_hi, grid)
    lq = LinearBounds(without_input_rounding(problem.graph), problem.box, values.lo, values.hi)
    lq.refine()
    target = [(lq.y, lq.rows(lq.y, rows))]
    u = lq.upper(target)
    if np.any(alpha & np.any(u >= 0, axis=0)):
        u = np.minimum(u, optimised_upper(lq, target, iters=ALPHA_ITERS)[0])
    return u


def without_input_rounding(g: Graph) -> Graph:
    """The lowering with its input quantization node removed (its reader reads the input):
    ``int8(x) = without_input_rounding(g)_int8(fq(x))``.  Only for graphs where
    :func:`int8_input_grid` found that node."""
    (q,) = _input_readers(g)
    nodes = tuple(Node(n.name, n.op, tuple(g.input_name if s == q.output else s for s in n.inputs), n.output)
                  for n in g.nodes if n is not q)
    return replace(g, nodes=nodes)


def _input_readers(g: Graph) -> list[Node]:
    return [n for n in g.nodes if g.input_name in n.inputs]


def int8_input_grid(problem: Problem) -> Grid | None:
    """The grid of the int8 model's input quantization, when the int8 model reads its input only
    through it (and it is switched on: the problem is an int8 lowering against its float model)."""
    g, box = problem.graph, problem.box
    if g.replay_models is None:
        return None
    readers = _input_readers(g)
    if len(readers) != 1 or not isinstance(readers[0].op, ActivationQuantize) or readers[0].inputs[0] != g.input_name:
        return None
    enable = readers[0].inputs[1]
    if enable not in box.names or not (np.all(box.lo[enable] == 1) and np.all(box.hi[enable] == 1)):
        return None
    if g.output_name == readers[0].output:
        return None
    return readers[0].op.grid


@dataclass(frozen=True)
class SplitOutcome:
    """What :func:`certify_by_splits` proved.

    ``certified``: Def 4 holds on the box.  Otherwise, when every piece left open
    is a grid piece of one float class ``cls`` (the float label is proved
    constant on them), ``floor`` is a proved lower bound of the int8 model's
    margin for ``cls`` (``int8_c - max_j int8_j``) on the whole box; else None.
    ``pieces``: the pieces bounded.
    """

    certified: bool
    pieces: int
    cls: int | None = None
    floor: float | None = None


def certify_by_splits(problem: Problem, deadline: Deadline, max_boxes: int = 4096, batch: int = 16,
                      progress: ProgressSink | None = None) -> SplitOutcome:
    """:func:`box_label_certified` on the box, else on pieces of it, a batch of pieces at a
    time, until every piece is certified or time or ``max_boxes`` runs out.

    A piece is an input box (halved where the float margin is most sensitive)
    until its float rows hold on it.  For an int8 lowering with an input grid
    (:func:`int8_input_grid`) it then becomes a *grid piece*: the integer grid
    indices ``[k_lo, k_hi]`` its inputs round to, on which only the int8 rows
    are left to bound (:func:`_grid_rows_upper`), split into ``[k_lo, m]`` and
    ``[m + 1, k_hi]``: grid values, not reals, so the halves do not overlap and
    a coordinate whose range shrinks to one grid value is exact.  The pieces
    cover the box (its inputs' grid values), so a certified outcome proves Def 4.
    Every piece carries the int8 margin floor proved on it or on a piece
    containing it, so an uncertified outcome can still say how far the proof got
    (:class:`SplitOutcome`); ``progress`` gets a line per batch (pieces bounded and open, and
    that floor once it exists)."""
    region = problem.region
    if region.is_point:
        return SplitOutcome(False, 0)
    grid = int8_input_grid(problem)
    k = problem.graph.n_outputs
    # (grid piece?, lo, hi, float class, int8 margin floor proved on a piece containing it)
    queue: list[tuple[bool, np.ndarray, np.ndarray, int, float]] = [(False, region.lo.copy(), region.hi.copy(), -1, -np.inf)]
    done = 0
    last = 0.0  # seconds the last batch took: one more that would overrun the deadline is not started

    labels: set[int] = set()  # the float classes of the pieces whose float rows hold

    def stopped(open_pieces: list[tuple[bool, np.ndarray, np.ndarray, int, float]]) -> SplitOutcome:
        # every open piece is a grid piece and every piece's float class is the same c: the float
        # label is c on the whole box, the certified pieces' int8 margins are > 0 and the open
        # ones' floors <= 0, so the smallest open floor bounds the int8 margin on the box
        if open_pieces and all(p[0] for p in open_pieces) and len(labels) == 1:
            return SplitOutcome(False, done, next(iter(labels)), float(min(p[4] for p in open_pieces)))
        return SplitOutcome(False, done)

    while queue:
        left = deadline.remaining()
        if deadline.expired() or done >= max_boxes or (left is not None and left < last):
            return stopped(queue)
        if progress is not None and done:
            now = stopped(queue)
            progress.update(f"int8 pieces: {done} bounded, {len(queue)} open" +
                            ("" if now.floor is None else f"; margin >= {now.floor:.4g}"))
        todo, queue = queue[-batch:], queue[:-batch]
        done += len(todo)
        t = time.monotonic()
        boxes = [p for p in todo if not p[0]]
        if boxes:
            lo = np.stack([p[1] for p in boxes])
            hi = np.stack([p[2] for p in boxes])
            classes, nominal_ok, perturbed_ok, floor = _rows_bounded(problem, lo, hi)
            labels.update(int(c) for c in classes[nominal_ok])
            for i, (_, blo, bhi, _c, _f) in enumerate(boxes):
                if nominal_ok[i] and perturbed_ok[i]:
                    continue
                if nominal_ok[i] and grid is not None:
                    k_lo, k_hi = fq_index_range(Interval(blo, bhi), grid)
                    halves = _grid_halves(problem, grid, k_lo, k_hi)
                    if halves is None:
                        return SplitOutcome(False, done)
                    queue.extend((True, a, b, int(classes[i]), float(floor[i])) for a, b in halves)
                    continue
                ax = _split_axis(problem, blo, bhi)
                if ax is None:
                    return SplitOutcome(False, done)
                mid = blo[ax] + (bhi[ax] - blo[ax]) / 2
                left_hi, right_lo = bhi.copy(), blo.copy()
                left_hi[ax], right_lo[ax] = mid, mid
                queue.extend([(False, blo, left_hi, -1, -np.inf), (False, right_lo, bhi, -1, -np.inf)])
        pieces = [p for p in todo if p[0]]
        for c in sorted({p[3] for p in pieces}):
            group = [p for p in pieces if p[3] == c]
            assert grid is not None
            k_lo = np.stack([p[1] for p in group])
            k_hi = np.stack([p[2] for p in group])
            try:
                u = _grid_rows_upper(problem, grid, k_lo, k_hi, _margin_rows(k, c))
            except (CapabilityError, ValueError):
                return SplitOutcome(False, done)
            ok = np.all(u < 0, axis=0)
            for j in np.flatnonzero(~ok):
                floor = max(group[j][4], float(-np.max(u[:, j])))
                halves = _grid_halves(problem, grid, k_lo[j], k_hi[j])
                if halves is None:
                    return SplitOutcome(False, done)
                queue.extend((True, a, b, c, floor) for a, b in halves)
        last = time.monotonic() - t
    return SplitOutcome(True, done)


def _grid_halves(problem: Problem, grid: Grid, k_lo: np.ndarray, k_hi: np.ndarray
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """``[k_lo, m]`` and ``[m + 1, k_hi]`` along the input :func:`_split_axis` picks (None: one grid point)."""
    values = grid_values(k_lo, k_hi, grid)
    ax = _split_axis(problem, values.lo, values.hi)
    if ax is None or k_hi[ax] <= k_lo[ax]:
        return None
    m = np.floor((k_lo[ax] + k_hi[ax]) / 2)
    a_hi, b_lo = k_hi.copy(), k_lo.copy()
    a_hi[ax], b_lo[ax] = m, m + 1
    return (k_lo, a_hi), (b_lo, k_hi)


def _split_axis(problem: Problem, lo: np.ndarray, hi: np.ndarray) -> int | None:
    """The input whose half-width times the float margin's finite-difference slope is largest."""
    width = hi - lo
    if not np.any(width > 0):
        return None
    g = problem.graph
    centre = (lo + hi) / 2
    y = g.evaluate(centre)[0]
    order = np.argsort(y)
    c, s = int(order[-1]), int(order[-2])
    h = np.maximum(width / 4, 1e-12)
    pts = np.repeat(centre[None], 2 * centre.size, axis=0)
    idx = np.arange(centre.size)
    pts[idx, idx] += h
    pts[centre.size + idx, idx] -= h
    ys = g.evaluate(pts)
    m = ys[:, c] - ys[:, s]
    slope = np.abs(m[: centre.size] - m[centre.size :])
    score = np.where(width > 0, slope + 1e-12 * width, -1.0)
    return int(np.argmax(score))
