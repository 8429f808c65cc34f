"""The five properties, the optimisation objectives, and the engine interface.

Notation: ``f_p(x)`` is the model's output with parameters ``p``; ``p0`` the
trained parameters; the parameter box ``P`` (a :class:`ParamBox`); the input
region ``R`` (a point ``x0`` or a box ``D``).  Labels: for ``k > 1`` outputs
the label is ``argmax``; for one output the label is ``f >= level`` (the
binary sigmoid form with level ``l``, default 0.5).

* Def 1/2 :class:`OutputBound` -- ``|f_p(x) - f_p0(x)|_inf <= epsilon`` for
  all ``x`` in ``R`` (point: local, box: global), ``p`` in ``P``.
* Def 3/4 :class:`LabelInvariance` -- the label of ``f_p(x)`` equals that of
  ``f_p0(x)``.  A label is *kept* when the nominal winner ``c`` still
  strictly beats every other class (binary: stays on its side of ``l``,
  where ``f = l`` counts as class 1).
* Def 5 :class:`MarginLabelInvariance` -- label invariance for the inputs
  whose nominal margin is at least ``sigma`` (binary: ``|f_p0(x) - l| >=
  sigma``; k classes: top-1 minus top-2 of ``f_p0(x)``).

Objectives (each returns a :class:`~paramverify.results.Bracket`):
:class:`MaxEpsilon` (Eq. 11), :class:`MinSigma` (Eq. 12/13, per class) and
:class:`MaxDelta` (the largest multiple ``t`` of the box's deviations that
keeps labels; with a unit absolute box, ``t`` is delta itself).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from paramverify.errors import SpecError
from paramverify.ir import Graph, load_model
from paramverify.kernels.numeric import NumericKernel
from paramverify.options import Options
from paramverify.results import Bracket, Verdict
from paramverify.specs import InputRegion, ParamBox


@dataclass(frozen=True, eq=False)
class Problem:
    """A model, a parameter box and an input region."""

    graph: Graph
    box: ParamBox
    region: InputRegion
    level: float = 0.5

    def __post_init__(self) -> None:
        self.region.check_for(self.graph, "x0" if self.region.is_point else "domain")

    @property
    def binary(self) -> bool:
        return self.graph.n_outputs == 1

    def nominal(self, x: np.ndarray) -> np.ndarray:
        return self.graph.evaluate(x)


def scores_for_labels(graph: Graph) -> Graph:
    """``graph`` without a final Softmax / LogSoftmax over the classes (labels are unchanged).

    Both are strictly increasing in each class's score against the others,
    so the argmax -- and every label property without a margin -- is the
    same on the scores before them; bounding through them only loses
    precision.  Margin properties (sigma) are stated on the probabilities and
    keep them.  The graph's ``note`` says when the softmax was skipped.
    """
    if not graph.nodes:
        return graph
    last = graph.nodes[-1]
    if last.output != graph.output_name or last.op.op_type not in ("Softmax", "LogSoftmax") or not last.inputs:
        return graph
    shape = np.shape(graph.run(NumericKernel(), graph.as_batch(np.zeros(graph.input_size))))
    if len(shape) != 2 or shape[1] < 2 or getattr(last.op, "axis", -1) not in (-1, 1):
        return graph
    scores = load_model(graph.model, output=last.inputs[0])
    note = f"labels are the argmax of '{last.inputs[0]}' (the final {last.op.op_type} is skipped: it keeps the argmax)"
    return replace(scores, note="; ".join(n for n in (graph.note, note) if n), source=graph.source, replay_models=graph.replay_models)


def for_labels(problem: Problem) -> Problem:
    """The same label problem stated on the scores before a final softmax (see :func:`scores_for_labels`)."""
    g = scores_for_labels(problem.graph)
    return problem if g is problem.graph else replace(problem, graph=g)


@dataclass(frozen=True)
class OutputBound:
    """Def 1 (point region) / Def 2 (box region)."""

    epsilon: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.epsilon) or self.epsilon < 0:
            raise SpecError("epsilon", f"must be a finite number >= 0, got {self.epsilon!r}", "e.g. --epsilon 0.05")


@dataclass(frozen=True)
class LabelInvariance:
    """Def 3 (point region) / Def 4 (box region)."""


@dataclass(frozen=True)
class MarginLabelInvariance:
    """Def 5: label invariance for inputs at least ``sigma`` from the boundary."""

    sigma: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.sigma) or self.sigma < 0:
            raise SpecError("sigma", f"must be a finite number >= 0, got {self.sigma!r}", "e.g. --sigma 0.1")


Property = OutputBound | LabelInvariance | MarginLabelInvariance


@dataclass(frozen=True)
class MaxEpsilon:
    """The largest output change: max over R, P of |f_p(x) - f_p0(x)|_inf."""


@dataclass(frozen=True)
class MinSigma:
    """The smallest sigma for which Def 5 holds among inputs of nominal class ``cls``.

    Equals the supremum of the nominal margin over inputs of that class
    whose label can flip (0 when none can).
    """

    cls: int


@dataclass(frozen=True)
class MaxDelta:
    """The largest ``t`` such that labels are kept under ``box.scaled(t)``.

    With ``sigma`` set, labels must be kept for the inputs of the region
    whose margin is at least ``sigma`` (Def 5); otherwise for all of them.
    """

    sigma: float | None = None
    t_max: float = 1e3


Objective = MaxEpsilon | MinSigma | MaxDelta


@runtime_checkable
class Engine(Protocol):
    """A way of proving things: the bound engine, z3, dReal.

    ``capabilities`` is a subset of {"exact", "sigmoid", "tanh", "softmax",
    "global", "optimise"}; engines raise ``CapabilityError`` for queries
    they cannot answer soundly.  A ``Falsified`` verdict carries a
    counterexample replayed on onnxruntime.
    """

    name: str
    capabilities: frozenset[str]

    def verify(self, problem: Problem, prop: Property, options: Options) -> Verdict: ...

    def optimise(self, problem: Problem, objective: Objective, options: Options) -> Bracket: ...


# ---------------------------------------------------------------------------
# semantics shared by every engine, the replay and the tests


def labels(y: np.ndarray, level: float) -> np.ndarray:
    """Labels of a batch of outputs ``[N, k]``."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if y.shape[1] == 1:
        return (y[:, 0] >= level).astype(int)
    return np.argmax(y, axis=1)


def margins(y0: np.ndarray, level: float) -> np.ndarray:
    """Nominal margin: |f - l| (binary) or top-1 minus top-2 (k classes)."""
    y0 = np.asarray(y0, dtype=np.float64).reshape(len(y0), -1)
    if y0.shape[1] == 1:
        return np.abs(y0[:, 0] - level)
    top = np.sort(y0, axis=1)
    return top[:, -1] - top[:, -2]


def label_kept(y0: np.ndarray, yp: np.ndarray, level: float) -> np.ndarray:
    """True where the perturbed output keeps the nominal label."""
    y0 = np.asarray(y0, dtype=np.float64).reshape(len(y0), -1)
    yp = np.asarray(yp, dtype=np.float64).reshape(len(yp), -1)
    c = labels(y0, level)
    if y0.shape[1] == 1:
        return labels(yp, level) == c
    win = yp[np.arange(len(yp)), c]
    others = yp.copy()
    others[np.arange(len(yp)), c] = -np.inf
    return win > others.max(axis=1)


def violates(prop: Property, y0: np.ndarray, yp: np.ndarray, level: float) -> np.ndarray:
    """Elementwise: does (nominal, perturbed) output violate ``prop``?"""
    y0 = np.asarray(y0, dtype=np.float64).reshape(len(y0), -1)
    yp = np.asarray(yp, dtype=np.float64).reshape(len(yp), -1)
    if isinstance(prop, OutputBound):
        return np.max(np.abs(yp - y0), axis=1) > prop.epsilon
    flipped = ~label_kept(y0, yp, level)
    if isinstance(prop, MarginLabelInvariance):
        return flipped & (margins(y0, level) >= prop.sigma)
    return flipped
