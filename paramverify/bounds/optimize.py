"""Optimised linear bounds: split multipliers (beta) and lower ReLU slopes (alpha).

For fixed relaxations, :func:`~paramverify.bounds.backward.backward` returns
the maximum of a linear function over the relaxed set.  Two families of
free choices keep every result a sound upper bound:

* the lower slope of an unstable (leaky) ReLU, any value in ``[alpha, 1]``;
* on a domain where a split fixes ``z >= 0`` (``z <= 0``), the objective
  plus ``beta * z`` (``- beta * z``) for any ``beta >= 0``: the added term is
  nonnegative on the domain (beta-CROWN's Lagrangian of the split).

:func:`optimised_upper` improves both by projected gradient steps.  The
gradient of the bound with respect to a node's coefficient is the node's
value at the relaxed maximiser (envelope theorem); :func:`primal` recovers
those values by a forward pass over the choices the backward pass recorded.
Soundness never depends on the optimisation: every iterate is a complete,
outward-rounded backward pass, and the result is their row-wise minimum.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from paramverify.bounds.backward import backward, relaxation
from paramverify.bounds.crown import LinearBounds, Split
from paramverify.bounds.linear import LNode, Trace, mm
from paramverify.errors import InternalError

Tape = list[tuple[LNode, dict[str, Any]]]
#: steps over which ``optimised_upper(stall=...)`` measures the progress of the bound
STALL_WINDOW = 4


def _value(prim: dict[int, np.ndarray], v: Any, nd: int) -> np.ndarray:
    """A parent's maximiser values with its per-sample dims right-aligned to ``nd`` child dims.

    Coefficient layouts put (row, sample) first, so a parent with fewer
    per-sample dims needs singleton axes after them to broadcast like the
    op itself (constants carry no leading axes and broadcast as they are).
    """
    if not isinstance(v, LNode):
        return np.asarray(v, dtype=np.float64)
    arr = prim[v.index]
    k = arr.ndim - 2
    return arr.reshape(arr.shape[:2] + (1,) * (nd - k) + arr.shape[2:]) if k < nd else arr


def _linear(node: LNode, prim: dict[int, np.ndarray], lead: tuple[int, int]) -> np.ndarray:
    """The node's op applied to its parents' maximiser values (coefficient layout ``[S, N, *pshape]``)."""
    op, at = node.op, node.attrs
    nd = len(node.pshape) if op not in ("reshape", "take") else 0
    ps = [_value(prim, p, nd) for p in node.parents]
    if op == "add":
        return ps[0] + ps[1]
    if op == "sub":
        return ps[0] - ps[1]
    if op == "neg":
        return -ps[0]
    if op == "div":
        return ps[0] / at["divisor"]
    if op == "mul":
        return ps[0] * ps[1]
    if op == "matmul":
        return mm(ps[0], ps[1])
    if op == "reshape":
        return ps[0].reshape(lead + node.pshape)
    if op == "transpose":
        return ps[0].transpose((0, 1) + tuple(p + 2 for p in at["perm"]))
    if op == "take":
        return np.take(ps[0], at["indices"], axis=at["axis"] + 2)
    if op == "pad":
        return np.pad(ps[0], ((0, 0), (0, 0)) + tuple(at["pad_width"]))
    if op == "concat":
        parts = [np.broadcast_to(p, lead + p.shape[-len(node.pshape):]) if p.ndim < 2 + len(node.pshape) else p for p in ps]
        return np.concatenate(parts, axis=at["axis"] + 2)
    raise InternalError(f"internal error (please report): no primal rule for {op}")


def primal(trace: Trace, tape: Tape, lead: tuple[int, int]) -> dict[int, np.ndarray]:
    """Per recorded node: its value at the maximiser of the relaxed bound, per row ``[S, N, *pshape]``.

    A heuristic quantity (plain float arithmetic): it only steers the
    optimisation, it never enters a bound.
    """
    prim: dict[int, np.ndarray] = {}
    for node, info in sorted(tape, key=lambda e: e[0].index):
        kind = info["kind"]
        if kind == "leaf":
            lo, hi = trace.view(trace.lo[node.index], node), trace.view(trace.hi[node.index], node)
            prim[node.index] = np.where(info["pos"], hi, lo)
        elif kind == "act":
            z = prim[node.parents[0].index]
            prim[node.index] = np.where(info["pos"], info["a_up"] * z + info["b_up"], info["a_lo"] * z + info["b_lo"])
        elif kind == "bilinear":
            pm, pr = trace.mid_rad(info["p"])
            h = _value(prim, info["h"], len(node.pshape))
            mag = info["s"] * h + info["t"]
            if info["p_left"] is None:
                prim[node.index] = pm * h + info["sign"] * pr * mag
            elif info["p_left"]:
                prim[node.index] = mm(pm, h) + info["sign"] * mm(pr, mag)
            else:
                prim[node.index] = mm(h, pm) + info["sign"] * mm(mag, pr)
        elif kind == "shared_mul":
            prim[node.index] = info["w"] * _value(prim, info["h"], len(node.pshape))
        elif kind == "shared":
            h = _value(prim, info["h"], len(node.pshape))
            prim[node.index] = mm(info["w"], h) if info["p_left"] else mm(h, info["w"])
        elif kind == "peruse":
            pm, pr = trace.mid_rad(info["v"])
            c = info["c"]
            mid = mm(c, pm) if info["const_left"] else mm(pm, c)
            rad = mm(np.abs(c), pr) if info["const_left"] else mm(pr, np.abs(c))
            prim[node.index] = mid + info["sign"] * rad
        else:
            prim[node.index] = _linear(node, prim, lead)
    return prim


def _adam(x: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: Any, it: int) -> np.ndarray:
    m = state["m"] = 0.9 * state.get("m", np.zeros_like(g)) + 0.1 * g
    v = state["v"] = 0.999 * state.get("v", np.zeros_like(g)) + 0.001 * g * g
    mh, vh = m / (1 - 0.9**it), v / (1 - 0.999**it)
    return x - lr * mh / (np.sqrt(vh) + 1e-12)


def optimised_upper(
    lb: LinearBounds,
    targets: Sequence[tuple[LNode, np.ndarray]],
    splits: Sequence[Sequence[Split]] | None = None,
    iters: int = 8,
    lr_alpha: float = 0.2,
    lr_beta: float = 0.2,
    time_limit: float | None = None,
    stall: float | None = None,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Upper bounds ``[S, N]`` of the targets, minimised over slopes and split multipliers.

    ``splits[n]``: the splits of domain ``n`` (point mode: the trace's
    domain axis), or None.  Returns the row-wise minimum over all iterates
    and the first pass's coefficients at the activations (for branching).
    ``time_limit``: stop after that many seconds (at least one pass; any
    iterate is sound, so stopping early only loosens the bound).  ``stall``:
    also stop once the last ``STALL_WINDOW`` steps lowered the mean bound by
    less than ``stall`` times its magnitude (the optimisation has settled).
    """
    t0 = time.monotonic()
    t = lb.trace
    S = targets[0][1].shape[0]
    lead = (S, t.n)
    keep = {a.index for a in lb.acts}
    # beta: per split node, the sign of each split (+1: z >= 0, -1: z <= 0) in coefficient layout
    signs: dict[int, np.ndarray] = {}
    if splits is not None:
        for d, dom in enumerate(splits):
            for sp in dom:
                z = t.nodes[sp.node].parents[0]
                arr = signs.setdefault(z.index, np.zeros((t.n,) + z.pshape))
                arr[d].reshape(-1)[sp.pos] = 1.0 if sp.positive else -1.0
    betas = {i: np.zeros(lead + sgn.shape[1:]) for i, sgn in signs.items()}
    relu_acts = [a for a in lb.acts if a.op in ("relu", "leaky_relu") and a.attrs.get("alpha", 0.0) <= 1.0]
    slopes: dict[int, np.ndarray] = {}
    best = np.full(lead, np.inf)
    history: list[float] = []
    kept0: dict[int, np.ndarray] = {}
    states: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    scale = 1.0
    for it in range(1, iters + 1):
        extra = [(t.nodes[i], b * signs[i][None]) for i, b in betas.items()]
        tape: Tape = []
        out = backward(t, list(targets) + extra, lower_slopes=slopes, want_grads=True, tape=tape, checkpoints=it == 1)
        ub, grads = out  # type: ignore[misc]
        best = np.minimum(best, ub)
        if it == 1:
            _, kept0 = backward(t, targets, keep=keep)  # type: ignore[misc]
            scale = float(np.mean([np.mean(np.abs(k)) for k in kept0.values()])) if kept0 else 1.0
            for a in relu_acts:
                slopes[a.index] = np.broadcast_to(relaxation(t, a).a_lo, lead + a.pshape).copy()
        if it == iters or (time_limit is not None and time.monotonic() - t0 >= time_limit):
            break
        fin = best[np.isfinite(best)]
        history.append(float(np.mean(fin)) if fin.size else 0.0)
        if stall is not None and len(history) > STALL_WINDOW:
            before, now = history[-1 - STALL_WINDOW], history[-1]
            if before - now <= stall * (abs(now) + 1e-12):
                break
        prim = primal(t, tape, lead)
        for i, b in betas.items():
            z = prim.get(i)
            if z is None:
                continue
            g = signs[i][None] * z
            st = states.setdefault(("b", i), {})
            betas[i] = np.maximum(_adam(b, g, st, lr_beta * max(scale, 1e-9), it), 0.0)
        for a in relu_acts:
            gz = grads.get(a.index)
            z = prim.get(a.parents[0].index)
            if gz is None or z is None or a.index not in slopes:
                continue
            st = states.setdefault(("a", a.index), {})
            slopes[a.index] = np.clip(_adam(slopes[a.index], gz * z, st, lr_alpha, it), a.attrs.get("alpha", 0.0), 1.0)
    return best, kept0
