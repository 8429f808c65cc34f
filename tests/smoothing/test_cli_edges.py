"""``smooth certify`` never gives a confident answer it cannot back (issue 11, items 9 and 12)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from paramverify.results import SCHEMA_VERSION
from paramverify.smoothing.cli import add_subparser, run
from paramverify.smoothing.onnx_torch import load_onnx

CAT_ONNX = Path(__file__).resolve().parents[2] / "paramverify/casestudies/data/cat.onnx"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="paramverify")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


def _gemm_model(path, w: np.ndarray, batch: int | str = "N", reshape_to_batch: bool = False) -> None:
    """x (batch, 2, 2) -> Reshape([batch, 4]) -> Gemm(W, 0): a static export fixes the batch in the Reshape."""
    d_in, d_out = w.shape
    shape = np.array([batch if isinstance(batch, int) else -1, d_in], np.int64)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["flat"]), helper.make_node("Gemm", ["flat", "W", "b"], ["y"])]
    inits = [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(np.zeros(d_out, np.float32), "b"),
             numpy_helper.from_array(shape, "shape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, d_out])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _argv(model, x_path, *extra: str) -> list[str]:
    return ["smooth", "certify", str(model), "--sigma", "0.25", "--n", "200", "--n0", "20", "--alpha", "0.01",
            "--inputs", str(x_path), "--seed", "5", "--json", "--quiet", *extra]


@pytest.fixture()
def x22(tmp_path):
    x = np.array([[[3.0, 3.0], [3.0, 3.0]], [[-3.0, -3.0], [-3.0, -3.0]]], np.float32)
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "x.npy"


W_SIGN = np.array([[1.0, -1.0]] * 4)  # class 0 when the input sum is positive


def test_static_batch_export_certifies_without_batch_flag(tmp_path, x22, capsys):
    for k in (1, 3):
        model = tmp_path / f"static{k}.onnx"
        _gemm_model(model, W_SIGN, batch=k)
        assert load_onnx(model).static_batch == k
        assert _cli(_argv(model, x22)) == 0  # default --batch 1000 is split into chunks of k
        out = json.loads(capsys.readouterr().out)
        assert out["schema"] == SCHEMA_VERSION
        assert [r["predict"] for r in out["results"]] == [0, 1]
        assert all(r["radius"] > 0 for r in out["results"])


@pytest.mark.parametrize("where", ["weights", "calib"])
def test_nan_model_or_calibration_is_an_error_not_a_certificate(tmp_path, x22, capsys, where):
    model = tmp_path / "m.onnx"
    extra: list[str] = []
    if where == "weights":
        _gemm_model(model, np.full((4, 2), np.nan))
    else:
        _gemm_model(model, W_SIGN)
        np.save(tmp_path / "calib.npy", np.full((4, 2, 2), np.nan, np.float32))
        extra = ["--policy", '{"default": 8}', "--calib", str(tmp_path / "calib.npy")]
    code = _cli(_argv(model, x22, *extra))
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert ("NaN" in captured.err) and "Traceback" not in captured.err


def test_nan_output_on_noisy_copies_is_a_model_error(tmp_path, x22):
    from paramverify.errors import ModelError
    from paramverify.smoothing.core import Smooth, SmoothOptions

    class Blows(torch.nn.Module):
        def forward(self, x):  # finite at x, NaN for some noisy copies
            s = x.reshape(x.shape[0], -1).sum(dim=1, keepdim=True)
            return torch.cat([s, torch.sqrt(s)], dim=1)

    sm = Smooth(Blows(), 2, SmoothOptions(sigma=2.0), torch.Generator().manual_seed(0))
    with pytest.raises(ModelError, match="NaN"):
        sm.certify(np.full((2, 2), 0.1, np.float32), 10, 200, 0.01)


def test_single_output_model_is_refused(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([[-100.0, -100.0], [100.0, 100.0]], np.float32))
    code = _cli(_argv(CAT_ONNX, tmp_path / "x.npy"))
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "at least 2 class scores" in captured.err


def test_label_minus_one_is_never_correct(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    _gemm_model(model, W_SIGN)
    np.save(tmp_path / "x.npy", np.zeros((2, 2, 2), np.float32))  # on the boundary: abstains
    np.save(tmp_path / "y.npy", np.array([-1, 0], np.int64))
    assert _cli(_argv(model, tmp_path / "x.npy", "--labels", str(tmp_path / "y.npy"))) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["predict"] for r in out["results"]] == [-1, -1]
    assert [r["correct"] for r in out["results"]] == [0, 0]
    assert out["summary"]["accuracy"] == 0.0


def test_policy_json_with_a_schema_version_is_read():
    from paramverify.smoothing.quant import QuantPolicy

    with_schema = QuantPolicy.from_mapping({"schema": SCHEMA_VERSION, "default": 8, "layers": {"fc": 4}})
    assert with_schema == QuantPolicy.from_mapping({"default": 8, "layers": {"fc": 4}})
