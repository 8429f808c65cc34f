"""Exact rational evaluation of small Gemm/ReLU networks for the soundness corpus
(``bench_soundness.py``): independent of the engines under test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from paramverify.ir import Graph
from paramverify.ops.activation import LeakyRelu, Relu, Sigmoid
from paramverify.ops.linear import Gemm
from paramverify.ops.shape import Identity


def rational(v: float) -> Fraction:
    return Fraction(float(v))


class ExactNet:
    """Gemm / Relu / LeakyRelu / Identity / final Sigmoid networks in exact rationals.

    ``head`` returns the outputs, or the logits when the net ends in a
    Sigmoid (the label of a sigmoid output at level 1/2 is the logit's sign).
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.sigmoid = isinstance(graph.nodes[-1].op, Sigmoid)

    def head(self, x: Sequence[float], params: Mapping[str, np.ndarray] | None = None) -> list[Fraction]:
        env: dict[str, Any] = {}
        vals = dict(self.graph.initializers)
        if params:
            vals.update(params)
        cur = [rational(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
        env[self.graph.input_name] = cur
        for node in self.graph.nodes:
            src = env[node.inputs[0]]
            op = node.op
            if isinstance(op, Gemm):
                if not (op.transB == 1 and op.transA == 0 and op.alpha == 1.0 and op.beta == 1.0):
                    raise TypeError("exact evaluator: Gemm needs transB=1, transA=0, alpha=beta=1")
                w = np.asarray(vals[node.inputs[1]], dtype=np.float64)
                b = np.asarray(vals[node.inputs[2]], dtype=np.float64)
                out = [sum((rational(w[i, j]) * src[j] for j in range(w.shape[1])), rational(b[i])) for i in range(w.shape[0])]
            elif isinstance(op, Relu):
                out = [v if v > 0 else Fraction(0) for v in src]
            elif isinstance(op, LeakyRelu):
                a = rational(op.alpha)
                out = [v if v >= 0 else a * v for v in src]
            elif isinstance(op, Sigmoid):
                if node is not self.graph.nodes[-1]:
                    raise TypeError("exact evaluator: a Sigmoid only as the last node")
                out = src  # the logit: see the class docstring
            elif isinstance(op, Identity):
                out = src
            else:
                raise TypeError(f"exact evaluator: unsupported op {type(op).__name__}")
            env[node.output] = out
        return env[self.graph.output_name]

    def change(self, x: Sequence[float], params: Mapping[str, np.ndarray]) -> Fraction:
        """max_i |f_p(x)_i - f_p0(x)_i| (nets without a final Sigmoid)."""
        if self.sigmoid:
            raise TypeError("exact evaluator: output changes of a Sigmoid head are not rational")
        y0, yp = self.head(x), self.head(x, params)
        return max(abs(a - b) for a, b in zip(yp, y0))

    def _level(self, level: float) -> Fraction:
        return Fraction(0) if self.sigmoid else rational(level)

    def label(self, y: list[Fraction], level: float) -> int:
        if len(y) == 1:
            return int(y[0] >= self._level(level))
        best = max(y)
        return y.index(best)

    def flips(self, x: Sequence[float], params: Mapping[str, np.ndarray], level: float) -> bool:
        """Exactly: does the perturbed net lose the nominal label at ``x``?"""
        y0, yp = self.head(x), self.head(x, params)
        c = self.label(y0, level)
        if len(y0) == 1:
            return self.label(yp, level) != c
        return not all(yp[c] > yp[j] for j in range(len(yp)) if j != c)

    def margin(self, x: Sequence[float], level: float) -> float:
        """Nominal margin: exact for linear heads; through a Sigmoid, float64 sigmoids of the exact
        logits (error ~1e-16, far inside the relative 1e-6 room every margin comparison leaves)."""
        y0 = self.head(x)
        if self.sigmoid:
            s = [1.0 / (1.0 + np.exp(-float(v))) for v in y0]
            if len(s) == 1:
                return abs(s[0] - level)
            top = sorted(s)
            return top[-1] - top[-2]
        if len(y0) == 1:
            return float(abs(y0[0] - rational(level)))
        top = sorted(y0)
        return float(top[-1] - top[-2])
