"""The ONNX -> torch converter against onnxruntime."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from paramverify.errors import ModelError, UnsupportedOpsError
from paramverify.smoothing.data import MNIST_CNN_ONNX, load_test_samples
from paramverify.smoothing.onnx_torch import load_onnx, num_classes_of
from paramverify.smoothing.quant import quantizable_layers


def ort_run(model: onnx.ModelProto | str, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    opts = ort.SessionOptions()
    if not optimize:  # the reference semantics: each QDQ node as the ONNX spec defines it
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def torch_run(model: onnx.ModelProto | str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return load_onnx(model)(torch.from_numpy(x)).numpy()


def test_committed_mnist_model_matches_onnxruntime():
    x, y = load_test_samples("mnist")
    ref = ort_run(str(MNIST_CNN_ONNX), x)
    got = torch_run(str(MNIST_CNN_ONNX), x)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    m = load_onnx(MNIST_CNN_ONNX)
    assert quantizable_layers(m) == ["conv1", "conv2", "fc1", "fc2"]
    assert m.input_shape == (None, 1, 28, 28)
    assert num_classes_of(m, torch.from_numpy(x)) == 10
    assert (got.argmax(1) == y).mean() >= 0.95


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(arr, name)


def _zoo_model() -> onnx.ModelProto:
    """A graph with most supported operators: residual CNN + head."""
    rng = np.random.default_rng(0)

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    inits = [
        _init("w1", r(4, 3, 3, 3)), _init("b1", r(4)),
        _init("bn_s", (1 + r(4)).astype(np.float32)), _init("bn_b", r(4)), _init("bn_m", r(4)),
        _init("bn_v", (0.5 + np.abs(r(4))).astype(np.float32)),
        _init("w2", r(4, 4, 3, 3)), _init("w3", r(8, 2, 1, 1)),
        _init("shape", np.array([0, -1], dtype=np.int64)),
        _init("wg", r(8 * 3 * 3, 6)), _init("bg", r(6)),
        _init("wm", r(6, 5)), _init("bm", r(5)), _init("half", np.array(0.5, np.float32)),
        _init("axes", np.array([2, 3], dtype=np.int64)),
        _init("cmin", np.array(-2.0, np.float32)), _init("cmax", np.array(2.0, np.float32)),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv/1", pads=[1, 0, 1, 2], strides=[1, 1]),
        n("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], name="bn", epsilon=1e-3),
        n("Relu", ["bn"], ["r1"], name="relu"),
        n("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        n("Add", ["c2", "r1"], ["res"], name="residual"),
        n("LeakyRelu", ["res"], ["lr"], name="lrelu", alpha=0.1),
        n("MaxPool", ["lr"], ["mp"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        n("Conv", ["mp", "w3"], ["c3"], name="grouped", group=2),
        n("AveragePool", ["c3"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1],
          count_include_pad=0),
        n("Clip", ["ap", "cmin", "cmax"], ["cl"], name="clip"),
        n("GlobalAveragePool", ["cl"], ["gap"], name="gap"),
        n("Squeeze", ["gap", "axes"], ["sq"], name="squeeze"),
        n("Unsqueeze", ["sq", "axes"], ["usq"], name="unsqueeze"),
        n("Sigmoid", ["usq"], ["sg"], name="sigmoid"),
        n("Mul", ["cl", "sg"], ["scaled"], name="se_scale"),
        n("AveragePool", ["scaled"], ["pooled"], name="avg2", kernel_shape=[2, 2], strides=[2, 2]),
        n("Transpose", ["pooled"], ["tp"], name="transpose", perm=[0, 1, 3, 2]),
        n("Reshape", ["tp", "shape"], ["flat"], name="reshape"),
        n("Gemm", ["flat", "wg", "bg"], ["g"], name="gemm", alpha=0.7, beta=1.3),
        n("Tanh", ["g"], ["t"], name="tanh"),
        n("MatMul", ["t", "wm"], ["mm"], name="matmul"),
        n("Add", ["mm", "bm"], ["mmb"], name="bias"),
        n("Mul", ["mmb", "half"], ["z"], name="scale"),
        n("Softmax", ["z"], ["y"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "zoo", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 11])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def test_operator_zoo_matches_onnxruntime():
    model = _zoo_model()
    x = np.random.default_rng(1).standard_normal((4, 3, 12, 11)).astype(np.float32)
    np.testing.assert_allclose(torch_run(model, x), ort_run(model, x), atol=1e-5, rtol=1e-4)
    layers = quantizable_layers(load_onnx(model))
    assert layers == ["conv_1", "conv2", "grouped", "gemm", "matmul"]


def test_dynamic_flatten_pattern_from_exporters():
    """x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    n = helper.make_node
    inits = [_init("zero", np.array(0, np.int64)), _init("minus1", np.array([-1], np.int64)),
             _init("ax0", np.array([0], np.int64)), _init("w", np.ones((12, 2), np.float32))]
    nodes = [
        n("Shape", ["x"], ["s"]), n("Gather", ["s", "zero"], ["b"], axis=0),
        n("Unsqueeze", ["b", "ax0"], ["b1"]), n("Concat", ["b1", "minus1"], ["shp"], axis=0),
        n("Reshape", ["x", "shp"], ["f"]), n("MatMul", ["f", "w"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "flat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    x = np.random.default_rng(2).standard_normal((5, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(torch_run(m, x), ort_run(m, x), atol=1e-5)


def test_every_unsupported_node_is_listed_at_once():
    n = helper.make_node
    nodes = [n("Hardmax", ["x"], ["a"], name="hm1"), n("Relu", ["a"], ["b"]),
             n("TopK", ["b", "k"], ["v", "i"], name="top")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2])],
                              initializer=[_init("k", np.array([2], np.int64))])
    with pytest.raises(UnsupportedOpsError) as info:
        load_onnx(helper.make_model(graph))
    assert info.value.nodes == (("Hardmax", "hm1"), ("TopK", "top"))
    assert isinstance(info.value, ModelError)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_onnx(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage that is not a protobuf \xff\xff")
    with pytest.raises(ModelError):
        load_onnx(bad)


def test_qdq_model_from_onnxruntime_quantization(tmp_path):
    quantization = pytest.importorskip("onnxruntime.quantization")
    x, _ = load_test_samples("mnist")

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"input": x[i : i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self._it, None)

    out = tmp_path / "mnist_qdq.onnx"
    quantization.quantize_static(
        str(MNIST_CNN_ONNX), str(out), Reader(), quant_format=quantization.QuantFormat.QDQ,
        per_channel=True, activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
    )
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ref, got = ort_run(str(out), x, optimize=False), torch_run(str(out), x)
    assert (ref.argmax(1) == got.argmax(1)).all()
    # float accumulation order may move a value across a rounding boundary: one output step at most
    step = float(numpy_helper.to_array(next(t for t in onnx.load(str(out)).graph.initializer
                                            if t.name == "logits_scale")))
    assert np.abs(ref - got).max() <= step * 1.001
    layers = quantizable_layers(load_onnx(out))
    assert len(layers) == 4  # the dequantized int8 weights were folded into Conv/Gemm modules
