"""The Python API; it mirrors the CLI with typed results.

>>> from paramverify import api
>>> problem = api.make_problem("model.onnx", delta=0.01, domain=[(0, 1), (0, 1)])
>>> bracket = api.bound(problem, "eps")            # a Bracket
>>> verdict = api.verify(problem, "label")         # Verified | Falsified | Unknown
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from paramverify.engines import get_engine
from paramverify.errors import ModelError, SpecError
from paramverify.ir import Graph, load_model
from paramverify.options import Options
from paramverify.properties import (
    LabelInvariance,
    MarginLabelInvariance,
    MaxDelta,
    MaxEpsilon,
    MinSigma,
    OutputBound,
    Problem,
    Property,
    for_labels,
)
from paramverify.replay import replay_witness
from paramverify.results import Bracket, Verdict
from paramverify.specs import (
    AbsoluteDelta,
    InputRegion,
    Perturbation,
    QuantizationScheme,
    QuantizedCopy,
    RelativeDelta,
    perturbation_from_dict,
)

BoundKind = Literal["eps", "sigma", "delta"]
VerifyKind = Literal["eps", "label", "sigma"]


def make_problem(
    model: str | os.PathLike[str] | Graph,
    *,
    delta: float | None = None,
    relative: float | None = None,
    bits: int | None = None,
    symmetric: bool = True,
    per_channel: bool = False,
    quantized_model: str | os.PathLike[str] | None = None,
    perturbation: Perturbation | Mapping[str, Any] | None = None,
    params: Sequence[str] | None = None,
    x0: Sequence[float] | np.ndarray | None = None,
    domain: Sequence[tuple[float, float]] | None = None,
    level: float = 0.5,
    unit_box: bool = False,
    output: str | None = None,
    rounded: bool = False,
    radius: float | None = None,
) -> Problem:
    """Build a :class:`Problem` from the same choices the CLI offers.

    ``output`` names the tensor the property is stated on (default: the
    model's output, a trailing classifier head skipped).  Exactly one perturbation source: ``delta`` (absolute), ``relative``,
    ``bits`` (a quantization scheme), ``quantized_model`` (a concrete copy)
    or ``perturbation`` (a spec object or mapping).  ``unit_box=True`` with
    none of them gives the absolute box of radius 1 (for the largest-delta
    search, whose answer then *is* delta).  Exactly one of ``x0`` and
    ``domain``; ``radius`` turns ``x0`` into the L-inf ball
    ``[x0 - radius, x0 + radius]``.

    ``quantized_model`` may be what onnxruntime.quantization writes (QDQ,
    QOperator, dynamic): the problem is then the int8 function against the
    float function, activation rounding included (:mod:`paramverify.quantized`).
    ``rounded=True`` with ``bits`` takes the round-to-nearest copy of the
    scheme instead of its whole rounding box.
    """
    graph = model if isinstance(model, Graph) else load_model(model, output=output)
    check_finite_parameters(graph)
    sources = {
        "delta": delta is not None,
        "relative": relative is not None,
        "bits": bits is not None,
        "quantized_model": quantized_model is not None,
        "perturbation": perturbation is not None,
    }
    chosen = [k for k, v in sources.items() if v]
    if len(chosen) > 1:
        raise SpecError(chosen[1], f"conflicts with {chosen[0]}", "give one perturbation: --delta, --relative, --bits, --quantized or a spec file")
    if rounded and bits is None:
        raise SpecError("rounded", "needs --bits (the scheme whose round-to-nearest model to take)", "e.g. --bits 8 --rounded")
    pnames = tuple(params) if params else None
    spec: Perturbation
    if delta is not None:
        spec = AbsoluteDelta(_nonneg(delta, "delta"), pnames)
    elif relative is not None:
        spec = RelativeDelta(_nonneg(relative, "relative"), pnames)
    elif bits is not None and not rounded:
        spec = QuantizationScheme(int(bits), symmetric, per_channel, None, pnames)
    elif quantized_model is not None:
        graph, spec = quantized_copy(graph, quantized_model)
    elif bits is not None and rounded:
        spec = QuantizationScheme(int(bits), symmetric, per_channel, None, pnames).rounded(graph)
    elif perturbation is not None:
        spec = perturbation if not isinstance(perturbation, Mapping) else perturbation_from_dict(perturbation)
    elif unit_box:
        spec = AbsoluteDelta(1.0, pnames)
    else:
        raise SpecError("delta", "no perturbation given", "pass --delta D (or --relative, --bits, --quantized, --spec)")
    box = spec.to_box(graph)
    if (x0 is None) == (domain is None):
        raise SpecError("x0/domain", "give exactly one of them", "--x0 V1,V2,... for a local property, --domain LO1:HI1,... for a global one")
    if x0 is not None and radius is not None:
        region = InputRegion.ball(x0, _nonneg(radius, "radius")).check_for(graph, "x0")
    elif radius is not None:
        raise SpecError("radius", "needs --x0 (the centre of the ball)", "e.g. --x0 0.1,0.2 --radius 0.02")
    elif x0 is not None:
        region = InputRegion.point(x0, "x0").check_for(graph, "x0")
    else:
        dom = np.asarray(domain, dtype=np.float64)
        if dom.ndim != 2 or dom.shape[1] != 2:
            raise SpecError("domain", "must be a list of LO:HI intervals")
        if dom.shape[0] == 1 and graph.input_size > 1:
            dom = np.repeat(dom, graph.input_size, axis=0)
        region = InputRegion.box(dom[:, 0], dom[:, 1], "domain").check_for(graph, "domain")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating, np.integer)) or not np.isfinite(level):
        raise SpecError("level", f"must be a finite number, got {level!r}", "e.g. --level 0.5")
    problem = Problem(graph, box, region, float(level))
    check_finite_outputs(problem)
    return problem


def check_finite_parameters(graph: Graph) -> None:
    """ModelError naming every initializer that holds NaN or infinity (no answer about such a model is sound)."""
    bad = [name for name, value in graph.initializers.items() if not np.all(np.isfinite(value))]
    if bad:
        raise ModelError(
            f"initializer(s) {', '.join(map(repr, bad))} hold NaN or infinity; the model's outputs are not "
            "finite numbers, so nothing about them can be proved. Fix or retrain the model"
        )


def check_finite_outputs(problem: Problem) -> None:
    """ModelError when the nominal model's output at the region's corners or centre is NaN or infinite."""
    region = problem.region
    points = (region.lo, (region.lo + region.hi) / 2, region.hi)
    with np.errstate(all="ignore"):  # one point at a time: a static batch-1 export takes no batch of 3
        y = [np.asarray(problem.graph.evaluate(p[None]))[0] for p in points]
    for where, row in zip(("lower corner", "centre", "upper corner"), y, strict=True):
        if not np.all(np.isfinite(row)):
            raise ModelError(
                f"the model's output at the {where} of the input region is not finite ({row.tolist()}); an overflow "
                "(or a NaN) leaves nothing to prove. Use a smaller input region or rescale the model"
            )


def quantized_copy(graph: Graph, path: str | os.PathLike[str] | Any) -> tuple[Graph, QuantizedCopy]:
    """The perturbation of ``--quantized``: an onnxruntime int8 model (lowered onto ``graph``,
    which is returned changed) or a float copy with the same initializer names."""
    from paramverify.ir import read_model
    from paramverify.quantized import is_quantized, lower_int8

    proto, source = read_model(path)
    if is_quantized(proto):
        low = lower_int8(graph, proto, source)
        desc = f"int8 model '{source}' ({', '.join(low.formats)}; {low.n_rounding} activation roundings)"
        return low.graph, QuantizedCopy(low.values, desc)
    return graph, QuantizedCopy.from_model(graph, load_model(proto))


def problem_from_spec_file(path: str | os.PathLike[str], model: str | os.PathLike[str] | None = None) -> Problem:
    """Build a problem from a JSON/YAML file with keys ``model``, ``perturbation``,
    ``x0`` or ``domain`` (list of [lo, hi]), and optionally ``level``.

    ``model`` given here must agree with the file's (one place for each setting).
    """
    from paramverify.specfile import merge_with_flags, read_spec_file

    spec = read_spec_file(path)
    if spec.perturbation is None:
        raise SpecError("perturbation", "is missing", 'e.g. perturbation: {kind: absolute, delta: 0.01}')
    merged = merge_with_flags(spec, model=model, x0=None, domain=None, level=None, perturbation_flags={})
    return make_problem(merged.pop("model"), **merged)


def bound(
    problem: Problem,
    kind: BoundKind,
    *,
    sigma: float | None = None,
    cls: int | None = None,
    backend: str = "bounds",
    options: Options | None = None,
) -> Bracket:
    """Optimise: the largest epsilon ("eps"), the smallest sigma ("sigma") or
    the largest delta ("delta").

    For "sigma" without ``cls`` the answer is the maximum over classes (the
    smallest sigma for which Def 5 holds for every input); the per-class
    brackets are in ``extra["per_class"]``.  For "delta" the box of
    ``problem`` is scaled: with a unit absolute box the answer is delta.
    """
    options = options or Options()
    engine = get_engine(backend)
    if kind == "eps":
        return _replayed(problem, engine.optimise(problem, MaxEpsilon(), options))
    if kind == "delta":
        return _replayed(problem, engine.optimise(for_labels(problem) if sigma is None else problem, MaxDelta(sigma), options))
    if kind == "sigma":
        if problem.region.is_point:
            raise SpecError("domain", "the smallest sigma is a global property", "give --domain LO1:HI1,...")
        classes = [cls] if cls is not None else list(range(max(2, problem.graph.n_outputs)))
        per = [_replayed(problem, b) for b in _per_class_sigma(engine, problem, classes, options)]
        if len(per) == 1:
            return per[0]
        worst_lo = max(per, key=lambda b: b.lower)
        note = "maximum over classes of the per-class smallest sigma"
        if options.stop is not None and options.stop.requested:
            note += "; interrupted: the classes not finished keep the bracket proved so far"
        return Bracket(
            quantity="sigma",
            lower=max(b.lower for b in per),
            upper=max(b.upper for b in per),
            time_s=sum(b.time_s for b in per),
            method=per[0].method,
            proof_side="upper",
            witness=worst_lo.witness,
            complete=all(b.complete for b in per),
            note=note,
            extra={"per_class": [dict(b.to_json(), **{"class": c}) for c, b in zip(classes, per)]},
        )
    raise SpecError("property", f"unknown bound property {kind!r}", "use eps, sigma or delta")


def _per_class_sigma(engine: Any, problem: Problem, classes: Sequence[int], options: Options) -> list[Bracket]:
    """One smallest-sigma bracket per class within ONE budget: ``options.timeout_s`` covers
    all classes together (each class gets an equal share of what is left, so time a class
    does not use goes to the next).  Once the budget is spent the classes left get a zero
    budget (the engine's first bound only); after a stop signal they are not started and
    get the trivial bracket [0, inf] (sigma >= 0 always; nothing proved)."""
    deadline = options.deadline()
    per: list[Bracket] = []
    for k, c in enumerate(classes):
        if deadline.interrupted() and per:
            per.append(Bracket("sigma", 0.0, float("inf"), 0.0, per[0].method, "upper", complete=False,
                               note="not started: interrupted before this class"))
            continue
        left = deadline.remaining()
        share = None if left is None else left / (len(classes) - k)
        per.append(engine.optimise(problem, MinSigma(c), replace(options, timeout_s=share)))
    return per


def _replayed(problem: Problem, bracket: Bracket) -> Bracket:
    """The bracket with its witness replayed on onnxruntime (ModelError when the replay is not finite)."""
    if bracket.witness is None:
        return bracket
    return replace(bracket, witness=replay_witness(problem, bracket.witness))


def verify(
    problem: Problem,
    kind: VerifyKind,
    *,
    epsilon: float | None = None,
    sigma: float | None = None,
    backend: str = "bounds",
    options: Options | None = None,
) -> Verdict:
    """Verify Def 1/2 ("eps", needs ``epsilon``), Def 3/4 ("label") or Def 5
    ("sigma", needs ``sigma`` and a box region)."""
    prop = make_property(problem, kind, epsilon, sigma)
    if kind == "label":
        problem = for_labels(problem)
    return get_engine(backend).verify(problem, prop, options or Options())


def verify_vnnlib(
    model: str | os.PathLike[str] | Graph,
    vnnlib: str | os.PathLike[str] | Any,
    *,
    options: Options | None = None,
    **problem_kwargs: Any,
) -> Verdict:
    """Check a VNN-LIB property (input boxes, unsafe output set) for every parameter of the box.

    ``problem_kwargs`` are :func:`make_problem`'s perturbation choices
    (``delta``, ``bits``, ``quantized_model``, ...); none means the model as
    it is.  Verified = VNN-COMP ``unsat``, Falsified = ``sat`` (replayed on
    onnxruntime), Unknown = ``timeout``/``unknown``.  One deadline covers
    every case of the file.
    """
    from paramverify.vnncheck import check_case
    from paramverify.vnnlib import VnnProperty, load_vnnlib

    prop = vnnlib if isinstance(vnnlib, VnnProperty) else load_vnnlib(vnnlib)
    options = options or Options()
    deadline = options.deadline()
    graph = model if isinstance(model, Graph) else load_model(model, output=problem_kwargs.pop("output", None))
    kwargs = dict(problem_kwargs)
    if not any(kwargs.get(k) is not None for k in ("delta", "relative", "bits", "quantized_model", "perturbation")):
        kwargs["delta"] = 0.0
    unknown: Verdict | None = None
    t_total = 0.0
    verified_method = ""
    for case in prop.cases:
        if np.array_equal(case.lo, case.hi):
            problem = make_problem(graph, x0=case.lo, **kwargs)
        else:
            problem = make_problem(graph, domain=list(zip(case.lo, case.hi)), **kwargs)
        verdict = check_case(problem, case, options, deadline)
        t_total += verdict.time_s
        if verdict.name == "falsified":
            return verdict
        if verdict.name == "unknown" and unknown is None:
            unknown = verdict
        verified_method = verdict.method
    if unknown is not None:
        return unknown
    from paramverify.results import Verified

    return Verified(verified_method or "no input box in the file", t_total)


def verify_many(
    model: str | os.PathLike[str] | Graph,
    rows: Any,
    kind: VerifyKind,
    *,
    epsilon: float | None = None,
    sigma: float | None = None,
    backend: str = "bounds",
    options: Options | None = None,
    **problem_kwargs: Any,
) -> list[Verdict]:
    """One verdict per row of ``rows`` (``[N, d]``): each row is ``x0`` of its own problem
    (with ``radius``: the centre of its ball); ``options`` (and its time limit) apply per row."""
    arr = np.asarray(rows, dtype=np.float64)
    graph = model if isinstance(model, Graph) else load_model(model, output=problem_kwargs.pop("output", None))
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
    out = []
    for row in arr:
        problem = make_problem(graph, x0=row, **problem_kwargs)
        out.append(verify(problem, kind, epsilon=epsilon, sigma=sigma, backend=backend, options=options))
    return out


def make_property(problem: Problem, kind: str, epsilon: float | None, sigma: float | None) -> Property:
    if kind == "eps":
        if epsilon is None:
            raise SpecError("epsilon", "is required for --property eps", "add --epsilon E")
        return OutputBound(float(epsilon))
    if kind == "label":
        return LabelInvariance()
    if kind == "sigma":
        if sigma is None:
            raise SpecError("sigma", "is required for --property sigma", "add --sigma S")
        if problem.region.is_point:
            raise SpecError("domain", "the sigma property is global", "give --domain LO1:HI1,...")
        return MarginLabelInvariance(float(sigma))
    raise SpecError("property", f"unknown property {kind!r}", "use eps, label or sigma")


def with_delta(problem: Problem, delta: float) -> Problem:
    """The same problem with an absolute box of radius ``delta`` on the same parameters."""
    box = AbsoluteDelta(_nonneg(delta, "delta"), problem.box.names).to_box(problem.graph)
    return replace(problem, box=box)


def _nonneg(v: float, field: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError) as exc:
        raise SpecError(field, f"must be a number, got {v!r}") from exc
    if not np.isfinite(f) or f < 0:
        raise SpecError(field, f"must be a finite number >= 0, got {v}", f"e.g. --{field} 0.01")
    return f
