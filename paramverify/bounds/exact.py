"""Exact decisions at a point: ties, outputs exactly at the level, bounds met with equality.

The float enclosures of the bound engine are rounded outward, so they can
never decide a question whose answer sits exactly on a boundary: a tie of
the top two logits, a single output exactly at the level ``l``, an output
change exactly equal to ``epsilon``, or a parameter box of width 0.  These
helpers answer such questions in exact rational arithmetic at the input
point ``x0``, reusing the symbolic kernel of :mod:`encoders`:

* :func:`exact_nominal` -- the nominal class of ``x0`` (and whether the top
  two logits tie) from the exact rational outputs of the model (through the
  logit of a final Sigmoid, or the scores before a final Softmax: both are
  monotone, so classes and ties are the same);
* :func:`exact_decision` -- the property on the whole parameter box by exact
  interval arithmetic on rationals (no rounding anywhere): ``True`` when no
  parameter can violate it.  For a box of width 0 (delta 0) the evaluation is
  a single exact evaluation, so ``False`` (violated in real arithmetic) is
  decided too.  Interval arithmetic over a non-degenerate box is exact only
  where each perturbed parameter enters the outputs once (one affine layer);
  elsewhere it is sound but may be loose, and the answer is then ``None``.

Soundness: ``True`` is a proof in real arithmetic (it is the relaxed encoding
of the property's negation folding to ``False`` under exact rational bounds,
the same encoding z3 decides).  ``False`` and ties are facts about real
arithmetic only: a caller reports a violation only with a counterexample
replayed on onnxruntime (:func:`paramverify.replay.confirm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from paramverify.errors import CapabilityError, ModelError
from paramverify.options import Deadline
from paramverify.properties import Problem, Property

#: a proved bound this close to its threshold (relative) may be a bound met with equality
NEAR = 1e-9
#: exact rational evaluation is skipped above this many parameter and input elements
MAX_EXACT_WORK = 100_000
#: seconds per element of one exact interval evaluation, measured roughly (a 55k-weight MLP: about 5 s)
SECONDS_PER_ELEMENT = 1e-4
#: the one placeholder for every term the exact bounds leave undecided
_OPEN = object()


class _Opaque:
    """A term builder without a solver: every undecided term or formula is one placeholder.

    Wrapped in :class:`encoders.bounded.BoundedBuilder`, only the exact
    rational bounds it carries matter; a comparison those bounds decide folds
    to a Python bool.
    """

    capabilities = frozenset({"exact", "relu", "exp"})

    def __init__(self) -> None:
        self.variables: dict[str, Any] = {}
        self.side_constraints: list[Any] = []

    def _open(self, *args: Any) -> Any:
        return _OPEN

    const = var = linear = mul = div = relu = leaky_relu = exp = sigmoid = tanh = compare = _open

    def and_(self, formulas: Sequence[Any]) -> Any:
        return _OPEN

    def or_(self, formulas: Sequence[Any]) -> Any:
        return _OPEN

    def true(self) -> bool:
        return True

    def false(self) -> bool:
        return False


def _affordable(problem: Problem, deadline: Deadline | None) -> bool:
    """Small enough for exact rational arithmetic, and in time for the deadline."""
    g = problem.graph
    work = int(sum(np.size(v) for v in g.initializers.values())) + problem.region.size
    left = None if deadline is None else deadline.remaining()
    return work <= MAX_EXACT_WORK and (left is None or left >= work * SECONDS_PER_ELEMENT)


def exact_nominal(problem: Problem, deadline: Deadline | None = None) -> tuple[int, bool] | None:
    """``(class, tie)`` of ``f_p0(x0)`` in exact arithmetic, or None when it cannot be computed.

    One output: class 1 iff ``f >= l`` (``tie`` is False; an output exactly at
    ``l`` is class 1).  k outputs: the first index of the largest logit (numpy's
    argmax), ``tie`` when another logit equals it exactly.
    """
    from encoders.encode import LabelQuery, choose_head, head_threshold
    from encoders.rational import to_fraction
    from encoders.symbolic import exact_outputs

    if not problem.region.is_point or not _affordable(problem, deadline):
        return None
    head = choose_head(problem, LabelQuery())
    try:
        z = exact_outputs(head.graph, problem.region.lo)
    except (CapabilityError, ModelError, ValueError, ZeroDivisionError):
        return None
    if len(z) == 1:
        level = to_fraction(problem.level)
        if head.kind == "logit" and not 0 < level < 1:
            return (1, False) if level <= 0 else (0, False)  # a sigmoid lies strictly in (0, 1)
        lo, hi = head_threshold(head, level)
        if z[0] >= hi:
            return 1, False
        if z[0] < lo:
            return 0, False
        return None  # inside the rational bracket of an irrational logit(l): not decided here
    top = max(z)
    c = z.index(top)
    return c, any(v == top for j, v in enumerate(z) if j != c)


def near_boundary(problem: Problem, gap: float) -> bool:
    """Worth an exact decision: a box of width 0, or a proved bound within rounding noise of the
    threshold (``gap``: how far it lies above), relative to the size of the nominal outputs."""
    if _degenerate(problem):
        return True
    if not np.isfinite(gap):
        return False
    scale = float(np.max(np.abs(problem.graph.evaluate(problem.region.lo)), initial=1.0))
    return gap <= NEAR * max(1.0, scale)


def only_nominal(problem: Problem) -> bool:
    """The box holds only the (finite) nominal parameters, so ``f_p`` is ``f_p0`` everywhere."""
    box = problem.box
    return all(
        bool(np.array_equal(box.lo[n], box.nominal[n]) and np.array_equal(box.hi[n], box.nominal[n]))
        for n in box.names
    ) and all(bool(np.all(np.isfinite(v))) for v in problem.graph.initializers.values())


def _degenerate(problem: Problem) -> bool:
    box = problem.box
    return all(bool(np.array_equal(box.lo[n], box.hi[n])) for n in box.names)


def exact_decision(problem: Problem, prop: Property, deadline: Deadline | None = None) -> bool | None:
    """Does ``prop`` hold at the point ``x0`` for every parameter of the box, in exact arithmetic?

    True: proved (exact rational interval arithmetic).  False: violated in
    real arithmetic (only decided for a box of width 0).  None: not decided
    (loose intervals, an op without a rational semantics, a region that is
    not a point, or a network too large for exact arithmetic or ``deadline``).
    """
    from encoders.bounded import BoundedBuilder
    from encoders.encode import encode, query_for

    if not problem.region.is_point or not _affordable(problem, deadline):
        return None
    try:
        query = query_for(prop)
        relaxed = encode(problem, query, BoundedBuilder(_Opaque()), strict=False).violation
        if relaxed is False:
            return True
        if _degenerate(problem):
            strict = encode(problem, query, BoundedBuilder(_Opaque()), strict=True, slack=Fraction(0)).violation
            if strict is True:
                return False
    except (CapabilityError, ModelError, ValueError, ZeroDivisionError):
        return None
    return None
