"""The z3 backend: exact SMT over the reals (linear and nonlinear), no ``exp``.

Guarantees: constants are exact rationals (``Fraction(float)``), ReLU is
``If(t >= 0, t, 0)``; ``unsat`` is a proof in real arithmetic on the exact
float64 parameter values.  z3 has no ``exp``: a final Sigmoid is handled
through its logit (see :mod:`encoders.encode`); any other Sigmoid, Tanh or
Softmax raises :class:`~paramverify.errors.CapabilityError`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, ClassVar

from encoders.base import CAP_EXACT, CAP_RELU, NoTranscendentals, OperatorComparisons, SolverAnswer
from encoders.bounded import BoundedBuilder
from encoders.engine import SmtEngine
from paramverify.options import Options

try:  # guarded: the engine reports itself unavailable instead of failing to import
    import z3
except ImportError:  # pragma: no cover - z3-solver is a hard dependency
    z3 = None


class Z3Builder(OperatorComparisons, NoTranscendentals):
    """Makes z3 terms; records variables and whether any product is nonlinear."""

    backend_name: ClassVar[str] = "z3"
    capabilities: frozenset[str] = frozenset({CAP_EXACT, CAP_RELU})

    def __init__(self, ctx: Any = None) -> None:
        self.ctx = ctx
        self.variables: dict[str, Any] = {}
        self.side_constraints: list[Any] = []
        self.nonlinear = False
        self._consts: dict[Fraction, Any] = {}

    def const(self, q: Fraction) -> Any:
        c = self._consts.get(q)
        if c is None:
            text = str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"
            c = self._consts[q] = z3.RealVal(text, self.ctx)
        return c

    def var(self, name: str) -> Any:
        v = z3.Real(name, self.ctx)
        self.variables[name] = v
        return v

    def linear(self, constant: Fraction, terms: Sequence[tuple[Fraction, Any]]) -> Any:
        parts = []
        for q, t in terms:
            if q == 1:
                parts.append(t)
            elif q == -1:
                parts.append(-t)
            else:
                parts.append(self.const(q) * t)
        if constant != 0 or not parts:
            parts.append(self.const(constant))
        return parts[0] if len(parts) == 1 else z3.Sum(parts)

    def mul(self, a: Any, b: Any) -> Any:
        self.nonlinear = True
        return a * b

    def relu(self, a: Any) -> Any:
        return z3.If(a >= 0, a, self.const(Fraction(0)))

    def leaky_relu(self, a: Any, alpha: Fraction) -> Any:
        return z3.If(a >= 0, a, self.const(alpha) * a)

    def and_(self, formulas: Sequence[Any]) -> Any:
        return z3.And(list(formulas))

    def or_(self, formulas: Sequence[Any]) -> Any:
        return z3.Or(list(formulas))

    def true(self) -> Any:
        return z3.BoolVal(True, self.ctx)

    def false(self) -> Any:
        return z3.BoolVal(False, self.ctx)


def _value(v: Any) -> Fraction:
    """A z3 model value as a Fraction (algebraic numbers to 1e-30)."""
    if z3.is_rational_value(v):
        return Fraction(v.numerator_as_long(), v.denominator_as_long())
    if z3.is_algebraic_value(v):
        r = v.approx(30)
        return Fraction(r.numerator_as_long(), r.denominator_as_long())
    raise ValueError(f"unexpected z3 model value {v}")  # pragma: no cover


class Z3Backend:
    """z3 as a :class:`~encoders.base.SolverBackend`."""

    name: ClassVar[str] = "z3"
    capabilities: ClassVar[frozenset[str]] = frozenset({CAP_EXACT, CAP_RELU})

    @classmethod
    def available(cls) -> bool:
        return z3 is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        return "" if z3 is not None else "the z3-solver package is not installed (pip install z3-solver)"

    def builder(self) -> BoundedBuilder:
        """A fresh context per query; exact interval bounds fold stable ReLUs away."""
        return BoundedBuilder(Z3Builder(z3.Context()))

    def describe_sat(self, options: Options) -> str:
        return "z3 sat model"

    def check(self, builder: BoundedBuilder, formula: Any, timeout_s: float | None, options: Options) -> SolverAnswer:
        """Decide ``formula`` exactly; "unknown" on timeout or incompleteness."""
        t0 = time.perf_counter()
        if isinstance(formula, bool):
            return SolverAnswer("sat" if formula else "unsat", {}, "", 0.0)
        solver = z3.SolverFor("QF_NRA", ctx=builder.ctx) if builder.nonlinear else z3.Solver(ctx=builder.ctx)
        if timeout_s is not None:
            solver.set("timeout", max(1, int(timeout_s * 1000)))
        solver.set("random_seed", int(options.seed))
        solver.add(formula)
        # a SIGINT/SIGTERM cannot run Python code while z3 works: the signal's helper thread
        # cancels the query instead (see paramverify.interrupt), and z3 answers unknown
        with options.stop.on_stop(builder.ctx.interrupt) if options.stop is not None else contextlib.nullcontext():
            result = solver.check()
        dt = time.perf_counter() - t0
        if result == z3.unsat:
            return SolverAnswer("unsat", {}, "", dt)
        if result == z3.sat:
            m = solver.model()
            model = {name: _value(m.eval(v, model_completion=True)) for name, v in builder.variables.items()}
            return SolverAnswer("sat", model, "", dt)
        reason = solver.reason_unknown()
        if reason in ("timeout", "canceled") and timeout_s is not None:
            reason = f"z3 query timed out after {timeout_s:g} s ({reason})"
        else:
            reason = f"z3 returned unknown ({reason})"
        return SolverAnswer("unknown", {}, reason, dt)


class Z3Engine(SmtEngine):
    """Exact SMT verification with z3 (ReLU/linear networks; final Sigmoid via the logit)."""

    name = "z3"
    capabilities = frozenset({"exact", "global", "optimise"})
    backend_cls = Z3Backend
