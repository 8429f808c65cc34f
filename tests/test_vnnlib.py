"""VNN-LIB: the parser on ACAS Xu-like and MNIST-like properties, the checker, --vnnlib, many rows, the runner."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from paramverify import api
from paramverify.cli import main
from paramverify.errors import SpecError
from paramverify.options import Options
from paramverify.replay import run_onnxruntime
from paramverify.vnnlib import load_vnnlib, parse_vnnlib

torch = pytest.importorskip("torch")

ACAS_PROP = """
; ACAS Xu property 3 style: COC is not the minimal score
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const X_2 Real)
(declare-const X_3 Real)
(declare-const X_4 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(declare-const Y_3 Real)
(declare-const Y_4 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 0.3))
(assert (<= X_1 0.1))
(assert (>= X_1 -0.1))
(assert (<= X_2 -0.2))
(assert (>= X_2 -0.4))
(assert (<= X_3 0.5))
(assert (>= X_3 0.45))
(assert (<= X_4 -0.45))
(assert (>= X_4 -0.5))
(assert (<= Y_0 Y_1))
(assert (<= Y_0 Y_2))
(assert (<= Y_0 Y_3))
(assert (<= Y_0 Y_4))
"""


def mnist_prop(x0: np.ndarray, eps: float, label: int, n_out: int = 10) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(x0.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, v in enumerate(x0):
        lines += [f"(assert (<= X_{i} {float(v + eps)!r}))", f"(assert (>= X_{i} {float(v - eps)!r}))"]
    others = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_out) if j != label)
    lines.append(f"(assert (or {others}))")
    return "\n".join(lines) + "\n"


def _export(path, n_in: int, n_out: int, seed: int = 0):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(n_in, 12), torch.nn.ReLU(), torch.nn.Linear(12, n_out)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.zeros(1, n_in), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                          dynamo=False, dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def test_acas_property_parses():
    prop = parse_vnnlib(ACAS_PROP)
    assert (prop.n_inputs, prop.n_outputs, len(prop.cases)) == (5, 5, 1)
    case = prop.cases[0]
    assert np.allclose(case.lo, [0.3, -0.1, -0.4, 0.45, -0.5]) and np.allclose(case.hi, [0.5, 0.1, -0.2, 0.5, -0.45])
    (conj,) = case.unsafe
    # Y_0 - Y_j <= 0
    assert conj.C.shape == (4, 5) and np.all(conj.C[:, 0] == 1) and np.all(conj.d == 0)
    assert case.violated(np.array([[0.0, 1, 1, 1, 1], [2.0, 1, 1, 1, 1]])).tolist() == [True, False]


def test_mnist_disjunction_and_input_disjunction_parse():
    x0 = np.linspace(0.1, 0.9, 16)
    prop = parse_vnnlib(mnist_prop(x0, 0.05, 3))
    (case,) = prop.cases
    assert len(case.unsafe) == 9 and np.allclose(case.hi - case.lo, 0.1)
    y = np.zeros((1, 10))
    y[0, 3] = 1.0
    assert not case.violated(y)[0]
    y[0, 5] = 1.0
    assert case.violated(y)[0]
    two = """(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)
    (assert (or (and (>= X_0 0) (<= X_0 0.5) (<= (+ Y_0 (* -2 Y_1)) 1.5))
                (and (>= X_0 0.5) (<= X_0 1) (> Y_1 (- Y_0 3)))))"""
    p2 = parse_vnnlib(two)
    assert len(p2.cases) == 2
    c0, c1 = p2.cases
    assert np.allclose(c0.unsafe[0].C, [[1, -2]]) and np.allclose(c0.unsafe[0].d, [1.5])
    assert np.allclose(c1.unsafe[0].C, [[1, -1]]) and np.allclose(c1.unsafe[0].d, [3])  # Y_0 - Y_1 < 3


@pytest.mark.parametrize("text,msg", [
    ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= (* Y_0 Y_0) 1))", "not linear"),
    ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= Y_0 1)", "unbalanced"),
    ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1))(assert (<= Y_0 1))", "no lower or upper bound"),
    ("(declare-const Y_0 Real)", "no inputs"),
])
def test_bad_vnnlib_names_the_problem(text, msg):
    with pytest.raises(SpecError, match=msg):
        parse_vnnlib(text)


def test_acas_like_check_is_sound(tmp_path):
    model = _export(tmp_path / "acas.onnx", 5, 5)
    prop = parse_vnnlib(ACAS_PROP)
    verdict = api.verify_vnnlib(str(model), prop, options=Options(timeout_s=20))
    case = prop.cases[0]
    rng = np.random.default_rng(0)
    xs = rng.uniform(case.lo, case.hi, (5000, 5)).astype(np.float32).astype(np.float64)
    xs = np.clip(xs, case.lo, case.hi)
    from paramverify.ir import load_model

    y = run_onnxruntime(load_model(str(model)), xs)
    if verdict.name == "verified":
        assert not case.violated(y).any()
    else:
        assert verdict.name == "falsified"
        cex = verdict.counterexample
        assert cex.replayed and np.all((cex.input >= case.lo) & (cex.input <= case.hi))
        assert case.violated(run_onnxruntime(load_model(str(model)), cex.input[None]))[0]


def test_verify_cli_with_vnnlib_and_the_runner(tmp_path, capsys):
    model = _export(tmp_path / "mnist.onnx", 16, 10, seed=2)
    from paramverify.ir import load_model

    g = load_model(str(model))
    x0 = np.linspace(0.1, 0.9, 16)
    label = int(np.argmax(g.evaluate(x0)))
    (tmp_path / "robust.vnnlib").write_text(mnist_prop(x0, 1e-3, label))
    (tmp_path / "wide.vnnlib").write_text(mnist_prop(x0, 5.0, label))
    code = main(["verify", str(model), "--vnnlib", str(tmp_path / "robust.vnnlib"), "--quiet", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["vnncomp"] == "unsat"
    code = main(["verify", str(model), "--vnnlib", str(tmp_path / "wide.vnnlib"), "--quiet", "--timeout", "20"])
    text = capsys.readouterr().out
    assert code == 1 and "[sat]" in text and "(X_0 " in text
    # combined with a parameter box
    code = main(["verify", str(model), "--vnnlib", str(tmp_path / "robust.vnnlib"), "--delta", "1e-4", "--quiet"])
    assert code == 0
    capsys.readouterr()
    (tmp_path / "instances.csv").write_text("mnist.onnx,robust.vnnlib,20\nmnist.onnx,wide.vnnlib,20\nmissing.onnx,robust.vnnlib,5\n")
    code = main(["vnncomp", str(tmp_path / "instances.csv"), "--results", str(tmp_path / "res"), "--quiet"])
    assert code == 0
    assert (tmp_path / "res" / "mnist__robust.txt").read_text() == "unsat\n"
    sat = (tmp_path / "res" / "mnist__wide.txt").read_text().splitlines()
    assert sat[0] == "sat" and sat[1].startswith("((X_0 ") and sat[-1].startswith(" (Y_9 ") and sat[-1].endswith("))")
    values = [float(line.strip(" ()").split()[1]) for line in sat[1:]]
    x, y = np.array(values[:16]), np.array(values[16:])
    assert np.all(np.abs(x - x0) <= 5.0 + 1e-6)
    assert max(y[j] - y[label] for j in range(10) if j != label) >= 0
    assert (tmp_path / "res" / "missing__robust.txt").read_text().startswith("error")
    summary = (tmp_path / "res" / "results.csv").read_text().splitlines()
    assert summary[0] == "onnx,vnnlib,result,time_s" and len(summary) == 4


def test_vnnlib_conflicts_and_missing_property(tmp_path, capsys):
    model = _export(tmp_path / "m.onnx", 5, 5)
    (tmp_path / "p.vnnlib").write_text(ACAS_PROP)
    assert main(["verify", str(model), "--vnnlib", str(tmp_path / "p.vnnlib"), "--x0", "0,0,0,0,0", "--quiet"]) == 2
    assert "vnnlib" in capsys.readouterr().err
    assert main(["verify", str(model), "--x0", "0,0,0,0,0", "--delta", "0.1", "--quiet"]) == 2
    assert "property: is required" in capsys.readouterr().err
    assert load_vnnlib(tmp_path / "p.vnnlib").n_outputs == 5


def test_many_rows_one_verdict_each(tmp_path, capsys):
    model = _export(tmp_path / "m.onnx", 5, 5)
    rows = np.random.default_rng(0).uniform(-1, 1, (3, 5))
    np.save(tmp_path / "rows.npy", rows)
    code = main(["verify", str(model), "--x0", str(tmp_path / "rows.npy"), "--radius", "0.01", "--delta", "1e-3",
                 "--property", "label", "--quiet", "--json", "--timeout", "10"])
    out = json.loads(capsys.readouterr().out)  # the data-set format (docs/cli.md: verify / bound over a data set)
    assert len(out["results"]) == 3 and code in (0, 1, 3)
    assert [r["index"] for r in out["results"]] == [0, 1, 2]
    verdicts = api.verify_many(str(model), rows, "label", delta=1e-3, radius=0.01, options=Options(timeout_s=10))
    assert [v.name for v in verdicts] == [r["verdict"] for r in out["results"]]
