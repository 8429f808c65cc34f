"""The reference attack every falsifier result is compared with: plain PGD, 20 restarts x 200 steps.

Madry-style projected sign-gradient ascent over the parameter box (and the
input region when it is not a point): each restart starts at a uniform
random point of the boxes and takes ``steps`` steps of ``2.5 / steps``
times the half-width per coordinate, projected back; the best value seen is
kept.  Objective: the maximum of the rows (``paramverify.bounds.pgd.RowObjective``),
e.g. ``max_o |f_p(x) - f_p0(x)|_o`` or the CW label margin.  The forward pass
is paramverify's own graph on torch (all restarts batched), so the reference
needs no separate model code.  Deliberately plain: no momentum, no vertex
jumps, no step schedule.
"""

from __future__ import annotations

import numpy as np

from paramverify.bounds.pgd import RowObjective, torch_value_grad
from paramverify.ir import Graph
from paramverify.specs import ParamBox


def reference_pgd(graph: Graph, box: ParamBox, x_lo: np.ndarray, x_hi: np.ndarray, obj: RowObjective,
                  seed: int = 0, restarts: int = 20, steps: int = 200) -> float:
    """The best objective value (float64, unproved) of a plain ``restarts`` x ``steps`` PGD."""
    import torch

    rng = np.random.default_rng(seed)
    x_lo = np.asarray(x_lo, dtype=np.float64).reshape(-1)
    x_hi = np.asarray(x_hi, dtype=np.float64).reshape(-1)
    mask = np.ones((restarts, len(obj.offsets)), dtype=bool)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vg = torch_value_grad(graph, box, obj, mask, fixed_x=bool(np.all(x_lo == x_hi)))
        if vg is None:
            raise RuntimeError("the reference PGD needs the torch kernel")
        names = box.names
        lo = {n: np.asarray(box.lo[n], dtype=np.float64) for n in names}
        hi = {n: np.asarray(box.hi[n], dtype=np.float64) for n in names}
        X = rng.uniform(x_lo, x_hi, (restarts, x_lo.size))
        P = {n: rng.uniform(lo[n], hi[n], (restarts,) + lo[n].shape) for n in names}
        alpha = 2.5 / steps * 0.5  # of the full width: 2.5 * eps / steps with eps the half-width
        best = -np.inf
        for _ in range(steps):
            vals, gx, gp = vg(X, P, True)
            best = max(best, float(np.max(vals)))
            X = np.clip(X + alpha * np.sign(gx) * (x_hi - x_lo), x_lo, x_hi)
            P = {n: np.clip(P[n] + alpha * np.sign(gp[n]) * (hi[n] - lo[n]), lo[n], hi[n]) for n in names}
        vals, _, _ = vg(X, P, False)
        return max(best, float(np.max(vals)))
    finally:
        torch.set_num_threads(before)
