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
from paramverify.errors import SpecError
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
from paramverify.results import Bracket, Verdict
from paramverify.specs import (
    AbsoluteDelta,
    InputRegion,
    Perturbation,
    QuantizationScheme,
    QuantizedCopy,
    RelativeDelta,
    load_spec_file,
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
    return Problem(graph, box, region, float(level))


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
    ``x0`` or ``domain`` (list of [lo, hi]), and optionally ``level``."""
    data = load_spec_file(path)
    allowed = {"model", "perturbation", "x0", "domain", "level"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(unknown[0], "is not a spec-file field", f"allowed: {', '.join(sorted(allowed))}")
    model = model or data.get("model")
    if model is None:
        raise SpecError("model", "is missing", "name the .onnx file in the spec or on the command line")
    if "perturbation" not in data:
        raise SpecError("perturbation", "is missing", 'e.g. perturbation: {kind: absolute, delta: 0.01}')
    pert = perturbation_from_dict(data["perturbation"])
    return make_problem(model, perturbation=pert, x0=data.get("x0"), domain=data.get("domain"), level=float(data.get("level", 0.5)))


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
        return engine.optimise(problem, MaxEpsilon(), options)
    if kind == "delta":
        return engine.optimise(for_labels(problem) if sigma is None else problem, MaxDelta(sigma), options)
    if kind == "sigma":
        if problem.region.is_point:
            raise SpecError("domain", "the smallest sigma is a global property", "give --domain LO1:HI1,...")
        classes = [cls] if cls is not None else list(range(max(2, problem.graph.n_outputs)))
        per = [engine.optimise(problem, MinSigma(c), options) for c in classes]
        if len(per) == 1:
            return per[0]
        worst_lo = max(per, key=lambda b: b.lower)
        return Bracket(
            quantity="sigma",
            lower=max(b.lower for b in per),
            upper=max(b.upper for b in per),
            time_s=sum(b.time_s for b in per),
            method=per[0].method,
            proof_side="upper",
            witness=worst_lo.witness,
            complete=all(b.complete for b in per),
            note="maximum over classes of the per-class smallest sigma",
            extra={"per_class": [dict(b.to_json(), **{"class": c}) for c, b in zip(classes, per)]},
        )
    raise SpecError("property", f"unknown bound property {kind!r}", "use eps, sigma or delta")


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
