"""Certified accuracy over a data set: per-image rows, TSV/JSON, and a plot.

Rows follow Cohen et al.'s ``certify.py`` (``idx label predict radius correct
time``).  Certified accuracy at radius ``r`` is the fraction of images that are
certified with the correct class and a radius of at least ``r``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from paramverify.errors import SpecError
from paramverify.results import SCHEMA_VERSION
from paramverify.smoothing import ABSTAIN
from paramverify.smoothing.core import Smooth

TSV_HEADER = ("idx", "label", "predict", "radius", "correct", "time")


@dataclass(frozen=True)
class CertRow:
    """One image: ``predict`` is -1 on abstain; ``label`` -1 when unknown."""

    idx: int
    label: int
    predict: int
    radius: float
    correct: int
    time: float


def certify_dataset(
    smooth: Smooth,
    inputs: np.ndarray,
    labels: np.ndarray | None,
    *,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int | None = None,
    seed: int | None = None,
    on_row: Callable[[CertRow], None] | None = None,
) -> list[CertRow]:
    """Certify every input; with ``seed`` image ``i`` uses base seed ``seed + i``."""
    if labels is not None and len(labels) != len(inputs):
        raise SpecError("labels", f"has {len(labels)} entries for {len(inputs)} inputs", "pass one label per input")
    rows: list[CertRow] = []
    for i in range(len(inputs)):
        cert = smooth.certify(
            inputs[i], n0, n, alpha, batch_size, seed=None if seed is None else seed + i
        )
        label = int(labels[i]) if labels is not None else -1
        row = CertRow(
            idx=i,
            label=label,
            predict=cert.predict,
            radius=cert.radius,
            correct=int(label >= 0 and cert.predict == label),
            time=round(cert.seconds, 4),
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def write_tsv(rows: Sequence[CertRow], path: str | Path) -> None:
    lines = ["\t".join(TSV_HEADER)]
    lines += [f"{r.idx}\t{r.label}\t{r.predict}\t{r.radius:.6f}\t{r.correct}\t{r.time:.4f}" for r in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_tsv(path: str | Path) -> list[CertRow]:
    text = Path(path).read_text(encoding="utf-8").splitlines()
    if not text or tuple(text[0].split("\t")) != TSV_HEADER:
        raise SpecError("tsv", f"{path} does not start with the header {' '.join(TSV_HEADER)}")
    out = []
    for line in text[1:]:
        if line.strip():
            f = line.split("\t")
            out.append(CertRow(int(f[0]), int(f[1]), int(f[2]), float(f[3]), int(f[4]), float(f[5])))
    return out


def write_json(rows: Sequence[CertRow], path: str | Path, meta: Mapping[str, object] | None = None) -> None:
    doc = {"schema": SCHEMA_VERSION, "meta": dict(meta or {}), "results": [asdict(r) for r in rows]}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def certified_accuracy(rows: Sequence[CertRow], radii: Sequence[float] | np.ndarray) -> np.ndarray:
    """Fraction of rows certified correct with radius >= r, for each r in ``radii``."""
    if not rows:
        return np.zeros(len(radii))
    correct = np.array([r.correct == 1 and r.predict != ABSTAIN for r in rows])
    rad = np.array([r.radius for r in rows])
    return np.array([float(np.mean(correct & (rad >= r))) for r in radii])


def plot_certified_accuracy(
    curves: Mapping[str, Sequence[CertRow]],
    path: str | Path,
    *,
    max_radius: float | None = None,
    title: str = "Certified accuracy",
) -> None:
    """One line per policy (e.g. "float32", "int8", "w4a8") against the L2 radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after selecting the Agg backend

    if not curves:
        raise SpecError("curves", "nothing to plot", "pass at least one labelled set of rows")
    top = max_radius or max([r.radius for rows in curves.values() for r in rows] + [0.1]) * 1.05
    grid = np.linspace(0.0, top, 300)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for label, rows in curves.items():
        ax.plot(grid, certified_accuracy(rows, grid), label=f"{label} (n={len(rows)})", linewidth=1.8)
    ax.set_xlabel("L2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlim(0.0, top)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)
