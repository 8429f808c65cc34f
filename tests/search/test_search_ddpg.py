"""DDPG components: exploration noise, replay buffer, learning, repeatability, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paramverify.errors import SpecError
from paramverify.search.ddpg import DDPGAgent, DDPGConfig, ReplayBuffer, truncated_normal


def test_truncated_normal_stays_in_bounds_and_centres_on_mu():
    rng = np.random.default_rng(0)
    draws = np.array([truncated_normal(0.7, 0.1, 0.0, 1.0, rng) for _ in range(600)])
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert abs(draws.mean() - 0.7) < 0.015
    wide = np.array([truncated_normal(0.95, 2.0, 0.0, 1.0, rng) for _ in range(300)])
    assert wide.min() >= 0.0 and wide.max() <= 1.0 and wide.std() > 0.2  # nearly uniform when sigma is large


def test_exploration_decays_after_warmup():
    agent = DDPGAgent(3, DDPGConfig(hidden=8, warmup=5, init_delta=0.5, delta_decay=0.9), seed=0)
    assert agent.delta(0) == agent.delta(5) == 0.5
    assert agent.delta(7) == pytest.approx(0.5 * 0.81)


def test_replay_buffer_is_a_ring_and_samples_stored_transitions():
    buf = ReplayBuffer(4, 2)
    for i in range(6):
        buf.add(np.full(2, i), i / 10, float(i), np.full(2, i + 1), i == 5)
    assert buf.size == 4 and buf.pos == 2
    assert sorted(buf.r[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    s, a, r, s2, d = buf.sample(50, np.random.default_rng(0))
    assert np.allclose(a[:, 0], r[:, 0] / 10)
    assert np.all(s[:, 0] == r[:, 0]) and np.all(s2[:, 0] == r[:, 0] + 1)
    assert np.all(d[:, 0] == (r[:, 0] == 5.0))
    clone = ReplayBuffer(4, 2)
    clone.load_state_dict(buf.state_dict())
    assert np.array_equal(clone.s, buf.s) and clone.pos == buf.pos


def _bandit(agent: DDPGAgent, steps: int, rng: np.random.Generator) -> None:
    """One-step episodes from a fixed state; the reward is the action itself."""
    s = np.ones(3, dtype=np.float32)
    for ep in range(steps):
        a = agent.select_action(s, ep)
        agent.observe(s, a, a, np.zeros(3), True)
        if ep >= agent.config.warmup:
            agent.update()


def test_agent_learns_to_raise_an_action_whose_reward_is_the_action():
    agent = DDPGAgent(3, DDPGConfig(hidden=32, warmup=20, batch_size=32, lr_actor=1e-3), seed=1)
    before = agent.greedy_action(np.ones(3, dtype=np.float32))
    _bandit(agent, 300, np.random.default_rng(0))
    after = agent.greedy_action(np.ones(3, dtype=np.float32))
    assert after > max(before, 0.9)


def test_agent_is_repeatable_from_its_seed_and_from_a_checkpoint():
    cfg = DDPGConfig(hidden=16, warmup=5, batch_size=8)
    a, b = DDPGAgent(3, cfg, seed=7), DDPGAgent(3, cfg, seed=7)
    _bandit(a, 30, np.random.default_rng(0))
    _bandit(b, 30, np.random.default_rng(0))
    s = np.ones(3, dtype=np.float32)
    assert a.greedy_action(s) == b.greedy_action(s)
    c = DDPGAgent(3, cfg, seed=123)  # other seed, then overwritten by a's state
    c.load_state_dict(a.state_dict())
    assert [a.select_action(s, 40) for _ in range(5)] == [c.select_action(s, 40) for _ in range(5)]
    assert a.update() == c.update()
    with pytest.raises(SpecError):
        DDPGAgent(3, DDPGConfig(hidden=17), seed=0).load_state_dict(a.state_dict())


def test_checkpoint_state_survives_torch_save_with_weights_only(tmp_path):
    agent = DDPGAgent(3, DDPGConfig(hidden=8, warmup=0, batch_size=4), seed=0)
    _bandit(agent, 6, np.random.default_rng(0))
    torch.save(agent.state_dict(), tmp_path / "a.pt")
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    other = DDPGAgent(3, DDPGConfig(hidden=8, warmup=0, batch_size=4), seed=5)
    other.load_state_dict(loaded)
    assert other.rng.bit_generator.state == agent.rng.bit_generator.state
    assert other.buffer.size == agent.buffer.size == 6


def test_config_rejects_bad_values():
    with pytest.raises(SpecError):
        DDPGConfig(hidden=0)
    with pytest.raises(SpecError):
        DDPGConfig(tau=-1.0)
