"""VNN-LIB properties (the VNN-COMP format): input boxes and output constraints.

A VNN-LIB file declares inputs ``X_i`` and outputs ``Y_j`` and asserts the
*unsafe* set: the property holds when no input of the box gives outputs
satisfying the assertions (``unsat``); ``sat`` comes with a counterexample.
The part of SMT-LIB the VNN-COMP benchmarks use is parsed:

* ``(declare-const X_0 Real)``, ``(declare-const Y_0 Real)``;
* ``(assert (<= X_0 0.5))`` / ``(>= ...)`` bounds on inputs;
* linear constraints over outputs (and constants): ``<=``, ``>=``, ``<``,
  ``>``, ``=`` with ``+``, ``-``, ``*`` by a constant;
* ``and`` / ``or`` nesting, including a top-level ``(or (and X-bounds
  Y-constraints) ...)`` of several input boxes.

The result is a :class:`VnnProperty`: a list of cases, each an input box
and a disjunction of conjunctions ``C y <= d`` (strict and non-strict
inequalities are both read as ``<=``, which only makes the unsafe set
larger, so ``unsat`` stays sound).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.errors import SpecError

FIELD = "vnnlib"


@dataclass(frozen=True, eq=False)
class Conjunction:
    """``C y <= d`` (rows of ``C``: one linear constraint each)."""

    C: np.ndarray
    d: np.ndarray

    def holds(self, y: np.ndarray) -> np.ndarray:
        """Per row of ``y`` ``[N, k]``: does the output satisfy every constraint?"""
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return np.all(y @ self.C.T <= self.d, axis=1)


@dataclass(frozen=True, eq=False)
class Case:
    """One input box with its unsafe output set (a disjunction of conjunctions)."""

    lo: np.ndarray
    hi: np.ndarray
    unsafe: tuple[Conjunction, ...]

    def violated(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        out = np.zeros(len(y), dtype=bool)
        for c in self.unsafe:
            out |= c.holds(y)
        return out


@dataclass(frozen=True, eq=False)
class VnnProperty:
    n_inputs: int
    n_outputs: int
    cases: tuple[Case, ...]
    source: str = "<memory>"


# ---------------------------------------------------------------------------
# s-expressions

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _sexprs(text: str) -> list[Any]:
    text = re.sub(r";[^\n]*", "", text)
    stack: list[list[Any]] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise SpecError(FIELD, "unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise SpecError(FIELD, "unbalanced '(': the file ends inside an expression")
    return stack[0]


def _var(tok: Any) -> tuple[str, int] | None:
    if isinstance(tok, str):
        m = re.fullmatch(r"([XY])_(\d+)", tok)
        if m:
            return m.group(1), int(m.group(2))
    return None


class _Parser:
    def __init__(self) -> None:
        self.nx = 0
        self.ny = 0

    def linear(self, e: Any) -> tuple[dict[tuple[str, int], float], float]:
        """A linear term as ({var: coefficient}, constant)."""
        v = _var(e)
        if v is not None:
            return {v: 1.0}, 0.0
        if isinstance(e, str):
            try:
                return {}, float(e)
            except ValueError:
                raise SpecError(FIELD, f"'{e}' is neither a declared variable nor a number") from None
        if not e:
            raise SpecError(FIELD, "empty expression")
        head, args = e[0], [self.linear(a) for a in e[1:]]
        if head == "+":
            return _sum(args, 1.0), sum(c for _, c in args)
        if head == "-":
            if len(args) == 1:
                return {k: -v for k, v in args[0][0].items()}, -args[0][1]
            first, rest = args[0], args[1:]
            terms = _sum([first] + [({k: -v for k, v in t.items()}, -c) for t, c in rest], 1.0)
            return terms, first[1] - sum(c for _, c in rest)
        if head == "*":
            consts = [a for a in args if not a[0]]
            terms = [a for a in args if a[0]]
            if len(terms) > 1:
                raise SpecError(FIELD, "a product of two variables is not linear")
            k = float(np.prod([c for _, c in consts])) if consts else 1.0
            if not terms:
                return {}, k
            return {v: k * c for v, c in terms[0][0].items()}, k * terms[0][1]
        raise SpecError(FIELD, f"unsupported operator '{head}' in a term", "VNN-LIB terms use +, - and * by constants")

    def formula(self, e: Any) -> list[list[tuple[dict[tuple[str, int], float], float]]]:
        """DNF: a list of conjunctions, each a list of ``terms + const <= 0``."""
        if not isinstance(e, list) or not e:
            raise SpecError(FIELD, f"expected a formula, got {e!r}")
        head = e[0]
        if head == "and":
            parts = [self.formula(a) for a in e[1:]]
            if np.prod([len(p) for p in parts], dtype=float) > 100_000:
                raise SpecError(FIELD, "the formula's disjunctive normal form is too large")
            return [list(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]
        if head == "or":
            return [c for a in e[1:] for c in self.formula(a)]
        if head in ("<=", ">=", "<", ">", "="):
            if len(e) != 3:
                raise SpecError(FIELD, f"'{head}' takes two arguments")
            (ta, ca), (tb, cb) = self.linear(e[1]), self.linear(e[2])
            le = (_sum([(ta, 0), ({k: -v for k, v in tb.items()}, 0)], 1.0), ca - cb)  # a - b
            ge = ({k: -v for k, v in le[0].items()}, -le[1])
            if head in ("<=", "<"):
                return [[le]]
            if head in (">=", ">"):
                return [[ge]]
            return [[le, ge]]
        raise SpecError(FIELD, f"unsupported formula '{head}'", "VNN-LIB properties use and, or, <=, >=, <, >, =")


def _sum(parts: list[tuple[dict[tuple[str, int], float], float]], sign: float) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    for terms, _ in parts:
        for k, v in terms.items():
            out[k] = out.get(k, 0.0) + sign * v
    return out


def parse_vnnlib(text: str, source: str = "<memory>") -> VnnProperty:
    """Parse VNN-LIB text (see the module docstring)."""
    p = _Parser()
    asserts: list[Any] = []
    for e in _sexprs(text):
        if not isinstance(e, list) or not e:
            raise SpecError(FIELD, f"unexpected top-level token {e!r}")
        if e[0] == "declare-const":
            v = _var(e[1]) if len(e) == 3 else None
            if v is None or e[2] != "Real":
                raise SpecError(FIELD, f"unsupported declaration {e!r}", "declare X_i / Y_j as Real")
            if v[0] == "X":
                p.nx = max(p.nx, v[1] + 1)
            else:
                p.ny = max(p.ny, v[1] + 1)
        elif e[0] == "assert":
            asserts.append(e[1])
        elif e[0] in ("set-logic", "set-info", "check-sat", "get-model", "exit"):
            continue
        else:
            raise SpecError(FIELD, f"unsupported command '{e[0]}'")
    if p.nx == 0 or p.ny == 0:
        raise SpecError(FIELD, f"'{source}' declares no inputs X_i or no outputs Y_j")
    dnf = p.formula(["and", *asserts]) if asserts else [[]]
    cases = []
    for conj in dnf:
        lo, hi = np.full(p.nx, -np.inf), np.full(p.nx, np.inf)
        rows, rhs = [], []
        for terms, const in conj:
            xs = [k for k in terms if k[0] == "X"]
            if xs and (len(terms) != 1 or terms[xs[0]] == 0):
                raise SpecError(FIELD, "input constraints must be bounds on single inputs (X_i <= c, X_i >= c)")
            if xs:
                coef, i = terms[xs[0]], xs[0][1]
                bound = -const / coef
                if coef > 0:
                    hi[i] = min(hi[i], bound)
                else:
                    lo[i] = max(lo[i], bound)
                continue
            row = np.zeros(p.ny)
            for (_, j), v in terms.items():
                row[j] += v
            rows.append(row)
            rhs.append(-const)
        if np.any(lo > hi):
            continue  # an empty input box: nothing to check
        if not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            bad = int(np.flatnonzero(~np.isfinite(lo) | ~np.isfinite(hi))[0])
            raise SpecError(FIELD, f"input X_{bad} has no lower or upper bound in '{source}'", "bound every input")
        conj_y = Conjunction(np.array(rows).reshape(-1, p.ny), np.array(rhs, dtype=np.float64))
        for c in cases:
            if np.array_equal(c.lo, lo) and np.array_equal(c.hi, hi):
                cases[cases.index(c)] = Case(lo, hi, c.unsafe + (conj_y,))
                break
        else:
            cases.append(Case(lo, hi, (conj_y,)))
    return VnnProperty(p.nx, p.ny, tuple(cases), source)


def load_vnnlib(path: str | os.PathLike[str]) -> VnnProperty:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpecError(FIELD, f"file '{path}' not found")
    with open(path, encoding="utf-8") as fh:
        return parse_vnnlib(fh.read(), path)


def witness_text(x: np.ndarray, y: np.ndarray) -> str:
    """A counterexample in VNN-COMP's result format."""
    lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(np.ravel(x))]
    lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(np.ravel(y))]
    return "(" + "\n ".join(lines) + ")\n"
