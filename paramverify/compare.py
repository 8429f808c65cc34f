"""``paramverify compare``: which activation keeps labels best under parameter rounding?

Either trains one MLP per activation on a CSV data set (same seed, split and
epochs; each exported to ONNX) or takes ONNX models directly, then computes
for every model, with proved brackets:

* the largest output change epsilon for each delta of a grid, globally over
  the data's bounding box (the bound engine, one query each) and locally at
  the test inputs (batched per-input bounds, summarised by max and median);
* per test input, the largest delta that keeps its label, and the fraction
  of test inputs whose label is certified under 8-, 6- and 4-bit rounding
  boxes (with the fraction whose flip was replayed on onnxruntime);
* sigma per class at a reference delta; clean accuracy;
* for two-input models, the data for the decision-boundary figures.

Guarantees: every "lower"/"upper" pair is a bracket of the true value in
real arithmetic.  Proof sides come from the bound engine (``api.bound`` or
its sound per-input bounds); witness sides are concrete parameters checked
with :func:`paramverify.replay.witness` (output changes) or replayed with
:func:`paramverify.replay.confirm` (label flips).  A "certified" count is a
proof; a "falsified" count only counts replayed flips.

Queries run step by step across the models (all models get a quantity
before the next quantity starts), so an interrupted run compares like with
like; what finished is kept, the rest is listed under ``"missing"``.  The
HTML report is rendered from the JSON alone (:mod:`paramverify.report`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from paramverify import __version__
from paramverify.errors import SpecError

if TYPE_CHECKING:
    from paramverify.ir import Graph
    from paramverify.options import Options
    from paramverify.progress import ConsoleProgress
    from paramverify.specs import ParamBox

# The model, engine and ONNX modules are imported inside the functions that use them, so
# that building the command-line parser (add_compare_subparser) stays fast.

DEFAULT_DELTAS = (0.001, 0.0025, 0.005, 0.01, 0.02)
DEFAULT_BITS = (8, 6, 4)
#: per-parameter secant directions are computed only up to this many parameter elements
MAX_SECANT_PARAMS = 4000
#: the greedy corner search flips single parameters only up to this many parameter elements
MAX_GREEDY_PARAMS = 300
#: the activations paramverify.train offers (a test checks they agree)
ACTIVATION_NAMES = ("relu", "linear", "tanh", "sigmoid", "leaky_relu")
#: largest delta searched per input (a flip is always found far below on trained models)
T_MAX = 100.0


@dataclass(frozen=True)
class Settings:
    """What is computed for every model (see ``add_compare_subparser`` for meanings)."""

    deltas: tuple[float, ...] = DEFAULT_DELTAS
    bits: tuple[int, ...] = DEFAULT_BITS
    ref_delta: float = 0.01
    timeout_s: float = 5.0
    tolerance: float = 0.002
    seed: int = 0
    max_points: int = 40
    map_points: int = 300
    grid: int = 60
    level: float = 0.5
    backend: str = "bounds"

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features ``X`` ``[N, d]`` (float64), integer labels ``y`` and their names."""

    X: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    label: str
    classes: tuple[str, ...]
    path: str


@dataclass(frozen=True, eq=False)
class Entry:
    """One model under comparison."""

    name: str
    graph: Graph
    activation: str | None
    onnx: str
    train_accuracy: float | None = None


# ----------------------------------------------------------------------------- data


def load_csv(path: str, features: Sequence[str] | None = None, label: str | None = None) -> Dataset:
    """Read a CSV with a header row.

    Default: every column but the last is a feature, the last is the label.
    Labels are mapped to class indices 0..k-1 in sorted order (numerically
    if every label is a number, else as strings), e.g. ``f, m -> 0, 1``.
    """
    if not os.path.isfile(path):
        raise SpecError("data", f"file '{path}' not found", "pass a CSV file with a header row")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    if len(rows) < 3:
        raise SpecError("data", f"'{path}' needs a header row and at least two data rows")
    header = [h.strip() for h in rows[0]]
    label = label or header[-1]
    feats = list(features) if features else [h for h in header if h != label]
    for col in [*feats, label]:
        if col not in header:
            raise SpecError("features" if col != label else "label", f"column '{col}' is not in {path}", f"columns: {', '.join(header)}")
    if label in feats or not feats:
        raise SpecError("features", "need at least one feature column, and the label may not be one", "e.g. --features ht,wt --label sex")
    idx = [header.index(c) for c in feats]
    X = np.empty((len(rows) - 1, len(feats)))
    raw_labels = []
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise SpecError("data", f"line {i} of {path} has {len(r)} fields, the header has {len(header)}")
        try:
            X[i - 2] = [float(r[j]) for j in idx]
        except ValueError as exc:
            raise SpecError("data", f"line {i} of {path} has a non-numeric feature ({exc})", "features must be numbers") from exc
        raw_labels.append(r[header.index(label)].strip())
    if not np.all(np.isfinite(X)):
        raise SpecError("data", f"{path} contains a non-finite feature value")
    try:
        keys: dict[str, Any] = {s: float(s) for s in raw_labels}
    except ValueError:
        keys = {s: s for s in raw_labels}
    values = sorted(set(keys.values()))
    if len(values) < 2:
        raise SpecError("label", f"column '{label}' holds only one class", "a classifier needs at least two")
    names = tuple(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values)
    y = np.array([values.index(keys[s]) for s in raw_labels], dtype=np.int64)
    return Dataset(X, y, tuple(feats), label, names, path)


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split into (train, test) row indices, each sorted."""
    if not 0 < test_fraction < 1:
        raise SpecError("test_fraction", f"must lie strictly between 0 and 1, got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, round(test_fraction * n)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def train_entries(data: Dataset, train_idx: np.ndarray, hidden: Sequence[int], activations: Sequence[str], seed: int,
                  epochs: int, lr: float, out_dir: str, progress: ConsoleProgress) -> list[Entry]:
    """Train one MLP per activation with identical settings; export each to ``out_dir/<activation>.onnx``."""
    from paramverify.ir import load_model
    from paramverify.train import export_onnx, train_mlp
    entries = []
    for act in activations:
        progress.update(f"training {act} MLP {list(hidden)} ({epochs} epochs)")
        model = train_mlp(data.X[train_idx], data.y[train_idx], hidden, act, seed, epochs, lr, standardize=True)
        path = os.path.join(out_dir, f"{act}.onnx")
        export_onnx(model, path, feature_names=data.features, class_names=data.classes,
                    doc_string=f"paramverify compare: {act} MLP {list(hidden)}, seed {seed}, {epochs} epochs")
        graph = load_model(path)
        acc = _accuracy(graph, data.X[train_idx], data.y[train_idx], 0.5)
        entries.append(Entry(act, graph, act, path, acc))
        progress.note(f"trained {act}: train accuracy {acc:.3f}")
    return entries


def _entry(path: str) -> Entry:
    """A given ONNX model; its activation comes from the metadata ``paramverify.train`` writes, if any."""
    from paramverify.ir import load_model
    from paramverify.train import ACTIVATIONS
    graph = load_model(path)
    meta = {p.key: p.value for p in graph.model.metadata_props}
    act = meta.get("activation") if meta.get("activation") in ACTIVATIONS else None
    return Entry(os.path.splitext(os.path.basename(path))[0], graph, act, path)


def _accuracy(graph: Graph, X: np.ndarray, y: np.ndarray, level: float) -> float:
    from paramverify.properties import labels
    return float(np.mean(labels(graph.evaluate(X), level) == y))


# ----------------------------------------------------------------------------- per-input bounds


@dataclass(frozen=True, eq=False)
class PointBounds:
    """Proved facts at N inputs for every parameter in a box (real arithmetic).

    ``kept[i]``: the label of input i is kept; ``change[i]``: an upper bound
    of ``|f_p(x_i) - f_p0(x_i)|_inf``.
    """

    kept: np.ndarray
    change: np.ndarray


def point_bounds(graph: Graph, box: ParamBox, points: np.ndarray, settings: Settings) -> PointBounds:
    """Sound per-input bounds over ``box``, batched over the inputs.

    Uses the bound engine's differential interval bounds on N point regions
    at once; if that module is not importable, one ``api.verify``/``api.bound``
    query per input (slower, equally sound).
    """
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    try:
        from paramverify.bounds.sound import box_outputs, change_upper, label_kept_certified
    except ImportError:
        return _point_bounds_api(graph, box, points, settings)
    out = box_outputs(graph, box, points, points)
    return PointBounds(np.asarray(label_kept_certified(out, settings.level, None), bool), np.asarray(change_upper(out), float))


def _point_bounds_api(graph: Graph, box: ParamBox, points: np.ndarray, settings: Settings) -> PointBounds:
    from paramverify import api
    from paramverify.options import Options
    from paramverify.properties import Problem
    from paramverify.specs import InputRegion
    opts = Options(timeout_s=settings.timeout_s, tolerance=settings.tolerance, seed=settings.seed)
    kept, change = np.zeros(len(points), bool), np.zeros(len(points))
    for i, x in enumerate(points):
        prob = Problem(graph, box, InputRegion.point(x), settings.level)
        kept[i] = api.verify(prob, "label", backend=settings.backend, options=opts).name == "verified"
        change[i] = api.bound(prob, "eps", backend=settings.backend, options=opts).upper
    return PointBounds(kept, change)


def _flat(box: ParamBox) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[np.ndarray], dict[str, np.ndarray]]]:
    """The box's nominal, lower and upper values as flat vectors, and the inverse map."""
    names = box.names
    shapes = [box.nominal[n].shape for n in names]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unflat(v: np.ndarray) -> dict[str, np.ndarray]:
        return {n: v[cuts[k]:cuts[k + 1]].reshape(shapes[k]) for k, n in enumerate(names)}

    cat = [np.concatenate([np.ravel(m[n]) for n in names]) for m in (box.nominal, box.lo, box.hi)]
    return cat[0], cat[1], cat[2], unflat


def secants(graph: Graph, box: ParamBox, points: np.ndarray) -> np.ndarray | None:
    """``G[i, o, j]``: output o at input i with parameter j at its upper end minus at its lower end."""
    nom, lo, hi, unflat = _flat(box)
    if nom.size > MAX_SECANT_PARAMS:
        return None
    G = np.empty((len(points), graph.n_outputs, nom.size))
    for j in range(nom.size):
        v = nom.copy()
        v[j] = hi[j]
        yh = graph.evaluate(points, unflat(v))
        v[j] = lo[j]
        G[:, :, j] = yh - graph.evaluate(points, unflat(v))
    return G


class _Corners:
    """Box-corner witnesses at one input: ``p0 + t (c - p0)`` for a corner ``c`` of ``box`` (signs +-1, 0 = nominal)."""

    def __init__(self, graph: Graph, box: ParamBox, x: np.ndarray, level: float, seed: int) -> None:
        from paramverify.properties import labels
        self.graph, self.box, self.x, self.level = graph, box, x, level
        self.nom, self.lo, self.hi, self.unflat = _flat(box)
        self.y0 = graph.evaluate(x)
        self.cls = int(labels(self.y0, level)[0])
        self.rng = np.random.default_rng(seed)

    def params(self, signs: np.ndarray, t: float = 1.0) -> dict[str, np.ndarray]:
        c = np.where(signs > 0, self.hi, np.where(signs < 0, self.lo, self.nom))
        return self.unflat(self.nom + t * (c - self.nom))

    def margin(self, signs: np.ndarray, t: float) -> float:
        """How far the label is from flipping (< 0 or, for class 0 of a binary model, <= 0: flipped)."""
        y = self.graph.evaluate(self.x, self.params(signs, t))[0]
        if y.size == 1:
            return float(y[0] - self.level) if self.cls == 1 else float(self.level - y[0])
        return float(y[self.cls] - np.max(np.delete(y, self.cls)))

    def flipped(self, signs: np.ndarray, t: float) -> bool:
        from paramverify.properties import label_kept
        return not bool(label_kept(self.y0, self.graph.evaluate(self.x, self.params(signs, t)), self.level)[0])

    def greedy(self, starts: Sequence[np.ndarray], t: float, sweeps: int = 4) -> np.ndarray | None:
        """Sign flips one parameter at a time (sideways moves allowed) until the label flips at scale t.

        Above ``MAX_GREEDY_PARAMS`` parameter elements only the start corners are tried."""
        if self.nom.size > MAX_GREEDY_PARAMS:
            sweeps = 0
        for s0 in starts:
            signs = np.where(s0 == 0, 1.0, np.sign(s0))
            best = self.margin(signs, t)
            for _ in range(sweeps):
                if self.flipped(signs, t):
                    return signs
                moved = False
                for j in range(signs.size):
                    signs[j] = -signs[j]
                    v = self.margin(signs, t)
                    if v <= best:  # sideways moves cross the plateaus of dead relu units
                        moved, best = moved or v < best, v
                    else:
                        signs[j] = -signs[j]
                if not moved:
                    break
            if self.flipped(signs, t):
                return signs
        return None

    def starts(self, direction: np.ndarray | None, n_random: int = 3) -> list[np.ndarray]:
        rand = [self.rng.choice([-1.0, 1.0], self.nom.size) for _ in range(n_random)]
        return ([np.sign(direction)] if direction is not None else []) + rand

    def ray(self, signs: np.ndarray, a: float, b: float, steps: int = 30) -> float:
        """Bisect ``(a, b]`` for the smallest t at which the corner ray flips (it flips at b)."""
        for _ in range(steps):
            mid = 0.5 * (a + b)
            a, b = (a, mid) if self.flipped(signs, mid) else (mid, b)
        return b

    def confirm(self, signs: np.ndarray, t: float, grow: bool = True) -> float:
        """Replay a flip at scale ~t on onnxruntime; its parameter distance (rounded up), or inf.

        ``grow=False``: only inside ``box.scaled(t)`` itself (``box`` for t = 1), for a fixed box.
        """
        from paramverify.properties import LabelInvariance, Problem
        from paramverify.replay import confirm
        from paramverify.specs import InputRegion
        for factor in (1 + 2**-20, 1.001, 1.01) if grow else (1.0,):
            box = self.box if t * factor == 1.0 else self.box.scaled(t * factor)
            prob = Problem(self.graph, box, InputRegion.point(self.x), self.level)
            cex = confirm(prob, LabelInvariance(), self.x, self.params(signs, t * factor))
            if cex is not None:
                r = max(float(np.max(np.abs(cex.parameters[n] - self.box.nominal[n]), initial=0.0)) for n in self.box.names)
                return float(np.nextafter(r, np.inf))
        return math.inf


def _flip_direction(G: np.ndarray | None, i: int, y0: np.ndarray, level: float) -> np.ndarray | None:
    """Secant direction that moves input i's nominal winner towards losing (the strongest rival for k classes)."""
    if G is None:
        return None
    if G.shape[1] == 1:
        return G[i, 0] * (-1.0 if y0[i, 0] >= level else 1.0)
    c = int(np.argmax(y0[i]))
    rival = int(np.argsort(-y0[i])[1])
    return G[i, rival] - G[i, c]


def epsilon_local(graph: Graph, box: ParamBox, points: np.ndarray, settings: Settings) -> dict[str, Any]:
    """Per input: a bracket of the largest output change under ``box`` (inputs rounded by :func:`representable`)."""
    from paramverify.properties import Problem
    from paramverify.replay import witness
    from paramverify.specs import InputRegion
    t0 = time.monotonic()
    points = representable([graph], points)
    upper = point_bounds(graph, box, points, settings).change
    G = secants(graph, box, points)
    lower = np.zeros(len(points))
    for i, x in enumerate(points):
        cn = _Corners(graph, box, x, settings.level, settings.seed)
        prob = Problem(graph, box, InputRegion.point(x), settings.level)
        dirs = [s * G[i, o] for o in range(G.shape[1]) for s in (1.0, -1.0)] if G is not None else cn.starts(None, 4)
        for d in dirs:
            w = witness(prob, x, cn.params(np.sign(d)))
            lower[i] = max(lower[i], float(np.max(np.abs(w.perturbed_output - w.nominal_output))) * (1 - 1e-9))
    assert np.all(lower <= upper), "a witnessed output change exceeds its proved bound: unsound bound"
    return {"lower": lower, "upper": upper, "time_s": time.monotonic() - t0,
            "method": "batched per-input bounds (proof); secant-sign corners via replay.witness (witness)",
            "max": {"lower": float(lower.max()), "upper": float(upper.max())},
            "median": {"lower": float(np.median(lower)), "upper": float(np.median(upper))}}


def flips(graph: Graph, box: ParamBox, points: np.ndarray, candidates: np.ndarray, settings: Settings) -> np.ndarray:
    """Per input (only where ``candidates``): is a label flip under ``box`` replayed on onnxruntime?"""
    out = np.zeros(len(points), dtype=bool)
    idx = np.flatnonzero(candidates)
    G = secants(graph, box, points[idx]) if idx.size else None
    y0 = graph.evaluate(points[idx]) if idx.size else None
    for k, i in enumerate(idx):
        cn = _Corners(graph, box, points[i], settings.level, settings.seed)
        signs = cn.greedy(cn.starts(_flip_direction(G, k, y0, settings.level), 1), 1.0)
        out[i] = signs is not None and np.isfinite(cn.confirm(signs, 1.0, grow=False))
    return out


def certified_at_bits(graph: Graph, points: np.ndarray, bits: int, settings: Settings) -> dict[str, Any]:
    """Counts of test inputs whose label is proved kept / replayed flipped under the b-bit rounding box."""
    from paramverify import api
    t0 = time.monotonic()
    points = representable([graph], points)
    box = api.make_problem(graph, bits=bits, x0=points[0], level=settings.level).box
    cert = point_bounds(graph, box, points, settings).kept
    fals = flips(graph, box, points, ~cert, settings)
    n = len(points)
    return {"bits": bits, "scheme": box.description, "certified": int(cert.sum()), "falsified": int(fals.sum()),
            "unknown": int(n - cert.sum() - fals.sum()), "total": n, "fraction": float(cert.sum() / n),
            "fraction_falsified": float(fals.sum() / n), "fraction_max": float(1 - fals.sum() / n), "time_s": time.monotonic() - t0,
            "method": "batched per-input bounds (certified); greedy box-corner flips replayed on onnxruntime (falsified)"}


def _proved_radius(box: ParamBox) -> float:
    """A radius r with ``[p0 - r, p0 + r]`` inside ``box`` for every parameter (rounded down)."""
    r = min(float(min(np.min(box.hi[n] - box.nominal[n]), np.min(box.nominal[n] - box.lo[n]))) for n in box.names)
    return float(np.nextafter(r, -np.inf)) if r > 0 else 0.0


def max_delta(graph: Graph, points: np.ndarray, settings: Settings, t_max: float = T_MAX) -> dict[str, Any]:
    """Per input: a bracket of the largest delta such that every |p - p0| <= delta keeps its label.

    Lower ends: the largest radius at which the batched per-input bounds
    certify the label (a shared geometric grid, then bisection per input).
    Upper ends: the parameter distance of a box-corner flip replayed on
    onnxruntime (a ray along the secant corner, then, where the bracket is
    wider than 1 %, a greedy corner search that walks t down).  Inputs are rounded by :func:`representable`.
    """
    from paramverify import api
    t0 = time.monotonic()
    points = representable([graph], points)
    unit = api.make_problem(graph, unit_box=True, x0=points[0], level=settings.level).box
    y0 = graph.evaluate(points)
    n = len(points)
    G = secants(graph, unit.scaled(settings.ref_delta), points)
    corners = [_Corners(graph, unit, x, settings.level, settings.seed) for x in points]
    best: list[np.ndarray | None] = [None] * n
    upper = np.full(n, np.inf)
    for i, cn in enumerate(corners):
        d = _flip_direction(G, i, y0, settings.level)
        signs = np.sign(d) if d is not None else cn.starts(None, 1)[0]
        hit = next((float(t) for t in np.geomspace(1e-7, t_max, 64) if cn.flipped(signs, float(t))), None)
        if hit is not None:
            best[i] = signs
            upper[i] = cn.confirm(signs, cn.ray(signs, hit / 1.4, hit))
    finite = upper[np.isfinite(upper)]
    grid = np.geomspace(max(float(finite.min()) / 8, 1e-9) if finite.size else 1e-6, float(finite.max()) if finite.size else t_max, 60)
    lower = np.zeros(n)
    for t in grid:
        todo = t < upper
        if todo.any():
            box = unit.scaled(float(t))
            idx = np.flatnonzero(todo)[point_bounds(graph, box, points[todo], settings).kept]
            lower[idx] = np.maximum(lower[idx], _proved_radius(box))
    for i in range(n):
        a, b = lower[i], min(upper[i], lower[i] * float(grid[1] / grid[0]) if lower[i] > 0 else grid[0])
        for _ in range(8):
            box = unit.scaled(0.5 * (a + b))
            if point_bounds(graph, box, points[i:i + 1], settings).kept[0]:
                a = lower[i] = max(lower[i], _proved_radius(box))
            else:
                b = 0.5 * (a + b)
    searched = np.flatnonzero(upper > 1.01 * lower)
    for i in searched:
        upper[i] = min(upper[i], _descend(corners[i], best[i], lower[i], upper[i]))
    assert np.all(lower <= upper), "a proved largest delta exceeds a replayed flip: unsound bound"
    return {"lower": lower, "upper": upper, "time_s": time.monotonic() - t0,
            "method": "grid and bisection on batched per-input bounds (proof); box-corner flips replayed on onnxruntime "
                      f"(witness: secant rays, greedy corner search for {len(searched)} inputs)",
            "median": {"lower": float(np.median(lower)), "upper": float(np.median(upper))},
            "min": {"lower": float(lower.min()), "upper": float(upper.min())}}


def _descend(cn: _Corners, signs: np.ndarray | None, t_lo: float, t_hi: float) -> float:
    """Walk t down from ``t_hi``: greedy corner search slightly below the current flip, then the ray minimum."""
    t = t_hi if np.isfinite(t_hi) else T_MAX
    G = secants(cn.graph, cn.box.scaled(max(t_lo, 1e-9) * 1.02), cn.x[None, :])
    fresh = _flip_direction(G, 0, cn.y0, cn.level)
    if signs is None or not cn.flipped(signs, t):
        signs = cn.greedy(cn.starts(fresh), t)
        if signs is None:
            return math.inf
    t = cn.ray(signs, t_lo, t)
    for _ in range(10):
        target = max(t_lo, t * 0.999)
        found = cn.greedy([signs] + cn.starts(fresh), target)
        if found is None:
            break
        signs, t = found, cn.ray(found, t_lo, target)
    return cn.confirm(signs, t)


def domain_sample(graph: Graph, domain: np.ndarray, settings: Settings) -> dict[str, Any]:
    """Random inputs of the domain (the same for every model) at ``ref_delta``: proved local epsilon and
    status (certified / flippable = flip replayed / unknown); for two inputs also a grid of f0 (Figures 6-8)."""
    from paramverify import api
    t0 = time.monotonic()
    rng = np.random.default_rng(settings.seed + 1)
    pts = representable([graph], rng.uniform(domain[:, 0], domain[:, 1], size=(settings.map_points, len(domain))))
    box = api.make_problem(graph, delta=settings.ref_delta, x0=pts[0], level=settings.level).box
    pb = point_bounds(graph, box, pts, settings)
    fl = flips(graph, box, pts, ~pb.kept, settings)
    n, k = len(pts), int(pb.kept.sum())
    out: dict[str, Any] = {"delta": settings.ref_delta, "n": n, "certified": k, "flippable": int(fl.sum()),
                           "unknown": int(n - k - fl.sum()), "flippable_fraction": {"lower": float(fl.sum() / n), "upper": float((n - k) / n)}}
    if len(domain) == 2:
        g = settings.grid
        gx, gy = np.linspace(domain[0, 0], domain[0, 1], g), np.linspace(domain[1, 0], domain[1, 1], g)
        yg = graph.evaluate(np.column_stack([np.tile(gx, g), np.repeat(gy, g)]))
        grid: dict[str, Any] = {"x": gx.tolist(), "y": gy.tolist()}
        if yg.shape[1] == 1:
            grid["f0"] = [[float(f"{v:.6g}") for v in row] for row in yg[:, 0].reshape(g, g)]
        else:
            grid["label"] = np.argmax(yg, axis=1).reshape(g, g).tolist()
        out.update(grid=grid, points=pts.tolist(), eps_upper=[_round_up(v) for v in pb.change],
                   status=np.where(pb.kept, "certified", np.where(fl, "flippable", "unknown")).tolist())
    out["time_s"] = time.monotonic() - t0
    return out


def representable(graphs: Sequence[Graph], points: np.ndarray) -> np.ndarray:
    """Round inputs to the narrowest input dtype of the models (what the models really see).

    Witnesses are replayed at exactly these inputs, so a bracket's concrete
    end belongs to the same input as its proved end.
    """
    from paramverify.replay import input_dtype
    dt = min((input_dtype(g) for g in graphs), key=lambda d: np.dtype(d).itemsize)
    return np.asarray(points, dtype=dt).astype(np.float64)


def _round_up(v: float) -> float:
    """``v`` to 6 significant digits, rounded up (a proved upper bound stays one)."""
    if not np.isfinite(v) or v == 0:
        return float(v)
    e = 10.0 ** (math.floor(math.log10(abs(v))) - 5)
    return float(np.nextafter(math.ceil(v / e) * e, np.inf))


# ----------------------------------------------------------------------------- the run


def _bracket_json(b: Any, n_params: int) -> dict[str, Any]:
    out = b.to_json()
    if "witness" in out and n_params > 1000:
        out["witness"].pop("parameters", None)
        out["witness"]["parameters_omitted"] = True
    return out


def _interrupted(b: Any) -> bool:
    return not b.complete and "interrupt" in (b.note or "").lower()


def _steps(entry: Entry, classes: Sequence[str], points: np.ndarray, domain: np.ndarray, settings: Settings,
           progress: ConsoleProgress) -> list[tuple[str, Callable[[dict[str, Any]], bool]]]:
    """The queries for one model, in order: (description, fn(model_json) -> was the engine interrupted)."""
    from paramverify import api
    from paramverify.options import Options
    g, lvl = entry.graph, settings.level
    n_params = api.make_problem(g, delta=1.0, x0=points[0], level=lvl).box.n_parameters
    steps: list[tuple[str, Callable[[dict[str, Any]], bool]]] = []

    def options(m: dict[str, Any], delta: float) -> Options:
        """Global queries stop at a gap of ``tolerance`` times the local epsilon (scaled to ``delta``), the size of the answer."""
        loc = [(abs(math.log(e["delta"] / delta)), e["max"]["lower"] * delta / e["delta"]) for e in m.get("epsilon_local", [])]
        scale = min(loc)[1] if loc else 0.0
        return Options(timeout_s=settings.timeout_s, tolerance=max(settings.tolerance * scale, 1e-7), seed=settings.seed, progress=progress)

    def per_input(m: dict[str, Any]) -> bool:
        m["max_delta"] = max_delta(g, points, settings)
        return False

    def local(m: dict[str, Any]) -> bool:
        for d in settings.deltas:
            row = epsilon_local(g, api.make_problem(g, delta=d, x0=points[0], level=lvl).box, points, settings)
            m.setdefault("epsilon_local", []).append({"delta": d, **row})
        return False

    steps += [("largest delta per test input", per_input), ("local epsilon at the test inputs", local)]
    for b in settings.bits:
        def cert(m: dict[str, Any], b: int = b) -> bool:
            row = certified_at_bits(g, points, b, settings)
            m.setdefault("certified", []).append(row)
            return False
        steps.append((f"certified fraction at {b}-bit", cert))
    for d in settings.deltas:
        def eps(m: dict[str, Any], d: float = d) -> bool:
            prob = api.make_problem(g, delta=d, domain=domain.tolist(), level=lvl)
            br = api.bound(prob, "eps", backend=settings.backend, options=options(m, d))
            m.setdefault("epsilon_global", []).append({"delta": d, **_bracket_json(br, n_params)})
            return _interrupted(br)
        steps.append((f"global epsilon at delta {d:g}", eps))
    for c in range(max(2, g.n_outputs)):
        def sig(m: dict[str, Any], c: int = c) -> bool:
            prob = api.make_problem(g, delta=settings.ref_delta, domain=domain.tolist(), level=lvl)
            br = api.bound(prob, "sigma", cls=c, backend=settings.backend, options=options(m, settings.ref_delta))
            name = classes[c] if c < len(classes) else str(c)
            m.setdefault("sigma", []).append({"class": c, "class_name": name, "delta": settings.ref_delta, **_bracket_json(br, n_params)})
            return _interrupted(br)
        steps.append((f"sigma for class {c}", sig))

    def sample(m: dict[str, Any]) -> bool:
        m["map"] = domain_sample(g, domain, settings)
        return False

    steps.append((f"random inputs of the domain at delta {settings.ref_delta:g}", sample))
    return steps


def run_comparison(entries: Sequence[Entry], points: np.ndarray, domain: np.ndarray, settings: Settings,
                   dataset: Dataset | None = None, eval_X: np.ndarray | None = None, eval_y: np.ndarray | None = None,
                   progress: ConsoleProgress | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every query for every model; returns the compare JSON object (also when interrupted)."""
    from paramverify import api
    from paramverify.progress import ConsoleProgress
    from paramverify.report import rank_models
    progress = progress or ConsoleProgress(enabled=False)
    points = representable([e.graph for e in entries], points)
    t0 = time.monotonic()
    models: list[dict[str, Any]] = []
    plans = []
    for e in entries:
        acc = None if eval_X is None or eval_y is None else _accuracy(e.graph, eval_X, eval_y, settings.level)
        n_params = api.make_problem(e.graph, delta=1.0, x0=points[0], level=settings.level).box.n_parameters
        models.append({"name": e.name, "activation": e.activation, "onnx": e.onnx, "level": settings.level,
                       "n_parameters": n_params, "n_inputs": e.graph.input_size, "n_outputs": e.graph.n_outputs,
                       "accuracy": {"train": e.train_accuracy, "test": acc}, "time_s": 0.0})
        classes = dataset.classes if dataset is not None else tuple(str(c) for c in range(max(2, e.graph.n_outputs)))
        plans.append(_steps(e, classes, points, domain, settings, progress))
    missing: list[str] = []
    n_steps = max(len(p) for p in plans)
    stop = False
    for s in range(n_steps):
        for j, plan in enumerate(plans):
            if s >= len(plan):
                continue
            what, fn = plan[s]
            label = f"{models[j]['name']}: {what}"
            if stop:
                missing.append(label)
                continue
            progress.update(f"[{s + 1}/{n_steps}] {label}")
            q0 = time.monotonic()
            try:
                stop = fn(models[j])
            except KeyboardInterrupt:
                stop = True
                missing.append(label + " (interrupted)")
            models[j]["time_s"] += time.monotonic() - q0
            if not stop:
                progress.note(f"[{s + 1}/{n_steps}] {label}  {time.monotonic() - q0:.2f} s")
    incomplete = [f"{m['name']}: {k} at delta {r['delta']:g}" + (f" class {r['class']}" if "class" in r else "")
                  for m in models for k in ("epsilon_global", "sigma") for r in m.get(k, []) if not r.get("complete", True)]
    result = {"command": "compare", "schema": 1, "paramverify_version": __version__, "complete": not missing,
              "missing": missing, "incomplete": incomplete, "settings": settings.to_json(), **(meta or {}),
              "models": models, "time_s": time.monotonic() - t0}
    result = clean_json(result)
    result["ranking"] = rank_models(result)
    return result


def clean_json(obj: Any) -> Any:
    """numpy -> Python, infinities -> "inf"/"-inf" (JSON has none)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else v
    return obj


# ----------------------------------------------------------------------------- CLI


def _floats(text: str, field: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise SpecError(field, f"'{text}' is not a comma-separated list of numbers") from exc
    if not vals or any(not math.isfinite(v) or v <= 0 for v in vals):
        raise SpecError(field, "needs positive finite numbers", f"e.g. --{field} 0.005,0.01")
    return vals


def add_compare_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``paramverify compare`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "compare", help="compare activation choices (or ONNX models) by proved robustness to parameter rounding",
        description="Train one MLP per activation on a CSV (same seed, split, epochs) or take ONNX models, and compare "
        "proved brackets: epsilon against delta, the largest label-keeping delta per test input, certified fractions "
        "at 8/6/4-bit rounding boxes, sigma per class; writes compare.json and a self-contained report.html.")
    src = p.add_argument_group("models (train from --data, or give --models)")
    src.add_argument("--data", metavar="CSV", help="CSV with a header row: feature columns and a label column")
    src.add_argument("--features", metavar="COL,...", help="feature columns (default: every column but the label)")
    src.add_argument("--label", metavar="COL", help="label column (default: the last); classes are indexed in sorted order")
    src.add_argument("--hidden", default="3", metavar="N,...", help="hidden layer sizes (default 3)")
    src.add_argument("--activations", default="relu,linear,tanh,sigmoid", help=f"comma list of {', '.join(ACTIVATION_NAMES)}")
    src.add_argument("--epochs", type=int, default=3000, help="training epochs (default 3000)")
    src.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    src.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction for the per-input queries (default 0.2)")
    src.add_argument("--models", nargs="+", metavar="M.onnx", help="compare these ONNX models instead of training")
    src.add_argument("--domain", metavar="LO1:HI1,...", help="input box for global queries (default: the data's bounding box)")
    q = p.add_argument_group("queries")
    q.add_argument("--deltas", default=",".join(f"{d:g}" for d in DEFAULT_DELTAS), help="delta grid (default %(default)s)")
    q.add_argument("--bits", default="8,6,4", help="rounding boxes for certified fractions (default 8,6,4)")
    q.add_argument("--ref-delta", type=float, default=0.01, help="delta for sigma and the decision maps (default 0.01)")
    q.add_argument("--max-points", type=int, default=40, help="test inputs for per-input queries (default 40)")
    q.add_argument("--map-points", type=int, default=300, help="random inputs in the decision maps (default 300)")
    q.add_argument("--level", type=float, default=0.5, help="decision level of single-output models (default 0.5)")
    q.add_argument("--timeout", type=float, default=5.0, help="seconds per global query (default 5)")
    q.add_argument("--tolerance", type=float, default=0.002,
                   help="global queries stop when the gap is this fraction of the answer's size (default 0.002)")
    q.add_argument("--seed", type=int, default=0, help="seed for training, the split and sampling (default 0)")
    q.add_argument("--backend", default="bounds", choices=["bounds"], help="proof engine (default bounds)")
    p.add_argument("--out", default="compare_out", help="folder for the models, compare.json and report.html")
    p.add_argument("-o", "--report", metavar="HTML", help="report file (default OUT/report.html)")
    p.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(handler=run_compare)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``paramverify compare``: 0 when complete, 130 when interrupted (files still written)."""
    from paramverify.cli import parse_domain
    from paramverify.progress import ConsoleProgress
    from paramverify.report import write_report
    from paramverify.train import ACTIVATIONS

    if args.data is None and args.models is None:
        raise SpecError("data", "give --data CSV (to train per activation) or --models A.onnx B.onnx ...")
    settings = Settings(deltas=_floats(args.deltas, "deltas"), bits=tuple(int(b) for b in _floats(args.bits, "bits")),
                        ref_delta=_floats(str(args.ref_delta), "ref-delta")[0], timeout_s=args.timeout,
                        tolerance=args.tolerance, seed=args.seed, max_points=args.max_points, map_points=args.map_points,
                        level=args.level, backend=args.backend)
    os.makedirs(args.out, exist_ok=True)
    data = load_csv(args.data, args.features.split(",") if args.features else None, args.label) if args.data else None
    meta: dict[str, Any] = {}
    with ConsoleProgress(enabled=not args.quiet) as progress:
        try:
            if args.models is None:
                assert data is not None
                acts = [a.strip() for a in args.activations.split(",") if a.strip()]
                bad = [a for a in acts if a not in ACTIVATIONS]
                if bad or not acts:
                    raise SpecError("activations", f"unknown activation(s) {bad}", f"use {', '.join(ACTIVATIONS)}")
                hidden = tuple(int(h) for h in _floats(args.hidden, "hidden"))
                train_idx, test_idx = split(len(data.y), args.test_fraction, args.seed)
                entries = train_entries(data, train_idx, hidden, acts, args.seed, args.epochs, args.lr, args.out, progress)
                eval_X, eval_y = data.X[test_idx], data.y[test_idx]
                meta["training"] = {"hidden": list(hidden), "activations": acts, "epochs": args.epochs, "lr": args.lr,
                                    "test_fraction": args.test_fraction, "standardize": True, "seed": args.seed}
            else:
                entries = [_entry(m) for m in args.models]
                eval_X, eval_y = (data.X, data.y) if data is not None else (None, None)
        except KeyboardInterrupt:
            print("paramverify compare: interrupted during training; nothing to compare", file=sys.stderr)
            return 130
        if len({e.graph.input_size for e in entries}) > 1:
            raise SpecError("models", "the models take inputs of different sizes", "compare models of the same input")
        if args.domain:
            domain = np.asarray(parse_domain(args.domain), dtype=float)
        elif data is not None:
            domain = np.column_stack([data.X.min(axis=0), data.X.max(axis=0)])
        else:
            raise SpecError("domain", "without --data the global queries need an input box", "add --domain LO1:HI1,...")
        d_in = entries[0].graph.input_size
        if eval_X is not None:
            eval_X = representable([e.graph for e in entries], eval_X)
        if domain.shape[0] == 1 and d_in > 1:
            domain = np.repeat(domain, d_in, axis=0)
        rng = np.random.default_rng(args.seed + 2)
        source = (f"the held-out test split ({args.test_fraction:g} of the rows, seed {args.seed})" if args.models is None
                  else "rows of the data set" if eval_X is not None else "uniform random inputs of the domain")
        if eval_X is not None:
            pick = np.arange(len(eval_X)) if len(eval_X) <= args.max_points else np.sort(rng.choice(len(eval_X), args.max_points, replace=False))
            points = eval_X[pick]
        else:
            points = representable([e.graph for e in entries], rng.uniform(domain[:, 0], domain[:, 1], size=(args.max_points, d_in)))
        meta["data"] = {"path": args.data, "features": list(data.features) if data else [f"x{i + 1}" for i in range(d_in)],
                        "label": data.label if data else None, "classes": list(data.classes) if data else None,
                        "n_rows": int(len(data.y)) if data else None, "n_eval": None if eval_X is None else int(len(eval_X)),
                        "n_points": int(len(points)), "points_from": source, "domain": domain.tolist(), "points": points.tolist()}
        result = run_comparison(entries, points, domain, settings, data, eval_X, eval_y, progress, meta)
    json_path = os.path.join(args.out, "compare.json")
    with open(json_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    report = args.report or os.path.join(args.out, "report.html")
    write_report(result, report)
    if args.json:
        print(json.dumps(result))
    else:
        print(result["ranking"]["text"])
        if "paper_finding" in result["ranking"]:
            print(result["ranking"]["paper_finding"]["text"])
        if result["missing"]:
            print(f"INCOMPLETE: {len(result['missing'])} queries missing (listed in the JSON and the report)")
        print(f"wrote {json_path} and {report}  ({result['time_s']:.1f} s)")
    return 0 if result["complete"] else 130
