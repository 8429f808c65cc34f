"""SMT-LIB2 export: a complete, parseable script whose z3 answer agrees with Z3Engine."""

from __future__ import annotations

import re

import numpy as np
import pytest
import z3
from known_answers import CASES, make_model
from onnx import helper

from encoders.smtlib import export_smtlib
from encoders.z3_backend import Z3Engine
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import LabelInvariance, Problem
from paramverify.specs import AbsoluteDelta, InputRegion

BY_NAME = {c.name: c for c in CASES}
ENGINE = Z3Engine()


def _z3_answer(script: str) -> str:
    solver = z3.SolverFor("QF_NRA")
    solver.add(z3.parse_smt2_string(script))
    return str(solver.check())


@pytest.mark.parametrize(
    "name",
    ["lin1-eps-holds", "lin1-eps-fails", "relu221-point-holds", "relu221-point-fails", "argmax2-margin-holds",
     "argmax2-label-fails", "argmax3-point-holds", "argmax3-point-fails"],
)
def test_relu_and_linear_scripts_parse_and_agree_with_the_engine(name: str) -> None:
    case = BY_NAME[name]
    problem = case.problem()
    script = export_smtlib(problem, case.prop)
    verdict = ENGINE.verify(problem, case.prop, Options()).name
    assert verdict == case.verdict
    assert _z3_answer(script) == ("unsat" if verdict == "verified" else "sat")
    assert "exp" not in script.split("(set-logic")[1]


@pytest.mark.parametrize("name", ["sig231-point-holds", "sig231-point-fails", "sig231-margin-holds", "sig231-margin-fails"])
def test_sigmoid_scripts_through_the_logit_agree(name: str) -> None:
    case = BY_NAME[name]
    script = export_smtlib(case.problem(), case.prop, logit=True)
    assert "through the logit" in script
    assert _z3_answer(script) == ("unsat" if case.verdict == "verified" else "sat")


def test_sigmoid_is_written_with_exp_for_dreal() -> None:
    case = BY_NAME["sig231-margin-holds"]
    script = export_smtlib(case.problem(), case.prop)
    assert "(/ 1.0 (+ 1.0 (exp (- " in script
    assert "dReal extension" in script
    assert "(set-logic QF_NRA)" in script


def test_header_states_property_model_region_box_and_meaning() -> None:
    case = BY_NAME["relu221-point-maxdelta"]
    problem = case.problem()
    script = export_smtlib(problem, LabelInvariance())
    header = "\n".join(line for line in script.splitlines() if line.startswith(";"))
    assert "unsat means the property holds" in header
    assert "LabelInvariance" in header and "x0 = [1.0, 0.5]" in header
    assert "|p - p0| <= 1" in header and "W2[1, 2]" in header
    assert "model: <memory>" in header
    for cmd in ("(set-logic", "(declare-fun p_W2_0_0 () Real)", "(check-sat)", "(get-model)"):
        assert cmd in script
    # constants are exact rationals, never decimals with a fractional part
    body = script.split("(set-logic")[1]
    assert not re.search(r"\d\.\d*[1-9]", body)


def test_logic_is_linear_when_no_variables_multiply() -> None:
    """Only biases move and the input is a point: the encoding is linear."""
    script = export_smtlib(BY_NAME["argmax3-point-holds"].problem(), LabelInvariance())
    assert "(set-logic QF_LRA)" in script
    script = export_smtlib(BY_NAME["relu221-eps-w2"].problem(), LabelInvariance())
    assert "(set-logic QF_NRA)" in script


def test_odd_initializer_names_are_sanitized() -> None:
    nodes = [helper.make_node("Gemm", ["x", "layer/0.weight:0", "1bias"], ["y"], transB=1)]
    model = make_model(nodes, {"layer/0.weight:0": np.array([[1.0, -1.0]]), "1bias": np.array([0.25])}, 2, 1, "odd")
    g = load_model(model)
    problem = Problem(g, AbsoluteDelta(0.1).to_box(g), InputRegion.box([0, 0], [1, 1]), level=0.0)
    script = export_smtlib(problem, LabelInvariance())
    assert "p_layer_0.weight_0_0_1" in script and "p__1bias_0" in script
    assert _z3_answer(script) == ("unsat" if ENGINE.verify(problem, LabelInvariance(), Options()).name == "verified" else "sat")
