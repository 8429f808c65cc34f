"""Which children a branch-and-bound probe looks at (searches.promising)."""

from __future__ import annotations

import numpy as np

from paramverify.bounds.searches import PROBE_CENTRES, promising


def test_all_live_children_when_few():
    ub = np.array([0.5, 2.0, -1.0, 3.0])
    assert promising(ub, best=0.0).tolist() == [0, 1, 3]  # only bounds above the lower end, in order
    assert promising(ub, best=5.0).size == 0


def test_largest_bounds_first_ties_in_order_when_many():
    rng = np.random.default_rng(0)
    ub = np.round(rng.uniform(0, 1, 128), 1)  # many ties
    got = promising(ub, best=0.25)
    assert got.size == PROBE_CENTRES == 16
    live = np.flatnonzero(ub > 0.25)
    expect = sorted(live.tolist(), key=lambda i: (-ub[i], i))[:16]
    assert got.tolist() == expect
    assert promising(ub, best=0.25, most=3).tolist() == expect[:3]
