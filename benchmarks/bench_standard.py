"""Networks the engine was not trained for: random He-initialised MLPs and standard-trained CNNs.

    python benchmarks/bench_standard.py [--models random,cnn] [--inputs 5] [--timeout 30] [--cnn-images 50]

``random``
    784-64-64-1 ReLU MLP, He initialisation (weights N(0, 2/fan_in), biases 0,
    numpy seed 1400), inputs uniform in [0, 1] (seed 1401 + i), ``|p - p0| <= 1e-3``
    on every weight and bias.  Per input: the largest output change (MaxEpsilon
    bracket) with a 30 s budget; target upper / best lower <= 1.2 within 30 s.
``cnn``
    the standard-trained (cross-entropy only) MNIST CNN of ``train_std_cnn.py``
    (trained at run time into ``models/.cache/`` when absent), every tensor,
    Conv weights included, in the symmetric per-tensor 8-bit rounding box, on
    held-out images.  Per image: the largest output change (target <= 1.2x the
    best lower bound in 30 s) and the label verdict (target: verified or a
    replayed counterexample for >= 90% of the images, 30 s each).

Every row also carries the reference attack (``ref_pgd.py``: plain PGD, 20
restarts x 200 steps from random points of the box, the attack the falsifier
must never lose to; each part records ``never_below_reference``, whether the
falsifier's lower end stayed at or above it on every row) and, where it applies,
auto_LiRPA's figure quoted from ``../shared/ANCHORS.md`` (auto_LiRPA is not installable here, so it is quoted,
not re-run; its random net is another draw of the same recipe).  Wall time and
this process's CPU time are both recorded: the machine is shared, so wall
times include waiting for a core.

The random MLP's rows also carry the exact answer where a MILP solver finds it
(``ref_milp.py``: HiGHS on the exact formulation; its optimum is unproved, but the
model evaluated at the concrete parameters built from its maximiser, ``milp_witness``,
is a true lower end): it shows how far each end of our bracket is from the truth.

``--models random`` (or ``cnn``) re-runs one part and keeps the other part of an
existing ``--out`` file as it was (the JSON lists such parts in ``kept_from_earlier_run``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_common import RatioClock, machine_info, write_results
from ref_milp import max_change
from ref_pgd import reference_pgd

from paramverify import api
from paramverify.bounds.local import label_rows
from paramverify.bounds.pgd import change_objective, label_objective
from paramverify.ir import load_model
from paramverify.options import Options

ANCHORS = {
    "random": "auto_LiRPA 0.7.1 on a random 784-64-64-1 MLP of the same recipe (He init, input uniform in [0,1], "
              "delta 1e-3 on every parameter, 2026-12): IBP 8.85, CROWN 5.69 (0.7 s); best attack found 1.81",
    "cnn": "auto_LiRPA 0.7.1: Conv weight perturbation not implemented (\"Weight perturbation for convolution "
           "layers has not been implemented\"); no figure exists",
}
TARGET_RATIO = 1.2
SIZES = (784, 64, 64, 1)
SEED = 1400
#: HiGHS's time limit per row and sign (the reference only; it solved every row in 5-60 s)
MILP_LIMIT_S = 300.0


def random_mlp_model(seed: int = SEED) -> onnx.ModelProto:
    """784-64-64-1 ReLU MLP, weights N(0, 2/fan_in) (He), biases 0, float32."""
    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], [], "x"
    for i, (fi, fo) in enumerate(itertools.pairwise(SIZES)):
        w = (rng.standard_normal((fo, fi)) * np.sqrt(2.0 / fi)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(np.zeros(fo, np.float32), f"b{i}")]
        out = f"h{i}" if i < len(SIZES) - 2 else "y"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out + ("_pre" if out != "y" else "")], transB=1))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out]))
        cur = out
    graph = helper.make_graph(nodes, "he_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", SIZES[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", SIZES[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _eps_row(problem: Any, timeout: float, seed: int) -> dict[str, Any]:
    """Our MaxEpsilon bracket, when it first reached 1.2x, and the reference PGD on the same box."""
    clock = RatioClock(TARGET_RATIO)
    t0, c0 = time.perf_counter(), time.process_time()
    b = api.bound(problem, "eps", options=Options(timeout_s=timeout, tolerance=1e-6, seed=seed, progress=clock))
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    ratio = b.upper / b.lower if b.lower > 0 else float("inf")
    if clock.reached_s is None and ratio <= TARGET_RATIO:
        clock.reached_s = dt
    x = problem.region.lo
    k = problem.graph.n_outputs
    t1, c1 = time.perf_counter(), time.process_time()
    ref = reference_pgd(problem.graph, problem.box, x, x, change_objective(k), seed=seed)
    return {"lower": b.lower, "upper": b.upper, "ratio": ratio, "time_s": dt, "cpu_s": cpu,
            "time_to_target_ratio_s": clock.reached_s, "pass": bool(ratio <= TARGET_RATIO and dt <= timeout * 1.05),
            "complete": b.complete, "method": b.method,
            "reference_pgd": ref, "reference_pgd_time_s": time.perf_counter() - t1,
            "reference_pgd_cpu_s": time.process_time() - c1, "lower_vs_reference": b.lower - ref}


def run_random(n_inputs: int, timeout: float) -> dict[str, Any]:
    g = load_model(random_mlp_model())
    rows = []
    print(f"random 784-64-64-1 (He init), |p - p0| <= 1e-3 on every parameter, {timeout:g} s per input   "
          f"| ANCHORS: {ANCHORS['random']}")
    print(f"{'input':>6}{'lower':>10}{'upper':>10}{'ratio':>8}{'wall s':>8}{'cpu s':>7}{'to 1.2x':>9}{'ref PGD':>10}"
          f"{'MILP':>10}{'MILP s':>7}  result")
    for i in range(n_inputs):
        x = np.random.default_rng(SEED + 1 + i).uniform(0.0, 1.0, SIZES[0])
        problem = api.make_problem(g, delta=1e-3, x0=x)
        r = {"input": i, **_eps_row(problem, timeout, i)}
        m = max_change(problem, time_limit=MILP_LIMIT_S)
        r.update({"milp_optimum": m.optimum, "milp_dual_bound": m.dual_bound, "milp_witness": m.witness,
                  "milp_solved": m.solved, "milp_s": m.seconds,
                  "lower_vs_milp": r["lower"] / m.witness, "upper_vs_milp": r["upper"] / m.witness})
        rows.append(r)
        reach = "-" if r["time_to_target_ratio_s"] is None else f"{r['time_to_target_ratio_s']:.1f}"
        print(f"{i:>6}{r['lower']:>10.4f}{r['upper']:>10.4f}{r['ratio']:>8.3f}{r['time_s']:>8.1f}{r['cpu_s']:>7.1f}"
              f"{reach:>9}{r['reference_pgd']:>10.4f}{m.witness:>10.4f}{m.seconds:>7.1f}  {'PASS' if r['pass'] else 'FAIL'}",
              flush=True)
    return {"model": "784-64-64-1 ReLU, He init (seed 1400), biases 0", "perturbation": "|p - p0| <= 1e-3, every parameter",
            "timeout_s": timeout, "target": f"upper <= {TARGET_RATIO}x lower within {timeout:g} s per input",
            "pass": all(r["pass"] for r in rows), "anchor": ANCHORS["random"], "rows": rows,
            "never_below_reference": all(r["lower_vs_reference"] >= 0 for r in rows)}


def run_cnn(n_images: int, n_eps: int, timeout: float) -> dict[str, Any]:
    from train_std_cnn import held_out_images, model_path  # benchmarks/train_std_cnn.py

    path = model_path()
    g = load_model(path)
    x, y = held_out_images(max(n_images, n_eps))
    pred = np.argmax(g.evaluate(x), axis=1)
    print(f"\nstandard-trained CNN {path.name}, 8-bit symmetric per-tensor box on every tensor, {timeout:g} s per query"
          f"   | ANCHORS: {ANCHORS['cnn']}")
    eps_rows = []
    print(f"{'image':>6}{'lower':>10}{'upper':>10}{'ratio':>8}{'wall s':>8}{'cpu s':>7}{'to 1.2x':>9}{'ref PGD':>10}  result")
    for i in range(n_eps):
        problem = api.make_problem(g, bits=8, x0=x[i])
        r = {"image": i, **_eps_row(problem, timeout, i)}
        eps_rows.append(r)
        reach = "-" if r["time_to_target_ratio_s"] is None else f"{r['time_to_target_ratio_s']:.1f}"
        print(f"{i:>6}{r['lower']:>10.4f}{r['upper']:>10.4f}{r['ratio']:>8.3f}{r['time_s']:>8.1f}{r['cpu_s']:>7.1f}"
              f"{reach:>9}{r['reference_pgd']:>10.4f}  {'PASS' if r['pass'] else 'FAIL'}", flush=True)
    label_rows_out = []
    counts = {"verified": 0, "falsified": 0, "unknown": 0}
    print(f"{'image':>6}{'label':>6}{'pred':>5}{'verdict':>11}{'wall s':>8}{'cpu s':>7}{'ref PGD margin':>16}")
    for i in range(n_images):
        problem = api.make_problem(g, bits=8, x0=x[i])
        t0, c0 = time.perf_counter(), time.process_time()
        v = api.verify(problem, "label", options=Options(timeout_s=timeout, seed=i))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows = label_rows(g.evaluate(x[i])[0], problem.level)
        ref = reference_pgd(g, problem.box, x[i], x[i], label_objective(rows.coefs, rows.offsets), seed=i)
        counts[v.name] += 1
        label_rows_out.append({"image": i, "label": int(y[i]), "predicted": int(pred[i]), "verdict": v.name,
                               "time_s": dt, "cpu_s": cpu, "method": v.method, "reference_pgd_margin": ref,
                               "reference_pgd_flips": bool(ref > 0)})
        print(f"{i:>6}{int(y[i]):>6}{int(pred[i]):>5}{v.name:>11}{dt:>8.1f}{cpu:>7.1f}{ref:>16.4f}", flush=True)
    decided = counts["verified"] + counts["falsified"]
    frac = decided / max(n_images, 1)
    print(f"label verdicts: {counts}; decided {decided}/{n_images} ({frac:.0%}; target >= 90%)")
    return {"model": path.name, "perturbation": "8-bit symmetric per-tensor rounding box, every tensor (Conv weights included)",
            "timeout_s": timeout, "accuracy_on_images": float(np.mean(pred[:n_images] == y[:n_images])),
            "eps_target": f"upper <= {TARGET_RATIO}x lower within {timeout:g} s",
            "eps_pass": all(r["pass"] for r in eps_rows), "eps_rows": eps_rows,
            "never_below_reference": all(r["lower_vs_reference"] >= 0 for r in eps_rows),
            "label_target": ">= 90% of the images decided (verified or replayed falsified) within the budget",
            "labels": counts, "label_decided_fraction": frac, "label_pass": frac >= 0.9,
            "label_rows": label_rows_out, "anchor": ANCHORS["cnn"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="random,cnn", help="comma list of random, cnn (default both)")
    ap.add_argument("--inputs", type=int, default=5, help="inputs of the random MLP (default 5)")
    ap.add_argument("--cnn-images", type=int, default=50, help="CNN label images (default 50)")
    ap.add_argument("--cnn-eps-images", type=int, default=5, help="CNN output-change images (default 5)")
    ap.add_argument("--timeout", type=float, default=30.0, help="budget per query in seconds (default 30)")
    ap.add_argument("--out", default=str(HERE / "results" / "standard.json"))
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"benchmark": "standard"}
    models = args.models.split(",")
    if "random" in models:
        out["random"] = run_random(args.inputs, args.timeout)
    if "cnn" in models:
        out["cnn"] = run_cnn(args.cnn_images, args.cnn_eps_images, args.timeout)
    earlier = Path(args.out)
    if earlier.exists():
        old = json.loads(earlier.read_text())
        kept = [m for m in ("random", "cnn") if m not in models and m in old]
        for m in kept:
            out[m] = old[m]
        if kept:
            out["kept_from_earlier_run"] = {m: {"machine": old.get("machine"), "peak_rss_mb": old.get("peak_rss_mb")} for m in kept}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_memory"] = "resource.getrusage(RUSAGE_SELF).ru_maxrss of this process"
    out["machine"] = machine_info()
    out["run"] = "nice -n 10, one process; wall and CPU seconds per query"
    write_results(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
