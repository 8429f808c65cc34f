"""The searches behind the bound engine: output change and label flips over an input box.

Each search pairs a sound box bound (:mod:`paramverify.bounds.sound`) with a
probe that turns promising box centres into concrete, snapped and soundly
re-evaluated witnesses, and hands both to
:func:`paramverify.bounds.branch.branch_and_bound`.  The output-change search
starts from the sign-gradient falsifier and, on nets of at least
``PGD_BOX_MIN`` values, the batched one (:func:`paramverify.bounds.pgd.pgd`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from paramverify.bounds.branch import (
    BoundFn,
    Probe,
    ProbeFn,
    SearchResult,
    TightenFn,
    branch_and_bound,
)
from paramverify.bounds.falsify import (
    Candidate,
    ascend,
    evaluate,
    falsify,
    flip_score,
    nominal_margin,
    output_change,
)
from paramverify.bounds.pgd import PGDSettings, change_objective, pgd
from paramverify.bounds.sound import (
    box_outputs,
    certain_flip_margin,
    change_lower,
    change_upper,
    flippable_margin_upper,
    point_outputs,
    tight_box_outputs,
)
from paramverify.options import Deadline, Options
from paramverify.properties import Problem, Property, label_kept, margins
from paramverify.quantized.attack import best_gap
from paramverify.replay import confirm, witness
from paramverify.results import Counterexample
from paramverify.specs import ParamBox


@dataclass(frozen=True, eq=False)
class FlipWitness:
    """A snapped (input, parameters) point whose label provably flips; ``cls`` is its nominal class."""

    counterexample: Counterexample
    cls: int


def nominal_params(box: ParamBox) -> dict[str, np.ndarray]:
    return {n: np.asarray(box.nominal[n], dtype=np.float64) for n in box.names}


def in_region(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> bool:
    """Does (x, params) lie in the problem's input region and parameter box?"""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return bool(np.all(x >= problem.region.lo) and np.all(x <= problem.region.hi) and problem.box.contains(params))


def boxed_witness(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> Counterexample:
    """A witness inside the region and the box: the snapped one when it is inside, else the float64 point.

    Snapping rounds to the model's dtype; when a degenerate interval (a
    quantized copy whose values are not float32) holds no such value the
    snapped point lies outside the box, and its value would not bound the
    optimum.  The float64 point (clipped into the boxes) is then the witness.
    """
    w = witness(problem, x, params)
    if in_region(problem, w.input, w.parameters):
        return w
    xc = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), problem.region.lo, problem.region.hi)
    pc = {n: np.clip(np.asarray(params[n], dtype=np.float64), problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names}
    g = problem.graph
    return Counterexample(xc, pc, g.evaluate(xc)[0], g.evaluate(xc, pc)[0], replayed=False,
                          note="float64 witness: no value of the model's dtype lies in the box there")


def confirm_in_box(problem: Problem, prop: Property, x: np.ndarray, params: Mapping[str, np.ndarray]) -> Counterexample | None:
    """``replay.confirm`` (the point is snapped into the boxes wherever the model's dtype allows it)."""
    return confirm(problem, prop, x, params)


# ---------------------------------------------------------------------------
# output change (MaxEpsilon, OutputBound)


def sound_change(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> Probe:
    """Snap (x, params) into the boxes and bound |f_p(x) - f_p0(x)|_inf from below there."""
    w = boxed_witness(problem, x, params)
    return Probe(change_lower(point_outputs(problem.graph, problem.box, w.input, w.parameters)), w)


def change_bound(problem: Problem) -> BoundFn:
    """Per input box: differential interval bounds of the largest output change."""
    g, box = problem.graph, problem.box
    return lambda lo, hi: change_upper(box_outputs(g, box, lo, hi))


def change_tighten(problem: Problem) -> TightenFn:
    """Per input box: the same quantity from interval bounds intersected with differential CROWN."""
    g, box = problem.graph, problem.box
    return lambda lo, hi, ub: change_upper(tight_box_outputs(g, box, lo, hi))


#: a probe scores the centres of at most this many children: those with the largest bounds
PROBE_CENTRES = 16


def promising(ub: np.ndarray, best: float, most: int = PROBE_CENTRES) -> np.ndarray:
    """Indices of the children whose bound exceeds ``best``, at most ``most`` of them: the
    largest bounds first (ties in order), as a probe's candidates.

    Scoring every live child's centre (an interval pass over up to 128 points) was 15-20%
    of a branch and bound on the MNIST and digits MLPs of ``benchmarks/bench_ray.py``,
    where no probe raised the lower end after the start-up falsifier.
    """
    live = np.flatnonzero(ub > best)
    if live.size <= most:
        return live
    return live[np.argsort(-ub[live], kind="stable")[:most]]


def change_probe(problem: Problem, steps: int = 6) -> ProbeFn:
    """Ascend from the child centre with the best exact-at-a-point score."""
    g, box = problem.graph, problem.box

    def probe(lo: np.ndarray, hi: np.ndarray, ub: np.ndarray, best: float) -> Probe | None:
        live = promising(ub, best)
        if live.size == 0:
            return None
        centres = (lo[live] + hi[live]) / 2
        out = box_outputs(g, box, centres, centres)
        scores = np.concatenate([out.d.hi, -out.d.lo], axis=1)  # [N, 2k]
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[row, col] <= best:
            return None
        k = out.d.shape[1]
        obj = output_change(int(col % k), 1.0 if col < k else -1.0)
        i = live[row]
        cand = ascend(g, box, lo[i], hi[i], centres[row], nominal_params(box), obj, steps)
        return sound_change(problem, cand.x, cand.params)

    return probe


#: box regions of at least this many parameters and input coordinates also get the batched falsifier
#: (smaller ones are closed by the input branch and bound, where it would only cost time)
PGD_BOX_MIN = 1000
#: share of the time limit the batched falsifier may use on a box region (the input branch and bound needs the rest)
PGD_BOX_SHARE = 0.15


def change_start(problem: Problem, options: Options, deadline: Deadline, max_objectives: int = 6) -> Probe:
    """Falsifier restarts over the whole region for the most promising (output, sign) pairs, then (on
    nets of at least ``PGD_BOX_MIN`` values) the batched falsifier over the region and the box."""
    g, box, region = problem.graph, problem.box, problem.region
    root = box_outputs(g, box, region.lo[None], region.hi[None])
    scores = np.concatenate([root.d.hi[0], -root.d.lo[0]])
    k = root.d.shape[1]
    order = np.argsort(-scores)[:max_objectives]
    objs = [output_change(int(c % k), 1.0 if c < k else -1.0) for c in order]
    rng = np.random.default_rng(options.seed)
    cands = falsify(g, box, region.lo, region.hi, objs, rng, deadline, n_random=4, steps=8)
    best = max(cands, key=lambda c: c.value)
    probe = sound_change(problem, best.x, best.params)
    if box.n_parameters + region.size >= PGD_BOX_MIN and not deadline.expired():
        limit = None if options.timeout_s is None else PGD_BOX_SHARE * options.timeout_s
        strong = pgd(g, box, region.lo, region.hi, change_objective(k, [int(c) for c in order]), rng, deadline,
                     PGDSettings(), time_limit=limit, starts=[(best.x, best.params)])
        for c in strong[:1]:
            got = sound_change(problem, c.x, c.params)  # snapped into the boxes and re-evaluated soundly
            if got.value > probe.value:
                probe = got
    if all(np.array_equal(box.lo[n], box.hi[n]) for n in box.names):
        # a concrete copy (an int8 model: rounding steps have no useful gradient): also try sampled points
        if g.replay_models is not None:  # an int8 lowering: corners, samples and straight-through moves, replayed
            got = best_gap(problem, deadline, seed=options.seed)
            if got is not None and got[0] > probe.value:
                probe = Probe(got[0], got[1])
            return probe
        params = {n: box.lo[n] for n in box.names}
        u = rng.uniform(0, 1, (256, region.size))
        u[:32] = np.round(u[:32])
        xs = region.lo + u * (region.hi - region.lo)
        gap = np.max(np.abs(g.evaluate(xs, params) - g.evaluate(xs)), axis=1)
        other = sound_change(problem, xs[int(np.argmax(gap))], params)
        if other.value > probe.value:
            probe = other
    return probe


def search_change(
    problem: Problem, options: Options, deadline: Deadline, verify_at: float | None = None, refute_at: float | None = None
) -> SearchResult:
    init = change_start(problem, options, deadline)
    return branch_and_bound(
        change_bound(problem),
        change_probe(problem),
        problem.region.lo,
        problem.region.hi,
        options,
        deadline,
        floor=0.0 if verify_at is None else -np.inf,
        initial=init,
        verify_at=verify_at,
        refute_at=refute_at,
        label="max epsilon: ",
        tighten=change_tighten(problem),
    )


# ---------------------------------------------------------------------------
# label flips (MinSigma, LabelInvariance, MarginLabelInvariance, MaxDelta)


def classes_of(problem: Problem) -> list[int]:
    k = problem.graph.n_outputs
    return [0, 1] if k == 1 else list(range(k))


def sound_flip(problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray], cls: int) -> Probe | None:
    """Snap (x, params); if the nominal class is certainly ``cls`` and the label certainly
    flips there, a Probe whose value is a lower bound of the nominal margin."""
    w = boxed_witness(problem, x, params)
    out = point_outputs(problem.graph, problem.box, w.input, w.parameters)
    m = certain_flip_margin(out, cls, problem.level)
    return None if m is None else Probe(m, FlipWitness(w, cls))


def flip_bound(problem: Problem, classes: Sequence[int], tight: bool = False) -> BoundFn:
    """Per input box: the flippable-margin bound from interval (``tight``: and CROWN) enclosures."""
    g, box, level = problem.graph, problem.box, problem.level
    outputs = tight_box_outputs if tight else box_outputs

    def bound(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        out = outputs(g, box, lo, hi)
        return np.max(np.stack([flippable_margin_upper(out, c, level) for c in classes]), axis=0)

    return bound


def flip_tighten(problem: Problem, classes: Sequence[int]) -> TightenFn:
    tight = flip_bound(problem, classes, tight=True)
    return lambda lo, hi, ub: tight(lo, hi)


def push_margin(problem: Problem, cand: Candidate, cls: int) -> Candidate:
    """Move x along the nominal-margin gradient as far as the flip (at fixed parameters) survives.

    A line search on a geometric grid of step lengths, evaluated in one
    batch; returns the flipping point of largest nominal margin found.
    """
    g, level = problem.graph, problem.level
    lo, hi = problem.region.lo, problem.region.hi
    if np.all(lo == hi):
        return cand
    _, xv, _, _ = evaluate(g, problem.box, cand.x, cand.params, nominal_margin(cls, level, problem.binary))
    if xv.grad is None:
        return cand
    direction = np.asarray(xv.grad, dtype=np.float64).reshape(-1) * (hi - lo)
    norm = np.max(np.abs(direction))
    if not norm > 0:
        return cand
    direction = direction / norm * (hi - lo)
    steps = np.concatenate([[0.0], np.geomspace(1e-9, 1.0, 96)])
    xs = np.clip(cand.x[None, :] + steps[:, None] * direction[None, :], lo, hi)
    y0 = g.evaluate(xs)
    yp = g.evaluate(xs, cand.params)
    flipped = ~label_kept(y0, yp, level)
    cls_ok = (y0[:, 0] >= level) == bool(cls) if y0.shape[1] == 1 else np.argmax(y0, axis=1) == cls
    m = np.where(flipped & cls_ok, margins(y0, level), -np.inf)
    i = int(np.argmax(m))
    if not np.isfinite(m[i]):
        return cand
    return Candidate(xs[i], cand.params, float(m[i]))


def flip_probe(problem: Problem, classes: Sequence[int], steps: int = 5) -> ProbeFn:
    """At the child centre with the best point score: parameter ascent to a flip, then push the margin."""
    g, box, level = problem.graph, problem.box, problem.level

    def probe(lo: np.ndarray, hi: np.ndarray, ub: np.ndarray, best: float) -> Probe | None:
        live = np.flatnonzero(ub > best)
        if live.size == 0:
            return None
        centres = (lo[live] + hi[live]) / 2
        out = box_outputs(g, box, centres, centres)
        scores = np.stack([flippable_margin_upper(out, c, level) for c in classes], axis=1)
        row, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if not scores[row, j] > best:
            return None
        cls = classes[j]
        x = centres[row]
        cand = ascend(g, box, x, x, x, nominal_params(box), flip_score(cls, level, problem.binary), steps)
        got = sound_flip(problem, cand.x, cand.params, cls)
        if got is None:
            return None
        pushed = push_margin(problem, cand, cls)
        better = sound_flip(problem, pushed.x, pushed.params, cls) if pushed is not cand else None
        return better if better is not None and better.value > got.value else got

    return probe


def flip_start(problem: Problem, classes: Sequence[int], options: Options, deadline: Deadline, sigma: float | None) -> Probe | None:
    """Falsifier restarts over the region for each class."""
    g, box, region = problem.graph, problem.box, problem.region
    rng = np.random.default_rng(options.seed)
    objs = [flip_score(c, problem.level, problem.binary, sigma) for c in classes]
    cands = falsify(g, box, region.lo, region.hi, objs, rng, deadline, n_random=4, steps=8)
    best: Probe | None = None
    for c, cand in zip(classes, cands):
        got = sound_flip(problem, cand.x, cand.params, c)
        if got is not None and not deadline.expired():  # pushing the margin further is optional work
            pushed = push_margin(problem, cand, c)
            alt = sound_flip(problem, pushed.x, pushed.params, c) if pushed is not cand else None
            got = alt if alt is not None and alt.value > got.value else got
        if got is not None and (best is None or got.value > best.value):
            best = got
    return best


def search_flips(
    problem: Problem,
    classes: Sequence[int],
    options: Options,
    deadline: Deadline,
    *,
    verify_sigma: float | None = None,
) -> SearchResult:
    """Maximise the nominal margin over inputs (of ``classes``) whose label can flip.

    Without ``verify_sigma``: the MinSigma bracket (floor 0).  With it: a
    decision run for Def 5 (Def 3/4 when 0) that stops when every box is
    certified (upper < sigma) or a certain flip with margin >= sigma is found.
    """
    init = flip_start(problem, classes, options, deadline, verify_sigma)
    if verify_sigma is None:
        return branch_and_bound(
            flip_bound(problem, classes), flip_probe(problem, classes), problem.region.lo, problem.region.hi,
            options, deadline, floor=0.0, initial=init, label="min sigma: ", tighten=flip_tighten(problem, classes),
        )
    refute = float(np.nextafter(verify_sigma, -np.inf))
    return branch_and_bound(
        flip_bound(problem, classes), flip_probe(problem, classes), problem.region.lo, problem.region.hi,
        options, deadline, floor=-np.inf, initial=init, verify_at=verify_sigma, strict=True, refute_at=refute,
        label="labels: ", tighten=flip_tighten(problem, classes),
    )


def scaled_problem(problem: Problem, t: float) -> Problem:
    return Problem(problem.graph, problem.box.scaled(t), problem.region, problem.level)

