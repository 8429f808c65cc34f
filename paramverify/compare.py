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
from paramverify.argtypes import (
    finite_float,
    nonneg_float,
    positive_float,
    positive_int,
    probability,
)
from paramverify.compare_points import (
    DEFAULT_DELTAS,
    Settings,
    certified_at_bits,
    domain_sample,
    epsilon_local,
    max_delta,
    representable,
)
from paramverify.distributed.runtime import (
    add_parallel_args,
    open_pool,
    parallel_config,
)
from paramverify.errors import SpecError
from paramverify.fileio import check_output_folder, check_output_path, write_json
from paramverify.interrupt import StopSignal, finishing
from paramverify.results import SCHEMA_VERSION

if TYPE_CHECKING:
    from paramverify.ir import Graph
    from paramverify.options import Options
    from paramverify.progress import ConsoleProgress

# The model, engine and ONNX modules are imported inside the functions that use them, so
# that building the command-line parser (add_compare_subparser) stays fast.

#: the activations paramverify.train offers (a test checks they agree)
ACTIVATION_NAMES = ("relu", "linear", "tanh", "sigmoid", "leaky_relu")


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
           progress: ConsoleProgress, stop: StopSignal | None = None) -> list[tuple[str, Callable[[dict[str, Any]], bool]]]:
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
        return Options(timeout_s=settings.timeout_s, tolerance=max(settings.tolerance * scale, 1e-7), seed=settings.seed, progress=progress,
                       stop=stop)

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


@dataclass(frozen=True, eq=False)
class ModelJob:
    """Every query of one model, in plan order: the unit of ``compare --workers`` (picklable).

    A model's queries read only its own earlier answers (the global queries' tolerance
    scales with its local epsilon), so running them model by model gives what the
    one-process run, which interleaves the models step by step, gives."""

    points: np.ndarray
    domain: np.ndarray
    settings: Settings
    classes: tuple[str, ...] | None  # the data set's class names, else "0", "1", ...

    def __call__(self, item: tuple[Entry, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
        """The model's JSON (``item[1]`` filled in) and the queries not run (after an interrupted engine)."""
        from paramverify.progress import ConsoleProgress
        entry, m = item[0], dict(item[1])
        missing: list[str] = []
        stop = False
        for what, fn in _steps(entry, _classes(entry, self.classes), self.points, self.domain, self.settings,
                               ConsoleProgress(enabled=False)):
            if stop:
                missing.append(f"{m['name']}: {what}")
                continue
            q0 = time.monotonic()
            stop = fn(m)
            m["time_s"] += time.monotonic() - q0
        return m, missing


def _classes(entry: Entry, classes: tuple[str, ...] | None) -> tuple[str, ...]:
    return classes if classes is not None else tuple(str(c) for c in range(max(2, entry.graph.n_outputs)))


def _run_on_pool(pool: Any, job: ModelJob, entries: Sequence[Entry], models: list[dict[str, Any]], plans: list[list[Any]],
                 progress: ConsoleProgress) -> tuple[list[str], str | None]:
    """One task per model; what did not finish (interrupt, lost cluster) is listed as missing."""
    from paramverify.errors import ClusterError
    done: dict[int, list[str]] = {}
    stopped: str | None = None
    try:
        for j, (m, miss) in pool.completed(job, [(e, models[j]) for j, e in enumerate(entries)]):
            models[j], done[j] = m, miss
            progress.note(f"{m['name']}: {len(plans[j]) - len(miss)} queries done  {m['time_s']:.2f} s")
    except KeyboardInterrupt:
        stopped = "interrupted"
    except ClusterError as exc:
        stopped = str(exc)
    missing = [label for j in sorted(done) for label in done[j]]
    missing += [f"{models[j]['name']}: {what}" for j in range(len(entries)) if j not in done for what, _ in plans[j]]
    return missing, stopped


def run_comparison(entries: Sequence[Entry], points: np.ndarray, domain: np.ndarray, settings: Settings,
                   dataset: Dataset | None = None, eval_X: np.ndarray | None = None, eval_y: np.ndarray | None = None,
                   progress: ConsoleProgress | None = None, meta: dict[str, Any] | None = None,
                   stop: StopSignal | None = None, pool: Any = None) -> dict[str, Any]:
    """Run every query for every model; returns the compare JSON object (also when interrupted).

    ``stop`` (the CLI's SIGINT/SIGTERM record) ends the run at the next query once a signal
    arrived, even when a query swallowed the interrupt itself.  ``pool`` (a
    :class:`~paramverify.distributed.runtime.RayPool`) runs each model as one task; the
    JSON is the same as without it (a query cut by ``timeout_s`` aside: where a time
    limit ends a query depends on the machine's speed in every run).  A lost cluster
    adds ``stopped`` (the reason) and lists the unfinished models' queries as missing."""
    from paramverify import api
    from paramverify.progress import ConsoleProgress
    from paramverify.report import rank_models
    progress = progress or ConsoleProgress(enabled=False)
    run_stop = stop
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
        plans.append(_steps(e, _classes(e, dataset.classes if dataset is not None else None), points, domain, settings, progress,
                            run_stop))
    missing: list[str] = []
    stopped: str | None = None
    n_steps = max(len(p) for p in plans) if pool is None or len(entries) < 2 else 0
    if n_steps == 0:
        job = ModelJob(points, domain, settings, dataset.classes if dataset is not None else None)
        progress.update(f"{len(entries)} models as Ray tasks")
        missing, stopped = _run_on_pool(pool, job, entries, models, plans, progress)
    stop = False
    for s in range(n_steps):
        for j, plan in enumerate(plans):
            if s >= len(plan):
                continue
            what, fn = plan[s]
            label = f"{models[j]['name']}: {what}"
            if stop or (run_stop is not None and run_stop.requested):
                stop = True
                missing.append(label)
                continue
            progress.update(f"[{s + 1}/{n_steps}] {label}")
            q0 = time.monotonic()
            try:
                stop = fn(models[j])
            except KeyboardInterrupt:
                stop = True
                missing.append(label + " (interrupted)")
            if not stop and run_stop is not None and run_stop.requested:  # the query swallowed the interrupt
                stop = True
                missing.append(label + " (interrupted)")
            models[j]["time_s"] += time.monotonic() - q0
            if not stop:
                progress.note(f"[{s + 1}/{n_steps}] {label}  {time.monotonic() - q0:.2f} s")
    incomplete = [f"{m['name']}: {k} at delta {r['delta']:g}" + (f" class {r['class']}" if "class" in r else "")
                  for m in models for k in ("epsilon_global", "sigma") for r in m.get(k, []) if not r.get("complete", True)]
    result = {"command": "compare", "schema": SCHEMA_VERSION, "paramverify_version": __version__, "complete": not missing,
              "missing": missing, "incomplete": incomplete, "settings": settings.to_json(), **(meta or {}),
              "models": models, "time_s": time.monotonic() - t0}
    if stopped is not None and stopped != "interrupted":
        result["stopped"] = stopped
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
    src.add_argument("--epochs", type=positive_int, default=3000, help="training epochs (default 3000)")
    src.add_argument("--lr", type=positive_float, default=0.01, help="Adam learning rate (default 0.01)")
    src.add_argument("--test-fraction", type=probability, default=0.2, help="held-out fraction for the per-input queries (default 0.2)")
    src.add_argument("--models", nargs="+", metavar="M.onnx", help="compare these ONNX models instead of training")
    src.add_argument("--domain", metavar="LO1:HI1,...", help="input box for global queries (default: the data's bounding box)")
    q = p.add_argument_group("queries")
    q.add_argument("--deltas", default=",".join(f"{d:g}" for d in DEFAULT_DELTAS), help="delta grid (default %(default)s)")
    q.add_argument("--bits", default="8,6,4", help="rounding boxes for certified fractions (default 8,6,4)")
    q.add_argument("--ref-delta", type=nonneg_float, default=0.01, help="delta for sigma and the decision maps (default 0.01)")
    q.add_argument("--max-points", type=positive_int, default=40, help="test inputs for per-input queries (default 40)")
    q.add_argument("--map-points", type=positive_int, default=300, help="random inputs in the decision maps (default 300)")
    q.add_argument("--level", type=finite_float, default=0.5, help="decision level of single-output models (default 0.5)")
    q.add_argument("--timeout", type=positive_float, default=5.0, help="seconds per global query (default 5)")
    q.add_argument("--tolerance", type=nonneg_float, default=0.002,
                   help="global queries stop when the gap is this fraction of the answer's size (default 0.002)")
    q.add_argument("--seed", type=int, default=0, help="seed for training, the split and sampling (default 0)")
    q.add_argument("--backend", default="bounds", choices=["bounds"], help="proof engine (default bounds)")
    p.add_argument("--out", default="compare_out", help="folder for the models, compare.json and report.html")
    p.add_argument("-o", "--report", metavar="HTML", help="report file (default OUT/report.html)")
    p.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_parallel_args(p)
    p.set_defaults(handler=run_compare)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``paramverify compare``: 0 when complete, 130 when interrupted (files still written)."""
    from paramverify.argtypes import parse_domain
    from paramverify.progress import ConsoleProgress
    from paramverify.report import write_report
    from paramverify.train import ACTIVATIONS

    if args.data is None and args.models is None:
        raise SpecError("data", "give --data CSV (to train per activation) or --models A.onnx B.onnx ...")
    settings = Settings(deltas=_floats(args.deltas, "deltas"), bits=tuple(int(b) for b in _floats(args.bits, "bits")),
                        ref_delta=_floats(str(args.ref_delta), "ref-delta")[0], timeout_s=args.timeout,
                        tolerance=args.tolerance, seed=args.seed, max_points=args.max_points, map_points=args.map_points,
                        level=args.level, backend=args.backend)
    config = parallel_config(args)
    check_output_folder(args.out, "out")  # before training and the queries, not after them
    check_output_path(args.report, "report")
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
                        "n_rows": len(data.y) if data else None, "n_eval": None if eval_X is None else len(eval_X),
                        "n_points": len(points), "points_from": source, "domain": domain.tolist(), "points": points.tolist()}
        with open_pool(config) as pool:  # one task per model (the flags; else None and no Ray import)
            result = run_comparison(entries, points, domain, settings, data, eval_X, eval_y, progress, meta,
                                    stop=getattr(args, "stop", None), pool=pool)
    finishing(args)  # from here a signal cannot cut the writing short
    json_path = os.path.join(args.out, "compare.json")
    write_json(json_path, result, indent=1)  # atomic: an earlier compare.json is never left truncated
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
    if "stopped" in result:
        print(f"paramverify compare: error: {result['stopped']}; the finished models are reported", file=sys.stderr)
        return 3
    return 0 if result["complete"] else 130
