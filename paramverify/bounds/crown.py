"""CROWN with perturbed weights: a traced problem, intermediate bounds, objective rows.

:class:`LinearBounds` runs the graph once on :class:`~paramverify.bounds.linear.TraceKernel`
with the parameter box as interval leaves and the input either a numpy
constant (a point) or an interval leaf (N input boxes), optionally twice
(nominal and perturbed, sharing the input) for differential objectives.
:meth:`LinearBounds.refine` tightens the bounds of every activation's input
by backward passes (full CROWN), intersected with the forward interval
bounds; :meth:`LinearBounds.upper` then bounds objective rows.

Guarantee: every number returned is a sound upper bound in real arithmetic
(see :mod:`paramverify.bounds.linear`); refinement only intersects sound
enclosures, so it never loses soundness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from paramverify.bounds.backward import backward
from paramverify.bounds.interval import Interval
from paramverify.bounds.linear import LNode, Trace, TraceKernel
from paramverify.bounds.relax import Relaxation
from paramverify.errors import check
from paramverify.ir import Graph
from paramverify.options import Deadline
from paramverify.specs import ParamBox

_ACT = ("relu", "leaky_relu", "sigmoid", "tanh")
#: elements of one coefficient array per backward chunk
CHUNK_ELEMS = 1 << 23


@dataclass(frozen=True, eq=False)
class Split:
    """A neuron split: the input of activation node ``node`` at flat position ``pos`` is >= 0 (or <= 0)."""

    node: int
    pos: int
    positive: bool


class LinearBounds:
    """A traced problem; see the module docstring.

    ``x_lo``/``x_hi`` are ``[N, d]`` input boxes (equal: points).  With
    ``differential=True`` the graph is also traced at the nominal
    parameters (constants), and :attr:`y0` is its output node.
    """

    def __init__(self, graph: Graph, box: ParamBox, x_lo: np.ndarray, x_hi: np.ndarray, differential: bool = False) -> None:
        x_lo = graph.as_batch(x_lo)
        x_hi = graph.as_batch(x_hi)
        self.graph = graph
        self.box = box
        self.point = bool(np.array_equal(x_lo, x_hi))
        n = x_lo.shape[0]
        if self.point and n != 1:
            raise ValueError("point mode takes one input; batch boxes instead")
        self.trace = Trace(n, domains=self.point)
        t = self.trace
        kernel = TraceKernel(t)
        if self.point:
            x: object = x_lo
        else:
            x = t.add("input", (), True, False, x_lo, x_hi)
        self.params = {
            name: t.add("param", (), False, True, box.lo[name], box.hi[name], name=name)
            for name in box.names
        }
        self.y = self._as_node(graph.run(kernel, x, self.params))
        #: inputs of the graph's relus in call order, perturbed and nominal run (for DiffKernel hints)
        self.relu_in_p: list[object] = list(kernel.relu_inputs)
        self.relu_in_n: list[object] = []
        kernel.relu_inputs.clear()
        self.y0: LNode | None = None
        if differential:
            self.y0 = self._as_node(graph.run(kernel, x))
            self.relu_in_n = list(kernel.relu_inputs)
        self.acts = [nd for nd in t.nodes if nd.op in _ACT and isinstance(nd.parents[0], LNode)]
        self._after_act = self._activation_ancestors()

    def _as_node(self, v: object) -> LNode:
        if isinstance(v, LNode):
            return v
        arr = np.asarray(v, dtype=np.float64)
        return self.trace.add("leaf", (), False, True, arr, arr)

    def _activation_ancestors(self) -> set[int]:
        """Indices of nodes with an activation among their ancestors."""
        out: set[int] = set()
        for nd in self.trace.nodes:
            for p in nd.parents:
                if isinstance(p, LNode) and (p.index in out or p.op in _ACT):
                    out.add(nd.index)
                    break
        return out

    # ------------------------------------------------------------ bounds
    def rows(self, node: LNode, coefs: np.ndarray) -> np.ndarray:
        """Coefficient array ``[S, N, *pshape]`` from flat per-sample rows ``[S, size]``."""
        s = coefs.shape[0]
        size = int(np.prod(node.pshape))
        c = np.broadcast_to(coefs.reshape(s, 1, size), (s, self.trace.n, size))
        return np.ascontiguousarray(c).reshape((s, self.trace.n) + node.pshape)

    def upper(self, targets: Sequence[tuple[LNode, np.ndarray]], relax: Mapping[int, Relaxation] | None = None,
              lower_slopes: Mapping[int, np.ndarray] | None = None) -> np.ndarray:
        """Sound upper bounds ``[S, N]`` of the rows (see :func:`~paramverify.bounds.backward.backward`)."""
        out = backward(self.trace, targets, relax, lower_slopes)
        assert isinstance(out, np.ndarray)
        return out

    def node_bounds(self, node: LNode, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CROWN bounds ``[N, len(positions)]`` (lower, upper) of flat per-sample positions of ``node``."""
        size = int(np.prod(node.pshape))
        k = len(positions)
        widths = [int(np.prod(nd.pshape)) for nd in self.trace.nodes[: node.index] if not nd.is_param]
        per_row = self.trace.n * max([size] + widths)
        chunk = max(1, CHUNK_ELEMS // max(per_row, 1) // 2)
        lo = np.empty((self.trace.n, k))
        hi = np.empty((self.trace.n, k))
        for s in range(0, k, chunk):
            pos = positions[s : s + chunk]
            m = len(pos)
            coefs = np.zeros((2 * m, size))
            coefs[np.arange(m), pos] = 1.0
            coefs[m + np.arange(m), pos] = -1.0
            ub = self.upper([(node, self.rows(node, coefs))])
            hi[:, s : s + m] = ub[:m].T
            lo[:, s : s + m] = -ub[m:].T
        return lo, hi

    def refine(self, deadline: Deadline | None = None, start: int = 0, max_elems: int = 1 << 14) -> np.ndarray:
        """Tighten every activation input (with an activation above it, index >= ``start``) by CROWN.

        Returns a feasibility mask over samples / domains: False where some
        bound became empty, i.e. no parameter (and input) of that domain
        reaches it (the domain is infeasible).
        """
        t = self.trace
        feasible = np.ones(t.n, dtype=bool)
        done: set[int] = set()
        for act in self.acts:
            z = act.parents[0]
            if z.index in done or z.index < start or z.index not in self._after_act:
                continue
            done.add(z.index)
            if deadline is not None and deadline.expired():
                break
            lo, hi = t.lo[z.index], t.hi[z.index]
            per = z.batched or z.dom
            lo_f = lo.reshape(lo.shape[0] if per else 1, -1)
            hi_f = hi.reshape(lo_f.shape)
            if act.op in ("relu", "leaky_relu"):
                cand = np.flatnonzero(np.any((lo_f < 0) & (hi_f > 0), axis=0))
            else:
                cand = np.flatnonzero(np.any(hi_f > lo_f, axis=0))
            if cand.size == 0 or cand.size > max_elems:
                continue
            clo, chi = self.node_bounds(z, cand)
            if not per:  # a bound of an unbatched node must hold for every sample / domain
                clo, chi = clo.min(axis=0, keepdims=True), chi.max(axis=0, keepdims=True)
            new_lo, new_hi = lo_f.copy(), hi_f.copy()
            new_lo[:, cand] = np.maximum(new_lo[:, cand], clo)
            new_hi[:, cand] = np.minimum(new_hi[:, cand], chi)
            bad = new_lo > new_hi
            if np.any(bad):
                feasible &= ~bad.any(axis=1) if per else False
                new_hi = np.maximum(new_hi, new_lo)
            t.lo[z.index] = new_lo.reshape(lo.shape)
            t.hi[z.index] = new_hi.reshape(hi.shape)
            feasible &= t.propagate(z.index + 1)
        return feasible

    # ------------------------------------------------------------ splits
    def apply_splits(self, domains: Sequence[Sequence[Split]]) -> np.ndarray:
        """Point mode: restrict activation inputs of domain ``d`` to its split half-spaces.

        Returns the feasibility mask (False where a split contradicts the bounds).
        """
        t = self.trace
        check(t.domains and len(domains) == t.n, "point-mode splits need one domain per split set")
        feasible = np.ones(t.n, dtype=bool)
        touched: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for d, splits in enumerate(domains):
            for sp in splits:
                z = t.nodes[sp.node].parents[0]
                if z.index not in touched:
                    touched[z.index] = (t.lo[z.index].reshape(t.n, -1).copy(), t.hi[z.index].reshape(t.n, -1).copy())
                lo, hi = touched[z.index]
                if sp.positive:
                    lo[d, sp.pos] = max(lo[d, sp.pos], 0.0)
                else:
                    hi[d, sp.pos] = min(hi[d, sp.pos], 0.0)
                if lo[d, sp.pos] > hi[d, sp.pos]:
                    feasible[d] = False
                    hi[d, sp.pos] = lo[d, sp.pos]
        for i, (lo, hi) in touched.items():
            t.lo[i] = lo.reshape(t.lo[i].shape)
            t.hi[i] = hi.reshape(t.hi[i].shape)
        return feasible


def relu_bounds(lb: LinearBounds, inputs: Sequence[object]) -> list[Interval | None]:
    """The current (refined) bounds of each recorded relu input; None for constants."""
    t = lb.trace
    return [Interval(t.lo[v.index], t.hi[v.index]) if isinstance(v, LNode) else None for v in inputs]


def linear_outputs(graph: Graph, box: ParamBox, lo: np.ndarray, hi: np.ndarray) -> tuple[Interval, Interval, Interval]:
    """Per input box ``[N, k]``: CROWN enclosures of ``f_p0(x)``, ``f_p(x)`` and ``f_p(x) - f_p0(x)``.

    Both networks are traced with the same input node, so a difference row
    ``e_o . f_p - e_o . f_p0`` is bounded as one linear function of the
    shared input: the input's correlations cancel (the nominal network's
    parameters are constants).
    """
    lb = LinearBounds(graph, box, lo, hi, differential=True)
    lb.refine()
    return output_rows(lb)


def output_rows(lb: LinearBounds) -> tuple[Interval, Interval, Interval]:
    """Enclosures of ``f_p0``, ``f_p`` and ``f_p - f_p0`` ``[N, k]`` from a traced differential problem."""
    assert lb.y0 is not None
    k = int(np.prod(lb.y.pshape))
    C = np.concatenate([np.eye(k), -np.eye(k)])
    zero = np.zeros_like(C)
    # rows: nominal, perturbed, difference (one backward pass)
    on_y = np.concatenate([zero, C, C])
    on_y0 = np.concatenate([C, zero, -C])
    u = lb.upper([(lb.y, lb.rows(lb.y, on_y)), (lb.y0, lb.rows(lb.y0, on_y0))])
    nom, per, dif = u[: 2 * k], u[2 * k : 4 * k], u[4 * k :]
    return tuple(Interval(-v[k:].T, v[:k].T) for v in (nom, per, dif))  # type: ignore[return-value]


def linear_change_upper(graph: Graph, box: ParamBox, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per input box ``[N]``: an upper bound of ``max_o |f_p(x)_o - f_p0(x)_o|`` by differential CROWN."""
    _, _, d = linear_outputs(graph, box, lo, hi)
    return np.max(np.maximum(d.hi, -d.lo), axis=1)
