"""Tiny teachers and environments for the compression tests; one torch thread per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from torch_threads import single_torch_thread  # noqa: F401  (autouse fixture)

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="session")
def digits_small():
    """The digits task with few evaluation and test images."""
    from paramverify.compress.tasks import load_task_data

    return load_task_data("digits", eval_images=60, test_images=60)


@pytest.fixture(scope="session")
def tiny_teacher(digits_small):
    """A two-stage teacher (6x2/1, 12x2/2), briefly PGD-trained on digits."""
    from paramverify.compress.arch import ArchSpec, StageSpec
    from paramverify.compress.tasks import Task
    from paramverify.compress.train import TrainConfig, train_teacher

    arch = ArchSpec((1, 8, 8), 10, (StageSpec(6, 2, 1), StageSpec(12, 2, 2)))
    return train_teacher(arch, digits_small, Task(eps=0.05, steps=3, train_steps=2), TrainConfig(steps=60, batch=64), seed=0)


@pytest.fixture
def tiny_env(tiny_teacher, digits_small):
    from paramverify.compress.env import CompressEnv, EnvConfig
    from paramverify.compress.tasks import Task
    from paramverify.compress.train import TrainConfig

    return CompressEnv(tiny_teacher, Task(eps=0.05, steps=3, train_steps=2), digits_small,
                       EnvConfig(budget=0.5, finetune=TrainConfig(steps=3, batch=32)))
