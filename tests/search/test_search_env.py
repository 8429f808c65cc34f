"""The environment, the evaluation cache and the DDPG loop (synthetic reward)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("torch")

from paramverify.errors import SpecError
from paramverify.options import Deadline
from paramverify.search.ddpg import DDPGConfig
from paramverify.search.env import STATE_DIM, CachedEvaluator, QuantEnv
from paramverify.search.runner import DDPGSearch
from paramverify.search.space import Budget

from .nets import SyntheticEvaluator, layers

MACS = [200, 2000, 400, 50]


def make_env(frac: float = 0.02, constraint: str = "wall", **kw) -> QuantEnv:
    return QuantEnv(Budget(layers(MACS), frac), CachedEvaluator(SyntheticEvaluator([1, 3, 1, 0.5], **kw)), constraint)


def test_states_are_normalised_layer_embeddings_with_budget_features():
    env = make_env()
    s = env.reset()
    assert s.shape == (STATE_DIM,) and s.dtype == np.float32
    assert s[0] == 0.0 and s[1] == 1.0  # first layer, a conv
    assert np.all((s[2:8] >= 0) & (s[2:8] <= 1))
    assert s[8] == 0.0 and s[9] == 0.0 and s[10] > 0  # no previous action, nothing spent yet
    s1, executed = env.step(1.0)
    assert executed == env.budget.bit_range.to_action(8)
    assert s1[8] == pytest.approx(executed) and s1[9] > 0  # the previous action and the spent BitOps
    for _ in range(2):
        env.step(0.0)
    last, _ = env.step(0.5)
    assert last is None
    with pytest.raises(SpecError):
        env.step(0.5)


def test_every_executed_policy_meets_the_budget_under_the_wall():
    env = make_env(0.02)
    rng = np.random.default_rng(0)
    for _ in range(40):
        env.reset()
        for _ in range(env.n_layers):
            env.step(float(rng.uniform()))
        res = env.finish()
        assert res.fits and res.bitops_fraction <= 0.02
        assert all(e <= r for e, r in zip(res.policy.weight_bits, res.requested))


def test_penalty_mode_keeps_the_policy_and_lowers_the_reward():
    env = make_env(0.02, constraint="penalty")
    res = env.evaluate_bits((8, 8, 8, 8))
    assert not res.fits and res.policy.weight_bits == (8, 8, 8, 8)
    assert res.reward == pytest.approx(res.evaluation.reward - (res.bitops_fraction / 0.02 - 1.0))
    with pytest.raises(SpecError):
        QuantEnv(env.budget, env.evaluator, "soft")


def test_cache_counts_certifications_once_per_policy():
    env = make_env()
    inner = env.evaluator.evaluator
    for _ in range(3):
        env.evaluate_bits((2, 2, 2, 2))
    env.evaluate_bits((3, 2, 2, 2))
    assert inner.calls == 2 and env.evaluator.requests == 4 and env.evaluator.computed == 2
    clone = CachedEvaluator(SyntheticEvaluator([0, 0, 0, 0]))
    clone.load(env.evaluator.state())
    ev, hit = clone.evaluate(env.budget.policy((3, 2, 2, 2)))
    assert hit and ev.reward == env.evaluate_bits((3, 2, 2, 2)).evaluation.reward


def _history(search: DDPGSearch) -> list[tuple[tuple[int, ...], float]]:
    return [(h.policy.weight_bits, h.reward) for h in search.history]


CFG = DDPGConfig(hidden=16, warmup=4, batch_size=8)


def test_ddpg_search_is_seeded_and_finds_a_good_policy_within_budget():
    a = DDPGSearch(make_env(), CFG, 25, seed=3)
    b = DDPGSearch(make_env(), CFG, 25, seed=3)
    ra, rb = a.run(), b.run()
    assert _history(a) == _history(b)
    assert ra.best.policy == rb.best.policy and ra.complete
    assert all(h.fits for h in a.history)
    assert ra.best.reward == max(h.reward for h in a.history)
    assert ra.evaluations == 25 and ra.computed <= 25
    other = DDPGSearch(make_env(), CFG, 25, seed=4)
    other.run()
    assert _history(other) != _history(a)
    # "good": the 25-episode search lands in the top 1% of the 907 policies that fit the
    # budget (enumerated here) and within 0.5% of the true optimum of the synthetic reward
    env = make_env()
    weights, shape = env.evaluator.evaluator.weights, env.evaluator.evaluator.shape
    fitting = np.array([
        sum(w * shape(b) for w, b in zip(weights, bits))
        for bits in itertools.product(range(env.budget.bit_range.lo, env.budget.bit_range.hi + 1), repeat=len(MACS))
        if env.budget.fits(env.budget.policy(bits))
    ])
    assert len(fitting) > 100
    assert np.mean(fitting <= ra.best.reward) >= 0.99
    assert ra.best.reward >= 0.995 * fitting.max()


def test_resume_from_a_checkpoint_continues_exactly():
    straight = DDPGSearch(make_env(), CFG, 12, seed=5)
    straight.run()
    first = DDPGSearch(make_env(), CFG, 6, seed=5)
    env1 = first.env
    first.run()
    js, agent = first.state()
    cache = env1.evaluator.state()
    second_env = make_env()
    second_env.evaluator.load(cache)
    second = DDPGSearch(second_env, CFG, 12, seed=999)  # the seed comes from the checkpoint
    second.load(js, agent)
    second.run()
    assert _history(second) == _history(straight)


def test_keyboard_interrupt_returns_the_best_so_far_and_keeps_the_last_checkpoint():
    env = make_env(interrupt_at=7)  # the 7th certification raises KeyboardInterrupt
    search = DDPGSearch(env, CFG, 20, seed=1)
    saved: list[int] = []
    res = search.run(on_episode=lambda: saved.append(len(search.history)))
    assert not res.complete and "interrupted" in res.note
    assert len(search.history) == saved[-1] and len(search.history) < 20
    assert res.best.fits


def test_deadline_before_any_episode_is_an_error():
    search = DDPGSearch(make_env(), CFG, 50, seed=1)
    with pytest.raises(SpecError, match="no episode finished"):
        search.run(deadline=Deadline(0.0))  # already expired: no episode runs
    assert search.history == []


def test_deadline_after_some_episodes():
    search = DDPGSearch(make_env(), CFG, 50, seed=1)
    calls = {"n": 0}

    class After:
        def expired(self) -> bool:
            calls["n"] += 1
            return calls["n"] > 3

        def interrupted(self) -> bool:  # a time limit, not a signal
            return False

    res = search.run(deadline=After())  # type: ignore[arg-type]
    assert len(search.history) == 3 and not res.complete and "time limit" in res.note
