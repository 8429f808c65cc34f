"""Figures and number formatting for the HTML report (:mod:`paramverify.report`).

Every figure is drawn on an Agg canvas with fixed margins and returned as a
``data:`` PNG URI, so the report stays one self-contained file.  matplotlib is
imported inside the functions, so that building the command-line parser stays fast.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

DPI = 100
#: model colours (no red: red marks label flips)
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_CLASS_BG = ("#e8eef7", "#fbeee0", "#e9f5e9", "#f3e8f5", "#fff6d5")

# ----------------------------------------------------------------------------- numbers


def fmt(value: Any, kind: str = "num") -> str:
    """The one way a JSON number is printed in a report.

    ``kind``: "num" (4 significant digits), "pct" (a fraction as percent),
    "int", "s" (seconds).  ``None`` prints as an em dash, JSON's "inf" as the
    infinity sign.
    """
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        if value in ("inf", "+inf"):
            return "\u221e"
        return "\u2212\u221e" if value == "-inf" else value
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "\u221e" if v > 0 else "\u2212\u221e"
    if kind == "pct":
        return f"{100.0 * v:.1f}%"
    if kind == "int":
        return str(int(round(v)))
    if kind == "s":
        return f"{v:.2f}"
    return f"{v:.4g}"


def num(value: Any) -> float:
    """A JSON number (or "inf"/"-inf"/None) as a float (None -> nan)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}.get(value, math.nan)
    return float(value)



# ----------------------------------------------------------------------------- figures


def _figure(width: float, height: float, left: float = 0.6, bottom: float = 0.55, top: float = 0.35, wspace: float = 0.3,
            right: float = 0.15) -> Figure:
    """A figure on an Agg canvas with fixed margins in inches (no tight_layout: it costs seconds per figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, wspace=wspace)
    return fig


def _quiet_log_axes(ax: Axes) -> None:
    """Log axes without minor tick labels (they crowd the axis and are slow to lay out)."""
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())


def png_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: str) -> str | None:
    """A PNG file as a data URI, or None when it is not there."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as fh:
        return "data:image/png;base64," + base64.b64encode(fh.read()).decode("ascii")


def _positive(values: Sequence[float]) -> bool:
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    return arr.size > 0 and bool(np.all(arr > 0))


def plot_epsilon_curves(models: Sequence[dict[str, Any]]) -> str | None:
    """Epsilon against delta per model: global bracket (band) and the local maximum."""
    fig = _figure(11.0, 4.2, left=0.75)
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    drawn = [False, False]
    for i, m in enumerate(models):
        c = _COLOURS[i % len(_COLOURS)]
        glob = [e for e in m.get("epsilon_global", []) if "upper" in e]
        if glob:
            d = [num(e["delta"]) for e in glob]
            axes[0].fill_between(d, [num(e["lower"]) for e in glob], [num(e["upper"]) for e in glob], color=c, alpha=0.2)
            axes[0].plot(d, [num(e["upper"]) for e in glob], "-o", color=c, ms=4, label=f"{m['name']} (proved upper)")
            drawn[0] = True
        loc = [e for e in m.get("epsilon_local", []) if "max" in e]
        if loc:
            d = [num(e["delta"]) for e in loc]
            axes[1].fill_between(d, [num(e["max"]["lower"]) for e in loc], [num(e["max"]["upper"]) for e in loc], color=c, alpha=0.2)
            axes[1].plot(d, [num(e["max"]["upper"]) for e in loc], "-o", color=c, ms=4, label=f"{m['name']} max")
            axes[1].plot(d, [num(e["median"]["upper"]) for e in loc], ":", color=c, label=f"{m['name']} median")
            drawn[1] = True
    if not any(drawn):
        return None
    titles = ("global: largest output change over the data box", "local: at the test inputs")
    for ax, title, ok in zip(axes, titles, drawn):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("delta (|p - p0| <= delta on every weight and bias)")
        ax.set_ylabel("epsilon")
        ax.grid(alpha=0.3, which="both")
        if ok:
            ys = [v for line in ax.get_lines() for v in line.get_ydata()]
            if _positive(ys):
                ax.set_yscale("log")
            ax.set_xscale("log")
            _quiet_log_axes(ax)
            ax.legend(fontsize=7)
    return png_uri(fig)


def plot_delta_curves(models: Sequence[dict[str, Any]]) -> str | None:
    """Fraction of test inputs whose label is kept at each delta (proved and witnessed)."""
    rows = [(m, m["max_delta"]) for m in models if m.get("max_delta", {}).get("lower")]
    if not rows:
        return None
    fig = _figure(5.8, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    allv = np.concatenate([[num(v) for v in md["lower"] + md["upper"]] for _, md in rows])
    allv = allv[np.isfinite(allv) & (allv > 0)]
    lo = float(allv.min()) / 2 if allv.size else 1e-4
    hi = float(allv.max()) * 2 if allv.size else 1.0
    grid = np.geomspace(lo, hi, 200)
    for m, md in rows:
        c = _COLOURS[models.index(m) % len(_COLOURS)]
        lower = np.array([num(v) for v in md["lower"]])
        upper = np.array([num(v) for v in md["upper"]])
        ax.plot(grid, [(lower >= g).mean() for g in grid], "-", color=c, label=f"{m['name']}: proved kept")
        ax.plot(grid, [(upper >= g).mean() for g in grid], "--", color=c, alpha=0.7, label=f"{m['name']}: not yet flipped")
    ax.set_xscale("log")
    _quiet_log_axes(ax)
    ax.set_xlabel("delta")
    ax.set_ylabel("fraction of test inputs")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("labels kept under |p - p0| <= delta (true curve lies between)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return png_uri(fig)


def plot_certified_bars(models: Sequence[dict[str, Any]]) -> str | None:
    """Stacked bars per rounding width: certified, unknown, falsified fractions."""
    bits = sorted({c["bits"] for m in models for c in m.get("certified", [])}, reverse=True)
    if not bits:
        return None
    fig = _figure(5.8, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        by = {c["bits"]: c for c in m.get("certified", [])}
        xs = [j + i * width for j, b in enumerate(bits) if b in by]
        rows = [by[b] for b in bits if b in by]
        if not rows:
            continue
        cert = np.array([r["certified"] / max(1, r["total"]) for r in rows])
        fals = np.array([r["falsified"] / max(1, r["total"]) for r in rows])
        unk = 1.0 - cert - fals
        c = _COLOURS[i % len(_COLOURS)]
        ax.bar(xs, cert, width * 0.95, color=c, label=f"{m['name']} certified")
        ax.bar(xs, unk, width * 0.95, bottom=cert, color=c, alpha=0.25, hatch="//")
        ax.bar(xs, fals, width * 0.95, bottom=cert + unk, color="#b00000", alpha=0.8)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(bits))])
    ax.set_xticklabels([f"{b}-bit rounding box" for b in bits])
    ax.set_ylabel("fraction of test inputs")
    ax.set_ylim(0, 1.02)
    ax.set_title("labels certified (solid), undecided (hatched), flipped (red)", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    return png_uri(fig)


def _regions(ax: Axes, mp: dict[str, Any], level: float) -> None:
    g = mp["grid"]
    gx, gy = np.meshgrid(np.asarray(g["x"], float), np.asarray(g["y"], float))
    if "f0" in g:
        f0 = np.asarray(g["f0"], float)
        ax.contourf(gx, gy, f0, levels=[-np.inf, level, np.inf], colors=_CLASS_BG[:2], alpha=0.8)
        if f0.min() < level < f0.max():
            ax.contour(gx, gy, f0, levels=[level], colors="k", linewidths=1.5)
    else:
        lab = np.asarray(g["label"], float)
        k = int(lab.max()) + 1
        ax.contourf(gx, gy, lab, levels=np.arange(-0.5, k + 0.5), colors=list(_CLASS_BG[:k]) if k <= len(_CLASS_BG) else None, alpha=0.8)
        if k > 1:
            ax.contour(gx, gy, lab, levels=np.arange(0.5, k - 0.5 + 1e-9), colors="k", linewidths=1.2)


def shared_norm(values: Sequence[float]) -> Normalize | None:
    """One colour scale for every map: logarithmic when the positive values span over two decades."""
    from matplotlib.colors import LogNorm, Normalize

    eps = np.asarray(values, dtype=float)
    eps = eps[np.isfinite(eps)]
    if not eps.size:
        return None
    if np.all(eps > 0) and eps.max() > 100 * eps.min():
        return LogNorm(float(eps.min()), float(eps.max()))
    return Normalize(float(eps.min()), float(max(eps.max(), eps.min() + 1e-12)))


def plot_map(model: dict[str, Any], features: Sequence[str], eps_norm: Normalize | None) -> str:
    """Figures 6-8 analogues for a 2-D model: epsilon colour map, flippable points, sigma bands."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    mp, level = model["map"], float(model.get("level", 0.5))
    pts = np.asarray(mp["points"], dtype=float)
    eps = np.array([num(v) for v in mp["eps_upper"]])
    status = np.asarray(mp["status"])
    fig = _figure(12.4, 4.3, wspace=0.3, right=2.3)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for ax in (ax1, ax2):
        _regions(ax, mp, level)
        ax.set_xlabel(features[0])
        ax.set_ylabel(features[1])
    ok = np.isfinite(eps)
    sc = ax1.scatter(pts[ok, 0], pts[ok, 1], c=eps[ok], cmap="viridis", norm=eps_norm, s=12, edgecolors="none")
    fig.colorbar(sc, ax=ax1).set_label("proved local epsilon")
    ax1.set_title(f"{model['name']}: local epsilon at delta {fmt(mp['delta'])}", fontsize=10)
    g = mp["grid"]
    handles: list[Line2D | Patch] = []
    sig = {s["class"]: num(s["upper"]) for s in model.get("sigma", []) if "upper" in s and num(s.get("delta")) == num(mp["delta"])}
    if "f0" in g and 0 in sig and 1 in sig and np.isfinite(sig[0]) and np.isfinite(sig[1]):
        gx, gy = np.meshgrid(np.asarray(g["x"], float), np.asarray(g["y"], float))
        f0 = np.asarray(g["f0"], float)
        lo_b, hi_b = level - sig[0], level + sig[1]
        if f0.min() < hi_b and f0.max() > lo_b and hi_b > lo_b:
            ax2.contourf(gx, gy, f0, levels=[lo_b, hi_b], colors=["#f3c9c9"], alpha=0.75)
        for v, c in ((lo_b, _COLOURS[0]), (hi_b, _COLOURS[4])):
            if f0.min() < v < f0.max() and v != level:
                ax2.contour(gx, gy, f0, levels=[v], colors=c, linewidths=1.1, linestyles="--")
        handles.append(Patch(facecolor="#f3c9c9", label=f"sigma band {lo_b:.3g} < f0 < {hi_b:.3g}"))
    for name, marker, colour, size in (("certified", "o", "#2b6cb0", 10), ("unknown", "o", "#999999", 14), ("flippable", "X", "#d62728", 36)):
        sel = status == name
        if sel.any():
            ax2.scatter(pts[sel, 0], pts[sel, 1], marker=marker, c=colour, s=size, edgecolors="k" if name == "flippable" else "none",
                        linewidths=0.4, zorder=3)
        handles.append(Line2D([], [], marker=marker, ls="none", color=colour, label=f"{name} ({int(sel.sum())})"))
    ax2.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax2.set_title(f"{model['name']}: labels under delta {fmt(mp['delta'])}, sigma bands", fontsize=10)
    return png_uri(fig)


def plot_bracket_rows(labels: Sequence[str], lower: Sequence[float], upper: Sequence[float], title: str) -> str | None:
    """One bar per bracket from 0 to its upper end, the bracket itself dark (for bound and reproduce results)."""
    lo, up = np.array(lower, float), np.array(upper, float)
    if lo.size == 0 or not np.all(np.isfinite(lo)):
        return None
    fig = _figure(7.0, 1.0 + 0.32 * len(labels), left=2.4)
    ax = fig.add_subplot(1, 1, 1)
    ys = np.arange(len(labels))[::-1]
    end = np.where(np.isfinite(up), up, lo * 1.2)
    ax.barh(ys, end, color="#c6dbef", height=0.6)
    ax.barh(ys, np.maximum(end - lo, end * 2e-3), left=lo, color=_COLOURS[0], height=0.6)
    for y, e in zip(ys, end):
        ax.text(e, y, f" {fmt(e)}", va="center", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, float(end.max()) * 1.15)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return png_uri(fig)


# ----------------------------------------------------------------------------- ranking
