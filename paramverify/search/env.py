"""The mixed-precision environment: one step per layer, the reward at the end.

State (HAQ's layer embedding, plus two budget features), for layer ``i`` of
``L``: ``i / (L - 1)``, is-conv, in channels, out channels, kernel taps,
stride, parameter count, MACs (= float BitOps / 1024; each min-max normalised over the layers), the
previous layer's executed action, the BitOps already spent by layers
``< i`` and the BitOps layers ``>= i`` need at the minimum bit width (both
as fractions of the budget).  The action in ``[0, 1]`` picks the bits of the
layer's weights and input activations (:meth:`BitRange.from_action`).

After the last layer the budget is enforced with HAQ's wall (``constraint
= "wall"``: every evaluated policy meets the budget) or penalised
(``"penalty"``: reward minus ``penalty x (bitops / limit - 1)`` when over,
and the policy never counts as a best one).  The reward is computed by an
:class:`Evaluator` (sampled or formal) through a :class:`CachedEvaluator`:
the reward is a deterministic function of the policy, so repeated policies
cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from paramverify.errors import SpecError
from paramverify.search.space import BitPolicy, Budget

STATE_DIM = 11


@dataclass(frozen=True)
class Evaluation:
    """The reward of one policy and the numbers behind it.

    ``metrics`` holds e.g. ``cert_acc@0.25`` and ``acr`` (sampled) or
    ``proved_fraction`` (formal); ``samples`` counts forward passes of the
    quantized model (or verifier queries), ``seconds`` the time it took.
    """

    reward: float
    metrics: Mapping[str, float] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"reward": self.reward, "metrics": dict(self.metrics), "samples": self.samples,
                "seconds": round(self.seconds, 4)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Evaluation:
        return Evaluation(float(d["reward"]), MappingProxyType({k: float(v) for k, v in d["metrics"].items()}),
                          int(d["samples"]), float(d["seconds"]))


class Evaluator(Protocol):
    """Computes the reward of a policy; must be deterministic in the policy.

    A sampled evaluator may also offer ``evaluate_n(policy, n)``: the same
    reward from ``n`` samples per image (the final race; see
    :func:`paramverify.search.baselines.race`).
    """

    def evaluate(self, policy: BitPolicy) -> Evaluation: ...


class CachedEvaluator:
    """Memoises an :class:`Evaluator` by policy and counts the certifications.

    ``requests`` counts every call, ``computed`` the certifications actually
    run (cache misses), ``samples`` and ``seconds`` their cost.  The cache is
    saved in checkpoints (:meth:`state` / :meth:`load`).  Evaluations with
    another sample count ``n`` (the final race) are cached under
    ``"<policy key>@n=<n>"``.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._cache: dict[str, Evaluation] = {}
        self.requests = 0
        self.computed = 0
        self.samples = 0
        self.seconds = 0.0

    @property
    def supports_n(self) -> bool:
        """Whether the evaluator can evaluate with another sample count (``evaluate_n``)."""
        return callable(getattr(self.evaluator, "evaluate_n", None))

    def evaluate(self, policy: BitPolicy, n: int | None = None) -> tuple[Evaluation, bool]:
        """The policy's evaluation (with ``n`` samples per image if given) and whether it came from the cache."""
        self.requests += 1
        key = policy.key if n is None else f"{policy.key}@n={n}"
        hit = self._cache.get(key)
        if hit is not None:
            return hit, True
        start = time.perf_counter()
        if n is None:
            ev = self.evaluator.evaluate(policy)
        else:
            if not self.supports_n:
                raise SpecError("final_n", f"{type(self.evaluator).__name__} has no sample count to raise",
                                "the final race needs a sampled reward")
            ev = self.evaluator.evaluate_n(policy, n)  # type: ignore[attr-defined]
        self.computed += 1
        self.samples += ev.samples
        self.seconds += time.perf_counter() - start
        self._cache[key] = ev
        return ev, False

    def counters(self) -> dict[str, Any]:
        return {"requests": self.requests, "computed": self.computed, "samples": self.samples,
                "seconds": round(self.seconds, 3)}

    def state(self) -> dict[str, Any]:
        return {"entries": {k: v.to_json() for k, v in self._cache.items()}, **self.counters()}

    def load(self, state: Mapping[str, Any]) -> None:
        self._cache = {k: Evaluation.from_json(v) for k, v in state["entries"].items()}
        self.requests = int(state["requests"])
        self.computed = int(state["computed"])
        self.samples = int(state["samples"])
        self.seconds = float(state["seconds"])

    def __len__(self) -> int:
        return len(self._cache)


@dataclass(frozen=True)
class EpisodeResult:
    """What one episode chose and earned.

    ``requested`` are the bits the actions asked for, ``policy`` the executed
    policy (after the wall), ``reward`` the (possibly penalised) reward.
    """

    requested: tuple[int, ...]
    policy: BitPolicy
    reward: float
    evaluation: Evaluation
    bitops_fraction: float
    fits: bool
    cached: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "requested_bits": list(self.requested),
            "policy": self.policy.to_json(),
            "reward": self.reward,
            "evaluation": self.evaluation.to_json(),
            "bitops_fraction": self.bitops_fraction,
            "fits_budget": self.fits,
            "cached": self.cached,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> EpisodeResult:
        return EpisodeResult(tuple(int(b) for b in d["requested_bits"]), BitPolicy.from_json(d["policy"]),
                             float(d["reward"]), Evaluation.from_json(d["evaluation"]),
                             float(d["bitops_fraction"]), bool(d["fits_budget"]), bool(d["cached"]))


class QuantEnv:
    """Per-layer bit-width environment (see the module docstring)."""

    def __init__(
        self,
        budget: Budget,
        evaluator: CachedEvaluator,
        constraint: str = "wall",
        penalty: float = 1.0,
    ) -> None:
        if constraint not in ("wall", "penalty"):
            raise SpecError("constraint", f"unknown budget constraint {constraint!r}", "use wall or penalty")
        if not (np.isfinite(penalty) and penalty >= 0):
            raise SpecError("penalty", f"must be a finite number >= 0, got {penalty!r}")
        self.budget = budget
        self.evaluator = evaluator
        self.constraint = constraint
        self.penalty = float(penalty)
        self._static = self._static_features()
        self._bits: list[int] = []

    @property
    def n_layers(self) -> int:
        return len(self.budget.layers)

    @property
    def state_dim(self) -> int:
        return STATE_DIM

    def _static_features(self) -> np.ndarray:
        layers = self.budget.layers
        n = len(layers)
        raw = np.array(
            [[i / max(1, n - 1), float(la.kind == "conv"), la.in_channels, la.out_channels, la.kernel, la.stride,
              la.params, la.macs] for i, la in enumerate(layers)],
            dtype=np.float64,
        )
        for j in range(2, raw.shape[1]):
            lo, hi = raw[:, j].min(), raw[:, j].max()
            raw[:, j] = (raw[:, j] - lo) / (hi - lo) if hi > lo else 0.0
        return raw

    def _state(self, i: int) -> np.ndarray:
        layers = self.budget.layers
        limit = self.budget.limit
        rng = self.budget.bit_range
        act_bits = 32 if not self.budget.quantize_activations else None
        spent = sum(la.macs * b * (act_bits or b) for la, b in zip(layers[:i], self._bits))
        need = sum(la.macs * rng.lo * (act_bits or rng.lo) for la in layers[i:])
        prev = rng.to_action(self._bits[-1]) if self._bits else 0.0
        dyn = np.array([prev, spent / limit, need / limit], dtype=np.float64)
        return np.concatenate([self._static[i], dyn]).astype(np.float32)

    def reset(self) -> np.ndarray:
        self._bits = []
        return self._state(0)

    def step(self, action: float) -> tuple[np.ndarray | None, float]:
        """Choose bits for the current layer; returns (next state or None at the end, executed action).

        The executed action of a layer is its requested bits' action centre;
        the wall may lower bits afterwards (see :meth:`finish`).
        """
        if len(self._bits) >= self.n_layers:
            raise SpecError("step", "the episode is over", "call reset()")
        bits = self.budget.bit_range.from_action(action)
        self._bits.append(bits)
        executed = self.budget.bit_range.to_action(bits)
        if len(self._bits) == self.n_layers:
            return None, executed
        return self._state(len(self._bits)), executed

    def finish(self) -> EpisodeResult:
        """Enforce the budget, evaluate the executed policy and return the episode's result."""
        if len(self._bits) != self.n_layers:
            raise SpecError("finish", f"only {len(self._bits)} of {self.n_layers} layers have bits")
        requested = tuple(self._bits)
        return self.evaluate_bits(requested, requested)

    def evaluate_bits(self, bits: tuple[int, ...], requested: tuple[int, ...] | None = None) -> EpisodeResult:
        """Evaluate a bit vector under this environment's constraint (baselines use this too)."""
        executed = self.budget.wall(bits) if self.constraint == "wall" else tuple(bits)
        policy = self.budget.policy(executed)
        ev, hit = self.evaluator.evaluate(policy)
        frac = self.budget.fraction_of(policy)
        fits = frac <= self.budget.fraction
        reward = ev.reward
        if not fits:
            reward -= self.penalty * (frac / self.budget.fraction - 1.0)
        return EpisodeResult(requested if requested is not None else tuple(bits), policy, reward, ev, frac, fits, hit)

    def executed_actions(self, result: EpisodeResult) -> list[float]:
        """The actions matching the executed (walled) bits, stored in the replay buffer."""
        return [self.budget.bit_range.to_action(b) for b in result.policy.weight_bits]

    def states_for(self, bits: tuple[int, ...]) -> list[np.ndarray]:
        """The states an episode that executed ``bits`` passes through (for the replay buffer)."""
        saved = self._bits
        try:
            out = []
            self._bits = []
            for b in bits:
                out.append(self._state(len(self._bits)))
                self._bits.append(b)
            return out
        finally:
            self._bits = saved
