"""A perturbed convolution weight is one weight for every output position.

``backward._shared_weights`` bounds the perturbation's share of ``L.(P h)``
by ``sum Pr |L h^T|`` (one sign per weight) instead of ``sum Pr |L| |h|``
(a sign per weight *and position*).  Hand-computed cases show the
difference; sampled corners, box points and the falsifier check that the
tighter bound still encloses the network.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from bounds_helpers import sampled_outputs
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from paramverify import api
from paramverify.bounds.crown import LinearBounds
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.specs import AbsoluteDelta


def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], img: tuple[int, int, int], n_out: int) -> onnx.ModelProto:
    c, h, w = img
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["img"]), *nodes], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c * h * w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()]
        + [numpy_helper.from_array(np.array([-1, c, h, w], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _one_by_one() -> onnx.ModelProto:
    """y = (w x1, w x2): a 1x1 convolution with one weight over a 1x2 image."""
    nodes = [helper.make_node("Conv", ["img", "W"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Flatten", ["c"], ["y"])]
    return _model(nodes, {"W": np.ones((1, 1, 1, 1))}, (1, 1, 2), 2)


def _channel_scale() -> onnx.ModelProto:
    """y = (s x1, s x2): one per-channel scale (a BatchNormalization-like Mul) over a 1x2 image."""
    nodes = [helper.make_node("Mul", ["img", "S"], ["c"]), helper.make_node("Flatten", ["c"], ["y"])]
    return _model(nodes, {"S": np.ones((1, 1, 1, 1))}, (1, 1, 2), 2)


def _conv_bn(seed: int) -> onnx.ModelProto:
    """6x6 image -> Conv 1->3 3x3 -> BatchNormalization -> Relu -> Conv 3->2 -> Relu -> Gemm -> 3 logits."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["img", "W1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "W2", "b2"], ["c2"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "W3", "b3"], ["y"], transB=1),
    ]
    inits = {"W1": rng.standard_normal((3, 1, 3, 3)) * 0.6, "b1": rng.standard_normal(3) * 0.1,
             "g": rng.uniform(0.5, 1.5, 3), "beta": rng.standard_normal(3) * 0.1, "mean": rng.standard_normal(3) * 0.1,
             "var": rng.uniform(0.5, 2.0, 3),
             "W2": rng.standard_normal((2, 3, 3, 3)) * 0.4, "b2": rng.standard_normal(2) * 0.1,
             "W3": rng.standard_normal((3, 8)) * 0.3, "b3": rng.standard_normal(3) * 0.1}
    return _model(nodes, inits, (1, 6, 6), 3)


def _two_convs(seed: int) -> onnx.ModelProto:
    """6x6 image -> Conv 3x3x3 -> Relu -> Conv 3->4 3x3 stride 2 -> Relu -> Gemm -> 3 logits."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["img", "W1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "W2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "W3", "b3"], ["y"], transB=1),
    ]
    inits = {"W1": rng.standard_normal((3, 1, 3, 3)) * 0.6, "b1": rng.standard_normal(3) * 0.1,
             "W2": rng.standard_normal((4, 3, 3, 3)) * 0.4, "b2": rng.standard_normal(4) * 0.1,
             "W3": rng.standard_normal((3, 36)) * 0.3, "b3": rng.standard_normal(3) * 0.1}
    return _model(nodes, inits, (1, 6, 6), 3)


def _upper(graph, box, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray) -> np.ndarray:
    lb = LinearBounds(graph, box, lo[None], hi[None])
    lb.refine()
    return lb.upper([(lb.y, lb.rows(lb.y, rows))])[:, 0]


def test_one_weight_over_two_positions_is_bounded_exactly() -> None:
    # y1 - y2 = w (x1 - x2), w in [0.9, 1.1], x in [0.99, 1.01]^2: the maximum is 1.1 * 0.02 = 0.022.
    # A sign per position would give (x1 - x2) + 0.1 (|x1| + |x2|), up to 0.222.
    graph = load_model(_one_by_one())
    box = AbsoluteDelta(0.1).to_box(graph)
    up = _upper(graph, box, np.full(2, 0.99), np.full(2, 1.01), np.array([[1.0, -1.0], [1.0, 1.0]]))
    assert 0.022 <= up[0] <= 0.022 + 1e-9
    # y1 + y2 = w (x1 + x2): both positions want w = 1.1, at most 1.1 * 2.02 = 2.222
    assert 2.222 <= up[1] <= 2.222 + 1e-9


def test_equal_positions_cancel_for_every_weight() -> None:
    # x1 = x2 = 0.7 as a degenerate box: y1 - y2 = 0 for every w
    graph = load_model(_one_by_one())
    box = AbsoluteDelta(0.5).to_box(graph)
    up = _upper(graph, box, np.full(2, 0.7), np.full(2, 0.7), np.array([[1.0, -1.0], [-1.0, 1.0]]))
    assert np.all(up >= 0.0) and np.all(up <= 1e-12)


def test_one_scale_over_two_positions_is_bounded_exactly() -> None:
    # the elementwise twin of the 1x1 convolution: s (x1 - x2) <= 1.1 * 0.02 on the same boxes
    graph = load_model(_channel_scale())
    box = AbsoluteDelta(0.1, params=("S",)).to_box(graph)
    up = _upper(graph, box, np.full(2, 0.99), np.full(2, 1.01), np.array([[1.0, -1.0], [1.0, 1.0]]))
    assert 0.022 <= up[0] <= 0.022 + 1e-9
    assert 2.222 <= up[1] <= 2.222 + 1e-9


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), delta=st.sampled_from([1e-3, 0.02, 0.1]), point=st.booleans(), bn=st.booleans())
def test_conv_nets_are_enclosed(seed: int, delta: float, point: bool, bn: bool) -> None:
    """Two convolutions, or a convolution with a perturbed BatchNormalization scale and shift."""
    graph = load_model(_conv_bn(seed) if bn else _two_convs(seed))
    params = ("W1", "g", "beta", "W2", "W3") if bn else None
    box = AbsoluteDelta(delta, params=params).to_box(graph)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0.0, 1.0, 36)
    hi = lo if point else np.minimum(lo + 0.05, 1.0)
    rows = np.concatenate([np.eye(3), -np.eye(3), np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])])
    up = _upper(graph, box, lo, hi, rows)
    xs = rng.uniform(lo, hi, (4, 36))
    xs[0] = lo
    ys = sampled_outputs(graph, box, xs, rng, 40)
    assert np.all(ys @ rows.T <= up + 1e-12)


@pytest.mark.parametrize("seed", [3, 11])
def test_sampled_changes_never_beat_the_proved_change(seed: int) -> None:
    graph = load_model(_two_convs(seed))
    x0 = np.random.default_rng(seed).uniform(0.0, 1.0, 36)
    problem = api.make_problem(graph, bits=4, x0=x0)
    b = api.bound(problem, "eps", options=Options(timeout_s=5.0, seed=seed))
    assert 0.0 < b.lower <= b.upper and b.witness is not None
    rng = np.random.default_rng(seed)
    y0 = graph.evaluate(x0[None])
    ys = sampled_outputs(graph, problem.box, x0[None], rng, 200)
    assert float(np.max(np.abs(ys - y0))) <= b.upper


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_torch_exported_cnn_every_tensor_8_bit(exporter: str, tmp_path) -> None:
    """torch.onnx.export's CNN (Conv+BatchNorm folded, MaxPool, Conv, AveragePool, Linear), every tensor
    in its 8-bit box at one image: a bracket within 1.2x that no sampled parameter set beats."""
    from torch_exports import export

    graph = load_model(str(export("cnn", tmp_path / f"{exporter}.onnx", exporter, 17, True)))
    x0 = np.random.default_rng(0).uniform(0.0, 1.0, graph.input_size)
    problem = api.make_problem(graph, bits=8, x0=x0)
    b = api.bound(problem, "eps", options=Options(timeout_s=3.0, seed=0))
    assert 0.0 < b.lower <= b.upper <= 1.2 * b.lower
    ys = sampled_outputs(graph, problem.box, x0[None], np.random.default_rng(1), 200)
    assert float(np.max(np.abs(ys - graph.evaluate(x0[None])))) <= b.upper
