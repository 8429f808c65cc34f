"""The "Robust compression search" section of docs/benchmarks.md, from benchmarks/results/compress.json.

Imported by docs/gen_benchmarks.py; ``section(data)`` returns the section's body.
"""

from __future__ import annotations

from typing import Any

TITLE = "## Robust compression search, RC-NAS style (`results/compress.json`)\n"
METHODS = ("agent", "scratch", "uniform", "random", "rule")


def _f(x: Any, fmt: str = ".3f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def section(d: dict) -> str:
    s = d["settings"]
    t = d["target"]
    reduced = "At the default settings.  Measured: " if d["at_default_settings"] else (
        "**A reduced run, not the default settings** (fewer meta-training episodes, evaluations, training steps and "
        "images than the defaults of `benchmarks/bench_compress.py`); the target is not judged on it.  Measured: ")
    wins = sum(1 for r in d["seeds"] if r.get("agent_ge_best_baseline"))
    ties = sum(1 for r in d["seeds"] if r.get("agent_ge_best_baseline") and r["best_baseline"]
               and r["methods"]["agent"].get("test_adv_acc") == r["methods"][r["best_baseline"]].get("test_adv_acc"))
    tie_note = f" ({ties} of them {'a tie' if ties == 1 else 'ties'}: equal test accuracy)" if ties else ""
    out = [f"""`python benchmarks/bench_compress.py`: meta-training over {len(d['meta_tasks'])} (teacher, task) pairs x budgets
{', '.join(_f(b, 'g') for b in d['meta_budgets'])}, then fine-tuning on the held-out task {d['held_out']}, against
uniform scaling, random search, the deepen-before-widening rule and the agent without meta-training (`scratch`), each
with {s['evaluations']} evaluations; seeds {s['seeds']}; {s['meta_episodes']} meta-training episodes ({s['warmup']} at
random), {s['finetune_steps']} PGD fine-tuning steps per sub-network, {s['eval_images']} evaluation and
{s['test_images']} test images.  {reduced}the agent's test PGD accuracy is >= the best baseline's on
{wins} of {len(d['seeds'])} seeds{tie_note}; meta-training took at most
{_f(t['meta_training_max_minutes'], '.1f')} min and fine-tuning {_f(t['finetuning_max_minutes'], '.1f')} min per seed
(targets 60 and 10 min at the defaults): **{'PASS' if t['pass'] else 'FAIL' if d['at_default_settings'] else 'not judged'}**.
""", ""]
    rows = []
    for r in d["seeds"]:
        for m in METHODS:
            x = r["methods"].get(m, {})
            if "test_adv_acc" in x:
                rows.append([str(r["seed"]), m, str(x["evaluations"]), _f(x["macs_fraction"]), _f(x["eval_reward"]),
                             _f(x["eval_adv_acc"]), _f(x["test_adv_acc"]), _f(x["test_clean_acc"]), x["arch"].replace(" | ", "; ")])
    out.append(_table(["seed", "method", "evals", "MACs fraction", "eval reward", "eval PGD acc", "test PGD acc",
                       "test clean acc", "architecture (width x blocks / stride, block)"], rows))
    out.append("")
    pairs = []
    for r in d["seeds"]:
        p = r.get("paired_agent_vs_best_baseline", {})
        meta = r["meta"]
        pairs.append([str(r["seed"]), str(r["best_baseline"]), str(p.get("only_a", "n/a")), str(p.get("only_b", "n/a")),
                      _f(p.get("p_value"), ".3g"), _f(meta["warmup_mean_reward"]), _f(meta["after_warmup_mean_reward"]),
                      _f(meta["last_quarter_mean_reward"]), _f(meta["share_of_env_best_from_warmup"], ".2f"),
                      _f(r["meta_seconds"] / 60, ".1f"), _f(r["finetune_seconds"] / 60, ".1f")])
    out.append(_table(["seed", "best baseline", "test images only the agent withstands", "only the baseline",
                       "McNemar p", "meta reward: random warm-up", "after warm-up", "last quarter",
                       "share of best picks from warm-up", "meta min", "fine-tune min"], pairs))
    c = d["curves"]
    am, asd, rm, rsd = c["agent_best_so_far_mean"], c["agent_best_so_far_std"], c["random_best_so_far_mean"], c["random_best_so_far_std"]
    pts = sorted({0, len(am) // 2, len(am) - 1}) if am else []
    out.append("")
    out.append("Best reward so far after k evaluations on the held-out task (mean +- std over seeds): " + "; ".join(
        f"k={k + 1}: agent {_f(am[k])} +- {_f(asd[k])}, random {_f(rm[k])} +- {_f(rsd[k])}" for k in pts) + ".")
    out.append("")
    out.append("![Best reward so far per evaluation on the held-out task (mean and min-max over seeds), and the "
               "meta-training reward per episode](../benchmarks/results/compress_curves.png)")
    return "\n".join(out) + "\n"
