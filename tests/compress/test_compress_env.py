"""The compression environment, its reward and the baselines."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from paramverify.compress.arch import WIDTH_RATIOS, apply_actions, arch_macs
from paramverify.compress.baselines import rule_chain, run_baseline, uniform_candidates
from paramverify.compress.env import CompressEnv, EnvConfig
from paramverify.compress.space import (
    STATE_DIM,
    project_to_budget,
    state,
    teacher_choice,
    to_actions,
)
from paramverify.compress.tasks import Task
from paramverify.compress.train import TrainConfig
from paramverify.errors import SpecError


def test_evaluation_is_within_budget_deterministic_and_rewarded_as_documented(tiny_env):
    full = [teacher_choice(s) for s in tiny_env.arch.stages]  # the teacher itself: over a 50% budget
    a = tiny_env.evaluate(full)
    assert a.within_budget and a.macs <= tiny_env.max_macs < tiny_env.teacher_macs
    assert a.macs == arch_macs(apply_actions(tiny_env.arch, to_actions(list(a.choices))))
    assert a.macs_fraction == pytest.approx(a.macs / tiny_env.teacher_macs)
    want = a.adv_acc / tiny_env.teacher_adv * (tiny_env.teacher_macs / a.macs) ** tiny_env.config.flops_weight
    assert a.reward == pytest.approx(want)
    b = tiny_env.evaluate(full)
    assert (b.adv_acc, b.clean_acc, b.reward) == (a.adv_acc, a.clean_acc, a.reward)
    assert (a.index, b.index) == (0, 1) and tiny_env.evaluations == 2


def test_penalty_mode_keeps_an_over_budget_choice_and_penalises_it(tiny_teacher, digits_small):
    env = CompressEnv(tiny_teacher, Task(eps=0.05, steps=3, train_steps=2), digits_small,
                      EnvConfig(budget=0.5, constraint="penalty", penalty=2.0, finetune=TrainConfig(steps=0)))
    full = [teacher_choice(s) for s in env.arch.stages]
    ev = env.evaluate(full)
    assert not ev.within_budget and ev.macs == env.teacher_macs
    assert ev.reward == pytest.approx(ev.adv_acc / env.teacher_adv - 2.0 * (env.teacher_macs / env.max_macs - 1.0))


def test_budget_below_the_smallest_subnet_is_refused(tiny_teacher, digits_small):
    with pytest.raises(SpecError, match="budget"):
        CompressEnv(tiny_teacher, Task(eps=0.05, steps=3), digits_small, EnvConfig(budget=0.001))


def test_projection_narrows_the_most_expensive_stage_first(tiny_env):
    full = [teacher_choice(s) for s in tiny_env.arch.stages]
    got = project_to_budget(tiny_env.arch, full, tiny_env.max_macs)
    assert arch_macs(apply_actions(tiny_env.arch, to_actions(got))) <= tiny_env.max_macs
    assert project_to_budget(tiny_env.arch, got, tiny_env.max_macs) == got  # fits: unchanged


def test_state_has_the_documented_size_and_sees_the_budget(tiny_env):
    s = state(tiny_env.arch, tiny_env.features, 1, 2, [teacher_choice(tiny_env.arch.stages[0])], [3, 0])
    assert s.shape == (STATE_DIM,) and np.isfinite(s).all()
    assert tiny_env.features.budget in s


def test_baselines_use_the_given_number_of_evaluations_within_budget(tiny_env):
    for name in ("random", "uniform", "rule"):
        start = tiny_env.evaluations
        evs = run_baseline(name, tiny_env, 3, seed=0)
        assert len(evs) == tiny_env.evaluations - start <= 3
        assert all(e.within_budget for e in evs)
    assert len(run_baseline("random", tiny_env, 3, seed=5)) == 3
    with pytest.raises(SpecError):
        run_baseline("bogus", tiny_env, 1, seed=0)


def test_random_baseline_resumes_where_it_stopped(tiny_env):
    done = run_baseline("random", tiny_env, 2, seed=3)
    resumed = run_baseline("random", tiny_env, 3, seed=3, done=done[:1])
    assert [e.choices for e in resumed[:2]] == [e.choices for e in done]


def test_rule_deepens_before_widening(tiny_env):
    chain = rule_chain(tiny_env)
    assert chain and chain[0][0][0] == 0
    for a, b in itertools.pairwise(chain):
        if b[0][0] > a[0][0]:  # a widening step: no stage could still be deepened within the budget
            for i, s in enumerate(tiny_env.arch.stages):
                if a[i][1] + 1 < s.depth:
                    deeper = [list(c) for c in a]
                    deeper[i][1] += 1
                    assert arch_macs(apply_actions(tiny_env.arch, to_actions([tuple(c) for c in deeper]))) > tiny_env.max_macs
    uni = uniform_candidates(tiny_env)
    assert uni and all(len({c[0] for c in cand}) == 1 for cand in uni)
    assert max(WIDTH_RATIOS[c[0][0]] for c in uni) <= 1.0


def test_certified_reward_uses_smoothing_certificates(tiny_teacher, digits_small):
    from dataclasses import replace

    from paramverify.smoothing.core import Smooth, SmoothOptions, input_seed

    small = replace(digits_small, eval_x=digits_small.eval_x[:8], eval_y=digits_small.eval_y[:8])
    cfg = EnvConfig(budget=0.6, reward="certified", cert_sigma=0.1, cert_radius=0.0, cert_n0=8, cert_n=40,
                    cert_alpha=0.01, finetune=TrainConfig(steps=1, batch=8, noise_sigma=0.1))
    env = CompressEnv(tiny_teacher, Task(eps=0.05, steps=2, train_steps=1), small, cfg)
    assert env.teacher_acc == env.teacher_cert and 0 < env.teacher_cert <= 1
    ev = env.evaluate([teacher_choice(s) for s in env.arch.stages])
    assert ev.cert_acc is not None and ev.acc == ev.cert_acc
    assert ev.reward == pytest.approx(ev.cert_acc / env.teacher_cert * (1 / ev.macs_fraction) ** cfg.flops_weight)
    # the teacher's certified accuracy is the share of images certified correct, recomputed here;
    # image i draws its noise from its own seed input_seed(seed, i), whatever the order
    smooth = Smooth(tiny_teacher, 10, SmoothOptions(sigma=0.1, batch_size=40))
    hits = sum(int(smooth.certify(small.eval_x[i], 8, 40, 0.01, seed=input_seed(0, i)).predict == int(small.eval_y[i]))
               for i in reversed(range(8)))
    assert env.teacher_cert == hits / 8


def test_larger_actions_keep_more_of_the_teacher():
    from paramverify.compress.arch import StageSpec
    from paramverify.compress.space import DECISIONS, decode, encode, n_options

    for stage in (StageSpec(8, 3, 1), StageSpec(8, 2, 2, "dws", "silu", "none")):
        assert tuple(decode(0.999, k, stage) for k in range(len(DECISIONS))) == teacher_choice(stage)
        assert decode(0.0, 0, stage) == 0 and decode(0.0, 1, stage) == 0  # narrowest, one block
        for k in range(len(DECISIONS)):
            picked = {decode(a, k, stage) for a in np.linspace(0, 1, 50)}
            assert picked == set(range(n_options(k, stage)))  # every option reachable
            assert all(decode(encode(i, k, stage), k, stage) == i for i in picked)
