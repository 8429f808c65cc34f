"""Soundness corpus: random small networks, every proved bound checked against z3 and sampling.

    python benchmarks/bench_soundness.py [--n 1000] [--start 0] [--jobs 2] [--quick] [--tier extreme]

Each case ``seed`` is a random float32 MLP (2-4 inputs, 1-2 hidden layers of
2-6 units, ReLU / linear / LeakyReLU, with or without a final Sigmoid, 1-3
outputs), a random absolute parameter box (delta log-uniform in [1e-3, 0.2])
and a random input region (a point or a box).  For every case:

* ``eps`` (nets without a final Sigmoid): the bound engine's MaxEpsilon
  bracket [L, U].  U is checked three ways: no sampled (x, p) has a larger
  output change (sample maxima above U are re-evaluated in exact rational
  arithmetic), z3 cannot refute ``OutputBound(U)`` (a z3 counterexample is
  re-evaluated exactly), and -- when z3's own MaxEpsilon bisection finishes
  -- z3's exact optimum lies in [L, U] (the two brackets overlap).  L is
  checked by evaluating the bracket's witness exactly.
* ``eps`` verify just below L on both engines: neither may prove it (the
  witness exceeds it exactly), never Verified on one and Falsified on the
  other; z3 proving U and refuting just below L places z3's exact optimum
  inside [L, U].
* ``label``: LabelInvariance on both engines (z3 through the logit of a
  final Sigmoid), the same agreement rule; a Verified verdict must survive
  every sampled (x, p) (flips are re-checked exactly), and every Falsified
  counterexample must flip in exact arithmetic too (a float-only flip is
  counted apart, not as a violation).
* ``sigma`` (box regions): the bound engine's smallest-sigma bracket; no
  sampled or z3-found exact flip may have a nominal margin above its proved
  upper end; Def 5 just above the upper end and just below the witness's
  margin on both engines must agree (and the latter may not be proved).
* ``delta`` (every third case): the largest-delta bracket; no sampled or
  z3-found exact flip may lie inside the proved lower end's box.

A *violation* is a proved statement contradicted by an exact (rational)
evaluation or by an exact z3 answer.  Zero are expected; each one is printed
with its seed.  The exact evaluator here is independent of the engines
under test (plain ``fractions.Fraction`` arithmetic over the float64 values
of the ONNX float32 parameters).  ``tests/test_soundness_corpus.py`` runs a
fixed fast subset of the same cases.

``--tier extreme`` runs the extreme-scale tier instead (inputs, boxes and
weights up to 1e6, pre-activations up to 1e8, saturated sigmoid / tanh /
softmax, dead and always-on ReLUs; every kernel against a 50-digit mpmath
reference), written to ``results/soundness_extreme.json``; see
``benchmarks/soundness_extreme.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_common import machine_info, write_results  # noqa: E402  (benchmarks/bench_common.py)
from netgen import random_mlp
from soundness_exact import ExactNet, rational  # benchmarks/soundness_exact.py

from paramverify import api
from paramverify.errors import CapabilityError
from paramverify.ir import Graph, load_model
from paramverify.options import Options
from paramverify.properties import Problem, label_kept, margins
from paramverify.results import Bracket, Counterexample, Falsified, Verified
from paramverify.specs import AbsoluteDelta

ACTIVATIONS = ("relu", "linear", "leaky_relu")


# ---------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True, eq=False)
class Case:
    """One random network, parameter box and input region (all from ``seed``)."""

    seed: int
    sizes: tuple[int, ...]
    activation: str
    sigmoid_output: bool
    scale: float
    delta: float
    lo: np.ndarray
    hi: np.ndarray
    level: float
    params: tuple[str, ...] | None = None  # None: every weight and bias

    @property
    def point(self) -> bool:
        return bool(np.all(self.lo == self.hi))

    def describe(self) -> str:
        region = "point" if self.point else "box"
        head = "+sigmoid" if self.sigmoid_output else ""
        which = "all parameters" if self.params is None else ",".join(self.params)
        return (f"seed {self.seed}: {'-'.join(map(str, self.sizes))} {self.activation}{head} "
                f"scale {self.scale:.2f}, delta {self.delta:.4g} on {which}, {region} region, level {self.level:.4g}")


def make_case(seed: int) -> Case:
    """The case of ``seed`` (deterministic)."""
    rng = np.random.default_rng(10_000 + seed)
    d = int(rng.integers(2, 5))
    hidden = [int(rng.integers(2, 7)) for _ in range(int(rng.integers(1, 3)))]
    k = int(rng.integers(1, 4))
    activation = ACTIVATIONS[int(rng.integers(0, len(ACTIVATIONS)))]
    sigmoid_output = bool(rng.random() < 0.3)
    scale = float(rng.uniform(0.5, 2.0))
    delta = float(np.exp(rng.uniform(np.log(1e-3), np.log(0.2))))
    centre = rng.uniform(-1.0, 1.0, size=d)
    if rng.random() < 0.5:
        lo = hi = centre
    else:
        half = rng.uniform(0.02, 0.5, size=d)
        lo, hi = centre - half, centre + half
    lo = np.asarray(lo, dtype=np.float32).astype(np.float64)
    hi = np.asarray(hi, dtype=np.float32).astype(np.float64)
    sizes = (d, *hidden, k)
    n_layers = len(sizes) - 1
    # half the cases perturb everything; the rest one layer or only the biases (piecewise-linear
    # at a point or everywhere, so z3 answers exactly and fast)
    which = rng.random()
    params: tuple[str, ...] | None = None
    if which >= 0.75:
        params = tuple(f"b{i}" for i in range(1, n_layers + 1))
    elif which >= 0.5:
        layer = int(rng.integers(1, n_layers + 1))
        params = (f"W{layer}", f"b{layer}")
    level = 0.5
    if k == 1 and not sigmoid_output:
        # a decision level near the output at the centre, so flips are neither impossible nor certain
        g = load_model(random_mlp(seed, sizes, activation, False, scale))
        level = float(np.float32(g.evaluate((lo + hi) / 2)[0, 0] + rng.normal(0.0, 0.3)))
    return Case(seed, sizes, activation, sigmoid_output, scale, delta, lo, hi, level, params)


def build(case: Case) -> tuple[Graph, Problem]:
    g = load_model(random_mlp(case.seed, case.sizes, case.activation, case.sigmoid_output, case.scale))
    if case.point:
        problem = api.make_problem(g, delta=case.delta, params=case.params, x0=case.lo, level=case.level)
    else:
        problem = api.make_problem(g, delta=case.delta, params=case.params, domain=list(zip(case.lo, case.hi)), level=case.level)
    return g, problem


# ---------------------------------------------------------------------------
# sampling


def _sample_inputs(problem: Problem, rng: np.random.Generator, n: int) -> np.ndarray:
    lo, hi = problem.region.lo, problem.region.hi
    if problem.region.is_point:
        return lo[None].copy()
    corners = np.where(rng.random((n // 2, lo.size)) < 0.5, lo, hi)
    inner = rng.uniform(lo, hi, size=(n - n // 2, lo.size))
    return np.vstack([((lo + hi) / 2)[None], corners, inner])


def _sample_params(box: Any, rng: np.random.Generator, n: int, around: Mapping[str, np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
    out: list[dict[str, np.ndarray]] = []
    for i in range(n):
        p: dict[str, np.ndarray] = {}
        for name in box.names:
            lo, hi = box.lo[name], box.hi[name]
            if around is not None and i % 3 == 0:
                v = np.clip(around[name] + rng.normal(0.0, 0.1, size=lo.shape) * (hi - lo), lo, hi)
            elif i % 2 == 0:
                v = np.where(rng.random(lo.shape) < 0.5, lo, hi)  # a vertex of the box
            else:
                v = rng.uniform(lo, hi)
            p[name] = np.asarray(v, dtype=np.float64)
        out.append(p)
    return out


# ---------------------------------------------------------------------------
# one case


@dataclass
class CaseReport:
    seed: int
    description: str
    counts: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    time_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "case": self.description, "counts": dict(self.counts),
                "violations": self.violations, "errors": self.errors, "time_s": round(self.time_s, 3),
                "timings": self.timings}


@dataclass(frozen=True)
class CorpusConfig:
    """Budgets of one case; the defaults are the benchmark's, the tests use smaller ones."""

    bounds_timeout_s: float = 2.0
    label_timeout_s: float | None = None  # the extreme tier's label verdicts (None: bounds_timeout_s)
    z3_timeout_s: float = 5.0
    tolerance: float = 1e-4
    param_samples: int = 48
    input_samples: int = 24
    z3_optimise_every: int = 5
    z3_optimise_timeout_s: float = 10.0
    max_exact_rechecks: int = 12


def _opts(timeout: float, tol: float, seed: int) -> Options:
    return Options(timeout_s=timeout, tolerance=tol, seed=seed, query_timeout_s=timeout)


def _definite(v: Any) -> str:
    return "V" if isinstance(v, Verified) else "F" if isinstance(v, Falsified) else "U"


class _Checker:
    def __init__(self, case: Case, cfg: CorpusConfig, report: CaseReport) -> None:
        self.case, self.cfg, self.r = case, cfg, report
        self.graph, self.problem = build(case)
        self.exact = ExactNet(self.graph)
        self.rng = np.random.default_rng(case.seed)

    # ----------------------------------------------------------- helpers
    def violate(self, what: str) -> None:
        self.r.violations.append(f"{self.case.describe()}: {what}")

    def inside(self, problem: Problem, cex: Counterexample) -> bool:
        x = np.asarray(cex.input, dtype=np.float64).reshape(-1)
        ok_x = bool(np.all(x >= problem.region.lo) and np.all(x <= problem.region.hi))
        return ok_x and problem.box.contains({n: np.asarray(cex.parameters[n]) for n in problem.box.names})

    def z3(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Run a z3 call; None when z3 cannot answer soundly (a CapabilityError)."""
        try:
            return fn(*args, **kw)
        except CapabilityError:
            self.r.counts["z3_not_applicable"] += 1
            return None

    def float_outputs(self, problem: Problem, xs: np.ndarray, params: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        y0 = self.graph.evaluate(xs)
        yp = np.stack([self.graph.evaluate(xs, p) for p in params])  # [P, N, k]
        return y0, yp

    # --------------------------------------------------------------- eps
    def check_eps(self) -> None:
        case, cfg, pb = self.case, self.cfg, self.problem
        self.cex_problem = pb
        b = api.bound(pb, "eps", backend="bounds", options=_opts(cfg.bounds_timeout_s, cfg.tolerance, case.seed))
        self.r.counts["eps_brackets"] += 1
        self.r.counts["eps_complete"] += int(b.complete)
        if b.witness is not None:
            if not self.inside(pb, b.witness):
                self.violate(f"eps witness lies outside the boxes (bracket [{b.lower}, {b.upper}])")
            elif self.exact.change(b.witness.input, b.witness.parameters) < rational(b.lower):
                self.violate(f"eps lower end {b.lower!r} exceeds the exact change at its own witness")
            self.r.counts["eps_witness_checked"] += 1
        # sampling against the proved upper end
        xs = _sample_inputs(pb, self.rng, cfg.input_samples)
        params = _sample_params(pb.box, self.rng, cfg.param_samples, b.witness.parameters if b.witness else None)
        y0, yp = self.float_outputs(pb, xs, params)
        change = np.max(np.abs(yp - y0[None]), axis=2)  # [P, N]
        self.r.counts["samples"] += change.size
        over = np.argwhere(change > b.upper - 1e-9 * (1 + abs(b.upper)))
        for pi, xi in over[np.argsort(-change[over[:, 0], over[:, 1]])][: cfg.max_exact_rechecks]:
            self.r.counts["exact_rechecks"] += 1
            exact = self.exact.change(xs[xi], params[pi])
            if exact > rational(b.upper):
                self.violate(f"sampled output change {float(exact)!r} (exact) exceeds the proved upper bound {b.upper!r}")
        # z3: the proved upper end must not be refutable
        v_up = self.z3(api.verify, pb, "eps", epsilon=b.upper, backend="z3", options=_opts(cfg.z3_timeout_s, cfg.tolerance, case.seed))
        if v_up is not None:
            self.r.counts[f"z3_eps_at_upper_{_definite(v_up)}"] += 1
            if isinstance(v_up, Falsified):
                cex = v_up.counterexample
                if self.exact.change(cex.input, cex.parameters) > rational(b.upper):
                    self.violate(f"z3 refutes the proved upper bound {b.upper!r} (exact change "
                                 f"{float(self.exact.change(cex.input, cex.parameters))!r})")
                else:
                    self.r.counts["float_only_counterexamples"] += 1
        if cfg.z3_optimise_every and case.seed % cfg.z3_optimise_every == 0:
            zb = self.z3(api.bound, pb, "eps", backend="z3", options=_opts(cfg.z3_optimise_timeout_s, 1e-6, case.seed))
            if zb is not None:
                self.compare_brackets(b, zb)
        # just below the witnessed lower end: nobody may prove it (the witness exceeds it exactly)
        if b.lower > 0 and b.witness is not None:
            below = float(b.lower * (1 - 1e-6))
            w_exact = self.exact.change(b.witness.input, b.witness.parameters)
            vb = api.verify(pb, "eps", epsilon=below, backend="bounds", options=_opts(cfg.bounds_timeout_s, cfg.tolerance, case.seed))
            vz = self.z3(api.verify, pb, "eps", epsilon=below, backend="z3", options=_opts(cfg.z3_timeout_s, cfg.tolerance, case.seed))
            self.agree("eps_verify_below_lower", vb, vz, lambda cex: self.exact.change(cex.input, cex.parameters) > rational(below))
            for v in (vb, vz):
                if isinstance(v, Verified) and w_exact > rational(below):
                    self.violate(f"{v.method} verifies epsilon {below!r}, below the exact change {float(w_exact)!r} at a witness")
            if isinstance(v_up, Verified) and isinstance(vz, Falsified):
                self.r.counts["z3_optimum_inside_bracket"] += 1


    def compare_brackets(self, b: Bracket, zb: Bracket) -> None:
        self.r.counts["z3_eps_brackets"] += 1
        exact = zb.complete and zb.gap <= 1e-5
        self.r.counts["z3_eps_bisection_exact"] += int(exact)
        if zb.lower > b.upper:
            # z3's lower end is a witness; re-evaluate it exactly before calling it a violation
            w = zb.witness
            if w is not None and self.exact.change(w.input, w.parameters) > rational(b.upper):
                self.violate(f"z3's witness {float(self.exact.change(w.input, w.parameters))!r} exceeds the "
                             f"bound engine's proved upper end {b.upper!r}")
            else:
                self.r.errors.append(f"z3 lower end {zb.lower!r} > bounds upper {b.upper!r} without an exact witness")
        elif b.lower > zb.upper:
            self.violate(f"bounds' witness value {b.lower!r} exceeds z3's proved upper end {zb.upper!r}")
        elif exact:
            self.r.counts["z3_bisection_optimum_inside_bracket"] += 1

    def agree(self, what: str, vb: Any, vz: Any, exact_violation: Any) -> None:
        """Never Verified on one engine and Falsified (exactly) on the other."""
        tag = _definite(vb) + (_definite(vz) if vz is not None else "-")
        self.r.counts[f"{what}_{tag}"] += 1
        for v in (vb, vz):
            if isinstance(v, Falsified):
                if not self.inside(self.cex_problem, v.counterexample):
                    self.violate(f"{what}: a {v.method} counterexample lies outside the boxes")
                elif not exact_violation(v.counterexample):
                    self.r.counts["float_only_counterexamples"] += 1
        if vz is None or {tag[0], tag[1]} != {"V", "F"}:
            return
        prover, refuter = (vb, vz) if isinstance(vb, Verified) else (vz, vb)
        if exact_violation(refuter.counterexample):
            self.violate(f"{what}: {prover.method} says Verified but {refuter.method} has an exact counterexample")
        else:
            self.r.counts[f"{what}_float_only_disagreement"] += 1

    # ------------------------------------------------------------- labels
    def check_labels(self, problem: Problem, what: str, sigma: float | None = None) -> tuple[Any, Any]:
        cfg, case = self.cfg, self.case
        self.cex_problem = problem
        kind = "label" if sigma is None else "sigma"
        vb = api.verify(problem, kind, sigma=sigma, backend="bounds", options=_opts(cfg.bounds_timeout_s, cfg.tolerance, case.seed))
        vz = self.z3(api.verify, problem, kind, sigma=sigma, backend="z3", options=_opts(cfg.z3_timeout_s, cfg.tolerance, case.seed))
        level = problem.level

        def exact_violation(cex: Counterexample) -> bool:
            if not self.exact.flips(cex.input, cex.parameters, level):
                return False
            return sigma is None or self.exact.margin(cex.input, level) >= sigma

        self.agree(what, vb, vz, exact_violation)
        for v in (vb, vz):
            if isinstance(v, Verified):
                self.sample_no_flip(problem, f"{what} verified by {v.method}", sigma)
        return vb, vz

    def sample_no_flip(self, problem: Problem, claim: str, sigma: float | None, strict: bool = False) -> None:
        """No sampled (x, p) of the problem flips exactly (with margin >= sigma; > sigma if ``strict``)."""
        cfg = self.cfg
        xs = _sample_inputs(problem, self.rng, cfg.input_samples)
        params = _sample_params(problem.box, self.rng, cfg.param_samples)
        y0, yp = self.float_outputs(problem, xs, params)
        m0 = margins(y0, problem.level)
        rechecks = 0
        for pi in range(len(params)):
            kept = label_kept(y0, yp[pi], problem.level)
            if yp.shape[2] > 1:
                top = np.sort(yp[pi], axis=1)
                near = top[:, -1] - top[:, -2] < 1e-9
            else:
                near = np.abs(yp[pi][:, 0] - problem.level) < 1e-9
            suspect = (~kept) | near
            if sigma is not None:
                suspect &= m0 >= sigma - 1e-9
            self.r.counts["samples"] += len(xs)
            for xi in np.flatnonzero(suspect):
                if rechecks >= cfg.max_exact_rechecks:
                    return
                rechecks += 1
                self.r.counts["exact_rechecks"] += 1
                if self.exact.flips(xs[xi], params[pi], problem.level):
                    m = self.exact.margin(xs[xi], problem.level)
                    if sigma is None or (m > sigma if strict else m >= sigma):
                        self.violate(f"{claim}, but a sampled (x, p) flips exactly (x = {xs[xi].tolist()}, margin {m!r})")
                        return

    # --------------------------------------------------------------- sigma
    def check_sigma(self) -> None:
        case, cfg, pb = self.case, self.cfg, self.problem
        b = api.bound(pb, "sigma", backend="bounds", options=_opts(cfg.bounds_timeout_s, cfg.tolerance, case.seed))
        self.r.counts["sigma_brackets"] += 1
        self.r.counts["sigma_complete"] += int(b.complete)
        w_margin = None
        if b.witness is not None and b.lower > 0:
            w = b.witness
            if not self.inside(pb, w) or not self.exact.flips(w.input, w.parameters, pb.level):
                self.violate(f"sigma witness (lower end {b.lower!r}) does not flip exactly inside the boxes")
            else:
                w_margin = self.exact.margin(w.input, pb.level)
                if w_margin < b.lower * (1 - 1e-9):
                    self.violate(f"sigma lower end {b.lower!r} exceeds its witness's exact margin {w_margin!r}")
            self.r.counts["sigma_witness_checked"] += 1
        # every exact flip has a nominal margin <= the proved upper end
        self.sample_no_flip(pb, f"smallest sigma proved <= {b.upper!r}", b.upper, strict=True)
        above = float(np.nextafter(b.upper, np.inf))
        _, vz_up = self.check_labels(pb, "sigma_verify_above_upper", above)
        if vz_up is not None:
            self.r.counts[f"z3_sigma_at_upper_{_definite(vz_up)}"] += 1
        if w_margin is not None and w_margin > 0:
            below = float(w_margin * (1 - 1e-6))
            vb, vz = self.check_labels(pb, "sigma_verify_below_witness", below)
            for v in (vb, vz):
                if isinstance(v, Verified):
                    self.violate(f"{v.method} verifies Def 5 at sigma {below!r} but a witness flips exactly with margin {w_margin!r}")

    # --------------------------------------------------------------- delta
    def check_delta(self) -> None:
        case, cfg = self.case, self.cfg
        unit = Problem(self.graph, AbsoluteDelta(1.0, self.case.params).to_box(self.graph), self.problem.region, self.problem.level)
        b = api.bound(unit, "delta", backend="bounds", options=_opts(cfg.bounds_timeout_s, 1e-3, case.seed))
        self.r.counts["delta_brackets"] += 1
        if b.witness is not None:
            w = b.witness
            ok_region = bool(np.all(w.input >= unit.region.lo) and np.all(w.input <= unit.region.hi))
            dev = max(float(np.max(np.abs(w.parameters[n] - unit.box.nominal[n]), initial=0.0)) for n in unit.box.names)
            if not ok_region or not self.exact.flips(w.input, w.parameters, unit.level):
                self.r.counts["delta_witness_not_exact_flip"] += 1
            elif dev < b.lower:
                self.violate(f"a label flips exactly at delta {dev!r}, below the proved largest delta {b.lower!r}")
            self.r.counts["delta_witness_checked"] += 1
        if b.lower <= 0:
            return
        proved = Problem(self.graph, AbsoluteDelta(b.lower, self.case.params).to_box(self.graph), unit.region, unit.level)
        self.sample_no_flip(proved, f"labels proved kept up to delta {b.lower!r}", None)
        self.cex_problem = proved
        vz = self.z3(api.verify, proved, "label", backend="z3", options=_opts(cfg.z3_timeout_s, cfg.tolerance, case.seed))
        if vz is not None:
            self.r.counts[f"z3_label_at_delta_lower_{_definite(vz)}"] += 1
            if isinstance(vz, Falsified) and self.exact.flips(vz.counterexample.input, vz.counterexample.parameters, unit.level):
                self.violate(f"z3 finds an exact flip inside the proved largest-delta box (delta {b.lower!r})")


def check_case(seed: int, cfg: CorpusConfig = CorpusConfig()) -> CaseReport:
    """Run every check of case ``seed``; exceptions are recorded as errors, not raised."""
    t0 = time.perf_counter()
    case = make_case(seed)
    report = CaseReport(seed, case.describe())
    try:
        ck = _Checker(case, cfg, report)
        steps = [("eps", ck.check_eps, not case.sigmoid_output), ("label", lambda: ck.check_labels(ck.problem, "label"), True),
                 ("sigma", ck.check_sigma, not case.point), ("delta", ck.check_delta, seed % 3 == 0)]
        for name, fn, wanted in steps:
            if wanted:
                t1 = time.perf_counter()
                fn()
                report.timings[name] = round(time.perf_counter() - t1, 3)
    except Exception as exc:  # noqa: BLE001 -- a crash is a finding to report, not a reason to stop the corpus
        report.errors.append(f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=3).splitlines()[-3:]}")
    report.time_s = time.perf_counter() - t0
    return report


def _run_one(args: tuple[int, CorpusConfig]) -> dict[str, Any]:
    return check_case(*args).to_json()


def run_corpus(seeds: Iterable[int], cfg: CorpusConfig, jobs: int = 1, verbose: bool = True,
               fn: Any = None) -> list[dict[str, Any]]:
    """Check every seed (in ``jobs`` worker processes; ``fn`` checks one, default the main tier's)."""
    fn = fn or _run_one
    work = [(s, cfg) for s in seeds]
    out: list[dict[str, Any]] = []
    if jobs > 1:
        # one thread per worker: BLAS pools of parallel workers only fight over the cores
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for i, rep in enumerate(pool.imap(fn, work, chunksize=2), 1):
                out.append(rep)
                _progress(i, len(work), rep, verbose)
    else:
        for i, w in enumerate(work, 1):
            rep = fn(w)
            out.append(rep)
            _progress(i, len(work), rep, verbose)
    return out


def _progress(i: int, n: int, rep: dict[str, Any], verbose: bool) -> None:
    for v in rep["violations"]:
        print(f"VIOLATION {v}", flush=True)
    for e in rep["errors"]:
        print(f"error in seed {rep['seed']}: {e}", flush=True)
    if verbose and (i % 50 == 0 or i == n):
        print(f"  {i}/{n} cases", flush=True)


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    counts: Counter = Counter()
    for r in reports:
        counts.update(r["counts"])
    return {
        "cases": len(reports),
        "violations": sum(len(r["violations"]) for r in reports),
        "errors": sum(len(r["errors"]) for r in reports),
        "counts": dict(sorted(counts.items())),
        "cpu_time_s": round(sum(r["time_s"] for r in reports), 1),
    }


KEY_ROWS = ("eps_brackets", "eps_witness_checked", "z3_eps_at_upper_V", "z3_eps_at_upper_U", "z3_optimum_inside_bracket",
            "z3_eps_brackets", "z3_eps_bisection_exact", "z3_bisection_optimum_inside_bracket", "sigma_brackets",
            "sigma_witness_checked", "delta_brackets", "delta_witness_checked", "samples", "exact_rechecks",
            "float_only_counterexamples", "z3_not_applicable")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="number of cases (default 1000)")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="100 cases with small budgets")
    ap.add_argument("--bounds-timeout", type=float, default=0.5, help="bound engine budget per query (s)")
    ap.add_argument("--z3-timeout", type=float, default=1.0, help="z3 budget per query (s)")
    ap.add_argument("--z3-optimise-every", type=int, default=10, help="run z3's MaxEpsilon bisection on every N-th case (0: never)")
    ap.add_argument("--tier", choices=["main", "extreme"], default="main",
                    help="extreme: the extreme-scale tier (benchmarks/soundness_extreme.py), written to soundness_extreme.json")
    ap.add_argument("--out", default=None, help="output JSON (default results/soundness.json or soundness_extreme.json)")
    args = ap.parse_args(argv)
    if args.tier == "extreme":
        import soundness_extreme  # benchmarks/soundness_extreme.py

        return soundness_extreme.main(args, run_corpus, summarise, write_results, machine_info())
    args.out = args.out or str(HERE / "results" / "soundness.json")
    n = 100 if args.quick else args.n
    cfg = CorpusConfig(bounds_timeout_s=args.bounds_timeout, z3_timeout_s=args.z3_timeout,
                       z3_optimise_every=args.z3_optimise_every)
    if args.quick:
        cfg = CorpusConfig(bounds_timeout_s=0.3, z3_timeout_s=0.5, param_samples=24, input_samples=12, z3_optimise_every=0)
    t0 = time.perf_counter()
    reports = run_corpus(range(args.start, args.start + n), cfg, jobs=args.jobs)
    wall = time.perf_counter() - t0
    summary = summarise(reports)
    c = summary["counts"]
    target_ok = summary["cases"] >= 1000 and summary["violations"] == 0
    print()
    print(f"{'cases':<46}{summary['cases']:>10}")
    for key in KEY_ROWS:
        print(f"{key:<46}{c.get(key, 0):>10}")
    for key in sorted(k for k in c if k.startswith(("label_", "eps_verify_", "sigma_verify_"))):
        print(f"{key:<46}{c[key]:>10}")
    print(f"{'errors (crashes)':<46}{summary['errors']:>10}")
    print(f"{'VIOLATIONS':<46}{summary['violations']:>10}")
    print(f"target: >= 1,000 networks, zero violations: {'PASS' if target_ok else 'FAIL'}"
          + ("" if summary["cases"] >= 1000 else f" (only {summary['cases']} cases run)"))
    out = {
        "benchmark": "soundness",
        "target": ">= 1,000 random small networks, every proved bound checked against z3 and sampling, zero violations",
        "pass": target_ok,
        "config": {**cfg.__dict__, "jobs": args.jobs, "start": args.start},
        "machine": machine_info(),
        "wall_s": round(wall, 1),
        "summary": summary,
        "anchors": "ANCHORS.md has no soundness figure; z3 (exact) is the reference here",
        "violations": [v for r in reports for v in r["violations"]],
        "errors": [f"seed {r['seed']}: {e}" for r in reports for e in r["errors"]],
        "cases": reports,
    }
    write_results(args.out, out)
    print(f"wrote {args.out} ({wall:.0f} s)")
    return 0 if summary["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
