"""The agent: dual-level training and checkpoint/resume."""

from __future__ import annotations

import pytest

from tests.compress.stops import StopAfter

from paramverify.compress.agent import AgentRun, default_ddpg
from paramverify.compress.env import CompressEnv, EnvConfig
from paramverify.compress.tasks import Task
from paramverify.compress.train import TrainConfig
from paramverify.errors import SpecError


@pytest.fixture
def envs(tiny_teacher, digits_small):
    cfg = EnvConfig(budget=0.5, finetune=TrainConfig(steps=2, batch=16))
    meta = [CompressEnv(tiny_teacher, Task(eps=0.05, steps=2, train_steps=1), digits_small, cfg),
            CompressEnv(tiny_teacher, Task(attack="square", eps=0.08, steps=2, train_steps=1), digits_small, cfg)]
    new = [CompressEnv(tiny_teacher, Task(eps=0.1, steps=2, train_steps=1), digits_small, cfg)]
    return {"meta": meta, "finetune": new}


def _run(envs, tmp_path, stop_after=None, name="ck.pt"):
    plan = [("meta", 4), ("finetune", 2)]
    run = AgentRun(default_ddpg(warmup=2), seed=7, plan=plan, checkpoint=tmp_path / name)
    if stop_after is not None:  # an interrupted run (the deadline passes after `stop_after` episodes)
        assert not run.run(lambda p: envs[p], deadline=StopAfter(stop_after))
        resumed = AgentRun(default_ddpg(warmup=2), seed=7, plan=plan, checkpoint=tmp_path / name)
        import torch

        resumed.load_state_dict(torch.load(tmp_path / name, weights_only=False))
        assert len(resumed.history) == stop_after
        run = resumed
    assert run.run(lambda p: envs[p])
    return run


def _comparable(step):
    """A step without its timing and the environment's running evaluation number."""
    d = step.to_json()
    d["evaluation"] = {k: v for k, v in d["evaluation"].items() if k not in ("seconds", "index")}
    return d


def test_resumed_run_equals_uninterrupted_run(envs, tmp_path):
    whole = _run(envs, tmp_path, name="a.pt")
    resumed = _run(envs, tmp_path, stop_after=3, name="b.pt")
    assert [_comparable(h) for h in whole.history] == [_comparable(h) for h in resumed.history]
    assert [h.phase for h in whole.history] == ["meta"] * 4 + ["finetune"] * 2
    assert [h.warmup for h in whole.history] == [True, True, False, False, False, False]
    assert {h.task for h in whole.history[:4]} == {e.label() for e in envs["meta"]}
    assert whole.agent.updates == resumed.agent.updates > 0


def test_meta_trained_agent_is_fine_tuned_without_a_new_warmup(envs, tmp_path):
    meta = AgentRun(default_ddpg(warmup=2), seed=1, plan=[("meta", 3)])
    meta.run(lambda p: envs[p])
    meta.save_agent(tmp_path / "agent.pt")
    ft = AgentRun(default_ddpg(warmup=2), seed=1, plan=[("finetune", 2)])
    ft.load_agent(tmp_path / "agent.pt")
    assert ft.episode_offset() == 3
    # fine-tuning explores again: its noise restarts at FINETUNE_DELTA whatever meta-training left
    from paramverify.compress.agent import FINETUNE_DELTA

    assert 0.9 * FINETUNE_DELTA < ft.agent.delta(ft.finetune_episode(0)) <= FINETUNE_DELTA
    assert ft.finetune_episode(1) == ft.finetune_episode(0) + 1
    ft.run(lambda p: envs[p])
    assert [h.warmup for h in ft.history] == [False, False] and ft.agent.updates > meta.agent.updates
    with pytest.raises(SpecError):
        AgentRun(default_ddpg(warmup=2), seed=2, plan=[("meta", 3)]).load_state_dict(meta.state_dict())


def test_a_file_that_is_no_agent_is_a_spec_error(tmp_path):
    bad = tmp_path / "agent.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="agent"):
        AgentRun(default_ddpg(), seed=0, plan=[("finetune", 1)]).load_agent(bad)


def test_screening_takes_the_critics_favourite_among_untried_rollouts(tiny_env):
    """The critic is replaced by a known score (the sum of the rollout's actions), so the
    chosen rollout can be checked against every candidate; a tried sub-network is skipped."""
    import numpy as np

    from paramverify.compress.agent import rollout, screened_rollout
    from paramverify.search.ddpg import DDPGAgent

    agent = DDPGAgent(len(rollout(tiny_env, lambda s: 0.5).states[0]), default_ddpg(warmup=0), seed=3)
    agent.values = lambda states, actions: np.asarray(actions, dtype=float)  # mean Q = mean action
    seen = []
    real = agent.select_action

    def spy(state, episode):
        a = real(state, episode)
        seen.append(a)
        return a

    agent.select_action = spy
    n_decisions = len(rollout(tiny_env, lambda s: 0.5).actions)
    chosen = screened_rollout(agent, tiny_env, episode=5, candidates=6, tried=set())
    noisy = [seen[i * n_decisions:(i + 1) * n_decisions] for i in range(5)]
    assert len(seen) == 5 * n_decisions  # the greedy rollout and five noisy ones
    greedy = rollout(tiny_env, agent.greedy_action)
    best = max([list(greedy.actions)] + noisy, key=np.mean)
    assert list(chosen.actions) == best
    # the favourite, once tried, is skipped: the next best untried rollout is taken
    agent.rng = np.random.default_rng(0)
    first = screened_rollout(agent, tiny_env, episode=5, candidates=6, tried=set())
    agent.rng = np.random.default_rng(0)
    key = tuple(tuple(c) for c in tiny_env.project(list(first.choices)))
    second = screened_rollout(agent, tiny_env, episode=5, candidates=6, tried={key})
    assert tuple(tuple(c) for c in tiny_env.project(list(second.choices))) != key
    assert np.mean(second.actions) <= np.mean(first.actions)


def test_fine_tuning_never_evaluates_a_sub_network_twice(envs):
    run = AgentRun(default_ddpg(warmup=1), seed=5, plan=[("meta", 2), ("finetune", 4)])
    assert run.run(lambda p: envs[p])
    picked = [h.evaluation.choices for h in run.history if h.phase == "finetune"]
    assert len(picked) == 4 and len(set(picked)) == 4
    with pytest.raises(SpecError, match="screen"):
        AgentRun(default_ddpg(), seed=0, plan=[("finetune", 1)], screen=0)
