"""What a compression run reports: the Pareto front, the paired test, the architecture table
and the Pareto plot (written atomically through :mod:`paramverify.fileio`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from paramverify.compress.arch import ArchSpec
from paramverify.compress.env import Evaluation


def pareto_front(evals: Sequence[Evaluation]) -> list[Evaluation]:
    """The evaluations no other one beats in both accuracy (higher) and MACs (lower), by MACs."""
    front: list[Evaluation] = []
    for e in sorted(evals, key=lambda e: (e.macs, -e.acc)):
        if not front or e.acc > front[-1].acc:
            front.append(e)
    return front


def best(evals: Sequence[Evaluation]) -> Evaluation | None:
    """The highest reward within the budget (the first one on ties)."""
    ok = [e for e in evals if e.within_budget]
    return max(ok, key=lambda e: e.reward) if ok else None


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """Exact McNemar test of two per-image correctness vectors on the same images: the counts
    where only ``a`` or only ``b`` is right and the two-sided binomial p-value."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def arch_table(arch: ArchSpec, teacher: ArchSpec) -> str:
    """The architecture as a Markdown table, one row per stage, with the teacher's stage beside it."""
    rows = ["| stage | width (teacher) | blocks (teacher) | stride | conv | activation | norm |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, (s, t) in enumerate(zip(arch.stages, teacher.stages)):
        rows.append(f"| {i} | {s.width} ({t.width}) | {s.depth} ({t.depth}) | {s.stride} | {s.conv} | {s.act} | {s.norm} |")
    return "\n".join(rows)


def plot_pareto(by_method: Mapping[str, Sequence[Evaluation]], teacher_acc: float, ylabel: str,
                budget: float, path: str | Path) -> Path:
    """Accuracy against the MACs fraction of every evaluation, per method, with the front."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from paramverify.fileio import atomic_path

    fig = Figure(figsize=(6.6, 4.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    markers = {"agent": "o", "uniform": "s", "random": "^", "rule": "D"}
    everything: list[Evaluation] = []
    for name, evals in by_method.items():
        if evals:
            ax.scatter([e.macs_fraction for e in evals], [e.acc for e in evals], label=f"{name} ({len(evals)})",
                       marker=markers.get(name, "x"), alpha=0.7)
            everything.extend(evals)
    front = pareto_front(everything)
    if front:
        ax.step([e.macs_fraction for e in front], [e.acc for e in front], where="post", color="black", lw=1,
                label="Pareto front")
    ax.scatter([1.0], [teacher_acc], marker="*", s=140, color="black", label="teacher")
    ax.axvline(budget, color="grey", ls="--", lw=1, label=f"budget {budget:g}")
    ax.set_xlabel("MACs / teacher MACs")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
