"""Adversarial training (PGD-k, Madry et al.) and adversarial evaluation of stage CNNs on the CPU.

Every random choice (initial weights, batches, the attacks' random starts) is drawn from
generators seeded by the caller, under a forked torch RNG, on one intra-op thread: a run
is repeatable from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from paramverify.attacks.core import AttackConfig, attack_batch
from paramverify.compress.arch import ArchSpec, StageNet
from paramverify.compress.tasks import Task, TaskData
from paramverify.errors import SpecError
from paramverify.smoothing.core import one_torch_thread


@dataclass(frozen=True)
class TrainConfig:
    """``steps`` SGD steps of ``batch`` images; ``clean_weight`` of the clean loss (the rest is
    the loss on PGD-k examples); Adam with learning rate ``lr``; ``noise_sigma`` > 0 adds Gaussian
    noise to the clean images (for a randomized-smoothing reward)."""

    steps: int = 30
    batch: int = 64
    lr: float = 2e-3
    clean_weight: float = 0.5
    noise_sigma: float = 0.0


    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1 or not self.lr > 0 or not 0 <= self.clean_weight <= 1 \
                or not self.noise_sigma >= 0:
            raise SpecError("train", f"bad training settings {self}")


def adv_train(net: StageNet, data: TaskData, task: Task, cfg: TrainConfig, seed: int) -> StageNet:
    """Train ``net`` in place: ``cfg.steps`` steps on clean and PGD-k examples of the training split."""
    if cfg.steps == 0:
        return net.eval()
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    attack = task.train_attack(seed)
    with one_torch_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(cfg.steps):
            idx = torch.randint(0, len(y_all), (cfg.batch,), generator=gen)
            xb, yb = x_all[idx], y_all[idx]
            net.eval()  # the attack sees the current weights with fixed norm statistics
            x_adv = attack_batch(net, xb, yb, attack, gen) if cfg.clean_weight < 1 else xb
            net.train()
            loss = (1 - cfg.clean_weight) * F.cross_entropy(net(x_adv), yb)
            if cfg.clean_weight > 0:
                if cfg.noise_sigma > 0:
                    xb = xb + cfg.noise_sigma * torch.randn(xb.shape, generator=gen)
                loss = loss + cfg.clean_weight * F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def robust_correct(net: StageNet, x: np.ndarray, y: np.ndarray, attack: AttackConfig,
                   batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (clean prediction correct, prediction on the attack's example correct)."""
    net.eval()
    gen = torch.Generator().manual_seed(attack.seed)
    clean, adv = [], []
    with one_torch_thread():
        for i in range(0, len(y), batch):
            xb, yb = torch.from_numpy(x[i:i + batch]), torch.from_numpy(y[i:i + batch])
            with torch.no_grad():
                clean.append((net(xb).argmax(1) == yb).numpy())
            x_adv = attack_batch(net, xb, yb, attack, gen)
            with torch.no_grad():
                adv.append((net(x_adv).argmax(1) == yb).numpy())
    return np.concatenate(clean), np.concatenate(adv)


def lipschitz_estimate(net: StageNet, x: np.ndarray, y: np.ndarray, images: int = 64) -> float:
    """An empirical local Lipschitz constant for L-inf perturbations: the largest L1 norm of the
    input gradient of the margin (true logit minus the best other) over ``images`` images.  A
    lower bound of the true constant, used only as a feature of the agent's state."""
    net.eval()
    with one_torch_thread():
        xb = torch.from_numpy(x[:images]).requires_grad_(True)
        yb = torch.from_numpy(y[:images])
        z = net(xb)
        true = z.gather(1, yb[:, None]).squeeze(1)
        other = z.masked_fill(F.one_hot(yb, z.shape[1]).bool(), float("-inf")).amax(1)
        (g,) = torch.autograd.grad((true - other).sum(), xb)
    return float(g.flatten(1).abs().sum(1).max())


def train_teacher(arch: ArchSpec, data: TaskData, task: Task, cfg: TrainConfig, seed: int = 0) -> StageNet:
    """A freshly initialised (seeded) network for ``arch``, adversarially trained."""
    if arch.in_shape != data.in_shape or arch.classes != data.classes:
        raise SpecError("arch", f"input {arch.in_shape} / {arch.classes} classes do not fit {data.name} "
                        f"({data.in_shape}, {data.classes} classes)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = StageNet(arch)
    return adv_train(net, data, task, cfg, seed)
