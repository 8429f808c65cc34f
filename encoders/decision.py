"""The outcome of one refutation query, and what the optimisers need of an engine.

Kept apart from :mod:`encoders.engine` so that the bisection optimisers
(:mod:`encoders.bisect`) depend on this small interface, not on the engine that
imports them: no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from paramverify.results import Counterexample

if TYPE_CHECKING:
    from encoders.encode import Query
    from paramverify.options import Deadline, Options
    from paramverify.properties import Problem
    from paramverify.specs import ParamBox


@dataclass(frozen=True, eq=False)
class Decision:
    """One query's outcome.

    ``status``: "holds" (unsat: proved), "violated" (``counterexample``
    replayed), "sat" (the solver found a model but no replayed violation;
    ``candidate`` holds its snapped (x, params)), "unknown" (``reason``).
    ``models`` lists every snapped (x, params) the solver produced, for
    witness-side bookkeeping by the optimisers.
    """

    status: Literal["holds", "violated", "sat", "unknown"]
    counterexample: Counterexample | None = None
    reason: str = ""
    models: tuple[tuple[np.ndarray, dict[str, np.ndarray]], ...] = ()
    time_s: float = 0.0
    note: str = ""


class Decider(Protocol):
    """An engine that answers one refutation query at a time (z3, dReal)."""

    name: str

    def decide(self, problem: Problem, query: Query, options: Options, deadline: Deadline,
               box: ParamBox | None = None) -> Decision: ...
