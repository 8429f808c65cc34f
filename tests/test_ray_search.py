"""Scale-out on Ray (issue 17, item 4): the search evaluations as tasks.

``paramverify compress`` (baseline candidates, certified-reward images) and the
sampled reward of ``paramverify search`` (float certificates, quantized labels)
give the same report with and without workers.  The fixtures (one local Ray
instance with 2 CPUs for the module) come from ``tests/test_ray.py``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import onnx
import pytest

from paramverify.distributed.runtime import ParallelConfig, RayPool
from tests.test_ray import files, ray_up, run_cli  # noqa: F401  (fixtures)


# ----------------------------------------------------------------- compress
COMPRESS_FAST = ["--budget", "0.5", "--episodes", "2", "--warmup", "1", "--finetune-steps", "2", "--batch", "16",
                 "--eval-images", "40", "--test-images", "40", "--steps", "2", "--train-steps", "1", "--eps", "0.05",
                 "--baselines", "random,rule", "--reward", "certified", "--sigma", "0.1", "--cert-radius", "0",
                 "--cert-n", "20", "--quiet"]


@pytest.fixture(scope="module")
def compress_teacher(files):
    """A tiny two-stage teacher on digits, briefly PGD-trained (a few seconds)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from paramverify.compress.arch import ArchSpec, StageSpec
    from paramverify.compress.onnxio import save_onnx
    from paramverify.compress.tasks import Task, load_task_data
    from paramverify.compress.train import TrainConfig, train_teacher

    data = load_task_data("digits", eval_images=40, test_images=40)
    arch = ArchSpec((1, 8, 8), 10, (StageSpec(6, 2, 1), StageSpec(12, 2, 2)))
    net = train_teacher(arch, data, Task(eps=0.05, steps=2, train_steps=1), TrainConfig(steps=30, batch=32), seed=0)
    return str(save_onnx(net, files["dir"] / "teacher.onnx"))


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("seconds", "onnx")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


def test_compress_identical_without_ray_1_and_2_workers(files, compress_teacher, capsys, monkeypatch, ray_up):
    """The baselines' candidates (one task each) and the certified reward's images as tasks:
    the report equals the one-process report, evaluation indices included."""
    from paramverify.compress import cli as compress_cli

    real = compress_cli.parallel_config
    monkeypatch.setattr(compress_cli, "parallel_config",  # one worker on the shared 2-CPU instance: tasks reserve both CPUs
                        lambda args: replace(real(args), cpus_per_task=2.0) if args.workers == 1 else real(args))
    sent, completed = [], RayPool.completed

    def spy(self, fn, items):
        sent.append((type(fn).__name__, len(items)))
        return completed(self, fn, items)

    monkeypatch.setattr(RayPool, "completed", spy)
    reports = []
    for extra in ([], ["--workers", "1"], ["--workers", "2"]):
        out = files["dir"] / f"compress{len(reports)}"
        code, _, _ = run_cli(capsys, "compress", compress_teacher, "--out", str(out), *COMPRESS_FAST, *extra)
        assert code == 0
        reports.append(json.loads((out / "report.json").read_text()))
    assert [e["index"] for m in ("agent", "random", "rule") for e in reports[2]["methods"][m]["history"]] == list(range(6))
    assert _without_times(reports[0]) == _without_times(reports[1]) == _without_times(reports[2])
    assert sent.count(("EvalJob", 2)) == 4  # random and rule: one task per candidate, in both runs with workers
    assert any(name == "CertJob" for name, _ in sent)  # the agent's rewards: the images as tasks


def test_compress_workers_without_ray_is_one_line_exit_2(compress_teacher, files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as when Ray is not installed
    code, out, err = run_cli(capsys, "compress", compress_teacher, "--out", str(files["dir"] / "compress_noray"),
                             *COMPRESS_FAST, "--workers", "2")
    assert code == 2 and out == "" and err.strip().count("\n") == 0 and 'pip install -e ".[ray]"' in err


def test_compress_plan_lost_cluster_keeps_the_finished_prefix_in_order(ray_up):
    from paramverify.compress.jobs import evaluate_plan
    from paramverify.errors import ClusterError

    class Env:  # an environment whose candidate 3 kills its worker
        pool = None

        def __init__(self):
            self.evaluations = 0

        def measure(self, c):
            if c == 3:
                import os as os_

                os_._exit(1)
            return 10 * c

        def number(self, v):
            self.evaluations += 1
            return self.evaluations - 1, v

    got = []
    with pytest.raises(ClusterError, match="lost"):
        evaluate_plan(Env(), [0, 1, 2, 3, 4, 5], got.append, RayPool(ParallelConfig(workers=2, max_retries=0), ray_up))
    assert len(got) <= 3 and got == [(i, 10 * i) for i in range(len(got))]


# ------------------------------------------------------- search, sampled reward
def test_sampled_search_reward_identical_with_tasks(ray_up):
    """The float certificates (groups of images) and each policy's quantized labels (whole
    batches of the one-process layout, here batches that straddle images) as tasks: every
    number equals the one-process evaluator's, for the search's n_q and the race's other n."""
    torch = pytest.importorskip("torch")
    from paramverify.search.reward import RewardConfig, SmoothingEvaluator
    from paramverify.search.space import BitPolicy
    from paramverify.smoothing.onnx_torch import load_onnx
    from tests.search.nets import labelled_inputs, tiny_cnn

    proto = tiny_cnn(0)
    model = load_onnx(proto)
    x, y = labelled_inputs(proto, 10, seed=1)
    cfg = RewardConfig(sigma=0.25, n0=16, float_n=200, n_q=100, batch_size=64, seed=11)
    one = SmoothingEvaluator(model, x, y, torch.from_numpy(x), cfg, 4)
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    tasks = SmoothingEvaluator(model, x, y, torch.from_numpy(x), cfg, 4, pool=pool)
    assert pool.stats["tasks"] > 1
    for k in ("predict", "pa_lower", "radius", "labels"):
        assert np.array_equal(one._float[k], tasks._float[k]), k
    for bits in ((8, 8, 8), (3, 2, 4)):
        policy = BitPolicy.from_bits(("conv", "fc1", "fc2"), bits)
        for n in (100, 30, 150):  # n_q (one group of all images), the race's groups of 2 and of 1 image
            sent = pool.stats["tasks"]
            a, b = one.evaluate_n(policy, n), tasks.evaluate_n(policy, n)
            assert pool.stats["tasks"] > sent + 1
            assert a.reward == b.reward and dict(a.metrics) == dict(b.metrics) and a.samples == b.samples
            for u, v in zip(one.per_image(policy, n), tasks.per_image(policy, n)):
                assert np.array_equal(u, v)


def _without_clock(obj):
    if isinstance(obj, dict):
        return {k: _without_clock(v) for k, v in obj.items() if "seconds" not in k and "time" not in k and k not in ("workers", "path")}
    if isinstance(obj, list):
        return [_without_clock(v) for v in obj]
    return obj


def test_sampled_search_cli_identical_with_2_workers(files, capsys, ray_up):
    pytest.importorskip("torch")
    from tests.search.nets import labelled_inputs, tiny_cnn

    proto = tiny_cnn(7)
    onnx.save(proto, files["dir"] / "cnn.onnx")
    x, y = labelled_inputs(proto, 18, seed=8)
    np.save(files["dir"] / "cx.npy", x)
    np.save(files["dir"] / "cy.npy", y)
    reports = []
    for extra in ([], ["--workers", "2"]):
        out = files["dir"] / f"search{len(reports)}"
        code, _, _ = run_cli(capsys, "search", str(files["dir"] / "cnn.onnx"), "--out", str(out), "--inputs", str(files["dir"] / "cx.npy"),
                             "--labels", str(files["dir"] / "cy.npy"), "--budget", "0.04", "--episodes", "3", "--warmup", "2",
                             "--hidden", "16", "--reward-images", "10", "--reward-n", "32", "--float-n", "64", "--n0", "8",
                             "--test-images", "8", "--test-n", "48", "--test-n0", "8", "--random-trials", "2", "--batch", "50",
                             "--quiet", *extra)
        assert code == 0
        reports.append(json.loads((out / "report.json").read_text()))
    assert _without_clock(reports[0]) == _without_clock(reports[1])
