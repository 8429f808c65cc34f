"""Scale-out on Ray (issue 17): the optional extra, data-set runs, distributed
branch and bound, killed workers.

Tests that need Ray skip where it is not installed; the others check the
default path never imports it and ``--workers`` fails with one line.  One
local Ray instance (2 CPUs) serves the whole module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from paramverify import api
from paramverify.cli import main
from paramverify.distributed.dataset import RowJob, portable, run_rows
from paramverify.distributed.runtime import (
    MIN_TASKS_PER_BATCH,
    ParallelConfig,
    RayPool,
    chunk_size,
    pack,
    unpack,
)
from paramverify.options import Options
from tests.netgen import random_mlp

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray")
    model = d / "m.onnx"
    onnx.save(random_mlp(3, [4, 8, 8, 3]), model)
    rows = np.random.default_rng(7).uniform(-1, 1, size=(6, 4))
    np.save(d / "rows.npy", rows)
    return {"model": str(model), "rows": str(d / "rows.npy"), "dir": d}


@pytest.fixture(scope="module")
def ray_up():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out):
    """The command's one JSON line (a shared test Ray instance may print notices of workers
    killed by earlier tests into the captured stdout; a CLI-started instance cannot)."""
    return json.loads(out.strip().splitlines()[-1])


def strip_times(obj):
    """Results without wall-clock fields (the only thing a worker count may change)."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k not in ("time_s", "time", "workers")}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


# ------------------------------------------------------------ without Ray
def test_default_path_never_imports_ray(files):
    code = (  # Ray made unimportable, as when it is not installed: the default path must not need it
        "import sys; sys.modules['ray'] = None; from paramverify.cli import main; "
        f"rc = main(['verify', {files['model']!r}, '--property', 'label', '--delta', '0.01', '--x0', {files['rows']!r}, '--quiet']); "
        "print('RAY' if sys.modules.get('ray') is not None else 'NORAY', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip().splitlines()[-1] in ("NORAY 0", "NORAY 1", "NORAY 3"), out.stdout + out.stderr


def test_workers_without_ray_is_one_line_exit_2(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as when it is not installed
    code, out, err = run_cli(capsys, "verify", files["model"], "--property", "label", "--delta", "0.01", "--x0", "0.1,0.2,0.3,0.4", "--workers", "2")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert 'pip install -e ".[ray]"' in err


def test_flag_validation(files, capsys):
    code, _, err = run_cli(capsys, "verify", files["model"], "--property", "label", "--delta", "0.01", "--x0", "0.1,0.2,0.3,0.4", "--workers", "0")
    assert code == 2 and "workers: must be >= 1" in err
    code, _, err = run_cli(capsys, "verify", files["model"], "--property", "label", "--delta", "0.01", "--x0", "0.1,0.2,0.3,0.4",
                           "--workers", "2", "--ray-address", "auto")
    assert code == 2 and "conflicts with --ray-address" in err
    code, _, err = run_cli(capsys, "search", files["model"], "--budget", "0.5", "--workers", "2", "--device", "cuda")
    assert code == 2 and "Ray tasks run on the workers' CPUs" in err and err.strip().count("\n") == 0
    code, _, err = run_cli(capsys, "bound", files["model"], "--property", "eps", "--delta", "0.01", "--domain", "0:1,0:1,0:1,0:1",
                           "--workers", "2", "--boxes-per-task", "0")
    assert code == 2 and "boxes_per_task: must be an integer >= 1" in err and err.strip().count("\n") == 0


def test_boxes_per_task_reaches_the_pool():
    from paramverify.cli import build_parser
    from paramverify.distributed.runtime import parallel_config

    for cmd in ("verify", "bound"):
        args = build_parser().parse_args([cmd, "m.onnx", "--property", "eps", "--workers", "2", "--boxes-per-task", "8"])
        assert parallel_config(args).boxes_per_task == 8
        args = build_parser().parse_args([cmd, "m.onnx", "--property", "eps", "--workers", "2"])
        assert parallel_config(args).boxes_per_task == ParallelConfig.boxes_per_task == 32


def test_dataset_rows_single_process_in_order(files, capsys):
    code, out, _ = run_cli(capsys, "verify", files["model"], "--property", "label", "--delta", "0.02", "--x0", files["rows"], "--json", "--quiet")
    payload = json.loads(out)
    assert payload["inputs"] == 6 and [r["index"] for r in payload["results"]] == list(range(6))
    rows = np.load(files["rows"])
    for i, r in enumerate(payload["results"]):  # each row equals a one-input run on that row
        one = api.verify(api.make_problem(files["model"], delta=0.02, x0=rows[i]), "label")
        assert r["verdict"] == one.name
    assert code == (1 if payload["summary"]["falsified"] else 3 if payload["summary"]["unknown"] else 0)


def test_packing_keeps_read_only_mappings(files):
    problem = api.make_problem(files["model"], bits=8, x0=[0.1, 0.2, 0.3, 0.4])
    back = unpack(pack(problem))
    assert type(back.box.lo) is type(problem.box.lo)
    assert all(np.array_equal(back.box.lo[n], problem.box.lo[n]) for n in problem.box.names)
    assert np.array_equal(back.graph.evaluate(problem.region.lo), problem.graph.evaluate(problem.region.lo))


def test_branch_and_bound_step_is_one_round_trip_of_fixed_chunks(files):
    """Each search step hands its whole bound work (interval bound, cap, CROWN on the boxes
    it cannot discard) to the pool once: one round trip per step, not one per pass."""

    class Chunks:  # what RayPool.spread does, here: rows in chunks of 4, scalars whole
        def __init__(self):
            self.calls, self.sizes = 0, []

        def spread(self, fn):
            def run(*args):
                self.calls += 1
                n = len(args[0])
                rows = [isinstance(a, np.ndarray) and a.ndim >= 1 and len(a) == n for a in args]
                self.sizes += [min(4, n - s) for s in range(0, n, 4)]
                return np.concatenate([fn(*[a[s:s + 4] if r else a for a, r in zip(args, rows)]) for s in range(0, n, 4)], axis=-1)
            return run

    class Count:
        updates = 0

        def update(self, message, lower=None, upper=None):
            Count.updates += 1

    problem = api.make_problem(files["model"], delta=0.05, domain=[(-1.0, 1.0)] * 4)
    pool = Chunks()
    got = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=400, pool=pool, progress=Count()))
    ref = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=400))
    assert pool.calls > 3 and pool.calls <= Count.updates  # the root, then at most one per loop iteration
    assert max(pool.sizes) == 4
    assert got.lower <= ref.upper + 1e-9 and ref.lower <= got.upper + 1e-9


def test_branch_and_bound_probes_while_the_next_step_is_computed(files, monkeypatch):
    """With a pool that sends a batch without waiting (RayPool.start), step t+1's tasks are sent
    before the driver waits for step t, and step t's probe runs while step t+1 is computed; the
    numbers are those of one process (the same sequence of steps)."""
    from paramverify.bounds import searches

    events = []

    class Async:
        def start(self, fn):
            def begin(*args):
                k = sum(e[0] == "send" for e in events)
                events.append(("send", k))
                out = fn(*args)
                return lambda: events.append(("wait", k)) or out
            return begin

    real = searches.change_probe

    def recording(problem, *a):
        inner = real(problem, *a)

        def probe(*args):
            events.append(("probe", None))
            return inner(*args)
        return probe

    monkeypatch.setattr(searches, "change_probe", recording)
    problem = api.make_problem(files["model"], delta=0.05, domain=[(-1.0, 1.0)] * 4)
    got = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=2000, pool=Async()))
    ref = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=2000))
    outstanding, overlapped, waits = set(), 0, []
    for kind, k in events:
        if kind == "send":
            outstanding.add(k)
        elif kind == "wait":
            outstanding.discard(k)
            waits.append(k)
        elif outstanding:
            overlapped += 1
    assert overlapped >= 3 and waits == sorted(waits)  # steps are settled in the order they were sent
    assert (got.lower, got.upper, got.method) == (ref.lower, ref.upper, ref.method)


# ------------------------------------------------------------- with Ray
def test_dataset_identical_with_and_without_workers(files, capsys, ray_up):
    argv = ["bound", files["model"], "--property", "eps", "--bits", "6", "--x0", files["rows"], "--json", "--quiet", "--timeout", "30"]
    code1, out1, _ = run_cli(capsys, *argv)
    code2, out2, _ = run_cli(capsys, *argv, "--workers", "2")
    assert code1 == code2 == 0
    one, two = last_json(out1), last_json(out2)
    assert two["workers"] == 2 and two["finished"] == 6
    assert strip_times(one["results"]) == strip_times(two["results"])


def _bnb(model, pool):
    problem = api.make_problem(model, delta=0.05, domain=[(-1.0, 1.0)] * 4)
    return api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=1500, pool=pool))


def test_distributed_branch_and_bound_same_with_1_and_2_workers(files, ray_up):
    one = _bnb(files["model"], RayPool(ParallelConfig(workers=1, cpus_per_task=2), ray_up))  # one task at a time
    two = _bnb(files["model"], RayPool(ParallelConfig(workers=2), ray_up))
    local = _bnb(files["model"], None)
    assert (one.lower, one.upper, one.method) == (two.lower, two.upper, two.method)
    # the single-process run batches differently (rounding differs in the last bits): both brackets are sound
    assert one.lower <= local.upper + 1e-9 and local.lower <= one.upper + 1e-9


def test_distributed_branch_and_bound_bracket_monotone(files, ray_up):
    seen = []

    class Record:
        def update(self, message, lower=None, upper=None):
            if upper is not None:
                seen.append((lower, upper))

    problem = api.make_problem(files["model"], delta=0.05, domain=[(-1.0, 1.0)] * 4)
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    b = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=2000, pool=pool, progress=Record()))
    assert pool.stats["tasks"] > 1 and len(seen) > 3
    lows, ups = [s[0] for s in seen], [s[1] for s in seen]
    assert all(a <= c for a, c in zip(lows, lows[1:])), "the proved lower end went down"
    assert all(lo <= up for lo, up in zip(lows, ups))
    assert b.lower <= b.upper


def test_killed_worker_is_retried_result_unchanged(files, ray_up, tmp_path):
    rows = np.load(files["rows"])
    job = RowJob(api.make_problem(files["model"], delta=0.02, x0=rows[0]), "verify", "label", portable(Options()))
    reference, stopped = run_rows(job, rows, ParallelConfig())
    assert stopped is None

    marker = str(tmp_path)

    def crashing(item):  # kills its worker process the first time it sees rows 1 and 4: Ray must retry
        import os as os_
        from pathlib import Path as Path_

        flag = Path_(marker) / f"seen{item[0]}"
        if item[0] in (1, 4) and not flag.exists():
            flag.write_text("x")
            os_._exit(1)
        return job(item)

    pool = RayPool(ParallelConfig(workers=2, max_retries=2), ray_up)
    got = pool.map(crashing, [(i, rows[i]) for i in range(len(rows))])
    assert (tmp_path / "seen1").exists() and (tmp_path / "seen4").exists()  # the workers really died
    assert strip_times([g[1] for g in got]) == strip_times([r[1] for r in reference])


def test_distributed_bnb_deadline_returns_sound_bracket(files, ray_up):
    import time

    problem = api.make_problem(files["model"], delta=0.05, domain=[(-1.0, 1.0)] * 4)
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    t0 = time.monotonic()
    cut = api.bound(problem, "eps", options=Options(timeout_s=1.5, tolerance=0.0, pool=pool))
    took = time.monotonic() - t0
    ref = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=3000))
    assert not cut.complete and took < 15
    assert cut.lower <= ref.upper + 1e-9 and ref.lower <= cut.upper + 1e-9


class _InterruptAfter:
    """A progress sink that raises KeyboardInterrupt (a Ctrl-C) at its n-th update."""

    def __init__(self, n):
        self.n = n

    def update(self, message, lower=None, upper=None):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def _interrupted_search(files, ray_up):
    """A distributed branch and bound interrupted after 6 progress updates: (problem, its bracket)."""
    problem = api.make_problem(files["model"], delta=0.05, domain=[(-1.0, 1.0)] * 4)
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    return problem, api.bound(problem, "eps", options=Options(timeout_s=None, tolerance=0.0, pool=pool,
                                                                 progress=_InterruptAfter(6)))


def test_distributed_bnb_interrupt_returns_proved_so_far(files, ray_up):
    problem, cut = _interrupted_search(files, ray_up)
    ref = api.bound(problem, "eps", options=Options(timeout_s=None, max_splits=3000))
    assert not cut.complete and "interrupted" in (cut.note + cut.method)
    assert cut.lower <= ref.upper + 1e-9 and ref.lower <= cut.upper + 1e-9


def test_lost_worker_beyond_retries_reports_finished_rows(files, ray_up, tmp_path):
    rows = np.load(files["rows"])
    job = RowJob(api.make_problem(files["model"], delta=0.02, x0=rows[0]), "verify", "label", portable(Options()))
    reference, _ = run_rows(job, rows, ParallelConfig())

    def dies_on_row_3(item):
        import os as os_

        if item[0] == 3:
            os_._exit(1)
        return job(item)

    got, stopped = run_rows(dies_on_row_3, rows, ParallelConfig(workers=2, max_retries=0))
    assert stopped is not None and "lost" in stopped
    assert got[3] is None
    assert all(g is None or strip_times(g[1]) == strip_times(r[1]) for g, r in zip(got, reference))


def test_chunk_size_cuts_small_batches_into_several_tasks():
    """A search's first steps (1, 2, 4, ... boxes) go out in at least MIN_TASKS_PER_BATCH tasks where
    they have the rows, full batches in chunks of boxes_per_task; the size depends on the batch
    and boxes_per_task only (never on the number of workers)."""
    assert MIN_TASKS_PER_BATCH == 4
    assert [chunk_size(n, 32) for n in (1, 2, 4, 8, 16, 64, 127, 128, 129, 1000)] == [1, 1, 1, 2, 4, 16, 31, 32, 32, 32]
    assert [chunk_size(n, 3) for n in (1, 5, 12, 13, 100)] == [1, 1, 3, 3, 3]
    for n in range(1, 300):
        for k in (1, 4, 32):
            c = chunk_size(n, k)
            assert 1 <= c <= k and -(-n // c) >= min(n, MIN_TASKS_PER_BATCH)


def test_a_small_batch_is_spread_over_the_workers(ray_up):
    """Eight rows at 32 boxes per task are four tasks of two rows, joined back in order."""
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    lo, hi = np.zeros((8, 3)), np.arange(24.0).reshape(8, 3)
    before = pool.stats["tasks"]
    got = pool.spread(lambda a, b: (b - a).sum(axis=1))(lo, hi)
    assert np.array_equal(got, hi.sum(axis=1)) and pool.stats["tasks"] - before == 4


def test_branch_and_bound_falls_back_to_the_driver_when_workers_are_lost(ray_up):
    driver = os.getpid()

    def bound(lo, hi):
        import os as os_

        if os_.getpid() != driver:  # on a Ray worker: die, every time
            os_._exit(1)
        return hi.sum(axis=1) - lo.sum(axis=1)

    pool = RayPool(ParallelConfig(workers=2, max_retries=0, boxes_per_task=4), ray_up)
    lo, hi = np.zeros((10, 3)), np.arange(30.0).reshape(10, 3)
    spread = pool.spread(bound)
    assert np.array_equal(spread(lo, hi), bound(lo, hi))
    assert pool.stats["fallback_batches"] == 1
    assert np.array_equal(spread(lo, hi), bound(lo, hi))  # later batches stay on the driver


def test_driver_blas_runs_one_thread_while_a_batch_is_in_flight(ray_up):
    """The driver's BLAS threads spin on the cores the workers need (docs/scaling.md): held to
    one thread from sending a batch to receiving it, then restored; an interrupted run's
    batch never waited for is released when the pool closes."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]

    before = blas_threads()
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    begin = pool.start(lambda lo, hi: hi.sum(axis=1) - lo.sum(axis=1))
    lo, hi = np.zeros((40, 3)), np.ones((40, 3))
    pending = begin(lo, hi)
    assert blas_threads() == [1] * len(before)
    assert np.array_equal(pending(), np.full(40, 3.0))
    assert blas_threads() == before
    begin(lo, hi)  # sent, never waited for
    assert blas_threads() == [1] * len(before)
    pool.release()
    assert blas_threads() == before


def test_bits_one_task_per_tensor_identical(files, capsys, ray_up):
    rows = np.load(files["rows"])
    np.save(files["dir"] / "two.npy", rows[:2])
    argv = ["bits", files["model"], "--inputs", str(files["dir"] / "two.npy"), "--params", "W1,W2,W3", "--max-bits", "8",
            "--no-delta", "--json", "--quiet"]
    code1, out1, _ = run_cli(capsys, *argv)
    code2, out2, _ = run_cli(capsys, *argv, "--workers", "2")
    one, two = last_json(out1), last_json(out2)
    assert code1 == code2
    assert len(one["per_tensor"]) == 3 and one["queries"] == two["queries"]
    assert strip_times(one) == strip_times(two)


def test_formal_search_reward_images_as_tasks(ray_up):
    pytest.importorskip("torch")
    from paramverify.ir import load_model
    from paramverify.search.formal import FormalConfig, FormalEvaluator
    from paramverify.search.space import BitPolicy
    from tests.search.nets import tiny_cnn

    proto = tiny_cnn(5)
    x = np.random.default_rng(0).uniform(0, 1, (6, 36))
    ev = FormalEvaluator(proto, x, np.argmax(load_model(proto).evaluate(x), axis=1), FormalConfig(query_timeout_s=5.0))
    policy = BitPolicy(("conv", "fc1", "fc2"), (6, 6, 6), (None, None, None))
    one = ev.evaluate(policy)
    ev.pool = pool = RayPool(ParallelConfig(workers=2), ray_up)
    two = ev.evaluate(policy)
    assert pool.stats["tasks"] == 6
    assert (one.reward, dict(one.metrics), one.samples) == (two.reward, dict(two.metrics), two.samples)


def test_tasks_run_with_the_worker_malloc_settings(ray_up):
    """Tasks (map and spread) run in workers whose malloc keeps freed memory between tasks
    (WORKER_ENV): with glibc's defaults each 16-box branch-and-bound task took its
    temporaries from the kernel again (10,000 page faults, ~20% more CPU per box)."""
    from paramverify.distributed.runtime import WORKER_ENV

    def env(*_):
        return [os.environ.get(k) for k in sorted(WORKER_ENV)]

    want = [WORKER_ENV[k] for k in sorted(WORKER_ENV)]
    pool = RayPool(ParallelConfig(workers=2), ray_up)
    assert pool.map(env, [0, 1]) == [want, want]

    def rows(lo):
        return np.full(len(lo), float(env() == want))

    assert pool.spread(rows)(np.zeros((2, 1))).tolist() == [1.0, 1.0]


def test_input_error_inside_a_task_is_reraised_as_itself(ray_up):
    from paramverify.errors import SpecError

    def bad(item):
        if item == 2:
            raise SpecError("x0", "row 2 is bad", "fix it")
        return item

    with pytest.raises(SpecError, match="row 2 is bad"):
        RayPool(ParallelConfig(workers=2), ray_up).map(bad, [0, 1, 2, 3])


def test_errors_with_custom_init_survive_pickling():
    import pickle

    from paramverify.errors import SpecError, UnsupportedOpsError

    e = pickle.loads(pickle.dumps(SpecError("x0", "is bad", "fix it")))
    assert (type(e), e.field, e.problem, e.fix, str(e)) == (SpecError, "x0", "is bad", "fix it", "x0: is bad (fix it)")
    u = pickle.loads(pickle.dumps(UnsupportedOpsError([("Exp", "e1")], "hint")))
    assert u.nodes == (("Exp", "e1"),) and str(u).endswith("; hint")


def test_dataset_interrupt_reports_finished_rows_exit_130(files, capsys, monkeypatch):
    original = RowJob.__call__

    def interrupted_at_row_3(self, item):
        if item[0] == 3:
            raise KeyboardInterrupt
        return original(self, item)

    monkeypatch.setattr(RowJob, "__call__", interrupted_at_row_3)
    code, out, err = run_cli(capsys, "verify", files["model"], "--property", "label", "--delta", "0.02", "--x0", files["rows"], "--json", "--quiet")
    payload = last_json(out)
    assert code == 130 and payload["stopped"] == "interrupted" and payload["finished"] == 3
    assert [r["verdict"] == "not-run" for r in payload["results"]] == [False] * 3 + [True] * 3
    assert "3 of 6 inputs finished" in err


def test_unreachable_cluster_is_one_line_exit_2(files, capsys):
    pytest.importorskip("ray")
    code, out, err = run_cli(capsys, "verify", files["model"], "--property", "label", "--delta", "0.01", "--x0", files["rows"],
                             "--ray-address", "127.0.0.1:1", "--quiet")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "cannot reach the Ray cluster at 127.0.0.1:1" in err


# ----------------------------------------------------------- smooth certify
def test_smooth_certify_identical_without_ray_1_and_2_workers(files, capsys, monkeypatch, ray_up):
    pytest.importorskip("torch")
    from paramverify.smoothing import cli as smooth_cli
    from paramverify.smoothing.data import MNIST_CNN_ONNX, load_test_samples

    x, y = load_test_samples("mnist")
    np.save(files["dir"] / "sx.npy", x[:4])
    np.save(files["dir"] / "sy.npy", y[:4])
    argv = ["smooth", "certify", str(MNIST_CNN_ONNX), "--sigma", "0.25", "--n", "300", "--n0", "20", "--alpha", "0.01",
            "--inputs", str(files["dir"] / "sx.npy"), "--labels", str(files["dir"] / "sy.npy"), "--seed", "5", "--json", "--quiet"]
    real = smooth_cli.parallel_config
    # the shared test instance has 2 CPUs: one worker is emulated by tasks that reserve both
    monkeypatch.setattr(smooth_cli, "parallel_config",
                        lambda args: replace(real(args), cpus_per_task=2.0) if args.workers == 1 else real(args))
    runs = []
    for extra in ([], ["--workers", "1"], ["--workers", "2"]):
        code, out, _ = run_cli(capsys, *argv, *extra)
        assert code == 0
        runs.append(last_json(out))
    assert [r["idx"] for r in runs[0]["results"]] == [0, 1, 2, 3] and runs[2]["workers"] == 2
    assert strip_times(runs[0]) == strip_times(runs[1]) == strip_times(runs[2])


def test_smooth_workers_without_ray_is_one_line_exit_2(files, capsys, monkeypatch):
    pytest.importorskip("torch")
    from paramverify.smoothing.data import MNIST_CNN_ONNX, load_test_samples

    np.save(files["dir"] / "s1.npy", load_test_samples("mnist")[0][:2])
    monkeypatch.setitem(sys.modules, "ray", None)  # as when Ray is not installed
    code, out, err = run_cli(capsys, "smooth", "certify", str(MNIST_CNN_ONNX), "--sigma", "0.25", "--n", "20", "--n0", "5",
                             "--inputs", str(files["dir"] / "s1.npy"), "--workers", "2", "--quiet")
    assert code == 2 and out == "" and err.strip().count("\n") == 0 and 'pip install -e ".[ray]"' in err


def test_smooth_inputs_do_not_depend_on_each_other():
    """Each input's noise comes from (seed, index) alone: certifying input 2 alone, or the
    inputs in reverse order, gives what the whole run gives (what makes workers not matter)."""
    torch = pytest.importorskip("torch")
    from paramverify.smoothing.core import SmoothOptions, input_seed
    from paramverify.smoothing.jobs import InputJob

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    xs = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    job = InputJob("certify", model, None, 3, SmoothOptions(sigma=0.5), 9, 200, 0.01, 20)
    forward = [job((i, xs[i]))[0] for i in range(4)]
    backward = [job((i, xs[i]))[0] for i in reversed(range(4))][::-1]
    assert strip_times(forward) == strip_times(backward)
    assert len({input_seed(9, i) for i in range(1000)}) == 1000 and input_seed(9, 0) != input_seed(10, 0)


# ------------------------------------------------------------------ compare
def test_compare_identical_without_ray_1_and_2_workers(files, capsys, monkeypatch, ray_up):
    from paramverify import compare

    models = []
    for seed in (1, 3):
        models.append(str(files["dir"] / f"relu{seed}.onnx"))
        onnx.save(random_mlp(seed, [2, 3, 2], "relu"), models[-1])
    argv = ["compare", "--models", *models, "--domain=-1:1", "--max-points", "4", "--map-points", "10", "--deltas", "0.01,0.03",
            "--bits", "8", "--timeout", "120", "--tolerance", "0.05", "--json", "--quiet"]
    real = compare.parallel_config
    monkeypatch.setattr(compare, "parallel_config",  # one worker on the shared 2-CPU instance: tasks reserve both CPUs
                        lambda args: replace(real(args), cpus_per_task=2.0) if args.workers == 1 else real(args))
    on_pool, tasks = compare._run_on_pool, []

    def spy(pool, *a):
        got = on_pool(pool, *a)
        tasks.append(pool.stats["tasks"])
        return got

    monkeypatch.setattr(compare, "_run_on_pool", spy)
    runs = []
    for extra in ([], ["--workers", "1"], ["--workers", "2"]):
        code, out, _ = run_cli(capsys, *argv, "--out", str(files["dir"] / f"cmp{len(runs)}"), *extra)
        assert code == 0
        runs.append(last_json(out))
    assert runs[0]["complete"] and not runs[0]["incomplete"]  # no query stopped at its time limit
    assert [m["name"] for m in runs[2]["models"]] == ["relu1", "relu3"] and tasks == [2, 2]  # one task per model
    assert strip_times(runs[0]) == strip_times(runs[1]) == strip_times(runs[2])


def test_an_interrupted_search_never_cancels_ray_tasks(files, ray_up, monkeypatch):
    """Cancelling a task whose reply is on its way (with or without ``force``) aborted the whole
    driver in Ray 2.60, twice in this file's interrupt test: in-flight results are dropped instead."""
    calls = []
    monkeypatch.setattr(ray_up, "cancel", lambda *a, **kw: calls.append((a, kw)))

    _, cut = _interrupted_search(files, ray_up)
    assert not cut.complete and "interrupted" in (cut.note + cut.method)
    assert calls == []
