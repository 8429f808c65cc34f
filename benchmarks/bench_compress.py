"""Robust compression search benchmark (issue 16, RC-NAS): does the meta-trained agent, fine-tuned on a
held-out task, beat the baselines at the same budget and evaluation count?  Writes the JSON and,
beside it, ``<out stem>_curves.png`` (best reward so far per evaluation, meta-training reward).

    python benchmarks/bench_compress.py [--seeds 0,1,2] [--meta-episodes 240] [--warmup 40]
        [--evaluations 16] [--budget 0.5] [--teacher-steps 600] [--finetune-steps 30]
        [--eval-images 200] [--test-images 300] [--work DIR] [--reuse-meta]
        [--out benchmarks/results/compress.json]

Per seed:

1. **Meta-training** (timed): the agent (DDPG policy over the state of
   ``paramverify.compress.space``) plays ``--meta-episodes`` episodes over the task buffer
   ``paramverify.compress.zoo.META_TASKS`` x budgets {0.3, 0.5, 0.7} (teachers on digits and
   MNIST-14x14; PGD and Square at several eps), the first ``--warmup`` at random.
2. **Fine-tuning** (timed) on the held-out task ``zoo.HELD_OUT`` (a teacher and a task not in
   the buffer: ``mnist14-b``, PGD-10 at eps 0.1) at ``--budget``: ``--evaluations`` episodes, each
   evaluating the untried rollout its critic rates highest of ``paramverify.compress.agent.SCREENED``
   (the greedy one and noisy ones; rollouts cost no evaluation).
3. **Baselines** on the same task with the same number of evaluations: uniform scaling, random
   search, the deepen-before-widening rule; and the same agent *without* meta-training
   (``scratch``: a third of its episodes at random).
4. **Test**: the best sub-network of each method (chosen on the evaluation images by its reward)
   is rebuilt and attacked on ``--test-images`` further held-out images; the agent is paired with
   the best baseline (the baseline with the highest evaluation reward) image by image (exact
   McNemar test).

Targets (issue 16): on every seed the fine-tuned agent's test PGD accuracy (<= 50% of the
teacher's MACs) is >= the best baseline's; meta-training <= 60 min and fine-tuning <= 10 min per
seed at the defaults on 2 cores.  Learning is shown by the reward curves: the agent's reward per
meta-training episode after warm-up against the random warm-up episodes' (the same environments),
and best-so-far reward per evaluation of the fine-tuned agent against random search; plus the
share of each method's final picks that came from random warm-up episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_common import machine_info, write_results
from paramverify.compress.agent import AgentRun, default_ddpg
from paramverify.compress.baselines import run_baseline
from paramverify.compress.env import CompressEnv, EnvConfig, Evaluation
from paramverify.compress.report import best, paired_test
from paramverify.compress.tasks import load_task_data
from paramverify.compress.train import TrainConfig
from paramverify.compress.zoo import (
    HELD_OUT,
    META_BUDGETS,
    META_TASKS,
    TEACHERS,
    get_teacher,
    task_buffer,
)
from paramverify.fileio import atomic_path, write_text

BASELINES = ("uniform", "random", "rule")


def best_so_far(evals: list[Evaluation]) -> list[float]:
    out, cur = [], float("-inf")
    for e in evals:
        if e.within_budget:
            cur = max(cur, e.reward)
        out.append(cur if np.isfinite(cur) else float("nan"))
    return out


def one_seed(seed: int, a: argparse.Namespace, log: Any) -> dict[str, Any]:
    env_cfg = EnvConfig(finetune=TrainConfig(steps=a.finetune_steps), seed=seed)
    teacher_cfg = TrainConfig(steps=a.teacher_steps)
    cache = a.work / "teachers"
    t0 = time.perf_counter()
    envs = task_buffer(env_cfg, teacher_cfg, cache, a.eval_images, progress=log)
    setup_s = time.perf_counter() - t0

    # 1. meta-training
    t0 = time.perf_counter()
    tag = (f"meta_seed{seed}_ep{a.meta_episodes}_w{a.warmup}_k{a.finetune_steps}_e{a.eval_images}"
           f"_t{a.teacher_steps}")
    ckpt, timing = a.work / f"{tag}.pt", a.work / f"{tag}.json"
    meta = AgentRun(default_ddpg(a.warmup), seed, [("meta", a.meta_episodes)], ckpt if a.reuse_meta else None)
    earlier = 0.0
    if a.reuse_meta and ckpt.is_file():
        meta.load_state_dict(torch.load(ckpt, weights_only=False))
        earlier = json.loads(timing.read_text())["seconds"] if timing.is_file() else float("nan")
        log(f"seed {seed}: meta-training resumed from {ckpt} at episode {len(meta.history)}")
    meta.run(lambda _p: envs, progress=log)
    meta_s = earlier + time.perf_counter() - t0
    if a.reuse_meta:
        write_text(timing, json.dumps({"seconds": meta_s}))  # atomic: an interrupt leaves the old file or the new one
    meta_steps = meta.history
    warm = [h.evaluation.reward for h in meta_steps if h.warmup]
    after = [h.evaluation.reward for h in meta_steps if not h.warmup]
    per_env_best_from_warmup = []
    for env in envs:
        mine = [h for h in meta_steps if h.task == env.label() and h.evaluation.within_budget]
        if mine:
            top = max(mine, key=lambda h: h.evaluation.reward)
            per_env_best_from_warmup.append(top.warmup)

    # 2. fine-tuning on the held-out task
    name, task = HELD_OUT
    data = load_task_data(TEACHERS[name][0], a.eval_images, a.test_images)
    teacher = get_teacher(name, task, teacher_cfg, cache, data=data)
    env = CompressEnv(teacher, task, data, EnvConfig(budget=a.budget, finetune=env_cfg.finetune, seed=seed))
    t0 = time.perf_counter()
    ft = AgentRun(default_ddpg(a.warmup), seed, [("finetune", a.evaluations)])
    ft.agent.load_state_dict(meta.agent.state_dict())
    ft.meta_episodes = a.meta_episodes
    ft.run(lambda _p: [env], progress=log)
    ft_s = time.perf_counter() - t0

    # 3. baselines and the agent without meta-training, same evaluation count
    methods: dict[str, list[Evaluation]] = {"agent": ft.evaluations("finetune")}
    seconds: dict[str, float] = {"agent": ft_s}
    for b in BASELINES:
        t0 = time.perf_counter()
        methods[b] = run_baseline(b, env, a.evaluations, seed)
        seconds[b] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scratch = AgentRun(default_ddpg(max(1, a.evaluations // 3)), seed, [("meta", a.evaluations)])
    scratch.run(lambda _p: [env], progress=log)
    methods["scratch"] = scratch.evaluations("meta")
    seconds["scratch"] = time.perf_counter() - t0

    # 4. test images
    rows: dict[str, Any] = {}
    correct: dict[str, np.ndarray] = {}
    for m, evals in methods.items():
        b = best(evals)
        row: dict[str, Any] = {"evaluations": len(evals), "seconds": round(seconds[m], 1),
                               "best_so_far": best_so_far(evals)}
        if b is not None:
            clean, adv = env.test_correct(b.choices)
            correct[m] = adv
            row.update({"arch": b.arch, "macs_fraction": b.macs_fraction, "eval_reward": b.reward,
                        "eval_adv_acc": b.adv_acc, "test_clean_acc": float(clean.mean()),
                        "test_adv_acc": float(adv.mean())})
        rows[m] = row
    rows["scratch"]["best_from_warmup"] = bool(any(h.warmup and h.evaluation == best(methods["scratch"])
                                                   for h in scratch.history))
    rows["agent"]["best_from_warmup"] = False  # fine-tuning has no warm-up: every episode is the policy's
    ranked = [m for m in BASELINES if "eval_reward" in rows[m]]
    best_baseline = max(ranked, key=lambda m: rows[m]["eval_reward"]) if ranked else None
    out: dict[str, Any] = {
        "seed": seed, "teacher_macs": env.teacher_macs, "teacher_eval_adv_acc": env.teacher_adv,
        "setup_seconds": round(setup_s, 1), "meta_seconds": round(meta_s, 1), "finetune_seconds": round(ft_s, 1),
        "meta": {"episodes": len(meta_steps), "rewards": [h.evaluation.reward for h in meta_steps],
                 "warmup_mean_reward": float(np.mean(warm)) if warm else None,
                 "after_warmup_mean_reward": float(np.mean(after)) if after else None,
                 "last_quarter_mean_reward": float(np.mean([h.evaluation.reward for h in meta_steps[-max(1, len(meta_steps) // 4):]])),
                 "share_of_env_best_from_warmup": float(np.mean(per_env_best_from_warmup)) if per_env_best_from_warmup else None},
        "methods": rows, "best_baseline": best_baseline,
    }
    if best_baseline is not None and "agent" in correct:
        out["paired_agent_vs_best_baseline"] = paired_test(correct["agent"], correct[best_baseline])
        out["agent_ge_best_baseline"] = rows["agent"]["test_adv_acc"] >= rows[best_baseline]["test_adv_acc"]
    return out


def plot_curves(res: dict[str, Any], path: Path, window: int = 20) -> Path:
    """Two panels from a results dict: best reward so far per evaluation on the held-out task
    (every method, mean and min-max band over the seeds), and the meta-training reward per
    episode (trailing mean of ``window`` episodes, per seed, warm-up end marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after selecting the Agg backend

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    colors = {"agent": "tab:blue", "random": "tab:orange", "scratch": "tab:green", "uniform": "tab:grey",
              "rule": "tab:brown"}
    for m, color in colors.items():
        runs = [r["methods"][m]["best_so_far"] for r in res["seeds"] if m in r["methods"]]
        if not runs:
            continue
        n = min(len(c) for c in runs)
        arr = np.array([[np.nan if v is None else v for v in c[:n]] for c in runs], dtype=float)
        x = np.arange(1, n + 1)
        ax1.plot(x, np.nanmean(arr, 0), color=color, label=f"{m} (mean of {len(runs)} seeds)")
        ax1.fill_between(x, np.nanmin(arr, 0), np.nanmax(arr, 0), color=color, alpha=0.12, linewidth=0)
    ax1.set_xlabel("evaluations on the held-out task")
    ax1.set_ylabel("best reward so far (within budget)")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.grid(alpha=0.3)
    for r in res["seeds"]:
        rew = np.asarray(r["meta"]["rewards"], dtype=float)
        if rew.size >= window:
            trail = np.convolve(rew, np.ones(window) / window, mode="valid")
            ax2.plot(np.arange(window, rew.size + 1), trail, label=f"seed {r['seed']}")
    ax2.axvline(res["settings"]["warmup"], color="tab:red", linestyle=":", linewidth=0.8, label="random warm-up ends")
    ax2.set_xlabel("meta-training episode")
    ax2.set_ylabel(f"reward, mean of the last {window} episodes")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"Compression search: held-out task {res['held_out']}; meta-training over the buffer")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def table(res: dict[str, Any]) -> str:
    lines = ["| seed | method | evals | MACs frac | eval reward | eval adv | test adv | test clean |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in res["seeds"]:
        for m, r in s["methods"].items():
            if "test_adv_acc" in r:
                lines.append(f"| {s['seed']} | {m} | {r['evaluations']} | {r['macs_fraction']:.3f} | {r['eval_reward']:.3f} | "
                             f"{r['eval_adv_acc']:.3f} | {r['test_adv_acc']:.3f} | {r['test_clean_acc']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default 0,1,2)")
    p.add_argument("--meta-episodes", type=int, default=240, help="meta-training episodes (default 240)")
    p.add_argument("--warmup", type=int, default=40, help="random warm-up episodes of meta-training (default 40)")
    p.add_argument("--evaluations", type=int, default=16, help="evaluations per method on the held-out task (default 16)")
    p.add_argument("--budget", type=float, default=0.5, help="MACs budget of the held-out task (default 0.5)")
    p.add_argument("--teacher-steps", type=int, default=600, help="training steps of each teacher (default 600)")
    p.add_argument("--finetune-steps", type=int, default=30, help="PGD-k fine-tuning steps per sub-network (default 30)")
    p.add_argument("--eval-images", type=int, default=200, help="held-out images of the reward (default 200)")
    p.add_argument("--test-images", type=int, default=300, help="test images of the final comparison (default 300)")
    p.add_argument("--work", type=Path, default=Path("benchmarks/results/compress_work"), help="teacher cache")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/compress.json"), help="JSON to write")
    p.add_argument("--reuse-meta", action="store_true",
                   help="checkpoint meta-training in --work after every episode and reuse a finished or "
                        "interrupted one of the same settings (its recorded minutes count as meta-training time)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    defaults = {k: p.get_default(k) for k in ("meta_episodes", "warmup", "evaluations", "teacher_steps",
                                              "finetune_steps", "eval_images", "test_images")}
    log = (lambda _m: None) if a.quiet else (lambda m: print(m, flush=True))
    t0 = time.perf_counter()
    results = [one_seed(s, a, log) for s in seeds]
    ok = [r.get("agent_ge_best_baseline", False) for r in results]
    at_defaults = all(getattr(a, k) == v for k, v in defaults.items())
    res: dict[str, Any] = {
        "benchmark": "compress", "machine": machine_info(), "seconds": round(time.perf_counter() - t0, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "at_default_settings": at_defaults,
        "meta_tasks": [f"{n}: {t.label()}" for n, t in META_TASKS], "meta_budgets": list(META_BUDGETS),
        "held_out": f"{HELD_OUT[0]}: {HELD_OUT[1].label()} at budget {a.budget}",
        "seeds": results,
        "target": {
            "agent_ge_best_baseline_every_seed": bool(all(ok)) and len(results) >= 3,
            "meta_training_max_minutes": max(r["meta_seconds"] for r in results) / 60,
            "finetuning_max_minutes": max(r["finetune_seconds"] for r in results) / 60,
            "pass": bool(all(ok) and len(results) >= 3 and at_defaults
                         and max(r["meta_seconds"] for r in results) <= 3600 and max(r["finetune_seconds"] for r in results) <= 600),
        },
    }
    agent_curves = np.array([r["methods"]["agent"]["best_so_far"] for r in results], dtype=float)
    random_curves = np.array([r["methods"]["random"]["best_so_far"] for r in results], dtype=float)
    res["curves"] = {"agent_best_so_far_mean": np.nanmean(agent_curves, 0).tolist(),
                     "agent_best_so_far_std": np.nanstd(agent_curves, 0).tolist(),
                     "random_best_so_far_mean": np.nanmean(random_curves, 0).tolist(),
                     "random_best_so_far_std": np.nanstd(random_curves, 0).tolist()}
    write_results(a.out, res)
    plot = plot_curves(res, a.out.resolve().with_name(a.out.stem + "_curves.png"))  # compress.json -> compress_curves.png
    print(table(res))
    print(f"wrote {plot}")
    for r in results:
        pv = r.get("paired_agent_vs_best_baseline")
        print(f"seed {r['seed']}: meta {r['meta_seconds']:.0f} s (reward warm-up {r['meta']['warmup_mean_reward']:.3f} -> "
              f"after {r['meta']['after_warmup_mean_reward']:.3f}), fine-tune {r['finetune_seconds']:.0f} s; "
              f"best baseline {r['best_baseline']}; agent >= it: {r.get('agent_ge_best_baseline')}; paired {pv}")
    print(f"target: {'PASS' if res['target']['pass'] else 'FAIL'}"
          f"{'' if at_defaults else ' (not at the default settings: a reduced run)'}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
