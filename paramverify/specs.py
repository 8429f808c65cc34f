"""Frozen specifications: input regions, parameter boxes and perturbation specs.

A perturbation spec (absolute or relative delta, a quantization scheme, or a
concrete quantized copy) is turned into a :class:`ParamBox` for a graph by
``spec.to_box(graph)``.  The box is the set of parameter values the
verifier must cover: ``lo[name] <= p[name] <= hi[name]`` elementwise, with
``nominal[name]`` the trained value ``p0``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from paramverify.errors import SpecError
from paramverify.ir import Graph

# ---------------------------------------------------------------------------
# input regions


@dataclass(frozen=True, eq=False)
class InputRegion:
    """A point ``x0`` (``lo == hi``) or a box ``D = [lo, hi]`` of flat inputs."""

    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def point(x0: Sequence[float] | np.ndarray, field: str = "x0") -> InputRegion:
        x = _finite_vector(x0, field)
        return InputRegion(x, x.copy())

    @staticmethod
    def box(lo: Sequence[float] | np.ndarray, hi: Sequence[float] | np.ndarray, field: str = "domain") -> InputRegion:
        lo_a, hi_a = _finite_vector(lo, field), _finite_vector(hi, field)
        if lo_a.shape != hi_a.shape:
            raise SpecError(field, f"lower and upper bounds differ in length ({lo_a.size} vs {hi_a.size})")
        bad = np.flatnonzero(lo_a > hi_a)
        if bad.size:
            i = int(bad[0])
            raise SpecError(field, f"interval {i} is inverted ({lo_a[i]} > {hi_a[i]})", "write each interval as LO:HI with LO <= HI")
        if np.all(lo_a == hi_a):
            raise SpecError(field, "the box is empty (every interval has zero width)", "use --x0 for a single input")
        return InputRegion(lo_a, hi_a)

    @staticmethod
    def ball(x0: Sequence[float] | np.ndarray, radius: float, field: str = "x0") -> InputRegion:
        """The L-inf ball ``[x0 - radius, x0 + radius]`` (a point for radius 0)."""
        x = _finite_vector(x0, field)
        if not math.isfinite(radius) or radius < 0:
            raise SpecError("radius", f"must be a finite number >= 0, got {radius!r}", "e.g. --radius 0.02")
        if radius == 0:
            return InputRegion(x, x.copy())
        return InputRegion(np.nextafter(x - radius, -np.inf), np.nextafter(x + radius, np.inf))

    @property
    def is_point(self) -> bool:
        return bool(np.all(self.lo == self.hi))

    @property
    def size(self) -> int:
        return int(self.lo.size)

    def check_for(self, graph: Graph, field: str) -> InputRegion:
        if self.size != graph.input_size:
            raise SpecError(
                field,
                f"has {self.size} values but the model input '{graph.input_name}' takes {graph.input_size}",
                f"give {graph.input_size} values",
            )
        return self

    def to_json(self) -> dict[str, Any]:
        if self.is_point:
            return {"x0": self.lo.tolist()}
        return {"domain": [[float(a), float(b)] for a, b in zip(self.lo, self.hi)]}


def _finite_vector(values: Any, field: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise SpecError(field, f"is not a list of numbers ({exc})") from exc
    if arr.size == 0:
        raise SpecError(field, "is empty", "give at least one number")
    if not np.all(np.isfinite(arr)):
        raise SpecError(field, "contains a non-finite value (nan or inf)")
    return arr


# ---------------------------------------------------------------------------
# parameter boxes


@dataclass(frozen=True, eq=False)
class ParamBox:
    """Elementwise bounds on the perturbed parameters; others stay nominal."""

    nominal: Mapping[str, np.ndarray]
    lo: Mapping[str, np.ndarray]
    hi: Mapping[str, np.ndarray]
    description: str = ""

    def __post_init__(self) -> None:
        for name in self.lo:
            assert np.all(self.lo[name] <= self.hi[name]), f"inverted parameter box for {name}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.lo)

    @property
    def n_parameters(self) -> int:
        return int(sum(v.size for v in self.lo.values()))

    def radius(self) -> float:
        """Largest half-width of the box around the nominal values."""
        return max(
            (float(np.max(np.maximum(self.hi[n] - self.nominal[n], self.nominal[n] - self.lo[n]), initial=0.0)) for n in self.names),
            default=0.0,
        )

    def scaled(self, t: float) -> ParamBox:
        """The box with every deviation from the nominal values multiplied by ``t``."""
        lo = {n: self.nominal[n] + t * (self.lo[n] - self.nominal[n]) for n in self.names}
        hi = {n: self.nominal[n] + t * (self.hi[n] - self.nominal[n]) for n in self.names}
        return ParamBox(self.nominal, MappingProxyType(lo), MappingProxyType(hi), f"{self.description} x {t:g}")

    def contains(self, params: Mapping[str, np.ndarray]) -> bool:
        return all(np.all(params[n] >= self.lo[n]) and np.all(params[n] <= self.hi[n]) for n in self.names)

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {n: rng.uniform(self.lo[n], self.hi[n]) for n in self.names}

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "parameters": list(self.names), "n_parameters": self.n_parameters}


def _box(graph: Graph, names: tuple[str, ...], radius: Mapping[str, np.ndarray], description: str) -> ParamBox:
    """``p0 -/+ radius``, rounded outward so the box covers the real-number box."""
    nominal = {n: graph.initializers[n] for n in names}
    lo = {n: _outward(nominal[n] - radius[n], nominal[n], radius[n], -np.inf) for n in names}
    hi = {n: _outward(nominal[n] + radius[n], nominal[n], radius[n], np.inf) for n in names}
    return ParamBox(MappingProxyType(nominal), MappingProxyType(lo), MappingProxyType(hi), description)


def _outward(end: np.ndarray, nominal: np.ndarray, radius: np.ndarray, direction: float) -> np.ndarray:
    return np.where(radius > 0, np.nextafter(end, direction), nominal)


def _names(graph: Graph, params: tuple[str, ...] | None, field: str) -> tuple[str, ...]:
    if params is None or len(params) == 0:
        names = graph.default_parameters()
        if not names:
            raise SpecError(field, "the model has no weights or biases to perturb", "name the initializers to perturb")
        return names
    return graph.check_parameters(params, field)


def _broadcast_radius(value: Any, shape: tuple[int, ...], name: str, channel_axis: int, field: str) -> np.ndarray:
    """Per-tensor (scalar), per-channel (1-D along ``channel_axis``) or per-element radius."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise SpecError(field, f"delta for '{name}' must be finite and >= 0", "use a non-negative number")
    if arr.ndim == 0:
        return np.full(shape, float(arr))
    if arr.shape == shape:
        return arr.copy()
    if arr.ndim == 1 and len(shape) > 0 and arr.size == shape[channel_axis]:
        view = [1] * len(shape)
        view[channel_axis] = arr.size
        return np.broadcast_to(arr.reshape(view), shape).copy()
    raise SpecError(
        field,
        f"delta for '{name}' has shape {arr.shape}, which fits neither the tensor {shape} nor its channels",
        "give a number (per tensor), one value per channel, or an array of the tensor's shape",
    )


@dataclass(frozen=True)
class AbsoluteDelta:
    """|p - p0| <= delta (the seed paper's perturbation); delta per tensor, channel or element."""

    delta: float | Mapping[str, Any]
    params: tuple[str, ...] | None = None
    channel_axis: int = 0
    kind: Literal["absolute"] = field(default="absolute", init=False)

    def to_box(self, graph: Graph) -> ParamBox:
        if isinstance(self.delta, Mapping):
            names = graph.check_parameters(self.delta.keys(), "perturbation.delta")
            spec = dict(self.delta)
        else:
            _check_delta(self.delta)
            names = _names(graph, self.params, "perturbation.params")
            spec = {n: self.delta for n in names}
        radius = {
            n: _broadcast_radius(spec[n], graph.initializers[n].shape, n, self.channel_axis, "perturbation.delta")
            for n in names
        }
        desc = f"|p - p0| <= {self.delta:g}" if not isinstance(self.delta, Mapping) else "|p - p0| <= delta (per tensor)"
        return _box(graph, names, radius, desc)


@dataclass(frozen=True)
class RelativeDelta:
    """|p - p0| <= fraction * |p0| elementwise."""

    fraction: float
    params: tuple[str, ...] | None = None
    kind: Literal["relative"] = field(default="relative", init=False)

    def to_box(self, graph: Graph) -> ParamBox:
        _check_delta(self.fraction, "perturbation.fraction")
        names = _names(graph, self.params, "perturbation.params")
        radius = {n: self.fraction * np.abs(graph.initializers[n]) for n in names}
        return _box(graph, names, radius, f"|p - p0| <= {self.fraction:g} |p0|")


@dataclass(frozen=True)
class QuantizationScheme:
    """The rounding box of uniform quantization: |p - q(p)| <= scale / 2.

    symmetric: scale = max|p| / (2^(bits-1) - 1), zero point 0;
    asymmetric: scale = (max p - min p) / (2^bits - 1), integer zero point.
    The radius is max(scale / 2, |q(p) - p|), so clipping at the grid's ends
    is covered too.

    per_channel: one scale per *output channel* of each weight, following
    onnxruntime: Conv axis 0, Gemm axis 0 with transB=1 (else 1), MatMul's
    right operand its last axis (``Graph.channel_axes``).  ``channel_axis``
    overrides that for every weight.  Tensors of fewer than two dimensions
    (biases) keep one scale per tensor.
    """

    bits: int
    symmetric: bool = True
    per_channel: bool = False
    channel_axis: int | None = None
    params: tuple[str, ...] | None = None
    kind: Literal["quantization"] = field(default="quantization", init=False)

    def axis_for(self, graph: Graph, name: str) -> int | None:
        """The channel axis used for tensor ``name`` (None: one scale for the tensor)."""
        p = graph.initializers[name]
        if not self.per_channel or p.ndim < 2:
            return None
        if self.channel_axis is not None:
            return self.channel_axis % p.ndim
        return graph.channel_axes.get(name, 0)

    def rounded(self, graph: Graph) -> QuantizedCopy:
        """The round-to-nearest model of this scheme as a concrete copy (``--rounded``)."""
        self.to_box(graph)  # validates bits and names
        names = _names(graph, self.params, "perturbation.params")
        values = {n: quantize(graph.initializers[n], self, self.axis_for(graph, n))[0] for n in names}
        gran = "per-channel" if self.per_channel else "per-tensor"
        sym = "symmetric" if self.symmetric else "asymmetric"
        return QuantizedCopy(MappingProxyType(values), f"round-to-nearest {self.bits}-bit {sym} {gran} copy")

    def to_box(self, graph: Graph) -> ParamBox:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 32:
            raise SpecError("perturbation.bits", f"must be an integer in 2..32, got {self.bits!r}")
        names = _names(graph, self.params, "perturbation.params")
        radius = {n: quantization_radius(graph.initializers[n], self, self.axis_for(graph, n)) for n in names}
        gran = "per-channel" if self.per_channel else "per-tensor"
        sym = "symmetric" if self.symmetric else "asymmetric"
        return _box(graph, names, radius, f"{self.bits}-bit {sym} {gran} rounding box")


_DEFAULT_AXIS = object()


def quantize(p: np.ndarray, scheme: QuantizationScheme, axis: Any = _DEFAULT_AXIS) -> tuple[np.ndarray, np.ndarray]:
    """Fake-quantize ``p``; returns (q(p), scale broadcast to p's shape).

    ``axis``: the channel axis (None: one scale), as from
    :meth:`QuantizationScheme.axis_for`; by default ``scheme.channel_axis``
    (or 0) for tensors of two or more dimensions when ``per_channel``.
    """
    p = np.asarray(p, dtype=np.float64)
    if axis is _DEFAULT_AXIS:
        axis = (scheme.channel_axis or 0) if scheme.per_channel and p.ndim >= 2 else None
    if axis is not None and p.ndim > 0:
        axes = tuple(i for i in range(p.ndim) if i != axis % p.ndim)
        keep = True
    else:
        axes, keep = None, False
    if scheme.symmetric:
        qmax = 2 ** (scheme.bits - 1) - 1
        amax = np.max(np.abs(p), axis=axes, keepdims=keep)
        scale = np.where(amax > 0, amax / qmax, 1.0)
        q = np.clip(np.round(p / scale), -qmax - 1, qmax) * scale
    else:
        levels = 2**scheme.bits - 1
        pmin = np.minimum(np.min(p, axis=axes, keepdims=keep), 0.0)
        pmax = np.maximum(np.max(p, axis=axes, keepdims=keep), 0.0)
        scale = np.where(pmax > pmin, (pmax - pmin) / levels, 1.0)
        zero = np.round(-pmin / scale)
        q = (np.clip(np.round(p / scale) + zero, 0, levels) - zero) * scale
    return q, np.broadcast_to(scale, p.shape)


def quantization_radius(p: np.ndarray, scheme: QuantizationScheme, axis: Any = _DEFAULT_AXIS) -> np.ndarray:
    q, scale = quantize(p, scheme, axis)
    # a hair of slack for the float rounding of p / scale
    return np.maximum(scale / 2.0, np.abs(q - p)) * (1 + 4 * np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class QuantizedCopy:
    """A concrete quantized model: the perturbed parameters take exactly these values."""

    values: Mapping[str, np.ndarray]
    description: str = "quantized copy"
    kind: Literal["copy"] = field(default="copy", init=False)

    @staticmethod
    def from_model(graph: Graph, quantized: Graph) -> QuantizedCopy:
        shared = [n for n in graph.default_parameters() if n in quantized.initializers]
        if not shared:
            raise SpecError("quantized_model", "shares no weight or bias names with the model", "export both from the same network")
        return QuantizedCopy(MappingProxyType({n: quantized.initializers[n] for n in shared}))

    def to_box(self, graph: Graph) -> ParamBox:
        names = graph.check_parameters(self.values.keys(), "perturbation.values")
        vals = {}
        for n in names:
            v = np.asarray(self.values[n], dtype=np.float64)
            if v.shape != graph.initializers[n].shape:
                raise SpecError("perturbation.values", f"'{n}' has shape {v.shape}, the model's is {graph.initializers[n].shape}")
            vals[n] = v
        nominal = {n: graph.initializers[n] for n in names}
        return ParamBox(MappingProxyType(nominal), MappingProxyType(vals), MappingProxyType(dict(vals)), self.description)


Perturbation = AbsoluteDelta | RelativeDelta | QuantizationScheme | QuantizedCopy


def _check_delta(delta: Any, field: str = "delta") -> None:
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not math.isfinite(delta) or delta < 0:
        raise SpecError(field, f"must be a finite number >= 0, got {delta!r}", "e.g. --delta 0.01")


# ---------------------------------------------------------------------------
# spec files

_KINDS = ("absolute", "relative", "quantization")


def perturbation_from_dict(d: Mapping[str, Any], field: str = "perturbation") -> Perturbation:
    """Build a perturbation from a parsed JSON/YAML mapping; errors name the field."""
    if not isinstance(d, Mapping):
        raise SpecError(field, "must be a mapping", 'e.g. {"kind": "absolute", "delta": 0.01}')
    kind = d.get("kind", "absolute")
    allowed = {
        "absolute": {"kind", "delta", "params", "channel_axis"},
        "relative": {"kind", "fraction", "params"},
        "quantization": {"kind", "bits", "symmetric", "per_channel", "channel_axis", "params"},
    }
    if kind not in allowed:
        raise SpecError(f"{field}.kind", f"unknown kind {kind!r}", f"use one of {', '.join(_KINDS)}")
    unknown = sorted(set(d) - allowed[kind])
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}", f"is not a field of a {kind} perturbation", f"allowed: {', '.join(sorted(allowed[kind]))}")
    params = d.get("params")
    if params is not None:
        if isinstance(params, str) or not isinstance(params, Sequence) or not all(isinstance(p, str) for p in params):
            raise SpecError(f"{field}.params", "must be a list of initializer names")
        params = tuple(params)
    if kind == "absolute":
        if "delta" not in d:
            raise SpecError(f"{field}.delta", "is required for an absolute perturbation")
        delta = d["delta"]
        if isinstance(delta, Mapping):
            delta = MappingProxyType({k: np.asarray(v, dtype=np.float64) for k, v in delta.items()})
        else:
            _check_delta(delta, f"{field}.delta")
        return AbsoluteDelta(delta, params, int(d.get("channel_axis", 0)))
    if kind == "relative":
        if "fraction" not in d:
            raise SpecError(f"{field}.fraction", "is required for a relative perturbation")
        _check_delta(d["fraction"], f"{field}.fraction")
        return RelativeDelta(float(d["fraction"]), params)
    bits = d.get("bits")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 32:
        raise SpecError(f"{field}.bits", f"must be an integer in 2..32, got {bits!r}")
    axis = d.get("channel_axis")
    return QuantizationScheme(bits, bool(d.get("symmetric", True)), bool(d.get("per_channel", False)),
                              None if axis is None else int(axis), params)


def load_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or YAML spec file into a mapping (validated by the caller)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpecError("spec", f"file '{path}' not found")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, ImportError) as exc:
        raise SpecError("spec", f"'{path}' is not valid JSON/YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError("spec", f"'{path}' must hold a mapping at the top level")
    return data
