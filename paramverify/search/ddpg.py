"""DDPG as in HAQ and ARQ: actor, critic, replay buffer, truncated-normal exploration.

* Actor ``mu(s)``: state -> hidden -> hidden -> 1, sigmoid (an action in [0, 1]).
* Critic ``Q(s, a)``: state and action each -> hidden, summed, ReLU -> hidden -> 1.
* Target networks updated softly (``tau``); discount 1 (HAQ: every step of an
  episode gets the episode's final reward).
* Rewards in a batch are centred by an exponential moving average (HAQ's
  baseline, ``moving_alpha``).
* Exploration: uniform random actions for ``warmup`` episodes, then
  ``mu(s)`` perturbed by a normal truncated to [0, 1] whose standard deviation
  ``init_delta * delta_decay ** (episode - warmup)`` decays per episode.

Every random choice uses the agent's own ``numpy.random.Generator`` and the
networks are initialised under a forked, seeded torch RNG, so an agent is
repeatable from its seed, and :meth:`DDPGAgent.state_dict` /
:meth:`DDPGAgent.load_state_dict` capture everything (networks, optimisers,
replay buffer, RNG state) for checkpoints.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import truncnorm
from torch import nn

from paramverify.errors import SpecError, check
from paramverify.smoothing.core import one_torch_thread


@dataclass(frozen=True)
class DDPGConfig:
    """Hyper-parameters (defaults: HAQ's)."""

    hidden: int = 300
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    tau: float = 0.01
    discount: float = 1.0
    batch_size: int = 64
    buffer_size: int = 2000
    warmup: int = 20
    init_delta: float = 0.5
    delta_decay: float = 0.99
    moving_alpha: float = 0.5
    updates_per_step: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden", "batch_size", "buffer_size", "updates_per_step"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise SpecError(name, f"must be a positive integer, got {v!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise SpecError("warmup", f"must be an integer >= 0, got {self.warmup!r}")
        for name in ("lr_actor", "lr_critic", "tau", "init_delta", "delta_decay", "moving_alpha"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise SpecError(name, f"must be a positive number, got {v!r}")


class Actor(nn.Module):
    def __init__(self, state_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


class Critic(nn.Module):
    def __init__(self, state_dim: int, hidden: int) -> None:
        super().__init__()
        self.fs = nn.Linear(state_dim, hidden)
        self.fa = nn.Linear(1, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.out(self.fs(s) + self.fa(a))


class ReplayBuffer:
    """A fixed-capacity ring of transitions ``(s, a, r, s', done)``."""

    def __init__(self, capacity: int, state_dim: int) -> None:
        self.capacity = capacity
        self.s = np.zeros((capacity, state_dim), dtype=np.float32)
        self.a = np.zeros((capacity, 1), dtype=np.float32)
        self.r = np.zeros((capacity, 1), dtype=np.float32)
        self.s2 = np.zeros((capacity, state_dim), dtype=np.float32)
        self.done = np.zeros((capacity, 1), dtype=np.float32)
        self.size = 0
        self.pos = 0

    def add(self, s: np.ndarray, a: float, r: float, s2: np.ndarray, done: bool) -> None:
        i = self.pos
        self.s[i], self.a[i, 0], self.r[i, 0], self.s2[i], self.done[i, 0] = s, a, r, s2, float(done)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        check(self.size > 0, "sampling an empty replay buffer")
        idx = rng.integers(0, self.size, size=k)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx], self.done[idx]

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        arrays = {k: torch.from_numpy(getattr(self, k)[:n].copy()) for k in ("s", "a", "r", "s2", "done")}
        return {"capacity": self.capacity, "size": n, "pos": self.pos, **arrays}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if int(d["capacity"]) != self.capacity:
            raise SpecError("checkpoint", f"replay buffer capacity {d['capacity']} != {self.capacity}")
        n = int(d["size"])
        self.size, self.pos = n, int(d["pos"])
        for key in ("s", "a", "r", "s2", "done"):
            value = d[key]
            getattr(self, key)[:n] = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def truncated_normal(mu: float, sigma: float, lo: float, hi: float, rng: np.random.Generator) -> float:
    """One draw of N(mu, sigma^2) truncated to [lo, hi]."""
    mu = float(min(hi, max(lo, mu)))
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    return float(truncnorm.rvs(a, b, loc=mu, scale=sigma, random_state=rng))


class DDPGAgent:
    """The DDPG agent (see the module docstring); ``seed`` makes it repeatable."""

    def __init__(self, state_dim: int, config: DDPGConfig, seed: int, device: str = "cpu") -> None:
        self.config = config
        self.state_dim = state_dim
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = Actor(state_dim, config.hidden)
            self.critic = Critic(state_dim, config.hidden)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        for m in (self.actor, self.critic, self.actor_target, self.critic_target):
            m.to(self.device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.lr_critic)
        self.buffer = ReplayBuffer(config.buffer_size, state_dim)
        self.rng = np.random.default_rng(seed)
        self.moving_average: float | None = None
        self.updates = 0

    # -- acting ------------------------------------------------------------------
    def delta(self, episode: int) -> float:
        """The exploration noise's standard deviation at ``episode``."""
        c = self.config
        return c.init_delta * c.delta_decay ** max(0, episode - c.warmup)

    def greedy_action(self, state: np.ndarray) -> float:
        with torch.no_grad(), one_torch_thread(self.device):
            s = torch.as_tensor(state, dtype=torch.float32, device=self.device)[None]
            return float(self.actor(s)[0, 0].item())

    def select_action(self, state: np.ndarray, episode: int) -> float:
        """Random during warm-up, then the actor plus decaying truncated-normal noise."""
        if episode < self.config.warmup:
            return float(self.rng.uniform(0.0, 1.0))
        return truncated_normal(self.greedy_action(state), self.delta(episode), 0.0, 1.0, self.rng)

    def values(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The critic's ``Q(s, a)`` for rows of states and actions (rewards centred as in training)."""
        with torch.no_grad(), one_torch_thread(self.device):
            s = torch.as_tensor(np.asarray(states, dtype=np.float32), device=self.device)
            a = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(-1, 1), device=self.device)
            return self.critic(s, a)[:, 0].cpu().numpy().astype(np.float64)

    # -- learning ----------------------------------------------------------------
    def observe(self, s: np.ndarray, a: float, r: float, s2: np.ndarray, done: bool) -> None:
        self.buffer.add(s, a, r, s2, done)

    def update(self) -> tuple[float, float]:
        """One gradient step of critic and actor on a replay batch; returns (critic loss, actor loss)."""
        with one_torch_thread(self.device):
            return self._update()

    def _update(self) -> tuple[float, float]:
        c = self.config
        s, a, r, s2, done = (torch.as_tensor(v, device=self.device)
                             for v in self.buffer.sample(c.batch_size, self.rng))
        mean_r = float(r.mean().item())
        if self.moving_average is None:
            self.moving_average = mean_r
        else:
            self.moving_average += c.moving_alpha * (mean_r - self.moving_average)
        r = r - self.moving_average
        with torch.no_grad():
            q_next = self.critic_target(s2, self.actor_target(s2))
            target = r + c.discount * (1.0 - done) * q_next
        critic_loss = nn.functional.mse_loss(self.critic(s, a), target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for tgt, src in ((self.actor_target, self.actor), (self.critic_target, self.critic)):
                for pt, ps in zip(tgt.parameters(), src.parameters()):
                    pt.mul_(1.0 - c.tau).add_(ps, alpha=c.tau)
        self.updates += 1
        return float(critic_loss.item()), float(actor_loss.item())

    # -- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "state_dim": self.state_dim,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "moving_average": self.moving_average,
            "updates": self.updates,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        d = copy.deepcopy(d)  # optimiser state would otherwise alias the source's tensors
        if d["config"] != asdict(self.config) or int(d["state_dim"]) != self.state_dim:
            raise SpecError("checkpoint", "was written by an agent with other hyper-parameters",
                            "resume with the same settings, or start a new --out folder")
        self.actor.load_state_dict(d["actor"])
        self.critic.load_state_dict(d["critic"])
        self.actor_target.load_state_dict(d["actor_target"])
        self.critic_target.load_state_dict(d["critic_target"])
        self.actor_opt.load_state_dict(d["actor_opt"])
        self.critic_opt.load_state_dict(d["critic_opt"])
        self.buffer.load_state_dict(d["buffer"])
        self.rng.bit_generator.state = d["rng"]
        self.moving_average = d["moving_average"]
        self.updates = int(d["updates"])
