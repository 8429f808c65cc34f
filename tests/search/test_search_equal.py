"""Equal certification counts, the origin of each pick, and the reward curves (issue 16, part 2)."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("torch")

from paramverify.errors import InternalError
from paramverify.search import curves as cv
from paramverify.search import equal as eq
from paramverify.search.ddpg import DDPGConfig
from paramverify.search.env import CachedEvaluator, EpisodeResult, Evaluation
from paramverify.search.space import BitPolicy, Budget

from .nets import SyntheticEvaluator, layers
from .test_search_baselines import RaceEvaluator

SMALL = DDPGConfig(hidden=16, warmup=4, batch_size=16)


def budget(frac: float = 0.02) -> Budget:
    return Budget(layers([1000, 3000, 500]), frac)


def shared(weights=(1.0, 2.0, 0.5)) -> CachedEvaluator:
    return CachedEvaluator(SyntheticEvaluator(list(weights)))


def race_shared() -> CachedEvaluator:
    return CachedEvaluator(RaceEvaluator({}))  # 0.5 everywhere, with evaluate_n for the race


def test_every_method_gets_ddpgs_certifications_and_the_same_race():
    for frac in (0.01, 0.02, 0.04):
        b = budget(frac)
        cache = race_shared()
        runs = eq.compare_seed(b, cache, SMALL, 14, seed=3, race=3, race_n=256)
        d = runs["ddpg"].search_certifications
        assert d >= 4  # the warm-up alone certifies a few distinct policies
        for name, run in runs.items():
            assert run.search_certifications == d, name
            assert run.race_certifications == 3, name
            assert run.certifications == d + 3 == run.result.computed, name
            assert len(run.log) == d and [e.index for e in run.log] == list(range(1, d + 1))
            assert run.result.best.fits and run.result.final_race is not None
        report = eq.equal_counts({3: runs})
        assert report["equal"] and report["per_seed"]["3"]["methods"]["greedy"]["total"] == d + 3


def test_a_method_is_charged_for_its_own_certifications_even_when_the_shared_cache_has_them():
    b, cache = budget(), shared()
    first = eq.run_random(b, cache, 6, seed=1, race_n=None)
    again = eq.run_random(b, cache, 6, seed=1, race_n=None)  # same draws: all in the shared cache
    assert cache.computed == 6 and first.search_certifications == again.search_certifications == 6
    assert [e.key for e in first.log] == [e.key for e in again.log]


def test_the_ledger_refuses_a_certification_beyond_the_share():
    b = budget()
    ledger = eq.Ledger(shared(), b, limit=2)
    p = [b.policy(bits) for bits in ((2, 2, 2), (3, 2, 2), (2, 3, 2))]
    ledger.evaluate(p[0])
    ledger.evaluate(p[1])
    assert ledger.evaluate(p[0])[1] is True  # a repeat is free
    with pytest.raises(InternalError):
        ledger.evaluate(p[2])
    assert ledger.search_certifications == 2 and ledger.requests == 4


def test_greedy_with_too_few_certifications_still_ends_within_the_budget():
    b = budget(0.01)  # the descent from 8 bits needs far more than 3 certifications
    run = eq.run_greedy(b, shared(), 3, seed=0, race_n=None)
    assert run.search_certifications == 3 and run.result.best.fits
    assert run.log[-1].fits and sum(e.fits for e in run.log) == 1  # the last one went to HAQ's wall


def test_greedy_spends_its_leftover_certifications_on_local_search():
    b = budget(0.04)
    run = eq.run_greedy(b, shared(), 40, seed=0, race_n=None)
    phases = [e.phase for e in run.log]
    assert run.search_certifications == 40
    assert phases[0] == eq.DESCENT and eq.LOCAL in phases
    assert phases.index(eq.LOCAL) > max(i for i, p in enumerate(phases) if p == eq.DESCENT)


def _episode(bits: tuple[int, ...], reward: float, b: Budget) -> EpisodeResult:
    p = b.policy(bits)
    return EpisodeResult(bits, p, reward, Evaluation(reward), b.fraction_of(p), True, False)


def test_pick_origin_names_the_first_episode_and_the_warmup():
    b = budget(0.05)
    history = [_episode(bits, r, b) for bits, r in
               [((2, 2, 2), 0.1), ((4, 3, 2), 0.9), ((3, 3, 3), 0.5), ((4, 3, 2), 0.9), ((2, 3, 2), 0.2)]]
    log = [eq.LedgerEntry(i + 1, h.policy.weight_bits, h.policy.key, h.reward, True, h.bitops_fraction,
                          eq.WARMUP if i < 2 else eq.AGENT) for i, h in enumerate([history[0], history[1],
                                                                                   history[2], history[4]])]
    o = eq.pick_origin(history[1].policy, log, history, warmup=2)
    assert o == {"certification": 2, "phase": eq.WARMUP, "episode": 1, "episodes": [1, 3], "from_warmup": True,
                 "executed_after_warmup": True}
    o = eq.pick_origin(history[2].policy, log, history, warmup=2)
    assert o["episode"] == 2 and o["from_warmup"] is False and o["phase"] == eq.AGENT
    assert eq.pick_origin(history[4].policy, log) == {"certification": 4, "phase": eq.AGENT}
    with pytest.raises(InternalError):
        eq.pick_origin(b.policy((5, 5, 2)), log)


def test_ddpg_pick_origin_on_a_tiny_search_matches_its_history():
    b = budget(0.02)
    run = eq.run_ddpg(b, shared((1.0, 3.0, 0.2)), SMALL, 12, seed=5, race=0)
    history = run.result.trace
    pick = run.result.best.policy
    first = next(i for i, h in enumerate(history) if h.policy.key == pick.key)
    assert run.pick["episode"] == first
    assert run.pick["episodes"] == [i for i, h in enumerate(history) if h.policy.key == pick.key]
    assert run.pick["from_warmup"] == (first < SMALL.warmup)
    entry = run.log[run.pick["certification"] - 1]
    assert entry.key == pick.key and entry.phase == (eq.WARMUP if first < SMALL.warmup else eq.AGENT)
    # every warm-up episode's policy was certified in the warm-up phase, in episode order
    warm = list(dict.fromkeys(h.policy.key for h in history[: SMALL.warmup]))
    assert [e.key for e in run.log if e.phase == eq.WARMUP] == warm
    assert run.extra["warmup_certifications"] == len(warm)


def test_curves_have_the_documented_shape():
    b = budget(0.02)
    runs = {s: eq.compare_seed(b, race_shared(), SMALL, 10, seed=s, race=2, race_n=256) for s in (0, 1, 2)}
    c = cv.curves(runs, window=3)
    length = min(len(r.log) for rs in runs.values() for r in rs.values())
    assert c["length"] == length and c["window"] == 3 and c["seeds"] == [0, 1, 2]
    assert set(c["methods"]) == {"ddpg", "random", "greedy"}
    assert set(c["warmup_end"]) == {"0", "1", "2"}
    for m, d in c["methods"].items():
        for key in ("best", "reward"):
            assert set(d[key]) == {"mean", "std", "min", "max"}
            assert all(len(v) == length for v in d[key].values())
        for s in ("0", "1", "2"):
            assert len(d["per_seed"][s]["best"]) == len(runs[int(s)][m].log)
    # best-so-far never decreases and lies between min and max
    for m in ("ddpg", "random"):
        best = c["methods"][m]["best"]
        assert all(x is not None for x in best["mean"])
        for s in ("0", "1", "2"):
            ys = c["methods"][m]["per_seed"][s]["best"]
            assert all(a <= b for a, b in itertools.pairwise(ys))
        assert all(lo <= mu <= hi for lo, mu, hi in zip(best["min"], best["mean"], best["max"]))


def test_seed_curves_follow_the_log():
    log = [eq.LedgerEntry(1, (8,), "a", 0.9, False, 0.1, eq.DESCENT),
           eq.LedgerEntry(2, (4,), "b", 0.3, True, 0.01, eq.DESCENT),
           eq.LedgerEntry(3, (5,), "c", 0.5, True, 0.02, eq.LOCAL),
           eq.LedgerEntry(4, (3,), "d", 0.1, True, 0.005, eq.LOCAL)]
    c = cv.seed_curves(log, window=2)
    assert c["best"] == [None, 0.3, 0.5, 0.5]  # the over-budget 0.9 never counts
    assert c["reward"] == [None, 0.3, pytest.approx(0.4), pytest.approx(0.3)]


def test_learning_and_picks_summaries(tmp_path):
    b = budget(0.02)
    runs = {s: eq.compare_seed(b, shared(), SMALL, 10, seed=s, race_n=None) for s in (0, 1)}
    c = cv.curves(runs)
    lr = cv.learning(runs, c["length"])
    assert set(lr["best_after_length"]) == {"ddpg", "random", "greedy"}
    assert {"ddpg_warmup", "ddpg_agent", "random"} <= set(lr["proposed_mean_reward"])
    assert isinstance(lr["ddpg_agent_proposals_above_random"], bool)
    pk = cv.picks(runs)
    share = pk["ddpg_from_warmup"]
    assert share["picks"] == 2 and share["share"] == share["from_warmup"] / 2
    assert share["from_warmup"] == sum(bool(runs[s]["ddpg"].pick["from_warmup"]) for s in (0, 1))
    cv.curves_plot(c, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_policy_keys_in_the_ledger_are_the_cache_keys():
    b = budget()
    p = BitPolicy.from_bits(b.names, (3, 3, 3))
    ledger = eq.Ledger(shared(), b)
    ledger.evaluate(p)
    assert ledger.log[0].key == p.key and ledger.seen(p) and not ledger.seen(p, n=64)


def test_ddpg_stops_at_its_certification_cap_as_a_complete_run():
    run = eq.run_ddpg(budget(0.02), shared(), SMALL, 40, seed=2, max_certifications=5, race=0)
    assert run.search_certifications == 5 and run.result.complete
    assert run.extra["episodes"] < 40 and len(run.result.trace) == run.extra["episodes"]
