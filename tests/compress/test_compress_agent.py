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
