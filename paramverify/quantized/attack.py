"""Falsifiers for an int8 lowering: label disagreements and large output gaps near the boundary.

The int8 model is a step function of its input (every activation is
rounded), so gradient ascent on its own outputs stalls.  Its decision
boundary, though, lies close to the float model's: where the float label
changes inside the region, or where the float margin gets small, the two
boundaries cross at slightly different places.  So:

* :func:`label_disagreement` descends the *float* margin (projected sign
  gradient, from the centre and random starts) and, at every iterate,
  evaluates both models on the iterate and on random points around it; a
  point where the two labels differ is snapped and replayed on onnxruntime
  on both files (``replay.confirm``) before it is returned.
* :func:`gap_points` returns candidate inputs for the largest
  ``|int8(x) - float(x)|``: box corners, uniform samples and moves along
  the straight-through gradient of each output gap from the best of them.

Everything here only proposes points; what is reported is replayed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from paramverify.bounds.falsify import evaluate, nominal_margin, output_change
from paramverify.options import Deadline
from paramverify.properties import LabelInvariance, Problem
from paramverify.bounds.interval import down
from paramverify.replay import confirm, replay_witness, witness
from paramverify.results import Counterexample


def in_region(problem: Problem, x: np.ndarray, params: dict[str, np.ndarray]) -> bool:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return bool(np.all(x >= problem.region.lo) and np.all(x <= problem.region.hi) and problem.box.contains(params))


def int8_params(problem: Problem) -> dict[str, np.ndarray]:
    """The int8 copy's parameter values (the box of a concrete copy is a point)."""
    return {n: np.asarray(problem.box.lo[n], dtype=np.float64) for n in problem.box.names}


def _disagreement_depth(y_f: np.ndarray, y_q: np.ndarray) -> np.ndarray:
    """Per row: how clearly each model prefers its own label over the other's (> 0: they disagree)."""
    cf, cq = np.argmax(y_f, axis=1), np.argmax(y_q, axis=1)
    rows = np.arange(len(y_f))
    a = y_f[rows, cf] - y_f[rows, cq]
    b = y_q[rows, cq] - y_q[rows, cf]
    return np.where(cf != cq, np.minimum(a, b) + 1e-12, -np.inf)


def label_disagreement(problem: Problem, deadline: Deadline, seed: int = 0, restarts: int = 6, steps: int = 30,
                       neighbours: int = 32, max_replays: int = 4) -> Counterexample | None:
    """A replayed input where label(int8) != label(float), or None (see the module docstring)."""
    g, region = problem.graph, problem.region
    lo, hi = region.lo, region.hi
    width = hi - lo
    if not np.any(width > 0) or g.n_outputs < 2:
        return None
    rng = np.random.default_rng(seed)
    params = int8_params(problem)
    centre = (lo + hi) / 2
    c = int(np.argmax(g.evaluate(centre)[0]))
    objective = nominal_margin(c, problem.level, False)
    found: list[tuple[float, np.ndarray]] = []
    tried = 0
    for r in range(restarts):
        if deadline.expired():
            break
        x = centre.copy() if r == 0 else rng.uniform(lo, hi)
        eta = 0.125
        for _ in range(steps):
            if deadline.expired():
                break
            _, xv, _, _ = evaluate(g, problem.box, x, params, objective)
            u = rng.uniform(-0.3, 0.3, (neighbours, x.size)) * width
            xs = np.clip(np.concatenate([x[None], x[None] + u]), lo, hi)
            depth = _disagreement_depth(g.evaluate(xs), g.evaluate(xs, params))
            i = int(np.argmax(depth))
            if np.isfinite(depth[i]):
                found.append((float(depth[i]), xs[i].copy()))
            if xv.grad is None:
                break
            x = np.clip(x - eta * np.sign(np.asarray(xv.grad).reshape(-1)) * width, lo, hi)
            eta = max(eta * 0.9, 0.01)
        found.sort(key=lambda t: -t[0])
        while found and tried < max_replays:
            tried += 1
            _, xc = found.pop(0)
            ce = confirm(problem, LabelInvariance(), xc, params)
            if ce is not None:
                return ce
        found.clear()
    return None


def gap_points(problem: Problem, deadline: Deadline, seed: int = 0, samples: int = 4096, steps: int = 12) -> np.ndarray:
    """Candidate inputs ``[M, d]`` for a large ``max_o |int8(x)_o - float(x)_o|`` (unproved)."""
    g, region = problem.graph, problem.region
    lo, hi = region.lo, region.hi
    rng = np.random.default_rng(seed)
    params = int8_params(problem)
    u = rng.uniform(0, 1, (samples, lo.size))
    u[: samples // 2] = np.round(u[: samples // 2])  # corners: the rounding errors line up there most often
    xs = lo + u * (hi - lo)
    gap = g.evaluate(xs, params) - g.evaluate(xs)
    out = [xs]
    k = gap.shape[1]
    score = np.abs(gap)
    # ascend each of the most promising (output, sign) pairs from its best sample
    flat = np.argsort(-score.max(axis=0))[: min(k, 4)]
    for o in flat:
        i = int(np.argmax(score[:, o]))
        sign = 1.0 if gap[i, o] >= 0 else -1.0
        x = xs[i].copy()
        eta = 0.5
        for _ in range(steps):
            if deadline.expired():
                break
            _, xv, _, _ = evaluate(g, problem.box, x, params, output_change(int(o), sign))
            if xv.grad is None:
                break
            step = np.sign(np.asarray(xv.grad).reshape(-1)) * (hi - lo)
            cand = np.clip(x[None] + np.array([eta, eta / 2, eta / 4])[:, None] * step[None], lo, hi)
            out.append(cand)
            x = cand[0]
            eta = max(eta * 0.7, 0.02)
    return np.concatenate(out)


#: relative allowance for the float model's float32 arithmetic on onnxruntime (outputs of size ~1 to ~100)
ORT_FLOAT_REL = 2.0**-16


def replayed_gap(problem: Problem, x: np.ndarray) -> tuple[float, Counterexample] | None:
    """``max_o |int8(x)_o - float(x)_o|`` at the snapped ``x``, as both the float64 lowering and
    onnxruntime on both files compute it: the smaller of the two, less a float32 allowance.

    At an exact rounding tie (an average of grid values, say) the sound point
    enclosure keeps both neighbours and its lower end collapses; the concrete
    gap of the deployed files is what a bracket's lower end must be reached by.
    None when the two computations disagree on the sign of the gap (nothing to report).
    """
    params = int8_params(problem)
    w = replay_witness(problem, witness(problem, x, params))
    if w.onnxruntime_outputs is None or not in_region(problem, w.input, params):
        return None
    g = problem.graph
    y0, yq = g.evaluate(w.input)[0], g.evaluate(w.input, params)[0]  # the int8 copy's exact (dequantized) values
    w = replace(w, parameters=params, nominal_output=y0, perturbed_output=yq)
    r0, rp = w.onnxruntime_outputs
    gap64 = float(np.max(np.abs(yq - y0)))
    gap_ort = float(np.max(np.abs(rp - r0)))
    slack = ORT_FLOAT_REL * (1.0 + float(np.max(np.abs(w.nominal_output))))
    value = float(down(min(gap64, gap_ort) - slack))
    return (value, w) if value > 0 else None
