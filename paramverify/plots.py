"""Matplotlib figures for two-input case studies (Agg backend, PNG files).

Analogues of the seed paper's Figures 6-8:

* :func:`plot_epsilon_map` - sample inputs coloured by the epsilon proved
  (or estimated) at each, over the model's decision boundary;
* :func:`plot_flippable` - which inputs some admissible parameter change can
  flip, with the decision boundary and the ``level -/+ sigma`` bands;
* :func:`plot_bracket_bars` - ``[lower, upper]`` brackets as horizontal bars.

Every function draws on its own :class:`matplotlib.figure.Figure` attached to
an Agg canvas (no pyplot, no global state, no display needed), writes a PNG
at 120 dpi and returns its path.  ``boundary`` is a callable mapping an
``[M, 2]`` float64 array of inputs to the model's probabilities (shape
``[M]`` or ``[M, 1]``); it is evaluated on a grid and contoured at ``level``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from paramverify.errors import SpecError
from paramverify.fileio import atomic_path

DPI = 120
Boundary = Callable[[np.ndarray], np.ndarray]

_CLASS_COLOURS = ("#1f77b4", "#ff7f0e")
_FLIP_COLOUR = "#d62728"


def _points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
        raise SpecError("points", f"expected a non-empty [N, 2] array, got shape {pts.shape}",
                        "these plots are for two-input models")
    if not np.all(np.isfinite(pts)):
        raise SpecError("points", "contains NaN or infinite coordinates")
    return pts


def _per_point(values: np.ndarray, n: int, field: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != (n,):
        raise SpecError(field, f"expected one value per point ({n}), got shape {np.shape(values)}")
    return arr


def _labels(feature_names: Sequence[str]) -> tuple[str, str]:
    names = tuple(feature_names)
    if len(names) != 2:
        raise SpecError("feature_names", f"need exactly two names, got {names!r}")
    return str(names[0]), str(names[1])


def _extent(pts: np.ndarray, domain: tuple[Sequence[float], Sequence[float]] | None) -> tuple[np.ndarray, np.ndarray]:
    """Plot window: ``domain`` if given, else the points' box padded by 3 %."""
    if domain is not None:
        lo, hi = (np.asarray(b, dtype=np.float64).reshape(-1) for b in domain)
        if lo.shape != (2,) or hi.shape != (2,) or np.any(lo >= hi):
            raise SpecError("domain", "expected (lo, hi) with two coordinates each and lo < hi")
    else:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = np.where(hi > lo, 0.03 * (hi - lo), 1.0)
    return lo - pad, hi + pad


def _grid(boundary: Boundary, lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``boundary`` on an ``n x n`` grid; return ``(gx, gy, values)``."""
    if not callable(boundary):
        raise SpecError("boundary", "must be a callable mapping [M, 2] inputs to probabilities")
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    flat = np.column_stack([gx.ravel(), gy.ravel()])
    vals = np.asarray(boundary(flat), dtype=np.float64)
    if vals.ndim == 2 and vals.shape[1] == 1:
        vals = vals[:, 0]
    if vals.shape != (flat.shape[0],):
        raise SpecError("boundary", f"returned shape {vals.shape} for {flat.shape[0]} inputs",
                        "return one probability per input row")
    return gx, gy, vals.reshape(gx.shape)


def _contour_if_crossed(ax: Axes, gx: np.ndarray, gy: np.ndarray, vals: np.ndarray, level: float,
                        **kwargs: object) -> bool:
    """Draw the ``level`` contour if the grid crosses it; return whether it did."""
    if not (np.nanmin(vals) < level < np.nanmax(vals)):
        return False
    ax.contour(gx, gy, vals, levels=[level], **kwargs)
    return True


def _new_figure(figsize: tuple[float, float] = (6.6, 5.0)) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    if not out.parent.is_dir():
        raise SpecError("path", f"directory {str(out.parent)!r} does not exist", "create it first")
    fig.tight_layout()
    with atomic_path(out) as tmp:  # an interrupted run never leaves a truncated figure
        fig.savefig(tmp, dpi=DPI, format="png")
    return out


def plot_epsilon_map(
    points: np.ndarray,
    eps: np.ndarray,
    boundary: Boundary,
    path: str | Path,
    title: str = "",
    feature_names: Sequence[str] = ("x1", "x2"),
    level: float = 0.5,
    domain: tuple[Sequence[float], Sequence[float]] | None = None,
    eps_label: str = "epsilon",
    log_scale: bool | None = None,
    grid_size: int = 200,
) -> Path:
    """Scatter ``points`` coloured by ``eps`` over the decision boundary.

    Non-finite ``eps`` (no bound found) are drawn as grey crosses.  The
    colour scale is logarithmic when ``log_scale`` is True, or (``None``)
    when all finite values are positive and span more than two decades.
    """
    pts = _points(points)
    e = _per_point(eps, pts.shape[0], "eps").astype(np.float64)
    xname, yname = _labels(feature_names)
    lo, hi = _extent(pts, domain)
    finite = np.isfinite(e)
    fig, ax = _new_figure()
    gx, gy, vals = _grid(boundary, lo, hi, grid_size)
    ax.contourf(gx, gy, vals, levels=[-np.inf, level, np.inf], colors=["#e8eef7", "#fbeee0"], alpha=0.8)
    handles: list[Line2D | Patch] = [
        Patch(facecolor="#e8eef7", edgecolor="none", label=f"f0 < {level:g}"),
        Patch(facecolor="#fbeee0", edgecolor="none", label=f"f0 > {level:g}"),
    ]
    if _contour_if_crossed(ax, gx, gy, vals, level, colors="k", linewidths=1.6):
        handles.append(Line2D([], [], color="k", lw=1.6, label=f"decision boundary (f0 = {level:g})"))
    if finite.any():
        fe = e[finite]
        use_log = log_scale if log_scale is not None else bool(
            np.all(fe > 0) and fe.max() > 100.0 * fe.min())
        if use_log and np.all(fe > 0):
            norm: Normalize = LogNorm(vmin=float(fe.min()), vmax=float(fe.max()))
        else:
            norm = Normalize(vmin=float(fe.min()), vmax=float(max(fe.max(), fe.min() + 1e-300)))
        sc = ax.scatter(pts[finite, 0], pts[finite, 1], c=fe, cmap="viridis", norm=norm, s=14,
                        edgecolors="none", alpha=0.9, zorder=3)
        cbar = fig.colorbar(sc, ax=ax)
        cbar.set_label(eps_label)
    if (~finite).any():
        ax.scatter(pts[~finite, 0], pts[~finite, 1], marker="x", c="0.45", s=16, linewidths=0.8, zorder=3)
        handles.append(Line2D([], [], marker="x", color="0.45", ls="none", label=f"no bound ({int((~finite).sum())})"))
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    ax.set_title(title or f"{eps_label} at {pts.shape[0]} inputs")
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def _sigmas(sigma_by_class: Mapping[int, float] | Sequence[float]) -> tuple[float, float]:
    try:
        s0, s1 = float(sigma_by_class[0]), float(sigma_by_class[1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SpecError("sigma_by_class", f"need sigma for classes 0 and 1, got {sigma_by_class!r}",
                        "pass (sigma0, sigma1) or {0: sigma0, 1: sigma1}") from exc
    if not (s0 >= 0 and s1 >= 0):  # also rejects NaN
        raise SpecError("sigma_by_class", f"sigmas must be >= 0, got {(s0, s1)}")
    return s0, s1


def plot_flippable(
    points: np.ndarray,
    flippable: np.ndarray,
    f0_values: np.ndarray,
    level: float,
    sigma_by_class: Mapping[int, float] | Sequence[float],
    boundary: Boundary,
    path: str | Path,
    title: str = "",
    feature_names: Sequence[str] = ("x1", "x2"),
    class_names: Sequence[str] = ("class 0", "class 1"),
    domain: tuple[Sequence[float], Sequence[float]] | None = None,
    grid_size: int = 200,
) -> Path:
    """Flippable vs. non-flippable inputs, the decision boundary and sigma bands.

    A point's class is ``f0 > level`` (from ``f0_values``).  ``sigma0`` is how
    far the output of a class-0 point can rise and ``sigma1`` how far that
    of a class-1 point can fall, so the bands ``level - sigma0 < f0 <=
    level`` and ``level < f0 < level + sigma1`` hold the points that may flip;
    both band edges are drawn as dashed contours and the bands shaded.
    """
    pts = _points(points)
    n = pts.shape[0]
    flip = _per_point(flippable, n, "flippable").astype(bool)
    f0 = _per_point(f0_values, n, "f0_values").astype(np.float64)
    s0, s1 = _sigmas(sigma_by_class)
    xname, yname = _labels(feature_names)
    cnames = tuple(str(c) for c in class_names)
    if len(cnames) != 2:
        raise SpecError("class_names", f"need two class names, got {cnames!r}")
    lo, hi = _extent(pts, domain)
    fig, ax = _new_figure()
    gx, gy, vals = _grid(boundary, lo, hi, grid_size)
    handles: list[Line2D | Patch] = []
    if s0 + s1 > 0 and np.nanmin(vals) < level + s1 and np.nanmax(vals) > level - s0:
        ax.contourf(gx, gy, vals, levels=[level - s0, level + s1], colors=["#f3d9d9"], alpha=0.7)
        handles.append(Patch(facecolor="#f3d9d9", edgecolor="none",
                             label=f"{level - s0:.3g} < f0 < {level + s1:.3g}"))
    if _contour_if_crossed(ax, gx, gy, vals, level, colors="k", linewidths=1.6):
        handles.append(Line2D([], [], color="k", lw=1.6, label=f"decision boundary (f0 = {level:g})"))
    if s0 > 0 and _contour_if_crossed(ax, gx, gy, vals, level - s0, colors=_CLASS_COLOURS[0],
                                      linewidths=1.2, linestyles="--"):
        handles.append(Line2D([], [], color=_CLASS_COLOURS[0], lw=1.2, ls="--",
                              label=f"f0 = level - sigma0 (sigma0 = {s0:.3g})"))
    if s1 > 0 and _contour_if_crossed(ax, gx, gy, vals, level + s1, colors=_CLASS_COLOURS[1],
                                      linewidths=1.2, linestyles="--"):
        handles.append(Line2D([], [], color=_CLASS_COLOURS[1], lw=1.2, ls="--",
                              label=f"f0 = level + sigma1 (sigma1 = {s1:.3g})"))
    cls = f0 > level
    for k, mask in enumerate((~cls, cls)):
        keep = mask & ~flip
        ax.scatter(pts[keep, 0], pts[keep, 1], s=12, c=_CLASS_COLOURS[k], alpha=0.55, edgecolors="none", zorder=3)
        handles.append(Line2D([], [], marker="o", ls="none", color=_CLASS_COLOURS[k], alpha=0.7,
                              label=f"{cnames[k]}, not flippable ({int(keep.sum())})"))
    ax.scatter(pts[flip, 0], pts[flip, 1], s=34, marker="X", c=_FLIP_COLOUR, edgecolors="k",
               linewidths=0.4, zorder=4)
    handles.append(Line2D([], [], marker="X", ls="none", color=_FLIP_COLOUR, markeredgecolor="k",
                          label=f"flippable ({int(flip.sum())})"))
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(xname)
    ax.set_ylabel(yname)
    ax.set_title(title or f"flippable inputs ({int(flip.sum())} of {n})")
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_bracket_bars(
    labels: Sequence[str],
    lower: Sequence[float],
    upper: Sequence[float],
    path: str | Path,
    title: str = "",
    xlabel: str = "value",
    estimates: Sequence[float] | None = None,
    log_scale: bool = False,
) -> Path:
    """Horizontal bars for brackets ``[lower_i, upper_i]``, one row per label.

    An infinite upper end is drawn to the right edge with an arrow head;
    ``estimates`` (optional) are marked with a diamond inside the bar.
    """
    names = [str(s) for s in labels]
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    up = np.asarray(upper, dtype=np.float64).reshape(-1)
    if len(names) == 0 or lo.shape != (len(names),) or up.shape != (len(names),):
        raise SpecError("lower", "labels, lower and upper need the same non-zero length")
    if np.any(np.isnan(lo)) or np.any(np.isnan(up)) or np.any(lo > up) or not np.all(np.isfinite(lo)):
        raise SpecError("lower", "need finite lower <= upper (upper may be +inf)")
    est = None if estimates is None else np.asarray(estimates, dtype=np.float64).reshape(-1)
    if est is not None and est.shape != lo.shape:
        raise SpecError("estimates", "need one estimate per label")
    if log_scale and np.any(lo <= 0):
        raise SpecError("lower", "log scale needs positive lower ends", "pass log_scale=False")
    known = np.concatenate([lo, up[np.isfinite(up)], [] if est is None else est[np.isfinite(est)]])
    right = float(known.max())
    right_edge = right * 3.0 if log_scale else right + 0.15 * max(right - float(lo.min()), abs(right), 1e-12)
    fig, ax = _new_figure(figsize=(6.6, 1.2 + 0.45 * len(names)))
    ys = np.arange(len(names))[::-1]
    for y, a, b in zip(ys, lo, up):
        end = b if np.isfinite(b) else right_edge
        ax.plot([a, end], [y, y], color="#1f77b4", lw=6, solid_capstyle="butt", alpha=0.8)
        ax.plot([a], [y], marker="|", color="k", ms=14)
        ax.plot([end], [y], marker="|" if np.isfinite(b) else ">", color="k", ms=14 if np.isfinite(b) else 8)
    if est is not None:
        ax.plot(est, ys, ls="none", marker="D", color=_FLIP_COLOUR, ms=5, label="estimate")
        ax.legend(loc="best", fontsize=8)
    if log_scale:
        ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title or "brackets [lower, upper]")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
