"""Branch and bound with linear programs and cutting planes: a two-hidden-layer ReLU MLP at a point.

After :func:`~paramverify.bounds.firstlayer.cut_first_layer` such a network is
``y = W3 relu(W2 h + b2) + b3`` with ``h`` in the exact box ``H`` and every
parameter in its own interval.  For ``h >= 0`` the row ``C . y`` is at most
``sum_k c_k t_k + c_0`` with ``t_k`` the second layer's output, ``c_k`` the larger
end of ``sum_o C_o W3_ok`` and ``t_k`` ranging over ``[relu(l_k(h)), relu(u_k(h))]``
(``l_k``, ``u_k``: the row's lower and upper parameter ends, linear in ``h``).  A
maximiser takes ``t_k = relu(u_k(h))`` where ``c_k > 0`` and ``t_k = relu(l_k(h))``
where ``c_k < 0``, so the row's maximum is that of a mixed-integer program with
one binary ``z_k`` per unstable neuron with ``c_k > 0`` (big-M rows from exact
intervals of ``u_k`` over ``H``) and the convex rows ``t_k >= l_k(h)``.

Each branch-and-bound domain fixes some ``z_k``; its bound is the linear
relaxation tightened by Anderson et al.'s cuts for a ReLU over a box input
(Math. Prog. 2020: for a subset ``I`` of the inputs,
``t <= sum_{i in I} w_i (h_i - Lb_i (1 - z)) + (b + sum_{i not in I} w_i Ub_i) z``, with
``Lb``/``Ub`` the box end that minimises/maximises ``w_i h_i``), separated at the
relaxation's solution.  HiGHS (``scipy.optimize.linprog``) solves the relaxations;
it only supplies multipliers.  The bound itself is weak duality evaluated in
outward-rounded arithmetic: for any ``y >= 0``, ``obj . v <= y . b + sum_i
max(r_i lb_i, r_i ub_i)`` with ``r = obj - A^T y``, for every ``v`` in the
variables' box with ``A v <= b``.  Every row of ``A v <= b`` holds at every
integral point of the exact program: its coefficients are the box's own float
ends, and the right-hand sides and the big-M and cut constants are rounded
outward (see :meth:`ReluMilp.cut`).  So every reported bound is a proof, whatever
the LP solver's tolerances.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import linprog

from paramverify.bounds.firstlayer import FirstLayerCut
from paramverify.bounds.interval import Interval, imatmul, up
from paramverify.options import Deadline
from paramverify.specs import ParamBox

#: cut rounds per domain (each round re-solves the relaxation with the new cuts)
CUT_ROUNDS = 3
#: the most cuts kept (the oldest are dropped; every cut is valid everywhere)
MAX_CUTS = 1500


def _dot_up(a: np.ndarray, b: np.ndarray) -> float:
    """An upper bound of ``a . b`` (float operands, exact real result enclosed)."""
    return float(imatmul(np.asarray(a, np.float64)[None], np.asarray(b, np.float64)[:, None]).hi[0, 0])


@dataclass(frozen=True)
class ReluMilp:
    """The mixed-integer program of one row (see the module docstring)."""

    hl: np.ndarray  # [n1] box of h
    hu: np.ndarray
    wl: np.ndarray  # [n2, n1] second-layer weight ends (h >= 0: lower / upper ends of each z_k)
    wu: np.ndarray
    bl: np.ndarray  # [n2]
    bu: np.ndarray
    c: np.ndarray  # [n2] objective on t (rounded up: t >= 0)
    c0: float  # constant (rounded up)
    L: np.ndarray  # [n2] exact-interval ends of u_k over H (outward)
    U: np.ndarray

    @property
    def n1(self) -> int:
        return self.hl.size

    @property
    def n2(self) -> int:
        return self.c.size

    @cached_property
    def h_min(self) -> np.ndarray:
        """``[n2, n1]``: the box end of ``h_i`` that minimises ``wu_ki h_i`` (cuts and their separation)."""
        return np.where(self.wu >= 0, self.hl, self.hu)

    @cached_property
    def h_max(self) -> np.ndarray:
        """``[n2, n1]``: the box end of ``h_i`` that maximises ``wu_ki h_i``."""
        return np.where(self.wu >= 0, self.hu, self.hl)

    def unstable(self) -> np.ndarray:
        return np.where((self.c > 0) & (self.L < 0) & (self.U > 0))[0]

    def base(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, int]]:
        """Rows ``A v <= b`` and the variables' box ``[lb, ub]`` for ``v = (h, t, z)``."""
        n1, n2 = self.n1, self.n2
        uk = self.unstable()
        zi = {int(k): j for j, k in enumerate(uk)}
        nv = n1 + n2 + len(uk)
        rows: list[np.ndarray] = []
        rhs: list[float] = []
        lb = np.concatenate([self.hl, np.zeros(n2), np.zeros(len(uk))])
        t_max = np.maximum(self.U, 0.0)
        ub = np.concatenate([self.hu, t_max, np.ones(len(uk))])
        for k in range(n2):
            r = np.zeros(nv)
            if self.c[k] < 0:  # minimised: t >= l_k(h)
                r[:n1], r[n1 + k] = self.wl[k], -1.0
                rows.append(r), rhs.append(-float(self.bl[k]))
            elif self.c[k] == 0 or self.U[k] <= 0:
                ub[n1 + k] = 0.0 if self.c[k] > 0 else ub[n1 + k]
            elif self.L[k] >= 0:  # t <= u_k(h)
                r[:n1], r[n1 + k] = -self.wu[k], 1.0
                rows.append(r), rhs.append(float(self.bu[k]))
            else:  # t <= u_k(h) - L (1 - z), t <= U z
                j = n1 + n2 + zi[k]
                r[:n1], r[n1 + k], r[j] = -self.wu[k], 1.0, -self.L[k]
                rows.append(r), rhs.append(float(up(self.bu[k] - self.L[k])))
                r = np.zeros(nv)
                r[n1 + k], r[j] = 1.0, -self.U[k]
                rows.append(r), rhs.append(0.0)
        A = np.array(rows) if rows else np.zeros((0, nv))
        return A, np.array(rhs), lb, ub, uk, zi

    def cut(self, k: int, inside: np.ndarray, nv: int, zj: int) -> tuple[np.ndarray, float]:
        """Anderson's inequality of neuron ``k`` for the subset ``inside`` of the inputs, as a row
        ``t_k - sum_{i in I} w_i h_i - gamma z_k <= delta`` that holds at z = 0 (then t = 0) and at
        z = 1 (then t <= u_k(h)) for every h in the box: ``delta >= max_h -sum_I w_i h_i`` and
        ``gamma + delta >= max_h sum_{not I} w_i h_i + b``, both rounded outward."""
        w = self.wu[k]
        delta = _dot_up(-w[inside], self.h_min[k][inside])
        m1 = float(up(_dot_up(w[~inside], self.h_max[k][~inside]) + self.bu[k]))
        gamma = float(up(m1 - delta))
        r = np.zeros(nv)
        r[self.n1 + k] = 1.0
        r[: self.n1][inside] = -w[inside]
        r[zj] = -gamma
        return r, delta


def safe_upper(obj: np.ndarray, A: np.ndarray, b: np.ndarray, lb: np.ndarray, ub: np.ndarray, y: np.ndarray) -> float:
    """Weak duality in outward-rounded arithmetic: ``max obj . v`` over ``A v <= b``, ``lb <= v <= ub``
    is at most the returned number, for any multipliers ``y`` (negative entries are clipped to 0)."""
    y = np.maximum(np.nan_to_num(np.asarray(y, np.float64), nan=0.0), 0.0)
    aty = imatmul(A.T, y[:, None]) if A.size else Interval(np.zeros((A.shape[1], 1)), np.zeros((A.shape[1], 1)))
    r_lo = np.nextafter(obj - aty.hi[:, 0], -np.inf)
    r_hi = np.nextafter(obj - aty.lo[:, 0], np.inf)
    term = np.max(np.stack([up(r_lo * lb), up(r_lo * ub), up(r_hi * lb), up(r_hi * ub)]), axis=0)
    return float(up(_dot_up(np.ones(term.size), term) + (_dot_up(y, b) if y.size else 0.0)))


def build_milp(cut: FirstLayerCut, coefs: np.ndarray, offset: float) -> ReluMilp | None:
    """The row ``coefs . y + offset`` of a cut problem ``Gemm -> Relu -> Gemm``; None for other shapes."""
    g, box = cut.problem.graph, cut.problem.box
    nodes = [n for n in g.nodes if n.op.op_type != "Identity"]
    if [n.op.op_type for n in nodes] != ["Gemm", "Relu", "Gemm"]:
        return None
    g2, relu, g3 = nodes
    for n in (g2, g3):
        op = n.op
        if op.transA or op.alpha != 1.0 or op.beta != 1.0:
            return None
    if g2.inputs[0] != cut.name or relu.inputs[0] != g2.output or g3.inputs[0] != relu.output or len(g2.inputs) < 2:
        return None

    def ends(name: str | None, shape: tuple[int, ...], trans: bool) -> tuple[np.ndarray, np.ndarray]:
        if name is None or name == "":
            return np.zeros(shape), np.zeros(shape)
        lo = np.asarray(box.lo[name] if name in box.names else g.initializers[name], np.float64)
        hi = np.asarray(box.hi[name] if name in box.names else g.initializers[name], np.float64)
        return (lo, hi) if trans or lo.ndim < 2 else (lo.T, hi.T)

    hl = np.asarray(box.lo[cut.name], np.float64).reshape(-1)
    hu = np.asarray(box.hi[cut.name], np.float64).reshape(-1)
    w2l, w2h = ends(g2.inputs[1], (), bool(g2.op.transB))  # [n2, n1]
    if w2l.ndim != 2 or w2l.shape[1] != hl.size:
        return None
    n2 = w2l.shape[0]
    b2l, b2h = ends(g2.inputs[2] if len(g2.inputs) > 2 else None, (n2,), True)
    w3l, w3h = ends(g3.inputs[1], (), bool(g3.op.transB))  # [k, n2]
    if w3l.ndim != 2 or w3l.shape[1] != n2:
        return None
    k = w3l.shape[0]
    b3l, b3h = ends(g3.inputs[2] if len(g3.inputs) > 2 else None, (k,), True)
    b2l, b2h = np.broadcast_to(b2l.reshape(-1), (n2,)), np.broadcast_to(b2h.reshape(-1), (n2,))
    b3l, b3h = np.broadcast_to(b3l.reshape(-1), (k,)), np.broadcast_to(b3h.reshape(-1), (k,))
    C = np.asarray(coefs, np.float64).reshape(-1)
    if C.size != k or np.any(hl < 0):
        return None
    # c_k = sum_o max(C_o W3lo_ok, C_o W3hi_ok), rounded up (t >= 0); c0 likewise plus the offset
    prod = np.maximum(up(C[:, None] * w3l), up(C[:, None] * w3h))  # [k, n2]
    c = np.array([_dot_up(np.ones(k), prod[:, j]) for j in range(n2)])
    c0 = float(up(_dot_up(np.ones(k), np.maximum(up(C * b3l), up(C * b3h))) + offset))
    h_iv = Interval(hl[None], hu[None])
    u_iv = imatmul(h_iv, w2h.T)
    L = np.nextafter(u_iv.lo[0] + b2h, -np.inf)
    U = np.nextafter(u_iv.hi[0] + b2h, np.inf)
    L, U = np.nextafter(L, -np.inf), np.nextafter(U, np.inf)
    return ReluMilp(hl, hu, w2l, w2h, b2l.astype(np.float64), b2h.astype(np.float64), c, c0, L, U)


class LPSearch:
    """Best-first branch and bound on the ``z_k`` of one row (see the module docstring), resumable:
    :meth:`run` continues where the last call stopped, so a caller can share its time between rows.

    Domains whose bound is <= ``lower()`` are closed (optimise), or, with
    ``closed_at``, whose bound is below it (verify; at most it when not ``strict``).
    :attr:`upper` is the largest bound of an open or solved domain, never more than an
    earlier one."""

    def __init__(self, m: ReluMilp, lower: Callable[[], float] = lambda: -np.inf, tolerance: float = 0.0,
                 closed_at: float | None = None, strict: bool = True) -> None:
        self.m, self.lower, self.tolerance, self.closed_at, self.strict = m, lower, tolerance, closed_at, strict
        self.A0, self.b0, self.lb0, self.ub0, self.uk, self.zi = m.base()
        nv = self.A0.shape[1]
        self.obj = np.zeros(nv)
        self.obj[m.n1:m.n1 + m.n2] = m.c
        self.cuts: list[tuple[np.ndarray, float]] = []
        self.best_h: np.ndarray | None = None
        self._best_val = -np.inf
        root, x = self._solve({})
        self.heap: list[tuple[float, int, dict[int, int], np.ndarray | None]] = [(-root, 0, {}, x)]
        self._counter = itertools.count(1)
        self.leaves = -np.inf  # domains solved to integrality (their bound is final)
        self.domains = 1
        self.shown = root
        self.done, self.complete, self.reason = False, True, "exhausted"

    @property
    def upper(self) -> float:
        if self.heap or self.leaves > -np.inf:
            return min(self.shown, max(-self.heap[0][0] if self.heap else -np.inf, self.leaves))
        return self.lower() if self.closed_at is None else self.closed_at  # every domain closed below it

    def _true_value(self, h: np.ndarray) -> float:
        m = self.m
        t = np.where(m.c > 0, np.maximum(m.wu @ h + m.bu, 0.0), np.maximum(m.wl @ h + m.bl, 0.0))
        return float(m.c @ t) + m.c0

    def _solve(self, fix: dict[int, int]) -> tuple[float, np.ndarray | None]:
        m, n1, n2 = self.m, self.m.n1, self.m.n2
        lb, ub = self.lb0.copy(), self.ub0.copy()
        for kk, v in fix.items():
            lb[n1 + n2 + self.zi[kk]] = ub[n1 + n2 + self.zi[kk]] = float(v)
        bound, x = np.inf, None
        nv = self.A0.shape[1]
        for rnd in range(CUT_ROUNDS + 1):
            cuts = self.cuts
            A = np.vstack([self.A0] + [r[None] for r, _ in cuts]) if cuts else self.A0
            b = np.concatenate([self.b0, [d for _, d in cuts]]) if cuts else self.b0
            res = linprog(-self.obj, A_ub=A, b_ub=b, bounds=np.stack([lb, ub], axis=1), method="highs")
            if res.status != 0 or res.x is None:
                break  # no multipliers: the bound so far stands (never dropped on the solver's word)
            y = -np.asarray(res.ineqlin.marginals)
            bound = min(bound, float(up(safe_upper(self.obj, A, b, lb, ub, y) + m.c0)))
            x = res.x
            v = self._true_value(x[:n1])
            if v > self._best_val:
                self._best_val, self.best_h = v, x[:n1].copy()
            if rnd == CUT_ROUNDS:
                break
            added = 0
            h, t, z = x[:n1], x[n1:n1 + n2], x[n1 + n2:]
            for kk in self.uk:
                j = self.zi[int(kk)]
                w = m.wu[kk]
                a_in = w * (h - m.h_min[kk] * (1 - z[j]))
                a_out = w * m.h_max[kk] * z[j]
                inside = a_in < a_out
                if t[kk] > a_in[inside].sum() + a_out[~inside].sum() + m.bu[kk] * z[j] + 1e-9:
                    cuts.append(m.cut(int(kk), inside, nv, n1 + n2 + j))
                    added += 1
            if len(cuts) > MAX_CUTS:
                del cuts[: len(cuts) - MAX_CUTS]
            if not added:
                break
        return bound, x

    def _closed(self, bound: float) -> bool:
        if self.closed_at is None:
            return bound <= self.lower()
        return bound < self.closed_at if self.strict else bound <= self.closed_at

    @property
    def holds(self) -> bool:
        """Verify mode: every domain closed (the row is < ``closed_at``, or <= it when not strict)."""
        return self.done and not self.heap and self.leaves == -np.inf

    def run(self, deadline: Deadline, max_domains: int | None = None,
            progress: Callable[[float], None] | None = None) -> None:
        """Split domains until the search ends (``done``) or ``deadline`` / ``max_domains`` stops it."""
        m, n1, n2 = self.m, self.m.n1, self.m.n2
        parent: tuple[float, int, dict[int, int], np.ndarray | None] | None = None
        try:
            while self.heap:
                self.shown = min(self.shown, max(-self.heap[0][0], self.leaves))
                if progress is not None:
                    progress(self.shown)
                if self.closed_at is None and self.shown - self.lower() <= self.tolerance:
                    self.done, self.reason = True, "tolerance"
                    return
                if deadline.expired():
                    self.complete, self.reason = False, "interrupted" if deadline.interrupted() else "deadline"
                    return
                if max_domains is not None and self.domains >= max_domains:
                    self.done, self.complete, self.reason = True, False, "max-splits"
                    return
                parent = heapq.heappop(self.heap)
                neg, _, fix, x = parent
                bound = -neg
                if self._closed(bound):
                    continue
                free = [int(kk) for kk in self.uk if int(kk) not in fix]
                score = [] if x is None else [m.c[kk] * min(x[n1 + n2 + self.zi[kk]], 1 - x[n1 + n2 + self.zi[kk]])
                                              * (m.U[kk] - m.L[kk]) for kk in free]
                if not score or max(score) <= 1e-12:
                    self.leaves = max(self.leaves, bound)  # integral (or unsolved): its bound is final
                    continue
                kk = free[int(np.argmax(score))]
                for v in (1, 0):
                    f2 = {**fix, kk: v}
                    b2, x2 = self._solve(f2)
                    self.domains += 1
                    b2 = min(b2, bound)  # a child lies inside its parent
                    if not self._closed(b2):
                        heapq.heappush(self.heap, (-b2, next(self._counter), f2, x2))
                parent = None
        except KeyboardInterrupt:
            if parent is not None:  # a domain being split still counts with its own bound
                heapq.heappush(self.heap, parent)
            self.complete, self.reason = False, "interrupted"
            return
        self.done = True


def witness_params(cut: FirstLayerCut, coefs: np.ndarray, m: ReluMilp, h: np.ndarray,
                   full_box: ParamBox) -> dict[str, np.ndarray]:
    """Concrete parameters of the original problem that realise ``h`` and the ends the program chose
    (a falsifier candidate: its value is re-evaluated soundly by the caller)."""
    g, box = cut.problem.graph, cut.problem.box
    g2, _, g3 = [n for n in g.nodes if n.op.op_type != "Identity"]
    params = cut.lift({**{n: np.asarray(box.nominal[n]) for n in box.names}, cut.name: h}, full_box)
    up_rows = m.c > 0  # second layer: the upper end where t is maximised, the lower end elsewhere
    w2 = g2.inputs[1]
    if w2 in box.names:
        lo, hi = np.asarray(box.lo[w2]), np.asarray(box.hi[w2])
        pick = up_rows[:, None] if g2.op.transB else up_rows[None, :]
        params[w2] = np.where(pick, hi, lo)
    if len(g2.inputs) > 2 and g2.inputs[2] in box.names:
        lo, hi = np.asarray(box.lo[g2.inputs[2]]), np.asarray(box.hi[g2.inputs[2]])
        params[g2.inputs[2]] = np.where(up_rows.reshape(lo.shape) if lo.size == up_rows.size else up_rows[0], hi, lo)
    C = np.asarray(coefs, np.float64).reshape(-1)
    w3 = g3.inputs[1]
    if w3 in box.names:
        lo, hi = np.asarray(box.lo[w3]), np.asarray(box.hi[w3])
        cc = C[:, None] if g3.op.transB else C[None, :]
        params[w3] = np.where(cc * hi >= cc * lo, hi, lo)
    if len(g3.inputs) > 2 and g3.inputs[2] in box.names:
        lo, hi = np.asarray(box.lo[g3.inputs[2]]), np.asarray(box.hi[g3.inputs[2]])
        cc = C.reshape(lo.shape) if lo.size == C.size else C[0]
        params[g3.inputs[2]] = np.where(cc * hi >= cc * lo, hi, lo)
    return params
