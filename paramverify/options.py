"""The one options object passed down through every engine (no global config)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from paramverify.interrupt import StopSignal


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
    stop: the run's SIGINT/SIGTERM record (see :mod:`paramverify.interrupt`);
        once a signal arrived every deadline built from these options counts
        as expired, so the run stops at its next deadline check.
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
    stop: StopSignal | None = field(default=None, compare=False)
    pool: BatchPool | None = None

    def __getstate__(self) -> dict[str, Any]:
        """A copy shipped to a worker (Ray) leaves the signal record and the pool behind:
        both belong to the driver's process (signals reach the driver, which stops the pool)."""
        return {**self.__dict__, "stop": None, "pool": None}

    def deadline(self) -> Deadline:
        return Deadline(None if self.timeout_s is None else time.monotonic() + self.timeout_s, self.stop)


@dataclass(frozen=True)
class Deadline:
    """A wall-clock limit (``at``, from ``time.monotonic``) that a stop signal also ends."""

    at: float | None
    stop: StopSignal | None = field(default=None, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stop": None}  # see Options.__getstate__

    def expired(self) -> bool:
        return self.interrupted() or (self.at is not None and time.monotonic() >= self.at)

    def interrupted(self) -> bool:
        """A stop signal arrived (SIGINT/SIGTERM)."""
        return self.stop is not None and self.stop.requested

    def within(self, seconds: float | None) -> Deadline:
        """The earlier of this deadline and ``seconds`` from now (same stop signal)."""
        if seconds is None:
            return self
        at = time.monotonic() + seconds
        return Deadline(at if self.at is None else min(at, self.at), self.stop)

    def remaining(self) -> float | None:
        if self.interrupted():
            return 0.0
        return None if self.at is None else max(0.0, self.at - time.monotonic())
