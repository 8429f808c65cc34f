"""The compression agent and its dual-level training (RC-NAS): meta-training over a buffer of
tasks, then fine-tuning on an unseen task in a few episodes.

The policy is the DDPG actor of :mod:`paramverify.search.ddpg` (the same agent, replay
buffer and checkpointable state as the mixed-precision search): one episode makes the
:data:`~paramverify.compress.space.DECISIONS` of every stage in turn, one scalar action each,
from the state of :func:`~paramverify.compress.space.state` (teacher stage, choices so far,
task, budget, Lipschitz estimate).  Every step of an episode is stored with the episode's
reward.  The discount is 0: the critic learns the expected reward of a decision given its
state (each step carries the final reward already, so bootstrapping would count it twice).

* **meta-training**: episodes cycle through the task buffer's environments (teachers x data
  sets x attacks); the first ``warmup`` episodes act at random; after them every episode
  makes one update per step;
* **fine-tuning**: the meta-trained agent continues on the new task's environment without a
  warm-up; its exploration noise restarts at :data:`FINETUNE_DELTA` (0.5) and decays as in
  meta-training (after a long meta-training it would otherwise be ~0: no exploration at all).
  Evaluations are the expensive part, so each fine-tuning episode first draws
  :data:`SCREENED` rollouts (the actor's greedy one and noisy ones) and evaluates the one the
  meta-trained critic rates highest that has not been evaluated yet
  (:func:`screened_rollout`): what meta-training learned about rewards picks the candidates,
  not only the actor's mean.

:class:`AgentRun` checkpoints after every episode (agent, replay buffer, RNG state, history),
so a resumed run makes the choices of an uninterrupted one.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paramverify.compress.env import Choice, CompressEnv, Evaluation
from paramverify.compress.space import DECISIONS, STATE_DIM, decode, state
from paramverify.errors import SpecError
from paramverify.fileio import atomic_path
from paramverify.options import Deadline
from paramverify.search.ddpg import DDPGAgent, DDPGConfig

Progress = Callable[[str], None]
#: exploration noise (standard deviation of the action) at the start of fine-tuning: the agent's
#: initial noise again.  (It was 0.2: around a meta-trained actor that sits near one end of a
#: two-option decision, such as keeping the teacher's BatchNorm, at 0.9-0.99, a noise of 0.2 crosses to
#: the other option in 1.4-3.3% of the draws, 0.5 in 29-32%.)
FINETUNE_DELTA = 0.5
#: rollouts the critic rates per fine-tuning episode (the greedy one and noisy ones; 1: no screening)
SCREENED = 32


def default_ddpg(warmup: int = 20) -> DDPGConfig:
    """The agent's defaults: a smaller network than HAQ's, discount 0 (see the module docstring), and
    HAQ's exploration (initial noise 0.5, decaying 0.99 per episode after the warm-up; 0.97 before
    left a noise under 0.05 after 80 of 200 meta-training episodes: the rest hardly explored)."""
    return DDPGConfig(hidden=128, lr_actor=1e-3, lr_critic=1e-3, discount=0.0, batch_size=64, buffer_size=4000,
                      warmup=warmup, init_delta=0.5, delta_decay=0.99, moving_alpha=0.5)


@dataclass(frozen=True)
class Step:
    """One finished episode: its phase (meta or finetune), task and evaluation."""

    episode: int
    phase: str
    task: str
    warmup: bool
    evaluation: Evaluation

    def to_json(self) -> dict[str, Any]:
        return {"episode": self.episode, "phase": self.phase, "task": self.task, "warmup": self.warmup,
                "evaluation": self.evaluation.to_json()}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Step:
        return Step(int(d["episode"]), d["phase"], d["task"], bool(d["warmup"]), Evaluation.from_json(d["evaluation"]))


@dataclass(frozen=True)
class Rollout:
    """The decisions of one episode before it is evaluated: states, actions, option indices."""

    states: tuple[np.ndarray, ...]
    actions: tuple[float, ...]
    choices: tuple[Choice, ...]


def rollout(env: CompressEnv, act: Callable[[np.ndarray], float]) -> Rollout:
    """Decide every stage of ``env``'s teacher with ``act`` (state -> action in [0, 1])."""
    choices: list[Choice] = []
    states, actions = [], []
    for s, t in enumerate(env.arch.stages):
        cur: list[int] = []
        for k in range(len(DECISIONS)):
            st = state(env.arch, env.features, s, k, choices, cur)  # type: ignore[arg-type]
            a = act(st)
            cur.append(decode(a, k, t))
            states.append(st)
            actions.append(a)
        choices.append(tuple(cur))  # type: ignore[arg-type]
    return Rollout(tuple(states), tuple(actions), tuple(choices))


def screened_rollout(agent: DDPGAgent, env: CompressEnv, episode: int, candidates: int,
                     tried: set[tuple[Choice, ...]]) -> Rollout:
    """The rollout a fine-tuning episode evaluates: of the actor's greedy rollout and
    ``candidates - 1`` noisy ones (the episode's exploration noise), the one the critic rates
    highest (mean ``Q`` over its decisions), skipping sub-networks already in ``tried`` (as
    evaluated: projected onto the budget) while an untried one is among them."""
    pool = [rollout(env, agent.greedy_action)]
    pool += [rollout(env, lambda st: agent.select_action(st, episode)) for _ in range(candidates - 1)]
    fresh = [r for r in pool if tuple(tuple(c) for c in env.project(list(r.choices))) not in tried] or pool
    scores = [float(np.mean(agent.values(np.stack(r.states), np.asarray(r.actions)))) for r in fresh]
    return fresh[int(np.argmax(scores))]


def play_episode(agent: DDPGAgent, env: CompressEnv, episode: int, learn: bool = True,
                 chosen: Rollout | None = None) -> Evaluation:
    """One episode on ``env``: decide every stage (or take ``chosen``), evaluate, store the
    transitions, update."""
    r = chosen if chosen is not None else rollout(env, lambda st: agent.select_action(st, episode))
    states, actions = r.states, r.actions
    ev = env.evaluate(list(r.choices))
    if learn:
        n = len(states)
        for i in range(n):
            agent.observe(states[i], actions[i], ev.reward, states[i + 1] if i + 1 < n else np.zeros(STATE_DIM), i == n - 1)
        if episode >= agent.config.warmup:
            for _ in range(n * agent.config.updates_per_step):
                agent.update()
    return ev


class AgentRun:
    """Meta-training and fine-tuning with checkpoints (see the module docstring).

    ``plan`` is the list of phases ``[("meta", n_episodes), ("finetune", n_episodes)]`` (either
    may be absent); ``envs_for(phase)`` gives that phase's environments (cycled per episode)."""

    def __init__(self, config: DDPGConfig, seed: int, plan: Sequence[tuple[str, int]],
                 checkpoint: Path | None = None, screen: int = SCREENED) -> None:
        for phase, n in plan:
            if phase not in ("meta", "finetune") or n < 0:
                raise SpecError("plan", f"bad phase {phase!r} x {n}")
        if not (isinstance(screen, int) and screen >= 1):
            raise SpecError("screen", f"must be an integer >= 1, got {screen!r}")
        self.config, self.seed, self.plan = config, seed, list(plan)
        self.agent = DDPGAgent(STATE_DIM, config, seed)
        self.history: list[Step] = []
        self.checkpoint = checkpoint
        self.screen = screen
        self.meta_episodes = 0  # episodes of a loaded meta-trained agent

    @property
    def total(self) -> int:
        return sum(n for _, n in self.plan)

    def phase_of(self, episode: int) -> tuple[str, int]:
        """The phase of this run's episode ``episode`` and its index within the phase."""
        k = episode
        for phase, n in self.plan:
            if k < n:
                return phase, k
            k -= n
        return "done", k

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "plan": [list(p) for p in self.plan], "agent": self.agent.state_dict(),
                "meta_episodes": self.meta_episodes, "history": [h.to_json() for h in self.history]}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if int(d["seed"]) != self.seed or [tuple(p) for p in d["plan"]][:len(self.plan)] != \
                [tuple(p) for p in self.plan][:len(d["plan"])]:
            raise SpecError("checkpoint", "was written by a run with another seed or episode plan",
                            "resume with the same settings, or start a new --out folder")
        self.agent.load_state_dict(d["agent"])
        self.meta_episodes = int(d["meta_episodes"])
        self.history = [Step.from_json(h) for h in d["history"]]

    def save(self) -> None:
        if self.checkpoint is not None:
            with atomic_path(self.checkpoint) as tmp:
                torch.save(self.state_dict(), tmp)

    def load_agent(self, path: Path) -> None:
        """Start from a meta-trained agent saved by :meth:`save_agent` (its replay buffer and
        hyper-parameters included)."""
        try:
            d = torch.load(path, weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise SpecError("agent", f"cannot read {path}: {exc}", "pass a file written with --save-agent") from exc
        try:
            config = DDPGConfig(**d["agent"]["config"])
        except (KeyError, TypeError) as exc:
            raise SpecError("agent", f"{path} is not an agent file ({exc})", "pass a file written with --save-agent") from exc
        if config != self.config:  # the agent keeps its own hyper-parameters (its warm-up is over anyway)
            self.config = config
            self.agent = DDPGAgent(STATE_DIM, config, self.seed)
        self.agent.load_state_dict(d["agent"])
        self.meta_episodes = int(d["episodes"])

    def save_agent(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save({"agent": self.agent.state_dict(), "episodes": self.episode_offset()}, tmp)

    def episode_offset(self) -> int:
        """The agent's episode count (for the exploration schedule): a loaded agent's plus this run's."""
        return self.meta_episodes + len(self.history)

    def finetune_episode(self, k: int) -> int:
        """The exploration schedule's episode number of fine-tuning episode ``k``: past the warm-up,
        where the noise is :data:`FINETUNE_DELTA` (then decaying as usual).  A meta-trained agent's
        noise has decayed to almost nothing; a new task needs some exploration again."""
        c = self.config
        restart = max(0, math.ceil(math.log(FINETUNE_DELTA / c.init_delta) / math.log(c.delta_decay))) \
            if c.init_delta > FINETUNE_DELTA and c.delta_decay < 1 else 0
        return c.warmup + restart + k

    # -- the loop -----------------------------------------------------------------------
    def run(self, envs_for: Callable[[str], Sequence[CompressEnv]], deadline: Deadline | None = None,
            progress: Progress | None = None) -> bool:
        """Run the remaining episodes; True when all ran (False: deadline or signal)."""
        while len(self.history) < self.total:
            if deadline is not None and deadline.expired():
                return False
            i = len(self.history)
            phase, k = self.phase_of(i)
            envs = envs_for(phase)
            env = envs[k % len(envs)]
            episode = self.episode_offset() if phase == "meta" else self.finetune_episode(k)
            chosen = None
            if phase == "finetune" and self.screen > 1:
                tried = {h.evaluation.choices for h in self.history if h.phase == phase}
                chosen = screened_rollout(self.agent, env, episode, self.screen, tried)
            ev = play_episode(self.agent, env, episode, chosen=chosen)
            self.history.append(Step(i, phase, env.label(), episode < self.config.warmup, ev))
            self.save()
            if progress is not None:
                best = max((h.evaluation.reward for h in self.history if h.phase == phase), default=float("nan"))
                progress(f"{phase} {i + 1}/{self.total} on {env.label()}: reward {ev.reward:.3f} "
                         f"({ev.adv_acc:.3f} adv at {ev.macs_fraction:.1%} MACs); best {best:.3f}")
        return True

    def evaluations(self, phase: str) -> list[Evaluation]:
        return [h.evaluation for h in self.history if h.phase == phase]
