"""Checking a VNN-LIB property: input branch and bound with sound linear bounds.

For each case of a :class:`~paramverify.vnnlib.VnnProperty` (an input box and
an unsafe output set ``OR_j (C_j y <= d_j)``), the question is whether some
input of the box and some parameter of the problem's box give outputs in the
unsafe set.  Boxes are bounded with CROWN with perturbed weights
(:class:`~paramverify.bounds.crown.LinearBounds`; interval bounds where it
cannot trace the graph): a conjunction is impossible on a box when one of
its rows has a proved lower bound ``C_r y > d_r``; a box is certified when
every conjunction is.  Undecided boxes are probed (centre, corners, random
points) and split along their widest input.

Guarantees: ``Verified`` (VNN-COMP ``unsat``) only when every box is
certified by outward-rounded bounds; ``Falsified`` (``sat``) only with an
input (snapped to float32 inside the box) whose output is unsafe both in
float64 and on onnxruntime (for an int8 lowering: onnxruntime on the int8
model).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from paramverify.bounds.crown import LinearBounds
from paramverify.bounds.interval import Interval, imatmul
from paramverify.bounds.sound import box_outputs
from paramverify.errors import CapabilityError, SpecError
from paramverify.options import Deadline, Options
from paramverify.properties import Problem
from paramverify.replay import input_dtype, run_onnxruntime, run_pair, snap
from paramverify.results import Counterexample, Falsified, Unknown, Verdict, Verified
from paramverify.vnnlib import Case

_METHOD = "bounds: CROWN with perturbed weights + input branch-and-bound over the VNN-LIB box"
_BATCH = 16


def _lower_rows(problem: Problem, C: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sound lower bounds ``[N, rows]`` of ``C y`` over input boxes ``[N, d]`` (all parameters of the box)."""
    g, box = problem.graph, problem.box
    out = box_outputs(g, box, lo, hi).p
    iv = imatmul(Interval(out.lo, out.hi), C.T)
    lower = iv.lo
    if np.array_equal(lo, hi):
        return lower
    try:
        lb = LinearBounds(g, box, lo, hi)
        lb.refine()
        u = lb.upper([(lb.y, lb.rows(lb.y, -C))])  # [rows, N] upper bounds of -C y
        lower = np.maximum(lower, -u.T)
    except CapabilityError:
        pass
    return lower


def _outputs(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    return problem.graph.evaluate(x, params)


def _replay(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    g = problem.graph
    if g.replay_models is not None:
        return run_pair(g, x)[1]
    return run_onnxruntime(g, x, params)


def _param_choices(problem: Problem, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    box = problem.box
    fixed = all(np.array_equal(box.lo[n], box.hi[n]) for n in box.names)
    if fixed:
        return [{n: box.lo[n] for n in box.names}]
    nominal = {n: np.clip(box.nominal[n], box.lo[n], box.hi[n]) for n in box.names}
    return [nominal, box.sample(rng), box.sample(rng)]


def _probe(problem: Problem, case: Case, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> Counterexample | None:
    """Centre, a few corners and random points of one box; a replayed unsafe point or None."""
    d = lo.size
    pts = [(lo + hi) / 2, lo, hi]
    pts += [np.where(rng.random(d) < 0.5, lo, hi) for _ in range(2)]
    pts += [rng.uniform(lo, hi) for _ in range(3)]
    xs = np.stack([snap(p, lo, hi, input_dtype(problem.graph)) for p in pts])
    for params in _param_choices(problem, rng):
        y = _outputs(problem, xs, params)
        bad = np.flatnonzero(case.violated(y))
        for i in bad[:2]:
            r = _replay(problem, xs[i], params)
            if case.violated(r)[0]:
                y0 = problem.graph.evaluate(xs[i])
                return Counterexample(xs[i], dict(params), y0[0], r[0], replayed=True)
    return None


def check_case(problem: Problem, case: Case, options: Options, deadline: Deadline) -> Verdict:
    """Verified (unsat), Falsified (sat, replayed) or Unknown for one case."""
    t0 = time.monotonic()
    g = problem.graph
    if case.lo.size != g.input_size:
        raise SpecError("vnnlib", f"declares {case.lo.size} inputs but the model takes {g.input_size}", "use the property written for this network")
    k = g.n_outputs
    C = np.concatenate([c.C for c in case.unsafe]) if case.unsafe else np.zeros((0, k))
    if C.shape[1] != k:
        raise SpecError("vnnlib", f"declares {C.shape[1]} outputs but the model has {k}", "use the property written for this network")
    d = np.concatenate([c.d for c in case.unsafe])
    owner = np.concatenate([np.full(len(c.d), j) for j, c in enumerate(case.unsafe)])
    rng = np.random.default_rng(options.seed)
    queue = [(case.lo.copy(), case.hi.copy())]
    boxes = 0
    while queue:
        if deadline.expired():
            return Unknown(f"timeout: {len(queue)} input boxes left undecided", _METHOD + f" ({boxes} boxes)", time.monotonic() - t0)
        if boxes >= options.max_splits:
            return Unknown(f"stopped at max_splits boxes ({len(queue)} left)", _METHOD, time.monotonic() - t0)
        batch, queue = queue[-_BATCH:], queue[:-_BATCH]
        lo = np.stack([b[0] for b in batch])
        hi = np.stack([b[1] for b in batch])
        boxes += len(batch)
        low = _lower_rows(problem, C, lo, hi) if len(d) else np.zeros((len(batch), 0))
        for i, (blo, bhi) in enumerate(batch):
            ruled_out = [bool(np.any(low[i, owner == j] > d[owner == j])) for j in range(len(case.unsafe))]
            if all(ruled_out):
                continue
            cex = _probe(problem, case, blo, bhi, rng)
            if cex is not None:
                return Falsified(cex, _METHOD + f" ({boxes} boxes)", time.monotonic() - t0)
            width = bhi - blo
            if not np.any(width > 0):
                return Unknown("a degenerate box could be neither certified nor refuted", _METHOD, time.monotonic() - t0)
            ax = int(np.argmax(width))
            mid = blo[ax] + width[ax] / 2
            left_hi, right_lo = bhi.copy(), blo.copy()
            left_hi[ax], right_lo[ax] = mid, mid
            queue.extend([(blo, left_hi), (right_lo, bhi)])
    return Verified(_METHOD + f" ({boxes} boxes)", time.monotonic() - t0)
