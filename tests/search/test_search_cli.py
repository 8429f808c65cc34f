"""``paramverify search`` end to end on a tiny CNN: outputs, resume, Ctrl-C, errors, formal mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import onnx

from paramverify.search import cli
from paramverify.search.reward import SmoothingEvaluator
from paramverify.smoothing.quant import QuantPolicy

from .nets import labelled_inputs, tiny_cnn
from .test_search_formal import identity_net

SMALL = ["--budget", "0.04", "--warmup", "2", "--hidden", "16", "--reward-images", "10", "--reward-n", "32",
         "--float-n", "64", "--n0", "8", "--test-images", "8", "--test-n", "48", "--test-n0", "8",
         "--random-trials", "2", "--batch", "256", "--quiet", "--json"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    proto = tiny_cnn(7)
    onnx.save(proto, d / "m.onnx")
    x, y = labelled_inputs(proto, 24, seed=8)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return d


def _run(files, out, *extra):
    return cli.main(["search", str(files / "m.onnx"), "--out", str(out), "--inputs", str(files / "x.npy"),
                     "--labels", str(files / "y.npy"), *SMALL, *extra])


def _history(out):
    ck = json.loads((out / "checkpoint.json").read_text())
    (budget,) = ck["budgets"].values()
    return [(h["policy"]["weight_bits"], h["reward"]) for h in budget["ddpg"]["history"]]


def test_search_writes_policy_qdq_model_and_report(files, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(files, out, "--episodes", "4") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["schema"] == 1
    assert json.loads((out / "policy.json").read_text())["schema"] == 1  # and smooth --policy still reads it:
    assert summary["bitops_fraction"] <= 0.04 and set(summary["test"]) == {"ddpg", "uniform", "greedy", "random"}
    policy = QuantPolicy.from_json(out / "policy.json")
    assert [policy.for_layer(n).weight.bits for n in ("conv", "fc1", "fc2")] == summary["bits"]
    qdq = onnx.load(str(out / "model_qdq.onnx"))
    onnx.checker.check_model(qdq)
    assert summary["qdq"]["label_agreement"] == 1.0
    assert (out / "pareto.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "| 0.04 | ddpg |" in md and "float32" in md
    report = json.loads((out / "report.json").read_text())
    assert report["schema"] == 1
    rows = report["budgets"][0]["rows"]
    assert all(r["bitops_fraction"] <= 0.04 for r in rows)
    assert report["certifications"]["computed"] <= report["certifications"]["requests"]
    methods = report["budgets"][0]["methods"]
    race = methods["ddpg"].get("final_race")
    if race is not None:  # DDPG found at least two distinct policies: the final race picked its answer
        assert race["n"] == 64 and race["winner_key"] == ",".join(
            f"{n}={b}/{b}" for n, b in zip(("conv", "fc1", "fc2"), summary["bits"]))
        assert methods["ddpg"]["certifications"] >= race["certifications"]


def test_resume_continues_the_interrupted_run_exactly(files, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert _run(files, straight, "--episodes", "5", "--baselines", "none", "--no-test") == 0
    # an interrupted run: Ctrl-C during the 4th certification
    out = tmp_path / "resumed"
    original = SmoothingEvaluator.evaluate
    calls = {"n": 0}

    def flaky(self, policy):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, policy)

    with monkeypatch.context() as mp:
        mp.setattr(SmoothingEvaluator, "evaluate", flaky)
        assert _run(files, out, "--episodes", "5", "--baselines", "none", "--no-test") == 130
    assert (out / "policy.json").is_file() and len(_history(out)) == 3
    assert _run(files, out, "--episodes", "5", "--baselines", "none", "--no-test", "--resume") == 0
    assert _history(out) == _history(straight)
    # the final race made the same choice with the same cost
    def ddpg(folder):
        m = json.loads((folder / "report.json").read_text())["budgets"][0]["methods"]["ddpg"]
        return m["best"]["policy"], m.get("final_race", {}).get("candidates"), m["certifications"], m["samples"]

    assert ddpg(out) == ddpg(straight)
    # a finished run can be extended
    assert _run(files, out, "--episodes", "6", "--baselines", "none", "--no-test", "--resume") == 0
    assert len(_history(out)) == 6 and _history(out)[:5] == _history(straight)


def test_final_race_can_be_turned_off(files, tmp_path):
    out = tmp_path / "norace"
    assert _run(files, out, "--episodes", "4", "--final-top-k", "0", "--no-test") == 0
    methods = json.loads((out / "report.json").read_text())["budgets"][0]["methods"]
    assert not any("final_race" in m for m in methods.values())
    ck = json.loads((out / "checkpoint.json").read_text())
    assert "ddpg_race" not in next(iter(ck["budgets"].values()))


def test_resume_with_other_settings_is_refused(files, tmp_path, capsys):
    out = tmp_path / "r"
    assert _run(files, out, "--episodes", "2", "--baselines", "none", "--no-test") == 0
    capsys.readouterr()
    assert _run(files, out, "--episodes", "2", "--baselines", "none", "--no-test", "--resume", "--sigma", "0.5") == 2
    assert "other settings" in capsys.readouterr().err
    # a checkpoint of an older format is refused by name, not misread
    ck = json.loads((out / "checkpoint.json").read_text())
    ck["fingerprint"]["version"] = 1
    (out / "checkpoint.json").write_text(json.dumps(ck))
    assert _run(files, out, "--episodes", "2", "--baselines", "none", "--no-test", "--resume") == 2
    assert "checkpoint format (version 1" in capsys.readouterr().err


def test_resume_with_other_test_settings_keeps_the_search(files, tmp_path, capsys):
    out = tmp_path / "retest"
    assert _run(files, out, "--episodes", "3", "--baselines", "uniform") == 0
    capsys.readouterr()
    before = json.loads((out / "checkpoint.json").read_text())
    assert {v["n"] for v in before["test"].values()} == {48}
    assert _run(files, out, "--episodes", "3", "--baselines", "uniform", "--resume", "--test-n", "64",
                "--test-images", "10") == 0
    after = json.loads((out / "checkpoint.json").read_text())
    # the search is kept: same histories, no new reward certification
    assert after["budgets"] == before["budgets"]
    assert after["cache"]["computed"] == before["cache"]["computed"]
    # the test is redone with the new settings, for the same policies
    assert set(after["test"]) == set(before["test"])
    assert {v["n"] for v in after["test"].values()} == {64} and {v["images"] for v in after["test"].values()} == {10}
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["test_n"] == 64


@pytest.mark.parametrize("extra,needle", [
    (["--budget", "0.001"], "below the smallest"),
    (["--baselines", "bogus"], "unknown baseline"),
    (["--reward-images", "30"], "no test image"),
    (["--final-n", "100"], "final_n"),
])
def test_input_errors_exit_2(files, tmp_path, capsys, extra, needle):
    assert _run(files, tmp_path / "e", "--episodes", "2", *extra) == 2
    assert needle in capsys.readouterr().err


def test_formal_search_end_to_end(tmp_path, capsys):
    d = tmp_path
    onnx.save(identity_net(), d / "eye.onnx")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (16, 2)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", (x[:, 1] > x[:, 0]).astype(np.int64))
    code = cli.main(["search", str(d / "eye.onnx"), "--formal", "--budget", "0.2", "--out", str(d / "o"),
                     "--inputs", str(d / "x.npy"), "--labels", str(d / "y.npy"), "--reward-images", "8",
                     "--test-images", "8", "--episodes", "4", "--warmup", "2", "--hidden", "8",
                     "--random-trials", "2", "--quiet", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bitops_fraction"] <= 0.2 and set(summary["test"]["ddpg"]) == {"proved_fraction", "accuracy"}
    mapping = json.loads((d / "o" / "policy.json").read_text())
    assert mapping["layers"]["fc"]["act_bits"] is None
    assert "proved" in (d / "o" / "report.md").read_text()
