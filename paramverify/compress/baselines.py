"""Baselines of the compression search, each given the same number of evaluations as the agent.

* ``uniform``: one width ratio and one depth fraction for every stage (the teacher's block
  choices), the ``n`` most expensive such sub-networks within the budget, most expensive first;
* ``random``: ``n`` uniformly random choices per stage (projected onto the budget like the
  agent's);
* ``rule``: a fixed rule in the spirit of RobustResNet (Huang et al. 2023: under a budget,
  deep and narrow is more robust than wide and shallow): start from the narrowest, shallowest
  network and *deepen before widening*: add blocks stage by stage, later stages first, while
  the budget allows, then widen all stages together one option at a time; the last ``n``
  networks of that growth chain (the largest ones) are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from paramverify.compress.arch import (
    ACTIVATIONS,
    CONV_TYPES,
    NORMS,
    WIDTH_RATIOS,
    apply_actions,
    arch_macs,
)
from paramverify.compress.env import Choice, CompressEnv, Evaluation
from paramverify.compress.jobs import evaluate_plan
from paramverify.compress.space import to_actions
from paramverify.errors import SpecError

BASELINES = ("uniform", "random", "rule")
Hook = Callable[[Evaluation], None]


def _macs(env: CompressEnv, choices: list[Choice]) -> int:
    return arch_macs(apply_actions(env.arch, to_actions(choices)))


def _keep(env: CompressEnv, w: int, d: int, s: int) -> Choice:
    t = env.arch.stages[s]
    return (w, d, CONV_TYPES.index(t.conv), ACTIVATIONS.index(t.act), NORMS.index(t.norm))


def uniform_candidates(env: CompressEnv) -> list[list[Choice]]:
    """Every uniform scaling within the budget, most expensive first."""
    cands = []
    max_depth = max(s.depth for s in env.arch.stages)
    for w in range(len(WIDTH_RATIOS)):
        for k in range(1, max_depth + 1):
            choices = [_keep(env, w, max(0, min(s.depth, int(np.ceil(k / max_depth * s.depth))) - 1), i)
                       for i, s in enumerate(env.arch.stages)]
            if choices not in cands and _macs(env, choices) <= env.max_macs:
                cands.append(choices)
    return sorted(cands, key=lambda c: -_macs(env, c))


def rule_chain(env: CompressEnv) -> list[list[Choice]]:
    """The deepen-before-widening growth chain within the budget (see the module docstring)."""
    n = len(env.arch.stages)
    cur = [_keep(env, 0, 0, i) for i in range(n)]
    if _macs(env, cur) > env.max_macs:
        return []
    chain = [list(cur)]
    grew = True
    while grew:
        grew = False
        for i in reversed(range(n)):  # deepen: later stages first
            while cur[i][1] + 1 < env.arch.stages[i].depth:
                nxt = list(cur)
                nxt[i] = (cur[i][0], cur[i][1] + 1, *cur[i][2:])  # type: ignore[assignment]
                if _macs(env, nxt) > env.max_macs:
                    break
                cur = nxt
                chain.append(list(cur))
                grew = True
        if cur[0][0] + 1 < len(WIDTH_RATIOS):  # then widen every stage together
            nxt = [(c[0] + 1, *c[1:]) for c in cur]  # type: ignore[misc]
            if _macs(env, nxt) <= env.max_macs:
                cur = nxt
                chain.append(list(cur))
                grew = True
    return chain


def random_choices(env: CompressEnv, rng: np.random.Generator) -> list[Choice]:
    from paramverify.compress.space import DECISIONS, n_options

    return [tuple(int(rng.integers(0, n_options(k, s))) for k in range(len(DECISIONS)))  # type: ignore[misc]
            for s in env.arch.stages]


def run_baseline(name: str, env: CompressEnv, n: int, seed: int, hook: Hook | None = None,
                 done: list[Evaluation] | None = None, pool: Any = None) -> list[Evaluation]:
    """``n`` evaluations of baseline ``name``; ``done`` (a resumed run's) are kept, not repeated.

    The candidates are fixed before any is evaluated; with ``pool`` (a RayPool) each is one
    task, and the evaluations come back numbered in plan order (:func:`evaluate_plan`).
    """
    out = list(done or [])
    if name == "random":
        rng = np.random.default_rng(seed)
        plan = [random_choices(env, rng) for _ in range(n)]
    elif name == "uniform":
        plan = uniform_candidates(env)[:n]
    elif name == "rule":
        plan = rule_chain(env)[-n:][::-1]
    else:
        raise SpecError("baselines", f"unknown baseline {name!r}", f"use some of {', '.join(BASELINES)}")

    def keep(ev: Evaluation) -> None:
        out.append(ev)
        if hook is not None:
            hook(ev)

    evaluate_plan(env, plan[len(out):], keep, pool)
    return out
