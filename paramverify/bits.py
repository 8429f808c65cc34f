"""How many bits can I drop?  The smallest certified bit width per tensor, uniform and joint.

Given a model, a uniform quantization scheme (symmetric or asymmetric,
per-tensor or per-channel) and the inputs to protect -- a set of points
(Def 3: their labels) or an input box (Def 5 with a margin ``sigma``, Def 4
without) -- :func:`search_bits` finds

* ``per_tensor_bits``: for each tensor alone, the smallest width ``b`` in
  ``min_bits..max_bits`` whose rounding box (every *other* tensor exact)
  provably keeps the labels;
* ``uniform_bits``: the smallest width that certifies when every tensor is
  rounded at that width;
* ``joint_bits``: the per-tensor widths verified *together* and, where the
  combination fails, raised greedily (one bit of one tensor per step, the
  tensor whose raise gives the largest certified scaling of the joint box)
  until it certifies;
* the largest absolute delta on those tensors that keeps the labels
  (``api.bound(..., "delta")`` per input; the overall bracket is the
  minimum over inputs).

Guarantees.  A width is only reported when a proof (``Verified``) covers its
rounding box -- the set ``|p - p0| <= max(scale / 2, |q(p) - p|)`` of
:class:`~paramverify.specs.QuantizationScheme`, which contains the rounded
model itself.  The rounding boxes are nested (``box(b + 1)`` lies inside
``box(b)``; this is checked, not assumed, before a certificate is reused at a
larger width), so a proof at ``b`` covers every larger width and a replayed
counterexample at ``b`` refutes every smaller one.  When the width one bit
below the answer was *refuted*, the answer is exactly the smallest width
whose box keeps the labels (``exact``); when it was merely not proved
(``unknown``: timeout, loose bounds) the true smallest width may be lower.
Nothing here counts BitOps or latency: only certified widths and storage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from paramverify.argtypes import bit_width, finite_float, nonneg_float, positive_float
from paramverify.distributed.tasks import add_parallel_args, open_pool, parallel_config, per_tensor_widths
from paramverify.errors import ParamVerifyError, SpecError
from paramverify.ir import Graph, load_model
from paramverify.bits_joint import joint_search
from paramverify.interrupt import shielded
from paramverify.options import Deadline, NullProgress, Options
from paramverify.properties import MaxDelta, Problem, labels, margins, scores_for_labels
from paramverify.results import SCHEMA_VERSION, Falsified, Verdict, Verified
from paramverify.specs import InputRegion, ParamBox, QuantizationScheme, quantize

Status = Literal["verified", "falsified", "unknown"]
EXIT_OK, EXIT_USAGE, EXIT_UNKNOWN = 0, 2, 3


# ---------------------------------------------------------------------------
# boxes


@dataclass(frozen=True)
class Scheme:
    """The quantization scheme whose bit width is searched (see :class:`QuantizationScheme`)."""

    symmetric: bool = True
    per_channel: bool = False
    channel_axis: int | None = None  # None: each weight's output channels (onnxruntime's convention)

    def at(self, bits: int, names: tuple[str, ...]) -> QuantizationScheme:
        return QuantizationScheme(int(bits), self.symmetric, self.per_channel, self.channel_axis, names)

    def describe(self) -> str:
        return f"{'symmetric' if self.symmetric else 'asymmetric'} {'per-channel' if self.per_channel else 'per-tensor'}"


def quantization_box(graph: Graph, widths: Mapping[str, int], scheme: Scheme = Scheme()) -> ParamBox:
    """The rounding box with tensor ``name`` at ``widths[name]`` bits; other tensors stay exact."""
    if not widths:
        raise SpecError("params", "no tensor to quantize", "name at least one weight or bias")
    nominal: dict[str, np.ndarray] = {}
    lo: dict[str, np.ndarray] = {}
    hi: dict[str, np.ndarray] = {}
    for name, bits in widths.items():
        part = scheme.at(bits, (name,)).to_box(graph)
        nominal[name], lo[name], hi[name] = part.nominal[name], part.lo[name], part.hi[name]
    desc = ", ".join(f"{n}:{b}" for n, b in widths.items())
    return ParamBox(MappingProxyType(nominal), MappingProxyType(lo), MappingProxyType(hi), f"{scheme.describe()} rounding box ({desc})")


def nested(inner: ParamBox, outer: ParamBox) -> bool:
    """Is every parameter vector of ``inner`` inside ``outer`` (same tensors)?"""
    if set(inner.names) != set(outer.names):
        return False
    return all(bool(np.all(outer.lo[n] <= inner.lo[n]) and np.all(inner.hi[n] <= outer.hi[n])) for n in inner.names)


def quantized_parameters(graph: Graph, widths: Mapping[str, int], scheme: Scheme = Scheme()) -> dict[str, np.ndarray]:
    """The fake-quantized values q(p) of each tensor at its width (a point of the rounding box)."""
    return {n: quantize(graph.initializers[n], scheme.at(b, (n,)), scheme.at(b, (n,)).axis_for(graph, n))[0] for n, b in widths.items()}


# ---------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Width:
    """A searched width: ``bits`` is certified (None: not even ``max_bits``); ``below`` is the
    status one bit lower ("refuted": a replayed counterexample, so ``bits`` is exact)."""

    bits: int | None
    below: Literal["refuted", "unknown", "n/a"]

    @property
    def exact(self) -> bool:
        return self.bits is not None and self.below in ("refuted", "n/a")

    def to_json(self) -> dict[str, Any]:
        return {"bits": self.bits, "exact": self.exact, "one_bit_below": self.below}


@dataclass(frozen=True)
class InputDetail:
    """What the search learned about one input (a point, or the input box)."""

    index: int
    region: dict[str, Any]
    label: int | None
    margin: float | None
    constrained: bool  # False: a point whose margin is below sigma (Def 5 asks nothing of it)
    uniform: Status | None = None
    joint: Status | None = None
    quantized_label_kept: bool | None = None  # the rounded model at the joint widths (points only)
    max_delta: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BitsReport:
    """The answer of :func:`search_bits` (all widths certified; see the module docstring)."""

    model: str
    scheme: str
    tensors: tuple[str, ...]
    sizes: dict[str, int]
    property: str
    backend: str
    min_bits: int
    max_bits: int
    per_tensor: dict[str, Width]
    uniform: Width
    joint_bits: dict[str, int]
    joint_certified: bool
    greedy_steps: list[dict[str, Any]]
    max_delta: dict[str, Any] | None
    inputs: list[InputDetail]
    queries: int
    time_s: float
    complete: bool = True
    note: str = ""
    output: dict[str, str] | None = None  # the tensor the labels are read from, when not the model's output

    @property
    def per_tensor_bits(self) -> dict[str, int | None]:
        return {n: w.bits for n, w in self.per_tensor.items()}

    @property
    def uniform_bits(self) -> int | None:
        return self.uniform.bits

    def storage_bits(self, widths: Mapping[str, int | None]) -> int | None:
        if any(widths.get(n) is None for n in self.tensors):
            return None
        return int(sum(self.sizes[n] * int(widths[n]) for n in self.tensors))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        float_bits = 32 * sum(self.sizes.values())
        return {
            "schema": SCHEMA_VERSION, "command": "bits", "model": self.model, "scheme": self.scheme, "property": self.property,
            "backend": self.backend, "bit_range": [self.min_bits, self.max_bits],
            "per_tensor_bits": self.per_tensor_bits,
            "per_tensor": {n: dict(w.to_json(), elements=self.sizes[n]) for n, w in self.per_tensor.items()},
            "uniform_bits": self.uniform_bits, "uniform": self.uniform.to_json(),
            "joint_bits": self.joint_bits, "joint_certified": self.joint_certified, "greedy_steps": self.greedy_steps,
            "storage_bits": {"float32": float_bits, "uniform": self.storage_bits({n: self.uniform_bits for n in self.tensors}),
                             "joint": self.storage_bits(self.joint_bits) if self.joint_certified else None},
            "max_delta": self.max_delta, "inputs": [d.to_json() for d in self.inputs],
            "queries": self.queries, "time_s": round(self.time_s, 3), "complete": self.complete,
            **({"note": self.note} if self.note else {}),
            **({"output": self.output} if self.output else {}),
        }

    def table(self) -> str:
        lines = [f"bit widths that provably keep labels ({self.property}; {self.scheme}; backend {self.backend})",
                 f"{'tensor':<24}{'elements':>10}{'alone':>8}{'exact':>7}{'joint':>7}"]
        if self.output:
            lines.insert(1, f"note: {self.output['note']}")
        for n in self.tensors:
            w = self.per_tensor[n]
            alone = "-" if w.bits is None else str(w.bits)
            lines.append(f"{n:<24}{self.sizes[n]:>10}{alone:>8}{'yes' if w.exact else 'no':>7}{self.joint_bits.get(n, '-'):>7}")
        ub = "none" if self.uniform_bits is None else f"{self.uniform_bits} bits"
        lines.append(f"uniform width (every tensor): {ub}" + (" (exact)" if self.uniform.exact else ""))
        lines.append(f"joint widths certified together: {'yes' if self.joint_certified else 'NO'}"
                     + (f" ({len(self.greedy_steps)} greedy step(s))" if self.greedy_steps else ""))
        fb = 32 * sum(self.sizes.values())
        sb = self.storage_bits(self.joint_bits) if self.joint_certified else None
        if sb is not None:
            lines.append(f"storage at the joint widths: {sb} bits ({sb / fb:.1%} of float32)")
        if self.max_delta is not None and self.max_delta["lower"] is not None:
            lines.append(f"largest delta keeping labels: [{self.max_delta['lower']:.6g}, {self.max_delta['upper']:.6g}]")
        lines.append(f"{self.queries} queries, {self.time_s:.1f} s" + ("" if self.complete else f"  [INCOMPLETE: {self.note}]"))
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# the search


class _Stop(Exception):
    """The overall budget ran out (internal)."""


@dataclass
class _Search:
    graph: Graph
    regions: list[InputRegion]
    constrained: list[int]  # indices of regions that carry a requirement
    sigma: float | None
    level: float
    scheme: Scheme
    backend: str
    options: Options
    deadline: Deadline
    cache: dict[tuple[tuple[tuple[str, int], ...], int], Status] = field(default_factory=dict)
    queries: int = 0

    def query_options(self, **changes: Any) -> Options:
        """The per-query options, with the query's budget capped by what is left of the search's."""
        left = self.deadline.remaining()
        per = self.options.timeout_s
        cap = per if left is None else left if per is None else min(per, left)
        return replace(self.options, timeout_s=cap, stop=self.deadline.stop, **changes)

    def problem(self, box: ParamBox, i: int) -> Problem:
        return Problem(self.graph, box, self.regions[i], self.level)

    def verify(self, widths: Mapping[str, int], i: int) -> Status:
        """Status of input ``i`` under the rounding box of ``widths`` (cached)."""
        from paramverify import api

        key = (tuple(sorted(widths.items())), i)
        if key in self.cache:
            return self.cache[key]
        if self.deadline.expired():
            raise _Stop
        problem = self.problem(quantization_box(self.graph, widths, self.scheme), i)
        kind = "sigma" if (self.sigma is not None and not problem.region.is_point) else "label"
        verdict: Verdict = api.verify(problem, kind, sigma=self.sigma if kind == "sigma" else None,
                                      backend=self.backend, options=self.query_options())
        self.queries += 1
        if self.deadline.interrupted():  # the query was cut short: its answer is not cached or used
            raise _Stop
        status: Status = "verified" if isinstance(verdict, Verified) else "falsified" if isinstance(verdict, Falsified) else "unknown"
        self.cache[key] = status
        return status

    def smallest(self, names: tuple[str, ...], lo: int, hi: int) -> Width:
        """Smallest b in lo..hi with every input certified when ``names`` are at b bits.

        Inputs are taken one at a time: an input already certified at the
        running answer B needs no search (B only grows, and box(B') lies in
        box(B) for B' > B -- checked below); otherwise it is bisected in (B, hi].
        """

        def at(b: int) -> dict[str, int]:
            return {n: b for n in names}

        best = lo
        below: Literal["refuted", "unknown", "n/a"] = "n/a"
        proved_at: dict[int, int] = {}
        for i in self.constrained:
            if self.verify(at(best), i) == "verified":
                proved_at[i] = best
                continue
            top = self.verify(at(hi), i)
            if top != "verified":
                return Width(None, "refuted" if top == "falsified" else "unknown")
            low, high = best + 1, hi  # high is certified, best is not
            while low < high:
                mid = (low + high) // 2
                if self.verify(at(mid), i) == "verified":
                    high = mid
                else:
                    low = mid + 1
            best = high
            proved_at[i] = best
            below = "refuted" if self.verify(at(best - 1), i) == "falsified" else "unknown"
        # a certificate found at a smaller width covers ``best`` only if the boxes are nested
        final = quantization_box(self.graph, at(best), self.scheme)
        for i, b in proved_at.items():
            covered = b == best or nested(final, quantization_box(self.graph, at(b), self.scheme))
            if not covered and self.verify(at(best), i) != "verified":
                return self.smallest(names, best + 1, hi) if best < hi else Width(None, "unknown")
        return Width(best, below if best > lo else "n/a")

    def failing(self, widths: Mapping[str, int], among: Sequence[int] | None = None) -> list[int]:
        """The constrained inputs (or those of ``among``) not certified under ``widths``."""
        return [i for i in (self.constrained if among is None else among) if self.verify(widths, i) != "verified"]

    def delta_score(self, widths: Mapping[str, int], failing: Sequence[int]) -> float:
        """The largest certified scaling t <= 1 of the joint box, minimised over failing inputs."""
        from paramverify.engines import get_engine

        engine = get_engine(self.backend)
        box = quantization_box(self.graph, widths, self.scheme)
        score = 1.0
        for i in failing:
            if self.deadline.expired():
                raise _Stop
            region = self.regions[i]
            sig = self.sigma if (self.sigma is not None and not region.is_point) else None
            opts = self.query_options(tolerance=1 / 64, progress=NullProgress())
            b = engine.optimise(self.problem(box, i), MaxDelta(sig, t_max=1.0), opts)
            self.queries += 1
            if self.deadline.interrupted():
                raise _Stop
            score = min(score, b.lower)
        return score


def _regions(graph: Graph, x0: Sequence[Any] | np.ndarray | None, domain: Sequence[tuple[float, float]] | None) -> list[InputRegion]:
    if (x0 is None) == (domain is None):
        raise SpecError("inputs", "give either points (--x0 / --inputs) or one --domain box", "e.g. --inputs X.npy")
    if domain is not None:
        dom = np.asarray(domain, dtype=np.float64)
        if dom.ndim != 2 or dom.shape[1] != 2:
            raise SpecError("domain", "must be a list of LO:HI intervals")
        if dom.shape[0] == 1 and graph.input_size > 1:
            dom = np.repeat(dom, graph.input_size, axis=0)
        return [InputRegion.box(dom[:, 0], dom[:, 1], "domain").check_for(graph, "domain")]
    pts = np.asarray(x0, dtype=np.float64)
    if pts.ndim <= 1:
        pts = pts.reshape(1, -1)
    pts = pts.reshape(pts.shape[0], -1)
    if pts.shape[0] == 0:
        raise SpecError("inputs", "no input given")
    return [InputRegion.point(p, "inputs").check_for(graph, "inputs") for p in pts]


def search_bits(
    model: str | Graph,
    *,
    x0: Sequence[Any] | np.ndarray | None = None,
    domain: Sequence[tuple[float, float]] | None = None,
    sigma: float | None = None,
    scheme: Scheme = Scheme(),
    params: Sequence[str] | None = None,
    min_bits: int = 2,
    max_bits: int = 16,
    level: float = 0.5,
    backend: str = "bounds",
    options: Options | None = None,
    budget_s: float | None = None,
    with_delta: bool = True,
    output: str | None = None,
) -> BitsReport:
    """Search certified bit widths (see the module docstring for what is guaranteed).

    ``x0`` is one input or an array ``[N, d]`` of inputs (Def 3 at each; with
    ``sigma``, only inputs whose margin is at least ``sigma`` are
    constrained); ``domain`` is one input box (Def 5 with ``sigma``, Def 4
    without).  ``options`` applies to every single query (its ``timeout_s``
    is the per-query budget); ``budget_s`` bounds the whole search, after
    which the report is marked incomplete (every width in it is still
    certified).  ``output`` names the tensor the labels are read from; a final
    softmax is skipped when ``sigma`` is None (labels are its argmax).
    """
    t0 = time.monotonic()
    graph = model if isinstance(model, Graph) else load_model(model, output=output)
    if sigma is None:
        graph = scores_for_labels(graph)
    if not (isinstance(min_bits, int) and isinstance(max_bits, int) and 2 <= min_bits <= max_bits <= 32):
        raise SpecError("bits", f"need 2 <= min_bits <= max_bits <= 32, got {min_bits}..{max_bits}")
    if sigma is not None and not (np.isfinite(sigma) and sigma >= 0):
        raise SpecError("sigma", f"must be a finite number >= 0, got {sigma!r}")
    tensors = graph.check_parameters(params, "params") if params else graph.default_parameters()
    if not tensors:
        raise SpecError("params", "the model has no weights or biases to quantize", "name the initializers with --params")
    regions = _regions(graph, x0, domain)
    options = options or Options(timeout_s=30.0)
    deadline = Options(timeout_s=budget_s, stop=options.stop).deadline()
    details: list[InputDetail] = []
    constrained: list[int] = []
    for i, r in enumerate(regions):
        if r.is_point:
            y0 = graph.evaluate(r.lo)
            m = float(margins(y0, level)[0])
            ok = sigma is None or m >= sigma
            details.append(InputDetail(i, r.to_json(), int(labels(y0, level)[0]), m, ok))
        else:
            details.append(InputDetail(i, r.to_json(), None, None, True))
            ok = True
        if ok:
            constrained.append(i)
    s = _Search(graph, regions, constrained, sigma, level, scheme, backend, options, deadline)
    sizes = {n: int(graph.initializers[n].size) for n in tensors}
    per_tensor: dict[str, Width] = {}
    uniform, joint, joint_ok, steps = Width(None, "unknown"), {}, False, []
    max_delta: dict[str, Any] | None = None
    note, complete = "", True
    try:
        per_tensor_widths(s, tensors, min_bits, max_bits, per_tensor)  # one task per tensor with options.pool
        uniform = s.smallest(tuple(tensors), min_bits, max_bits)
        options.progress.update(f"bits: uniform -> {uniform.bits}")
        joint, joint_ok, steps = joint_search(s, per_tensor, uniform, sizes, min_bits, max_bits)
        if with_delta:
            max_delta = _max_delta(s, tensors)
    except _Stop:
        complete, note = False, "the overall budget ran out; every width reported is certified, the rest are missing"
        if deadline.interrupted():
            note = "interrupted; every width reported is certified, the rest are missing"
    except KeyboardInterrupt:
        complete, note = False, "interrupted; every width reported is certified, the rest are missing"
    # cross-check: the rounded model itself must keep every certified point's label
    qp = quantized_parameters(graph, joint, scheme) if joint_ok else None
    out_details = []
    for d in details:
        extra: dict[str, Any] = {}
        if d.index in constrained:
            if uniform.bits is not None:
                extra["uniform"] = "verified"
            if joint:
                extra["joint"] = "verified" if joint_ok else s.cache.get((tuple(sorted(joint.items())), d.index))
        if qp is not None and regions[d.index].is_point and d.index in constrained:
            y0 = graph.evaluate(regions[d.index].lo)
            yq = graph.evaluate(regions[d.index].lo, qp)
            extra["quantized_label_kept"] = bool(labels(yq, level)[0] == labels(y0, level)[0])
        if max_delta is not None:
            extra["max_delta"] = max_delta["per_input"].get(d.index)
        out_details.append(InputDetail(**{**d.__dict__, **extra}))
    if max_delta is not None:
        max_delta = {k: v for k, v in max_delta.items() if k != "per_input"}
    for n in tensors:
        per_tensor.setdefault(n, Width(None, "unknown"))
    return BitsReport(
        model=graph.source, scheme=scheme.describe(), tensors=tuple(tensors), sizes=sizes,
        property=_property_name(regions, sigma), backend=backend, min_bits=min_bits, max_bits=max_bits,
        per_tensor=per_tensor, uniform=uniform, joint_bits=joint, joint_certified=joint_ok, greedy_steps=steps,
        max_delta=max_delta, inputs=out_details, queries=s.queries, time_s=time.monotonic() - t0,
        complete=complete, note=note,
        output={"tensor": graph.output_name, "note": graph.note} if graph.note else None,
    )


def _property_name(regions: list[InputRegion], sigma: float | None) -> str:
    where = f"labels at {len(regions)} input(s)" if regions[0].is_point else "labels over the input box"
    return where + (f" with margin >= {sigma:g}" if sigma is not None else "")


def _max_delta(s: _Search, tensors: tuple[str, ...]) -> dict[str, Any]:
    """Largest absolute delta on ``tensors`` keeping each constrained input's label; min over inputs."""
    from paramverify import api
    from paramverify.specs import AbsoluteDelta

    box = AbsoluteDelta(1.0, tensors).to_box(s.graph)
    per: dict[int, dict[str, Any]] = {}
    lows, highs, complete = [], [], True
    for i in s.constrained:
        if s.deadline.expired():
            raise _Stop
        region = s.regions[i]
        sig = s.sigma if (s.sigma is not None and not region.is_point) else None
        b = api.bound(s.problem(box, i), "delta", sigma=sig, backend=s.backend, options=s.query_options())
        s.queries += 1
        if s.deadline.interrupted():
            raise _Stop
        per[i] = {"lower": b.lower, "upper": b.upper, "complete": b.complete}
        lows, highs, complete = [*lows, b.lower], [*highs, b.upper], complete and b.complete
    if not lows:
        return {"lower": None, "upper": None, "complete": True, "per_input": per, "note": "no input is constrained"}
    return {"lower": min(lows), "upper": min(highs), "complete": complete, "per_input": per,
            "note": "minimum over inputs of each input's proved bracket"}


# ---------------------------------------------------------------------------
# command line (wired by paramverify.cli)


def add_subparser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``paramverify bits`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "bits", help="how many bits can I drop? certified bit widths per tensor",
        description="Find, per tensor, the smallest bit width whose quantization rounding box provably keeps "
        "the labels of the given inputs (or, over an input box, of every input with margin >= sigma); "
        "then the uniform width, the joint widths verified together, and the largest delta.",
        epilog="exit codes: 0 joint widths certified, 3 not certified or incomplete, 2 usage or input error.",
    )
    p.add_argument("model", metavar="MODEL.onnx")
    g = p.add_argument_group("inputs (give one)")
    g.add_argument("--x0", action="append", metavar="V1,V2,...", help="an input to protect (repeatable)")
    g.add_argument("--inputs", metavar="X.npy", help="a .npy array [N, d] of inputs to protect")
    g.add_argument("--domain", metavar="LO1:HI1,...", help="an input box (one LO:HI applies to all inputs)")
    p.add_argument("--sigma", type=nonneg_float, help="only inputs with nominal margin >= S must keep their labels")
    q = p.add_argument_group("quantization scheme")
    q.add_argument("--asymmetric", action="store_true", help="asymmetric (zero point) instead of symmetric")
    q.add_argument("--per-channel", action="store_true", help="one scale per output channel")
    q.add_argument("--channel-axis", type=int, help="channel axis for --per-channel (default: each weight's output "
                   "channels as onnxruntime quantizes them: Conv/Gemm(transB=1) 0, MatMul B and Gemm(transB=0) 1)")
    q.add_argument("--params", metavar="NAME,...", help="tensors to quantize (default: all weights and biases)")
    p.add_argument("--output", "--output-tensor", dest="output_tensor", metavar="NAME",
                   help="read labels from this tensor (default: the model's output, a classifier head skipped)")
    q.add_argument("--min-bits", type=bit_width, default=2, help="smallest bit width considered")
    q.add_argument("--max-bits", type=bit_width, default=16, help="largest bit width considered")
    p.add_argument("--level", type=finite_float, default=0.5, help="decision level of a single-output model")
    e = p.add_argument_group("engine")
    e.add_argument("--backend", default="bounds", choices=["bounds", "z3", "dreal"], help="proof engine (default: bounds)")
    e.add_argument("--timeout", type=positive_float, default=30.0, help="budget per query in seconds (default 30)")
    e.add_argument("--budget", type=positive_float, help="budget of the whole search in seconds (default: none)")
    e.add_argument("--seed", type=int, default=0, help="seed for every random choice (repeatable runs)")
    e.add_argument("--no-delta", action="store_true", help="skip the largest-delta search")
    add_parallel_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``paramverify bits``; 0 when the joint widths certify, 3 when not, 2 on an input error."""
    from paramverify.argtypes import parse_domain, parse_names, parse_vector, wall_budget
    from paramverify.progress import ConsoleProgress

    try:
        given = [a is not None for a in (args.x0, args.inputs, args.domain)]
        if sum(given) != 1:
            raise SpecError("inputs", "give exactly one of --x0, --inputs, --domain", "e.g. --inputs X.npy")
        x0: np.ndarray | None = None
        if args.x0 is not None:
            x0 = np.stack([parse_vector(v, "x0") for v in args.x0])
        elif args.inputs is not None:
            try:
                x0 = np.asarray(np.load(args.inputs, allow_pickle=False), dtype=np.float64)
            except (OSError, ValueError) as exc:
                raise SpecError("inputs", f"cannot read '{args.inputs}' as .npy: {exc}", "save it with numpy.save") from exc
        domain = parse_domain(args.domain) if args.domain is not None else None
        with ConsoleProgress(enabled=not args.quiet) as progress, open_pool(parallel_config(args)) as pool:
            opts = Options(timeout_s=args.timeout, seed=args.seed, progress=progress, pool=pool,
                           stop=getattr(args, "stop", None))
            report = search_bits(
                args.model, x0=x0, domain=domain, sigma=args.sigma,
                scheme=Scheme(not args.asymmetric, args.per_channel, args.channel_axis),
                params=parse_names(args.params), min_bits=args.min_bits, max_bits=args.max_bits, level=args.level,
                backend=args.backend, options=opts, budget_s=None if args.budget is None else wall_budget(args, args.budget),
                with_delta=not args.no_delta, output=args.output_tensor,
            )
    except ParamVerifyError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"paramverify bits: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = json.dumps(report.to_json(), default=float) if args.json else report.table()
    with shielded(args):  # a second signal must not lose the report
        print(text, flush=True)
    return EXIT_OK if report.joint_certified and report.complete else EXIT_UNKNOWN
