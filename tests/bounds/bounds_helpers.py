"""Tiny hand-built ONNX models for the bounds tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], n_in: int, n_out: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def linear_1d(w: float, b: float, sigmoid: bool = False) -> onnx.ModelProto:
    """y = w x + b (optionally through a sigmoid)."""
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["z" if sigmoid else "y"], transB=1)]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    return make_model(nodes, {"W": [[w]], "B": [b]}, 1, 1)


def relu_221(w1: Sequence[Sequence[float]], b1: Sequence[float], w2: Sequence[float], b2: float) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["z1"], transB=1),
        helper.make_node("Relu", ["z1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "W2", "b2"], ["y"], transB=1),
    ]
    return make_model(nodes, {"W1": w1, "b1": b1, "W2": [list(w2)], "b2": [b2]}, 2, 1)


def small_conv() -> onnx.ModelProto:
    """x [N, 16] -> reshape [N,1,4,4] -> Conv 2x3x3 (pad 1) -> Relu -> Flatten -> Gemm -> 3 logits."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["img"]),
        helper.make_node("Conv", ["img", "Wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1),
    ]
    inits = {"Wc": rng.standard_normal((2, 1, 3, 3)) * 0.5, "bc": rng.standard_normal(2) * 0.1,
             "W": rng.standard_normal((3, 32)) * 0.3, "b": rng.standard_normal(3) * 0.1}
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()]
        + [numpy_helper.from_array(np.array([-1, 1, 4, 4], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def softmax_mlp(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["z1"], transB=1),
        helper.make_node("Tanh", ["z1"], ["h1"]),
        helper.make_node("Gemm", ["h1", "W2", "b2"], ["z2"], transB=1),
        helper.make_node("Softmax", ["z2"], ["y"], axis=-1),
    ]
    inits = {"W1": rng.standard_normal((4, 3)), "b1": rng.standard_normal(4) * 0.3,
             "W2": rng.standard_normal((3, 4)), "b2": rng.standard_normal(3) * 0.3}
    return make_model(nodes, inits, 3, 3)


def corner_params(box, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {n: np.where(rng.random(box.lo[n].shape) < 0.5, box.lo[n], box.hi[n]) for n in box.names}


def batchnorm_mlp(seed: int = 0) -> onnx.ModelProto:
    """x [N, 4] -> MatMul -> Add -> reshape [N, 3, 1, 1] -> BatchNorm -> Flatten -> LeakyRelu -> Gemm -> 2 logits."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["m"]),
        helper.make_node("Add", ["m", "b1"], ["z"]),
        helper.make_node("Reshape", ["z", "shape"], ["img"]),
        helper.make_node("BatchNormalization", ["img", "gamma", "beta", "mean", "var"], ["bn"]),
        helper.make_node("Flatten", ["bn"], ["f"]),
        helper.make_node("LeakyRelu", ["f"], ["h"], alpha=0.1),
        helper.make_node("Gemm", ["h", "W2", "b2"], ["y"], transB=1),
    ]
    inits = {"W1": rng.standard_normal((4, 3)), "b1": rng.standard_normal(3) * 0.2,
             "gamma": 1 + 0.2 * rng.standard_normal(3), "beta": 0.1 * rng.standard_normal(3),
             "mean": 0.1 * rng.standard_normal(3), "var": 0.5 + rng.random(3),
             "W2": rng.standard_normal((2, 3)), "b2": rng.standard_normal(2) * 0.1}
    graph = helper.make_graph(
        nodes, "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()]
        + [numpy_helper.from_array(np.array([-1, 3, 1, 1], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def sampled_outputs(graph, box, xs: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Outputs ``[n * len(xs), k]`` at random box points and corners (half each)."""
    ys = [graph.evaluate(xs, corner_params(box, rng) if i % 2 else box.sample(rng)) for i in range(n)]
    return np.concatenate(ys)
