"""``paramverify compress`` end to end on a tiny teacher."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tests.compress.stops import StopAfter

from paramverify.cli import main
from paramverify.compress.onnxio import save_onnx

FAST = ["--episodes", "2", "--warmup", "1", "--finetune-steps", "2", "--batch", "16", "--eval-images", "40",
        "--test-images", "40", "--steps", "2", "--train-steps", "1", "--eps", "0.05", "--quiet"]


@pytest.fixture
def teacher_file(tiny_teacher, tmp_path):
    return str(save_onnx(tiny_teacher, tmp_path / "teacher.onnx"))


def test_compress_writes_subnet_report_plot_and_resumes(teacher_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["compress", teacher_file, "--budget", "0.5", "--out", str(out), "--baselines", "random,rule", *FAST]
    assert main([*args, "--json", "--save-agent", str(tmp_path / "agent.pt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["chosen"]["macs_fraction"] <= 0.5
    assert {k: v["evaluations"] for k, v in summary["methods"].items()} == {"agent": 2, "random": 2, "rule": 2}
    for name in ("subnet.onnx", "report.json", "report.md", "pareto.png", "checkpoint.pt"):
        assert (out / name).is_file()
    rep = json.loads((out / "report.json").read_text())
    assert rep["chosen"]["replay_max_abs_diff"] < 1e-3
    assert "| stage | width (teacher)" in (out / "report.md").read_text()
    assert set(rep["methods"]["random"]["paired_vs_agent"]) == {"only_a", "only_b", "p_value"}
    assert rep["methods"]["agent"]["warmup_evaluations"] == 1
    ort = pytest.importorskip("onnxruntime")
    x = np.zeros((2, 1, 8, 8), np.float32)
    assert ort.InferenceSession(str(out / "subnet.onnx")).run(None, {"x": x})[0].shape == (2, 10)

    # resume of a finished run: nothing is evaluated again, the same report comes out
    before = rep["methods"]
    assert main([*args, "--resume"]) == 0
    after = json.loads((out / "report.json").read_text())["methods"]
    assert [e["choices"] for e in after["agent"]["history"]] == [e["choices"] for e in before["agent"]["history"]]
    assert after["random"]["evaluations"] == 2

    # the same folder without --resume, or with other settings: one-line errors
    assert main(args) == 2
    assert main([*args[:-1], "--quiet", "--resume", "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "holds a run already" in err[0] and "other settings" in err[1]

    # fine-tuning the saved agent on the task: no warm-up
    out2 = tmp_path / "out2"
    assert main(["compress", teacher_file, "--budget", "0.5", "--out", str(out2), "--baselines", "none",
                 "--agent", str(tmp_path / "agent.pt"), *FAST, "--warmup", "5"]) == 0
    rep2 = json.loads((out2 / "report.json").read_text())
    assert rep2["methods"]["agent"]["warmup_evaluations"] == 0 and list(rep2["methods"]) == ["agent"]
    assert rep2["settings"]["screen"] == 32
    picks = [tuple(map(tuple, e["choices"])) for e in rep2["methods"]["agent"]["history"]]
    assert len(set(picks)) == len(picks)  # screening never evaluates a sub-network twice
    # --screen 1: the actor's noisy rollout as drawn (no critic screening); a bad value is a usage error
    out3 = tmp_path / "out3"
    assert main(["compress", teacher_file, "--budget", "0.5", "--out", str(out3), "--baselines", "none",
                 "--agent", str(tmp_path / "agent.pt"), *FAST, "--screen", "1"]) == 0
    assert json.loads((out3 / "report.json").read_text())["settings"]["screen"] == 1
    with pytest.raises(SystemExit):
        main(["compress", teacher_file, "--budget", "0.5", "--screen", "0"])


def test_foreign_teacher_and_impossible_budget_are_input_errors(teacher_file, tmp_path, capsys):
    model = onnx.load(teacher_file)
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    assert main(["compress", str(foreign), "--budget", "0.5", "--out", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot be read as stages" in err
    assert main(["compress", teacher_file, "--budget", "0.0001", "--out", str(tmp_path / "o2"), *FAST]) == 2
    assert "smallest sub-network" in capsys.readouterr().err


@pytest.mark.parametrize("stop_after", [1, 3])  # inside the agent's episodes / inside the baselines
def test_session_cut_short_and_resumed_equals_uninterrupted(teacher_file, tmp_path, stop_after):
    import argparse

    from paramverify.compress.cli import add_subparser, settings_from_args
    from paramverify.compress.session import CompressSession

    parser = argparse.ArgumentParser()
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compress", teacher_file, "--budget", "0.5", "--baselines", "random", *FAST])
    settings = settings_from_args(args)
    whole = CompressSession(args.teacher, settings, tmp_path / "a")
    assert whole.run()
    cut = CompressSession(args.teacher, settings, tmp_path / "b")
    assert not cut.run(StopAfter(stop_after))
    resumed = CompressSession(args.teacher, settings, tmp_path / "b", resume=True)
    assert resumed.run()

    def strip(methods):
        return {k: [{f: v for f, v in e.to_json().items() if f not in ("seconds", "index")} for e in evs]
                for k, evs in methods.items()}

    assert strip(resumed.methods()) == strip(whole.methods())
    assert len(resumed.methods()["random"]) == 2
