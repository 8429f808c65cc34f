"""Softmax/LogSoftmax before opset 13 (axis 1 by default, trailing axes flattened)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from paramverify.errors import ModelError
from paramverify.ir import load_model


def _model(op: str, shape: list[int], opset: int, axis: int | None):
    attrs = {} if axis is None else {"axis": axis}
    bias = helper.make_tensor("b", TensorProto.FLOAT, [shape[-1]], np.linspace(-1, 1, shape[-1]).tolist())
    nodes = [helper.make_node("Add", ["x", "b"], ["z"]), helper.make_node(op, ["z"], ["s"], **attrs),
             helper.make_node("Add", ["s", "b"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [bias])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize(("shape", "axis"), [([1, 5], None), ([1, 5], 1), ([1, 3, 4], 2), ([1, 3, 4], -1)])
def test_legacy_softmax_that_means_the_last_axis_matches_onnxruntime(op: str, shape: list[int], axis: int | None) -> None:
    m = _model(op, shape, 11, axis)
    g = load_model(m)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = g.evaluate(x.reshape(1, -1)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [None, 1])
def test_legacy_softmax_over_flattened_axes_is_refused_by_name(op: str, axis: int | None) -> None:
    # opset 11, rank 3, axis 1: normalises over axes 1..2 together; opset 13 would use axis 1 alone
    with pytest.raises(ModelError, match=r"opset < 13.*axes 1\.\.2.*re-export with opset >= 13"):
        load_model(_model(op, [1, 3, 4], 11, axis))


def test_opset_13_rank_3_default_axis_is_the_last_axis() -> None:
    m = _model("Softmax", [1, 3, 4], 13, None)
    x = np.random.default_rng(1).normal(size=(1, 3, 4)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = load_model(m).evaluate(x.reshape(1, -1)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
