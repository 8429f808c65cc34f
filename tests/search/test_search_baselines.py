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
