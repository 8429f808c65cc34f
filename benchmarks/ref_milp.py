"""Where the truth lies: the largest output change of a two-hidden-layer ReLU MLP at a point, as a MILP.

A reference for the benchmark tables, not a proof: HiGHS (``scipy.optimize.milp``)
works in floating point with tolerances, so its optimum and its dual bound are
unproved numbers.  What it returns is checked the only way that is sound: the
maximiser is turned into concrete parameters inside the box and the model (its
float64 lowering) is evaluated there, so ``witness`` is a true lower end, like any
falsifier's.

The formulation is exact for ``x -> Gemm -> Relu -> Gemm -> Relu -> Gemm`` at a
point with any parameter box:

* the first layer's outputs are exactly the box ``H`` of
  :func:`paramverify.bounds.firstlayer.cut_first_layer`;
* for ``h`` in ``H`` (``h >= 0``) the second pre-activation ``z_k`` ranges over
  ``[W2lo_k . h + b2lo_k, W2hi_k . h + b2hi_k]`` (each row's own box), so
  ``h2_k = relu(z_k)`` ranges over ``[relu(l_k(h)), relu(u_k(h))]``;
* ``s * (y_o - y0_o)`` is at most ``sum_k c_k h2_k + c_0`` with ``c_k`` the end of
  ``s * W3_ok``'s box that is larger (``h2 >= 0``), reached by that end.

So ``max = max_{h in H} sum_k c_k h2_k + c_0`` with ``h2_k <= relu(u_k(h))`` where
``c_k > 0`` (a binary per unstable neuron, big-M from the exact interval of
``u_k`` over ``H``) and ``h2_k >= max(0, l_k(h))`` where ``c_k < 0``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from paramverify.bounds.firstlayer import cut_first_layer
from paramverify.properties import Problem


@dataclass(frozen=True)
class MilpReference:
    optimum: float  # HiGHS's best objective: the largest change (unproved)
    dual_bound: float  # HiGHS's bound on it (unproved; equal to optimum when solved)
    witness: float  # the change of the model at the concrete parameters built from the maximiser
    solved: bool
    seconds: float


def _ends(lo: np.ndarray, hi: np.ndarray, up: bool) -> np.ndarray:
    return np.maximum(lo, hi) if up else np.minimum(lo, hi)


def max_change(problem: Problem, time_limit: float = 120.0) -> MilpReference:
    """``max_o max_p |f_p(x0)_o - f_p0(x0)_o|`` for the structure in the module docstring."""
    t0 = time.perf_counter()
    cut = cut_first_layer(problem)
    if cut is None:
        raise ValueError("the first layer is not an MLP layer at a point input")
    g = cut.problem.graph
    nodes = [n for n in g.nodes if n.op.op_type != "Identity"]
    ops = [n.op.op_type for n in nodes]
    if ops != ["Gemm", "Relu", "Gemm"] or any(n.op.transA or not n.op.transB or n.op.alpha != 1 or n.op.beta != 1
                                               for n in nodes if n.op.op_type == "Gemm"):
        raise ValueError(f"expected Gemm, Relu, Gemm after the first layer (transB = 1, alpha = beta = 1), found {ops}")
    box = cut.problem.box
    g2, g3 = nodes[0], nodes[2]

    def rng(name: str | None, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if name is None:
            return np.zeros(shape), np.zeros(shape)
        if name in box.names:
            return np.asarray(box.lo[name], np.float64), np.asarray(box.hi[name], np.float64)
        v = np.asarray(g.initializers[name], np.float64)
        return v, v

    hl, hu = (np.asarray(v, np.float64).reshape(-1) for v in (box.lo[cut.name], box.hi[cut.name]))
    w2 = rng(g2.inputs[1], ())
    b2 = rng(g2.inputs[2] if len(g2.inputs) > 2 else None, (w2[0].shape[0],))
    w3 = rng(g3.inputs[1], ())
    b3 = rng(g3.inputs[2] if len(g3.inputs) > 2 else None, (w3[0].shape[0],))
    x = problem.region.lo
    y0 = problem.graph.evaluate(x)[0]
    n1, n2 = hl.size, w2[0].shape[0]
    optimum = dual_bound = best_witness = -np.inf
    solved = True
    for o in range(w3[0].shape[0]):
        for s in (1.0, -1.0):
            c = _ends(s * w3[0][o], s * w3[1][o], True)
            c0 = float(_ends(s * b3[0][o], s * b3[1][o], True)) - s * float(y0[o])
            # z2 ends as linear functions of h (h >= 0): the row's upper or lower box end
            wu, bu = np.maximum(w2[0], w2[1]), np.maximum(b2[0], b2[1]).reshape(-1)
            wl, bl = np.minimum(w2[0], w2[1]), np.minimum(b2[0], b2[1]).reshape(-1)
            U = np.maximum(wu, 0) @ hu + np.minimum(wu, 0) @ hl + bu  # max of u_k over H
            L = np.maximum(wu, 0) @ hl + np.minimum(wu, 0) @ hu + bu  # min of u_k over H
            nv = n1 + 2 * n2  # h, h2, a
            rows: list[np.ndarray] = []
            lo: list[float] = []
            hi: list[float] = []
            lb = np.concatenate([hl, np.zeros(n2), np.zeros(n2)])
            ub = np.concatenate([hu, np.full(n2, np.inf), np.ones(n2)])
            for k in range(n2):
                if c[k] < 0:  # minimised: h2 >= l_k(h) (and >= 0)
                    r = np.zeros(nv)
                    r[:n1], r[n1 + k] = -wl[k], 1.0
                    rows.append(r), lo.append(bl[k]), hi.append(np.inf)
                    ub[n1 + n2 + k] = 0.0
                elif U[k] <= 0:
                    ub[n1 + k] = ub[n1 + n2 + k] = 0.0
                elif L[k] >= 0:  # h2 <= u_k(h)
                    r = np.zeros(nv)
                    r[:n1], r[n1 + k] = -wu[k], 1.0
                    rows.append(r), lo.append(-np.inf), hi.append(bu[k])
                    ub[n1 + n2 + k] = 0.0
                else:  # h2 <= u_k(h) - L (1 - a), h2 <= U a
                    r = np.zeros(nv)
                    r[:n1], r[n1 + k], r[n1 + n2 + k] = -wu[k], 1.0, -L[k]
                    rows.append(r), lo.append(-np.inf), hi.append(bu[k] - L[k])
                    r = np.zeros(nv)
                    r[n1 + k], r[n1 + n2 + k] = 1.0, -U[k]
                    rows.append(r), lo.append(-np.inf), hi.append(0.0)
            obj = np.zeros(nv)
            obj[n1:n1 + n2] = c
            integ = np.zeros(nv)
            integ[n1 + n2:] = 1
            cons = [LinearConstraint(np.array(rows), lo, hi)] if rows else []
            res = milp(-obj, constraints=cons, integrality=integ, bounds=Bounds(lb, ub), options={"time_limit": time_limit})
            if res.x is None:
                continue
            value = float(obj @ res.x) + c0
            dual = -float(res.mip_dual_bound) + c0 if res.mip_dual_bound is not None else np.inf
            # the witness: the first layer lifted from h, then every later tensor at the end the formulation used
            h = res.x[:n1]
            params = cut.lift({**{n: box.nominal[n] for n in box.names}, cut.name: h}, problem.box)
            up2 = c >= 0
            for name, (a, b), pick in ((g2.inputs[1], w2, up2[:, None]), (g2.inputs[2] if len(g2.inputs) > 2 else None, b2, up2)):
                if name in box.names:
                    params[name] = np.where(pick, np.maximum(a, b), np.minimum(a, b)).reshape(np.shape(a))
            for name, (a, b) in ((g3.inputs[1], w3), (g3.inputs[2] if len(g3.inputs) > 2 else None, b3)):
                if name in box.names:
                    params[name] = np.where(s * a >= s * b, a, b).reshape(np.shape(a)) if name == g3.inputs[1] \
                        else np.where(s * a >= s * b, a, b)
            witness = s * float(problem.graph.evaluate(x, params)[0][o] - y0[o])
            optimum, dual_bound = max(optimum, value), max(dual_bound, dual)
            best_witness, solved = max(best_witness, witness), solved and res.status == 0
    return MilpReference(optimum, dual_bound, best_witness, solved, time.perf_counter() - t0)
