"""The generic property encoding: (problem, query) -> a formula whose models are violations.

The network is run twice on the :class:`~encoders.symbolic.SymbolicKernel`:
the nominal copy with the parameters as exact constants and the perturbed
copy with one variable per perturbed parameter element, constrained to the
:class:`~paramverify.specs.ParamBox`; both copies share the input variables,
constrained to the region.  The formula asserts the NEGATION of the
property, so ``unsat`` proves it.

Two encodings of every query:

* **relaxed** (for proofs): every irrational threshold (``logit(l)``,
  ``sigmoid(z0)``) is replaced by a rational bound in the direction that
  ENLARGES the violation set, so the formula's solutions cover every true
  violation (unsat => property holds in real arithmetic).
* **strict** with ``slack >= 0`` (for witnesses): thresholds are rounded the
  other way and every comparison needs ``slack`` to spare, so each solution
  is a true violation with room for the float32 snapping of the replay.
  Evaluated on constants (no variables) the strict formula folds to a Python
  bool: the exact real-arithmetic check of a witness.

Final-Sigmoid reduction ("logit head"): when the graph ends in Sigmoid and
the query is about labels (binary, threshold ``l``) or is an output bound at
a point, the graph minus the Sigmoid is encoded and the thresholds are moved
through the logit, so backends without ``exp`` (z3) can answer.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from encoders.base import TermBuilder
from encoders.rational import logit_bounds, sigmoid_bounds, to_fraction
from encoders.symbolic import Sym, SymbolicKernel, flat, is_num
from paramverify.errors import CapabilityError
from paramverify.ir import Graph
from paramverify.kernels.numeric import NumericKernel
from paramverify.ops.activation import Sigmoid, Softmax
from paramverify.ops.shape import Identity
from paramverify.properties import (
    LabelInvariance,
    MarginLabelInvariance,
    OutputBound,
    Problem,
    Property,
)
from paramverify.specs import ParamBox

Bound = Fraction | float  # float only for +-inf


@dataclass(frozen=True)
class OutputQuery:
    """Negation of Def 1/2: some output moves by more than ``epsilon``.

    ``index``/``sign`` restrict it to output ``index`` moving up (+1) or
    down (-1): one disjunct (see :func:`subqueries`).
    """

    epsilon: Fraction
    index: int | None = None
    sign: int | None = None


@dataclass(frozen=True)
class LabelQuery:
    """Negation of Def 3/4/5: some input (of class ``cls``, margin >= ``sigma``) flips.

    ``rival`` (k classes) restricts the flip to class ``rival`` catching up
    with ``cls``: one disjunct (see :func:`subqueries`).
    """

    sigma: Fraction | None = None
    cls: int | None = None
    rival: int | None = None


Query = OutputQuery | LabelQuery


def query_for(prop: Property) -> Query:
    """The query whose unsatisfiability proves ``prop``."""
    if isinstance(prop, OutputBound):
        return OutputQuery(to_fraction(prop.epsilon))
    if isinstance(prop, MarginLabelInvariance):
        return LabelQuery(to_fraction(prop.sigma))
    if isinstance(prop, LabelInvariance):
        return LabelQuery()
    raise TypeError(f"unknown property {prop!r}")


def property_for(query: Query) -> Property:
    """The paramverify property a query's witnesses must violate (for replay)."""
    if isinstance(query, OutputQuery):
        return OutputBound(float(query.epsilon))
    if query.sigma is None:
        return LabelInvariance()
    return MarginLabelInvariance(float(query.sigma))


# ---------------------------------------------------------------------------
# heads: what the encoded graph computes relative to the model's output


@dataclass(frozen=True, eq=False)
class Head:
    """``kind``: "identity" (the model's outputs), "logit" (the input of a
    final Sigmoid), "order" (the input of a final Softmax/Sigmoid; only the
    argmax is used).  ``graph`` is the graph to encode."""

    kind: Literal["identity", "logit", "order"]
    graph: Graph

    @property
    def note(self) -> str:
        if self.kind == "logit":
            return "through the logit of the final Sigmoid"
        if self.kind == "order":
            return "on the scores before the final monotone activation"
        return ""


def _truncated(graph: Graph) -> Graph:
    last = graph.nodes[-1]
    return dataclasses.replace(graph, nodes=graph.nodes[:-1], output_name=last.inputs[0])


def without_trailing_identity(graph: Graph) -> Graph:
    """``graph`` without Identity nodes at its end (exporters often add one before the output)."""
    while graph.nodes and isinstance(graph.nodes[-1].op, Identity) and graph.nodes[-1].output == graph.output_name:
        graph = _truncated(graph)
    return graph


def choose_head(problem: Problem, query: Query, reduce: bool = True) -> Head:
    """Drop a final Sigmoid/Softmax where the query allows it (see module doc)."""
    g = without_trailing_identity(problem.graph)
    if not g.nodes or not reduce:
        return Head("identity", g)
    last = g.nodes[-1]
    if last.output != g.output_name:
        return Head("identity", g)
    binary = problem.binary
    if isinstance(last.op, Sigmoid):
        if isinstance(query, LabelQuery) and binary:
            return Head("logit", _truncated(g))
        if isinstance(query, LabelQuery) and query.sigma is None:
            return Head("order", _truncated(g))
        if isinstance(query, OutputQuery) and problem.region.is_point:
            return Head("logit", _truncated(g))
    if isinstance(last.op, Softmax) and isinstance(query, LabelQuery) and query.sigma is None and not binary:
        rank = len(np.shape(g.run(NumericKernel(), g.as_batch(np.zeros(g.input_size)))))
        if rank == 2 and last.op.axis in (-1, 1):  # softmax over the class axis only
            return Head("order", _truncated(g))
    return Head("identity", g)


# ---------------------------------------------------------------------------
# thresholds through the head, with directed rational rounding


def head_threshold(head: Head, u: Fraction) -> tuple[Bound, Bound]:
    """``(lo, hi)`` enclosing the head-space value ``t`` with ``f(t) = u``.

    identity: ``(u, u)``; logit: ``logit(u)`` (``-inf`` for ``u <= 0``,
    ``+inf`` for ``u >= 1``, since a sigmoid lies strictly in (0, 1)).
    """
    if head.kind != "logit":
        return u, u
    if u <= 0:
        return -math.inf, -math.inf
    if u >= 1:
        return math.inf, math.inf
    return logit_bounds(u)


@dataclass
class Atoms:
    """Builds comparisons ``f(t) op u`` in relaxed or strict mode (see module doc)."""

    builder: TermBuilder
    kernel: SymbolicKernel
    head: Head
    strict: bool = False
    slack: Fraction = Fraction(0)
    inexact: bool = False

    def _cmp(self, op: str, t: Any, bound: Bound) -> Any:
        if isinstance(bound, float):  # an infinity
            if op in (">=", ">"):
                return bound < 0
            return bound > 0
        if is_num(t):
            c = Fraction(t)
            return {">=": c >= bound, ">": c > bound, "<=": c <= bound, "<": c < bound}[op]
        return self.builder.compare(op, t, self.kernel.term(bound))  # type: ignore[arg-type]

    def _bounds(self, u: tuple[Fraction, Fraction]) -> tuple[Bound, Bound]:
        lo, _ = head_threshold(self.head, u[0])
        _, hi = head_threshold(self.head, u[1])
        if lo != hi or u[0] != u[1]:
            self.inexact = True
        return lo, hi

    def above(self, t: Any, u: tuple[Fraction, Fraction], strict_ineq: bool) -> Any:
        """``f(t) >= u`` (``>`` if strict_ineq) for a level known to lie in ``[u0, u1]``."""
        lo, hi = self._bounds(u)
        op = ">" if strict_ineq else ">="
        if not self.strict:
            return self._cmp(op, t, lo)
        return self._cmp(op, t, hi + self.slack if not isinstance(hi, float) else hi)

    def below(self, t: Any, u: tuple[Fraction, Fraction], strict_ineq: bool) -> Any:
        """``f(t) <= u`` (``<`` if strict_ineq) for a level known to lie in ``[u0, u1]``."""
        lo, hi = self._bounds(u)
        op = "<" if strict_ineq else "<="
        if not self.strict:
            return self._cmp(op, t, hi)
        return self._cmp(op, t, lo - self.slack if not isinstance(lo, float) else lo)

    def diff_at_least(self, a: Any, b: Any, c: Fraction, strict_ineq: bool) -> Any:
        """``a - b >= c`` (``>``) on head values of an identity/order head (exact)."""
        d = self.kernel._sub2(a, b)
        c = c + self.slack if self.strict else c
        return self._cmp(">" if strict_ineq else ">=", d, c)

    def and_(self, fs: Sequence[Any]) -> Any:
        return _fold(self.builder, fs, conj=True)

    def or_(self, fs: Sequence[Any]) -> Any:
        return _fold(self.builder, fs, conj=False)


def _fold(builder: TermBuilder, fs: Sequence[Any], conj: bool) -> Any:
    """And/Or that folds Python bools (so constant formulas become bools)."""
    rest = []
    for f in fs:
        if isinstance(f, bool):
            if f != conj:
                return f
            continue
        rest.append(f)
    if not rest:
        return conj
    if len(rest) == 1:
        return rest[0]
    return builder.and_(rest) if conj else builder.or_(rest)


# ---------------------------------------------------------------------------
# the encoding


@dataclass(frozen=True, eq=False)
class Encoding:
    """A formula (or a Python bool when everything folded) and its variables.

    ``x`` / ``params`` hold, per element, either the exact constant
    (``Fraction``) or the name of the solver variable; ``params`` arrays have
    the initializer's shape.  ``inexact`` is True when an irrational
    threshold was rounded (the relaxed formula is then a strict superset).
    """

    formula: Any
    constraints: tuple[Any, ...]  # variable bounds and builder side constraints
    violation: Any  # the negated property (a Python bool when it folded)
    x: list[Fraction | str]
    params: dict[str, np.ndarray]
    head: Head
    inexact: bool
    nonlinear: bool
    names: dict[str, str] = field(default_factory=dict)  # solver name -> human description


_SAFE = re.compile(r"[^A-Za-z0-9_.]")


def sanitize(name: str) -> str:
    """A readable SMT-LIB simple symbol made from an initializer name."""
    s = _SAFE.sub("_", name)
    return s if s and not s[0].isdigit() else f"_{s}"


@dataclass(eq=False)
class Network:
    """The two copies of the network over one builder, shared by every (sub)query.

    ``domain`` bounds the input and parameter variables; ``y0`` / ``yp`` are
    the nominal and perturbed head outputs (Fractions or terms).
    """

    problem: Problem
    builder: TermBuilder
    kernel: SymbolicKernel
    head: Head
    domain: list[Any]
    x: list[Fraction | str]
    params: dict[str, np.ndarray]
    y0: list[Any]
    yp: list[Any]
    names: dict[str, str]

    def encoding(self, query: Query, strict: bool = False, slack: Fraction = Fraction(0)) -> Encoding:
        """The negation of ``query`` (relaxed, or strict with ``slack``) over this network."""
        atoms = Atoms(self.builder, self.kernel, self.head, strict, slack)
        violation = _negation(self.problem, query, self.head, atoms, self.y0, self.yp)
        extra = list(self.builder.side_constraints)
        if isinstance(violation, bool) and not self.domain and not extra:
            formula: Any = violation
        elif violation is False:
            formula = False
        else:
            formula = _fold(self.builder, self.domain + extra + [violation], conj=True)
        nonlinear = bool(getattr(self.builder, "nonlinear", True))
        return Encoding(formula, tuple(self.domain + extra), violation, self.x, self.params, self.head,
                        atoms.inexact, nonlinear, self.names)


def build_network(problem: Problem, head: Head, builder: TermBuilder, box: ParamBox | None = None) -> Network:
    """Run the nominal and the perturbed copy of ``head.graph`` on the symbolic kernel."""
    box = box if box is not None else problem.box
    graph = head.graph
    k = SymbolicKernel(builder)
    domain: list[Any] = []
    names: dict[str, str] = {}
    used: set[str] = set()

    def new_var(base: str, lo: float, hi: float, what: str) -> tuple[str, Any]:
        name, i = base, 1
        while name in used:
            name, i = f"{base}__{i}", i + 1
        used.add(name)
        v = builder.var(name)
        names[name] = what
        flo, fhi = to_fraction(lo), to_fraction(hi)
        domain.append(builder.compare(">=", v, builder.const(flo)))
        domain.append(builder.compare("<=", v, builder.const(fhi)))
        declare = getattr(builder, "declare_bounds", None)  # bounds known once the domain is asserted
        if declare is not None:
            v = declare(v, flo, fhi)
        return name, v

    region = problem.region
    x_desc: list[Fraction | str] = []
    x_arr = np.empty(region.size, dtype=object)
    for i, (lo, hi) in enumerate(zip(region.lo, region.hi)):
        if lo == hi:
            x_desc.append(to_fraction(lo))
            x_arr[i] = to_fraction(lo)
        else:
            name, v = new_var(f"x_{i}", lo, hi, f"input {i}")
            x_desc.append(name)
            x_arr[i] = v
    X = Sym(x_arr.reshape(graph.input_shape))

    p_desc: dict[str, np.ndarray] = {}
    P: dict[str, Sym] = {}
    for pname in box.names:
        lo_a, hi_a = np.asarray(box.lo[pname]), np.asarray(box.hi[pname])
        desc = np.empty(lo_a.shape, dtype=object)
        vals = np.empty(lo_a.shape, dtype=object)
        base = f"p_{sanitize(pname)}"
        for idx in np.ndindex(*lo_a.shape):
            lo, hi = float(lo_a[idx]), float(hi_a[idx])
            if lo == hi:
                desc[idx] = vals[idx] = to_fraction(lo)
            else:
                label = "_".join(str(t) for t in idx)
                name, v = new_var(f"{base}_{label}" if label else base, lo, hi, f"parameter {pname}{list(idx)}")
                desc[idx], vals[idx] = name, v
        p_desc[pname] = desc
        P[pname] = Sym(vals)

    y0 = flat(graph.run(k, X, {}))
    yp = flat(graph.run(k, X, P))
    return Network(problem, builder, k, head, domain, x_desc, p_desc, y0, yp, names)


def encode(
    problem: Problem,
    query: Query,
    builder: TermBuilder,
    strict: bool = False,
    slack: Fraction = Fraction(0),
    box: ParamBox | None = None,
    reduce_head: bool = True,
) -> Encoding:
    """Encode the negation of ``query`` over ``problem`` (``box`` overrides its box).

    ``reduce_head=False`` keeps a final Sigmoid/Softmax in the encoding
    (needs ``exp``) instead of moving thresholds through the logit.
    """
    head = choose_head(problem, query, reduce_head)
    return build_network(problem, head, builder, box).encoding(query, strict, slack)


def subqueries(problem: Problem, query: Query) -> list[Query]:
    """Split a query into disjuncts (their union is the query's violation set).

    Solvers answer many small conjunctive queries much faster than one big
    disjunction (a 2-3-3 ReLU net: 0.7 s instead of 28 s for nlsat).
    """
    n = problem.graph.n_outputs
    if isinstance(query, OutputQuery):
        if query.index is not None:
            return [query]
        return [OutputQuery(query.epsilon, i, s) for i in range(n) for s in (1, -1)]
    if n == 1:
        classes = [0, 1] if query.cls is None else [query.cls]
        return [LabelQuery(query.sigma, c) for c in classes]
    classes = list(range(n)) if query.cls is None else [query.cls]
    out: list[Query] = []
    for c in classes:
        rivals = [j for j in range(n) if j != c] if query.rival is None else [query.rival]
        out.extend(LabelQuery(query.sigma, c, j) for j in rivals)
    return out


def _negation(problem: Problem, query: Query, head: Head, atoms: Atoms, y0: list[Any], yp: list[Any]) -> Any:
    if isinstance(query, OutputQuery):
        return _output_negation(query, head, atoms, y0, yp)
    level = to_fraction(problem.level)
    if len(y0) == 1:
        return _binary_negation(query, level, atoms, y0[0], yp[0])
    if query.sigma is not None and head.kind == "order":  # pragma: no cover - choose_head prevents it
        raise AssertionError("margins need the real outputs")
    return _multiclass_negation(query, atoms, y0, yp)


def _output_negation(query: OutputQuery, head: Head, atoms: Atoms, y0: list[Any], yp: list[Any]) -> Any:
    eps = query.epsilon
    cases = []
    for i, (z0, zp) in enumerate(zip(y0, yp)):
        if query.index is not None and i != query.index:
            continue
        up, down = query.sign in (None, 1), query.sign in (None, -1)
        if head.kind == "identity":
            if up:
                cases.append(atoms.diff_at_least(zp, z0, eps, strict_ineq=True))
            if down:
                cases.append(atoms.diff_at_least(z0, zp, eps, strict_ineq=True))
            continue
        if head.kind != "logit":  # pragma: no cover - choose_head never gives "order" here
            raise AssertionError(head.kind)
        if not is_num(z0):
            raise CapabilityError("an output bound through a final Sigmoid needs a point input region (or exp)")
        s_lo, s_hi = sigmoid_bounds(Fraction(z0))
        if up:  # sigmoid(zp) > c + eps with c in [s_lo, s_hi]
            cases.append(atoms.above(zp, (s_lo + eps, s_hi + eps), strict_ineq=True))
        if down:  # sigmoid(zp) < c - eps
            cases.append(atoms.below(zp, (s_lo - eps, s_hi - eps), strict_ineq=True))
    return atoms.or_(cases)


def _binary_negation(query: LabelQuery, level: Fraction, atoms: Atoms, z0: Any, zp: Any) -> Any:
    exact = (level, level)
    cases = []
    s = query.sigma
    if query.cls in (None, 1):
        parts = [atoms.above(z0, exact, strict_ineq=False), atoms.below(zp, exact, strict_ineq=True)]
        if s is not None and s > 0:
            parts.append(atoms.above(z0, (level + s, level + s), strict_ineq=False))
        cases.append(atoms.and_(parts))
    if query.cls in (None, 0):
        parts = [atoms.below(z0, exact, strict_ineq=True), atoms.above(zp, exact, strict_ineq=False)]
        if s is not None and s > 0:
            parts.append(atoms.below(z0, (level - s, level - s), strict_ineq=False))
        cases.append(atoms.and_(parts))
    return atoms.or_(cases)


def _multiclass_negation(query: LabelQuery, atoms: Atoms, y0: list[Any], yp: list[Any]) -> Any:
    n = len(y0)
    zero = Fraction(0)
    classes = range(n) if query.cls is None else [query.cls]
    cases = []
    for c in classes:
        if not 0 <= c < n:
            continue
        parts = []
        for j in range(n):
            if j == c:
                continue
            # nominal argmax is c (np.argmax takes the first maximum)
            parts.append(atoms.diff_at_least(y0[c], y0[j], zero, strict_ineq=j < c))
            if query.sigma is not None and query.sigma > 0:
                parts.append(atoms.diff_at_least(y0[c], y0[j], query.sigma, strict_ineq=False))
        rivals = [j for j in range(n) if j != c and query.rival in (None, j)]
        flips = [atoms.diff_at_least(yp[j], yp[c], zero, strict_ineq=False) for j in rivals]
        parts.append(atoms.or_(flips))
        cases.append(atoms.and_(parts))
    return atoms.or_(cases)
