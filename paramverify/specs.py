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

from paramverify.errors import ModelError, SpecError, check
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
            nominal = self.nominal.get(name)
            if nominal is not None and not np.all(np.isfinite(nominal)):
                raise ModelError(f"parameter tensor '{name}' contains NaN or Inf values; bounds need finite weights "
                                 "(repair the tensor or re-export the model)")
            if not (np.all(np.isfinite(self.lo[name])) and np.all(np.isfinite(self.hi[name]))):
                raise SpecError("perturbation", f"the box of parameter tensor '{name}' has NaN or infinite ends "
                                "(the perturbation overflows float64, or the perturbed values are not finite)",
                                "use a smaller delta, or finite perturbed values")
            check(bool(np.all(self.lo[name] <= self.hi[name])), f"inverted parameter box for {name}")

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
        """The box with every deviation from the nominal values multiplied by ``t`` (t >= 0).

        Rounded outward: the float box covers the real-number box
        ``nominal + t * (end - nominal)``, so a proof about the scaled box holds
        for the real scale ``t`` (``t`` = 1 is this box itself, ``t`` = 0 the
        nominal point)."""
        if t < 0 or not np.isfinite(t):
            raise SpecError("scale", f"a box scale must be a finite number >= 0, got {t!r}", "use t >= 0")
        if t == 1.0:
            return self
        if t == 0.0:
            return ParamBox(self.nominal, MappingProxyType(dict(self.nominal)), MappingProxyType(dict(self.nominal)),
                            f"{self.description} x 0")
        lo = {n: _scaled_end(self.nominal[n], self.lo[n], t, -np.inf) for n in self.names}
        hi = {n: _scaled_end(self.nominal[n], self.hi[n], t, np.inf) for n in self.names}
        return ParamBox(self.nominal, MappingProxyType(lo), MappingProxyType(hi), f"{self.description} x {t:g}")

    def contains(self, params: Mapping[str, np.ndarray]) -> bool:
        return all(np.all(params[n] >= self.lo[n]) and np.all(params[n] <= self.hi[n]) for n in self.names)

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {n: rng.uniform(self.lo[n], self.hi[n]) for n in self.names}

    def to_json(self) -> dict[str, Any]:
        return {"description": self.description, "parameters": list(self.names), "n_parameters": self.n_parameters}


def _scaled_end(nominal: np.ndarray, end: np.ndarray, t: float, direction: float) -> np.ndarray:
    """``nominal + t * (end - nominal)`` rounded toward ``direction`` (-inf for a lower end).

    Each of the three round-to-nearest steps is off by at most half an ulp, so one
    ``nextafter`` toward ``direction`` after each keeps the result on the outer side
    of the real value (``t >= 0`` keeps the product monotone in the widened difference);
    where ``end == nominal`` the result is exactly ``nominal``."""
    nominal = np.asarray(nominal, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.nextafter(end - nominal, direction)
        s = np.nextafter(t * d, direction)
        out = np.nextafter(nominal + s, direction)
    out = np.where(end == nominal, nominal, out)
    return np.minimum(out, nominal) if direction < 0 else np.maximum(out, nominal)


def _box(graph: Graph, names: tuple[str, ...], radius: Mapping[str, np.ndarray], description: str,
         exact_radius: bool = False) -> ParamBox:
    """``p0 -/+ radius``, rounded outward so the box covers the real-number box.

    With ``exact_radius`` (the radius is the float the user gave, not a
    rounded product), an end that float64 computes exactly is kept as it is:
    the box is then exactly the real-number box there (a bound met with
    equality stays decidable).
    """
    nominal = {n: graph.initializers[n] for n in names}
    lo = {n: _outward(nominal[n], radius[n], -np.inf, exact_radius) for n in names}
    hi = {n: _outward(nominal[n], radius[n], np.inf, exact_radius) for n in names}
    return ParamBox(MappingProxyType(nominal), MappingProxyType(lo), MappingProxyType(hi), description)


def _outward(nominal: np.ndarray, radius: np.ndarray, direction: float, exact_radius: bool) -> np.ndarray:
    """``nominal - radius`` (``direction`` -inf) or ``nominal + radius`` (+inf), rounded toward
    ``direction`` (unless exact, see :func:`_box`); exactly ``nominal`` where the radius is 0.

    One new array; the exactness test runs in row chunks, so building the box of a large
    model needs no full-size temporaries (this was the peak of ``make_problem``)."""
    nominal = np.asarray(nominal, dtype=np.float64)
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), nominal.shape)
    end = np.add(nominal, r) if direction > 0 else np.subtract(nominal, r)
    end = np.asarray(end, dtype=np.float64)
    if end.ndim == 0:
        return _outward(nominal[None], r[None], direction, exact_radius).reshape(())
    rows = max(1, (1 << 15) // max(1, int(np.prod(end.shape[1:], dtype=np.int64))))  # ~256 KB per temporary
    for s in range(0, end.shape[0], rows):
        e, n0, r0 = end[s : s + rows], nominal[s : s + rows], r[s : s + rows]
        if exact_radius:
            with np.errstate(invalid="ignore", over="ignore"):
                # TwoSum: the rounding error of nominal +/- r, exactly; 0 means e is the real sum
                back = e - n0
                signed = r0 if direction > 0 else -r0
                err = (n0 - (e - back)) + (signed - back)
            keep = (err == 0) & np.isfinite(e)
            np.nextafter(e, direction, out=e, where=~keep)
        else:
            np.nextafter(e, direction, out=e)
        np.copyto(e, n0, where=(r0 == 0))
    return end


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
    if arr.ndim == 0:  # a read-only broadcast view: no memory for a per-tensor radius
        return np.broadcast_to(np.float64(arr), shape)
    if arr.shape == shape:
        return arr.copy()
    if arr.ndim == 1 and len(shape) > 0 and arr.size == shape[channel_axis % len(shape)]:
        view = [1] * len(shape)
        view[channel_axis % len(shape)] = arr.size
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
            check_channel_axis(graph, names, self.channel_axis)
        else:
            _check_delta(self.delta)
            names = _names(graph, self.params, "perturbation.params")
            spec = {n: self.delta for n in names}
        radius = {
            n: _broadcast_radius(spec[n], graph.initializers[n].shape, n, self.channel_axis, "perturbation.delta")
            for n in names
        }
        desc = f"|p - p0| <= {self.delta:g}" if not isinstance(self.delta, Mapping) else "|p - p0| <= delta (per tensor)"
        return _box(graph, names, radius, desc, exact_radius=True)


@dataclass(frozen=True)
class RelativeDelta:
    """|p - p0| <= fraction * |p0| elementwise."""

    fraction: float
    params: tuple[str, ...] | None = None
    kind: Literal["relative"] = field(default="relative", init=False)

    def to_box(self, graph: Graph) -> ParamBox:
        _check_delta(self.fraction, "perturbation.fraction")
        names = _names(graph, self.params, "perturbation.params")
        with np.errstate(over="ignore"):  # an infinite radius is _box's to report (a SpecError naming the tensor)
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
        if self.per_channel and self.channel_axis is not None:
            check_channel_axis(graph, names, self.channel_axis)
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


def check_channel_axis(graph: Graph, names: Sequence[str], axis: int, field: str = "perturbation.channel_axis") -> None:
    """The channel axis must exist in every perturbed tensor of rank >= 2 (no silent wrap-around).

    A 1-D tensor (a bias) has one axis, which is its channel axis whatever ``axis`` says.
    """
    for n in names:
        nd = graph.initializers[n].ndim
        if nd >= 2 and not -nd <= axis < nd:
            raise SpecError(field, f"is {axis} but '{n}' has {nd} axes", f"use an axis in {-nd}..{nd - 1}")


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
    if not isinstance(kind, str):
        raise SpecError(f"{field}.kind", f"must be a string, got {kind!r}", f"use one of {', '.join(_KINDS)}")
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
            if not delta:
                raise SpecError(f"{field}.delta", "is an empty map", "name at least one tensor, e.g. {W1: 0.01}")
            if params is not None:
                raise SpecError(f"{field}.params", "is not used with a per-tensor delta map (its keys name the tensors)", "drop params")
            delta = MappingProxyType({_key(k, f"{field}.delta"): numeric_array(v, f"{field}.delta.{k}") for k, v in delta.items()})
        else:
            _check_delta(delta, f"{field}.delta")
            if "channel_axis" in d:
                raise SpecError(f"{field}.channel_axis", "is only used with a per-tensor delta map of per-channel values", "drop it")
        return AbsoluteDelta(delta, params, _int_field(d, "channel_axis", 0, field))
    if kind == "relative":
        if "fraction" not in d:
            raise SpecError(f"{field}.fraction", "is required for a relative perturbation")
        _check_delta(d["fraction"], f"{field}.fraction")
        return RelativeDelta(float(d["fraction"]), params)
    bits = d.get("bits")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 32:
        raise SpecError(f"{field}.bits", f"must be an integer in 2..32, got {bits!r}")
    per_channel = _bool_field(d, "per_channel", False, field)
    if "channel_axis" in d and not per_channel:
        raise SpecError(f"{field}.channel_axis", "is only used with per_channel: true", "drop it or set per_channel: true")
    axis = _int_field(d, "channel_axis", 0, field) if "channel_axis" in d else None  # None: each weight's output axis
    return QuantizationScheme(bits, _bool_field(d, "symmetric", True, field), per_channel, axis, params)


def _bool_field(d: Mapping[str, Any], key: str, default: bool, field: str) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{field}.{key}", f"must be true or false, got {value!r}", f"write {key}: {str(bool(default)).lower()} without quotes")
    return value


def _int_field(d: Mapping[str, Any], key: str, default: int, field: str) -> int:
    value = d.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{field}.{key}", f"must be a whole number, got {value!r}", f"e.g. {key}: 0")
    return value


def _key(k: Any, field: str) -> str:
    if not isinstance(k, str):
        raise SpecError(field, f"has a non-string key {k!r}", "key the map by initializer names")
    return k


#: deepest list nesting a spec value may have (a 4-D convolution kernel plus slack)
MAX_NESTING = 8


def numeric_array(value: Any, field: str) -> np.ndarray:
    """A number or a rectangular nested list of numbers; strings, booleans, ragged lists refused."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (list, tuple)):
            if depth >= MAX_NESTING:
                raise SpecError(field, f"is nested more than {MAX_NESTING} lists deep", "give a number or an array of the tensor's shape")
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(field, f"must hold numbers only, found {v!r} ({type(v).__name__})", "write numbers without quotes")
    try:
        arr = np.array(value, dtype=np.float64)
    except (ValueError, OverflowError) as exc:
        raise SpecError(field, "is a ragged list (rows of different lengths)", "give an array of the tensor's shape") from exc
    return arr


def load_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON or YAML spec file into a mapping (validated by the caller).

    YAML is read with ``yaml.safe_load`` (no Python tags); every failure is
    one :class:`SpecError` naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SpecError("spec", f"file '{path}' not found")
    if os.path.isdir(path):
        raise SpecError("spec", f"'{path}' is a directory", "pass a .json or .yaml file")
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("spec", f"'{path}' is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})", "save the file as UTF-8") from exc
    yaml_file = path.endswith((".yaml", ".yml"))
    try:
        if yaml_file:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                fix = "indent with spaces, not tabs" if "\t" in text else "check the YAML syntax"
                raise SpecError("spec", f"'{path}' is not valid YAML: {_one_line(exc)}", fix) from exc
        else:
            data = json.loads(text)
    except ValueError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError("spec", f"'{path}' is not valid JSON: {_one_line(exc)}", "name YAML files .yaml or .yml") from exc
    except RecursionError as exc:
        raise SpecError("spec", f"'{path}' is nested too deeply to read", f"a spec needs at most {MAX_NESTING} levels of lists") from exc
    if not isinstance(data, dict):
        raise SpecError("spec", f"'{path}' must hold a mapping at the top level", "e.g. {\"perturbation\": {\"delta\": 0.01}, \"x0\": [1, 2]}")
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
