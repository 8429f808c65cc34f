"""Optional short fine-tuning of a quantized copy with Gaussian noise augmentation.

HAQ fine-tunes each episode's quantized model briefly before measuring its
reward; ARQ does the same with the smoothing noise.  Here: quantization-aware
training with straight-through estimators (weights through a
``torch.nn.utils.parametrize`` parametrization that applies
:func:`~paramverify.smoothing.quant.quantize_weight` in the forward pass and
the identity in the backward pass; inputs of quantized layers through the
static fake quantization that :func:`quantize_model` calibrates), on
training images plus ``N(0, sigma^2)`` noise, cross-entropy, Adam.

The result is a *float* model with fine-tuned weights; quantizing it with the
same policy gives the model whose reward is measured and that is exported.
Fine-tuning is seeded by ``(seed, policy)``, so a policy's reward stays a
deterministic function of the policy (the evaluation cache relies on it).
Fine-tuning data must be disjoint from the reward and test images.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from paramverify.errors import SpecError
from paramverify.search.reward import RewardConfig
from paramverify.search.space import BitPolicy
from paramverify.smoothing.quant import FakeQuantLayer, QuantSpec, fake_quantize, quantize_model, quantize_weight


@dataclass(frozen=True)
class FinetuneConfig:
    """``steps`` Adam steps of ``batch_size`` noisy training images at learning rate ``lr``."""

    steps: int = 0
    lr: float = 1e-4
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise SpecError("finetune_steps", f"must be an integer >= 0, got {self.steps!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise SpecError("finetune_batch", f"must be a positive integer, got {self.batch_size!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise SpecError("finetune_lr", f"must be a positive number, got {self.lr!r}")


class _STEWeight(nn.Module):
    """Parametrization: quantized weight forward, identity gradient."""

    def __init__(self, spec: QuantSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (quantize_weight(w, self.spec) - w).detach()


def _policy_seed(seed: int, policy: BitPolicy) -> int:
    digest = hashlib.sha256(f"{seed}:{policy.key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class Finetuner:
    """``finetuner(policy)`` -> a float model fine-tuned for ``policy`` (deterministic)."""

    def __init__(
        self,
        model: nn.Module,
        train_x: np.ndarray,
        train_y: np.ndarray,
        calibration: torch.Tensor,
        reward: RewardConfig,
        config: FinetuneConfig,
    ) -> None:
        if len(train_x) == 0 or len(train_x) != len(train_y):
            raise SpecError("train", "fine-tuning needs training images with one label each")
        self.model = model
        self.train_x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
        self.train_y = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
        self.calibration = calibration
        self.reward = reward
        self.config = config

    def __call__(self, policy: BitPolicy) -> nn.Module:
        c = self.config
        qpolicy = self.reward.quant_policy(policy)
        calibrated = quantize_model(self.model, qpolicy, self.calibration)  # for the static activation ranges
        device = torch.device(self.reward.device)
        tuned = copy.deepcopy(self.model).to(device)
        handles = []
        for name, mod in calibrated.named_modules():
            if not isinstance(mod, FakeQuantLayer):
                continue
            layer = tuned.get_submodule(name)
            if mod.policy.weight is not None:
                parametrize.register_parametrization(layer, "weight", _STEWeight(mod.policy.weight))
            spec = mod.policy.activation
            if spec is not None:
                scale, zero = mod.act_scale.to(device), mod.act_zero.to(device)

                def pre_hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], scale: torch.Tensor = scale,
                             zero: torch.Tensor = zero, spec: QuantSpec = spec) -> tuple[torch.Tensor]:
                    x = inputs[0]
                    return (x + (fake_quantize(x, scale, zero, spec.qmin, spec.qmax) - x).detach(),)

                handles.append(layer.register_forward_pre_hook(pre_hook))
        gen = torch.Generator().manual_seed(_policy_seed(c.seed, policy))
        opt = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=c.lr)
        tuned.train()
        try:
            for _ in range(c.steps):
                idx = torch.randint(0, len(self.train_x), (c.batch_size,), generator=gen)
                x = self.train_x[idx]
                x = (x + self.reward.sigma * torch.randn(x.shape, generator=gen)).to(device)
                loss = nn.functional.cross_entropy(tuned(x), self.train_y[idx].to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for h in handles:
                h.remove()
            for name, mod in list(tuned.named_modules()):
                if parametrize.is_parametrized(mod, "weight"):
                    parametrize.remove_parametrizations(mod, "weight", leave_parametrized=False)
        return tuned.eval()
