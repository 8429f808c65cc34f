"""The compression environment: one evaluation = build a sub-network, fine-tune it, attack it.

:meth:`CompressEnv.evaluate` takes per-stage option indices (see
:mod:`paramverify.compress.space`), projects them onto the budget (``constraint="wall"``)
or keeps them (``"penalty"``), builds the sub-network with the teacher's weights
(:func:`~paramverify.compress.arch.inherit`), fine-tunes it briefly with PGD-k adversarial
training, counts its MACs on the exported ONNX graph and attacks it on the held-out
evaluation images.  The reward (RC-NAS's, normalised by the teacher):

    reward = (acc_sub / acc_teacher) * (macs_teacher / macs_sub) ** flops_weight
             [- penalty * max(0, macs_sub / (budget * macs_teacher) - 1)   with "penalty"]

where ``acc`` is the adversarial accuracy under the task's attack, or with
``reward="certified"`` the randomized-smoothing certified accuracy at L2 radius
``cert_radius`` (Cohen et al.; :class:`paramverify.smoothing.core.Smooth`, each
certificate at confidence ``1 - cert_alpha``).  An evaluation is a deterministic function
of the architecture (the fine-tuning and the attack are seeded by the environment's seed
only), so every method that proposes the same sub-network gets the same numbers; each call
counts as one evaluation.  The certified reward certifies image ``i`` with the noise of its own
seed :func:`~paramverify.smoothing.core.input_seed` ``(seed, i)`` on one torch thread, so an
image's certificate does not depend on the other images or on where it runs: with ``pool``
set (``--workers`` / ``--ray-address``, :mod:`paramverify.compress.jobs`) the images of one
evaluation run as Ray tasks and give the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from paramverify.compress.arch import (
    ArchSpec,
    StageNet,
    apply_actions,
    arch_macs,
    calibrate_new_norms,
    inherit,
)
from paramverify.compress.flops import onnx_macs
from paramverify.compress.onnxio import to_onnx
from paramverify.compress.space import (
    TaskFeatures,
    project_to_budget,
    smallest,
    to_actions,
)
from paramverify.compress.tasks import Task, TaskData
from paramverify.compress.train import (
    TrainConfig,
    adv_train,
    lipschitz_estimate,
    robust_correct,
)
from paramverify.errors import SpecError, check

Choice = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class EnvConfig:
    budget: float = 0.5
    constraint: str = "wall"
    penalty: float = 2.0
    flops_weight: float = 0.1
    finetune: TrainConfig = field(default_factory=TrainConfig)
    reward: str = "adversarial"
    cert_sigma: float = 0.25
    cert_radius: float = 0.25
    cert_n0: int = 32
    cert_n: int = 200
    cert_alpha: float = 0.001
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 1:
            raise SpecError("budget", f"must lie in (0, 1] (a fraction of the teacher's FLOPs), got {self.budget}")
        if self.constraint not in ("wall", "penalty"):
            raise SpecError("constraint", f"unknown {self.constraint!r}", "use wall or penalty")
        if self.reward not in ("adversarial", "certified"):
            raise SpecError("reward", f"unknown {self.reward!r}", "use adversarial or certified")
        if self.penalty < 0 or self.flops_weight < 0:
            raise SpecError("penalty", "penalty and flops weight must be >= 0")


@dataclass(frozen=True)
class Evaluation:
    """One evaluated sub-network; ``acc`` is what the reward used (adversarial or certified)."""

    index: int
    choices: tuple[Choice, ...]
    arch: str
    macs: int
    macs_fraction: float
    clean_acc: float
    adv_acc: float
    cert_acc: float | None
    acc: float
    reward: float
    within_budget: bool
    seconds: float

    def to_json(self) -> dict:
        d = asdict(self)
        d["choices"] = [list(c) for c in self.choices]
        return d

    @staticmethod
    def from_json(d: dict) -> Evaluation:
        return Evaluation(**{**d, "choices": tuple(tuple(c) for c in d["choices"])})


class CompressEnv:
    """A teacher, a task, its data and the settings of an evaluation (see the module docstring)."""

    def __init__(self, teacher: StageNet, task: Task, data: TaskData, config: EnvConfig) -> None:
        if teacher.arch.in_shape != data.in_shape:
            raise SpecError("teacher", f"input shape {teacher.arch.in_shape} does not fit {data.name} {data.in_shape}")
        self.teacher, self.task, self.data, self.config = teacher.eval(), task, data, config
        self.pool: Any = None  # a RayPool: the certified reward's images as tasks (driver side only)
        self.arch: ArchSpec = teacher.arch
        self.teacher_macs = onnx_macs(to_onnx(teacher))
        check(self.teacher_macs == arch_macs(self.arch), "ONNX and description MAC counts of the teacher differ")
        self.max_macs = int(config.budget * self.teacher_macs)
        min_macs = arch_macs(apply_actions(self.arch, to_actions(smallest(self.arch))))
        if min_macs > self.max_macs:
            raise SpecError("budget", f"{config.budget:g} of the teacher's {self.teacher_macs} MACs is below the smallest "
                            f"sub-network ({min_macs / self.teacher_macs:.3f})", "raise --budget")
        clean, adv = robust_correct(teacher, data.eval_x, data.eval_y, task.eval_attack(config.seed))
        self.teacher_clean, self.teacher_adv = float(clean.mean()), float(adv.mean())
        self.teacher_cert = self._certified(teacher) if config.reward == "certified" else None
        base = self.teacher_cert if config.reward == "certified" else self.teacher_adv
        if not base or base <= 0:
            raise SpecError("teacher", f"the teacher's {config.reward} accuracy on {task.label()} is 0; nothing to keep",
                            "train the teacher adversarially or lower --eps")
        self.teacher_acc = float(base)
        self.lipschitz = lipschitz_estimate(teacher, data.eval_x, data.eval_y)
        mean, std = data.stats()
        self.features = TaskFeatures(task.attack, task.eps, task.steps, mean, std, data.in_shape[-1], config.budget,
                                     self.lipschitz, self.teacher_adv)
        self.evaluations = 0

    def label(self) -> str:
        """The task and the budget (the history's name for this environment)."""
        return f"{self.task.label()} budget={self.config.budget:g}"

    def build(self, choices: list[Choice] | tuple[Choice, ...]) -> StageNet:
        """The sub-network of ``choices`` (as given, not projected), inherited and fine-tuned."""
        arch = apply_actions(self.arch, to_actions(list(choices)))
        net = inherit(self.teacher, arch)
        calibrate_new_norms(net, torch.from_numpy(self.data.train_x[:256]))
        return adv_train(net, self.data, self.task, self.config.finetune, self.config.seed)

    def project(self, choices: list[Choice]) -> list[Choice]:
        if self.config.constraint == "wall":
            return project_to_budget(self.arch, choices, self.max_macs)
        return list(choices)

    def evaluate(self, choices: list[Choice]) -> Evaluation:
        """Project (with the wall), build, fine-tune, count and attack; one evaluation."""
        return self.number(self.measure(choices))

    def number(self, ev: Evaluation) -> Evaluation:
        """``ev`` with the next evaluation index (the count is the driver's state)."""
        ev = replace(ev, index=self.evaluations)
        self.evaluations += 1
        return ev

    def measure(self, choices: list[Choice]) -> Evaluation:
        """One evaluation without its index (-1): what a Ray task computes (see :meth:`number`)."""
        t0 = time.monotonic()
        choices = self.project(choices)
        net = self.build(choices)
        macs = onnx_macs(to_onnx(net))
        c = self.config
        clean, adv = robust_correct(net, self.data.eval_x, self.data.eval_y, self.task.eval_attack(c.seed))
        cert = self._certified(net) if c.reward == "certified" else None
        acc = cert if cert is not None else float(adv.mean())
        frac = macs / self.teacher_macs
        reward = acc / self.teacher_acc * (1.0 / frac) ** c.flops_weight
        if c.constraint == "penalty":
            reward -= c.penalty * max(0.0, macs / max(1, self.max_macs) - 1.0)
        return Evaluation(-1, tuple(tuple(int(v) for v in ch) for ch in choices), net.arch.label(), macs,  # type: ignore[misc]
                          frac, float(clean.mean()), float(adv.mean()), cert, acc, float(reward),
                          macs <= self.max_macs, time.monotonic() - t0)

    def _certified(self, net: StageNet) -> float:
        """Share of the evaluation images whose smoothed prediction is certified correct at ``cert_radius``
        (image ``i`` with the seed ``input_seed(seed, i)``; as Ray tasks when ``pool`` is set)."""
        from paramverify.compress.jobs import CertJob, certified_hits

        job = CertJob(net, self.arch.classes, self.config)
        items = [(i, x, int(y)) for i, (x, y) in enumerate(zip(self.data.eval_x, self.data.eval_y))]
        return certified_hits(job, items, self.pool) / len(items)

    def test_correct(self, choices: tuple[Choice, ...] | list[Choice]) -> tuple[np.ndarray, np.ndarray]:
        """(clean, adversarial) correctness per *test* image of the sub-network of ``choices``
        (as evaluated: projected, fine-tuned with the same seed)."""
        net = self.build(self.project(list(choices)))
        return robust_correct(net, self.data.test_x, self.data.test_y, self.task.eval_attack(self.config.seed + 1))
