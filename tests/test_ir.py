"""The intermediate form evaluated in float64 agrees with onnxruntime; import errors are clear."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from paramverify.errors import ModelError, UnsupportedOpsError
from paramverify.ir import load_model
from paramverify.ops import Op, default_registry
from paramverify.replay import run_onnxruntime


def _model(nodes, inits, in_shape, out_shape, inputs=None, check=True):
    g = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    if check:
        onnx.checker.check_model(m)
    return m


def _f32(rng, *shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


ACTS = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Identity"]


def mlp_model(seed: int, sizes: list[int], act: str, head: str):
    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], {}, "x"
    inits["mu"] = _f32(rng, sizes[0])
    inits["sd"] = (np.abs(_f32(rng, sizes[0])) + 0.5).astype(np.float32)
    nodes += [helper.make_node("Sub", ["x", "mu"], ["xs"], name="sub"), helper.make_node("Div", ["xs", "sd"], ["xn"], name="div")]
    cur = "xn"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i % 2 == 0:
            inits[f"W{i}"], inits[f"b{i}"] = _f32(rng, b, a), _f32(rng, b)
            nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [f"z{i}"], transB=1, name=f"gemm{i}"))
        else:  # MatMul + Add, as PyTorch exports Linear
            inits[f"W{i}"], inits[f"b{i}"] = _f32(rng, a, b), _f32(rng, b)
            nodes.append(helper.make_node("MatMul", [cur, f"W{i}"], [f"m{i}"], name=f"mm{i}"))
            nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"], name=f"add{i}"))
        cur = f"z{i}"
        if i < len(sizes) - 2:
            kw = {"alpha": 0.1} if act == "LeakyRelu" else {}
            nodes.append(helper.make_node(act, [cur], [f"h{i}"], name=f"act{i}", **kw))
            cur = f"h{i}"
    kw = {"axis": 1} if head == "Softmax" else {}
    nodes.append(helper.make_node(head, [cur], ["y"], name="head", **kw))
    return _model(nodes, inits, ["N", sizes[0]], ["N", sizes[-1]])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    act=st.sampled_from(ACTS),
    head=st.sampled_from(["Identity", "Sigmoid", "Softmax"]),
)
def test_mlp_matches_onnxruntime(seed, sizes, act, head):
    m = mlp_model(seed, sizes, act, head)
    g = load_model(m)
    x = np.random.default_rng(seed + 1).normal(size=(7, sizes[0]))
    ours = g.evaluate(x)
    ref = run_onnxruntime(g, x.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=2e-5)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    stride=st.integers(1, 2),
    pad=st.integers(0, 1),
    group=st.sampled_from([1, 2]),
    dil=st.integers(1, 2),
)
def test_conv_bn_concat_reshape_matches_onnxruntime(seed, stride, pad, group, dil):
    rng = np.random.default_rng(seed)
    c_in, c_out, hw = 2, 4, 6
    inits = {
        "W": _f32(rng, c_out, c_in // group, 3, 3),
        "b": _f32(rng, c_out),
        "sc": (np.abs(_f32(rng, c_out)) + 0.5).astype(np.float32),
        "bb": _f32(rng, c_out),
        "mu": _f32(rng, c_out),
        "var": (np.abs(_f32(rng, c_out)) + 0.5).astype(np.float32),
        "shp": np.array([0, -1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "b"], ["c"], strides=[stride, stride], pads=[pad] * 4,
                         group=group, dilations=[dil, dil], kernel_shape=[3, 3], name="conv"),
        helper.make_node("BatchNormalization", ["c", "sc", "bb", "mu", "var"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shp"], ["f"], name="reshape"),
        helper.make_node("Flatten", ["x"], ["fx"], axis=1, name="flat"),
        helper.make_node("Concat", ["f", "fx"], ["y"], axis=1, name="concat"),
    ]
    ho = (hw + 2 * pad - dil * 2 - 1) // stride + 1
    m = _model(nodes, inits, [1, c_in, hw, hw], [1, c_out * ho * ho + c_in * hw * hw])
    g = load_model(m)
    x = rng.normal(size=(1, c_in * hw * hw))
    np.testing.assert_allclose(g.evaluate(x), run_onnxruntime(g, x.astype(np.float32)), rtol=2e-5, atol=2e-5)
    assert set(g.default_parameters()) == {"W", "b", "sc", "bb"}
    assert g.roles["mu"] == "stat"


def test_roles_default_parameters_exclude_normalisation():
    g = load_model(mlp_model(0, [2, 3, 1], "Relu", "Sigmoid"))
    assert g.default_parameters() == ("W0", "b0", "W1", "b1")
    assert g.roles["mu"] == "constant" and g.roles["sd"] == "constant"


def test_unsupported_ops_are_all_listed_at_once():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok"),
        helper.make_node("Exp", ["a"], ["b"], name="my_exp"),
        helper.make_node("Hardmax", ["b"], ["y"], name="pool"),
    ]
    m = _model(nodes, {}, [1, 1, 4], [1, 1, 4])
    with pytest.raises(UnsupportedOpsError) as info:
        load_model(m)
    assert info.value.nodes == (("Exp", "my_exp"), ("Hardmax", "pool"))
    assert "my_exp" in str(info.value) and "pool" in str(info.value)


def test_custom_op_can_be_registered_from_outside():
    import dataclasses
    from typing import ClassVar

    @dataclasses.dataclass(frozen=True)
    class Exp(Op):
        op_type: ClassVar[str] = "Exp"

        def apply(self, k, inputs):
            return k.mul(inputs[0], 2.0)  # a deliberately fake lowering, to see it used

    m = _model([helper.make_node("Exp", ["x"], ["y"], name="e")], {}, [1, 2], [1, 2])
    g = load_model(m, registry=default_registry().with_ops(Exp))
    np.testing.assert_allclose(g.evaluate([1.0, 3.0]), [[2.0, 6.0]])
    assert "Exp" not in default_registry()  # the default registry is untouched


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf at all \x00\xff")
    with pytest.raises(ModelError, match="not a readable ONNX model|no graph nodes"):
        load_model(bad)


def test_unknown_attribute_is_rejected():
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="r", bogus=3)], {}, [1, 2], [1, 2], check=False)
    with pytest.raises(ModelError, match="bogus"):
        load_model(m)


def test_two_data_inputs_rejected():
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in ("x", "z")]
    m = _model([helper.make_node("Add", ["x", "z"], ["y"], name="add")], {}, None, [1, 2], inputs=inputs)
    with pytest.raises(ModelError, match="exactly one data input"):
        load_model(m)
