"""Command-line edges (issue 11, item 9): negative values after a flag, a final Sigmoid
followed by Identity on z3, a W @ x column-vector model, the Quick-start SMT-LIB script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from paramverify.cli import join_negative_values, main

DATA = Path(__file__).resolve().parents[1] / "paramverify" / "casestudies" / "data"
CAT, ATH = str(DATA / "cat.onnx"), str(DATA / "ath_relu.onnx")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _save(path: Path, nodes, inits, in_shape, out_shape) -> str:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_negative_values_work_with_a_space(capsys):
    assert join_negative_values(["--x0", "-0.3,2", "--domain", "-1:1,-2:2", "--level", "-inf", "--delta", "0.1"]) == [
        "--x0=-0.3,2", "--domain=-1:1,-2:2", "--level=-inf", "--delta", "0.1"]
    assert join_negative_values(["-o", "-1", "--json", "--x0=-1"]) == ["-o", "-1", "--json", "--x0=-1"]
    code, out, err = _run(capsys, "bound", CAT, "--property", "eps", "--delta", "0.01", "--x0", "-0.3,2", "--json", "--quiet")
    assert code == 0, err
    assert json.loads(out)["region"]["x0"] == [-0.3, 2.0]
    code, out, err = _run(capsys, "bound", CAT, "--property", "eps", "--delta", "0.01", "--domain", "-1:1,-2:2",
                          "--json", "--quiet")
    assert code == 0, err
    assert json.loads(out)["region"]["domain"] == [[-1.0, 1.0], [-2.0, 2.0]]


@pytest.fixture
def sigmoid_identity(tmp_path) -> str:
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["z"]), helper.make_node("Sigmoid", ["z"], ["s"]),
             helper.make_node("Identity", ["s"], ["y"])]
    return _save(tmp_path / "sigid.onnx", nodes, {"W": [[1.0], [0.5]], "b": [0.0]}, [1, 2], [1, 1])


def test_z3_reads_a_final_sigmoid_through_a_trailing_identity(capsys, sigmoid_identity):
    code, out, err = _run(capsys, "verify", sigmoid_identity, "--property", "label", "--delta", "0.01",
                          "--x0", "1,1", "--backend", "z3", "--json", "--quiet")
    assert code == 0, err
    assert json.loads(out)["verdict"] == "verified"
    code, out, err = _run(capsys, "verify", sigmoid_identity, "--property", "label", "--delta", "0.01",
                          "--domain=-1:1", "--backend", "z3", "--json", "--quiet")
    assert code == 1, err  # the decision boundary z = 0 lies in the domain: a replayed flip
    assert json.loads(out)["counterexample"]["replayed_on_onnxruntime"] is True


def test_z3_message_for_a_sigmoid_it_cannot_reduce(capsys, sigmoid_identity):
    code, out, err = _run(capsys, "bound", sigmoid_identity, "--property", "eps", "--delta", "0.01",
                          "--domain=-1:1", "--backend", "z3")
    assert code == 2 and "inside the network" not in err
    assert "output bound over a domain" in err and "--backend bounds or dreal" in err


def test_column_vector_matmul_is_a_clear_model_error(capsys, tmp_path):
    model = _save(tmp_path / "colvec.onnx", [helper.make_node("MatMul", ["W", "x"], ["y"])],
                  {"W": [[1.0, 2.0], [0.5, -1.0]]}, [2, 1], [2, 1])
    code, out, err = _run(capsys, "verify", model, "--property", "label", "--delta", "0.01", "--x0", "1,1")
    assert code == 2 and out == ""
    assert "gufunc" not in err and "column-vector" in err and "x @ W^T" in err
    assert len(err.strip().splitlines()) == 1


def test_quick_start_smtlib_script_is_standard_smtlib(capsys, tmp_path):
    z3 = pytest.importorskip("z3")
    out_file = tmp_path / "q.smt2"
    code, _, err = _run(capsys, "export-smt", ATH, "--property", "label", "--delta", "0.01", "--x0", "180,75",
                        "-o", str(out_file))
    assert code == 0, err
    text = out_file.read_text()
    assert "(exp" not in text and "through the logit" in text
    solver = z3.Solver()
    solver.from_string(text)  # z3 rejected it before: unknown constant exp
    assert solver.check() == z3.unsat  # agrees with `verify`: the label holds
    code, _, _ = _run(capsys, "verify", ATH, "--property", "label", "--delta", "0.01", "--x0", "180,75", "--quiet")
    assert code == 0
    # --no-logit keeps the exact sigmoid, written with exp for dReal, and says so
    code, _, _ = _run(capsys, "export-smt", ATH, "--property", "label", "--delta", "0.01", "--x0", "180,75",
                      "--no-logit", "-o", str(out_file))
    assert code == 0 and "(exp" in out_file.read_text() and "z3 and other standard solvers reject" in out_file.read_text()
