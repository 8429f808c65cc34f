"""Shared known-answer table: tiny networks whose verdicts and optima are known by hand.

Every engine (z3, bounds, dreal when installed) is run on every row by
``tests/test_known_answers.py``.  Each row states the hand computation in
its ``why`` field.  All weights are small dyadic rationals, so the float32
model, the float64 reference and real arithmetic agree exactly and the
counterexamples at box corners are representable.

Conventions (``paramverify.properties``): one output -> label ``f >= level``
(``f = level`` is class 1); k outputs -> argmax, kept only if the nominal
winner still strictly beats every other class.  ``delta`` is the radius of
an absolute box on ``params`` (all weights and biases when None); specs
round its ends outward by one ulp, so no row sits exactly on a boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.special import expit

from paramverify.ir import load_model
from paramverify.properties import (
    LabelInvariance,
    MarginLabelInvariance,
    MaxDelta,
    MaxEpsilon,
    MinSigma,
    Objective,
    OutputBound,
    Problem,
    Property,
)
from paramverify.specs import AbsoluteDelta, InputRegion

# ---------------------------------------------------------------------------
# model builders (opset 17, ir_version 9, float32 initializers, input x [N, d])


def make_model(
    nodes: Sequence[onnx.NodeProto], inits: dict[str, np.ndarray], n_in: int, n_out: int, name: str
) -> onnx.ModelProto:
    """An ONNX model from nodes reading ``x`` and writing ``y``."""
    graph = helper.make_graph(
        list(nodes),
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def mlp(
    layers: Sequence[tuple[Sequence[Sequence[float]], Sequence[float]]],
    activation: str = "Relu",
    final: str | None = None,
    name: str = "mlp",
) -> onnx.ModelProto:
    """Gemm layers ``(W [out, in], b)`` with ``activation`` between them and an optional final op."""
    nodes, inits, cur = [], {}, "x"
    for i, (w, b) in enumerate(layers, start=1):
        inits[f"W{i}"], inits[f"b{i}"] = np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)
        out = f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], transB=1))
        cur = out
        if i < len(layers) and activation != "linear":
            nodes.append(helper.make_node(activation, [cur], [f"h{i}"]))
            cur = f"h{i}"
    if final is not None:
        nodes.append(helper.make_node(final, [cur], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [cur], ["y"]))
    n_in = len(layers[0][0][0])
    n_out = len(layers[-1][1])
    return make_model(nodes, inits, n_in, n_out, name)


def lin1() -> onnx.ModelProto:
    """y = 2 x + 1 (one input, one output, no activation)."""
    return mlp([([[2.0]], [1.0])], name="lin1")


def relu221() -> onnx.ModelProto:
    """y = relu(x1) - relu(x2): W1 = I, b1 = 0, W2 = [1, -1], b2 = 0."""
    return mlp([([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), ([[1.0, -1.0]], [0.0])], name="relu221")


def sig231() -> onnx.ModelProto:
    """y = sigmoid(relu(x1) - relu(x2) + 0 * relu(x1 + x2)): a 2-3-1 net with a sigmoid output."""
    return mlp(
        [([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 0.0]), ([[1.0, -1.0, 0.0]], [0.0])],
        final="Sigmoid",
        name="sig231",
    )


def argmax2() -> onnx.ModelProto:
    """Two classes, y = (x1, x2): W = I, b = 0."""
    return mlp([([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])], name="argmax2")


def argmax3() -> onnx.ModelProto:
    """Three classes, y = relu(W1 x) with W1 = [[1, 0], [0, 1], [-1, 0]], then W2 = I, b2 = 0."""
    return mlp(
        [([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [0.0, 0.0, 0.0]), (np.eye(3).tolist(), [0.0, 0.0, 0.0])],
        name="argmax3",
    )


# ---------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class KnownAnswer:
    """One row: a problem plus either a property and its verdict or an objective and its optimum."""

    name: str
    build: Callable[[], onnx.ModelProto]
    region: tuple[Sequence[float], Sequence[float]] | Sequence[float]
    delta: float
    why: str
    params: tuple[str, ...] | None = None
    level: float = 0.5
    prop: Property | None = None
    verdict: str | None = None  # "verified" | "falsified"
    objective: Objective | None = None
    optimum: float | None = None

    def problem(self) -> Problem:
        graph = load_model(self.build())
        box = AbsoluteDelta(self.delta, self.params).to_box(graph)
        if isinstance(self.region, tuple):
            region = InputRegion.box(self.region[0], self.region[1])
        else:
            region = InputRegion.point(self.region)
        return Problem(graph, box, region, self.level)


_SIG = float(expit(1.0))

CASES: tuple[KnownAnswer, ...] = (
    # ---------------- lin1: y = 2x + 1 on x in [0, 1]
    KnownAnswer(
        "lin1-eps-max", lin1, ([0.0], [1.0]), 0.25,
        "|dy| = |dw x + db| <= 0.25*1 + 0.25 = 0.5, attained at x = 1, dw = db = 0.25",
        objective=MaxEpsilon(), optimum=0.5,
    ),
    KnownAnswer(
        "lin1-eps-holds", lin1, ([0.0], [1.0]), 0.25,
        "max change is 0.5 (plus ~1e-15 from the box's outward rounding) <= 0.5000001",
        prop=OutputBound(0.5000001), verdict="verified",
    ),
    KnownAnswer(
        "lin1-eps-fails", lin1, ([0.0], [1.0]), 0.25, "max change 0.5 > 0.45 (x = 1, dw = db = 0.25)",
        prop=OutputBound(0.45), verdict="falsified",
    ),
    KnownAnswer(
        "lin1-label-holds", lin1, ([0.0], [1.0]), 0.25,
        "level 0: y_p >= 1.75 x + 0.75 >= 0.75 > 0, every input stays class 1",
        level=0.0, prop=LabelInvariance(), verdict="verified",
    ),
    KnownAnswer(
        "lin1-maxdelta", lin1, ([0.0], [1.0]), 1.0,
        "level 0, unit box scaled by t: min y_p = 1 - t at x = 0 (and 3 - 2t at x = 1); "
        "y_p = 0 still counts as class 1, so labels are kept iff t <= 1: t* = 1",
        level=0.0, objective=MaxDelta(), optimum=1.0,
    ),
    KnownAnswer(
        "lin1-minsigma", lin1, ([0.0], [1.0]), 1.25,
        "level 0, delta 1.25: min y_p = 0.75 x - 0.25 < 0 iff x < 1/3; flippable margins y0 = 2x + 1 "
        "< 5/3, so the sup is 5/3 (class 1, not attained)",
        level=0.0, objective=MinSigma(1), optimum=5.0 / 3.0,
    ),
    # ---------------- relu221: y = relu(x1) - relu(x2)
    KnownAnswer(
        "relu221-eps-b2", relu221, ([-1.0, -1.0], [1.0, 1.0]), 0.5,
        "only b2 moves: dy = db2, so the max change is exactly 0.5",
        params=("b2",), objective=MaxEpsilon(), optimum=0.5,
    ),
    KnownAnswer(
        "relu221-eps-w2", relu221, ([-1.0, -1.0], [1.0, 1.0]), 0.5,
        "only W2 moves: |dy| <= 0.5 (relu(x1) + relu(x2)) <= 1, attained at x = (1, 1)",
        params=("W2",), objective=MaxEpsilon(), optimum=1.0,
    ),
    KnownAnswer(
        "relu221-point-holds", relu221, [1.0, 0.5], 0.2,
        "level 0, x0 = (1, 0.5): y0 = 0.5; W2 +-0.2: min y_p = 0.8 - 1.2*0.5 = 0.2 > 0",
        params=("W2",), level=0.0, prop=LabelInvariance(), verdict="verified",
    ),
    KnownAnswer(
        "relu221-point-fails", relu221, [1.0, 0.5], 0.5,
        "level 0, x0 = (1, 0.5): W2 +-0.5: min y_p = 0.5 - 1.5*0.5 = -0.25 < 0",
        params=("W2",), level=0.0, prop=LabelInvariance(), verdict="falsified",
    ),
    KnownAnswer(
        "relu221-point-maxdelta", relu221, [1.0, 0.5], 1.0,
        "level 0, x0 = (1, 0.5), W2 +-t: min y_p = (1 - t) - (1 + t)/2 = 0.5 - 1.5 t >= 0 iff t <= 1/3",
        params=("W2",), level=0.0, objective=MaxDelta(), optimum=1.0 / 3.0,
    ),
    # ---------------- sig231: y = sigmoid(relu(x1) - relu(x2)), level 0.5
    KnownAnswer(
        "sig231-point-holds", sig231, [1.0, 0.0], 0.9,
        "x0 = (1, 0): logit z0 = 1; b2 +-0.9 keeps z_p >= 0.1 > 0",
        params=("b2",), prop=LabelInvariance(), verdict="verified",
    ),
    KnownAnswer(
        "sig231-point-fails", sig231, [1.0, 0.0], 1.25,
        "x0 = (1, 0): z0 = 1; b2 = -1.25 gives z_p = -0.25 < 0",
        params=("b2",), prop=LabelInvariance(), verdict="falsified",
    ),
    KnownAnswer(
        "sig231-point-eps", sig231, [1.0, 0.0], 0.5,
        "x0 = (1, 0), b2 +-0.5: max(sig(1) - sig(0.5), sig(1.5) - sig(1)) = sig(1) - sig(0.5)",
        params=("b2",), objective=MaxEpsilon(), optimum=_SIG - float(expit(0.5)),
    ),
    KnownAnswer(
        "sig231-margin-holds", sig231, ([-1.0, -1.0], [1.0, 1.0]), 0.5,
        "b2 +-0.5 flips exactly the inputs with -0.5 <= z0 < 0.5, whose margins are <= sig(0.5) - 0.5 "
        "= 0.1224593 < 0.13",
        params=("b2",), prop=MarginLabelInvariance(0.13), verdict="verified",
    ),
    KnownAnswer(
        "sig231-margin-fails", sig231, ([-1.0, -1.0], [1.0, 1.0]), 0.5,
        "z0 = -0.5 (margin 0.1224593 >= 0.12) flips to z_p = 0 with b2 = +0.5",
        params=("b2",), prop=MarginLabelInvariance(0.12), verdict="falsified",
    ),
    KnownAnswer(
        "sig231-minsigma0", sig231, ([-1.0, -1.0], [1.0, 1.0]), 0.5,
        "class 0 flips for z0 in [-0.5, 0): sup margin 0.5 - sig(-0.5) (attained at z0 = -0.5)",
        params=("b2",), objective=MinSigma(0), optimum=0.5 - float(expit(-0.5)),
    ),
    KnownAnswer(
        "sig231-minsigma1", sig231, ([-1.0, -1.0], [1.0, 1.0]), 0.5,
        "class 1 flips for z0 in [0, 0.5): sup margin sig(0.5) - 0.5 (not attained)",
        params=("b2",), objective=MinSigma(1), optimum=float(expit(0.5)) - 0.5,
    ),
    # ---------------- argmax2: y = (x1, x2) on [0, 1]^2, b +-delta
    KnownAnswer(
        "argmax2-label-fails", argmax2, ([0.0, 0.0], [1.0, 1.0]), 0.1,
        "x = (0.5, 0.5) is class 0 (first maximum); b2 += 0.1 makes class 1 win",
        params=("b1",), prop=LabelInvariance(), verdict="falsified",
    ),
    KnownAnswer(
        "argmax2-margin-holds", argmax2, ([0.0, 0.0], [1.0, 1.0]), 0.1,
        "a flip needs |x1 - x2| <= 2*0.1 = 0.2 < 0.25",
        params=("b1",), prop=MarginLabelInvariance(0.25), verdict="verified",
    ),
    KnownAnswer(
        "argmax2-minsigma", argmax2, ([0.0, 0.0], [1.0, 1.0]), 0.1,
        "class 0 (x1 >= x2) flips iff x1 - x2 <= 0.2 (ties lose): sup margin 0.2",
        params=("b1",), objective=MinSigma(0), optimum=0.2,
    ),
    KnownAnswer(
        "argmax2-maxdelta", argmax2, ([0.0, 0.0], [1.0, 1.0]), 1.0,
        "sigma 0.5: inputs with x1 - x2 >= 0.5 flip iff 0.5 <= 2t, so t* = 0.25",
        params=("b1",), objective=MaxDelta(sigma=0.5), optimum=0.25,
    ),
    # ---------------- argmax3: y = relu(x1), relu(x2), relu(-x1) at x0 = (1, 0.5)
    KnownAnswer(
        "argmax3-point-holds", argmax3, [1.0, 0.5], 0.2,
        "y0 = (1, 0.5, 0), margin 0.5; b2 +-0.2 moves a difference by at most 0.4 < 0.5",
        params=("b2",), prop=LabelInvariance(), verdict="verified",
    ),
    KnownAnswer(
        "argmax3-point-fails", argmax3, [1.0, 0.5], 0.3,
        "b2 = (-0.3, +0.3, *) gives (0.7, 0.8): class 1 wins",
        params=("b2",), prop=LabelInvariance(), verdict="falsified",
    ),
    KnownAnswer(
        "argmax3-point-maxdelta", argmax3, [1.0, 0.5], 1.0,
        "a flip needs 2t >= 0.5 (a tie already flips): t* = 0.25",
        params=("b2",), objective=MaxDelta(), optimum=0.25,
    ),
    KnownAnswer(
        "argmax3-point-eps", argmax3, [1.0, 0.5], 0.3,
        "only b2 moves: the output change is exactly 0.3",
        params=("b2",), objective=MaxEpsilon(), optimum=0.3,
    ),
)
