"""The one interface every SMT backend implements.

A backend (z3, dReal, the SMT-LIB2 printer) provides two things:

* a :class:`TermBuilder`: how to make real constants, variables, linear
  combinations, products, ReLU, and (where the solver has them) ``exp``,
  sigmoid and tanh, plus comparisons and Boolean connectives.  The
  :class:`~encoders.symbolic.SymbolicKernel` is written once against it, so
  every ONNX op lowering gets an SMT semantics for free;
* a :class:`SolverBackend`: declared capabilities, a guarded import
  (``available()`` / ``unavailable_reason()``, pysmt ``solvers/`` style) and
  ``check(builder, formula, timeout_s)`` returning a :class:`SolverAnswer`.

Capabilities (backend level): ``"exact"`` (decides real arithmetic exactly:
sat means sat), ``"relu"`` (piecewise-linear terms), ``"exp"`` (sigmoid,
tanh, softmax), ``"optimise"`` (native optimisation; unused by the bisection
driver), ``"delta"`` (answers are delta-sat, never plain sat).

Guarantee shared by every backend: ``"unsat"`` means the formula has no
real solution.  A ``"sat"`` answer only carries a candidate model; it is
never reported without a replay on onnxruntime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from paramverify.errors import CapabilityError
from paramverify.options import Options

#: Capability names a backend may declare.
CAP_EXACT = "exact"
CAP_RELU = "relu"
CAP_EXP = "exp"
CAP_OPTIMISE = "optimise"
CAP_DELTA = "delta"

Comparison = Literal["<", "<=", ">", ">="]


@runtime_checkable
class TermBuilder(Protocol):
    """Makes solver terms and formulas; one instance per query.

    Terms are opaque to the kernel.  ``var`` records every variable it makes
    in ``variables`` (name -> term) so that models can be read back;
    ``side_constraints`` holds formulas the builder needed to define its
    terms (e.g. fresh variables bracketing a constant the solver cannot
    represent exactly); they are conjoined to every query.
    """

    capabilities: frozenset[str]
    variables: dict[str, Any]
    side_constraints: list[Any]

    def const(self, q: Fraction) -> Any: ...
    def var(self, name: str) -> Any: ...
    def linear(self, constant: Fraction, terms: Sequence[tuple[Fraction, Any]]) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def relu(self, a: Any) -> Any: ...
    def leaky_relu(self, a: Any, alpha: Fraction) -> Any: ...
    def exp(self, a: Any) -> Any: ...
    def sigmoid(self, a: Any) -> Any: ...
    def tanh(self, a: Any) -> Any: ...
    def compare(self, op: Comparison, a: Any, b: Any) -> Any: ...
    def and_(self, formulas: Sequence[Any]) -> Any: ...
    def or_(self, formulas: Sequence[Any]) -> Any: ...
    def true(self) -> Any: ...
    def false(self) -> Any: ...


@dataclass(frozen=True)
class SolverAnswer:
    """The outcome of one solver call.

    ``status`` is "sat" (for delta-complete backends: delta-sat), "unsat" or
    "unknown".  ``model`` maps every variable name of the builder to a
    value (a ``Fraction`` for exact backends, a float box midpoint for
    dReal); it is empty unless the status is "sat".  ``reason`` says why an
    answer is unknown (timeout, incomplete theory, ...).
    """

    status: Literal["sat", "unsat", "unknown"]
    model: Mapping[str, Fraction | float] = field(default_factory=dict)
    reason: str = ""
    time_s: float = 0.0


@runtime_checkable
class SolverBackend(Protocol):
    """A solver usable by :class:`~encoders.engine.SmtEngine`."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    @classmethod
    def available(cls) -> bool: ...

    @classmethod
    def unavailable_reason(cls) -> str: ...

    def builder(self) -> TermBuilder: ...

    def describe_sat(self, options: Options) -> str:
        """How to call a "sat" answer in messages ("z3 sat model", "dReal delta-sat (precision ...)")."""
        ...

    def check(self, builder: TermBuilder, formula: Any, timeout_s: float | None, options: Options) -> SolverAnswer:
        """Decide ``formula`` (a Python bool when it folded to a constant) within ``timeout_s``."""
        ...


class OperatorComparisons:
    """Mixin for builders whose terms overload Python's comparison operators (z3, dReal)."""

    def compare(self, op: Comparison, a: Any, b: Any) -> Any:
        if op == ">=":
            return a >= b
        if op == ">":
            return a > b
        if op == "<=":
            return a <= b
        if op == "<":
            return a < b
        raise ValueError(f"unknown comparison {op!r}")


class NoTranscendentals:
    """Mixin for builders without ``exp``: every transcendental raises.

    ``what`` names the backend in the message, which always says which
    engine can answer instead.
    """

    backend_name: ClassVar[str] = "this backend"

    def _no_exp(self, op: str) -> CapabilityError:
        return CapabilityError(
            f"{self.backend_name} has no exp, so it cannot encode {op} soundly; "
            "use --backend bounds or dreal"
        )

    def exp(self, a: Any) -> Any:
        raise self._no_exp("exp")

    def sigmoid(self, a: Any) -> Any:
        raise self._no_exp("a Sigmoid it cannot reduce to its logit (one before the last layer, or a final one "
                           "under an output bound over a domain)")

    def tanh(self, a: Any) -> Any:
        raise self._no_exp("Tanh")

    def div(self, a: Any, b: Any) -> Any:
        raise self._no_exp("a division by a non-constant term (Softmax)")


class ExactOnlyBuilder(NoTranscendentals):
    """A builder that never makes a term: every value must fold to a Fraction.

    Used to evaluate a network exactly (in rational arithmetic) on a
    concrete input and concrete parameters; any attempt to build a term is a
    programming error or an op without a rational semantics (sigmoid).
    """

    backend_name: ClassVar[str] = "exact rational evaluation"
    capabilities: frozenset[str] = frozenset({CAP_EXACT, CAP_RELU})

    def __init__(self) -> None:
        self.variables: dict[str, Any] = {}
        self.side_constraints: list[Any] = []

    def _never(self, *args: Any) -> Any:
        raise CapabilityError("exact rational evaluation met a non-constant value")

    const = var = linear = mul = relu = leaky_relu = compare = and_ = or_ = true = false = _never
