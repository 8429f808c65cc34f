"""Strong falsifier: batched projected gradient over parameters and inputs.

Maximises row objectives ``max_{r in group} C_r . f_p(x) - D_r . f_p0(x) + e_r``
over the parameter box and the input region with many restarts at once:

* restarts: the nominal point, a random vertex, and uniform random points
  of the boxes (seeded);
* sign-gradient steps with momentum (normalised gradients accumulated with
  decay ``mu``), projected onto the boxes; the step (a fraction of each
  coordinate's width) halves and the iterate returns to its best point
  whenever a checkpoint brings no improvement (APGD's schedule); a restart
  stuck at the smallest step starts afresh at a uniform random point;
* vertex jumps: at every checkpoint the gradient-sign vertex of the boxes
  is evaluated too (the optimum of an objective that is multilinear in the
  parameters lies at a vertex) and adopted when it is better.

All restarts run as one batch: with torch (optional dependency) through
``torch.func.vmap`` over a kernel of torch ops, so every op the graph
lowers to is supported; without torch a numpy loop over the restarts uses
the autodiff tape.  Results are *candidates* only: callers snap them into
the boxes and re-evaluate them soundly or replay them on onnxruntime, as
for every other falsifier result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.bounds.autodiff import AutodiffKernel, Tape, Var, value_of
from paramverify.bounds.falsify import Candidate
from paramverify.ir import Graph
from paramverify.options import Deadline
from paramverify.specs import ParamBox

#: (X [B, d], P {name: [B, *shape]}, want_grad) -> (values [B], grad X, grad P)
ValueGrad = Callable[[np.ndarray, dict[str, np.ndarray], bool], tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray] | None]]


@dataclass(frozen=True)
class RowObjective:
    """Rows ``C . f_p(x) - D . f_p0(x) + e`` (``[R, k]``, ``[R, k]``, ``[R]``) and groups of rows.

    A group's objective is the maximum of its rows; restarts are dealt to
    the groups in turn.
    """

    coefs: np.ndarray
    base: np.ndarray
    offsets: np.ndarray
    groups: tuple[tuple[int, ...], ...]


def change_objective(k: int, rows: Sequence[int] | None = None) -> RowObjective:
    """Output change: rows ``+-(f_p - f_p0)_o``; one group per listed row (index ``o`` or ``k + o``) plus all rows."""
    c = np.concatenate([np.eye(k), -np.eye(k)])
    groups = [tuple(range(2 * k))] + [(int(r),) for r in (rows or ())]
    return RowObjective(c, c.copy(), np.zeros(2 * k), tuple(groups))


def label_objective(coefs: np.ndarray, offsets: np.ndarray) -> RowObjective:
    """Label rows ``C . f_p + e`` (a row above 0 breaks the label); one group of all rows plus one per row."""
    c = np.asarray(coefs, dtype=np.float64)
    groups = [tuple(range(len(c)))] + [(r,) for r in range(len(c))] if len(c) > 1 else [(0,)]
    return RowObjective(c, np.zeros_like(c), np.asarray(offsets, dtype=np.float64), tuple(groups))


@dataclass(frozen=True)
class PGDSettings:
    """Restarts (all groups together, dealt in turn), steps, momentum, checkpoint period and the first step
    (fraction of the box width); the batch holds at most ``max_elements`` parameter values (large nets get
    fewer restarts, and then only the first groups)."""

    restarts: int = 20
    steps: int = 200
    momentum: float = 0.75
    checkpoint: int = 10
    step0: float = 0.25
    min_step: float = 0.25 / 64
    max_batch: int = 64
    max_elements: int = 4_000_000


# ---------------------------------------------------------------------------
# value-and-gradient back ends


def _reduce(yp: np.ndarray, y0: np.ndarray, obj: RowObjective, mask: np.ndarray) -> np.ndarray:
    vals = yp @ obj.coefs.T - y0 @ obj.base.T + obj.offsets  # [B, R]
    return np.where(mask, vals, -np.inf).max(axis=1)


def numpy_value_grad(graph: Graph, box: ParamBox, obj: RowObjective, mask: np.ndarray) -> ValueGrad:
    """One autodiff tape per restart (no torch needed)."""

    def run(X: np.ndarray, P: dict[str, np.ndarray], want: bool) -> tuple[np.ndarray, Any, Any]:
        B = X.shape[0]
        vals = np.empty(B)
        gx = np.zeros_like(X) if want else None
        gp = {n: np.zeros_like(v) for n, v in P.items()} if want else None
        for b in range(B):
            tape = Tape()
            k = AutodiffKernel(tape)
            xv = tape.var(graph.as_batch(X[b]))
            pv = {n: tape.var(P[n][b]) for n in box.names}
            yp = k.reshape(graph.run(k, xv, pv), (1, -1))
            y0 = k.reshape(graph.run(k, xv), (1, -1))
            rows = k.sub(k.matmul(yp, obj.coefs.T), k.matmul(y0, obj.base.T))
            rv = value_of(rows)[0] + obj.offsets
            rv = np.where(mask[b], rv, -np.inf)
            r = int(np.argmax(rv))
            vals[b] = rv[r]
            if want:
                o = k.take(rows, np.array([r]), axis=1)
                if isinstance(o, Var):
                    tape.backward(o)
                    if xv.grad is not None:
                        gx[b] = np.asarray(xv.grad).reshape(-1)
                    for n in box.names:
                        if pv[n].grad is not None:
                            gp[n][b] = pv[n].grad
        return vals, gx, gp

    return run


def torch_value_grad(graph: Graph, box: ParamBox, obj: RowObjective, mask: np.ndarray, fixed_x: bool = False) -> ValueGrad | None:
    """All restarts in one vmapped torch pass; None without torch.  ``fixed_x``: every X row is the same point."""
    try:
        import torch
        from torch.func import vmap
    except ImportError:
        return None
    from paramverify.bounds.torch_kernel import TorchKernel

    kern = TorchKernel()
    names = box.names
    sample = graph.sample_shape
    C = torch.as_tensor(obj.coefs.T)
    D = torch.as_tensor(obj.base.T)
    e = torch.as_tensor(obj.offsets)
    M = torch.as_tensor(mask)

    def fwd(x: Any, *ps: Any) -> Any:
        y = graph.run(kern, x.reshape((1,) + tuple(sample)), dict(zip(names, ps)))
        return y.reshape(-1)

    def fwd0(x: Any) -> Any:
        return graph.run(kern, x.reshape((1,) + tuple(sample))).reshape(-1)

    bf, bf0 = vmap(fwd), vmap(fwd0)
    cache: dict[str, Any] = {}

    def run(X: np.ndarray, P: dict[str, np.ndarray], want: bool) -> tuple[np.ndarray, Any, Any]:
        B = X.shape[0]
        m = M[:B] if M.shape[0] >= B else M
        with torch.set_grad_enabled(want):
            xt = torch.tensor(X, requires_grad=want and not fixed_x)
            pt = [torch.tensor(P[n], requires_grad=want) for n in names]
            yp = bf(xt, *pt)
            if fixed_x:  # a point region: f_p0(x0) once
                if "y0" not in cache:
                    with torch.no_grad():
                        cache["y0"] = bf0(xt[:1])
                y0 = cache["y0"]
            else:
                y0 = bf0(xt)
            vals = yp @ C - y0 @ D + e
            vals = torch.where(m, vals, torch.full_like(vals, -np.inf)).amax(dim=1)
            if not want:
                return vals.detach().numpy(), None, None
            vals.sum().backward()
        gx = xt.grad.numpy() if xt.grad is not None else np.zeros_like(X)
        gp = {n: (t.grad.numpy() if t.grad is not None else np.zeros_like(P[n])) for n, t in zip(names, pt)}
        return vals.detach().numpy(), gx, gp

    try:  # a probe run: an op the torch kernel cannot vmap falls back to numpy
        run(np.zeros((1, graph.input_size)), {n: np.asarray(box.nominal[n], dtype=np.float64)[None] for n in names}, True)
        cache.clear()
    except (RuntimeError, TypeError, ValueError, NotImplementedError, IndexError):
        return None
    return run


# ---------------------------------------------------------------------------
# the search


def pgd(
    graph: Graph,
    box: ParamBox,
    x_lo: np.ndarray,
    x_hi: np.ndarray,
    obj: RowObjective,
    rng: np.random.Generator,
    deadline: Deadline,
    settings: PGDSettings = PGDSettings(),
    time_limit: float | None = None,
    stop_above: float = np.inf,
    backend: str = "auto",
    starts: Sequence[tuple[np.ndarray, Mapping[str, np.ndarray]]] = (),
) -> list[Candidate]:
    """The best point found per group of rows (float64 values, unproved), best first.

    Stops at the deadline, after ``time_limit`` seconds, or once a value
    exceeds ``stop_above``.  ``starts``: given (x, params) start points (e.g.
    the relaxation's maximisers), used by the restarts after the nominal
    ones, in place of random starts.  ``backend``: "auto" (torch when importable),
    "torch" or "numpy".
    """
    t0 = time.monotonic()
    x_lo = np.asarray(x_lo, dtype=np.float64).reshape(-1)
    x_hi = np.asarray(x_hi, dtype=np.float64).reshape(-1)
    # memory guard: about max_elements parameter values per batched copy (a few copies are live)
    n_par = max(1, box.n_parameters + x_lo.size)
    B = max(1, min(settings.max_batch, max(len(obj.groups), settings.restarts), settings.max_elements // n_par))
    G = min(len(obj.groups), B)  # group 0 (all rows) first: kept when the batch is small
    group_of = np.arange(B) % G
    mask = np.zeros((B, len(obj.offsets)), dtype=bool)
    for b in range(B):
        mask[b, list(obj.groups[group_of[b]])] = True
    with _one_thread():
        fixed = bool(np.all(x_lo == x_hi))
        vg = None if backend == "numpy" else torch_value_grad(graph, box, obj, mask, fixed)
        if vg is None:
            vg = numpy_value_grad(graph, box, obj, mask)
        return _search(vg, box, x_lo, x_hi, obj, rng, settings, group_of, G, B, t0, deadline, time_limit, stop_above,
                       list(starts))


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch intra-op thread while searching (restored after): the batches are small and threads only contend."""
    try:
        from paramverify.smoothing.core import one_torch_thread
    except ImportError:  # no torch: the numpy fallback has no threads to restrict
        yield
        return
    with one_torch_thread():
        yield


def _search(vg: ValueGrad, box: ParamBox, x_lo: np.ndarray, x_hi: np.ndarray, obj: RowObjective, rng: np.random.Generator,
            settings: PGDSettings, group_of: np.ndarray, G: int, B: int, t0: float, deadline: Deadline,
            time_limit: float | None, stop_above: float,
            starts: list[tuple[np.ndarray, Mapping[str, np.ndarray]]]) -> list[Candidate]:
    names = box.names
    lo = {n: np.asarray(box.lo[n], dtype=np.float64) for n in names}
    hi = {n: np.asarray(box.hi[n], dtype=np.float64) for n in names}
    nom = {n: np.clip(np.asarray(box.nominal[n], dtype=np.float64), lo[n], hi[n]) for n in names}
    wx = x_hi - x_lo
    move_x = bool(np.any(wx > 0))
    wp = {n: hi[n] - lo[n] for n in names}
    # restarts: the first round of groups starts at the nominal point / centre, the second at a random vertex
    restart = np.arange(B) // G
    X = np.empty((B, x_lo.size))
    P = {n: np.empty((B,) + lo[n].shape) for n in names}
    for b in range(B):
        r = restart[b]
        if G <= b < G + len(starts):
            sx, sp = starts[b - G]
            X[b] = np.clip(np.asarray(sx, dtype=np.float64).reshape(-1), x_lo, x_hi)
            for n in names:
                P[n][b] = np.clip(np.asarray(sp[n], dtype=np.float64), lo[n], hi[n])
            continue
        if r == 0:
            X[b] = (x_lo + x_hi) / 2
        elif r == 1:
            X[b] = np.where(rng.random(x_lo.size) < 0.5, x_hi, x_lo)
        else:
            X[b] = rng.uniform(x_lo, x_hi)
        for n in names:
            if r == 0:
                P[n][b] = nom[n]
            elif r == 1:
                P[n][b] = np.where(rng.random(lo[n].shape) < 0.5, hi[n], lo[n])
            else:
                P[n][b] = rng.uniform(lo[n], hi[n])
    # per slot: the best point of its current run (APGD returns there) and the best point ever (the output)
    cur_v = np.full(B, -np.inf)
    cur_X, cur_P = X.copy(), {n: v.copy() for n, v in P.items()}
    best_v = np.full(B, -np.inf)
    best_X, best_P = X.copy(), {n: v.copy() for n, v in P.items()}
    mx = np.zeros_like(X)
    mp = {n: np.zeros_like(v) for n, v in P.items()}
    eta = np.full(B, settings.step0)
    last_ck = np.full(B, -np.inf)

    def take(vals: np.ndarray, Xc: np.ndarray, Pc: dict[str, np.ndarray]) -> None:
        for v, bx, bp in ((cur_v, cur_X, cur_P), (best_v, best_X, best_P)):
            better = vals > v
            v[better] = vals[better]
            bx[better] = Xc[better]
            for n in names:
                bp[n][better] = Pc[n][better]

    def out_of_time() -> bool:
        return deadline.expired() or (time_limit is not None and time.monotonic() - t0 >= time_limit)

    for t in range(settings.steps):
        vals, gx, gp = vg(X, P, True)
        vals = np.where(np.isfinite(vals), vals, -np.inf)
        take(vals, X, P)
        if best_v.max() > stop_above or out_of_time():
            break
        # momentum on gradients normalised per restart (mean |g| over all coordinates)
        scale = np.abs(gx).sum(axis=1)
        for n in names:
            scale = scale + np.abs(gp[n]).reshape(B, -1).sum(axis=1)
        if t > 0 and not np.any(scale > 0):
            break
        inv = 1.0 / np.maximum(scale, 1e-300)
        mx *= settings.momentum
        mx += gx * inv[:, None]
        for n in names:
            mp[n] *= settings.momentum
            mp[n] += gp[n] * inv.reshape((B,) + (1,) * lo[n].ndim)
        if t % settings.checkpoint == 0:
            # vertex jump: the sign vertex of the current gradient (and of the momentum)
            for dirs_x, dirs_p in ((gx, gp), (mx, mp)):
                VX = np.where(dirs_x > 0, x_hi, np.where(dirs_x < 0, x_lo, X))
                VP = {n: np.where(dirs_p[n] > 0, hi[n], np.where(dirs_p[n] < 0, lo[n], P[n])) for n in names}
                vv, _, _ = vg(VX, VP, False)
                vv = np.where(np.isfinite(vv), vv, -np.inf)
                take(vv, VX, VP)
            if t > 0:
                fin = np.isfinite(last_ck)
                stalled = fin & (cur_v <= np.where(fin, last_ck + 1e-12 * np.maximum(1.0, np.abs(np.where(fin, last_ck, 0.0))), 0.0))
                stuck = stalled & (eta <= settings.min_step)
                eta = np.where(stalled, np.maximum(eta / 2, settings.min_step), eta)
                # every restart continues from its best point (APGD) ...
                X = cur_X.copy()
                P = {n: cur_P[n].copy() for n in names}
                # ... and one stuck at the smallest step starts afresh at a uniform random point
                for b in np.flatnonzero(stuck):
                    X[b] = rng.uniform(x_lo, x_hi)
                    for n in names:
                        P[n][b] = rng.uniform(lo[n], hi[n])
                    cur_v[b], eta[b], mx[b] = -np.inf, settings.step0, 0.0
                    for n in names:
                        mp[n][b] = 0.0
            last_ck = cur_v.copy()
        if move_x:
            X = np.clip(X + eta[:, None] * np.sign(mx) * wx, x_lo, x_hi)
        for n in names:
            step = np.sign(mp[n])
            step *= wp[n]
            step *= eta.reshape((B,) + (1,) * lo[n].ndim)
            step += P[n]
            P[n] = np.clip(step, lo[n], hi[n], out=step)
    out = []
    for gi in range(G):
        sel = np.flatnonzero(group_of == gi)
        b = int(sel[np.argmax(best_v[sel])])
        out.append(Candidate(best_X[b].copy(), {n: best_P[n][b].copy() for n in names}, float(best_v[b])))
    return sorted(out, key=lambda c: -c.value)
