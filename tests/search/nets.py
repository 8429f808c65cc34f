"""Tiny models, data and a synthetic reward for the search tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MappingProxyType

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from paramverify.search.env import Evaluation
from paramverify.search.space import BitPolicy, LayerInfo


def tiny_cnn(seed: int = 0, side: int = 6, channels: int = 3, classes: int = 4, matmul_head: bool = False) -> onnx.ModelProto:
    """Conv(1->C, 3x3, pad 1) -> Relu -> Flatten -> Gemm(transB=1) -> Relu -> Gemm or MatMul+Add -> logits."""
    rng = np.random.default_rng(seed)
    flat = channels * side * side
    inits = [
        numpy_helper.from_array((rng.standard_normal((channels, 1, 3, 3)) / 3).astype(np.float32), "cw"),
        numpy_helper.from_array((rng.standard_normal(channels) * 0.1).astype(np.float32), "cb"),
        numpy_helper.from_array((rng.standard_normal((8, flat)) / np.sqrt(flat)).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "b1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "flat_axis"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu2"),
    ]
    w2 = (rng.standard_normal((classes, 8)) / np.sqrt(8)).astype(np.float32)
    b2 = (rng.standard_normal(classes) * 0.1).astype(np.float32)
    if matmul_head:
        inits += [numpy_helper.from_array(np.ascontiguousarray(w2.T), "w2"), numpy_helper.from_array(b2, "b2")]
        nodes += [helper.make_node("MatMul", ["hr", "w2"], ["m"], name="fc2"),
                  helper.make_node("Add", ["m", "b2"], ["y"], name="fc2_bias")]
    else:
        inits += [numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")]
        nodes.append(helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"], name="fc2", transB=1))
    inits = [t for t in inits if t.name != "flat_axis"]
    graph = helper.make_graph(nodes, "tiny_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def labelled_inputs(model: onnx.ModelProto, n: int, seed: int, side: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs in [0, 1] labelled by the model itself (so the float model is always right)."""
    import onnxruntime as ort

    x = np.random.default_rng(seed).uniform(0, 1, (n, 1, side, side)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x})[0].argmax(1).astype(np.int64)
    return x, y


def layers(macs: Sequence[int]) -> tuple[LayerInfo, ...]:
    return tuple(LayerInfo(f"l{i}", "conv" if i == 0 else "linear", 4 + i, 8 + i, 9 if i == 0 else 1, 1, 100 * (i + 1), m)
                 for i, m in enumerate(macs))


class SyntheticEvaluator:
    """A deterministic reward of the bits: ``sum_i weight_i * f(bits_i)``; counts calls."""

    def __init__(self, weights: Sequence[float], shape: Callable[[int], float] = lambda b: 1.0 - 2.0 ** (-b),
                 interrupt_at: int | None = None) -> None:
        self.weights = list(weights)
        self.shape = shape
        self.calls = 0
        self.interrupt_at = interrupt_at

    def evaluate(self, policy: BitPolicy) -> Evaluation:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        r = float(sum(w * self.shape(b) for w, b in zip(self.weights, policy.weight_bits)))
        return Evaluation(r, MappingProxyType({"cert_acc@0.25": r}), samples=10, seconds=0.0)
