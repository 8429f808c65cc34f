"""DDPG, greedy and random search at an equal number of certifications, and where each pick came from.

A *certification* is one reward evaluation of a policy that the same method has
not evaluated before with the same sample count: each method is charged as if
it had its own evaluation cache (:class:`Ledger`), whatever the shared cache
of the session already holds (sharing it only saves wall time).  Repeating a
policy it has already certified costs a method nothing.

The protocol of :func:`compare_seed` (one seed):

1. DDPG runs its episodes (warm-up included) and certifies ``D`` distinct
   policies (``max_certifications`` may cap ``D``);
2. random search draws policies uniformly among those within the budget until
   it has certified ``D`` distinct ones;
3. greedy takes one bit at a time from the layer whose reduction hurts the
   reward least until the budget is met (the existing baseline), then spends
   the rest of its ``D`` certifications on first-improvement local search
   (move one bit from one layer to another, or add one bit, within the
   budget), restarting from a random policy within the budget at a local
   optimum.  When ``D`` is too small for the whole descent, the descent
   stops early enough to leave ``race`` certifications (the race's
   candidates): HAQ's wall on where it stopped, then local search;
4. every method races exactly ``race`` of its own best distinct policies
   within the budget (search reward, then fewer BitOps, then first seen) with
   ``race_n`` samples per reward image and keeps the best re-evaluated one
   (:func:`paramverify.search.baselines.race`); those ``race`` certifications
   count too, so every method ends with ``D + race`` certifications.

Bookkeeping (:func:`pick_origin`): for every method the certification (1-based,
in the method's order) and the phase that first produced its final pick; for
DDPG also the episodes that executed it and whether the first of them was a
random warm-up episode.  Curves over the certifications: :mod:`.curves`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paramverify.errors import SpecError, check
from paramverify.search import baselines as bl
from paramverify.search.baselines import MethodResult
from paramverify.search.ddpg import DDPGConfig
from paramverify.search.env import CachedEvaluator, EpisodeResult, Evaluation, QuantEnv
from paramverify.search.runner import DDPGSearch
from paramverify.search.space import BitPolicy, Budget

Progress = Callable[[str], None]
METHODS = ("ddpg", "random", "greedy")
WARMUP, AGENT = "warm-up", "agent"
DESCENT, LOCAL, RESTART, RANDOM = "descent", "local search", "restart", "random"


@dataclass(frozen=True)
class LedgerEntry:
    """One certification of a method: its index (1-based), policy, raw reward, and the phase that asked for it."""

    index: int
    bits: tuple[int, ...]
    key: str
    reward: float
    fits: bool
    bitops_fraction: float
    phase: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "bits": list(self.bits), "reward": self.reward, "fits_budget": self.fits,
                "bitops_fraction": self.bitops_fraction, "phase": self.phase}


class Ledger:
    """One method's view of the shared :class:`CachedEvaluator`: counts its own distinct certifications.

    Offers what :class:`QuantEnv` and :func:`paramverify.search.baselines.race` use of an evaluator
    (``evaluate``, ``requests``, ``computed``, ``samples``, ``supports_n``); ``computed`` is the
    number of distinct (policy, sample count) pairs this method asked for, ``samples`` their forward
    passes.  ``limit`` caps the search certifications (the default sample count): certifying one more
    is an internal error, so a method can never spend more than its share.  ``phase`` labels the
    certifications that follow (see :data:`log`).
    """

    def __init__(self, shared: CachedEvaluator, budget: Budget, limit: int | None = None) -> None:
        if limit is not None and not (isinstance(limit, int) and limit >= 1):
            raise SpecError("certifications", f"must be a positive integer, got {limit!r}")
        self.shared = shared
        self.budget = budget
        self.limit = limit
        self.phase = ""
        self.requests = 0
        self.computed = 0
        self.samples = 0
        self.log: list[LedgerEntry] = []
        self._seen: dict[str, Evaluation] = {}

    @property
    def supports_n(self) -> bool:
        return self.shared.supports_n

    @property
    def search_certifications(self) -> int:
        """Certifications with the search's own sample count (the race's are not among them)."""
        return len(self.log)

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else self.limit - len(self.log)

    def seen(self, policy: BitPolicy, n: int | None = None) -> bool:
        return _key(policy, n) in self._seen

    def evaluate(self, policy: BitPolicy, n: int | None = None) -> tuple[Evaluation, bool]:
        """The evaluation and whether this method had certified the policy before (then it is free)."""
        self.requests += 1
        key = _key(policy, n)
        hit = self._seen.get(key)
        if hit is not None:
            return hit, True
        if n is None:
            check(self.limit is None or len(self.log) < self.limit,
                  f"a method asked for certification {len(self.log) + 1} beyond its share of {self.limit}")
        ev, _ = self.shared.evaluate(policy, n)
        self._seen[key] = ev
        self.computed += 1
        self.samples += ev.samples
        if n is None:
            frac = self.budget.fraction_of(policy)
            self.log.append(LedgerEntry(len(self.log) + 1, tuple(policy.weight_bits), policy.key, ev.reward,
                                        frac <= self.budget.fraction, frac, self.phase))
        return ev, False


def _key(policy: BitPolicy, n: int | None) -> str:
    return policy.key if n is None else f"{policy.key}@n={n}"


@dataclass(frozen=True)
class MethodRun:
    """One method at one seed: its result (the final pick, costs with the race), certifications, pick's origin."""

    method: str
    seed: int
    result: MethodResult
    log: tuple[LedgerEntry, ...]
    pick: Mapping[str, Any]
    search_certifications: int
    race_certifications: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def certifications(self) -> int:
        """All certifications of the method: search and final race."""
        return self.search_certifications + self.race_certifications

    def to_json(self) -> dict[str, Any]:
        best = self.result.best
        race = self.result.final_race
        return {
            "method": self.method, "seed": self.seed, "bits": list(best.policy.weight_bits),
            "bitops_fraction": best.bitops_fraction, "search_reward": best.reward,
            "final_reward": None if race is None else race["candidates"][race["winner"]]["final_reward"],
            "certifications": {"search": self.search_certifications, "race": self.race_certifications,
                               "total": self.certifications},
            "evaluations": self.result.evaluations, "samples": self.result.samples,
            "seconds": round(self.result.seconds, 3), "pick": dict(self.pick),
            "race": None if race is None else {
                "n": race["n"], "winner": race["winner"], "changed": race["changed"],
                "candidates": [{"bits": c["bits"], "search_reward": c["search_reward"],
                                "final_reward": c["final_reward"]} for c in race["candidates"]]},
            "log": [e.to_json() for e in self.log], **dict(self.extra),
        }


def pick_origin(pick: BitPolicy, log: Sequence[LedgerEntry], history: Sequence[EpisodeResult] | None = None,
                warmup: int | None = None) -> dict[str, Any]:
    """Where ``pick`` came from: its first certification in ``log`` and that certification's phase.

    With a DDPG ``history`` (one result per episode) and its ``warmup``: the first episode that executed
    the pick, every episode that did, and whether the first was a warm-up episode (random actions).
    """
    first = next((e for e in log if e.key == pick.key), None)
    check(first is not None, f"the pick {list(pick.weight_bits)} is not among the method's certifications")
    assert first is not None  # for mypy
    out: dict[str, Any] = {"certification": first.index, "phase": first.phase}
    if history is not None:
        episodes = [i for i, h in enumerate(history) if h.policy.key == pick.key]
        check(bool(episodes), "the DDPG pick was executed by no episode")
        out.update({"episode": episodes[0], "episodes": episodes,
                    "from_warmup": warmup is not None and episodes[0] < warmup,
                    "executed_after_warmup": warmup is not None and any(e >= warmup for e in episodes)})
    return out


def race_exact(env: QuantEnv, results: Sequence[EpisodeResult], race: int, n: int,
               progress: Progress | None, label: str) -> tuple[EpisodeResult, dict[str, Any]] | None:
    """The final race over exactly ``race`` of the best distinct policies within the budget (fewer if fewer)."""
    config = bl.RaceConfig(top_k=race, n=n, tolerance=0.0, max_candidates=race)
    return bl.race(env, results, config, progress, label)


def _result(method: str, budget: Budget, ledger: Ledger, best: EpisodeResult, trace: Sequence[EpisodeResult],
            t0: float, extra: Mapping[str, Any]) -> MethodResult:
    return MethodResult(method, budget.fraction, best, ledger.requests, ledger.computed, ledger.samples,
                        time.perf_counter() - t0, tuple(trace), extra=dict(extra))


def _finish(method: str, seed: int, env: QuantEnv, ledger: Ledger, res: MethodResult, results: Sequence[EpisodeResult],
            race: int, race_n: int | None, progress: Progress | None, history: Sequence[EpisodeResult] | None = None,
            warmup: int | None = None, extra: Mapping[str, Any] | None = None) -> MethodRun:
    search = ledger.search_certifications
    before = ledger.computed
    if race_n is not None and race >= 2:
        raced = race_exact(env, results, race, race_n, progress, f"{method} seed {seed}")
        if raced is not None:
            res = bl.with_race(res, raced[0], raced[1])
    check(res.best.fits, f"{method} picked a policy over the budget")
    return MethodRun(method, seed, res, tuple(ledger.log), pick_origin(res.best.policy, ledger.log, history, warmup),
                     search, ledger.computed - before, dict(extra or {}))


# -- the three methods ------------------------------------------------------------------------
def run_ddpg(budget: Budget, shared: CachedEvaluator, config: DDPGConfig, episodes: int, seed: int, *,
             constraint: str = "wall", penalty: float = 1.0, max_certifications: int | None = None,
             race: int = 5, race_n: int | None = None, device: str = "cpu",
             progress: Progress | None = None) -> MethodRun:
    """DDPG for ``episodes`` episodes (fewer if it reaches ``max_certifications``), then its final race."""
    ledger = Ledger(shared, budget)
    env = QuantEnv(budget, ledger, constraint, penalty)  # type: ignore[arg-type]  # a Ledger is an evaluator
    search = DDPGSearch(env, config, episodes, seed, device=device)

    def stop(ep: int) -> bool:
        ledger.phase = WARMUP if ep < config.warmup else AGENT
        return max_certifications is not None and ledger.search_certifications >= max_certifications

    res = search.run(progress=progress, stop=stop)
    warmup_certs = sum(e.phase == WARMUP for e in ledger.log)
    extra = {"episodes": len(search.history), "warmup": config.warmup, "warmup_certifications": warmup_certs}
    return _finish("ddpg", seed, env, ledger, res, search.history, race, race_n, progress, search.history,
                   config.warmup, extra)


def _draw(budget: Budget, gen: np.random.Generator, max_rejections: int) -> tuple[tuple[int, ...], int]:
    """A policy drawn uniformly among those within the budget (rejection sampling), and the rejections."""
    rng = budget.bit_range
    for rejected in range(max_rejections):
        bits = tuple(int(b) for b in gen.integers(rng.lo, rng.hi + 1, size=len(budget.layers)))
        if budget.fits(budget.policy(bits)):
            return bits, rejected
    return budget.wall(bits), max_rejections


def run_random(budget: Budget, shared: CachedEvaluator, certifications: int, seed: int, *, constraint: str = "wall",
               penalty: float = 1.0, race: int = 5, race_n: int | None = None, max_draws: int = 100_000,
               progress: Progress | None = None) -> MethodRun:
    """Uniform draws within the budget until ``certifications`` distinct policies are certified; then the race."""
    ledger = Ledger(shared, budget, certifications)
    ledger.phase = RANDOM
    env = QuantEnv(budget, ledger, constraint, penalty)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    gen = np.random.default_rng([seed, 0x5EA4C])
    trace: list[EpisodeResult] = []
    rejected = draws = 0
    while ledger.search_certifications < certifications and draws < max_draws:
        draws += 1
        bits, rej = _draw(budget, gen, max_draws)
        rejected += rej
        if ledger.seen(budget.policy(bits)):
            continue  # already certified: no new information, no cost
        trace.append(env.evaluate_bits(bits))
        if progress is not None:
            best = bl.best_of(trace)
            progress(f"random seed {seed}: {ledger.search_certifications}/{certifications} certifications, best "
                     f"{best.reward if best else float('nan'):.4f}")
    best = bl.best_of(trace)
    check(best is not None, "random search certified no policy within the budget")
    assert best is not None  # for mypy
    res = _result("random", budget, ledger, best, trace, t0, {"rejected": rejected})
    return _finish("random", seed, env, ledger, res, trace, race, race_n, progress, extra={"draws": draws})


def _neighbours(budget: Budget, bits: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Policies within the budget one move away: one more bit on a layer, or one bit moved between two layers."""
    rng, n = budget.bit_range, len(bits)
    out = []
    for i in range(n):
        out.append(tuple(b + (k == i) for k, b in enumerate(bits)))
    for i, j in itertools.permutations(range(n), 2):
        out.append(tuple(b + (k == i) - (k == j) for k, b in enumerate(bits)))
    return [c for c in out if all(rng.lo <= b <= rng.hi for b in c) and budget.fits(budget.policy(c))]


def run_greedy(budget: Budget, shared: CachedEvaluator, certifications: int, seed: int, *, constraint: str = "wall",
               penalty: float = 1.0, race: int = 5, race_n: int | None = None, max_draws: int = 100_000,
               progress: Progress | None = None) -> MethodRun:
    """Greedy descent to the budget, then local search with restarts, in ``certifications``; then the race."""
    ledger = Ledger(shared, budget, certifications)
    env = QuantEnv(budget, ledger, constraint, penalty)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    fitting: list[EpisodeResult] = []
    trace: list[EpisodeResult] = []

    def ev(bits: tuple[int, ...]) -> EpisodeResult:
        policy = budget.policy(bits)
        e, hit = ledger.evaluate(policy)
        frac = budget.fraction_of(policy)
        r = EpisodeResult(bits, policy, e.reward, e, frac, frac <= budget.fraction, hit)
        if r.fits and not hit:
            fitting.append(r)
        return r

    def left() -> int:
        return certifications - ledger.search_certifications

    # 1. descent (bl.greedy's rule); when the certifications run short first, HAQ's wall on where it stopped
    ledger.phase = DESCENT
    lo = budget.bit_range.lo
    bits = (budget.bit_range.hi,) * len(budget.layers)
    steps = 0

    # keep enough certifications for `reserve` policies within the budget (the race's candidates, at least one)
    reserve = min(certifications, race) if race_n is not None and race >= 2 else 1

    def can_spend() -> bool:  # one more descent certification, which may be over the budget
        return left() - 1 >= max(0, reserve - len(fitting))

    if can_spend() or budget.fits(budget.policy(bits)):
        current = ev(bits)
        trace.append(current)
        while not current.fits:
            eligible = [i for i in range(len(bits)) if bits[i] > lo]
            cands = []
            for i in eligible:
                if not can_spend():
                    break
                r = ev(tuple(b - (k == i) for k, b in enumerate(bits)))
                cands.append((r.reward, budget.bitops(current.policy) - budget.bitops(r.policy), -i, r))
            if len(cands) < len(eligible) or not cands:
                break  # out of certifications in the middle of a step
            current = max(cands, key=lambda c: (c[0], c[1], c[2]))[3]
            bits = current.requested
            trace.append(current)
            steps += 1
            if progress is not None:
                progress(f"greedy seed {seed}: descent {list(bits)} reward {current.reward:.4f}")
    if not fitting:
        check(left() >= 1, "greedy ran out of certifications with no policy within the budget")
        trace.append(ev(budget.wall(bits)))
    # 2. first-improvement local search from the best policy within the budget; restarts at local optima
    gen = np.random.default_rng([seed, 0x6EED])
    incumbent = bl.best_of(fitting)
    check(incumbent is not None, "greedy has no policy within the budget after its descent")
    assert incumbent is not None  # for mypy
    restarts = draws = 0
    while left() > 0 and draws < max_draws:
        ledger.phase = LOCAL
        improved = False
        for nb in _neighbours(budget, incumbent.requested):
            if left() == 0:
                break
            r = ev(nb)
            if r.reward > incumbent.reward:
                incumbent, improved = r, True
                trace.append(r)
                break
        if improved or left() == 0:
            continue
        ledger.phase = RESTART  # a local optimum: restart from a random policy within the budget
        while left() > 0 and draws < max_draws:
            draws += 1
            bits, _ = _draw(budget, gen, max_draws)
            if not ledger.seen(budget.policy(bits)):
                incumbent = ev(bits)
                restarts += 1
                trace.append(incumbent)
                break
        if progress is not None:
            progress(f"greedy seed {seed}: restart {restarts} ({ledger.search_certifications}/{certifications})")
    best = bl.best_of(fitting)
    check(best is not None, "greedy has no policy within the budget")
    assert best is not None  # for mypy
    res = _result("greedy", budget, ledger, best, trace, t0, {})
    return _finish("greedy", seed, env, ledger, res, fitting, race, race_n, progress,
                   extra={"descent_steps": steps, "restarts": restarts})


# -- one seed, all methods --------------------------------------------------------------------
def compare_seed(budget: Budget, shared: CachedEvaluator, config: DDPGConfig, episodes: int, seed: int, *,
                 constraint: str = "wall", penalty: float = 1.0, max_certifications: int | None = None,
                 race: int = 5, race_n: int | None = None, device: str = "cpu",
                 progress: Progress | None = None,
                 after_method: Callable[[MethodRun], None] | None = None) -> dict[str, MethodRun]:
    """DDPG, then random search and greedy with DDPG's number of certifications (see the module docstring)."""
    runs = {"ddpg": run_ddpg(budget, shared, config, episodes, seed, constraint=constraint, penalty=penalty,
                             max_certifications=max_certifications, race=race, race_n=race_n, device=device,
                             progress=progress)}
    if after_method is not None:
        after_method(runs["ddpg"])
    d = runs["ddpg"].search_certifications
    for name, fn in (("random", run_random), ("greedy", run_greedy)):
        runs[name] = fn(budget, shared, d, seed, constraint=constraint, penalty=penalty, race=race, race_n=race_n,
                        progress=progress)
        if after_method is not None:
            after_method(runs[name])
    return runs


def equal_counts(runs_by_seed: Mapping[int, Mapping[str, MethodRun]]) -> dict[str, Any]:
    """Each seed's certifications per method (search, race, total) and whether they are all equal per seed."""
    per_seed: dict[str, Any] = {}
    equal = True
    for seed, runs in runs_by_seed.items():
        counts = {m: {"search": r.search_certifications, "race": r.race_certifications, "total": r.certifications}
                  for m, r in runs.items()}
        same = len({c["total"] for c in counts.values()}) == 1 and len({c["search"] for c in counts.values()}) == 1
        per_seed[str(seed)] = {"methods": counts, "equal": same}
        equal = equal and same
    return {"per_seed": per_seed, "equal": equal}
