"""The ONNX -> torch converter on models as the exporters write them, against onnxruntime.

torch.onnx.export's legacy and dynamo exporters (opsets 17-20, dynamic or fixed
batch 1) and onnxruntime.quantization's QDQ, QOperator and dynamic int8 models,
each run on a batch of inputs and compared with onnxruntime run on one input at a
time (a fixed-batch graph cannot take more, and a dynamically quantized one takes
its range from the whole tensor it is given).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import numpy as np
import onnx
import onnxruntime as ort

from paramverify.errors import UnsupportedOpsError
from paramverify.smoothing.onnx_torch import load_onnx, num_classes_of

import torch_exports as exporters  # tests/torch_exports.py

BATCH = 6


def _ort_one_at_a_time(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def _inputs(path, n: int = BATCH) -> np.ndarray:
    m = onnx.load(str(path))
    shape = [d.dim_value or 1 for d in m.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(7).random([n] + shape[1:], dtype=np.float32)


def _check(path, atol: float = 1e-5) -> None:
    x = _inputs(path)
    ref = _ort_one_at_a_time(path, x)
    module = load_onnx(path)
    with torch.inference_mode():
        got = module(torch.from_numpy(x)).numpy()
        one = module(torch.from_numpy(x[:1])).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=atol, rtol=1e-5)
    np.testing.assert_allclose(one, ref[:1], atol=atol, rtol=1e-5)
    assert num_classes_of(module, torch.from_numpy(x)) == 3


FLOAT_CASES = [(kind, exporter, opset, dyn) for kind in ("cnn", "mlp")
               for exporter, opset in (("legacy", 17), ("dynamo", 18), ("dynamo", 20)) for dyn in (True, False)]


@pytest.mark.parametrize("kind,exporter,opset,dynamic_batch", FLOAT_CASES,
                         ids=[f"{k}-{e}{o}-{'dyn' if d else 'batch1'}" for k, e, o, d in FLOAT_CASES])
def test_torch_exports_match_onnxruntime_at_any_batch(tmp_path, kind, exporter, opset, dynamic_batch) -> None:
    path = exporters.export(kind, tmp_path / "m.onnx", exporter, opset, dynamic_batch)
    _check(path)
    fixed = not dynamic_batch
    assert load_onnx(path).per_sample == fixed  # a fixed batch of 1 runs one input at a time


@pytest.fixture(scope="module", params=["cnn", "branch", "mlp"])
def legacy_float(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    return exporters.export(request.param, d / f"{request.param}.onnx", "legacy", 17, True)


@pytest.mark.parametrize("how", ["qdq", "qoperator", "dynamic"])
def test_onnxruntime_quantized_models_match_onnxruntime(legacy_float, how) -> None:
    path = exporters.quantize(legacy_float, legacy_float.with_name(f"{legacy_float.stem}_{how}.onnx"), how)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    if how == "qoperator":
        assert ops & {"QLinearConv", "QGemm"}
    if how == "dynamic":
        assert "DynamicQuantizeLinear" in ops
        assert load_onnx(path).per_sample
    # onnxruntime's integer arithmetic and requantization, reproduced
    _check(path, atol=1e-6)


def test_dynamic_quantization_takes_each_inputs_own_range(legacy_float, tmp_path) -> None:
    path = exporters.quantize(legacy_float, tmp_path / "dyn.onnx", "dynamic")
    x = _inputs(path, 2)
    x[1] *= 50.0  # a batch-wide range would coarsen the first input's quantization
    module = load_onnx(path)
    with torch.inference_mode():
        alone = module(torch.from_numpy(x[:1])).numpy()
        both = module(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(both[:1], alone)


def test_fixed_batch_other_than_one_runs_in_chunks(tmp_path) -> None:
    m, _ = exporters.net("mlp")
    path = tmp_path / "b3.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.zeros(3, 8), str(path), dynamo=False, opset_version=17, input_names=["x"])
    module = load_onnx(path)
    x = torch.rand(5, 8, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        np.testing.assert_allclose(module(x).numpy(), m(x).numpy(), atol=1e-5)


def test_unknown_contrib_op_is_listed(tmp_path) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("QLinearSoftmax", ["x"], ["y"], domain="com.microsoft", name="sm")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    with pytest.raises(UnsupportedOpsError, match="com.microsoft::QLinearSoftmax"):
        load_onnx(model)


def test_shape_and_reduction_ops_match_onnxruntime() -> None:
    """Slice (negative steps, clamped ends), ReduceMean/ReduceSum (axes as an input), Expand,
    ConstantOfShape, Erf, Sqrt, Pow, Gelu (tanh) -- the float ops the exporters add."""
    from onnx import TensorProto, helper, numpy_helper

    def c(name, v):
        return numpy_helper.from_array(np.asarray(v), name)

    n = helper.make_node
    nodes = [
        n("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
        n("ReduceMean", ["s", "rax"], ["r"], keepdims=1),
        n("Shape", ["r"], ["rs"]),
        n("ConstantOfShape", ["rs"], ["ones"], value=numpy_helper.from_array(np.array([1.5], np.float32))),
        n("Add", ["r", "ones"], ["r1"]),
        n("Expand", ["r1", "eshape"], ["e"]),
        n("Mul", ["e", "e"], ["sq"]),
        n("Sqrt", ["sq"], ["ab"]),
        n("Pow", ["ab", "two"], ["p"]),
        n("Erf", ["p"], ["f"]),
        n("Gelu", ["f"], ["gl"], approximate="tanh"),
        n("ReduceSum", ["gl", "sax"], ["y"], keepdims=0),
    ]
    inits = [c("st", np.array([3, 0], np.int64)), c("en", np.array([-100, 4], np.int64)),
             c("ax", np.array([1, 2], np.int64)), c("sp", np.array([-2, 1], np.int64)),
             c("rax", np.array([2], np.int64)), c("eshape", np.array([1, 1, 3], np.int64)),
             c("two", np.array(2.0, np.float32)), c("sax", np.array([1], np.int64))]
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    x = np.random.default_rng(3).standard_normal((4, 5, 4)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    with torch.inference_mode():
        got = load_onnx(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["dynamo-batch1", "qoperator", "dynamic"])
def test_smooth_certify_runs_exported_models(tmp_path, capsys, variant) -> None:
    """`smooth certify` end to end (batches of noisy copies) on a fixed-batch-1 dynamo export
    and on onnxruntime's QOperator and dynamic int8 models; with little noise the smoothed
    class is the model's own class (onnxruntime) at each input."""
    import argparse
    import json

    from paramverify.smoothing.cli import add_subparser, run

    if variant == "dynamo-batch1":
        path = exporters.export("cnn", tmp_path / "m.onnx", "dynamo", 18, False)
    else:
        src = exporters.export("cnn", tmp_path / "f.onnx", "legacy", 17, True)
        path = exporters.quantize(src, tmp_path / "m.onnx", variant)
    x = _inputs(path, 2)
    labels = _ort_one_at_a_time(path, x).argmax(1)
    np.save(tmp_path / "x.npy", x)
    parser = argparse.ArgumentParser(prog="paramverify")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    capsys.readouterr()  # the exporters' own messages
    argv = ["smooth", "certify", str(path), "--sigma", "0.002", "--n", "200", "--n0", "20", "--alpha", "0.01",
            "--inputs", str(tmp_path / "x.npy"), "--batch", "100", "--seed", "5", "--json", "--quiet"]
    assert run(parser.parse_args(argv)) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["predict"] for r in out["results"]] == labels.tolist()
