"""Typed results: verdicts (a closed set) and optimisation brackets.

A verdict is exactly one of :class:`Verified`, :class:`Falsified` or
:class:`Unknown`; never a string.  An optimised number is a :class:`Bracket`
``[lower, upper]`` that provably contains the true optimum: one side comes
from a concrete witness evaluated on the model, the other from a proof.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from paramverify.errors import check

#: version of every JSON object the command line writes (its ``schema`` field); raised
#: whenever a field is removed or changes meaning (adding fields keeps the version)
SCHEMA_VERSION = 1


@dataclass(frozen=True, eq=False)
class Counterexample:
    """A concrete (parameters, input) pair that violates a property.

    ``parameters`` maps every perturbed initializer name to its value in the
    initializer's shape; unlisted initializers keep their nominal values.
    ``replayed`` is True once onnxruntime, run on the model with these
    parameters, confirmed the violation.
    """

    input: np.ndarray
    parameters: dict[str, np.ndarray]
    nominal_output: np.ndarray
    perturbed_output: np.ndarray
    replayed: bool = False
    note: str = ""
    #: onnxruntime's (nominal, perturbed) outputs at this point, once replayed
    onnxruntime_outputs: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_parameter_values(self) -> int:
        return int(sum(np.size(v) for v in self.parameters.values()))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input": np.asarray(self.input, dtype=float).tolist(),
            "parameters": {k: np.asarray(v, dtype=float).tolist() for k, v in self.parameters.items()},
            "nominal_output": np.asarray(self.nominal_output, dtype=float).tolist(),
            "perturbed_output": np.asarray(self.perturbed_output, dtype=float).tolist(),
            "replayed_on_onnxruntime": self.replayed,
        }
        if self.onnxruntime_outputs is not None:
            out["onnxruntime_nominal_output"] = np.asarray(self.onnxruntime_outputs[0], dtype=float).tolist()
            out["onnxruntime_perturbed_output"] = np.asarray(self.onnxruntime_outputs[1], dtype=float).tolist()
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Verified:
    """The property holds for every parameter in the box and every input in the region."""

    method: str
    time_s: float = 0.0
    name: Literal["verified"] = field(default="verified", init=False)
    exit_code: int = field(default=0, init=False)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.name, "method": self.method, "time_s": self.time_s}


@dataclass(frozen=True)
class Falsified:
    """A concrete counterexample, replayed on onnxruntime, violates the property."""

    counterexample: Counterexample
    method: str
    time_s: float = 0.0
    name: Literal["falsified"] = field(default="falsified", init=False)
    exit_code: int = field(default=1, init=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.name,
            "method": self.method,
            "time_s": self.time_s,
            "counterexample": self.counterexample.to_json(),
        }


@dataclass(frozen=True)
class MarginBracket:
    """How far an undecided int8-vs-float label agreement got.

    The float label is proved to be ``cls`` on the whole region, and the int8
    model's margin for it (``int8_c - max_j int8_j``; the agreement needs it
    > 0 everywhere) is proved >= ``lower`` on the region, on ``pieces`` pieces
    of it.  ``upper``: the lowest margin seen at a concrete input of the
    region on onnxruntime (the int8 file), None when no input was scored.
    """

    cls: int
    lower: float
    upper: float | None
    pieces: int

    def to_json(self) -> dict[str, Any]:
        return {"class": self.cls, "proved_at_least": self.lower, "lowest_found": self.upper, "pieces": self.pieces}

    def describe(self) -> str:
        found = "" if self.upper is None else f", and {self.upper:.4g} at the lowest input found (onnxruntime)"
        return (f"the int8 model's margin for the float label (class {self.cls}, which the float model keeps on the "
                f"whole region) is proved >= {self.lower:.4g} over {self.pieces} pieces{found}; "
                "agreement needs it > 0 everywhere")


@dataclass(frozen=True)
class Unknown:
    """Neither proved nor refuted; ``reason`` says why (timeout, delta-sat, ...).  ``margin``: for an
    int8 label agreement, the bracket of the int8 margin reached (:class:`MarginBracket`)."""

    reason: str
    method: str
    time_s: float = 0.0
    margin: MarginBracket | None = None
    name: Literal["unknown"] = field(default="unknown", init=False)
    exit_code: int = field(default=3, init=False)

    def to_json(self) -> dict[str, Any]:
        out = {"verdict": self.name, "method": self.method, "time_s": self.time_s, "reason": self.reason}
        if self.margin is not None:
            out["int8_margin"] = self.margin.to_json()
        return out


Verdict = Verified | Falsified | Unknown


@dataclass(frozen=True, eq=False)
class Bracket:
    """A proved enclosure ``lower <= optimum <= upper`` of an optimised quantity.

    ``proof_side`` says which end is backed by a proof ("upper" for the
    largest epsilon and the smallest sigma, "lower" for the largest delta);
    the other end comes from ``witness``, a concrete point evaluated on the
    model.  ``complete`` is False when the run stopped (timeout, interrupt)
    before reaching the requested tolerance; the bracket is still valid.
    """

    quantity: str
    lower: float
    upper: float
    time_s: float
    method: str
    proof_side: Literal["upper", "lower"]
    witness: Counterexample | None = None
    complete: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(not (self.lower > self.upper), f"inverted bracket [{self.lower}, {self.upper}]")
        check(not math.isnan(self.upper) and not math.isnan(self.lower), f"NaN in bracket [{self.lower}, {self.upper}]")

    @property
    def gap(self) -> float:
        return self.upper - self.lower

    @property
    def exit_code(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quantity": self.quantity,
            "lower": _num(self.lower),
            "upper": _num(self.upper),
            "gap": _num(self.gap),
            "time_s": self.time_s,
            "method": self.method,
            "proof_side": self.proof_side,
            "complete": self.complete,
        }
        if self.witness is not None:
            out["witness"] = self.witness.to_json()
        if self.note:
            out["note"] = self.note
        out.update(self.extra)
        return out


def _num(x: float) -> float | str:
    """JSON has no infinities: spell them as strings."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)
