"""SMT-LIB2 export: the same encoding as the solvers, as a standalone script.

``export_smtlib(problem, prop)`` prints the negated property over the
network (nominal copy with exact constant parameters, perturbed copy with
declared parameter variables bounded by the box, shared inputs bounded by
the region).  ``unsat`` means the property holds.  Constants are the exact
rationals of the float64 values, written ``(/ p q)``.  Sigmoid is
``(/ 1.0 (+ 1.0 (exp (- z))))``; ``exp`` is a dReal extension (z3 does not
parse it).  With ``logit=True`` a final Sigmoid is handled through its logit
as in the z3 engine (thresholds rounded outward, so unsat still proves the
property) and the script stays in QF_NRA/QF_LRA proper.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from encoders.base import CAP_EXACT, CAP_EXP, CAP_RELU
from encoders.encode import encode, query_for
from paramverify.properties import (
    LabelInvariance,
    MarginLabelInvariance,
    OutputBound,
    Problem,
    Property,
)


def smt_number(q: Fraction) -> str:
    """An exact SMT-LIB real literal: ``3.0``, ``(/ 1 3)``, ``(- (/ 1 3))``."""
    mag = abs(q)
    body = f"{mag.numerator}.0" if mag.denominator == 1 else f"(/ {mag.numerator} {mag.denominator})"
    return f"(- {body})" if q < 0 else body


class SmtLibBuilder:
    """Terms are SMT-LIB strings; every non-trivial term gets a ``define-fun``."""

    capabilities: frozenset[str] = frozenset({CAP_EXACT, CAP_RELU, CAP_EXP})

    def __init__(self) -> None:
        self.variables: dict[str, str] = {}
        self.side_constraints: list[Any] = []
        self.definitions: list[str] = []
        self._defined: dict[str, str] = {}
        self.nonlinear = False
        self.uses_exp = False

    def _define(self, prefix: str, body: str) -> str:
        name = self._defined.get(body)
        if name is None:  # identical sub-terms (the shared input normalisation) are defined once
            name = self._defined[body] = f"{prefix}_{len(self.definitions)}"
            self.definitions.append(f"(define-fun {name} () Real {body})")
        return name

    def const(self, q: Fraction) -> str:
        return smt_number(q)

    def var(self, name: str) -> str:
        self.variables[name] = name
        return name

    def linear(self, constant: Fraction, terms: Sequence[tuple[Fraction, Any]]) -> str:
        parts = [t if q == 1 else f"(* {smt_number(q)} {t})" for q, t in terms]
        if constant != 0 or not parts:
            parts.append(smt_number(constant))
        if len(parts) == 1:
            return parts[0]
        return self._define("t", f"(+ {' '.join(parts)})")

    def mul(self, a: str, b: str) -> str:
        self.nonlinear = True
        return f"(* {a} {b})"

    def div(self, a: str, b: str) -> str:
        self.nonlinear = True
        return self._define("q", f"(/ {a} {b})")

    def relu(self, a: str) -> str:
        return self._define("relu", f"(ite (>= {a} 0.0) {a} 0.0)")

    def leaky_relu(self, a: str, alpha: Fraction) -> str:
        return self._define("lrelu", f"(ite (>= {a} 0.0) {a} (* {smt_number(alpha)} {a}))")

    def exp(self, a: str) -> str:
        self.uses_exp = True
        return self._define("e", f"(exp {a})")

    def sigmoid(self, a: str) -> str:
        self.uses_exp = True
        self.nonlinear = True
        return self._define("sig", f"(/ 1.0 (+ 1.0 (exp (- {a}))))")

    def tanh(self, a: str) -> str:
        self.uses_exp = True
        return self._define("tanh", f"(tanh {a})")

    def compare(self, op: str, a: str, b: str) -> str:
        return f"({op} {a} {b})"

    def and_(self, formulas: Sequence[str]) -> str:
        return f"(and {' '.join(formulas)})"

    def or_(self, formulas: Sequence[str]) -> str:
        return f"(or {' '.join(formulas)})"

    def true(self) -> str:
        return "true"

    def false(self) -> str:
        return "false"


def _describe_property(prop: Property, problem: Problem) -> str:
    where = "at the input x0" if problem.region.is_point else "for every input in the domain"
    if isinstance(prop, OutputBound):
        return f"OutputBound: |f_p(x) - f_p0(x)|_inf <= {prop.epsilon!r} {where}, for every p in the box"
    how = "argmax" if not problem.binary else f"f >= level {problem.level!r} is class 1"
    if isinstance(prop, MarginLabelInvariance):
        return (f"MarginLabelInvariance: the label ({how}) of f_p(x) equals that of f_p0(x) {where} "
                f"whose nominal margin is >= {prop.sigma!r}, for every p in the box")
    if isinstance(prop, LabelInvariance):
        return f"LabelInvariance: the label ({how}) of f_p(x) equals that of f_p0(x) {where}, for every p in the box"
    raise TypeError(f"unknown property {prop!r}")


def _region_text(problem: Problem) -> str:
    r = problem.region
    if r.is_point:
        return "point x0 = [" + ", ".join(repr(float(v)) for v in r.lo) + "]"
    return "box " + " x ".join(f"[{float(a)!r}, {float(b)!r}]" for a, b in zip(r.lo, r.hi))


def export_smtlib(problem: Problem, prop: Property, logit: bool = False) -> str:
    """A complete SMT-LIB2 script whose ``unsat`` means ``prop`` holds on ``problem``."""
    builder = SmtLibBuilder()
    enc = encode(problem, query_for(prop), builder, reduce_head=logit)
    box = problem.box
    logic = "QF_NRA" if (builder.nonlinear or builder.uses_exp) else "QF_LRA"
    lines = [
        "; paramverify SMT-LIB2 export",
        f"; model: {problem.graph.source}",
        f"; property: {_describe_property(prop, problem)}",
        f"; input region: {_region_text(problem)}",
        f"; parameter box: {box.description or 'custom'}; {box.n_parameters} perturbed values in "
        + (", ".join(f"{n}{list(np.shape(box.lo[n]))}" for n in box.names) or "no tensor"),
        "; The script asserts the NEGATION of the property: unsat means the property holds",
        "; (in real arithmetic, for the exact float64 parameter values); a model is a candidate",
        "; counterexample that must still be replayed on the network.",
        "; Constants are the exact rationals of the float64 values, written (/ p q).",
    ]
    if enc.head.kind != "identity":
        lines.append(f"; The final activation is handled {enc.head.note}; irrational thresholds are rounded")
        lines.append("; outward (towards more violations), so unsat still proves the property.")
    if builder.uses_exp:
        lines.append("; `exp` (and `tanh`) are dReal extensions of QF_NRA; z3 and other standard solvers reject them.")
        lines.append("; Sigmoid is written (/ 1.0 (+ 1.0 (exp (- z)))).")
    lines.append(f"; logic: {logic} ({'nonlinear: parameters multiply inputs or other parameters' if logic == 'QF_NRA' else 'linear'})")
    lines.append("")
    lines.append("(set-option :produce-models true)")
    lines.append(f"(set-logic {logic})")
    for name in builder.variables:
        lines.append(f"(declare-fun {name} () Real) ; {enc.names.get(name, '')}")
    lines.extend(builder.definitions)
    for c in enc.constraints:
        lines.append(f"(assert {c})")
    violation = enc.violation
    if isinstance(violation, bool):
        violation = "true" if violation else "false"
    lines.append("; the negated property")
    lines.append(f"(assert {violation})")
    lines.append("(check-sat)")
    lines.append("(get-model)")
    lines.append("(exit)")
    return "\n".join(lines) + "\n"
