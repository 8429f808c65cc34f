"""Reward curves over certifications, the picks' origins, and the learning summary (equal-count comparison).

Input: ``runs_by_seed[seed][method]`` of :class:`paramverify.search.equal.MethodRun`.  The x axis is the
number of certifications a method has made in its search (its own distinct reward evaluations, 1-based;
the final race is not on it).  Two curves per method and seed:

* ``best[c]``: the best search reward among the method's certified policies within the budget after
  ``c`` certifications (``None`` while it has none: greedy's descent starts over the budget);
* ``reward[c]``: the mean search reward of the policies within the budget among certifications
  ``c - window + 1 .. c`` (what the method is proposing at that point; ``None`` when none fits).

:func:`curves` gives, per method, each curve's ``mean``, ``std`` (over seeds, ddof 0), ``min`` and ``max``
at ``c = 1 .. length`` (``length``: the fewest certifications any run made, so every seed is in every
point), and every seed's full curves under ``per_seed``.  Missing values (``None``) are left out of the
statistics; a point where every seed is ``None`` is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paramverify.errors import SpecError
from paramverify.fileio import atomic_path
from paramverify.search.equal import AGENT, WARMUP, LedgerEntry, MethodRun

RunsBySeed = Mapping[int, Mapping[str, MethodRun]]
STYLE = {"ddpg": ("tab:red", "-"), "random": ("tab:purple", "--"), "greedy": ("tab:green", ":")}


def seed_curves(log: Sequence[LedgerEntry], window: int) -> dict[str, list[float | None]]:
    """``best`` and ``reward`` of one run (see the module docstring), one value per certification."""
    if not (isinstance(window, int) and window >= 1):
        raise SpecError("window", f"must be a positive integer, got {window!r}")
    best: list[float | None] = []
    reward: list[float | None] = []
    top: float | None = None
    for c, e in enumerate(log):
        if e.fits and (top is None or e.reward > top):
            top = e.reward
        best.append(top)
        recent = [x.reward for x in log[max(0, c - window + 1) : c + 1] if x.fits]
        reward.append(float(np.mean(recent)) if recent else None)
    return {"best": best, "reward": reward}


def _stats(columns: Sequence[Sequence[float | None]], length: int) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {"mean": [], "std": [], "min": [], "max": []}
    for c in range(length):
        vals = [col[c] for col in columns if col[c] is not None]
        if not vals:
            for values in out.values():
                values.append(None)
            continue
        arr = np.array(vals, dtype=float)
        out["mean"].append(float(arr.mean()))
        out["std"].append(float(arr.std()))
        out["min"].append(float(arr.min()))
        out["max"].append(float(arr.max()))
    return out


def curves(runs_by_seed: RunsBySeed, window: int = 10) -> dict[str, Any]:
    """The curves of every method over the seeds (shape: the module docstring)."""
    if not runs_by_seed:
        raise SpecError("seeds", "no run to draw curves from")
    seeds = sorted(runs_by_seed)
    methods = list(dict.fromkeys(m for s in seeds for m in runs_by_seed[s]))
    length = min(len(runs_by_seed[s][m].log) for s in seeds for m in runs_by_seed[s])
    out: dict[str, Any] = {
        "x": "certifications of the method's search (distinct reward evaluations, 1-based; the final race excluded)",
        "length": length, "window": window, "seeds": seeds, "methods": {},
        "warmup_end": {str(s): sum(e.phase == WARMUP for e in runs_by_seed[s]["ddpg"].log)
                       for s in seeds if "ddpg" in runs_by_seed[s]},
    }
    for m in methods:
        per_seed = {s: seed_curves(runs_by_seed[s][m].log, window) for s in seeds if m in runs_by_seed[s]}
        out["methods"][m] = {
            "best": _stats([c["best"] for c in per_seed.values()], length),
            "reward": _stats([c["reward"] for c in per_seed.values()], length),
            "per_seed": {str(s): c for s, c in per_seed.items()},
        }
    return out


def _mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and std (ddof 0) over the seeds that have a value; ``None`` (JSON null) where none has."""
    arr = np.array([v for v in values if v is not None], dtype=float)
    return {"mean": float(arr.mean()) if len(arr) else None, "std": float(arr.std()) if len(arr) else None,
            "per_seed": [None if v is None else float(v) for v in values]}


def picks(runs_by_seed: RunsBySeed) -> dict[str, Any]:
    """Where each method's final pick came from, per seed, and the share of DDPG picks from warm-up episodes."""
    seeds = sorted(runs_by_seed)
    out: dict[str, Any] = {"per_method": {}}
    for m in dict.fromkeys(m for s in seeds for m in runs_by_seed[s]):
        out["per_method"][m] = {str(s): dict(runs_by_seed[s][m].pick) for s in seeds if m in runs_by_seed[s]}
    ddpg = [runs_by_seed[s]["ddpg"].pick for s in seeds if "ddpg" in runs_by_seed[s]]
    if ddpg:
        k = sum(bool(p.get("from_warmup")) for p in ddpg)
        out["ddpg_from_warmup"] = {"picks": len(ddpg), "from_warmup": k, "share": k / len(ddpg),
                                   "also_executed_after_warmup": sum(bool(p.get("from_warmup"))
                                                                     and bool(p.get("executed_after_warmup"))
                                                                     for p in ddpg)}
    return out


def learning(runs_by_seed: RunsBySeed, length: int) -> dict[str, Any]:
    """Numbers behind the curves: best search reward after ``length`` certifications, mean proposed rewards.

    ``proposed``: the mean search reward of the certified policies within the budget, for DDPG split into
    warm-up and agent phases (the agent's proposals against random search's are the learning signal),
    and of DDPG's episodes after warm-up, repeats included (what the trained actor executes).
    """
    seeds = sorted(runs_by_seed)
    methods = list(dict.fromkeys(m for s in seeds for m in runs_by_seed[s]))
    best = {}
    for m in methods:
        vals: list[float | None] = []
        for s in seeds:
            fit = [e.reward for e in runs_by_seed[s][m].log[:length] if e.fits]
            vals.append(max(fit) if fit else None)
        best[m] = _mean_std(vals)

    def proposed(m: str, phase: str | None = None) -> dict[str, Any]:
        vals: list[float | None] = []
        for s in seeds:
            rs = [e.reward for e in runs_by_seed[s][m].log if e.fits and (phase is None or e.phase == phase)]
            vals.append(float(np.mean(rs)) if rs else None)
        return _mean_std(vals)

    mean_reward = {m: proposed(m) for m in methods if m != "ddpg"}
    out: dict[str, Any] = {"length": length, "best_after_length": best, "proposed_mean_reward": mean_reward}
    if "ddpg" in methods:
        mean_reward["ddpg_warmup"] = proposed("ddpg", WARMUP)
        mean_reward["ddpg_agent"] = proposed("ddpg", AGENT)
        episodes: list[float | None] = []
        for s in seeds:
            run = runs_by_seed[s]["ddpg"]
            warm = int(run.extra.get("warmup", 0))
            rs = [t.reward for t in run.result.trace[warm:]]
            episodes.append(float(np.mean(rs)) if rs else None)
        out["ddpg_episode_reward_after_warmup"] = _mean_std(episodes)
        if "random" in methods:
            agent, rnd = mean_reward["ddpg_agent"]["mean"], mean_reward["random"]["mean"]
            out["ddpg_agent_proposals_above_random"] = bool(agent is not None and rnd is not None and agent > rnd)
            b_ddpg, b_rnd = best["ddpg"]["mean"], best["random"]["mean"]
            out["ddpg_best_above_random"] = bool(b_ddpg is not None and b_rnd is not None and b_ddpg > b_rnd)
    return out


def curves_plot(data: Mapping[str, Any], path: Path, title: str = "") -> None:
    """Two panels: best search reward so far, and the trailing mean of proposed rewards, against certifications."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after selecting the Agg backend

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    x = np.arange(1, int(data["length"]) + 1)
    panels = (("best", "best search reward so far (within budget)"),
              ("reward", f"mean reward of the last {data['window']} certified"))
    for ax, (key, label) in zip(axes, panels):
        for m, d in data["methods"].items():
            color, ls = STYLE.get(m, ("grey", "-"))
            st = d[key]
            mean = np.array([np.nan if v is None else v for v in st["mean"]], dtype=float)
            lo = np.array([np.nan if v is None else v for v in st["min"]], dtype=float)
            hi = np.array([np.nan if v is None else v for v in st["max"]], dtype=float)
            ax.plot(x, mean, color=color, linestyle=ls, label=f"{m} (mean of {len(d['per_seed'])} seeds)")
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
        ends = list(data.get("warmup_end", {}).values())
        if ends:
            ax.axvline(float(np.mean(ends)), color="tab:red", linestyle=":", linewidth=0.8,
                       label="DDPG warm-up ends (mean)")
        ax.set_xlabel("certifications (distinct reward evaluations)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title or "Search reward against certifications: mean and min-max band over seeds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
