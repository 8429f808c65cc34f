"""The extreme-scale tier of the soundness corpus (``bench_soundness.py --tier extreme``).

The main corpus draws inputs from [-1, 1] and weights of scale 2, so it never
sees saturated activations next to huge pre-activations -- where issue 11's
wrong VERIFIED lived (a sigmoid line built on an interval clipped to +-1e6).
Each case ``seed`` here is a small float32 MLP (1-3 inputs, 1-2 hidden
layers of 2-4 units; ReLU, LeakyReLU(1/8), Sigmoid or Tanh; an identity,
Sigmoid or Softmax head; half of them with a skip ``Concat([h, z])`` into
the last layer, as in the issue's model) drawn at extreme magnitudes:
inputs up to 1e6 (boxes up to 1e6 wide, or points), weights up to 1e6,
pre-activations up to 1e8, biases that make whole layers dead, always on
or saturated, or that centre the transition inside the input box, and
absolute or relative parameter boxes.  Every kernel is checked:

* the interval kernel on the input box and the whole parameter box,
* the differential kernel (``box_outputs``) and differential CROWN
  (``linear_outputs``: linear bounds, backward substitution, relaxations),
* the point kernel (``point_outputs``) at sampled (x, p),
* the engine (``api.bound`` eps bracket, ``api.verify`` label, and the
  largest-delta bracket on every fourth case), which adds the neuron-split
  search at points and the input branch and bound over boxes.

The reference is an independent evaluator in mpmath with 50 significant
digits (Gemm, activations, Softmax and Concat written out from the case's own
weights).  Each enclosure must contain the reference value at every sampled
(x, p): corners, random points, *transition* points (a first-layer neuron's
pre-activation at -3, 0 or 3) and *boundary* points (bisection between two
inputs whose nominal labels differ, where a small parameter change flips
the label), plus the engine's own witnesses.  A proved eps upper end must
exceed every sampled exact change, a witness must attain the lower end, a
VERIFIED label must survive every sample, a FALSIFIED one must lie inside
the boxes (its flip is re-checked exactly; a float-only flip is counted, not
a violation), and no sample may flip inside the proved largest-delta box.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
from bench_soundness import CaseReport, CorpusConfig, _definite, _opts
from netgen import dense_net
from soundness_mp import DPS, REL_TOL, MpNet, _above, _act, _tol, exact_flip  # benchmarks/soundness_mp.py

from paramverify import api
from paramverify.bounds.crown import linear_outputs
from paramverify.bounds.interval import Interval, IntervalKernel
from paramverify.bounds.sound import box_outputs, point_outputs
from paramverify.errors import CapabilityError
from paramverify.ir import Graph, load_model
from paramverify.properties import Problem
from paramverify.results import Falsified, Verified
from paramverify.specs import AbsoluteDelta

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
BIAS_MODES = ("centre", "dead", "on", "random")
REGIMES = ("wide_inputs", "huge_weights", "huge_preact", "saturation")
#: parameter samples per case (box ends, random corners, uniform points; witnesses are added)
PARAM_SAMPLES = "2 ends + 3 random corners + 2 uniform"


@dataclass(frozen=True, eq=False)
class XCase:
    """One extreme-scale network, parameter box and input region (all from ``seed``)."""

    seed: int
    activation: str
    head: str
    skip: bool
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # float32-valued float64 (W [out, in], b [out])
    lo: np.ndarray
    hi: np.ndarray
    delta: float
    relative: bool
    params: tuple[str, ...] | None
    level: float
    modes: tuple[str, ...]  # bias mode per hidden layer
    regime: str = ""

    @property
    def point(self) -> bool:
        return bool(np.all(self.lo == self.hi))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0][0].shape[1],) + tuple(w.shape[0] for w, _ in self.layers)

    def describe(self) -> str:
        wmax = max(float(np.max(np.abs(w))) for w, _ in self.layers)
        xmax = float(max(np.max(np.abs(self.lo)), np.max(np.abs(self.hi))))
        region = "point" if self.point else f"box of width {float(np.max(self.hi - self.lo)):.3g}"
        box = f"{'relative' if self.relative else 'absolute'} {self.delta:.3g} on {','.join(self.params) if self.params else 'all'}"
        return (f"extreme seed {self.seed} ({self.regime}): {'-'.join(map(str, self.sizes))} {self.activation}{'+skip' if self.skip else ''} "
                f"head {self.head}, biases {'/'.join(self.modes)}, |W| <= {wmax:.3g}, |x| <= {xmax:.3g} ({region}), {box}")


def _logu(rng: np.random.Generator, a: float, b: float) -> float:
    return float(10.0 ** rng.uniform(a, b))


def _f32(a: Any) -> np.ndarray:
    return np.asarray(np.asarray(a, dtype=np.float32), dtype=np.float64)


def _bias(rng: np.random.Generator, mode: str, w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Biases for pre-activations ``w h + b`` with ``h`` in [lo, hi] (float64 bounds of the layer's input)."""
    c, r = (lo + hi) / 2, (hi - lo) / 2
    centre = w @ c
    reach = np.abs(w) @ r + np.abs(centre) + 1.0
    if mode == "centre":  # the transition lies inside the box
        return -centre + rng.normal(0.0, 1.0, size=len(centre)) * np.minimum(reach, 10.0)
    if mode == "dead":
        return -centre - reach * rng.uniform(1.5, 3.0, size=len(centre))
    if mode == "on":
        return -centre + reach * rng.uniform(1.5, 3.0, size=len(centre))
    return rng.normal(0.0, 1.0, size=len(centre)) * reach


def make_xcase(seed: int) -> XCase:
    """The extreme case of ``seed`` (deterministic)."""
    rng = np.random.default_rng(70_000 + seed)
    d = int(rng.integers(1, 4))
    hidden = [int(rng.integers(2, 5)) for _ in range(int(rng.integers(1, 3)))]
    k = int(rng.integers(1, 4))
    activation = ACTIVATIONS[seed % len(ACTIVATIONS)]
    head = ("identity", "sigmoid")[int(rng.random() < 0.35)] if k == 1 else ("identity", "softmax")[int(rng.random() < 0.5)]
    skip = bool(rng.random() < 0.5)
    # regimes: inputs up to 1e6 / weights up to 1e6 on small inputs / pre-activations of 1e6-1e8 /
    # the shape: a wide box, pre-activations far beyond +-1e6 and a skip connection to the head
    regime = REGIMES[(seed // len(ACTIVATIONS)) % len(REGIMES)]
    saturation = regime == "saturation"
    skip = skip or saturation
    if saturation:  # narrow nets, where CROWN is tight enough for a wrong line to show
        d, hidden = int(rng.integers(1, 3)), [int(rng.integers(1, 3))]
    x_exp = (-1, 2) if regime == "huge_weights" else (-1, 5) if saturation else (-1, 6)
    centre = rng.choice([-1.0, 1.0], size=d) * np.array([_logu(rng, *x_exp) for _ in range(d)])
    if rng.random() < 0.3 and not saturation:
        lo = hi = _f32(centre)
    else:
        half = np.array([_logu(rng, 3 if saturation else -3, 6 if saturation else x_exp[1]) for _ in range(d)])
        lo, hi = _f32(np.maximum(centre - half, -1e6)), _f32(np.minimum(centre + half, 1e6))
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    modes: list[str] = []
    h_lo, h_hi = lo.copy(), hi.copy()
    z_prev: tuple[np.ndarray, np.ndarray] | None = None
    widths = [*hidden, k]
    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        fan_in = len(h_lo)
        if last and skip and z_prev is not None:
            h_lo, h_hi = np.concatenate([h_lo, z_prev[0]]), np.concatenate([h_hi, z_prev[1]])
            fan_in = len(h_lo)
        mag = float(max(np.max(np.abs(h_lo)), np.max(np.abs(h_hi)), 1e-3))
        # weights up to 1e6 with pre-activations up to about 1e8
        if regime == "huge_weights":
            scale = _logu(rng, 4, 6) if i == 0 or activation in ("sigmoid", "tanh") else min(_logu(rng, 2, 6), 1e8 / mag)
        elif regime == "huge_preact" or (saturation and not last):
            scale = min(1e6, _logu(rng, 6 + saturation, 8) / mag)
        else:
            scale = min(_logu(rng, -2, 6), _logu(rng, 0, 8) / mag)
        w = rng.standard_normal((width, fan_in)) * scale
        if saturation and last and z_prev is not None:
            # O(1) weights on the (saturated) activations, the huge pre-activations scaled to 1-1e3
            n_h = fan_in - len(z_prev[0])
            w[:, :n_h] = rng.standard_normal((width, n_h)) * _logu(rng, 0, 1)
            mag_z = float(max(np.max(np.abs(z_prev[0])), np.max(np.abs(z_prev[1])), 1.0))
            w[:, n_h:] = rng.standard_normal((width, fan_in - n_h)) * _logu(rng, 0, 3) / mag_z
        w = _f32(np.clip(w, -1e6, 1e6))
        mode = "centre" if last or saturation else BIAS_MODES[int(rng.integers(0, len(BIAS_MODES)))]
        b = _f32(_bias(rng, mode, w, h_lo, h_hi))
        layers.append((w, b))
        if not last:
            modes.append(mode)
            c, r = (h_lo + h_hi) / 2, (h_hi - h_lo) / 2
            z_lo, z_hi = w @ c - np.abs(w) @ r + b, w @ c + np.abs(w) @ r + b
            z_prev = (z_lo, z_hi)
            h_lo, h_hi = _act(activation, z_lo), _act(activation, z_hi)
    which = rng.random()
    n = len(layers)
    params: tuple[str, ...] | None = None
    if which < 0.25:
        params = ("W1",)
    elif which < 0.5:
        layer = int(rng.integers(1, n + 1))
        params = (f"W{layer}", f"b{layer}")
    relative = bool(rng.random() < 0.5)
    delta = _logu(rng, -7, -2) if relative else _logu(rng, -4, 0) * float(np.median(np.abs(layers[0][0]))) * 1e-2
    case = XCase(seed, activation, head, skip, tuple(layers), lo, hi, delta, relative, params, 0.5, tuple(modes), regime)
    if k == 1 and head == "identity":
        y = MpNet(case).float_outputs(np.asarray((lo + hi) / 2))
        level = float(np.float32(y[0] + rng.normal(0.0, 1.0) * max(1.0, 1e-3 * abs(y[0]))))
        case = XCase(seed, activation, head, skip, tuple(layers), lo, hi, delta, relative, params, level, tuple(modes), regime)
    return case


def build(case: XCase) -> tuple[Graph, Problem]:
    g = load_model(dense_net(case.layers, case.activation, case.head, case.skip, f"extreme_{case.seed}"))
    kw: dict[str, Any] = {"relative": case.delta} if case.relative else {"delta": case.delta}
    region = {"x0": case.lo} if case.point else {"domain": list(zip(case.lo, case.hi))}
    return g, api.make_problem(g, params=case.params, level=case.level, **kw, **region)


# ---------------------------------------------------------------------------
# one case


class XChecker:
    def __init__(self, case: XCase, cfg: CorpusConfig, report: CaseReport) -> None:
        self.case, self.cfg, self.r = case, cfg, report
        self.graph, self.problem = build(case)
        self.ref = MpNet(case)
        self.rng = np.random.default_rng(case.seed)
        self._cache: dict[tuple[bytes, int], list[mpmath.mpf]] = {}
        self.params: list[dict[str, np.ndarray]] = []
        self.preact_max = 0.0

    def violate(self, what: str) -> None:
        self.r.violations.append(f"{self.case.describe()}: {what}")

    # -------------------------------------------------------- samples
    def exact(self, x: np.ndarray, pi: int) -> list[mpmath.mpf]:
        """Reference outputs at x under parameter sample pi (-1: nominal), cached."""
        key = (np.asarray(x, dtype=np.float64).tobytes(), pi)
        if key not in self._cache:
            self._cache[key] = self.ref.outputs(x, None if pi < 0 else self.params[pi])
        return self._cache[key]

    def sample_params(self, box: Any) -> list[dict[str, np.ndarray]]:
        out = [{n: np.asarray(box.lo[n]) for n in box.names}, {n: np.asarray(box.hi[n]) for n in box.names}]
        for _ in range(3):
            out.append({n: np.where(self.rng.random(np.shape(box.lo[n])) < 0.5, box.lo[n], box.hi[n]) for n in box.names})
        for _ in range(2):
            out.append({n: self.rng.uniform(box.lo[n], box.hi[n]) for n in box.names})
        return out

    def sample_inputs(self) -> list[np.ndarray]:
        lo, hi, case = self.case.lo, self.case.hi, self.case
        if case.point:
            return [lo.copy()]
        d = len(lo)
        xs = [(lo + hi) / 2, lo.copy(), hi.copy()]
        xs += [np.where(self.rng.random(d) < 0.5, lo, hi) for _ in range(3)]
        xs += [self.rng.uniform(lo, hi) for _ in range(self.cfg.input_samples)]
        # transition points: a first-layer pre-activation at -3, 0 or 3
        w, b = case.layers[0]
        for j in range(w.shape[0]):
            i = int(np.argmax(np.abs(w[j])))
            if w[j, i] == 0:
                continue
            for t in (-3.0, 0.0, 3.0):
                x = self.rng.uniform(lo, hi)
                x[i] = (t - b[j] - (w[j] @ x - w[j, i] * x[i])) / w[j, i]
                if lo[i] <= x[i] <= hi[i]:
                    xs.append(x)
        xs += self.boundary_points(xs)
        return xs

    def boundary_points(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """Bisect (in float64) between inputs of different nominal labels; the crossing and its neighbours."""
        lab = [int(self._float_label(x)) for x in xs]
        out: list[np.ndarray] = []
        for _ in range(6):
            i, j = self.rng.integers(0, len(xs), size=2)
            if lab[i] == lab[j]:
                continue
            a, b = xs[i].copy(), xs[j].copy()
            for _ in range(80):
                m = (a + b) / 2
                if self._float_label(m) == lab[i]:
                    a = m
                else:
                    b = m
            out += [a, b, np.clip(a + (a - b) * 1e3, self.case.lo, self.case.hi), np.clip(b + (b - a) * 1e3, self.case.lo, self.case.hi)]
        return out

    def _float_label(self, x: np.ndarray) -> int:
        y = self.ref.float_outputs(x)
        return int(y[0] >= self.problem.level) if len(y) == 1 else int(np.argmax(y))

    # -------------------------------------------------------- checks
    def contains(self, what: str, iv_lo: float, iv_hi: float, v: mpmath.mpf) -> None:
        self.r.counts["enclosure_checks"] += 1
        with mpmath.workdps(DPS):
            if not (mpmath.mpf(float(iv_lo)) - _tol(v) <= v <= mpmath.mpf(float(iv_hi)) + _tol(v)):
                self.violate(f"{what}: [{iv_lo!r}, {iv_hi!r}] misses the exact value {mpmath.nstr(v, 20)}")

    def sub_boxes(self, xs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
        """Row 0: the whole region with every sample; then random sub-boxes (widths down to 1e-6 of the
        region's) with their corners, centre and a random point (the kernels' batched path)."""
        lo, hi = self.case.lo, self.case.hi
        rows = [(lo, hi, xs)]
        if self.case.point:
            return rows
        for _ in range(4):
            c = self.rng.uniform(lo, hi)
            half = (hi - lo) / 2 * 10.0 ** self.rng.uniform(-6, 0)
            sl, sh = np.maximum(c - half, lo), np.minimum(c + half, hi)
            rows.append((sl, sh, [sl, sh, (sl + sh) / 2, self.rng.uniform(sl, sh)]))
        return rows

    def check_kernels(self, xs: list[np.ndarray]) -> None:
        g, box = self.graph, self.problem.box
        rows = self.sub_boxes(xs)
        lo, hi = np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
        x_iv = Interval(lo, lo, True) if self.case.point else Interval(lo, hi)
        enclosures: list[tuple[str, Any]] = []
        iv_box = g.run(IntervalKernel(), x_iv, {n: Interval(np.asarray(box.lo[n]), np.asarray(box.hi[n])) for n in box.names})
        enclosures.append(("interval kernel", (None, iv_box, None)))
        out = box_outputs(g, box, lo, hi)
        enclosures.append(("differential kernel", (out.n, out.p, out.d)))
        try:
            enclosures.append(("differential CROWN", linear_outputs(g, box, lo, hi)))
        except CapabilityError:
            self.r.counts["crown_not_applicable"] += 1
        for name, (n, p, d) in enclosures:
            self.r.counts[f"kernel_{name.replace(' ', '_')}"] += 1
            self.r.counts["kernel_boxes"] += len(rows)
            p_lo, p_hi = np.reshape(p.lo, (len(rows), -1)), np.reshape(p.hi, (len(rows), -1))
            for row, (_, _, pts) in enumerate(rows):
                for x in pts:
                    y0 = self.exact(x, -1)
                    for pi in range(len(self.params)):
                        yp = self.exact(x, pi)
                        for o in range(len(y0)):
                            if n is not None:
                                self.contains(f"{name} nominal output {o} (box {row})", n.lo[row, o], n.hi[row, o], y0[o])
                            self.contains(f"{name} perturbed output {o} (box {row})", p_lo[row, o], p_hi[row, o], yp[o])
                            if d is not None:
                                self.contains(f"{name} output change {o} (box {row})", d.lo[row, o], d.hi[row, o], yp[o] - y0[o])
        # the point kernel at a few (x, p)
        for x in xs[:4]:
            for pi in range(0, len(self.params), 3):
                pt = point_outputs(g, box, x, self.params[pi])
                self.r.counts["kernel_point"] += 1
                y0, yp = self.exact(x, -1), self.exact(x, pi)
                for o in range(len(y0)):
                    self.contains("point kernel nominal", pt.n.lo[0, o], pt.n.hi[0, o], y0[o])
                    self.contains("point kernel perturbed", pt.p.lo[0, o], pt.p.hi[0, o], yp[o])
                    self.contains("point kernel change", pt.d.lo[0, o], pt.d.hi[0, o], yp[o] - y0[o])

    def inside(self, problem: Problem, x: np.ndarray, params: Mapping[str, np.ndarray]) -> bool:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return bool(np.all(x >= problem.region.lo) and np.all(x <= problem.region.hi)) and problem.box.contains(
            {n: np.asarray(params[n]) for n in problem.box.names})

    def add_witness(self, xs: list[np.ndarray], params: Mapping[str, np.ndarray], x: np.ndarray) -> int:
        self.params.append({n: np.asarray(params[n], dtype=np.float64) for n in self.problem.box.names})
        xs.append(np.asarray(x, dtype=np.float64).reshape(-1))
        return len(self.params) - 1

    def change(self, x: np.ndarray, pi: int) -> mpmath.mpf:
        y0, yp = self.exact(x, -1), self.exact(x, pi)
        with mpmath.workdps(DPS):
            return max(abs(a - b) for a, b in zip(yp, y0))

    def check_engine(self, xs: list[np.ndarray]) -> None:
        cfg, pb, seed = self.cfg, self.problem, self.case.seed
        opts = _opts(cfg.bounds_timeout_s, cfg.tolerance, seed)
        b = api.bound(pb, "eps", backend="bounds", options=opts)
        self.r.counts["eps_brackets"] += 1
        if b.witness is not None:
            w = b.witness
            if not self.inside(pb, w.input, w.parameters):
                self.violate(f"eps witness lies outside the boxes (bracket [{b.lower}, {b.upper}])")
            else:
                wi = self.add_witness(xs, w.parameters, w.input)
                self.r.counts["eps_witness_checked"] += 1
                if _above(mpmath.mpf(b.lower), self.change(xs[-1], wi)):
                    self.violate(f"eps lower end {b.lower!r} exceeds the exact change at its own witness")
        label_timeout = cfg.bounds_timeout_s if cfg.label_timeout_s is None else cfg.label_timeout_s
        v = api.verify(pb, "label", backend="bounds", options=_opts(label_timeout, cfg.tolerance, seed))
        self.r.counts[f"label_{_definite(v)}"] += 1
        if isinstance(v, Falsified):
            cex = v.counterexample
            if not self.inside(pb, cex.input, cex.parameters):
                self.violate("label: a counterexample lies outside the boxes")
            else:
                ci = self.add_witness(xs, cex.parameters, cex.input)
                x = xs[-1]
                flips = exact_flip(self.exact(x, -1), self.exact(x, ci), pb.level)
                self.r.counts["label_counterexample_exact" if flips else "float_only_counterexamples"] += 1
        upper = mpmath.mpf(b.upper)
        for x in xs:
            for pi in range(len(self.params)):
                self.r.counts["samples"] += 1
                c = self.change(x, pi)
                if _above(c, upper):
                    self.violate(f"exact output change {mpmath.nstr(c, 17)} at a sample exceeds the proved upper bound {b.upper!r}")
                    return
                if isinstance(v, Verified) and exact_flip(self.exact(x, -1), self.exact(x, pi), pb.level):
                    self.violate(f"label verified, but a sample flips exactly (x = {x.tolist()})")
                    return
        if seed % 4 == 0:
            self.check_delta(xs)

    def check_delta(self, xs: list[np.ndarray]) -> None:
        case, pb = self.case, self.problem
        unit = Problem(self.graph, AbsoluteDelta(1.0, case.params).to_box(self.graph), pb.region, pb.level)
        b = api.bound(unit, "delta", backend="bounds", options=_opts(self.cfg.bounds_timeout_s, 1e-3, case.seed))
        self.r.counts["delta_brackets"] += 1
        if b.lower <= 0:
            return
        proved = AbsoluteDelta(b.lower, case.params).to_box(self.graph)
        saved = self.params
        self.params = self.sample_params(proved)
        for x in xs:
            for pi in range(len(self.params)):
                self.r.counts["delta_samples"] += 1
                if exact_flip(self.exact(x, -1), self.ref.outputs(x, self.params[pi]), pb.level):
                    self.violate(f"a label flips exactly inside the proved largest-delta box (delta {b.lower!r})")
                    self.params = saved
                    return
        self.params = saved


def check_xcase(seed: int, cfg: CorpusConfig = CorpusConfig()) -> CaseReport:
    """Every check of extreme case ``seed``; exceptions are recorded as errors, not raised."""
    t0 = time.perf_counter()
    case = make_xcase(seed)
    report = CaseReport(seed, case.describe())
    try:
        ck = XChecker(case, cfg, report)
        ck.params = ck.sample_params(ck.problem.box)
        xs = ck.sample_inputs()
        zs: list[np.ndarray] = []
        for x in xs:
            ck.ref.float_outputs(x, None, zs)
        ck.preact_max = max((float(np.max(np.abs(z))) for z in zs), default=0.0)
        for name, fn in (("kernels", ck.check_kernels), ("engine", ck.check_engine)):
            t1 = time.perf_counter()
            fn(xs)
            report.timings[name] = round(time.perf_counter() - t1, 3)
        report.counts["cases_" + case.activation] += 1
        report.counts["head_" + case.head] += 1
        report.counts["skip"] += int(case.skip)
        report.counts["regime_" + case.regime] += 1
        for key, v in (("weights", max(float(np.max(np.abs(w))) for w, _ in case.layers)),
                       ("inputs", float(max(np.max(np.abs(case.lo)), np.max(np.abs(case.hi))))), ("preacts", ck.preact_max)):
            report.counts[f"{key}_max_ge_1e{min(int(np.log10(max(v, 1.0))), 8)}"] += 1
        for m in case.modes:
            report.counts["bias_" + m] += 1
    except Exception as exc:  # noqa: BLE001 -- a crash is a finding to report, not a reason to stop the corpus
        report.errors.append(f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=3).splitlines()[-3:]}")
    report.time_s = time.perf_counter() - t0
    return report


def run_one(args: tuple[int, CorpusConfig]) -> dict[str, Any]:
    return check_xcase(*args).to_json()


KEY_ROWS = ("enclosure_checks", "kernel_interval_kernel", "kernel_differential_kernel", "kernel_differential_CROWN",
            "kernel_point", "eps_brackets", "eps_witness_checked", "label_V", "label_F", "label_U",
            "label_counterexample_exact", "float_only_counterexamples", "delta_brackets", "samples", "delta_samples")


def main(args: Any, run_corpus: Callable[..., list[dict[str, Any]]], summarise: Callable[[list[dict[str, Any]]], dict[str, Any]],
         write: Callable[[str, dict[str, Any]], None], machine: dict[str, Any]) -> int:
    """``bench_soundness.py --tier extreme``: >= 1,000 extreme networks, zero violations."""
    n = 100 if args.quick else args.n
    cfg = CorpusConfig(bounds_timeout_s=min(args.bounds_timeout, 0.3), tolerance=1e-4, input_samples=8)
    t0 = time.perf_counter()
    reports = run_corpus(range(args.start, args.start + n), cfg, jobs=args.jobs, fn=run_one)
    wall = time.perf_counter() - t0
    summary = summarise(reports)
    c = summary["counts"]
    ok = summary["cases"] >= 1000 and summary["violations"] == 0
    print()
    for key in ("cases", *KEY_ROWS):
        print(f"{key:<46}{summary['cases'] if key == 'cases' else c.get(key, 0):>10}")
    print(f"{'errors (crashes)':<46}{summary['errors']:>10}")
    print(f"{'VIOLATIONS':<46}{summary['violations']:>10}")
    print(f"target: >= 1,000 extreme networks, zero violations: {'PASS' if ok else 'FAIL'}")
    out = args.out if args.out else str(Path(__file__).resolve().parent / "results" / "soundness_extreme.json")
    write(out, {
        "benchmark": "soundness_extreme",
        "target": ">= 1,000 extreme-scale networks (inputs and boxes up to 1e6, weights up to 1e6, pre-activations "
                  "up to 1e8, saturated sigmoid/tanh/softmax, dead and always-on ReLUs), every kernel checked "
                  "against a 50-digit reference, zero violations",
        "pass": ok,
        "config": {"bounds_timeout_s": cfg.bounds_timeout_s, "tolerance": cfg.tolerance, "random_inputs_per_box": cfg.input_samples,
                   "parameter_samples": PARAM_SAMPLES, "jobs": args.jobs, "start": args.start, "reference_digits": DPS,
                   "reference_slack": REL_TOL},
        "machine": machine,
        "wall_s": round(wall, 1),
        "summary": summary,
        "violations": [v for r in reports for v in r["violations"]],
        "errors": [f"seed {r['seed']}: {e}" for r in reports for e in r["errors"]],
        "cases": reports,
    })
    print(f"wrote {out} ({wall:.0f} s)")
    return 0 if summary["violations"] == 0 else 1
