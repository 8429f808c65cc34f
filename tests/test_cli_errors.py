"""Every bad input gets one line naming what is wrong and how to fix it, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from paramverify.cli import main

CAT = str(Path(__file__).resolve().parents[1] / "paramverify" / "casestudies" / "data" / "cat.onnx")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def unsupported_model(tmp_path):
    nodes = [helper.make_node("Exp", ["x"], ["a"], name="e1"), helper.make_node("Sin", ["a"], ["y"], name="sin1")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "unsupported.onnx"
    onnx.save(m, path)
    return str(path)


CASES = [
    (["bound", "missing.onnx", "--property", "eps", "--delta", "0.01", "--x0", "10,3"], "not found"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--x0", "10,3,4"], "x0: has 3 values but the model input 'x' takes 2"),
    (["bound", CAT, "--property", "eps", "--delta", "-0.1", "--x0", "10,3"], "delta: must be a finite number >= 0"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--domain", "5:5,2:2"], "domain: the box is empty"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--domain", "9:5,2:3"], "domain: interval 0 is inverted"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--domain", "5-9,2:3"], "domain: interval 0 ('5-9') is not LO:HI"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--x0", "10,3", "--params", "W,nope"], "params: the model has no parameter named 'nope'"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01"], "x0/domain: give exactly one of them"),
    (["bound", CAT, "--property", "eps", "--x0", "10,3"], "delta: no perturbation given"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--bits", "8", "--x0", "10,3"], "bits: conflicts with delta"),
    (["bound", CAT, "--property", "delta", "--delta", "0.01", "--x0", "10,3"], "--property delta searches for delta itself"),
    (["verify", CAT, "--property", "eps", "--delta", "0.01", "--x0", "10,3"], "epsilon: is required"),
    (["verify", CAT, "--property", "sigma", "--sigma", "0.1", "--delta", "0.01", "--x0", "10,3"], "the sigma property is global"),
    (["bound", CAT, "--property", "eps", "--delta", "0.01", "--x0", "10,abc"], "x0: '10,abc' is not a comma-separated list"),
    (["bound", CAT, "--property", "eps", "--bits", "1", "--x0", "10,3"], "bits: must be an integer in 2..32"),
]


@pytest.mark.parametrize("argv,message", CASES)
def test_bad_input_exit_2_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("paramverify: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


def test_unsupported_ops_listed_in_one_line(capsys, unsupported_model):
    code, _, err = run_cli(capsys, "bound", unsupported_model, "--property", "eps", "--delta", "0.1", "--x0", "1,2")
    assert code == 2
    assert "Exp (node 'e1')" in err and "Sin (node 'sin1')" in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_model(capsys, tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    code, _, err = run_cli(capsys, "verify", str(bad), "--property", "label", "--delta", "0.01", "--x0", "1,2")
    assert code == 2 and "garbage.onnx" in err


def test_spec_file_errors_name_the_field(capsys, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("perturbation:\n  kind: quantization\n  bits: 99\n")
    code, _, err = run_cli(capsys, "bound", CAT, "--property", "eps", "--spec", str(spec), "--x0", "10,3")
    assert code == 2 and "perturbation.bits" in err
    spec.write_text("perturbation:\n  kind: absolute\n  delta: 0.01\n  colour: red\n")
    code, _, err = run_cli(capsys, "bound", CAT, "--property", "eps", "--spec", str(spec), "--x0", "10,3")
    assert code == 2 and "perturbation.colour" in err


def test_debug_shows_traceback():
    proc = subprocess.run([sys.executable, "-m", "paramverify", "bound", "missing.onnx", "--property", "eps",
                           "--delta", "0.01", "--x0", "1,2", "--debug"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ModelError" in proc.stderr


def test_usage_error_is_exit_2():
    proc = subprocess.run([sys.executable, "-m", "paramverify", "bound"], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "the following arguments are required" in lines[0] and "paramverify bound --help" in lines[0]
