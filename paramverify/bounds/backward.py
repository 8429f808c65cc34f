"""The backward pass of linear bound propagation over a :class:`~paramverify.bounds.linear.Trace`.

See :mod:`paramverify.bounds.linear` for the relaxations and the guarantee.
Invariant kept while walking the record backwards (for every row ``s`` and
sample ``n``): ``objective <= sum_v L_v . v + beta``, where ``v`` ranges over
the nodes still holding a coefficient array ``L_v``.  Each step replaces one
node's term by terms in its parents and adds to ``beta`` (rounded up) every
constant it produces plus a bound on the float error of the new
coefficients times the magnitude of the values they multiply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from paramverify.bounds.interval import U, _swap, down, gamma, up
from paramverify.bounds.linear import (
    ABS_TERM,
    EXACT_PARAM_ELEMS,
    LNode,
    Trace,
    _chord_abs,
    _unbroadcast,
    concretize_up,
    dot_up,
    mm,
    sum_up,
)
from paramverify.bounds.relax import (
    SIGMOID,
    TANH,
    Relaxation,
    relu_relaxation,
    sigmoidal_relaxation,
)
from paramverify.bounds.scatter import scatter_add
from paramverify.errors import CapabilityError

Targets = Sequence[tuple[LNode, np.ndarray]]

#: ops bounded by their forward interval only (no linear relaxation: concretised) -> why;
#: every other op a Trace records needs a backward rule ``_Pass._<op>``
#: (``tests/test_kernel_contract.py`` checks that each one has one or the other)
CONCRETISED: Mapping[str, str] = MappingProxyType({
    "param": "a perturbed parameter: a leaf, bounded by its box",
    "input": "the input: a leaf, bounded by its region",
    "leaf": "a value whose bounds are taken as given",
    "softmax": "no linear relaxation yet: its sound forward interval is used",
    "log_softmax": "no linear relaxation yet: its sound forward interval is used",
    "erf": "no linear relaxation yet: its sound forward interval is used",
})
_CONCRETISED = tuple(CONCRETISED)


def relaxation(trace: Trace, node: LNode) -> Relaxation:
    """The sound lines of activation ``node`` for its input's current bounds (in coefficient layout).

    Cached on the trace while the input's bound arrays stay the same objects
    (bounds are always replaced, never modified in place).
    """
    z = node.parents[0]
    lo, hi = trace.lo[z.index], trace.hi[z.index]
    hit = trace.relax_cache.get(node.index)
    if hit is not None and hit[0] is lo and hit[1] is hi:
        return hit[2]
    if node.op in ("relu", "leaky_relu"):
        r = relu_relaxation(lo, hi, node.attrs.get("alpha", 0.0))
    elif node.op == "sigmoid":
        r = sigmoidal_relaxation(SIGMOID, lo, hi)
    else:
        r = sigmoidal_relaxation(TANH, lo, hi)
    v = (lambda a: a[:, None]) if z.batched else (lambda a: a)
    out = Relaxation(v(r.a_up), v(r.b_up), v(r.a_lo), v(r.b_lo))
    trace.relax_cache[node.index] = (lo, hi, out)
    return out


class _Pass:
    """One backward pass; ``beta`` accumulates upper bounds of the constant terms."""

    def __init__(self, trace: Trace, n_rows: int, relax: Mapping[int, Relaxation], lower_slopes: Mapping[int, np.ndarray]) -> None:
        self.t = trace
        self.lam: dict[int, np.ndarray] = {}
        self.beta = np.zeros((n_rows, trace.n))
        self.relax = relax
        self.lower_slopes = lower_slopes
        self.grad_slopes: dict[int, np.ndarray] = {}
        self.keep: set[int] = set()
        self.kept: dict[int, np.ndarray] = {}
        #: (row, sample) whose maximising parameters are recorded, and the record (leaf name -> values)
        self.record_at: tuple[int, int] | None = None
        self.record: dict[str, np.ndarray] = {}
        #: when a list: each step's choices, for the primal (maximiser) pass of paramverify.bounds.optimize
        self.tape: list[tuple[LNode, dict[str, Any]]] | None = None

    def note(self, node: LNode, kind: str, **info: Any) -> None:
        if self.tape is not None:
            self.tape.append((node, {"kind": kind, **info}))

    def add_beta(self, x: np.ndarray) -> None:
        self.beta = up(self.beta + x)

    def frontier_bound(self) -> np.ndarray:
        """``beta`` plus every pending coefficient array concretised over its node's interval."""
        total = self.beta
        for i, L in self.lam.items():
            node = self.t.nodes[i]
            lo, hi = self.t.view(self.t.lo[i], node), self.t.view(self.t.hi[i], node)
            total = up(total + concretize_up(L, lo, hi))
        return total

    # ------------------------------------------------------- witness hints
    def _record(self, p: LNode, direction: np.ndarray) -> None:
        """Record ``mid + rad * sign(direction)`` (the maximiser of the relaxed step) for the leaf under ``p``.

        Only rearrangements (transpose, reshape, neg) are undone; other
        derivations are skipped.  A heuristic start for the falsifier.
        """
        lo, hi = self.t.lo[p.index], self.t.hi[p.index]
        value = np.where(direction >= 0, hi, lo)
        node = p
        while node.op != "param":
            if node.op == "transpose":
                value = np.transpose(value, np.argsort(node.attrs["perm"]))
            elif node.op == "reshape":
                value = value.reshape(node.parents[0].shape)
            else:
                return
            node = node.parents[0]
        if value.shape == node.shape:
            self.record[node.attrs["name"]] = value

    def _hint_matmul(self, p: LNode, h_mid: np.ndarray, L: np.ndarray, p_left: bool) -> None:
        if self.record_at is None or L.ndim != 4 or h_mid.ndim != 2:
            return
        s, n = self.record_at
        Ls = L[s, n]
        g = Ls @ h_mid.T if p_left else h_mid.T @ Ls
        if g.shape == p.shape:
            self._record(p, g)

    # ---------------------------------------------------------------- plumbing
    def push(self, parent: Any, c: np.ndarray, rel: float = 0.0) -> None:
        """Hand coefficients ``c`` (child layout) to ``parent``; ``rel``: relative float error already in ``c``."""
        if not isinstance(parent, LNode):
            const = np.broadcast_to(np.asarray(parent, dtype=np.float64), c.shape[2:])
            self.add_beta(dot_up(c, const))
            if rel > 0:
                self.add_beta(sum_up(np.abs(c) * np.abs(const)) * rel)
            return
        mag = self.t.mag(parent)
        if rel > 0:
            self.add_beta(sum_up(np.abs(c) * mag) * rel)
        c, fan = _unbroadcast(c, parent.pshape)
        if fan > 1:
            self.add_beta(sum_up(np.abs(c) * mag) * (2 * gamma(fan + 2)))
        old = self.lam.get(parent.index)
        if old is None:
            self.lam[parent.index] = c
        else:
            new = old + c
            self.add_beta(sum_up(np.abs(new) * mag) * (2 * U))
            self.lam[parent.index] = new

    def interval_mid_rad(self, node: LNode) -> tuple[np.ndarray, np.ndarray]:
        return self.t.mid_rad(node)

    # ------------------------------------------------------------------ rules
    def step(self, node: LNode, L: np.ndarray) -> None:
        op = node.op
        if op in _CONCRETISED:
            lo, hi = self.t.view(self.t.lo[node.index], node), self.t.view(self.t.hi[node.index], node)
            self.add_beta(concretize_up(L, lo, hi))
            self.note(node, "leaf", pos=L >= 0)
            if op == "param" and self.record_at is not None:
                self._record(node, L[self.record_at])
            return
        getattr(self, "_" + op)(node, L)

    def _add(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        self.push(node.parents[0], L)
        self.push(node.parents[1], L)

    def _sub(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        self.push(node.parents[0], L)
        self.push(node.parents[1], -L)

    def _neg(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        self.push(node.parents[0], -L)

    def _div(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        self.push(node.parents[0], L / node.attrs["divisor"], rel=2 * U)

    def _pick(self, a: Any, b: Any) -> tuple[LNode, LNode, bool]:
        """(P, h, P_is_left): the operand relaxed by its interval and the one receiving coefficients."""
        if a.is_param != b.is_param:
            return (a, b, True) if a.is_param else (b, a, False)
        if a.is_param:
            return (a, b, True) if np.prod(a.shape) >= np.prod(b.shape) else (b, a, False)
        if a.batched != b.batched:
            return (a, b, True) if not a.batched else (b, a, False)
        wa = float(np.max(self.t.hi[a.index] - self.t.lo[a.index], initial=0.0))
        wb = float(np.max(self.t.hi[b.index] - self.t.lo[b.index], initial=0.0))
        return (a, b, True) if wa <= wb else (b, a, False)

    def _mul(self, node: LNode, L: np.ndarray) -> None:
        a, b = node.parents
        if not isinstance(a, LNode) or not isinstance(b, LNode):
            v, c = (a, b) if isinstance(a, LNode) else (b, a)
            self.note(node, "linear")
            self.push(v, L * np.asarray(c, dtype=np.float64), rel=2 * U)
            return
        p, h, _ = self._pick(a, b)
        axes = _broadcast_axes(p.pshape, node.pshape)
        if axes and p.is_param and not p.dom and not p.batched and h.pshape == node.pshape:
            self._shared_scale(node, L, p, h, axes)
            return
        pm, pr = self.interval_mid_rad(p)
        s, t = _chord_abs(self.t.lo[h.index], self.t.hi[h.index])
        s, t = self.t.view(s, h), self.t.view(t, h)
        self.note(node, "bilinear", p=p, h=h, sign=np.sign(L), s=s, t=t, p_left=None)
        g = np.abs(L) * pr
        self.add_beta(sum_up(g * t) * (1 + 8 * U))
        c = L * pm + g * s
        self.push(h, c)
        self.add_beta(sum_up(np.abs(L) * (np.abs(pm) + pr) * self.t.mag(h)) * (8 * U))

    def _shared_scale(self, node: LNode, L: np.ndarray, p: LNode, h: LNode, axes: tuple[int, ...]) -> None:
        """``P * h`` with ``P`` broadcast along ``axes`` (a per-channel scale: one weight for every position).

        The elementwise form of :meth:`_shared_weights`: ``Q`` sums ``L h`` over the broadcast
        axes, and ``sum Pr |Q|`` (``|Q|`` by its chord) replaces ``sum Pr |L| |h|``.
        """
        pm, pr = self.interval_mid_rad(p)
        hm, hr = self.interval_mid_rad(h)
        mag_h = self.t.mag(h)
        absL = np.abs(L)
        n = int(np.prod([L.shape[a] for a in axes], dtype=np.int64))
        s, t = _q_chord(np.sum(L * hm, axis=axes, keepdims=True), np.sum(absL * hr, axis=axes, keepdims=True),
                        np.sum(absL * mag_h, axis=axes, keepdims=True), n)
        w = pm + pr * s
        self.note(node, "shared_mul", h=h, w=w)
        self.add_beta(sum_up(pr * t) * (1 + 8 * U))
        self.add_beta(sum_up(absL * (np.abs(pm) + pr) * mag_h) * (8 * U))
        self.push(h, L * w)

    def _matmul(self, node: LNode, L: np.ndarray) -> None:
        a, b = node.parents
        sa = a.shape if isinstance(a, LNode) else np.shape(a)
        sb = b.shape if isinstance(b, LNode) else np.shape(b)
        # the backward products contract over m, n or k: bound them all by the largest
        k = max(sa[-2], sa[-1], sb[-1])
        g = 2 * gamma(k + 8)
        absL = np.abs(L)
        if not isinstance(a, LNode) or not isinstance(b, LNode):
            const_left = not isinstance(a, LNode)
            v = b if const_left else a
            c = np.asarray(a if const_left else b, dtype=np.float64)
            rows = L.shape[0] * L.shape[1] * int(np.prod(v.pshape))
            # each entry of P meets one entry of the constant when the constant is a single row
            # (column) without stacked dims: then concretising per use is exact and cheap
            single = c.ndim == 2 and (c.shape[0] == 1 if const_left else c.shape[1] == 1)
            if v.is_param and (single or rows > EXACT_PARAM_ELEMS):
                # per-use concretisation of a parameter operand against a constant
                pm, pr = self.interval_mid_rad(v)
                self.note(node, "peruse", v=v, c=c, const_left=const_left, sign=np.sign(L))
                y_mid = mm(c, pm) if const_left else mm(pm, c)
                self.add_beta(dot_up(L, y_mid))
                self._hint_matmul(v, c, L, not const_left)
                mag_mid = mm(np.abs(c), np.abs(pm)) if const_left else mm(np.abs(pm), np.abs(c))
                rad = mm(np.abs(c), pr) if const_left else mm(pr, np.abs(c))
                self.add_beta(sum_up(absL * rad) * (1 + g) + sum_up(absL * (mag_mid + rad)) * g)
                return
            mag = self.t.mag(v)
            self.note(node, "linear")
            if const_left:
                contrib = mm(_swap(c), L)
                err = mm(np.abs(c), mag)
            else:
                contrib = mm(L, _swap(c))
                err = mm(mag, np.abs(c))
            self.add_beta(sum_up(absL * err) * g)
            self.push(v, contrib)
            return
        p, h, p_left = self._pick(a, b)
        pm, pr = self.interval_mid_rad(p)
        if self.record_at is not None and not p.dom and not p.batched:
            h_lo, h_hi = self.t.lo[h.index], self.t.hi[h.index]
            h_mid = (h_lo + h_hi) * 0.5
            n = self.record_at[1]
            self._hint_matmul(p, h_mid[n] if h.dom else (h_mid[n : n + 1] if h.batched else h_mid), L, p_left)
        shared = h.pshape[-1] if p_left else h.pshape[-2]
        if shared > 1 and p.is_param and not p.dom and not p.batched:
            self._shared_weights(node, L, p, h, p_left, g)
            return
        s, t = _chord_abs(self.t.lo[h.index], self.t.hi[h.index])
        s, t = self.t.view(s, h), self.t.view(t, h)
        self.note(node, "bilinear", p=p, h=h, sign=np.sign(L), s=s, t=t, p_left=p_left)
        mag_h = self.t.mag(h)
        if p_left:
            G = mm(_swap(pr), absL)
            contrib = mm(_swap(pm), L) + G * s
            err = mm(np.abs(pm) + pr, mag_h)
        else:
            G = mm(absL, _swap(pr))
            contrib = mm(L, _swap(pm)) + G * s
            err = mm(mag_h, np.abs(pm) + pr)
        self.add_beta(sum_up(G * t) * (1 + g))
        self.add_beta(sum_up(absL * err) * (2 * g))
        self.push(h, contrib)

    def _shared_weights(self, node: LNode, L: np.ndarray, p: LNode, h: LNode, p_left: bool, g: float) -> None:
        """``P h`` (or ``h P``) where each weight of ``P`` multiplies several entries of ``h``.

        A convolution as a matmul: one weight meets every output position.
        With ``P = Pm + D`` (``|D| <= Pr``) the perturbation's share of the
        objective is ``sum_mk D_mk Q_mk(h)``, ``Q = L h^T`` (``h^T L`` when
        ``P`` is on the right), so it is at most ``sum Pr |Q|`` with ``|Q|``
        bounded by its chord over ``Q``'s range on ``h``'s box: linear in
        ``h`` again, through the effective weights ``Pm + Pr s_Q``.  Bounding
        ``|Q|`` as a whole keeps one sign per weight for all positions; the
        per-entry rule (``sum Pr |L| |h|``) lets every position pick its own.
        """
        pm, pr = self.interval_mid_rad(p)
        hm, hr = self.interval_mid_rad(h)
        mag_h = self.t.mag(h)
        absL = np.abs(L)
        k = h.pshape[-1] if p_left else h.pshape[-2]
        if p_left:
            s, t = _q_chord(mm(L, _swap(hm)), mm(absL, _swap(hr)), mm(absL, _swap(mag_h)), k)
        else:
            s, t = _q_chord(mm(_swap(hm), L), mm(_swap(hr), absL), mm(_swap(mag_h), absL), k)
        w = pm + pr * s
        self.note(node, "shared", h=h, w=w, p_left=p_left)
        self.add_beta(sum_up(pr * t) * (1 + 8 * U))
        contrib = mm(_swap(w), L) if p_left else mm(L, _swap(w))
        err = mm(np.abs(pm) + pr, mag_h) if p_left else mm(mag_h, np.abs(pm) + pr)
        self.add_beta(sum_up(absL * err) * (2 * g + 8 * U))
        self.push(h, contrib)

    def _activation(self, node: LNode, L: np.ndarray) -> None:
        z = node.parents[0]
        r = self.relax[node.index]
        if node.index in self.keep:
            self.kept[node.index] = L
        pos = L >= 0
        a_lo, b_lo = r.a_lo, r.b_lo
        slopes = self.lower_slopes.get(node.index)
        alpha = node.attrs.get("alpha", 0.0)
        if slopes is not None and node.op in ("relu", "leaky_relu") and alpha <= 1.0:
            # any slope in [alpha, 1] gives a line through 0 below a (leaky) relu: exact, no intercept
            unstable = np.broadcast_to(r.a_up != r.a_lo, slopes.shape)
            a_lo = np.where(unstable, np.clip(slopes, alpha, 1.0), a_lo)
            b_lo = np.where(unstable, 0.0, b_lo)
            # grad of the bound w.r.t. the lower slopes: L * z on the rows using the lower line
            self.grad_slopes[node.index] = np.where(pos | ~unstable, 0.0, L)
        self.note(node, "act", pos=pos, a_up=r.a_up, b_up=r.b_up, a_lo=a_lo, b_lo=b_lo)
        contrib = np.where(pos, L * r.a_up, L * a_lo)
        self.add_beta(dot_up(L, np.where(pos, r.b_up, b_lo)))
        if isinstance(z, LNode):
            self.push(z, contrib, rel=2 * U)

    _relu = _activation
    _leaky_relu = _activation
    _sigmoid = _activation
    _tanh = _activation

    def _reshape(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        a = node.parents[0]
        self.push(a, L.reshape(L.shape[:2] + a.pshape))

    def _transpose(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        inv = np.argsort(node.attrs["perm"])
        self.push(node.parents[0], L.transpose((0, 1) + tuple(int(i) + 2 for i in inv)))

    def _pad(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        pw = node.attrs["pad_width"]
        sl = tuple(slice(b, L.shape[2 + i] - e) for i, (b, e) in enumerate(pw))
        if node.batched:
            sl = (slice(None),) + sl[1:]
        self.push(node.parents[0], L[(slice(None), slice(None)) + sl])

    def _concat(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        ax = node.attrs["axis"] + 2
        cuts = np.cumsum(node.attrs["sizes"])[:-1]
        for p, part in zip(node.parents, np.split(L, cuts, axis=ax)):
            self.push(p, part)

    def _take(self, node: LNode, L: np.ndarray) -> None:
        self.note(node, "linear")
        a = node.parents[0]
        idx = np.asarray(node.attrs["indices"])
        ax = node.attrs["axis"]
        size = a.shape[ax]
        flat = idx.reshape(-1)
        # flatten the gathered axes, move them last and scatter-add them
        lead, tail = L.shape[: 2 + ax], L.shape[2 + ax + idx.ndim:]
        Lm = np.moveaxis(L.reshape(lead + (flat.size,) + tail), 2 + ax, -1)
        out = np.moveaxis(scatter_add(Lm, flat, size), -1, 2 + ax)
        if np.bincount(flat, minlength=size).max(initial=0) > 1:
            # repeated indices are summed: gamma(count) times the gathered magnitudes
            count = int(np.bincount(flat).max())
            mag = np.take(self.t.mag(a), idx, axis=ax + (1 if a.batched or a.dom else 0))
            self.add_beta(sum_up(np.abs(L) * mag) * (2 * gamma(count + 2)))
        self.push(a, out)


def _q_chord(q_mid: np.ndarray, q_rad: np.ndarray, q_mag: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``|Q| <= s Q + t`` over ``Q``'s range ``q_mid +- q_rad`` (``L hm`` and ``|L| hr`` summed over ``k``
    terms in floats); each sum is off by at most ``gamma |L| mag``, ``q_mag`` (also a float sum), so the
    range is widened by ``4 gamma(k + 4) q_mag`` plus the underflow allowance."""
    q_rad = up(q_rad + q_mag * (4 * gamma(k + 4)) + ABS_TERM * k)
    return _chord_abs(down(q_mid - q_rad), up(q_mid + q_rad))


def _broadcast_axes(small: tuple[int, ...], full: tuple[int, ...]) -> tuple[int, ...]:
    """Axes of a coefficient array ``[S, N, *full]`` along which an operand of shape ``small`` is broadcast."""
    lead = len(full) - len(small)
    if lead < 0:
        return ()
    axes = [2 + i for i in range(lead) if full[i] > 1]
    axes += [2 + lead + i for i, d in enumerate(small) if d == 1 and full[lead + i] > 1]
    return tuple(axes)


def backward(
    trace: Trace,
    targets: Targets,
    relax: Mapping[int, Relaxation] | None = None,
    lower_slopes: Mapping[int, np.ndarray] | None = None,
    want_grads: bool = False,
    keep: set[int] | None = None,
    checkpoints: bool = True,
    hints: dict[str, np.ndarray] | None = None,
    hint_row: tuple[int, int] = (0, 0),
    tape: list[tuple[LNode, dict[str, Any]]] | None = None,
) -> np.ndarray | tuple[np.ndarray, dict[int, np.ndarray]]:
    """Upper bounds ``[S, N]`` of ``sum_targets sum(C * node)`` (see :mod:`paramverify.bounds.linear`).

    ``targets``: (node, C) pairs, ``C`` of shape ``[S, N, *node.pshape]``.
    ``relax``: precomputed relaxations per activation node index (computed
    from the trace's bounds when missing).  ``lower_slopes``: optional
    per-row lower slopes of unstable ReLU neurons (alpha-CROWN); with
    ``want_grads`` the coefficient of each such slope is returned too.
    """
    if not targets:
        raise ValueError("backward needs at least one target")
    n_rows = targets[0][1].shape[0]
    relax = dict(relax or {})
    pas = _Pass(trace, n_rows, relax, lower_slopes or {})
    pas.keep = set(keep or ())
    if hints is not None:
        pas.record_at = hint_row
        pas.record = hints
    pas.tape = tape
    top = -1
    for node, C in targets:
        if C.shape != (n_rows, trace.n) + node.pshape:
            raise ValueError(f"target coefficients have shape {C.shape}, expected {(n_rows, trace.n) + node.pshape}")
        pas.push(node, np.asarray(C, dtype=np.float64))
        top = max(top, node.index)
    best = np.full_like(pas.beta, np.inf)
    for i in range(top, -1, -1):
        L = pas.lam.pop(i, None)
        if L is None:
            continue
        node = trace.nodes[i]
        if node.op in ("relu", "leaky_relu", "sigmoid", "tanh") and i not in relax:
            relax[i] = relaxation(trace, node)
        if node.op not in _CONCRETISED and not hasattr(pas, "_" + node.op):
            raise CapabilityError(f"linear bounds: no backward rule for {node.op}")
        pas.step(node, L)
        if checkpoints and pas.lam and node.op in ("relu", "leaky_relu", "sigmoid", "tanh"):
            best = np.minimum(best, pas.frontier_bound())
    beta = np.minimum(best, pas.beta)
    if want_grads:
        return beta, pas.grad_slopes
    if keep is not None:
        return beta, pas.kept
    return beta
