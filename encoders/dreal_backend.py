"""The dReal backend (optional): delta-complete SMT with exp, sigmoid, tanh, softmax.

Only available where ``import dreal`` works (it needs the IBEX library);
otherwise ``DRealEngine.available()`` is False and tests skip.

Guarantees:

* ``unsat`` is sound: dReal's interval constraint propagation rounds
  outward, so unsat means no real solution.  Constants: a float64 value is
  passed as the same double (exact); a rational that is not a double (folded
  constant sub-expressions) becomes a fresh variable bracketed by its two
  neighbouring doubles, which only enlarges the (existential) violation set.
* ``delta-sat`` is NOT sat: only a box whose midpoint replays via
  :func:`paramverify.replay.confirm` is reported as a counterexample;
  otherwise the answer is ``Unknown("dReal delta-sat (precision ...) did not
  replay ...")``.
* dReal has no timeout option; each query runs in a forked child process
  that is killed at the query / run deadline (inline where fork is missing).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, ClassVar

from encoders.base import CAP_DELTA, CAP_EXP, CAP_RELU, OperatorComparisons, SolverAnswer
from encoders.bisect import ceil_float, floor_float
from encoders.bounded import BoundedBuilder
from encoders.engine import SmtEngine
from paramverify.options import Options

try:  # guarded import, pysmt solvers/ style: absence makes the engine unavailable
    import dreal

    _IMPORT_ERROR = ""
except (ImportError, OSError) as exc:  # OSError: the IBEX shared library is missing
    dreal = None
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


class DRealBuilder(OperatorComparisons):
    """Makes dReal expressions and formulas (see the module doc for constants)."""

    capabilities: frozenset[str] = frozenset({CAP_RELU, CAP_EXP, CAP_DELTA})

    def __init__(self) -> None:
        self.variables: dict[str, Any] = {}
        self.side_constraints: list[Any] = []
        self.nonlinear = False
        self._consts: dict[Fraction, Any] = {}

    def const(self, q: Fraction) -> Any:
        c = self._consts.get(q)
        if c is not None:
            return c
        f = q.numerator / q.denominator
        if Fraction(f) == q:
            c = dreal.Expression(f)
        else:
            v = dreal.Variable(f"_const_{len(self._consts)}")
            self.side_constraints.append(dreal.And(v >= floor_float(q), v <= ceil_float(q)))
            c = dreal.Expression(v)
        self._consts[q] = c
        return c

    def var(self, name: str) -> Any:
        v = dreal.Variable(name)
        self.variables[name] = v
        return v

    def _scaled(self, q: Fraction, t: Any) -> Any:
        if q == 1:
            return t
        f = q.numerator / q.denominator
        if Fraction(f) == q:
            return f * t
        return self.const(q) * t

    def linear(self, constant: Fraction, terms: Sequence[tuple[Fraction, Any]]) -> Any:
        acc = self.const(constant) if constant != 0 or not terms else None
        for q, t in terms:
            part = self._scaled(q, t)
            acc = part if acc is None else acc + part
        return acc

    def mul(self, a: Any, b: Any) -> Any:
        self.nonlinear = True
        return a * b

    def div(self, a: Any, b: Any) -> Any:
        return a / b

    def relu(self, a: Any) -> Any:
        return dreal.if_then_else(a >= 0, a, dreal.Expression(0.0))

    def leaky_relu(self, a: Any, alpha: Fraction) -> Any:
        return dreal.if_then_else(a >= 0, a, self._scaled(alpha, a))

    def exp(self, a: Any) -> Any:
        return dreal.exp(a)

    def sigmoid(self, a: Any) -> Any:
        return 1.0 / (1.0 + dreal.exp(-a))

    def tanh(self, a: Any) -> Any:
        return dreal.tanh(a)

    def and_(self, formulas: Sequence[Any]) -> Any:
        return dreal.And(*formulas)

    def or_(self, formulas: Sequence[Any]) -> Any:
        return dreal.Or(*formulas)

    def true(self) -> Any:
        return getattr(dreal.Formula, "True")()

    def false(self) -> Any:
        return getattr(dreal.Formula, "False")()


def _solve(formula: Any, precision: float, seed: int, variables: dict[str, Any]) -> tuple[str, dict[str, float]]:
    config = dreal.Config()
    config.precision = precision
    if hasattr(config, "random_seed"):
        config.random_seed = seed
    box = dreal.CheckSatisfiability(formula, config)
    if box is None:
        return "unsat", {}
    return "sat", {name: float(box[v].mid()) for name, v in variables.items()}


def _child(conn: Any, formula: Any, precision: float, seed: int, variables: dict[str, Any]) -> None:
    try:
        conn.send(_solve(formula, precision, seed, variables))
    except (RuntimeError, ValueError, TypeError) as exc:  # dReal's errors surface as RuntimeError
        conn.send(("error", {"reason": f"{type(exc).__name__}: {exc}"}))
    finally:
        conn.close()


def run_with_timeout(fn: Any, args: tuple[Any, ...], timeout_s: float | None) -> tuple[str, Any]:
    """Run ``fn(conn, *args)`` in a forked child; ("timeout", None) if it overruns.

    ``fn`` must send exactly one picklable message on ``conn``.  Falls back
    to an inline call (no timeout) where the fork start method is missing.
    """
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - non-POSIX platforms
        recv, send = multiprocessing.Pipe(False)
        fn(send, *args)
        return "ok", recv.recv()
    recv, send = ctx.Pipe(False)
    proc = ctx.Process(target=fn, args=(send, *args), daemon=True)
    proc.start()
    send.close()
    try:
        if recv.poll(timeout_s):
            try:
                return "ok", recv.recv()
            except EOFError:
                return "error", None
        return "timeout", None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()


class DRealBackend:
    """dReal as a :class:`~encoders.base.SolverBackend`."""

    name: ClassVar[str] = "dreal"
    capabilities: ClassVar[frozenset[str]] = frozenset({CAP_RELU, CAP_EXP, CAP_DELTA})

    @classmethod
    def available(cls) -> bool:
        return dreal is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        if dreal is not None:
            return ""
        return f"the dreal package does not import ({_IMPORT_ERROR}); install IBEX and `pip install dreal`"

    def builder(self) -> BoundedBuilder:
        return BoundedBuilder(DRealBuilder())

    def describe_sat(self, options: Options) -> str:
        return f"dReal delta-sat (precision {options.dreal_precision:g})"

    def check(self, builder: BoundedBuilder, formula: Any, timeout_s: float | None, options: Options) -> SolverAnswer:
        """unsat is a proof; sat is delta-sat with the box midpoints as the model."""
        t0 = time.perf_counter()
        if isinstance(formula, bool):
            return SolverAnswer("sat" if formula else "unsat")
        status, payload = run_with_timeout(
            _child, (formula, float(options.dreal_precision), int(options.seed), builder.variables), timeout_s
        )
        dt = time.perf_counter() - t0
        if status == "timeout":
            return SolverAnswer("unknown", {}, f"dReal query timed out after {timeout_s or 0:g} s", dt)
        if status != "ok" or payload is None:
            return SolverAnswer("unknown", {}, "dReal worker died without an answer", dt)
        kind, data = payload
        if kind == "unsat":
            return SolverAnswer("unsat", {}, "", dt)
        if kind == "sat":
            return SolverAnswer("sat", data, "", dt)
        return SolverAnswer("unknown", {}, f"dReal failed: {data.get('reason', '?')}", dt)


class DRealEngine(SmtEngine):
    """delta-complete verification with dReal (sigmoid/tanh/softmax anywhere)."""

    name = "dreal"
    capabilities = frozenset({"sigmoid", "tanh", "softmax", "global", "optimise"})
    backend_cls = DRealBackend
