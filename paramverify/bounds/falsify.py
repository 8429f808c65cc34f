"""Falsifier: projected sign-gradient ascent over (parameters, input) in their boxes.

Finds concrete points that make an objective large: the output change
``s * (f_p(x) - f_p0(x))_o``, or a label-flip score.  Gradients come from
:mod:`paramverify.bounds.autodiff`, so every op is supported.  Results are
*candidates* only: the engine snaps them with ``replay.witness`` and
re-evaluates them soundly before using them as a bracket end, and replays
them with ``replay.confirm`` before calling anything Falsified.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.bounds.autodiff import AutodiffKernel, Tape, Var, value_of
from paramverify.ir import Graph
from paramverify.options import Deadline
from paramverify.specs import ParamBox

#: objective(kernel, y_perturbed, y_nominal) -> value to maximise (summed if not scalar)
Objective = Callable[[AutodiffKernel, Any, Any], Any]


@dataclass(frozen=True, eq=False)
class Candidate:
    """A concrete (input, parameters) point and its float64 objective value (unproved)."""

    x: np.ndarray
    params: Mapping[str, np.ndarray]
    value: float


# ---------------------------------------------------------------------------
# objectives


def output_change(output: int, sign: float) -> Objective:
    """``sign * (f_p(x) - f_p0(x))[output]``."""

    def obj(k: AutodiffKernel, yp: Any, y0: Any) -> Any:
        diff = k.sub(_flat(k, yp), _flat(k, y0))
        return k.mul(k.take(diff, np.array([output]), axis=1), float(sign))

    return obj


def flip_score(cls: int, level: float, binary: bool, sigma: float | None = None) -> Objective:
    """Positive (binary class 1: > 0, class 0: >= 0) exactly when the label of class ``cls`` flips.

    Binary: class 1 flips when ``f_p < level`` (score ``level - f_p``), class 0
    when ``f_p >= level`` (score ``f_p - level``).  k classes: score
    ``max_{j != cls} f_p[j] - f_p[cls]`` (flip when >= 0).  With ``sigma``
    the score is ``min(flip score, margin_0 - sigma)`` so that maximising it
    also keeps the nominal margin at least ``sigma``.
    """

    def obj(k: AutodiffKernel, yp: Any, y0: Any) -> Any:
        fp, f0 = _flat(k, yp), _flat(k, y0)
        if binary:
            score = k.sub(level, fp) if cls == 1 else k.sub(fp, level)
            m0 = k.sub(f0, level) if cls == 1 else k.sub(level, f0)
        else:
            vp = value_of(fp)[0].copy()
            vp[cls] = -np.inf
            j = int(np.argmax(vp))
            pick_c = k.take(fp, np.array([cls]), axis=1)
            score = k.sub(k.take(fp, np.array([j]), axis=1), pick_c)
            v0 = value_of(f0)[0].copy()
            v0[cls] = -np.inf
            j0 = int(np.argmax(v0))
            m0 = k.sub(k.take(f0, np.array([cls]), axis=1), k.take(f0, np.array([j0]), axis=1))
        if sigma is None:
            return score
        gap = k.sub(m0, sigma)
        return score if float(np.sum(value_of(score))) <= float(np.sum(value_of(gap))) else gap

    return obj


def nominal_margin(cls: int, level: float, binary: bool) -> Objective:
    """The nominal margin of class ``cls`` (``f0 - l``, ``l - f0`` or top-1 minus runner-up)."""

    def obj(k: AutodiffKernel, yp: Any, y0: Any) -> Any:
        f0 = _flat(k, y0)
        if binary:
            return k.sub(f0, level) if cls == 1 else k.sub(level, f0)
        v0 = value_of(f0)[0].copy()
        v0[cls] = -np.inf
        j0 = int(np.argmax(v0))
        return k.sub(k.take(f0, np.array([cls]), axis=1), k.take(f0, np.array([j0]), axis=1))

    return obj


def _flat(k: AutodiffKernel, y: Any) -> Any:
    shape = k.shape(y)
    return k.reshape(y, (shape[0], int(np.prod(shape[1:], dtype=np.int64))))


# ---------------------------------------------------------------------------
# search


def evaluate(graph: Graph, box: ParamBox, x: np.ndarray, params: Mapping[str, np.ndarray], objective: Objective) -> tuple[float, Any, dict[str, Any], Any]:
    tape = Tape()
    k = AutodiffKernel(tape)
    xv = tape.var(graph.as_batch(x))
    pv = {n: tape.var(params[n]) for n in box.names}
    yp = graph.run(k, xv, pv)
    y0 = graph.run(k, xv)
    obj = objective(k, yp, y0)
    val = float(np.sum(value_of(obj)))
    if isinstance(obj, Var):
        tape.backward(obj)
    return val, xv, pv, obj


def ascend(
    graph: Graph,
    box: ParamBox,
    x_lo: np.ndarray,
    x_hi: np.ndarray,
    x: np.ndarray,
    params: Mapping[str, np.ndarray],
    objective: Objective,
    steps: int = 10,
) -> Candidate:
    """Projected sign-gradient ascent from (x, params); returns the best point visited.

    Parameter steps start at the full box width (a jump to the gradient-sign
    corner, the optimum whenever the objective is multilinear in the
    parameters) and then halve; input steps start at a quarter of the box.
    """
    x = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), x_lo, x_hi)
    p = {n: np.clip(np.asarray(params[n], dtype=np.float64), box.lo[n], box.hi[n]) for n in box.names}
    width_x = x_hi - x_lo
    move_x = bool(np.any(width_x > 0))
    best = Candidate(x, p, -np.inf)
    eta_x = 0.25
    for it in range(steps):
        val, xv, pv, obj = evaluate(graph, box, x, p, objective)
        if val > best.value:
            best = Candidate(x.copy(), {n: v.copy() for n, v in p.items()}, val)
        if not isinstance(obj, Var):
            break
        step_p = 1.0 if it < 2 else 0.5 ** (it - 1)
        new_p = {}
        for n in box.names:
            g = pv[n].grad
            g = np.zeros_like(p[n]) if g is None else g
            new_p[n] = np.clip(p[n] + step_p * np.sign(g) * (box.hi[n] - box.lo[n]), box.lo[n], box.hi[n])
        p = new_p
        if move_x and xv.grad is not None:
            gx = np.asarray(xv.grad).reshape(-1)
            x = np.clip(x + eta_x * np.sign(gx) * width_x, x_lo, x_hi)
            eta_x *= 0.6
    return best


def start_points(x_lo: np.ndarray, x_hi: np.ndarray, rng: np.random.Generator, n_random: int, max_corners: int = 16) -> list[np.ndarray]:
    """Centre, corners (all when few, else random ones) and uniform random points of the box."""
    pts = [(x_lo + x_hi) / 2]
    if np.any(x_hi > x_lo):
        d = x_lo.size
        if 2**d <= max_corners:
            for bits in itertools.product((0, 1), repeat=d):
                b = np.array(bits, dtype=bool)
                pts.append(np.where(b, x_hi, x_lo))
        else:
            for _ in range(max_corners):
                b = rng.random(d) < 0.5
                pts.append(np.where(b, x_hi, x_lo))
        for _ in range(n_random):
            pts.append(rng.uniform(x_lo, x_hi))
    return pts


def falsify(
    graph: Graph,
    box: ParamBox,
    x_lo: np.ndarray,
    x_hi: np.ndarray,
    objectives: list[Objective],
    rng: np.random.Generator,
    deadline: Deadline,
    n_random: int = 8,
    steps: int = 10,
    stop_above: float = np.inf,
) -> list[Candidate]:
    """Best point per objective from restarts at the centre, corners and random points.

    Parameters start at the nominal values (the first step jumps to the
    gradient-sign corner) or at random corners.  Stops early at the
    deadline or once an objective exceeds ``stop_above``.
    """
    out = []
    nominal = {n: np.asarray(box.nominal[n], dtype=np.float64) for n in box.names}
    for objective in objectives:
        best = Candidate((x_lo + x_hi) / 2, nominal, -np.inf)
        for i, x0 in enumerate(start_points(x_lo, x_hi, rng, n_random)):
            if deadline.expired():
                break
            p0 = nominal if i % 2 == 0 else {n: np.where(rng.random(box.lo[n].shape) < 0.5, box.lo[n], box.hi[n]) for n in box.names}
            c = ascend(graph, box, x_lo, x_hi, x0, p0, objective, steps)
            if c.value > best.value:
                best = c
            if best.value > stop_above:
                break
        out.append(best)
    return out
