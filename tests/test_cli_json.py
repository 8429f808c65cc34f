"""JSON output: a schema version, large counterexamples in a side .npz, witnesses replayed on
onnxruntime, and no confident answer about a model whose outputs are not finite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from paramverify.cli import main
from paramverify.results import SCHEMA_VERSION
from paramverify.witness_file import INLINE_LIMIT, externalize, load_parameters

CAT = str(Path(__file__).resolve().parents[1] / "paramverify" / "casestudies" / "data" / "cat.onnx")


def _gemm(path: Path, w: np.ndarray, name: str = "layer/W") -> str:
    d_in, d_out = w.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", name, "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, d_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, d_out])],
        [numpy_helper.from_array(w.astype(np.float32), name), numpy_helper.from_array(np.zeros(d_out, np.float32), "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_json_has_the_schema_version(capsys, tmp_path):
    for argv in (["bound", CAT, "--property", "eps", "--delta", "0.01", "--x0", "10,3"],
                 ["verify", CAT, "--property", "label", "--delta", "0.001", "--x0", "10,3"],
                 ["export-smt", CAT, "--property", "label", "--delta", "0.001", "--x0", "10,3", "-o", str(tmp_path / "a.smt2")]):
        code, out, _ = _run(capsys, *argv, "--json", "--quiet")
        assert json.loads(out)["schema"] == SCHEMA_VERSION, argv


def _big_model(tmp_path) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((100, 120)) * 0.1  # 12,000 weights > INLINE_LIMIT
    w[:, 0] += 0.05  # class 0 wins narrowly at x0 = 1: a delta box of 0.01 flips it
    return _gemm(tmp_path / "big.onnx", w), w


def test_large_counterexample_goes_to_a_side_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, w = _big_model(tmp_path)
    assert w.size > INLINE_LIMIT
    code, out, _ = _run(capsys, "verify", model, "--property", "label", "--delta", "0.05", "--x0", ",".join(["1"] * 100),
                        "--json", "--quiet")
    assert code == 1
    assert len(out) < 300_000  # the full parameters inline would be far larger
    cex = json.loads(out)["counterexample"]
    assert "parameters" not in cex and cex["replayed_on_onnxruntime"] is True
    side = tmp_path / cex["parameters_file"]
    assert side.name == "big.verify-label.witness.npz"
    x, params = load_parameters(side)
    assert set(params) == {"layer/W", "b"} and params["layer/W"].shape == (100, 120)
    assert cex["changed_parameters"]["layer/W"]["size"] == 12_000
    # the side file holds exactly the replayed counterexample: onnxruntime gives the reported output
    proto = onnx.load(model)
    for init in proto.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(params[init.name].astype(np.float32), init.name))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x.astype(np.float32).reshape(1, -1)})[0][0]
    np.testing.assert_allclose(y, cex["onnxruntime_perturbed_output"], rtol=1e-6)
    assert int(np.argmax(y)) != int(np.argmax(cex["nominal_output"]))


def test_small_counterexample_stays_inline(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, _ = _big_model(tmp_path)
    code, out, _ = _run(capsys, "verify", model, "--property", "label", "--delta", "20", "--params", "b",
                        "--x0", ",".join(["1"] * 100), "--json", "--quiet")
    assert code == 1  # perturbing only b (120 values): the counterexample stays inline
    cex = json.loads(out)["counterexample"]
    assert set(cex["parameters"]) == {"b"} and "parameters_file" not in cex
    assert list(tmp_path.glob("*.npz")) == []


def test_changed_entries_are_listed_inline_when_few(tmp_path):
    nominal = {"W": np.zeros((150, 100)), "b": np.ones(3)}
    w = np.zeros((150, 100))
    w[3, 7], w[149, 99] = 0.5, -0.25
    cex = {"input": [1.0, 2.0], "parameters": {"W": w.tolist(), "b": [1.0, 1.0, 1.5]}, "nominal_output": [0.0],
           "perturbed_output": [1.0], "replayed_on_onnxruntime": True}
    out = externalize(cex, nominal, tmp_path / "sub" / "w.npz")
    assert "parameters" not in out and out["parameters_file"] == str(tmp_path / "sub" / "w.npz")
    assert out["changed_parameters"]["W"] == {"count": 2, "size": 15_000, "index": [307, 14_999], "value": [0.5, -0.25]}
    assert out["changed_parameters"]["b"] == {"count": 1, "size": 3, "index": [2], "value": [1.5]}
    x, params = load_parameters(tmp_path / "sub" / "w.npz")
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(params["W"], w)
    # everything changed: only the counts stay inline
    many = externalize(dict(cex, parameters={"W": (w + 1).tolist()}), nominal, tmp_path / "m.npz")
    assert many["changed_parameters"]["W"] == {"count": 15_000, "size": 15_000}
    # a small one is returned unchanged and writes no file
    small = dict(cex, parameters={"b": [1.0, 1.0, 1.5]})
    assert externalize(small, nominal, tmp_path / "s.npz") is small and not (tmp_path / "s.npz").exists()


def test_witness_file_flag_places_a_large_bound_witness(capsys, tmp_path):
    model, _ = _big_model(tmp_path)
    side = tmp_path / "w.npz"
    code, out, _ = _run(capsys, "bound", model, "--property", "eps", "--delta", "0.01", "--witness-file", str(side),
                        "--x0", ",".join(["1"] * 100), "--json", "--quiet", "--timeout", "20")
    assert code == 0
    wit = json.loads(out)["witness"]
    assert wit["parameters_file"] == str(side) and side.is_file() and wit["replayed_on_onnxruntime"] is True


def test_bound_witness_is_replayed_on_onnxruntime(capsys):
    code, out, _ = _run(capsys, "bound", CAT, "--property", "eps", "--delta", "0.01", "--domain", "6.3:20.5,2.0:3.9",
                        "--json", "--quiet", "--timeout", "20")
    wit = json.loads(out)["witness"]
    assert wit["replayed_on_onnxruntime"] is True
    np.testing.assert_allclose(wit["onnxruntime_perturbed_output"], wit["perturbed_output"], rtol=1e-5)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_non_finite_weight_is_an_error_naming_the_tensor(capsys, tmp_path, value):
    w = np.array([[1.0, value], [0.5, 1.0]])
    model = _gemm(tmp_path / "inf.onnx", w, name="W")
    for argv in (["bound", model, "--property", "eps", "--delta", "0.01", "--domain=-1:1"],
                 ["bound", model, "--property", "eps", "--delta", "0.01", "--domain=-1:1", "--params", "b"],
                 ["verify", model, "--property", "label", "--delta", "0.01", "--x0", "1,1", "--params", "b"]):
        code, out, err = _run(capsys, *argv, "--json", "--quiet")
        assert code == 2 and out == "", argv
        assert "'W'" in err and "NaN" in err  # (the loader may refuse it first, naming the tensor too)


def test_float32_overflow_at_the_witness_is_an_error(capsys, tmp_path):
    model = _gemm(tmp_path / "big.onnx", np.array([[1e30, 1.0]]), name="W")
    code, out, err = _run(capsys, "bound", model, "--property", "eps", "--delta", "0.01", "--domain=-1e10:1e10",
                          "--json", "--quiet", "--timeout", "3")
    assert code == 2 and out == "" and "not finite" in err
    code, out, err = _run(capsys, "bound", model, "--property", "eps", "--delta", "0.01", "--domain=-1e300:1e300",
                          "--json", "--quiet", "--timeout", "3")
    assert code == 2 and out == "" and "not finite" in err
