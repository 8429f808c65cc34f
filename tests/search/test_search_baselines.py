"""Baselines at the same budget: uniform, greedy sensitivity, random search."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from paramverify.search import baselines as bl
from paramverify.search.env import CachedEvaluator, EpisodeResult, Evaluation, QuantEnv
from paramverify.search.space import BitPolicy, Budget

from .nets import SyntheticEvaluator, layers


def env_for(weights, macs=(1000, 1000, 1000), frac=0.02) -> QuantEnv:
    return QuantEnv(Budget(layers(list(macs)), frac), CachedEvaluator(SyntheticEvaluator(weights)))


@pytest.mark.parametrize("frac", [0.005, 0.01, 0.02, 0.1])
def test_every_baseline_meets_the_budget(frac):
    env = env_for([1, 2, 3], frac=frac)
    for res in (bl.uniform(env), bl.greedy(env), bl.random_search(env, 15, seed=0)):
        assert res.best.fits and res.best.bitops_fraction <= frac
        assert res.budget == frac


def test_uniform_takes_the_largest_uniform_width():
    env = env_for([1, 1, 1], frac=9.5 / 1024)
    res = bl.uniform(env)
    assert res.best.policy.weight_bits == (3, 3, 3) and res.computed == 1


def test_greedy_takes_bits_from_the_insensitive_layer_first():
    # layer 0 barely matters, layer 2 matters most; budget = BitOps of (2, 6, 8) (equal MACs)
    env = env_for([0.001, 1.0, 10.0], frac=(2 * 2 + 6 * 6 + 8 * 8) / (3 * 1024))
    res = bl.greedy(env)
    assert res.best.policy.weight_bits == (2, 6, 8)
    steps = [t.policy.weight_bits for t in res.trace[1:]]
    assert steps == [(7, 8, 8), (6, 8, 8), (5, 8, 8), (4, 8, 8), (3, 8, 8), (2, 8, 8), (2, 7, 8), (2, 6, 8)]
    assert res.evaluations == 1 + 8 * 3 - 2  # the start, then one candidate per layer above 2 bits per step
    assert res.computed == res.evaluations  # all distinct policies


def test_random_search_is_seeded_and_returns_its_best_trial():
    a = bl.random_search(env_for([1, 2, 3]), 12, seed=4)
    b = bl.random_search(env_for([1, 2, 3]), 12, seed=4)
    assert [t.policy for t in a.trace] == [t.policy for t in b.trace]
    assert a.best.reward == max(t.reward for t in a.trace)
    c = bl.random_search(env_for([1, 2, 3]), 12, seed=5)
    assert [t.policy for t in c.trace] != [t.policy for t in a.trace]


def test_best_of_prefers_reward_then_fewer_bitops_and_skips_over_budget():
    def res(reward, frac, fits=True):
        p = BitPolicy.from_bits(("a",), (2,))
        return EpisodeResult((2,), p, reward, Evaluation(reward), frac, fits, False)

    assert bl.best_of([res(0.5, 0.01), res(0.7, 0.02), res(0.9, 0.5, fits=False)]).reward == 0.7
    assert bl.best_of([res(0.7, 0.02), res(0.7, 0.01)]).bitops_fraction == 0.01
    assert bl.best_of([res(1.0, 0.5, fits=False)]) is None


def test_method_result_round_trips_through_json():
    res = bl.uniform(env_for([1, 1, 1]))
    back = bl.MethodResult.from_json(res.to_json())
    assert back.best.policy == res.best.policy and back.computed == res.computed and back.method == "uniform"


class RaceEvaluator:
    """Hand-made rewards: ``table[bits] = (reward at n_q, reward at the final n)``; default 0.5 / 0.5."""

    def __init__(self, table):
        self.table = table

    def evaluate(self, policy):
        return Evaluation(self.table.get(policy.weight_bits, (0.5, 0.5))[0], samples=10)

    def evaluate_n(self, policy, n):
        return Evaluation(self.table.get(policy.weight_bits, (0.5, 0.5))[1], samples=10 * n)


# (8, 8, 7) and (8, 8, 8) tie at n_q (the reward saturates); with more samples (8, 8, 8) is better
TIE = {(8, 8, 7): (1.0, 0.980), (8, 8, 8): (1.0, 0.995), (8, 7, 7): (0.9, 0.999)}


def race_env(table=TIE, frac=0.1):
    return QuantEnv(Budget(layers([1000, 1000, 1000]), frac), CachedEvaluator(RaceEvaluator(table)))


def test_final_race_breaks_a_tie_at_reward_n_with_more_samples():
    env = race_env()
    results = [env.evaluate_bits(b) for b in [(8, 8, 7), (8, 8, 8), (8, 8, 7), (8, 7, 7), (2, 2, 2)]]
    # without the race: the tie goes to fewer BitOps
    assert bl.best_of(results).policy.weight_bits == (8, 8, 7)
    cfg = bl.RaceConfig(top_k=2, n=512, tolerance=0.0)
    winner, record = bl.race(env, results, cfg)
    assert winner.policy.weight_bits == (8, 8, 8) and record["changed"] and record["winner"] == 1
    assert [c["bits"] for c in record["candidates"]] == [[8, 8, 7], [8, 8, 8]]  # distinct, top 2 by search reward
    assert [c["search_reward"] for c in record["candidates"]] == [1.0, 1.0]
    assert [c["final_reward"] for c in record["candidates"]] == [0.980, 0.995]
    assert record["certifications"] == 2 and record["samples"] == 2 * 10 * 512 and record["n"] == 512
    # (8, 7, 7) enters with top_k 3 or within the tolerance, and wins at the final n
    assert bl.race(env, results, bl.RaceConfig(top_k=2, n=512, tolerance=0.1))[0].policy.weight_bits == (8, 7, 7)
    assert bl.race(env, results, bl.RaceConfig(top_k=3, n=512, tolerance=0.0))[0].policy.weight_bits == (8, 7, 7)
    # at most max(top_k, max_candidates) policies
    many = [env.evaluate_bits(b) for b in [(2, 2, 2), (2, 2, 3), (2, 3, 2), (3, 2, 2)]]
    assert len(bl.race_candidates(many, bl.RaceConfig(top_k=1, tolerance=1.0, max_candidates=3))) == 3
    # one candidate: no race
    assert bl.race(env, results[:1], cfg) is None


def test_final_race_ties_go_to_fewer_bitops():
    env = race_env({(8, 8, 7): (1.0, 0.99), (8, 8, 8): (1.0, 0.99)})
    results = [env.evaluate_bits(b) for b in [(8, 8, 8), (8, 8, 7)]]
    winner, record = bl.race(env, results, bl.RaceConfig(top_k=5, n=64))
    assert winner.policy.weight_bits == (8, 8, 7) and not record["changed"]


def test_random_search_races_its_best_and_counts_the_cost():
    table = {b: (1.0, 0.9 + 0.01 * sum(b)) for b in
             [(i, j, k) for i in range(2, 9) for j in range(2, 9) for k in range(2, 9)]}
    plain = bl.random_search(race_env(table), 6, seed=1)
    raced = bl.random_search(race_env(table), 6, seed=1, final=bl.RaceConfig(top_k=5, n=256, tolerance=0.0))
    assert [t.policy for t in plain.trace] == [t.policy for t in raced.trace]
    assert "final_race" not in plain.extra  # racing off: the old behaviour
    cands = raced.extra["final_race"]["candidates"]
    distinct = {t.policy.key for t in raced.trace}
    assert len(cands) == len(distinct) > 5  # all tie at n_q: every tied policy enters, beyond top_k
    best_final = max(c["final_reward"] for c in cands)
    assert raced.best.policy.weight_bits == tuple(next(c["bits"] for c in cands if c["final_reward"] == best_final))
    k = len(cands)
    assert raced.computed == plain.computed + k and raced.samples == plain.samples + k * 10 * 256
    back = bl.MethodResult.from_json(raced.to_json())
    assert back.final_race["winner_key"] == raced.best.policy.key and back.computed == raced.computed


def test_greedy_races_its_last_step():
    # equal MACs; budget = BitOps of (8, 8, 7): the last step from (8, 8, 8) has three tied candidates
    frac = (8 * 8 * 2 + 7 * 7) / (3 * 1024)
    table = {(7, 8, 8): (1.0, 0.97), (8, 7, 8): (1.0, 0.99), (8, 8, 7): (1.0, 0.98), (8, 8, 8): (1.0, 1.0)}
    plain = bl.greedy(race_env(table, frac))
    assert plain.best.policy.weight_bits == (7, 8, 8)  # tie -> same saving -> first layer
    raced = bl.greedy(race_env(table, frac), final=bl.RaceConfig(top_k=5, n=128))
    assert raced.best.policy.weight_bits == (8, 7, 8) and raced.trace[-1].policy.weight_bits == (8, 7, 8)
    assert raced.extra["final_race"]["candidates"][0]["bits"] == [7, 8, 8]
    assert raced.computed == plain.computed + 3


def test_race_settings_are_checked():
    from paramverify.errors import SpecError
    from paramverify.search.pipeline import SearchSettings

    with pytest.raises(SpecError) as info:
        SearchSettings(float_n=500, final_n=600)
    assert info.value.field == "final_n" and "float_n" in str(info.value)
    with pytest.raises(SpecError):
        SearchSettings(reward_n=128, final_n=128)
    with pytest.raises(SpecError):
        SearchSettings(final_top_k=-1)
    assert SearchSettings().final_samples == 512 and SearchSettings(float_n=300).final_samples == 300
    assert SearchSettings(final_top_k=0).race_config() is None
    assert SearchSettings(formal=True).race_config() is None
    assert SearchSettings().race_config() == bl.RaceConfig(top_k=5, n=512, tolerance=0.01, max_candidates=10)
    assert SearchSettings().fingerprint()["final_n"] == 512
