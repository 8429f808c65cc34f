"""A one-shot label certificate over a whole input box by CROWN margin rows.

For the nominal class ``c`` (the float label at the box's centre), the rows
``f_p0(x)_c - f_p0(x)_j`` and ``f_p(x)_c - f_p(x)_j`` (every ``j != c``) are
bounded below by CROWN with perturbed weights, both networks traced with
the shared input.  When every lower bound is > 0, the nominal label is
``c`` on the whole box and every parameter of the box keeps it: Def 4
holds.  Margin rows keep the correlation between the two logits that
per-output intervals lose, which decides most int8-vs-float balls at once.
"""

from __future__ import annotations

import numpy as np

from paramverify.bounds.crown import LinearBounds
from paramverify.errors import CapabilityError
from paramverify.properties import Problem


def box_label_certified(problem: Problem) -> bool:
    """True only when Def 4 provably holds on the problem's box (k >= 2 classes)."""
    g, box, region = problem.graph, problem.box, problem.region
    if region.is_point:
        return False
    centre = (region.lo + region.hi) / 2
    y = g.evaluate(centre)[0]
    k = y.size
    if k < 2:
        return False
    c = int(np.argmax(y))
    rows = np.zeros((k - 1, k))
    others = [j for j in range(k) if j != c]
    rows[:, c] = -1.0
    rows[np.arange(k - 1), others] = 1.0  # upper bound of f_j - f_c must be < 0
    try:
        lb = LinearBounds(g, box, region.lo[None], region.hi[None], differential=True)
        lb.refine()
        assert lb.y0 is not None
        zero = np.zeros_like(rows)
        u = lb.upper([(lb.y, lb.rows(lb.y, np.concatenate([rows, zero]))), (lb.y0, lb.rows(lb.y0, np.concatenate([zero, rows])))])
    except CapabilityError:
        return False
    return bool(np.all(u < 0))
