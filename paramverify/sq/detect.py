"""MI-based attack detection and the Adversarial Information Plane (the paper's Fig. 6).

An SQ network's ``I(X~; T~)`` (:meth:`SQNet.mi_per_image`) differs between clean and
attacked images.  The detector's threshold is the average MI over clean data; an image
is flagged when its MI lies on the attacked side of it (``direction`` ``"above"``:
MI larger than the threshold, the default; ``"below"`` the opposite).  The ROC curve
sweeps the threshold over every score; the AUC is the Mann-Whitney statistic
(ties count one half), i.e. the probability that a random attacked image scores
more anomalous than a random clean one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paramverify.errors import SpecError
from paramverify.sq.model import SQNet


@torch.no_grad()
def mi_scores(net: SQNet, x: np.ndarray, samples: int, batch: int = 64, seed: int = 0) -> np.ndarray:
    """``I(X~; T~)`` in bits per image from ``samples`` SQ samples each."""
    net.set_generator(torch.Generator().manual_seed(seed))
    try:
        out = [net.mi_per_image(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)), samples)
               for i in range(0, len(x), batch)]
    finally:
        net.set_generator(None)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def auc(clean: np.ndarray, attacked: np.ndarray) -> float:
    """P(attacked score > clean score) + P(tie) / 2 (the area under the ROC curve)."""
    clean, attacked = np.asarray(clean, np.float64), np.asarray(attacked, np.float64)
    if len(clean) == 0 or len(attacked) == 0:
        raise SpecError("scores", "the AUC needs clean and attacked scores")
    allv = np.concatenate([clean, attacked])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(sorted_v):  # average ranks of ties
        j = i
        while j + 1 < len(sorted_v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_att = ranks[len(clean):].sum()
    u = r_att - len(attacked) * (len(attacked) + 1) / 2
    return float(u / (len(clean) * len(attacked)))


def roc_curve(clean: np.ndarray, attacked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` for every threshold (flag when score >= threshold), from (0, 0) to (1, 1)."""
    thresholds = np.unique(np.concatenate([clean, attacked]))[::-1]
    fpr = [0.0] + [float(np.mean(clean >= t)) for t in thresholds]
    tpr = [0.0] + [float(np.mean(attacked >= t)) for t in thresholds]
    return np.asarray(fpr), np.asarray(tpr)


@dataclass(frozen=True)
class Detection:
    """One attack's detection figures: threshold (clean mean MI), direction, rates at it, AUC, ROC."""

    threshold: float
    direction: str
    tpr: float
    fpr: float
    auc: float
    fpr_curve: tuple[float, ...]
    tpr_curve: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {"threshold": self.threshold, "direction": self.direction, "tpr": self.tpr, "fpr": self.fpr,
                "auc": self.auc, "roc": {"fpr": list(self.fpr_curve), "tpr": list(self.tpr_curve)}}


def detect(clean: np.ndarray, attacked: np.ndarray, direction: str = "above", max_points: int = 200) -> Detection:
    """Threshold at the clean mean; ROC and AUC with attacked images as positives."""
    if direction not in ("above", "below"):
        raise SpecError("direction", f"unknown direction {direction!r}", "use above or below")
    clean, attacked = np.asarray(clean, np.float64), np.asarray(attacked, np.float64)
    sign = 1.0 if direction == "above" else -1.0
    thr = float(clean.mean())
    fpr, tpr = roc_curve(sign * clean, sign * attacked)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    flag = (lambda s: s > thr) if direction == "above" else (lambda s: s < thr)
    return Detection(thr, direction, float(np.mean(flag(attacked))), float(np.mean(flag(clean))),
                     auc(sign * clean, sign * attacked), tuple(map(float, fpr)), tuple(map(float, tpr)))


def plot_aip(lines: dict[str, list[tuple[float, float, float]]], path: str | Path, clean_mi: float | None = None,
             title: str = "Adversarial Information Plane") -> Path:
    """PNG of MI (x) against accuracy (y), one line per attack; points ``(eps, mi, accuracy)`` by eps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, pts in lines.items():
        pts = sorted(pts)
        ax.plot([p[1] for p in pts], [100 * p[2] for p in pts], "o-", label=name)
        for eps, mi, acc in pts:
            ax.annotate(f"{eps:g}", (mi, 100 * acc), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if clean_mi is not None:
        ax.axvline(clean_mi, color="grey", ls="--", lw=1, label="clean mean MI")
    ax.set_xlabel("I(X~; T~) [bits, mean over images]")
    ax.set_ylabel("accuracy [%]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def _save_png(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from paramverify.fileio import atomic_path

    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def plot_roc(curves: dict[str, Detection], path: str | Path) -> Path:
    """PNG of the ROC curves of several attacks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for name, d in curves.items():
        ax.plot(d.fpr_curve, d.tpr_curve, label=f"{name} (AUC {d.auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("MI detector ROC")
    ax.legend(fontsize=7)
    return _save_png(fig, path)
