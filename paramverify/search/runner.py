"""The DDPG episode loop, with checkpoints, resume, deadline and Ctrl-C.

One episode walks the layers: the agent picks an action per layer from the
layer's state (random during warm-up), the environment enforces the budget
and evaluates the executed policy, and every transition of the episode is
stored with the episode's reward (HAQ: discount 1, final reward on each
step).  After warm-up the agent makes ``updates_per_step`` updates per layer.

:meth:`DDPGSearch.state` / :meth:`DDPGSearch.load` capture the agent and the
history, so a run continued from a checkpoint taken after episode ``k``
makes exactly the choices the uninterrupted run makes (same seed, same
reward function; the evaluation cache is saved with it by the caller).
A ``KeyboardInterrupt`` inside an episode abandons that episode (the last
checkpoint stays the consistent state) and returns the best result so far,
marked incomplete; so does the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from paramverify.errors import SpecError
from paramverify.options import Deadline
from paramverify.search.baselines import MethodResult, best_of
from paramverify.search.ddpg import DDPGAgent, DDPGConfig
from paramverify.search.env import EpisodeResult, QuantEnv

Progress = Callable[[str], None]


class DDPGSearch:
    """ARQ/HAQ-style DDPG search over per-layer bit widths for one environment."""

    def __init__(self, env: QuantEnv, config: DDPGConfig, episodes: int, seed: int, device: str = "cpu") -> None:
        if not (isinstance(episodes, int) and episodes >= 1):
            raise SpecError("episodes", f"must be a positive integer, got {episodes!r}")
        self.env = env
        self.config = config
        self.episodes = episodes
        self.agent = DDPGAgent(env.state_dim, config, seed, device)
        self.history: list[EpisodeResult] = []
        self.seconds = 0.0
        self.evaluations = 0
        self.computed = 0
        self.samples = 0

    # -- checkpoints -----------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(JSON-able part, torch part) of the search state."""
        js = {"episodes_done": len(self.history), "history": [h.to_json() for h in self.history],
              "seconds": self.seconds, "evaluations": self.evaluations, "computed": self.computed,
              "samples": self.samples}
        return js, self.agent.state_dict()

    def load(self, js: dict[str, Any], agent_state: dict[str, Any]) -> None:
        self.history = [EpisodeResult.from_json(h) for h in js["history"]]
        if len(self.history) != int(js["episodes_done"]):
            raise SpecError("checkpoint", f"{len(self.history)} episodes in the history but episodes_done is {js['episodes_done']}",
                            "the work folder's checkpoint is inconsistent; remove it to restart the search")
        self.seconds = float(js["seconds"])
        self.evaluations = int(js["evaluations"])
        self.computed = int(js["computed"])
        self.samples = int(js["samples"])
        self.agent.load_state_dict(agent_state)

    @property
    def done(self) -> bool:
        return len(self.history) >= self.episodes

    # -- the loop ----------------------------------------------------------------------
    def _episode(self, ep: int) -> EpisodeResult:
        env, agent = self.env, self.agent
        state: np.ndarray | None = env.reset()
        while state is not None:
            action = agent.select_action(state, ep)
            state, _ = env.step(action)
        result = env.finish()
        states = env.states_for(result.policy.weight_bits)
        actions = env.executed_actions(result)
        n = env.n_layers
        for t in range(n):
            s2 = states[t + 1] if t + 1 < n else np.zeros_like(states[t])
            agent.observe(states[t], actions[t], result.reward, s2, t == n - 1)
        if ep >= self.config.warmup:
            for _ in range(n * self.config.updates_per_step):
                agent.update()
        return result

    def run(
        self,
        deadline: Deadline | None = None,
        progress: Progress | None = None,
        on_episode: Callable[[], None] | None = None,
        stop: Callable[[int], bool] | None = None,
    ) -> MethodResult:
        """Run the remaining episodes; ``on_episode`` is called after each (to checkpoint).

        ``stop(episode)`` is asked before each episode (with its index); ``True`` ends the run there, as
        complete (the equal-count comparison of :mod:`.equal` stops at a number of certifications).
        """
        note = ""
        complete = True
        ev = self.env.evaluator
        try:
            while not self.done:
                if deadline is not None and deadline.expired():
                    complete, note = False, (f"interrupted after {len(self.history)} complete episodes" if deadline.interrupted()
                                             else f"stopped at the time limit after {len(self.history)} episodes")
                    break
                ep = len(self.history)
                if stop is not None and stop(ep):
                    break
                t0 = time.perf_counter()
                r0, c0, s0 = ev.requests, ev.computed, ev.samples
                result = self._episode(ep)
                self.history.append(result)
                self.seconds += time.perf_counter() - t0
                self.evaluations += ev.requests - r0
                self.computed += ev.computed - c0
                self.samples += ev.samples - s0
                if progress is not None:
                    best = best_of(self.history)
                    phase = "warm-up" if ep < self.config.warmup else f"delta {self.agent.delta(ep):.3f}"
                    progress(
                        f"ddpg {ep + 1}/{self.episodes} ({phase}): bits {list(result.policy.weight_bits)} "
                        f"reward {result.reward:.4f}{' (cached)' if result.cached else ''}; best "
                        f"{best.reward if best else float('nan'):.4f} at {best.bitops_fraction if best else 0:.3%} BitOps"
                    )
                if on_episode is not None:
                    on_episode()
        except KeyboardInterrupt:
            if not self.history:
                raise  # nothing to report yet
            complete, note = False, f"interrupted after {len(self.history)} complete episodes"
        return self.result(complete, note)

    def result(self, complete: bool = True, note: str = "") -> MethodResult:
        best = best_of(self.history)
        if best is None:
            raise SpecError("episodes", "no episode finished within the budget", "run more episodes or raise --timeout")
        return MethodResult("ddpg", self.env.budget.fraction, best, self.evaluations, self.computed, self.samples,
                            self.seconds, tuple(self.history), complete, note,
                            extra={"episodes": len(self.history), "warmup": self.config.warmup})
