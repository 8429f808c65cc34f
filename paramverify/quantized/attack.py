"""Falsifiers for an int8 lowering: label disagreements and large output gaps near the boundary.

The int8 model is a step function of its input (every activation is
rounded), so gradient ascent on its own outputs stalls.  Its decision
boundary, though, lies close to the float model's: where the float label
changes inside the region, or where the float margin gets small, the two
boundaries cross at slightly different places.  So:

* :func:`label_disagreement` descends the *float* margin (projected sign
  gradient, from the centre and random starts) and, at every iterate,
  evaluates both models on the iterate and on random points around it;
  where the float margin gets close to the int8-float gap it continues with
  a search over box coordinates (random moves, one-coordinate sweeps and walks
  along the int8 model's flat steps) scored on the int8 file itself.  A
  point where the int8 model does not keep the float label is snapped and
  replayed on onnxruntime on both files (``replay.confirm``, or
  :func:`confirm_int8` where only the file shows it) before it is returned.
  Candidates are scored with both files on onnxruntime (:func:`float_runner`,
  :func:`int8_runner`), several times faster on a batch than the float64
  lowering; only the replay decides what is reported.
* :func:`gap_points` returns candidate inputs for the largest
  ``|int8(x) - float(x)|``: box corners, uniform samples and moves along
  the straight-through gradient of each output gap from the best of them.

Everything here only proposes points; what is reported is replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnxruntime as ort

from paramverify.bounds.falsify import evaluate, nominal_margin, output_change
from paramverify.bounds.interval import down
from paramverify.errors import check
from paramverify.options import Deadline, ProgressSink
from paramverify.properties import LabelInvariance, Problem, label_kept
from paramverify.replay import (
    confirm,
    fixed_batch_of_one,
    input_dtype,
    replay_witness,
    run_pair,
    snap,
    snap_witness,
    witness,
)
from paramverify.results import Counterexample


def in_region(problem: Problem, x: np.ndarray, params: dict[str, np.ndarray]) -> bool:
    """Does (x, params) lie in the region and the box?  (``searches.in_region``; that module imports this one.)"""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return bool(np.all(x >= problem.region.lo) and np.all(x <= problem.region.hi) and problem.box.contains(params))


def int8_params(problem: Problem) -> dict[str, np.ndarray]:
    """The int8 copy's parameter values (the box of a concrete copy is a point)."""
    return {n: np.asarray(problem.box.lo[n], dtype=np.float64) for n in problem.box.names}


def int8_runner(problem: Problem) -> Callable[[np.ndarray], np.ndarray]:
    """``xs [N, d] -> [N, k]``: the int8 file itself on onnxruntime (one session, default
    optimizations as deployed; a batch per run unless the grid is dynamic or the file fixes
    its batch to 1).

    The search scores points with it rather than with the float64 lowering: at
    an exact rounding tie (an average of grid values) onnxruntime's kernels may
    round the other way, and a counterexample must hold on the file.
    """
    check(problem.graph.replay_models is not None, "int8_runner needs an int8 lowering")
    return _file_runner(problem, problem.graph.replay_models[1])  # type: ignore[index]


def float_runner(problem: Problem) -> Callable[[np.ndarray], np.ndarray]:
    """``xs [N, d] -> [N, k]``: the float file on onnxruntime (float32), a batch per run.

    The searches score candidates with it: it is several times faster than the
    float64 lowering on a batch.  Only scores come from it; a point is reported
    after ``confirm`` / :func:`confirm_int8` re-evaluate it in float64.
    """
    check(problem.graph.replay_models is not None, "float_runner needs an int8 lowering")
    return _file_runner(problem, problem.graph.replay_models[0])  # type: ignore[index]


def _file_runner(problem: Problem, model: onnx.ModelProto) -> Callable[[np.ndarray], np.ndarray]:
    g = problem.graph
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = next(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    out = model.graph.output[0].name
    # one row per run: dynamic quantization picks its grid from the whole tensor, and a file may fix its batch to 1
    per_sample = any(n.op_type == "DynamicQuantizeLinear" for n in model.graph.node) or fixed_batch_of_one(model, name)
    dtype = input_dtype(g)

    def run(xs: np.ndarray) -> np.ndarray:
        batch = g.as_batch(xs).astype(dtype)
        parts = [batch[i : i + 1] for i in range(len(batch))] if per_sample else [batch]
        ys = [np.asarray(sess.run([out], {name: b})[0], dtype=np.float64).reshape(len(b), -1) for b in parts]
        return np.concatenate(ys, axis=0)

    return run


def confirm_int8(problem: Problem, x: np.ndarray) -> Counterexample | None:
    """A label counterexample of the deployed files: ``x`` snapped to the input dtype inside the
    region, onnxruntime on both files shows the int8 model not keeping the float label, and
    the float model's float64 evaluation gives onnxruntime's float label.

    Unlike ``replay.confirm`` the float64 lowering of the int8 model is not
    asked to agree: at an exact rounding tie onnxruntime's kernels may round
    the other way, and the file is what is deployed (the proofs enclose both
    roundings there).
    """
    params = int8_params(problem)
    xs, _ = snap_witness(problem, x, params)
    if not in_region(problem, xs, params):
        return None
    g = problem.graph
    y0 = g.evaluate(xs)
    r0, rq = run_pair(g, xs)
    if label_kept(r0, rq, problem.level)[0] or np.argmax(y0[0]) != np.argmax(r0[0]) or not label_kept(y0, r0, problem.level)[0]:
        return None
    return Counterexample(xs, params, y0[0], rq[0], replayed=True, onnxruntime_outputs=(r0[0], rq[0]),
                          note="int8 outputs are the int8 file's on onnxruntime")


#: weight of the float margin in the coordinate search's score (orders the points of one int8 step)
TIE_BREAK = 0.01


def _margins(y: np.ndarray, c: int) -> np.ndarray:
    """Per row: output ``c`` minus the largest other output."""
    others = y.copy()
    others[:, c] = -np.inf
    return y[:, c] - others.max(axis=1)


def _depth(y_f: np.ndarray, y_q: np.ndarray, c: int) -> np.ndarray:
    """Per row: how deep inside a disagreement about class ``c`` the point lies (>= 0: the float
    model gives ``c`` and the int8 model does not, or the other way round; larger is clearer)."""
    fm, qm = _margins(y_f, c), _margins(y_q, c)
    return np.maximum(np.minimum(fm, -qm), np.minimum(-fm, qm))


@dataclass(frozen=True, eq=False)
class LabelSearch:
    """What :func:`label_disagreement` found: a replayed ``counterexample`` (or None) and,
    for the float class ``cls`` at the box's centre, the ``lowest_margin``
    (``int8_c - max_j int8_j``, onnxruntime on the int8 file) seen at ``lowest_input``, a
    concrete input of the box (``inf`` and None when no point was scored)."""

    counterexample: Counterexample | None
    cls: int | None = None
    lowest_margin: float = float("inf")
    lowest_input: np.ndarray | None = None


def label_disagreement(problem: Problem, deadline: Deadline, seed: int = 0, restarts: int = 6, steps: int = 30,
                       neighbours: int = 32, max_replays: int = 4, batch: int = 256, rounds: int = 2000,
                       restart_after: int = 40, progress: ProgressSink | None = None) -> LabelSearch:
    """A replayed input where the int8 model does not keep the float label, if one is found
    (:class:`LabelSearch`, which also keeps the lowest int8 margin seen).

    Both phases work in the region rounded inwards to the input dtype (every point
    tried is read inside the region by the file).  Phase 1 descends the float margin
    of the centre's class ``c`` (see the module docstring).  Phase 2 runs when the
    smallest float margin seen is within twice the largest int8-float gap seen (plus
    0.5) of 0: a search over box coordinates that drives the int8 margin of ``c``
    down (the rounding errors of the int8 model line up at such coordinate choices,
    which gradients of the step function cannot see).  Each of at most ``rounds``
    rounds (the whole search takes about 15 s on the CNN of ``bench_int8.py``) scores ``batch``
    random moves of 1 to 7 coordinates (to a box end or a uniform value) and a
    sweep of 16 values of each of up to 64 coordinates; it moves to the best point when that is better (int8 margin first, 0.01 x the float
    margin to order the points of one int8 step), else to a random point of the
    same int8 step or a lower one (the int8 margin is flat over large sets; a walk
    along them finds the next step down), and starts again, alternately from the
    descent's lowest point and a random one, after ``restart_after`` rounds without
    a lower step.  At most ``max_replays`` points are replayed
    during the search; if none confirms and the lowest int8 margin seen is <= 0, that point
    is replayed too before the search reports no counterexample.  ``progress`` gets a line per restart and
    every 20 batches of the second phase (the lowest int8 margin so far).
    """
    g, region = problem.graph, problem.region
    dtype = input_dtype(g)
    lo, hi = _search_box(problem)
    width = hi - lo
    if not np.any(width > 0) or g.n_outputs < 2:
        return LabelSearch(None)
    rng = np.random.default_rng(seed)
    params = int8_params(problem)
    centre = (lo + hi) / 2
    c = int(np.argmax(g.evaluate(centre)[0]))
    objective = nominal_margin(c, problem.level, False)
    tried = [0]
    run_int8, run_float = int8_runner(problem), float_runner(problem)
    low = [np.inf, None]  # the lowest int8 margin of c seen, and where

    def int8(xs: np.ndarray) -> np.ndarray:
        y_q = run_int8(xs)
        # only inputs whose float32 value (what the file reads) lies in the region count as witnesses:
        # all of them, except where a zero-width coordinate has no float32 value in the region
        cast = np.asarray(xs, dtype=dtype).astype(np.float64)
        inside = np.all((cast >= region.lo) & (cast <= region.hi), axis=1)
        if np.any(inside):
            m = np.where(inside, _margins(y_q, c), np.inf)
            i = int(np.argmin(m))
            if m[i] < low[0]:
                low[0], low[1] = float(m[i]), cast[i].copy()
        return y_q

    def result(ce: Counterexample | None) -> LabelSearch:
        if ce is None and low[0] <= 0:
            # the lowest point seen does not keep c on the int8 file; the replay budget may have run
            # out before it came up, so it gets one replay of its own
            ce = confirm_int8(problem, low[1])
        return LabelSearch(ce, c, low[0], low[1])

    def report(stage: str) -> None:
        if progress is not None and np.isfinite(low[0]):
            progress.update(f"int8 falsifier, {stage}: lowest margin {low[0]:.4g}")

    def replay(xs: np.ndarray, y_f: np.ndarray, y_q: np.ndarray) -> Counterexample | None:
        bad = np.flatnonzero(~label_kept(y_f, y_q, problem.level))
        depth = _depth(y_f[bad], y_q[bad], c)
        for i in bad[np.argsort(-depth)]:
            if tried[0] >= max_replays:
                return None
            tried[0] += 1
            ce = confirm(problem, LabelInvariance(), xs[i], params) or confirm_int8(problem, xs[i])
            if ce is not None:
                return ce
        return None

    low_x, low_m, gap = centre, np.inf, 0.0
    for r in range(restarts):
        report(f"descent {r + 1}/{restarts}")
        x = centre.copy() if r == 0 else rng.uniform(lo, hi)
        eta = 0.125
        for _ in range(steps):
            if deadline.expired():
                return result(None)
            _, xv, _, _ = evaluate(g, problem.box, x, params, objective)
            u = rng.uniform(-0.3, 0.3, (neighbours, x.size)) * width
            xs = np.clip(np.concatenate([x[None], x[None] + u]), lo, hi)
            y_f, y_q = run_float(xs), int8(xs)
            gap = max(gap, float(np.max(np.abs(y_q - y_f))))
            fm = _margins(y_f, c)
            if fm[0] < low_m:
                low_x, low_m = x.copy(), float(fm[0])
            ce = replay(xs, y_f, y_q)
            if ce is not None:
                return result(ce)
            if xv.grad is None:
                break
            x = np.clip(x - eta * np.sign(np.asarray(xv.grad).reshape(-1)) * width, lo, hi)
            eta = max(eta * 0.9, 0.01)
    if low_m > 2 * gap + 0.5:
        return result(None)

    def key(y_f: np.ndarray, y_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # phase 1 drove the float margin down; here the int8 margin of c is driven down (a
        # disagreement once it is <= 0 while the float model keeps c).  It is a step function
        # of x; a small share of the float margin, which is continuous, orders the points of
        # one step: towards the float boundary
        level = -_margins(y_q, c)
        return level, level - TIE_BREAK * _margins(y_f, c)

    x, level, best, stall = low_x, -np.inf, -np.inf, restart_after  # round 0 starts at low_x
    for n in range(rounds):
        if deadline.expired() or tried[0] >= max_replays:
            break
        if n % 20 == 0:
            report(f"coordinates {n + 1}")
        if stall >= restart_after:  # long on one plateau of the int8 step function: start again
            x = low_x if n % (2 * restart_after) < restart_after else rng.uniform(lo, hi)
            level, best = (float(v[0]) for v in key(run_float(x[None]), int8(x[None])))
            stall = 0
        cand = np.concatenate([_coordinate_moves(x, lo, hi, rng, batch), _coordinate_sweep(x, lo, hi, rng)])
        y_f, y_q = run_float(cand), int8(cand)
        ce = replay(cand, y_f, y_q)
        if ce is not None:
            return result(ce)
        levels, k = key(y_f, y_q)
        b = int(np.argmax(k))
        if k[b] > best:
            x, level, best, stall = cand[b], float(levels[b]), float(k[b]), (0 if levels[b] > level else stall + 1)
        else:  # a random step along the plateau (a point whose int8 margin is x's or lower)
            same = np.flatnonzero(levels >= level)
            if same.size:
                i = int(rng.choice(same))
                x, level, best = cand[i], float(levels[i]), float(k[i])
            stall += 1
    return result(None)


def gap_points(problem: Problem, deadline: Deadline, seed: int = 0, samples: int = 8192, steps: int = 12,
               top: int = 4, rounds_s: float = 3.0) -> np.ndarray:
    """Candidate inputs ``[top, d]`` for a large ``max_o |int8(x)_o - float(x)_o|`` (unproved).

    Box corners (a quarter of the samples: the rounding errors of many inputs line
    up there most often) and uniform samples, then straight-through-gradient moves
    of the most promising (output, sign) pairs, then a random coordinate search
    from the best point for up to ``rounds_s`` seconds (a third of what is left at
    most); all scored with the int8 file on onnxruntime against the float model,
    best first.
    """
    g = problem.graph
    lo, hi = _search_box(problem)
    rng = np.random.default_rng(seed)
    params = int8_params(problem)
    int8 = int8_runner(problem)
    u = rng.uniform(0, 1, (samples, lo.size))
    u[: samples // 4] = np.round(u[: samples // 4])
    xs = lo + u * (hi - lo)
    flt = float_runner(problem)
    gap = int8(xs) - flt(xs)
    out, scores = [xs], [np.max(np.abs(gap), axis=1)]
    k = gap.shape[1]
    for o in np.argsort(-np.abs(gap).max(axis=0))[: min(k, 4)]:
        i = int(np.argmax(np.abs(gap[:, o])))
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
            scores.append(np.max(np.abs(int8(cand) - flt(cand)), axis=1))
            x = cand[0]
            eta = max(eta * 0.7, 0.02)
    allx, alls = np.concatenate(out), np.concatenate(scores)
    # random coordinate search from the best point (as in label_disagreement's second phase)
    left = deadline.remaining()
    stop = deadline.within(rounds_s if left is None else min(rounds_s, left / 3))
    i = int(np.argmax(alls))
    x, best = allx[i], float(alls[i])
    moved_x, moved_s = [], []
    while not stop.expired():
        cand = _coordinate_moves(x, lo, hi, rng, 256)
        sc = np.max(np.abs(int8(cand) - flt(cand)), axis=1)
        b = int(np.argmax(sc))
        if sc[b] > best:
            best, x = float(sc[b]), cand[b]
            moved_x.append(x)
            moved_s.append(best)
    if moved_x:
        allx, alls = np.concatenate([allx, np.stack(moved_x)]), np.concatenate([alls, moved_s])
    return allx[np.argsort(-alls)[:top]]


def _search_box(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The falsifiers' box: the region's ends rounded inwards to the input dtype, so that the file
    reads every point tried inside the region (a float64 end can round out of it in float32, and a
    search that drifts to such ends would score points no witness can use)."""
    lo, hi, dtype = problem.region.lo, problem.region.hi, input_dtype(problem.graph)
    return snap(lo, lo, hi, dtype), snap(hi, lo, hi, dtype)


def _coordinate_sweep(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, values: int = 16,
                      coordinates: int = 64) -> np.ndarray:
    """Copies of ``x`` with one coordinate set to each of ``values`` evenly spaced points of its
    range, for ``coordinates`` coordinates (all when there are no more; else a random choice)."""
    d = x.size
    idx = np.arange(d) if d <= coordinates else rng.choice(d, size=coordinates, replace=False)
    grid = np.linspace(0.0, 1.0, values)
    cand = np.repeat(x[None], idx.size * values, axis=0)
    rows = np.arange(cand.shape[0])
    cols = np.repeat(idx, values)
    cand[rows, cols] = lo[cols] + np.tile(grid, idx.size) * (hi[cols] - lo[cols])
    return cand


def _coordinate_moves(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` copies of ``x``, each with 1-7 random coordinates moved to a box end (even rows) or a uniform value."""
    d = x.size
    k = np.minimum(rng.integers(1, 8, n), d)
    # row j moves the k_j coordinates whose random keys rank lowest in that row (distinct coordinates)
    ranks = np.argsort(np.argsort(rng.random((n, d)), axis=1), axis=1)
    moved = ranks < k[:, None]
    ends = np.where(rng.random((n, d)) < 0.5, lo, hi)
    values = np.where((np.arange(n) % 2 == 0)[:, None], ends, rng.uniform(lo, hi, (n, d)))
    return np.where(moved, values, x[None])


def best_gap(problem: Problem, deadline: Deadline, seed: int = 0) -> tuple[float, Counterexample] | None:
    """The best :func:`replayed_gap` among the :func:`gap_points` candidates."""
    best: tuple[float, Counterexample] | None = None
    for x in gap_points(problem, deadline, seed=seed):
        got = replayed_gap(problem, x)
        if got is not None and (best is None or got[0] > best[0]):
            best = got
    return best


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
