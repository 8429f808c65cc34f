"""Sound evaluations shared by the engine: boxes, points and snapped witnesses.

Every function here returns enclosures valid in real arithmetic (the
interval layer rounds outward), so the numbers can serve as proof sides
and as the concrete (witness) sides of a bracket alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from paramverify.bounds.crown import (
    LinearBounds,
    linear_outputs,
    output_rows,
    relu_bounds,
)
from paramverify.bounds.differential import (
    DiffKernel,
    DiffValue,
    diff_parameters,
    point_parameters,
)
from paramverify.bounds.interval import Interval, down, up
from paramverify.errors import CapabilityError, check
from paramverify.ir import Graph
from paramverify.specs import ParamBox


def _flat(v: DiffValue) -> DiffValue:
    n = v.shape[0]
    return v.map(lambda a: np.reshape(a, (n, -1)))


def box_outputs(graph: Graph, box: ParamBox, lo: np.ndarray, hi: np.ndarray) -> DiffValue:
    """Differential enclosure of the outputs over N input boxes ``[lo, hi]`` (``[N, d]``).

    Returns a DiffValue of shape ``[N, k]``: ``n`` encloses ``f_p0(x)``,
    ``p`` encloses ``f_p(x)`` and ``d`` encloses ``f_p(x) - f_p0(x)`` for
    every ``x`` in box i and every ``p`` in ``box``.
    """
    lo = graph.as_batch(lo)
    hi = graph.as_batch(hi)
    x = Interval(lo, lo, True) if np.array_equal(lo, hi) else Interval(lo, hi)
    return _flat(graph.run(DiffKernel(), DiffValue.input(x), diff_parameters(box)))


def tight_box_outputs(graph: Graph, box: ParamBox, lo: np.ndarray, hi: np.ndarray) -> DiffValue:
    """:func:`box_outputs` intersected with differential CROWN (:func:`~paramverify.bounds.crown.linear_outputs`)."""
    return tighten(graph, box, lo, hi, box_outputs(graph, box, lo, hi))


def hinted_box_outputs(graph: Graph, box: ParamBox, lo: np.ndarray, hi: np.ndarray) -> DiffValue:
    """Differential interval bounds whose relu inputs are narrowed by CROWN's refined bounds
    (both networks), intersected with differential CROWN's outputs.

    Every enclosure intersected is sound, so the result is.  Used for int8
    lowerings, whose many rounding steps make plain interval enclosures of
    the nominal and perturbed values too wide for the difference rules.
    """
    n_in = graph.input_size
    lo2, hi2 = np.reshape(lo, (-1, n_in)), np.reshape(hi, (-1, n_in))
    lb = LinearBounds(graph, box, lo2, hi2, differential=True)
    lb.refine()
    kernel = DiffKernel(relu_bounds(lb, lb.relu_in_n), relu_bounds(lb, lb.relu_in_p))
    xb_lo, xb_hi = graph.as_batch(lo2), graph.as_batch(hi2)
    x = Interval(xb_lo, xb_lo, True) if np.array_equal(xb_lo, xb_hi) else Interval(xb_lo, xb_hi)
    out = _flat(graph.run(kernel, DiffValue.input(x), diff_parameters(box)))
    n, p, d = output_rows(lb)
    return DiffValue(_cut(out.n, n), _cut(out.p, p), _cut(out.d, d))


def _cut(a: Interval, b: Interval) -> Interval:
    lo_, hi_ = np.maximum(a.lo, b.lo), np.minimum(a.hi, b.hi)
    check(np.all(lo_ <= hi_), "disjoint sound enclosures (rounding bug)")
    return Interval(lo_, hi_)


#: CROWN on many input boxes runs on groups of boxes whose backward matrices hold about this many values
CROWN_GROUP_VALUES = 1 << 19


def crown_group_rows(graph: Graph) -> int:
    """Input boxes per CROWN call in :func:`tighten`.

    One box's backward matrices hold about (input size x widest layer) values,
    estimated by the largest initializer (the first weight matrix of an MLP).
    Large temporaries are fresh memory mappings that the kernel zero-fills at
    every call: on the 784-64-64-10 MNIST MLP (10 boxes per group), 128 boxes at
    once cost 1.6-1.9x the CPU time of groups of 5-16 (the difference is system
    time, measured with ``getrusage``), while a tiny net pays per call and runs
    best in one group.  The grouping does not change a box's bounds beyond the
    last bits (CROWN is row by row; products of other shapes round differently).
    """
    largest = max([int(np.size(v)) for v in graph.initializers.values()] + [1])
    return max(1, CROWN_GROUP_VALUES // largest)


def _joined(parts: list[Interval]) -> Interval:
    """The groups' enclosures, rows in order."""
    if len(parts) == 1:
        return parts[0]
    return Interval(np.concatenate([q.lo for q in parts]), np.concatenate([q.hi for q in parts]))


def tighten(graph: Graph, box: ParamBox, lo: np.ndarray, hi: np.ndarray, out: DiffValue) -> DiffValue:
    """Intersect interval enclosures ``out`` of N input boxes with differential CROWN's.

    Both are sound enclosures, so the intersection is too; graphs the linear
    bounds cannot batch fall back to ``out`` alone.  The boxes go through CROWN
    in groups of :func:`crown_group_rows`.
    """
    n_in = graph.input_size
    lo2, hi2 = np.reshape(lo, (-1, n_in)), np.reshape(hi, (-1, n_in))

    def crown(glo: np.ndarray, ghi: np.ndarray) -> tuple[Interval, Interval, Interval]:
        if graph.replay_models is not None:
            h = hinted_box_outputs(graph, box, glo, ghi)
            return h.n, h.p, h.d
        return linear_outputs(graph, box, glo, ghi)

    rows = crown_group_rows(graph)
    try:
        parts = [crown(lo2[s : s + rows], hi2[s : s + rows]) for s in range(0, len(lo2), rows)]
    except CapabilityError:
        return out
    n, p, d = (_joined([q[i] for q in parts]) for i in range(3))

    def cut(a: Interval, b: Interval) -> Interval:
        lo_, hi_ = np.maximum(a.lo, b.lo), np.minimum(a.hi, b.hi)
        check(bool(np.all(lo_ <= hi_)), "disjoint sound enclosures (rounding bug)")
        return Interval(lo_, hi_)

    return DiffValue(cut(out.n, n), cut(out.p, p), cut(out.d, d))


def point_outputs(graph: Graph, box: ParamBox, x: np.ndarray, params: Mapping[str, np.ndarray]) -> DiffValue:
    """Enclosures at one concrete (x, params): ``n`` of ``f_p0(x)``, ``p`` of ``f_params(x)``, ``d`` of the change."""
    xb = graph.as_batch(x)
    return _flat(graph.run(DiffKernel(), DiffValue.input(Interval(xb, xb, True)), point_parameters(box, params)))


def change_upper(out: DiffValue) -> np.ndarray:
    """Per row: an upper bound of ``|f_p(x) - f_p0(x)|_inf``."""
    return np.max(np.maximum(out.d.hi, -out.d.lo), axis=1)


def change_lower(out: DiffValue) -> float:
    """For a point evaluation: a lower bound of ``|f_params(x) - f_p0(x)|_inf`` (row 0)."""
    return float(np.max(np.maximum(np.maximum(out.d.lo, -out.d.hi), 0.0)[0]))


# ---------------------------------------------------------------------------
# labels and margins


def flippable_margin_upper(out: DiffValue, cls: int, level: float) -> np.ndarray:
    """Per row: an upper bound of the nominal margin over inputs of nominal class
    ``cls`` whose label some parameter in the box flips; ``-inf`` where none can.

    Binary, class 1 (``f0 >= l`` and ``f_p < l``): margin ``f0 - l < -d``, so
    ``ub = min(f0.hi - l, -d.lo)``.  Class 0 (``f0 < l <= f_p``): ``l - f0 <= d``.
    k classes, winner ``c`` beaten or tied by ``j``: ``f0_c - f0_j <= d_j - d_c``.
    """
    n, p, d = out.n, out.p, out.d
    if n.shape[1] == 1:
        if cls == 1:
            relevant = (n.hi[:, 0] >= level) & (p.lo[:, 0] < level) & (d.lo[:, 0] < 0)
            ub = np.minimum(up(n.hi[:, 0] - level), -d.lo[:, 0])
        else:
            relevant = (n.lo[:, 0] < level) & (p.hi[:, 0] >= level) & (d.hi[:, 0] > 0)
            ub = np.minimum(up(level - n.lo[:, 0]), d.hi[:, 0])
        return np.where(relevant, np.maximum(ub, 0.0), -np.inf)
    k = n.shape[1]
    others = np.arange(k) != cls
    can_win = n.hi[:, cls] >= np.max(n.lo[:, others], axis=1)
    can_flip = np.max(p.hi[:, others], axis=1) >= p.lo[:, cls]
    ub_nom = up(n.hi[:, cls] - np.max(n.lo[:, others], axis=1))
    ub_diff = np.max(up(d.hi[:, others] - d.lo[:, cls : cls + 1]), axis=1)
    ub = np.minimum(ub_nom, ub_diff)
    return np.where(can_win & can_flip, np.maximum(ub, 0.0), -np.inf)


def certain_flip_margin(out: DiffValue, cls: int, level: float) -> float | None:
    """For a point evaluation (row 0): a lower bound of the nominal margin if the
    nominal class is certainly ``cls`` and the label certainly flips, else None."""
    n, p = out.n, out.p
    if n.shape[1] == 1:
        if cls == 1 and n.lo[0, 0] >= level and p.hi[0, 0] < level:
            return float(max(down(n.lo[0, 0] - level), 0.0))
        if cls == 0 and n.hi[0, 0] < level and p.lo[0, 0] >= level:
            return float(max(down(level - n.hi[0, 0]), 0.0))
        return None
    k = n.shape[1]
    others = np.arange(k) != cls
    if not n.lo[0, cls] >= np.max(n.hi[0, others]):
        return None
    if not np.max(p.lo[0, others]) >= p.hi[0, cls]:
        return None
    return float(max(down(n.lo[0, cls] - np.max(n.hi[0, others])), 0.0))


def label_kept_certified(out: DiffValue, level: float, sigma: float | None) -> np.ndarray:
    """Per row: True when every input of the box whose nominal margin is at least
    ``sigma`` (all inputs when None) provably keeps its label for every parameter."""
    n, p, d = out.n, out.p, out.d
    if n.shape[1] == 1:
        ok1 = (n.hi[:, 0] < level) | (p.lo[:, 0] >= level)
        ok0 = (n.lo[:, 0] >= level) | (p.hi[:, 0] < level)
        if sigma is not None:
            # class-1 points with f0 >= l + sigma: f_p >= l + sigma + d.lo; class 0: f_p <= l - sigma + d.hi
            ok1 |= (up(n.hi[:, 0] - level) < sigma) | (d.lo[:, 0] >= -sigma)
            ok0 |= (up(level - n.lo[:, 0]) < sigma) | (d.hi[:, 0] < sigma)
        return ok1 & ok0
    ok = np.ones(n.shape[0], dtype=bool)
    for c in range(n.shape[1]):
        ub = flippable_margin_upper(out, c, level)
        ok &= (ub < sigma) if sigma else (ub == -np.inf)
    return ok
