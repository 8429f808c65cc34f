"""Per-input bounds for ``paramverify compare``: proved brackets at many points at once.

For a set of input points and a parameter box, these functions give, per point, the
largest output change (a proved upper end from batched sound bounds, a lower end
from concrete corner and secant witnesses), label certificates at a bit width, the
largest delta that keeps the label (bisection between certified and witnessed
values), and a sampled view of an input box.  Every upper end is a proof; every
lower end is a witness evaluated on the model.  ``Settings`` (what is computed for
every model) lives here so that :mod:`paramverify.compare` imports this module and not
the other way round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from paramverify.ir import Graph
    from paramverify.specs import ParamBox

#: per-parameter secant directions are computed only up to this many parameter elements
MAX_SECANT_PARAMS = 4000
#: the greedy corner search flips single parameters only up to this many parameter elements
MAX_GREEDY_PARAMS = 300
#: largest delta searched per input (a flip is always found far below on trained models)
T_MAX = 100.0


@dataclass(frozen=True, eq=False)
class PointBounds:
    """Proved facts at N inputs for every parameter in a box (real arithmetic).

    ``kept[i]``: the label of input i is kept; ``change[i]``: an upper bound
    of ``|f_p(x_i) - f_p0(x_i)|_inf``.
    """

    kept: np.ndarray
    change: np.ndarray


DEFAULT_DELTAS = (0.001, 0.0025, 0.005, 0.01, 0.02)
DEFAULT_BITS = (8, 6, 4)


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


def point_bounds(graph: Graph, box: ParamBox, points: np.ndarray, settings: Settings) -> PointBounds:
    """Sound per-input bounds over ``box``, batched over the inputs.

    Uses the bound engine's differential interval bounds on N point regions
    at once; if that module is not importable, one ``api.verify``/``api.bound``
    query per input (slower, equally sound).
    """
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    try:
        from paramverify.bounds.sound import (
            box_outputs,
            change_upper,
            label_kept_certified,
        )
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
