"""``paramverify.bits``: certified bit widths on nets whose answers are worked out by hand.

The main net is ``y = w x + b`` with ``w = 1``, ``b = -0.25`` (level 0.5).
Symmetric per-tensor rounding of a tensor with max |p| = a at b bits has
radius ``a / (2 (2^(b-1) - 1))``: for ``w`` 0.5, 1/6, 1/14, 1/30 at 2..5 bits,
for ``b`` 0.125, 1/24, 1/56 at 2..4 bits.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from paramverify import api
from paramverify.bits import (
    Scheme,
    add_subparser,
    nested,
    quantization_box,
    quantized_parameters,
    run,
    search_bits,
)
from paramverify.errors import SpecError
from paramverify.ir import Graph, load_model
from paramverify.options import Options
from paramverify.properties import Problem
from paramverify.results import SCHEMA_VERSION, Verified

OPTS = Options(timeout_s=10.0)


def linear_model(w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    w = np.asarray(w, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1)],
        "lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", w.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", w.shape[0]])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def line() -> Graph:
    return load_model(linear_model([[1.0]], [-0.25]))


def test_point_widths_by_hand(line: Graph) -> None:
    # x0 = 1: y = 0.75, margin 0.25.  W alone: 1 - r_w - 0.25 >= 0.5 needs r_w <= 0.25, so 2 bits
    # (r 0.5) flip and 3 bits (1/6) hold.  B alone: 0.125 <= 0.25, so 2 bits hold.  Together at
    # 3 bits: 0.75 - 1/6 - 1/24 > 0.5; at 2 bits 0.75 - 0.625 < 0.5.  Joint {W:3, B:2}:
    # 0.75 - 1/6 - 1/8 < 0.5 fails; one raise (B to 3 or W to 4) certifies.
    r = search_bits(line, x0=[[1.0]], options=OPTS, with_delta=True)
    assert r.per_tensor_bits == {"W": 3, "B": 2}
    assert r.per_tensor["W"].exact and r.per_tensor["W"].below == "refuted"
    assert r.uniform_bits == 3 and r.uniform.exact
    assert r.joint_certified
    assert r.joint_bits in ({"W": 3, "B": 3}, {"W": 4, "B": 2})
    assert r.complete
    # largest delta on both tensors: 0.75 - 2 delta >= 0.5, so delta = 0.125
    assert r.max_delta is not None
    assert r.max_delta["lower"] <= 0.125 <= r.max_delta["upper"]
    assert r.max_delta["lower"] > 0.12
    assert all(d.quantized_label_kept for d in r.inputs)


def test_asymmetric_scheme_by_hand(line: Graph) -> None:
    # asymmetric: w = 1 spans [0, 1], scale 1 / (2^b - 1), radius 1/6 at 2 bits; b = -0.25 spans
    # [-0.25, 0], radius 1/24 at 2 bits.  Together 1/6 + 1/24 < 0.25 = the margin: 2 bits suffice.
    r = search_bits(line, x0=[[1.0]], scheme=Scheme(symmetric=False), options=OPTS, with_delta=False)
    assert r.per_tensor_bits == {"W": 2, "B": 2}
    assert r.uniform_bits == 2 and r.uniform.exact  # nothing below 2 bits to try
    assert r.joint_bits == {"W": 2, "B": 2} and r.joint_certified
    assert "asymmetric" in r.scheme


def test_joint_widths_verify_on_their_own(line: Graph) -> None:
    r = search_bits(line, x0=[[1.0], [2.0]], options=OPTS, with_delta=False)
    box = quantization_box(line, r.joint_bits)
    for x in ([1.0], [2.0]):
        v = api.verify(Problem(line, box, api.make_problem(line, delta=0.0, x0=x).region), "label", options=OPTS)
        assert isinstance(v, Verified)


def test_domain_with_sigma_by_hand(line: Graph) -> None:
    # x in [0, 1], sigma 0.1: the binding input is x = 0.85 (class 1, margin 0.1), which needs
    # 0.85 r_w + r_b <= 0.1.  W alone: 3 bits (1/6) flip, 4 bits (1/14) hold.  B alone: 2 bits
    # (1/8) flip, 3 bits (1/24) hold.  Uniform 4: 0.85/14 + 1/56 < 0.1; uniform 3 fails.
    r = search_bits(line, domain=[(0.0, 1.0)], sigma=0.1, options=OPTS, with_delta=False)
    assert r.per_tensor_bits == {"W": 4, "B": 3}
    assert r.uniform_bits == 4
    assert r.joint_certified
    assert r.joint_bits in ({"W": 4, "B": 4}, {"W": 5, "B": 3})
    assert "margin >= 0.1" in r.property


def test_z3_backend_agrees_on_the_line(line: Graph) -> None:
    r = search_bits(line, x0=[[1.0]], backend="z3", options=OPTS, with_delta=False)
    assert r.per_tensor_bits == {"W": 3, "B": 2}
    assert r.uniform_bits == 3


def test_two_classes_argmax() -> None:
    # y = (x, 0.5 x): class 0 wins at x0 = 1 by 0.5.  W = [[1], [0.5]] rounded per tensor
    # (a = 1): y0 - y1 >= 0.5 - 2 r, so r < 0.25 is needed: 2 bits (0.5) flip, 3 bits (1/6) hold.
    g = load_model(linear_model([[1.0], [0.5]], [0.0, 0.0]))
    r = search_bits(g, x0=[[1.0]], params=["W"], options=OPTS, with_delta=False)
    assert r.per_tensor_bits == {"W": 3}
    assert r.per_tensor["W"].below == "refuted"


def test_sigma_at_points_skips_small_margins(line: Graph) -> None:
    # x = 0.76 has margin 0.01 < sigma: it asks nothing, so only x = 1 matters.
    r = search_bits(line, x0=[[1.0], [0.76]], sigma=0.05, options=OPTS, with_delta=False)
    assert [d.constrained for d in r.inputs] == [True, False]
    assert r.per_tensor_bits == {"W": 3, "B": 2}


def test_budget_gives_an_incomplete_but_valid_report(line: Graph) -> None:
    r = search_bits(line, x0=[[1.0]], options=OPTS, budget_s=0.0)
    assert not r.complete
    assert "budget" in r.note
    assert not r.joint_certified


def test_unconstrainable_tensor_reports_none() -> None:
    # margin 0.05 at x0 = 1 while even 16 bits of a huge-range W cannot keep it: W = [[1, 1000]], x = (1, 0.0001)?
    # simpler: level 0.5, y = 0.5 exactly at x0 -> any perturbation can flip; no width certifies.
    g = load_model(linear_model([[1.0]], [-0.5]))
    r = search_bits(g, x0=[[1.0]], params=["W"], options=OPTS, with_delta=False, max_bits=6)
    assert r.per_tensor_bits == {"W": None}
    assert r.uniform_bits is None
    assert not r.joint_certified


def test_quantized_parameters_lie_in_the_box(line: Graph) -> None:
    for bits in range(2, 9):
        box = quantization_box(line, {"W": bits, "B": bits})
        assert box.contains(quantized_parameters(line, {"W": bits, "B": bits}))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    symmetric=st.booleans(),
    per_channel=st.booleans(),
    bits=st.integers(2, 15),
)
def test_rounding_boxes_are_nested(seed: int, symmetric: bool, per_channel: bool, bits: int) -> None:
    # the search reuses a certificate at b for every b' > b: box(b') must lie inside box(b)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 4)) * rng.uniform(0.01, 10)
    if seed % 5 == 0:
        w[0] = 0.0  # an all-zero channel
    g = load_model(linear_model(w, rng.normal(size=3)))
    scheme = Scheme(symmetric, per_channel)
    inner = quantization_box(g, {"W": bits + 1, "B": bits + 1}, scheme)
    outer = quantization_box(g, {"W": bits, "B": bits}, scheme)
    assert nested(inner, outer)
    assert inner.contains(quantized_parameters(g, {"W": bits + 1, "B": bits + 1}, scheme))


def test_input_errors(line: Graph) -> None:
    with pytest.raises(SpecError):
        search_bits(line, options=OPTS)
    with pytest.raises(SpecError):
        search_bits(line, x0=[[1.0]], domain=[(0, 1)], options=OPTS)
    with pytest.raises(SpecError):
        search_bits(line, x0=[[1.0]], min_bits=9, max_bits=4, options=OPTS)
    with pytest.raises(SpecError):
        search_bits(line, x0=[[1.0, 2.0]], options=OPTS)
    with pytest.raises(SpecError):
        search_bits(line, x0=[[1.0]], params=["nope"], options=OPTS)


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="paramverify")
    add_subparser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_json(tmp_path, capsys) -> None:
    path = tmp_path / "line.onnx"
    onnx.save(linear_model([[1.0]], [-0.25]), path)
    xs = tmp_path / "x.npy"
    np.save(xs, np.array([[1.0], [2.0]]))
    code = run(_cli(["bits", str(path), "--inputs", str(xs), "--json", "--quiet", "--timeout", "10", "--no-delta"]))
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["per_tensor_bits"] == {"W": 3, "B": 2}
    assert out["schema"] == SCHEMA_VERSION
    assert out["uniform_bits"] == 3
    assert out["joint_certified"] is True
    assert len(out["inputs"]) == 2
    assert "bitops" not in json.dumps(out).lower()


def test_cli_table_and_errors(tmp_path, capsys) -> None:
    path = tmp_path / "line.onnx"
    onnx.save(linear_model([[1.0]], [-0.25]), path)
    code = run(_cli(["bits", str(path), "--x0", "1.0", "--quiet", "--no-delta", "--max-bits", "8"]))
    text = capsys.readouterr().out
    assert code == 0
    assert "uniform width (every tensor): 3 bits" in text
    code = run(_cli(["bits", str(path), "--quiet"]))
    assert code == 2
    assert "give exactly one" in capsys.readouterr().err
