"""A small torch CNN exported with torch.onnx.export at test time, end to end.

Conv, BatchNorm (kept: constant folding off), ReLU, MaxPool, AveragePool,
Pad, GlobalAveragePool, Flatten, Gemm, Softmax -- the legacy exporter at
opsets 13 and 17 -- through load_model, onnxruntime, verify, bound and bits.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from paramverify import api
from paramverify.cli import main
from paramverify.ir import load_model
from paramverify.replay import run_onnxruntime

torch = pytest.importorskip("torch")


class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.c2 = torch.nn.Conv2d(4, 6, 3)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.c1(x)))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True)
        x = torch.nn.functional.pad(x, (1, 1, 1, 1))
        x = torch.relu(self.c2(x))
        x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return torch.softmax(self.fc(x), -1)


def _export(path, opset: int) -> None:
    torch.manual_seed(0)
    net = SmallCNN()
    with torch.no_grad():  # non-trivial running statistics
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 1.5)
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(1, 1, 9, 9), str(path), opset_version=opset, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}},
                          do_constant_folding=False)


@pytest.fixture(scope="module", params=[13, 17])
def cnn(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("cnn") / f"cnn{request.param}.onnx"
    _export(path, request.param)
    return path


def test_lowers_every_op_and_matches_onnxruntime(cnn) -> None:
    g = load_model(cnn)
    ops = {n.op.op_type for n in g.nodes}
    assert {"Conv", "BatchNormalization", "MaxPool", "AveragePool", "Pad", "GlobalAveragePool", "Softmax"} <= ops
    x = np.random.default_rng(0).normal(size=(6, g.input_size))
    np.testing.assert_allclose(g.evaluate(x), run_onnxruntime(g, x), rtol=1e-5, atol=1e-6)


def test_eps_bracket_covers_sampled_changes(cnn) -> None:
    g = load_model(cnn)
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=g.input_size)
    problem = api.make_problem(g, bits=6, x0=x0)
    b = api.bound(problem, "eps")
    assert b.lower <= b.upper
    y0 = g.evaluate(x0)
    for _ in range(30):
        params = {n: rng.uniform(problem.box.lo[n], problem.box.hi[n]) for n in problem.box.names}
        assert np.max(np.abs(g.evaluate(x0, params) - y0)) <= b.upper + 1e-12


def test_cli_verify_bound_bits(cnn, capsys) -> None:
    x0 = ",".join(f"{v:.4f}" for v in np.random.default_rng(2).normal(size=81))
    code = main(["verify", str(cnn), "--property", "label", "--bits", "8", "--x0", x0, "--json", "--quiet", "--timeout", "20"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 3) and out["verdict"] in ("verified", "falsified", "unknown")
    assert "Softmax is skipped" in out["output"]["note"]
    code = main(["bound", str(cnn), "--property", "eps", "--bits", "8", "--x0", x0, "--json", "--quiet", "--timeout", "20"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and 0 <= out["lower"] <= out["upper"] <= 1.0
    code = main(["bits", str(cnn), "--x0", x0, "--json", "--quiet", "--no-delta", "--timeout", "5",
                 "--min-bits", "4", "--max-bits", "10", "--per-channel"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 3) and set(out["per_tensor_bits"]) >= {"c1.weight", "fc.weight"}
