"""Baselines at the same BitOps budget: uniform bits, greedy sensitivity, random search.

All three evaluate policies through the same :class:`QuantEnv` (same reward,
same evaluation cache, same wall) as the DDPG search, so every policy they
return meets the budget (wall constraint) and their costs are comparable.

* uniform: the largest bit width that, on every layer, fits the budget
  (one evaluation);
* greedy sensitivity: start with every layer at the maximum; while over
  budget, try taking one bit from each layer, keep the step whose reward is
  highest (ties: the larger BitOps saving), repeat;
* random search: ``trials`` policies drawn uniformly from the policies that
  meet the budget (rejection sampling, seeded), the best reward wins.

The best of a set of results is the highest reward; ties go to the lower
BitOps (see :func:`best_of`).

Final race (:func:`race`, standard practice against the winner's curse):
with ``n_q`` samples per image the reward saturates and near-identical
policies tie, so a method that picks a best among several evaluated
policies re-evaluates its top candidates (the ``top_k`` best distinct
policies that meet the budget, plus every one within ``tolerance`` of the
best reward, at most ``max(top_k, max_candidates)``) with ``n`` samples per
image on the same reward images (the first ``n`` samples of the same float
certificates' noise) and keeps the highest re-evaluated reward (ties: fewer
BitOps, then the higher search reward).  DDPG (in the pipeline) and random
search race all their evaluated policies; greedy races the candidates of its
last step that meet the budget; uniform has one policy.  The race's
certifications and samples count in the method's cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from paramverify.errors import SpecError, check
from paramverify.search.env import EpisodeResult, QuantEnv

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MethodResult:
    """The policy a method found, with the cost of finding it.

    ``evaluations`` counts reward requests, ``computed`` certifications
    actually run (cache misses) and ``samples`` their forward passes.
    """

    method: str
    budget: float
    best: EpisodeResult
    evaluations: int
    computed: int
    samples: int
    seconds: float
    trace: tuple[EpisodeResult, ...] = ()
    complete: bool = True
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self, with_trace: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method, "budget": self.budget, "best": self.best.to_json(),
            "evaluations": self.evaluations, "certifications": self.computed, "samples": self.samples,
            "seconds": round(self.seconds, 3), "complete": self.complete,
        }
        if self.note:
            out["note"] = self.note
        if with_trace:
            out["trace"] = [
                {"bits": list(t.policy.weight_bits), "reward": t.reward, "bitops_fraction": t.bitops_fraction}
                for t in self.trace
            ]
        out.update(self.extra)
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> MethodResult:
        extra = {k: v for k, v in d.items() if k not in _RESULT_FIELDS}
        return MethodResult(str(d["method"]), float(d["budget"]), EpisodeResult.from_json(d["best"]),
                            int(d["evaluations"]), int(d["certifications"]), int(d["samples"]), float(d["seconds"]),
                            (), bool(d["complete"]), str(d.get("note", "")), extra)

    @property
    def final_race(self) -> Mapping[str, Any] | None:
        """The final race's record (:func:`race`), if the method ran one."""
        return self.extra.get("final_race")


_RESULT_FIELDS = ("method", "budget", "best", "evaluations", "certifications", "samples", "seconds", "complete",
                  "note", "trace")


def best_of(results: Iterable[EpisodeResult]) -> EpisodeResult | None:
    """Highest reward among results that meet the budget; ties go to the lower BitOps."""
    best: EpisodeResult | None = None
    for r in results:
        if not r.fits:
            continue
        if best is None or r.reward > best.reward or (r.reward == best.reward and r.bitops_fraction < best.bitops_fraction):
            best = r
    return best


@dataclass(frozen=True)
class RaceConfig:
    """The final race: ``top_k`` best distinct policies (plus those within ``tolerance`` of the best reward, at
    most ``max(top_k, max_candidates)``) re-evaluated with ``n`` samples per image."""

    top_k: int = 5
    n: int = 512
    tolerance: float = 0.01
    max_candidates: int = 10

    def __post_init__(self) -> None:
        if not (isinstance(self.top_k, int) and self.top_k >= 1):
            raise SpecError("final_top_k", f"must be a positive integer to race, got {self.top_k!r}")
        if not (isinstance(self.n, int) and self.n >= 1):
            raise SpecError("final_n", f"must be a positive integer, got {self.n!r}")
        if not (isinstance(self.tolerance, (int, float)) and self.tolerance >= 0):
            raise SpecError("final_tolerance", f"must be a number >= 0, got {self.tolerance!r}")


def race_candidates(results: Iterable[EpisodeResult], config: RaceConfig) -> list[EpisodeResult]:
    """The distinct policies that meet the budget, best first (reward, then fewer BitOps), that enter the race.

    The first occurrence of each policy represents it; the ``top_k`` best and every policy within
    ``tolerance`` of the best reward enter, at most ``max(top_k, max_candidates)``.
    """
    distinct: dict[str, EpisodeResult] = {}
    for r in results:
        if r.fits and r.policy.key not in distinct:
            distinct[r.policy.key] = r
    ranked = sorted(distinct.values(), key=lambda r: (-r.reward, r.bitops_fraction))  # stable: first seen first
    if not ranked:
        return []
    top = ranked[0].reward
    chosen = [r for i, r in enumerate(ranked) if i < config.top_k or r.reward >= top - config.tolerance]
    return chosen[: max(config.top_k, config.max_candidates)]


def race(env: QuantEnv, results: Iterable[EpisodeResult], config: RaceConfig,
         progress: Progress | None = None, label: str = "") -> tuple[EpisodeResult, dict[str, Any]] | None:
    """Re-evaluate the best candidates of ``results`` with ``config.n`` samples; None when fewer than two.

    Returns the winner (its search-time result) and a JSON-able record: the candidates with their search and
    final rewards, the winner's index, and the evaluations, certifications (cache misses) and samples spent.
    """
    cands = race_candidates(results, config)
    if len(cands) < 2:
        return None
    c = env.evaluator
    r0, c0, s0, t0 = c.requests, c.computed, c.samples, time.perf_counter()
    finals = []
    for r in cands:
        ev, hit = c.evaluate(r.policy, n=config.n)
        finals.append((ev, hit))
    win = max(range(len(cands)),
              key=lambda i: (finals[i][0].reward, -cands[i].bitops_fraction, cands[i].reward, -i))
    record: dict[str, Any] = {
        "n": config.n, "top_k": config.top_k, "tolerance": config.tolerance,
        "candidates": [{"bits": list(r.policy.weight_bits), "bitops_fraction": r.bitops_fraction,
                        "search_reward": r.reward, "final_reward": ev.reward, "final_metrics": dict(ev.metrics),
                        "cached": hit} for r, (ev, hit) in zip(cands, finals)],
        "winner": win, "winner_key": cands[win].policy.key, "changed": win != 0,
        "evaluations": c.requests - r0, "certifications": c.computed - c0, "samples": c.samples - s0,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if progress is not None:
        progress(f"{label + ' ' if label else ''}final race ({len(cands)} policies, n = {config.n}): "
                 f"{list(cands[win].policy.weight_bits)} final reward {finals[win][0].reward:.4f}"
                 f"{' (changed)' if win else ''}")
    return cands[win], record


def with_race(res: MethodResult, winner: EpisodeResult, record: Mapping[str, Any]) -> MethodResult:
    """``res`` with the race's winner as its answer and the race's cost added to its own."""
    return replace(res, best=winner, evaluations=res.evaluations + int(record["evaluations"]),
                   computed=res.computed + int(record["certifications"]),
                   samples=res.samples + int(record["samples"]), seconds=res.seconds + float(record["seconds"]),
                   extra={**res.extra, "final_race": dict(record)})


class _Meter:
    """Counts the evaluator's work done inside one method."""

    def __init__(self, env: QuantEnv) -> None:
        self.env = env
        self.start = time.perf_counter()
        c = env.evaluator
        self.r0, self.c0, self.s0 = c.requests, c.computed, c.samples

    def result(self, method: str, best: EpisodeResult, trace: list[EpisodeResult], **kw: Any) -> MethodResult:
        c = self.env.evaluator
        return MethodResult(method, self.env.budget.fraction, best, c.requests - self.r0, c.computed - self.c0,
                            c.samples - self.s0, time.perf_counter() - self.start, tuple(trace), **kw)


def uniform(env: QuantEnv, progress: Progress | None = None) -> MethodResult:
    """Every layer at the largest bit width that fits the budget."""
    meter = _Meter(env)
    b = env.budget.uniform_bits()
    r = env.evaluate_bits((b,) * env.n_layers)
    if progress is not None:
        progress(f"uniform {b} bits: reward {r.reward:.4f}")
    return meter.result("uniform", r, [r], extra={"bits": b})


def greedy(env: QuantEnv, progress: Progress | None = None, final: RaceConfig | None = None) -> MethodResult:
    """Take one bit at a time from the layer whose reduction hurts the reward least.

    With ``final``, the candidates of the last step that meet the budget are raced (:func:`race`).
    """
    meter = _Meter(env)
    rng = env.budget.bit_range
    bits = [rng.hi] * env.n_layers
    trace = [env.evaluate_bits(tuple(bits))]
    candidates: list[tuple[float, int, int, EpisodeResult]] = []
    while not env.budget.fits(env.budget.policy(bits)):
        candidates = []
        for i in range(env.n_layers):
            if bits[i] <= rng.lo:
                continue
            trial = list(bits)
            trial[i] -= 1
            # evaluate without the wall: greedy walks the space itself
            policy = env.budget.policy(trial)
            ev, hit = env.evaluator.evaluate(policy)
            frac = env.budget.fraction_of(policy)
            res = EpisodeResult(tuple(trial), policy, ev.reward, ev, frac, frac <= env.budget.fraction, hit)
            saving = env.budget.bitops(env.budget.policy(bits)) - env.budget.bitops(policy)
            candidates.append((ev.reward, saving, -i, res))
        check(bool(candidates), "over budget with every layer at the minimum (checked by Budget)")
        _, _, neg_i, chosen = max(candidates, key=lambda c: (c[0], c[1], c[2]))
        bits[-neg_i] -= 1
        trace.append(chosen)
        if progress is not None:
            progress(f"greedy: {list(bits)} reward {chosen.reward:.4f} ({chosen.bitops_fraction:.4%} BitOps)")
    final_step = trace[-1]
    check(final_step.fits, "greedy ended on a policy over the budget")
    raced = None
    if final is not None and candidates:
        # the last step's choice among the candidates that meet the budget, ranked as the step ranked them
        ranked = [c[3] for c in sorted(candidates, key=lambda c: (c[0], c[1], c[2]), reverse=True)]
        raced = race(env, ranked, final, progress, "greedy")
        if raced is not None:
            final_step = raced[0]
            trace[-1] = final_step
    res = meter.result("greedy", final_step, trace)
    return replace(res, extra={"final_race": raced[1]}) if raced is not None else res


def random_search(env: QuantEnv, trials: int, seed: int, progress: Progress | None = None,
                  max_rejections: int = 100_000, final: RaceConfig | None = None) -> MethodResult:
    """The best of ``trials`` policies drawn uniformly among those within the budget (raced with ``final``)."""
    if not (isinstance(trials, int) and trials >= 1):
        raise SpecError("random_trials", f"must be a positive integer, got {trials!r}")
    meter = _Meter(env)
    gen = np.random.default_rng([seed, 0x5EA4C])
    rng = env.budget.bit_range
    trace: list[EpisodeResult] = []
    rejected = 0
    for t in range(trials):
        while True:
            bits = tuple(int(b) for b in gen.integers(rng.lo, rng.hi + 1, size=env.n_layers))
            if env.budget.fits(env.budget.policy(bits)):
                break
            rejected += 1
            if rejected >= max_rejections:
                bits = env.budget.wall(bits)
                break
        trace.append(env.evaluate_bits(bits))
        if progress is not None:
            best = best_of(trace)
            progress(f"random {t + 1}/{trials}: best reward {best.reward if best else float('nan'):.4f}")
    best = best_of(trace)
    check(best is not None, "the wall makes every random policy fit")
    assert best is not None  # for mypy
    extra: dict[str, Any] = {"rejected": rejected}
    if final is not None:
        raced = race(env, trace, final, progress, "random")
        if raced is not None:
            best, extra["final_race"] = raced
    return meter.result("random", best, trace, extra=extra)
