"""``paramverify compare``: data loading, sound per-input brackets, the run, interrupts and the CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from paramverify import api, compare
from paramverify.compare import Entry, Settings, load_csv, run_comparison, split
from paramverify.compare_points import certified_at_bits, epsilon_local, max_delta, point_bounds, representable
from paramverify.errors import SpecError
from paramverify.ir import load_model
from paramverify.properties import label_kept, labels
from paramverify.report import get_path
from netgen import random_mlp

FAST = Settings(deltas=(0.01, 0.03), bits=(8, 4), ref_delta=0.01, timeout_s=0.3, tolerance=0.05, max_points=6, map_points=25, grid=12)


def _blobs_csv(path: Path, k: int = 2, n: int = 90, seed: int = 1, labels_as: str = "str") -> Path:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 3.0], [0.0, 4.0]])[:k]
    y = np.arange(n) % k
    X = centres[y] + rng.normal(0.0, 0.9, size=(n, 2))
    X = X * np.array([10.0, 5.0]) + np.array([170.0, 70.0])
    names = {"str": ["zeta", "alpha", "mid"], "num": ["10", "2", "7"]}[labels_as]
    rows = ["height,weight,kind"] + [f"{a:.2f},{b:.2f},{names[c]}" for (a, b), c in zip(X, y)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paramverify")
    sub = p.add_subparsers(dest="command")
    compare.add_compare_subparser(sub)
    return p


def _run_cli(*argv: str) -> int:
    args = _parser().parse_args(["compare", *argv])
    return int(args.handler(args))


FAST_ARGS = ("--epochs", "150", "--max-points", "6", "--map-points", "25", "--deltas", "0.01,0.03", "--bits", "8,4",
             "--timeout", "0.3", "--tolerance", "0.05", "--quiet")


# ----------------------------------------------------------------------------- data


def test_load_csv_defaults_and_sorted_string_labels(tmp_path: Path) -> None:
    ds = load_csv(str(_blobs_csv(tmp_path / "d.csv")))
    assert ds.features == ("height", "weight") and ds.label == "kind"
    assert ds.classes == ("alpha", "zeta")  # sorted: alpha -> 0, zeta -> 1
    assert ds.X.shape == (90, 2) and set(np.unique(ds.y)) == {0, 1}
    raw = (tmp_path / "d.csv").read_text().splitlines()[1:]
    assert all((r.endswith("zeta")) == bool(c) for r, c in zip(raw, ds.y))


def test_load_csv_numeric_labels_sort_numerically_and_columns_can_be_chosen(tmp_path: Path) -> None:
    ds = load_csv(str(_blobs_csv(tmp_path / "d.csv", k=3, labels_as="num")), features=["weight"], label="kind")
    assert ds.classes == ("2", "7", "10") and ds.features == ("weight",)
    assert ds.X.shape == (90, 1)


@pytest.mark.parametrize(("text", "message"), [
    ("a,b,c\n1,2,x\n3,4,x\n", "only one class"),
    ("a,b,c\n1,2,x\n3,q,y\n", "non-numeric feature"),
    ("a,b,c\n1,2,x\n3,4\n", "has 2 fields"),
    ("a,b\n", "header row and at least two data rows"),
])
def test_load_csv_errors_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(SpecError, match=message):
        load_csv(str(tmp_path / "bad.csv"))


def test_load_csv_unknown_column_lists_the_columns(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="columns: height, weight, kind"):
        load_csv(str(_blobs_csv(tmp_path / "d.csv")), label="sex")


def test_split_is_seeded_disjoint_and_complete() -> None:
    tr, te = split(50, 0.2, seed=3)
    tr2, te2 = split(50, 0.2, seed=3)
    assert np.array_equal(te, te2) and np.array_equal(tr, tr2)
    assert len(te) == 10 and set(tr) | set(te) == set(range(50)) and not set(tr) & set(te)
    assert not np.array_equal(split(50, 0.2, seed=4)[1], te)
    with pytest.raises(SpecError):
        split(50, 1.0, seed=0)


# ----------------------------------------------------------------------------- soundness of the per-input brackets


def _sample_params(box, rng: np.random.Generator, n: int):  # corners and interior points of the box
    for k in range(n):
        if k % 2:
            yield {name: np.where(rng.random(box.lo[name].shape) < 0.5, box.lo[name], box.hi[name]) for name in box.names}
        else:
            yield box.sample(rng)


@pytest.mark.parametrize(("seed", "activation"), [(0, "relu"), (1, "tanh"), (2, "sigmoid"), (3, "linear")])
def test_per_input_brackets_hold_on_samples_two_hidden_layers(seed: int, activation: str) -> None:
    g = load_model(random_mlp(seed, [2, 4, 3, 1], activation, sigmoid_output=True, scale=2.0))
    rng = np.random.default_rng(seed)
    pts = representable([g], rng.uniform(-2, 2, size=(5, 2)))
    box = api.make_problem(g, delta=0.05, x0=pts[0]).box
    loc = epsilon_local(g, box, pts, FAST)
    assert np.all(loc["lower"] <= loc["upper"]) and np.all(loc["lower"] > 0)
    y0 = g.evaluate(pts)
    md = max_delta(g, pts, FAST)
    assert np.all(md["lower"] <= md["upper"])
    unit = api.make_problem(g, unit_box=True, x0=pts[0]).box
    for params in _sample_params(box, rng, 30):
        change = np.abs(g.evaluate(pts, params) - y0).max(axis=1)
        assert np.all(change <= loc["upper"])
    for i, x in enumerate(pts):  # nothing inside the proved radius flips the label
        inner = unit.scaled(md["lower"][i])
        for params in _sample_params(inner, rng, 20):
            assert label_kept(y0[i:i + 1], g.evaluate(x, params), 0.5)[0]


def test_max_delta_brackets_agree_with_the_engine_query() -> None:
    g = load_model(random_mlp(5, [2, 3, 1], "relu", sigmoid_output=True, scale=1.5))
    pts = representable([g], np.random.default_rng(5).uniform(-1, 1, size=(4, 2)))
    md = max_delta(g, pts, FAST)
    for i, x in enumerate(pts):
        br = api.bound(api.make_problem(g, unit_box=True, x0=x), "delta")
        assert max(br.lower, md["lower"][i]) <= min(br.upper, md["upper"][i])  # both contain the true value
        assert md["upper"][i] <= 1.011 * md["lower"][i]  # one hidden layer: the bracket closes


def test_certified_inputs_keep_labels_and_falsified_ones_are_replayed_flips() -> None:
    g = load_model(random_mlp(7, [2, 5, 1], "relu", sigmoid_output=True, scale=1.0))
    pts = representable([g], np.random.default_rng(7).uniform(-1, 1, size=(12, 2)))
    out = certified_at_bits(g, pts, 3, FAST)
    assert out["certified"] + out["falsified"] + out["unknown"] == out["total"] == 12
    assert out["fraction"] == out["certified"] / 12 and out["fraction_max"] == 1 - out["falsified"] / 12
    box = api.make_problem(g, bits=3, x0=pts[0]).box
    kept = point_bounds(g, box, pts, FAST).kept
    assert int(kept.sum()) == out["certified"]
    y0, rng = g.evaluate(pts), np.random.default_rng(0)
    for params in _sample_params(box, rng, 30):
        assert np.all(label_kept(y0, g.evaluate(pts, params), 0.5)[kept])


def test_domain_sample_without_grid_for_three_inputs() -> None:
    g = load_model(random_mlp(8, [3, 4, 1], "relu", sigmoid_output=True))
    out = compare.domain_sample(g, np.array([[-1.0, 1.0]] * 3), FAST)
    assert out["n"] == 25 and out["certified"] + out["flippable"] + out["unknown"] == 25
    assert out["flippable_fraction"]["lower"] <= out["flippable_fraction"]["upper"] and "grid" not in out


# ----------------------------------------------------------------------------- the run


def test_run_comparison_json_is_complete_and_consistent() -> None:
    graphs = [load_model(random_mlp(s, [2, 3, 1], a, sigmoid_output=True)) for s, a in ((1, "relu"), (2, "linear"))]
    entries = [Entry(a, g, a, f"{a}.onnx") for a, g in zip(("relu", "linear"), graphs)]
    pts = np.random.default_rng(0).uniform(-1, 1, size=(5, 2))
    y = labels(graphs[0].evaluate(pts), 0.5)
    res = run_comparison(entries, pts, np.array([[-1.0, 1.0], [-1.0, 1.0]]), FAST, eval_X=pts, eval_y=y)
    assert res["command"] == "compare" and res["complete"] and res["missing"] == []
    json.dumps(res)  # plain JSON: no numpy, no infinities
    for m in res["models"]:
        assert [e["delta"] for e in m["epsilon_global"]] == [0.01, 0.03]
        assert all(e["lower"] <= e["upper"] and e["proof_side"] == "upper" for e in m["epsilon_global"])
        assert [c["bits"] for c in m["certified"]] == [8, 4] and [s["class"] for s in m["sigma"]] == [0, 1]
        assert len(m["max_delta"]["lower"]) == 5 and m["max_delta"]["median"]["lower"] <= m["max_delta"]["median"]["upper"]
        assert len(m["map"]["grid"]["f0"]) == 12 and len(m["map"]["status"]) == 25
        local = {e["delta"]: e for e in m["epsilon_local"]}
        glob = {e["delta"]: e for e in m["epsilon_global"]}
        assert all(local[d]["max"]["lower"] <= glob[d]["upper"] for d in glob)  # local witnesses lie in the box
    assert res["models"][0]["accuracy"]["test"] == 1.0
    assert res["ranking"]["order"] and "paper_finding" in res["ranking"]


def test_interrupt_keeps_what_finished_and_lists_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = compare.certified_at_bits

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(compare, "certified_at_bits", flaky)
    csv = _blobs_csv(tmp_path / "d.csv")
    code = _run_cli("--data", str(csv), "--activations", "relu,linear", "--hidden", "2", "--out", str(tmp_path / "o"), *FAST_ARGS)
    assert code == 130
    res = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert res["complete"] is False
    assert res["missing"][0] == "linear: certified fraction at 8-bit (interrupted)"
    assert any("global epsilon" in m for m in res["missing"]) and any("sigma" in m for m in res["missing"])
    assert all("max_delta" in m for m in res["models"])  # the first step finished for both models
    assert "certified" in res["models"][0] and "certified" not in res["models"][1]
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Incomplete run" in html and "linear: certified fraction at 8-bit (interrupted)" in html


def test_cli_trains_per_activation_and_writes_json_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _blobs_csv(tmp_path / "d.csv")
    code = _run_cli("--data", str(csv), "--activations", "relu,linear", "--hidden", "3", "--out", str(tmp_path / "o"),
                    "-o", str(tmp_path / "r.html"), "--json", *FAST_ARGS)
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res == json.loads((tmp_path / "o" / "compare.json").read_text())
    assert [m["name"] for m in res["models"]] == ["relu", "linear"]
    assert res["training"]["hidden"] == [3] and res["data"]["classes"] == ["alpha", "zeta"]
    assert res["data"]["n_points"] == 6 and res["data"]["domain"][0][0] == min(load_csv(str(csv)).X[:, 0])
    for m in res["models"]:
        assert Path(m["onnx"]).is_file() and m["accuracy"]["train"] > 0.8
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    for key in ("models.0.max_delta.median.lower", "models.1.epsilon_global.1.upper", "models.0.certified.1.fraction"):
        assert f'data-key="{key}"' in html and get_path(res, key) is not None


def test_cli_compares_given_onnx_models_three_classes(tmp_path: Path) -> None:
    csv = _blobs_csv(tmp_path / "d.csv", k=3)
    model = tmp_path / "soft.onnx"
    proto = random_mlp(4, [2, 3, 3], "tanh", normalise=([175.0, 80.0], [15.0, 10.0]))
    softmax = onnx.helper.make_node("Softmax", ["y"], ["p"], axis=-1)
    proto.graph.node.append(softmax)
    proto.graph.output[0].name = "p"
    model.write_bytes(proto.SerializeToString())
    code = _run_cli("--models", str(model), "--data", str(csv), "--out", str(tmp_path / "o"), *FAST_ARGS[2:], "--max-points", "4")
    assert code == 0
    res = json.loads((tmp_path / "o" / "compare.json").read_text())
    (m,) = res["models"]
    assert m["name"] == "soft" and m["activation"] is None and m["n_outputs"] == 3
    assert [s["class"] for s in m["sigma"]] == [0, 1, 2] and "label" in m["map"]["grid"]
    assert res["data"]["n_points"] == 4 and res["data"]["n_eval"] == 90 and "paper_finding" not in res["ranking"]
    assert (tmp_path / "o" / "report.html").stat().st_size > 10_000


def test_parser_setup_is_light_and_knows_every_activation() -> None:
    from paramverify.train import ACTIVATIONS

    assert set(compare.ACTIVATION_NAMES) == set(ACTIVATIONS)
    code = ("import sys, argparse, paramverify.compare as c, paramverify.report as r; s = argparse.ArgumentParser().add_subparsers();"
            "c.add_compare_subparser(s); r.add_report_subparser(s); print(sorted(m for m in ('matplotlib', 'onnxruntime', 'onnx', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "[]"


def test_cli_input_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="give --data"):
        _run_cli("--out", str(tmp_path / "o"))
    with pytest.raises(SpecError, match="unknown activation"):
        _run_cli("--data", str(_blobs_csv(tmp_path / "d.csv")), "--activations", "relu,swish", "--out", str(tmp_path / "o"))
    model = tmp_path / "m.onnx"
    model.write_bytes(random_mlp(0, [2, 2, 1], "relu", sigmoid_output=True).SerializeToString())
    with pytest.raises(SpecError, match="need an input box"):
        _run_cli("--models", str(model), "--out", str(tmp_path / "o"))
    with pytest.raises(SpecError, match="deltas"):
        _run_cli("--models", str(model), "--domain", "0:1", "--deltas", "0.01,-1", "--out", str(tmp_path / "o"))
