"""Certified accuracy over a data set, and the ``smooth`` CLI through a tiny argparse."""

from __future__ import annotations

import argparse
import json

import pytest

torch = pytest.importorskip("torch")

import numpy as np

from paramverify.smoothing import ABSTAIN
from paramverify.smoothing.cli import add_subparser, run
from paramverify.smoothing.core import Smooth, SmoothOptions
from paramverify.smoothing.data import MNIST_CNN_ONNX, MODELS_DIR, load_test_samples
from paramverify.smoothing.dataset import (
    CertRow,
    certified_accuracy,
    certify_dataset,
    plot_certified_accuracy,
    read_tsv,
    write_json,
    write_tsv,
)

from .helpers import linear_classifier


def test_certified_accuracy_and_files(tmp_path):
    lin = linear_classifier(np.ones(4), 0.0)
    x = np.array([[1, 1, 1, 1], [-2, -2, -2, -2], [0.01, 0, 0, 0], [0.3, 0.3, 0.3, 0.3]], np.float32)
    y = np.array([1, 0, 1, 0])
    sm = Smooth(lin, 2, SmoothOptions(sigma=0.5), torch.Generator().manual_seed(0))
    rows = certify_dataset(sm, x, y, n0=50, n=2000, alpha=0.001, seed=3)
    assert [r.idx for r in rows] == [0, 1, 2, 3]
    assert rows[0].predict == 1 and rows[0].correct == 1 and 0 < rows[0].radius <= 2.0
    assert rows[2].predict == ABSTAIN and rows[2].correct == 0
    assert rows[3].predict == 1 and rows[3].correct == 0
    acc = certified_accuracy(rows, [0.0, 0.5, 1.0, 5.0])
    assert acc[0] == 0.5 and acc[-1] == 0.0 and np.all(np.diff(acc) <= 0)
    again = certify_dataset(sm, x, y, n0=50, n=2000, alpha=0.001, seed=3)
    assert [r.radius for r in again] == [r.radius for r in rows]
    write_tsv(rows, tmp_path / "c.tsv")
    assert (tmp_path / "c.tsv").read_text().splitlines()[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    back = read_tsv(tmp_path / "c.tsv")
    assert [(r.idx, r.predict, r.correct) for r in back] == [(r.idx, r.predict, r.correct) for r in rows]
    write_json(rows, tmp_path / "c.json", {"sigma": 0.5})
    assert json.loads((tmp_path / "c.json").read_text())["results"][1]["label"] == 0
    other = [CertRow(r.idx, r.label, r.predict, r.radius * 0.8, r.correct, r.time) for r in rows]
    plot_certified_accuracy({"float32": rows, "int8": other}, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="paramverify")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse refuses a bad flag value (e.g. --sigma -1) with exit 2
        return int(exc.code or 0)
    return run(args)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    x, y = load_test_samples("mnist")
    np.save(d / "x.npy", x[:3])
    np.save(d / "y.npy", y[:3])
    return d


def _base(inputs, *extra: str) -> list[str]:
    return ["smooth", "certify", str(MNIST_CNN_ONNX), "--sigma", "0.25", "--n", "400", "--n0", "20",
            "--alpha", "0.01", "--inputs", str(inputs / "x.npy"), "--labels", str(inputs / "y.npy"),
            "--batch", "150", "--seed", "11", "--json", "--quiet", *extra]


def test_cli_certify_json(inputs, capsys, tmp_path):
    assert _cli(_base(inputs, "--tsv", str(tmp_path / "o.tsv"), "--plot", str(tmp_path / "o.png"))) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["idx"] for r in out["results"]] == [0, 1, 2]
    for r in out["results"]:
        assert r["predict"] == r["label"] and 0 < r["radius"] < 0.25 * 2.4
    assert out["summary"]["accuracy"] == 1.0 and out["seed"] == 11
    assert len(read_tsv(tmp_path / "o.tsv")) == 3 and (tmp_path / "o.png").stat().st_size > 1000
    # --seed makes runs repeatable
    assert _cli(_base(inputs)) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["radius"] for r in again["results"]] == [r["radius"] for r in out["results"]]


def test_cli_quantized_and_incremental(inputs, capsys):
    assert _cli(_base(inputs, "--policy", '{"default": 8}')) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["bitops"]["fraction_of_float"] == pytest.approx(1 / 16)
    assert all(r["predict"] == r["label"] for r in q["results"])
    assert _cli(_base(inputs, "--policy", '{"default": 8}', "--incremental", "200", "--alpha-q", "0.005")) == 0
    inc = json.loads(capsys.readouterr().out)
    assert inc["incremental"]["confidence"] == pytest.approx(1 - 0.01 - 0.005)
    for r in inc["results"]:
        assert r["radius"] <= r["float"]["radius"] and r["predict"] in (r["label"], -1)


def test_cli_predict(inputs, capsys):
    argv = ["smooth", "predict", str(MNIST_CNN_ONNX), "--sigma", "0.25", "--n", "200", "--alpha", "0.01",
            "--inputs", str(inputs / "x.npy"), "--seed", "2", "--json", "--quiet"]
    assert _cli(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["predict"] for r in out["results"]] == [7, 2, 1]
    assert all(sum(r["counts"]) == 200 for r in out["results"])


def test_cli_single_input_and_table(inputs, capsys, tmp_path):
    x, _ = load_test_samples("mnist")
    np.save(tmp_path / "one.npy", x[0])  # a single input without the batch axis
    argv = ["smooth", "certify", str(MNIST_CNN_ONNX), "--sigma", "0.25", "--n", "100", "--n0", "10",
            "--inputs", str(tmp_path / "one.npy"), "--quiet"]
    assert _cli(argv) == 0
    assert "radius" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a, d: None, None),
        (lambda a, d: a.__setitem__(a.index("--sigma") + 1, "-1"), "sigma"),
        (lambda a, d: a.__setitem__(a.index("--inputs") + 1, str(d / "bad.npy")), "inputs"),
        (lambda a, d: a.__setitem__(a.index("--labels") + 1, str(d / "bad_labels.npy")), "labels"),
        (lambda a, d: a.__setitem__(2, str(d / "missing.onnx")), "does not exist"),
        (lambda a, d: a.extend(["--policy", '{"conv9": 8}']), "conv9"),
        (lambda a, d: a.extend(["--incremental", "10"]), "--policy"),
        (lambda a, d: a.extend(["--device", "tpu"]), "device"),
    ],
)
def test_cli_input_errors_exit_2(inputs, capsys, mutate, message):
    np.save(inputs / "bad.npy", np.zeros((2, 3, 5, 5), np.float32))
    np.save(inputs / "bad_labels.npy", np.zeros(7, np.int64))
    argv = _base(inputs)
    mutate(argv, inputs)
    code = _cli(argv)
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
    else:
        assert code == 2 and message in err and "Traceback" not in err


def test_committed_files_are_small():
    for path in MODELS_DIR.iterdir():
        assert path.stat().st_size < 1_000_000, path
    assert (MODELS_DIR / "PROVENANCE.md").is_file()
