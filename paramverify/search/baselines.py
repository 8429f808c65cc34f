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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paramverify.errors import SpecError
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
        return MethodResult(str(d["method"]), float(d["budget"]), EpisodeResult.from_json(d["best"]),
                            int(d["evaluations"]), int(d["certifications"]), int(d["samples"]), float(d["seconds"]),
                            (), bool(d["complete"]), str(d.get("note", "")))


def best_of(results: Iterable[EpisodeResult]) -> EpisodeResult | None:
    """Highest reward among results that meet the budget; ties go to the lower BitOps."""
    best: EpisodeResult | None = None
    for r in results:
        if not r.fits:
            continue
        if best is None or r.reward > best.reward or (r.reward == best.reward and r.bitops_fraction < best.bitops_fraction):
            best = r
    return best


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


def greedy(env: QuantEnv, progress: Progress | None = None) -> MethodResult:
    """Take one bit at a time from the layer whose reduction hurts the reward least."""
    meter = _Meter(env)
    rng = env.budget.bit_range
    bits = [rng.hi] * env.n_layers
    trace = [env.evaluate_bits(tuple(bits))]
    while not env.budget.fits(env.budget.policy(bits)):
        candidates: list[tuple[float, int, int, EpisodeResult]] = []
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
        assert candidates, "over budget with every layer at the minimum (checked by Budget)"
        _, _, neg_i, chosen = max(candidates, key=lambda c: (c[0], c[1], c[2]))
        bits[-neg_i] -= 1
        trace.append(chosen)
        if progress is not None:
            progress(f"greedy: {list(bits)} reward {chosen.reward:.4f} ({chosen.bitops_fraction:.4%} BitOps)")
    final = trace[-1]
    assert final.fits
    return meter.result("greedy", final, trace)


def random_search(env: QuantEnv, trials: int, seed: int, progress: Progress | None = None,
                  max_rejections: int = 100_000) -> MethodResult:
    """The best of ``trials`` policies drawn uniformly among those within the budget."""
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
    assert best is not None, "the wall makes every random policy fit"
    return meter.result("random", best, trace, extra={"rejected": rejected})
