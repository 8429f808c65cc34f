"""Branch and bound keeps its time limit when the costly ``tighten`` pass is much slower than
the first bound (a conv net's CROWN against its interval pass).

Before the fix one pace (seconds per box) was measured over all steps: the cheap
steps sized the batch of the next step that ran ``tighten`` (the gate retries it
every eighth step), and that step overran a 10 s limit by 25 s on the digits CNN.
"""

from __future__ import annotations

import time

import numpy as np

from paramverify.bounds.branch import Probe, branch_and_bound
from paramverify.options import Options

PER_BOX_S = 0.01  # what the slow pass costs per box


def _bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return hi[:, 0] + 1.0  # sound for f(x) = x_0, never tight enough to finish


def _slow_useless_tighten(lo: np.ndarray, hi: np.ndarray, ub: np.ndarray) -> np.ndarray:
    time.sleep(PER_BOX_S * len(lo))
    return ub  # gains nothing, so the gate skips it, retrying every eighth step


def _probe(lo, hi, ub, best):
    return Probe(float(np.max(lo[:, 0])), None)


def test_a_slow_tighten_step_is_not_sized_by_the_cheap_steps() -> None:
    limit = 1.5
    opts = Options(tolerance=1e-12, max_splits=10**6, timeout_s=limit)
    t = time.monotonic()
    res = branch_and_bound(_bound, _probe, np.zeros(2), np.ones(2), opts, opts.deadline(), batch=64,
                           tighten=_slow_useless_tighten)
    elapsed = time.monotonic() - t
    assert res.reason == "deadline" and not res.complete
    assert res.boxes > 100  # the cheap steps did run
    # before the fix: a 128-box tightened step started near the limit (>= 1.28 s more)
    assert elapsed < limit + 0.6, elapsed
    assert res.lower <= 1.0 <= res.upper
