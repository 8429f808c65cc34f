"""The one options object passed down through every engine (no global config)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class ProgressSink(Protocol):
    """Receives progress of long runs: the bracket closing, queries done."""

    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None: ...


class BatchPool(Protocol):
    """Evaluates batch functions elsewhere (e.g. on Ray: :class:`paramverify.distributed.runtime.RayPool`)."""

    def spread(self, fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]: ...

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]: ...


class NullProgress:
    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
        return None


@dataclass(frozen=True)
class Options:
    """Settings for one verification or optimisation run.

    timeout_s: wall-clock budget of the whole run (None: no limit); an
        optimisation that runs out returns its best proved bracket, marked
        incomplete.
    tolerance: absolute bracket width at which an optimisation stops.
    seed: seeds every random choice (falsifier restarts, sampling).
    query_timeout_s: per-solver-query limit for the SMT backends.
    dreal_precision: dReal's delta (its answers are delta-sat, never sat).
    max_splits: cap on branch-and-bound boxes (a memory guard).
    pool: where branch and bound evaluates its batches of boxes (None: in
        this process; ``--workers``/``--ray-address`` set a Ray pool).
    """

    timeout_s: float | None = 60.0
    tolerance: float = 1e-6
    seed: int = 0
    query_timeout_s: float = 30.0
    dreal_precision: float = 1e-6
    max_splits: int = 200_000
    progress: ProgressSink = field(default_factory=NullProgress)
    pool: BatchPool | None = None

    def deadline(self) -> Deadline:
        return Deadline(None if self.timeout_s is None else time.monotonic() + self.timeout_s)


@dataclass(frozen=True)
class Deadline:
    at: float | None

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())
