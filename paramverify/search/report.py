"""Final certification on held-out images, the Pareto plot and the table.

The policies a search returns are compared on *test* images that neither the
reward nor fine-tuning saw: each model (float and every distinct policy) is
certified from scratch with :func:`certify_dataset` (``n0``, ``n``,
``alpha``) with the same per-image seeds, so all models see the same noise
(common random numbers) and differences between them are paired.  Certified
accuracy at radius ``r`` and ACR as in :mod:`.reward`; each certified
accuracy also gets a two-sided 95% Clopper-Pearson interval over the test
images (the sampling of images, not of noise).

Guarantee: each per-image certificate is correct with probability at least
``1 - alpha`` over its noise (Cohen et al.); the accuracies are statistics of
those certificates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import beta
from torch import nn

from paramverify.errors import SpecError
from paramverify.fileio import atomic_path
from paramverify.search.reward import RADII, metrics_from
from paramverify.smoothing.core import Smooth, SmoothOptions
from paramverify.smoothing.dataset import certify_dataset

TEST_SEED_OFFSET = 1_000_003
METHOD_STYLE = {"ddpg": ("tab:red", "*"), "uniform": ("tab:blue", "s"), "greedy": ("tab:green", "^"),
                "random": ("tab:purple", "o"), "float": ("black", "D")}


@dataclass(frozen=True)
class TestConfig:
    """Certification of the final models: ``n0`` + ``n`` samples per test image at level ``1 - alpha``."""

    sigma: float
    n0: int = 64
    n: int = 500
    alpha: float = 0.001
    seed: int = 0
    batch_size: int = 1000
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and self.n >= 1 and isinstance(self.n0, int) and self.n0 >= 1):
            raise SpecError("test_n", f"n0 and n must be positive integers, got {self.n0!r}, {self.n!r}")


def proportion_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of a proportion ``k / n``."""
    if n == 0:
        return 0.0, 1.0
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


class TestCertifier:
    """Certifies models on the test images and memoises the results by key."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, config: TestConfig, num_classes: int) -> None:
        if len(inputs) == 0 or len(inputs) != len(labels):
            raise SpecError("test_images", f"need test images with labels, got {len(inputs)} and {len(labels)}")
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.config = config
        self.num_classes = num_classes
        self._results: dict[str, dict[str, Any]] = {}

    @property
    def certifications(self) -> int:
        return len(self._results)

    def state(self) -> dict[str, Any]:
        return dict(self._results)

    def load(self, state: Mapping[str, Any]) -> None:
        self._results = {k: dict(v) for k, v in state.items()}

    def has(self, key: str) -> bool:
        return key in self._results

    def certify(self, key: str, model: Callable[[], nn.Module], progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Certify ``model()`` (built only on a cache miss) on every test image."""
        if key in self._results:
            return self._results[key]
        c = self.config
        start = time.perf_counter()
        smooth = Smooth(model(), self.num_classes, SmoothOptions(sigma=c.sigma, batch_size=c.batch_size, device=c.device),
                        generator=torch.Generator().manual_seed(c.seed))
        done = [0]

        def on_row(_row: object) -> None:
            done[0] += 1
            if progress is not None:
                progress(f"test certification of {key[:60]}: {done[0]}/{len(self.inputs)}")

        rows = certify_dataset(smooth, self.inputs, self.labels, n0=c.n0, n=c.n, alpha=c.alpha,
                               seed=c.seed + TEST_SEED_OFFSET, on_row=on_row)
        correct = np.array([r.correct == 1 for r in rows])
        radius = np.array([r.radius for r in rows])
        metrics = metrics_from(correct, radius, RADII)
        n = len(rows)
        cis = {f"ci95@{r:g}": list(proportion_ci(int(np.sum(correct & (radius >= r))), n)) for r in RADII}
        out = {"metrics": metrics, "ci": cis, "images": n, "n0": c.n0, "n": c.n, "alpha": c.alpha,
               "samples": n * (c.n0 + c.n), "seconds": round(time.perf_counter() - start, 3),
               "radius": [round(float(v), 6) for v in radius], "correct": [bool(v) for v in correct]}
        self._results[key] = out
        return out


def paired(a: Mapping[str, Any], b: Mapping[str, Any], r: float) -> dict[str, int]:
    """Images certified at ``r`` by ``a`` only and by ``b`` only (same images, same noise)."""
    ca = np.array(a["correct"]) & (np.array(a["radius"]) >= r)
    cb = np.array(b["correct"]) & (np.array(b["radius"]) >= r)
    return {"only_first": int(np.sum(ca & ~cb)), "only_second": int(np.sum(cb & ~ca))}


PANELS = (("cert_acc@0", "certified accuracy, radius 0"), ("cert_acc@0.25", "certified accuracy, radius 0.25"),
          ("cert_acc@0.5", "certified accuracy, radius 0.5"), ("acr", "average certified radius"))


def pareto_plot(rows: Sequence[Mapping[str, Any]], float_metrics: Mapping[str, float], path: Path,
                title: str = "Mixed-precision search: certified robustness against BitOps",
                keys: Sequence[tuple[str, str]] | None = None) -> None:
    """Panels (default: certified accuracy at 0, 0.25, 0.5 and ACR) against the BitOps fraction.

    ``rows`` have ``method``, ``budget``, ``bitops_fraction`` and ``test`` metrics.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after selecting the Agg backend

    keys = list(keys or PANELS)
    ncols = 2
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, 3.75 * nrows), dpi=110, squeeze=False)
    budgets = sorted({float(r["budget"]) for r in rows})
    for ax, (key, label) in zip(axes.flat, keys):
        for method in ("uniform", "greedy", "random", "ddpg"):
            pts = sorted((r["bitops_fraction"], r["test"][key]) for r in rows if r["method"] == method)
            if not pts:
                continue
            color, marker = METHOD_STYLE[method]
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=marker, color=color, linestyle="-" if method == "ddpg" else ":",
                    markersize=11 if method == "ddpg" else 7, label=method, alpha=0.9)
        ax.axhline(float_metrics[key], color="black", linestyle="--", linewidth=1.0, label="float32 (100% BitOps)")
        for b in budgets:
            ax.axvline(b, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("BitOps / float BitOps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def markdown_table(rows: Sequence[Mapping[str, Any]], float_row: Mapping[str, Any],
                   keys: Sequence[str] | None = None) -> str:
    """The results table (one row per budget and method, plus the float model)."""
    keys = list(keys or [k for k, _ in PANELS])
    cols = " | ".join(k.replace("cert_acc", "CA").replace("acr", "ACR") for k in keys)
    lines = [f"| budget | method | bits per layer | BitOps % | {cols} | reward | certifications | search s |",
             "|" + "---|" * (len(keys) + 7)]
    fm = float_row["metrics"]
    lines.append("| - | float32 | 32 | 100 | " + " | ".join(f"{fm[k]:.3f}" for k in keys) + " | - | - | - |")
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['budget']:g} | {r['method']} | {'/'.join(str(b) for b in r['bits'])} | "
            f"{100 * r['bitops_fraction']:.3f} | " + " | ".join(f"{t[k]:.3f}" for k in keys)
            + f" | {r['reward']:.4f} | {r['certifications']} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"
