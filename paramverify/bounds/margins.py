"""A one-shot label certificate over a whole input box by CROWN margin rows.

For the nominal class ``c`` (the float label at the box's centre), the rows
``f_p0(x)_c - f_p0(x)_j`` and ``f_p(x)_c - f_p(x)_j`` (every ``j != c``) are
bounded below by CROWN with perturbed weights, both networks traced with
the shared input.  When every lower bound is > 0, the nominal label is
``c`` on the whole box and every parameter of the box keeps it: Def 4
holds.  Margin rows keep the correlation between the two logits that
per-output intervals lose, which decides most int8-vs-float balls at once.
For an int8 lowering whose input goes straight into its input quantization,
the int8 rows are also bounded on the box clipped to that grid's range
(:func:`int8_input_range`: the rounding saturates, so the int8 model takes
the same values there), which removes the clip's unstable relus at pixels
near the ends of the range; the smaller bound is kept.
"""

from __future__ import annotations

import time

import numpy as np

from paramverify.bounds.crown import LinearBounds
from paramverify.errors import CapabilityError
from paramverify.ops.quant import ActivationQuantize
from paramverify.options import Deadline
from paramverify.properties import Problem


def box_label_certified(problem: Problem) -> bool:
    """True only when Def 4 provably holds on the problem's box (k >= 2 classes)."""
    region = problem.region
    if region.is_point:
        return False
    return bool(_certified(problem, region.lo[None], region.hi[None])[0])


def _certified(problem: Problem, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per box ``[N, d]``: does every margin row of both networks stay below 0 (see the module docstring)?"""
    g, box = problem.graph, problem.box
    ys = g.evaluate((lo + hi) / 2)
    k = ys.shape[1]
    out = np.zeros(len(lo), dtype=bool)
    if k < 2:
        return out
    classes = np.argmax(ys, axis=1)
    clip = int8_input_range(problem)
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        rows = np.zeros((k - 1, k))
        others = [j for j in range(k) if j != c]
        rows[:, c] = -1.0
        rows[np.arange(k - 1), others] = 1.0  # upper bound of f_j - f_c must be < 0
        try:
            lb = LinearBounds(g, box, lo[idx], hi[idx], differential=True)
            lb.refine()
            assert lb.y0 is not None
            zero = np.zeros_like(rows)
            u = lb.upper([(lb.y, lb.rows(lb.y, np.concatenate([rows, zero]))),
                          (lb.y0, lb.rows(lb.y0, np.concatenate([zero, rows])))])
            if clip is not None:
                lo_c, hi_c = np.clip(lo[idx], *clip), np.clip(hi[idx], *clip)
                if not (np.array_equal(lo_c, lo[idx]) and np.array_equal(hi_c, hi[idx])) and np.any(lo_c < hi_c):
                    lq = LinearBounds(g, box, lo_c, hi_c)
                    lq.refine()
                    u[: k - 1] = np.minimum(u[: k - 1], lq.upper([(lq.y, lq.rows(lq.y, rows))]))
        except (CapabilityError, ValueError):
            continue
        out[idx] = np.all(u < 0, axis=0)
    return out


def int8_input_range(problem: Problem) -> tuple[float, float] | None:
    """``(L, H)`` when the int8 model reads its input only through its input quantization.

    The rounding saturates: ``fq(x) = fq(clip(x, L, H))`` with ``[L, H]`` the
    grid's range (onnxruntime saturates the same way), so the int8 model takes
    the same values on a box and on the box clipped to ``[L, H]``, where the
    clip's relus are stable.  The float model reads the raw input (the rounding
    is off there) and keeps the raw box.
    """
    g, box = problem.graph, problem.box
    if g.replay_models is None:
        return None
    readers = [n for n in g.nodes if g.input_name in n.inputs]
    if len(readers) != 1 or not isinstance(readers[0].op, ActivationQuantize) or readers[0].inputs[0] != g.input_name:
        return None
    enable = readers[0].inputs[1]
    if enable not in box.names or not (np.all(box.lo[enable] == 1) and np.all(box.hi[enable] == 1)):
        return None
    grid = readers[0].op.grid
    return float(grid.low), float(grid.high)


def certify_by_splits(problem: Problem, deadline: Deadline, max_boxes: int = 4096, batch: int = 16) -> bool:
    """:func:`box_label_certified` on the box, else on halves of it (split where the float
    margin is most sensitive), a batch of pieces at a time, until every piece is
    certified (True) or time or ``max_boxes`` runs out (False).  The pieces cover the
    box, so True proves Def 4."""
    region = problem.region
    if region.is_point:
        return False
    queue = [(region.lo.copy(), region.hi.copy())]
    done = 0
    last = 0.0  # seconds the last batch took: one more that would overrun the deadline is not started
    while queue:
        left = deadline.remaining()
        if deadline.expired() or done >= max_boxes or (left is not None and left < last):
            return False
        todo, queue = queue[-batch:], queue[:-batch]
        done += len(todo)
        lo = np.stack([b[0] for b in todo])
        hi = np.stack([b[1] for b in todo])
        t = time.monotonic()
        ok = _certified(problem, lo, hi)
        last = time.monotonic() - t
        for (blo, bhi), good in zip(todo, ok):
            if good:
                continue
            ax = _split_axis(problem, blo, bhi)
            if ax is None:
                return False
            mid = blo[ax] + (bhi[ax] - blo[ax]) / 2
            left_hi, right_lo = bhi.copy(), blo.copy()
            left_hi[ax], right_lo[ax] = mid, mid
            queue.extend([(blo, left_hi), (right_lo, bhi)])
    return True


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
