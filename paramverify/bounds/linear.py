"""Linear bound propagation (CROWN-style back-substitution) with perturbed weights.

:class:`TraceKernel` runs a graph once and records every primitive as an
:class:`LNode` with forward interval bounds (outward-rounded, from
:mod:`paramverify.bounds.interval`).  :func:`backward` then bounds
``sum(C * node)`` for a batch of specification rows ``C`` by walking the
record backwards and replacing each node's linear term by linear terms in
its parents:

* linear ops (add, sub, neg, div and mul by constants, reshape, transpose,
  take, pad, concat) are exact;
* activations use the sound lines of :mod:`paramverify.bounds.relax`,
  picked per row by the sign of the row's coefficient;
* a product of a *parameter* tensor ``P`` (interval ``Pm +- Pr``) with an
  activation ``h`` (the bilinear weight x activation term) is relaxed as
  ``L.(P h) <= L.(Pm h) + sum |L| Pr |h|`` and ``|h|`` by its chord over
  ``h``'s interval (exactly ``h`` when ``h >= 0``).  The nominal weights
  keep the linear dependence on ``h``; the perturbation costs only
  ``radius * |h|`` terms.  When one weight meets several entries of ``h``
  (a convolution: every output position), the perturbation's share is
  ``sum Pr |Q|`` with ``Q = L h^T`` instead, ``|Q|`` by its chord over
  ``Q``'s range: one sign per weight for all positions, as in the network
  (likewise for a per-channel scale broadcast over positions).
  When ``h`` is a constant (a point input) and ``P`` is small, the term is
  passed on to ``P`` exactly instead;
* leaves (parameters, the data input, nodes without a relaxation) are
  concretised over their intervals.

Guarantee: the returned ``upper[s, n]`` is >= ``sum(C[s, n] * v_n)`` for the
real-arithmetic value ``v_n`` of the target node for sample ``n``, for every
parameter in the box and every input in its interval.  Every float
operation that forms a coefficient is covered by an a-priori error bound
(``gamma(k) |A| |B|``, Higham) times the magnitude of the value it
multiplies, added to the constant term, which is itself rounded upward.

Batching: a node whose value depends on the data input is *batched*: axis
0 is the sample axis and samples never mix.  Its coefficient arrays have
shape ``[S, N, 1, *rest]`` (the sample's own slice); an unbatched node of
shape ``sh`` has coefficients ``[S, N, *sh]`` (one per sample's objective).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from paramverify.bounds import interval as iv
from paramverify.bounds.interval import TINY, Interval, U, gamma, up
from paramverify.errors import CapabilityError, InternalError, check

#: largest coefficient array (elements) passed on exactly to a parameter operand
EXACT_PARAM_ELEMS = 1 << 22
#: absolute error allowance per product or sum term: the smallest *normal* float64, so the
#: bound also holds where BLAS flushes subnormals to zero
ABS_TERM = 4 * float(np.finfo(np.float64).tiny)
_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
_PARAM_PRESERVING = ("reshape", "transpose", "take", "pad", "concat", "neg")


@dataclass(eq=False)
class LNode:
    """One recorded primitive.  ``parents`` hold LNodes or numpy constants."""

    index: int
    op: str
    parents: tuple[Any, ...]
    shape: tuple[int, ...]
    batched: bool
    is_param: bool  # a parameter tensor or an exact rearrangement / constant scaling of one
    attrs: dict[str, Any] = field(default_factory=dict)
    dom: bool = False  # its bounds carry a leading domain axis (point mode)

    @property
    def pshape(self) -> tuple[int, ...]:
        """Per-sample shape used in coefficient arrays."""
        return (1,) + self.shape[1:] if self.batched else self.shape


_LEAVES = ("param", "input", "leaf")


class Trace:
    """The record of one graph run and the current interval bounds of every node.

    Box mode (``domains=False``): ``n`` input boxes, batched nodes have axis
    0 of size ``n``.  Point mode (``domains=True``): the input is a constant
    and ``n`` counts *domains* (sets of neuron splits) evaluated together;
    the bounds of every non-parameter node then carry a leading axis of
    size ``n`` (``node.dom``), while parameters are shared.
    """

    def __init__(self, n_samples: int, domains: bool = False) -> None:
        self.nodes: list[LNode] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.n = n_samples
        self.domains = domains
        self._midrad: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        #: activation index -> (input lo, input hi, relaxation); see backward.relaxation
        self.relax_cache: dict[int, tuple[np.ndarray, np.ndarray, Any]] = {}

    def add(self, op: str, parents: Sequence[Any], batched: bool, is_param: bool,
            lo: np.ndarray | None = None, hi: np.ndarray | None = None, **attrs: Any) -> LNode:
        """Record a node; leaves take ``lo``/``hi``, ops get forward interval bounds from their parents."""
        dom = self.domains and not is_param and op not in _LEAVES
        node = LNode(len(self.nodes), op, tuple(parents), (), batched, is_param, dict(attrs), dom)
        if op in _LEAVES:
            assert lo is not None and hi is not None
            r = Interval(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
        else:
            r = self.forward_bounds(node)
            if dom and not any(isinstance(p, LNode) and p.dom for p in parents):
                r = Interval(r.lo[None], r.hi[None])
        node.shape = tuple(r.lo.shape[1:] if dom else r.lo.shape)
        if batched and (len(node.shape) == 0 or node.shape[0] != self.n):
            raise CapabilityError(f"linear bounds: op {op} mixes the batch axis (shape {node.shape}, {self.n} samples)")
        self.nodes.append(node)
        self.lo.append(r.lo)
        self.hi.append(r.hi)
        return node

    def interval(self, v: Any) -> Interval:
        if isinstance(v, LNode):
            return Interval(self.lo[v.index], self.hi[v.index])
        return Interval.const(v)

    def view(self, a: np.ndarray, node: LNode) -> np.ndarray:
        """A bounds-shaped array in the node's coefficient layout ``[S, N, *pshape]`` (broadcasting)."""
        return a[:, None] if node.batched else a

    def mag(self, node: LNode) -> np.ndarray:
        """max(|lo|, |hi|) in the node's coefficient layout."""
        return self.view(np.maximum(np.abs(self.lo[node.index]), np.abs(self.hi[node.index])), node)

    def axis_offset(self, node: LNode) -> int:
        """Offset of a node axis in its bounds arrays (1 for batched views and domain axes)."""
        return 1 if node.dom else 0

    def mid_rad(self, node: LNode) -> tuple[np.ndarray, np.ndarray]:
        """Midpoint and a radius (rounded up) of the node's interval, in coefficient layout (cached)."""
        lo, hi = self.lo[node.index], self.hi[node.index]
        hit = self._midrad.get(node.index)
        if hit is not None and hit[0] is lo and hit[1] is hi:
            return hit[2], hit[3]
        mid = (lo + hi) * 0.5
        rad = up(np.maximum(hi - mid, mid - lo) * (1 + 4 * U) + TINY)
        out = self.view(mid, node), self.view(rad, node)
        self._midrad[node.index] = (lo, hi, out[0], out[1])
        return out

    def snapshot(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return list(self.lo), list(self.hi)

    def restore(self, snap: tuple[list[np.ndarray], list[np.ndarray]], n: int | None = None) -> None:
        """Restore saved bounds; with ``n`` (point mode, a one-domain snapshot) repeat them for ``n`` domains."""
        lo, hi = list(snap[0]), list(snap[1])
        if n is not None:
            check(self.domains, "restoring a one-domain snapshot outside point mode")
            for nd in self.nodes:
                if nd.dom:
                    lo[nd.index] = np.repeat(lo[nd.index][:1], n, axis=0)
                    hi[nd.index] = np.repeat(hi[nd.index][:1], n, axis=0)
            self.n = n
        self.lo, self.hi = lo, hi

    # ------------------------------------------------------------ forward bounds
    def forward_bounds(self, node: LNode) -> Interval:
        """Interval bounds of ``node`` from its parents' current bounds (outward rounded)."""
        op, at = node.op, node.attrs
        if op in _LEAVES:
            return Interval(self.lo[node.index], self.hi[node.index])
        ps = [self.interval(p) for p in node.parents]
        o = 1 if node.dom else 0
        if op == "add":
            return iv.iadd(ps[0], ps[1])
        if op == "sub":
            return iv.isub(ps[0], ps[1])
        if op == "mul":
            return iv.imul(ps[0], ps[1])
        if op == "div":
            return iv.idiv_const(ps[0], at["divisor"])
        if op == "neg":
            return iv.ineg(ps[0])
        if op == "matmul":
            return iv.imatmul(ps[0], ps[1])
        if op == "relu":
            return iv.irelu(ps[0])
        if op == "leaky_relu":
            return iv.ileaky_relu(ps[0], at["alpha"])
        if op == "sigmoid":
            return iv.isigmoid(ps[0])
        if op == "tanh":
            return iv.itanh(ps[0])
        if op == "softmax":
            return iv.isoftmax(ps[0], at["axis"] + o)
        if op == "log_softmax":
            return iv.ilog_softmax(ps[0], at["axis"] + o)
        if op == "erf":
            return iv.ierf(ps[0])
        if op == "reshape":
            return ps[0].map(lambda v: np.reshape(v, v.shape[:o] + at["shape"]))
        if op == "transpose":
            perm = tuple(range(o)) + tuple(p + o for p in at["perm"])
            return ps[0].map(lambda v: np.transpose(v, perm))
        if op == "take":
            return ps[0].map(lambda v: np.take(v, at["indices"], axis=at["axis"] + o))
        if op == "pad":
            pw = ((0, 0),) * o + at["pad_width"]
            return ps[0].map(lambda v: np.pad(v, pw))
        if op == "concat":
            parts = ps
            if node.dom:
                n = max(p.lo.shape[0] for p, q in zip(ps, node.parents) if isinstance(q, LNode) and q.dom)
                parts = [p if isinstance(q, LNode) and q.dom else Interval(np.broadcast_to(p.lo, (n,) + p.lo.shape),
                                                                           np.broadcast_to(p.hi, (n,) + p.hi.shape))
                         for p, q in zip(ps, node.parents)]
            ax = at["axis"] + o
            return Interval(np.concatenate([p.lo for p in parts], axis=ax), np.concatenate([p.hi for p in parts], axis=ax))
        raise InternalError(f"internal error (please report): linear bounds: unknown op {op}")

    def propagate(self, start: int = 0) -> np.ndarray:
        """Recompute interval bounds of nodes ``start..`` from their parents, intersecting with the old ones.

        Both are sound enclosures, so an empty intersection proves the domain
        (a set of neuron splits) empty.  Returns a feasibility mask over the
        ``n`` samples / domains (all True in box mode unless a bug).
        """
        feasible = np.ones(self.n, dtype=bool)
        for node in self.nodes[start:]:
            if node.op in _LEAVES:
                continue
            new = self.forward_bounds(node)
            lo = np.maximum(self.lo[node.index], new.lo)
            hi = np.minimum(self.hi[node.index], new.hi)
            bad = lo > hi
            if np.any(bad):
                if node.dom or node.batched:
                    feasible &= ~bad.reshape(bad.shape[0], -1).any(axis=1)
                else:
                    feasible[:] = False
                hi = np.maximum(hi, lo)
            self.lo[node.index], self.hi[node.index] = lo, hi
        return feasible


def _is_batched(v: Any) -> bool:
    return isinstance(v, LNode) and v.batched


def _is_param(v: Any) -> bool:
    return isinstance(v, LNode) and v.is_param


class TraceKernel:
    """A Kernel whose values are LNodes (numpy arrays stay constants); see the module docstring."""

    #: primitives this kernel cannot hold -> why (none: every primitive is implemented)
    UNSUPPORTED: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, trace: Trace) -> None:
        self.t = trace
        #: the input of every graph-level relu, in call order (LNode or constant); see crown.LinearBounds
        self.relu_inputs: list[Any] = []

    def _node(self, op: str, parents: Sequence[Any], is_param: bool = False, **attrs: Any) -> LNode:
        batched = any(_is_batched(p) for p in parents)
        return self.t.add(op, parents, batched, is_param, **attrs)

    def _leaf(self, r: Interval) -> LNode:
        """Arithmetic on constants is not exact in float: keep its enclosure as a leaf."""
        return self.t.add("leaf", (), False, True, r.lo, r.hi)

    def _arith(self, op: str, a: Any, b: Any, fn: Any) -> Any:
        if not isinstance(a, LNode) and not isinstance(b, LNode):
            return self._leaf(fn(Interval.const(a), Interval.const(b)))
        is_param = op == "mul" and ((_is_param(a) and not isinstance(b, LNode)) or (_is_param(b) and not isinstance(a, LNode)))
        return self._node(op, (a, b), is_param)

    def shape(self, a: Any) -> tuple[int, ...]:
        return a.shape if isinstance(a, LNode) else tuple(np.shape(a))

    def add(self, a: Any, b: Any) -> Any:
        return self._arith("add", a, b, iv.iadd)

    def sub(self, a: Any, b: Any) -> Any:
        return self._arith("sub", a, b, iv.isub)

    def mul(self, a: Any, b: Any) -> Any:
        return self._arith("mul", a, b, iv.imul)

    def matmul(self, a: Any, b: Any) -> Any:
        for v in (a, b):
            if isinstance(v, LNode) and len(v.shape) < 2:
                raise CapabilityError("linear bounds: matmul with a 1-D variable operand is not supported")
        if _is_batched(b) and len(b.shape) == 2:
            raise CapabilityError("linear bounds: a batched right matmul operand of rank 2 mixes samples")
        return self._arith("matmul", a, b, iv.imatmul)

    def div(self, a: Any, b: np.ndarray) -> Any:
        c = np.asarray(b, dtype=np.float64)
        if not isinstance(a, LNode):
            return self._leaf(iv.idiv_const(a, c))
        return self._node("div", (a,), a.is_param, divisor=c)

    def neg(self, a: Any) -> Any:
        if not isinstance(a, LNode):
            return np.negative(a)
        return self._node("neg", (a,), a.is_param)

    def _unary(self, op: str, a: Any, fn: Any, **attrs: Any) -> Any:
        if not isinstance(a, LNode):
            return self._leaf(fn(Interval.const(a)))
        return self._node(op, (a,), **attrs)

    def relu(self, a: Any) -> Any:
        self.relu_inputs.append(a)
        return self._unary("relu", a, iv.irelu)

    def leaky_relu(self, a: Any, alpha: float) -> Any:
        return self._unary("leaky_relu", a, lambda x: iv.ileaky_relu(x, alpha), alpha=float(alpha))

    def sigmoid(self, a: Any) -> Any:
        return self._unary("sigmoid", a, iv.isigmoid)

    def tanh(self, a: Any) -> Any:
        return self._unary("tanh", a, iv.itanh)

    def softmax(self, a: Any, axis: int) -> Any:
        nd = len(self.shape(a))
        ax = axis % nd
        if _is_batched(a) and ax == 0:
            raise CapabilityError("linear bounds: softmax over the batch axis")
        return self._unary("softmax", a, lambda x: iv.isoftmax(x, ax), axis=ax)

    def log_softmax(self, a: Any, axis: int) -> Any:
        ax = axis % len(self.shape(a))
        if _is_batched(a) and ax == 0:
            raise CapabilityError("linear bounds: log_softmax over the batch axis")
        return self._unary("log_softmax", a, lambda x: iv.ilog_softmax(x, ax), axis=ax)

    def erf(self, a: Any) -> Any:
        return self._unary("erf", a, iv.ierf)

    # int8 activation rounding: clip (exact, by relus) plus a bounded error leaf -------
    def fake_quant(self, a: Any, enable: Any, grid: Any) -> Any:
        from paramverify.bounds.quantround import fq_value, half_step

        if not self._enabled(enable):
            return a
        if not isinstance(a, LNode):
            return self._leaf(fq_value(Interval.const(a), grid))
        lo, hi = float(np.min(self.t.lo[a.index])), float(np.max(self.t.hi[a.index]))
        # neurons whose whole range rounds to one grid value (a dead relu's 0, say) are that constant
        v = fq_value(Interval(self.t.lo[a.index], self.t.hi[a.index]), grid)
        v_lo = v.lo.min(axis=0) if (a.batched or a.dom) else v.lo
        v_hi = v.hi.max(axis=0) if (a.batched or a.dom) else v.hi
        const = (v_lo == v_hi).reshape(a.pshape)
        y = a
        if lo < grid.low:
            low = np.asarray(grid.low)
            y = self.add(self._unary("relu", self.sub(y, low), iv.irelu), low)
        if hi > grid.high:
            high = np.asarray(grid.high)
            y = self.sub(y, self._unary("relu", self.sub(y, high), iv.irelu))
        h = half_step(grid)
        if not np.any(const):
            return self._noise(y, h)
        y = self.mul(y, np.where(const, 0.0, 1.0))
        c = v_lo.reshape(a.pshape)
        return self.add(y, self._leaf(Interval(np.where(const, c, -h), np.where(const, c, h))))

    def dynamic_fake_quant(self, a: Any, enable: Any, qmin: int, qmax: int) -> Any:
        from paramverify.bounds.quantround import dyn_value, dynamic_half_step

        if not self._enabled(enable):
            return a
        if not isinstance(a, LNode):
            return self._leaf(dyn_value(Interval.const(a), qmin, qmax))
        r = Interval(self.t.lo[a.index], self.t.hi[a.index])
        return self._noise(a, float(np.max(dynamic_half_step(r.map(lambda v: v.reshape(1, -1)), qmin, qmax))))

    def _enabled(self, enable: Any) -> bool:
        from paramverify.bounds.quantround import enable_flag

        if isinstance(enable, LNode):
            return enable_flag(Interval(self.t.lo[enable.index], self.t.hi[enable.index]))
        return enable_flag(enable)

    def _noise(self, y: LNode, h: float) -> Any:
        shape = (1,) + tuple(y.shape[1:]) if y.batched else tuple(y.shape)
        return self.add(y, self._leaf(Interval(np.full(shape, -h), np.full(shape, h))))

    # exact rearrangements ---------------------------------------------------------
    def _rearrange(self, op: str, a: Any, fn: Any, **attrs: Any) -> Any:
        if not isinstance(a, LNode):
            return fn(a)
        return self._node(op, (a,), a.is_param, **attrs)

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        if _is_batched(a) and shape[0] != a.shape[0]:
            raise CapabilityError("linear bounds: reshape that changes the batch axis")
        return self._rearrange("reshape", a, lambda v: np.reshape(v, shape), shape=tuple(int(d) for d in shape))

    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any:
        if _is_batched(a) and perm[0] != 0:
            raise CapabilityError("linear bounds: transpose that moves the batch axis")
        return self._rearrange("transpose", a, lambda v: np.transpose(v, perm), perm=tuple(int(p) for p in perm))

    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any:
        idx = np.asarray(indices)
        if isinstance(a, LNode):
            axis = axis % len(a.shape)
            if a.batched and axis == 0:
                raise CapabilityError("linear bounds: take along the batch axis")
        return self._rearrange("take", a, lambda v: np.take(v, idx, axis=axis), indices=idx, axis=axis)

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any:
        if _is_batched(a) and tuple(pad_width[0]) != (0, 0):
            raise CapabilityError("linear bounds: padding the batch axis")
        return self._rearrange("pad", a, lambda v: np.pad(v, pad_width), pad_width=tuple((int(p[0]), int(p[1])) for p in pad_width))

    def concat(self, values: Sequence[Any], axis: int) -> Any:
        if not any(isinstance(v, LNode) for v in values):
            return np.concatenate(values, axis=axis)
        nd = len(self.shape(values[0]))
        ax = axis % nd
        if any(_is_batched(v) for v in values):
            if ax == 0:
                raise CapabilityError("linear bounds: concat along the batch axis")
            if not all(_is_batched(v) for v in values):
                raise CapabilityError("linear bounds: concat of batched and unbatched values")
        is_param = all(_is_param(v) or not isinstance(v, LNode) for v in values)
        return self._node("concat", tuple(values), is_param, axis=ax, sizes=[self.shape(v)[ax] for v in values])


# ---------------------------------------------------------------------------
# sound sums


def _trail(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def _rows(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per row (the first two axes): the float sum, the sum of magnitudes and the number of terms."""
    if p.ndim <= 2:
        return p, np.abs(p), 1
    axes = tuple(range(2, p.ndim))
    return p.sum(axis=axes), np.abs(p).sum(axis=axes), int(np.prod(p.shape[2:], dtype=np.int64))


def sum_up(x: np.ndarray) -> np.ndarray:
    """Upper bound of the exact sum over trailing axes of nonnegative float terms."""
    s, _, n = _rows(x)
    return up(s * (1.0 + 2 * gamma(n + 4)) + (n + 2) * ABS_TERM)


def dot_up(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Upper bound of the exact ``sum(c * v)`` over trailing axes (c, v floats).

    The float products carry a relative error of at most u and the sum
    ``gamma(n)`` of the magnitudes (Higham); ``2 gamma(n + 4)`` covers both.
    """
    s, a, n = _rows(c * v)
    return up(s + a * (2 * gamma(n + 4)) + (n + 2) * ABS_TERM)


def concretize_up(c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound of ``sum(c * v)`` over ``v`` in ``[lo, hi]`` (per row)."""
    s, a, n = _rows(np.maximum(c * lo, c * hi))
    return up(s + a * (2 * gamma(n + 4)) + (n + 2) * ABS_TERM)


def _unbroadcast(c: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Sum coefficient array ``c`` ([S, N, *b]) down to ``[S, N, *shape]``; also the largest fan-in summed."""
    body = c.shape[2:]
    lead = len(body) - len(shape)
    check(lead >= 0, f"cannot unbroadcast {body} to {shape}")
    axes = list(range(2, 2 + lead))
    for i, s in enumerate(shape):
        if s == 1 and body[lead + i] != 1:
            axes.append(2 + lead + i)
    if not axes:
        return c, 1
    fan = int(np.prod([c.shape[a] for a in axes], dtype=np.int64))
    out = c.sum(axis=tuple(axes), keepdims=True)
    return out.reshape(c.shape[:2] + tuple(shape)), fan


def mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` (numpy semantics) as one BLAS product when one side is a plain matrix.

    numpy runs a stacked ``[..., m, n] @ [n, k]`` as many small products;
    folding the stack into the rows is the same arithmetic, much faster.
    """
    if b.ndim == 2 and a.ndim > 2:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))
    if a.ndim == 2 and b.ndim > 2:
        bt = np.moveaxis(b, -1, -2)  # [..., n, m]
        out = bt.reshape(-1, bt.shape[-1]) @ a.T  # [... * n, k]
        return np.moveaxis(out.reshape(bt.shape[:-1] + (a.shape[0],)), -1, -2)
    return np.matmul(a, b)


def _chord_abs(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|h| <= s h + t`` on ``[lo, hi]`` with ``t >= 0`` (exact rule for fixed signs).

    Sound in reals: the line through ``(lo, |lo|)`` and ``(hi, |hi|)``
    computed as ``s = (hi + lo) / (hi - lo)`` and ``t`` the largest of
    ``|e| - s e`` at both ends (rounded up): ``|h|`` is convex, so a line
    above both ends lies above it on the interval.
    """
    pos, neg = lo >= 0, hi <= 0
    w = np.where(hi > lo, hi - lo, 1.0)
    s = np.clip(np.where(pos, 1.0, np.where(neg, -1.0, (hi + lo) / w)), -1.0, 1.0)
    t1 = up(np.abs(lo) - s * lo + 4 * U * (np.abs(lo) + np.abs(s * lo)) + TINY)
    t2 = up(np.abs(hi) - s * hi + 4 * U * (np.abs(hi) + np.abs(s * hi)) + TINY)
    t = np.where(pos | neg, 0.0, np.maximum(np.maximum(t1, t2), 0.0))
    return s, t
