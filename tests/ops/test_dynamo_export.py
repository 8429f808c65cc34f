"""Models written by torch.onnx.export(dynamo=True) at opsets 18-20, end to end.

The dynamo exporter (it needs onnxscript) writes other graphs than the legacy one:
BatchNorm folded into Conv, Flatten as a Reshape with the batch size baked in when the
batch is fixed (``[1, 54]``), Gelu at opset 20, adaptive pooling as ReduceMean,
parameters named after the module path.  Each model, with a dynamic and with a fixed
batch, is lowered, checked against onnxruntime, and run through verify, bound and bits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxscript")  # torch.onnx.export(dynamo=True) needs it
torch = pytest.importorskip("torch")

import torch_exports  # tests/torch_exports.py

from paramverify import api
from paramverify.cli import main
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.replay import run_onnxruntime

CASES = [("cnn", 18, False), ("cnn", 20, True), ("branch", 19, True), ("mlp", 18, True), ("mlp", 20, False),
         ("head", 18, False), ("head", 20, True)]


#: the command line on a fixed-batch CNN (Reshape [1, 54]), Gelu at opset 20, and a Softmax head
CLI_CASES = [("cnn", 18, False), ("mlp", 20, False), ("head", 20, True)]


def _id(case) -> str:
    kind, opset, dyn = case
    return f"{kind}-opset{opset}-{'dyn' if dyn else 'batch1'}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case exported once per module."""
    cache: dict = {}

    def get(case):
        if case not in cache:
            kind, opset, dyn = case
            cache[case] = torch_exports.export(kind, tmp_path_factory.mktemp("dynamo") / f"{kind}.onnx", "dynamo", opset, dyn)
        return cache[case]

    return get


@pytest.fixture(params=CASES, ids=_id)
def model(request, exported):
    return exported(request.param)


@pytest.fixture(params=CLI_CASES, ids=_id)
def cli_model(request, exported):
    return exported(request.param)


def test_lowers_and_matches_onnxruntime(model) -> None:
    g = load_model(model)
    x = np.random.default_rng(0).random((4, g.input_size))
    np.testing.assert_allclose(g.evaluate(x), run_onnxruntime(g, x), rtol=1e-5, atol=1e-6)


def test_eps_bracket_covers_sampled_changes(model) -> None:
    g = load_model(model)
    rng = np.random.default_rng(1)
    x0 = rng.random(g.input_size)
    problem = api.make_problem(g, bits=6, x0=x0)
    b = api.bound(problem, "eps", options=Options(timeout_s=3))
    assert 0 <= b.lower <= b.upper
    y0 = g.evaluate(x0)
    for _ in range(20):
        params = {n: rng.uniform(problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names}
        assert np.max(np.abs(g.evaluate(x0, params) - y0)) <= b.upper + 1e-12


def test_cli_verify_bound_bits(cli_model, capsys) -> None:
    model = cli_model
    g = load_model(model)
    capsys.readouterr()  # the exporter's own messages
    x0 = ",".join(f"{v:.4f}" for v in np.random.default_rng(2).random(g.input_size))
    code = main(["verify", str(model), "--property", "label", "--bits", "8", "--x0", x0, "--json", "--quiet", "--timeout", "3"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 3) and out["verdict"] in ("verified", "falsified", "unknown")
    if out["verdict"] == "falsified":
        assert out["counterexample"]["replayed_on_onnxruntime"]
    code = main(["bound", str(model), "--property", "eps", "--bits", "8", "--x0", x0, "--json", "--quiet", "--timeout", "3"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and 0 <= out["lower"] <= out["upper"]
    code = main(["bits", str(model), "--x0", x0, "--json", "--quiet", "--no-delta", "--timeout", "1",
                 "--min-bits", "6", "--max-bits", "8"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 3) and set(out["per_tensor_bits"]) == set(g.default_parameters())


def test_legacy_fixed_batch_runs_any_batch(tmp_path) -> None:
    """The legacy exporter without dynamic_axes: the same fixed batch of 1."""
    path = torch_exports.export("cnn", tmp_path / "legacy_b1.onnx", "legacy", 17, False)
    g = load_model(path)
    assert any(getattr(n.op, "batch_leading", False) for n in g.nodes)
    x = np.random.default_rng(3).random((5, g.input_size))
    np.testing.assert_allclose(g.evaluate(x), run_onnxruntime(g, x), rtol=1e-5, atol=1e-6)


def test_batch_leading_is_not_read_from_a_file() -> None:
    from onnx import TensorProto, helper, numpy_helper

    from paramverify.errors import ModelError

    node = helper.make_node("Reshape", ["x", "s"], ["y"], name="r", batch_leading=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              initializer=[numpy_helper.from_array(np.array([1, 4], np.int64), "s")])
    with pytest.raises(ModelError, match="batch_leading"):
        load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
