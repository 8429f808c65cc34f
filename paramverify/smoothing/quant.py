"""Fake quantization of a torch model by a per-layer (mixed-precision) policy.

A *layer* is a ``Conv1d/2d/3d`` or ``Linear`` module, named by its qualified
name in ``model.named_modules()`` (for models loaded from ONNX: the sanitized
node name, see :mod:`.onnx_torch`).  Quantizing a layer replaces its weight by
``dequantize(quantize(w))`` and fake-quantizes its *input* activation with a
static range calibrated on given inputs, which is what an integer kernel would
consume.  Biases stay float (an int32 bias at scale ``s_w * s_a`` is
near-exact).  Static ranges keep the quantized model a deterministic function
of one input, which randomized smoothing requires.

Policy JSON (all keys optional except that something must be given)::

    {"default": 8,
     "weight": {"symmetric": true, "per_channel": true},
     "activation": {"symmetric": false, "per_channel": false},
     "layers": {"conv1": 4, "fc2": {"weight_bits": 8, "act_bits": null}}}

or the flat form ``{"conv1": 8, "fc": 4}`` (unlisted layers stay float).  An
integer means the same bits for weights and activations; ``null`` keeps float.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paramverify.errors import SpecError

QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_LAYER_KEYS = frozenset({"weight_bits", "act_bits", "bits"})
_TOP_KEYS = frozenset({"default", "weight", "activation", "layers"})
_SCHEME_KEYS = frozenset({"symmetric", "per_channel"})


@dataclass(frozen=True)
class QuantSpec:
    """How one tensor is quantized: bit width, symmetric or affine, granularity."""

    bits: int
    symmetric: bool = True
    per_channel: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.bits, int) and not isinstance(self.bits, bool) and 2 <= self.bits <= 16):
            raise SpecError(
                "bits", f"must be an integer in 2..16, got {self.bits!r}", "use null to keep a tensor float"
            )

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1


@dataclass(frozen=True)
class LayerPolicy:
    """Weight and input-activation quantization of one layer (None = float)."""

    weight: QuantSpec | None
    activation: QuantSpec | None


@dataclass(frozen=True)
class QuantPolicy:
    """A mixed-precision policy: explicit layers, and a default for the rest."""

    layers: tuple[tuple[str, LayerPolicy], ...] = ()
    default: LayerPolicy | None = None

    def for_layer(self, name: str) -> LayerPolicy | None:
        for key, pol in self.layers:
            if key == name:
                return pol
        return self.default

    @classmethod
    def uniform(
        cls,
        bits: int | None,
        act_bits: int | None = None,
        *,
        weight_symmetric: bool = True,
        weight_per_channel: bool = True,
        act_symmetric: bool = False,
        act_per_channel: bool = False,
    ) -> QuantPolicy:
        """Every layer at ``bits`` (weights) and ``act_bits`` (inputs; default = bits)."""
        a_bits = bits if act_bits is None else act_bits
        w = QuantSpec(bits, weight_symmetric, weight_per_channel) if bits is not None else None
        a = QuantSpec(a_bits, act_symmetric, act_per_channel) if a_bits is not None else None
        return cls(layers=(), default=LayerPolicy(w, a))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> QuantPolicy:
        if isinstance(data, Mapping):  # the schema version of a policy.json written by `search`
            data = {k: v for k, v in data.items() if k != "schema"}
        if not isinstance(data, Mapping) or not data:
            raise SpecError("policy", "must be a non-empty JSON object", 'e.g. {"default": 8}')
        if "layers" in data or "default" in data:
            extra = set(data) - _TOP_KEYS
            if extra:
                raise SpecError("policy", f"unknown keys {sorted(extra)}", "put layer names under 'layers'")
        elif set(data) & _TOP_KEYS:
            raise SpecError("policy", "'weight'/'activation' need 'default' or 'layers'", 'e.g. {"default": 8}')
        else:
            data = {"layers": data}  # the flat form: every key is a layer name
        w_scheme = _scheme(data.get("weight", {}), "policy.weight", symmetric=True, per_channel=True)
        a_scheme = _scheme(data.get("activation", {}), "policy.activation", symmetric=False, per_channel=False)
        default = None
        if "default" in data:
            default = _layer(data["default"], "policy.default", w_scheme, a_scheme)
        layers_raw = data.get("layers", {})
        if not isinstance(layers_raw, Mapping):
            raise SpecError("policy.layers", "must be an object mapping layer name -> bits")
        layers = tuple(
            (str(k), _layer(v, f"policy.layers.{k}", w_scheme, a_scheme)) for k, v in layers_raw.items()
        )
        return cls(layers=layers, default=default)

    @classmethod
    def from_json(cls, source: str | Path) -> QuantPolicy:
        """Parse a policy from a JSON file path or a JSON text."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            path = Path(text)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SpecError("policy", f"cannot read {path}: {exc.strerror}", "pass a readable JSON file") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("policy", f"invalid JSON: {exc.msg} at line {exc.lineno}", "fix the JSON syntax") from exc
        return cls.from_mapping(data)

    def to_mapping(self) -> dict[str, Any]:
        def enc(p: LayerPolicy | None) -> Any:
            if p is None:
                return None
            return {"weight": _spec_dict(p.weight), "activation": _spec_dict(p.activation)}

        return {"default": enc(self.default), "layers": {k: enc(v) for k, v in self.layers}}


def _spec_dict(s: QuantSpec | None) -> dict[str, Any] | None:
    return None if s is None else {"bits": s.bits, "symmetric": s.symmetric, "per_channel": s.per_channel}


def _scheme(raw: Any, where: str, *, symmetric: bool, per_channel: bool) -> tuple[bool, bool]:
    if not isinstance(raw, Mapping) or not set(raw) <= _SCHEME_KEYS:
        raise SpecError(where, f"must be an object with keys {sorted(_SCHEME_KEYS)}, got {raw!r}")
    sym, pc = raw.get("symmetric", symmetric), raw.get("per_channel", per_channel)
    if not isinstance(sym, bool) or not isinstance(pc, bool):
        raise SpecError(where, "symmetric and per_channel must be true or false")
    return sym, pc


def _bits(raw: Any, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SpecError(where, f"bits must be an integer or null, got {raw!r}")
    if raw == 32:
        return None  # 32 bits means "keep float"
    if not 2 <= raw <= 16:
        raise SpecError(where, f"bits must lie in 2..16 (or 32/null for float), got {raw}", "e.g. 8; write null to keep a layer float")
    return raw


def _layer(raw: Any, where: str, w_scheme: tuple[bool, bool], a_scheme: tuple[bool, bool]) -> LayerPolicy:
    if isinstance(raw, Mapping):
        if not set(raw) <= _LAYER_KEYS:
            raise SpecError(where, f"unknown keys {sorted(set(raw) - _LAYER_KEYS)}", f"use {sorted(_LAYER_KEYS)}")
        both = _bits(raw.get("bits"), where)
        wb = _bits(raw["weight_bits"], where) if "weight_bits" in raw else both
        ab = _bits(raw["act_bits"], where) if "act_bits" in raw else both
    else:
        wb = ab = _bits(raw, where)
    return LayerPolicy(
        weight=QuantSpec(wb, *w_scheme) if wb is not None else None,
        activation=QuantSpec(ab, *a_scheme) if ab is not None else None,
    )


# -- fake quantization ---------------------------------------------------------
def qparams(lo: torch.Tensor, hi: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point covering ``[lo, hi]`` (elementwise tensors)."""
    lo = torch.minimum(lo, torch.zeros_like(lo))
    hi = torch.maximum(hi, torch.zeros_like(hi))
    tiny = torch.finfo(torch.float32).tiny
    if spec.symmetric:
        scale = torch.maximum(-lo, hi) / spec.qmax
        scale = torch.clamp(scale, min=tiny)
        return scale, torch.zeros_like(scale)
    scale = torch.clamp((hi - lo) / (spec.qmax - spec.qmin), min=tiny)
    zero = torch.clamp(torch.round(-lo / scale) + spec.qmin, spec.qmin, spec.qmax)
    return scale, zero


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """``(clamp(round(x / scale) + zero, qmin, qmax) - zero) * scale`` (round half to even)."""
    q = torch.clamp(torch.round(x / scale) + zero, qmin, qmax)
    return (q - zero) * scale


def quantize_weight(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Fake-quantized copy of a weight; per-channel means per output channel (dim 0)."""
    w = w.detach().float()
    if spec.per_channel:
        flat = w.reshape(w.shape[0], -1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        shape = (w.shape[0],) + (1,) * (w.dim() - 1)
        scale, zero = qparams(lo, hi, spec)
        return fake_quantize(w, scale.reshape(shape), zero.reshape(shape), spec.qmin, spec.qmax)
    scale, zero = qparams(w.min(), w.max(), spec)
    return fake_quantize(w, scale, zero, spec.qmin, spec.qmax)


class FakeQuantLayer(nn.Module):
    """A Conv/Linear layer with a quantized weight and fake-quantized input."""

    def __init__(
        self,
        layer: nn.Module,
        policy: LayerPolicy,
        act_range: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        super().__init__()
        self.layer = copy.deepcopy(layer)
        self.policy = policy
        if policy.weight is not None:
            with torch.no_grad():
                self.layer.weight.copy_(quantize_weight(layer.weight, policy.weight))
        spec = policy.activation
        if spec is not None:
            assert act_range is not None, "activation quantization without a calibrated range"
            scale, zero = qparams(act_range[0], act_range[1], spec)
            if spec.per_channel:
                ndim = 2 if isinstance(layer, nn.Linear) else layer.weight.dim()
                shape = (1, -1) + (1,) * (ndim - 2)
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            self.register_buffer("act_scale", scale)
            self.register_buffer("act_zero", zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.policy.activation
        if spec is not None:
            x = fake_quantize(x, self.act_scale, self.act_zero, spec.qmin, spec.qmax)
        return self.layer(x)


def quantizable_layers(model: nn.Module) -> list[str]:
    """Qualified names of the layers a policy can address."""
    return [name for name, m in model.named_modules() if isinstance(m, QUANTIZABLE) and name]


def calibrate_ranges(
    model: nn.Module, names: list[str], per_channel: Mapping[str, bool] | bool, calibration: torch.Tensor,
    batch_size: int = 256,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Min/max of each named layer's input over the calibration inputs (per channel where asked).

    The model runs in eval mode on its own device; its training flag is restored.
    """
    modules = dict(model.named_modules())
    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def make_hook(name: str):
        channel = per_channel if isinstance(per_channel, bool) else per_channel[name]

        def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach().float()
            if channel:
                flat = x.transpose(0, 1).reshape(x.shape[1], -1)
                lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
            else:
                lo, hi = x.min(), x.max()
            if name in ranges:
                lo, hi = torch.minimum(lo, ranges[name][0]), torch.maximum(hi, ranges[name][1])
            ranges[name] = (lo, hi)

        return hook

    handles = [modules[n].register_forward_pre_hook(make_hook(n)) for n in names]
    param = next(model.parameters(), None)
    if param is not None:
        calibration = calibration.to(device=param.device, dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, calibration.shape[0], batch_size):
                model(calibration[start : start + batch_size])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {k: (lo.clone(), hi.clone()) for k, (lo, hi) in ranges.items()}


def quantize_model(
    model: nn.Module,
    policy: QuantPolicy,
    calibration: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
) -> nn.Module:
    """A fake-quantized deep copy of ``model`` under ``policy``.

    ``calibration`` (a batch of inputs on the model's device) is required when
    any activation is quantized; it should resemble what the model will see,
    e.g. inputs plus Gaussian noise at the smoothing sigma, drawn independently
    of the certification noise.  Raises SpecError for layer names the model
    does not have.
    """
    names = quantizable_layers(model)
    unknown = [k for k, _ in policy.layers if k not in names]
    if unknown:
        raise SpecError(
            "policy.layers", f"no quantizable layer named {', '.join(map(repr, unknown))}", f"layers are: {names}"
        )
    plan = {n: p for n in names if (p := policy.for_layer(n)) is not None and (p.weight or p.activation)}
    act_names = [n for n, p in plan.items() if p.activation is not None]
    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if act_names:
        if calibration is None or calibration.shape[0] == 0:
            raise SpecError(
                "calibration", "activation quantization needs calibration inputs", "pass inputs, or act_bits null"
            )
        was_training = model.training
        model.eval()
        per_channel = {n: bool(plan[n].activation and plan[n].activation.per_channel) for n in act_names}
        ranges = calibrate_ranges(model, act_names, per_channel, calibration, batch_size)
        model.train(was_training)
    qmodel = copy.deepcopy(model).eval()
    for name, pol in plan.items():
        parent_name, _, attr = name.rpartition(".")
        parent = qmodel.get_submodule(parent_name) if parent_name else qmodel
        layer = getattr(parent, attr)
        setattr(parent, attr, FakeQuantLayer(layer, pol, ranges.get(name)))
    return qmodel


# -- BitOps ----------------------------------------------------------------------
@dataclass(frozen=True)
class LayerBitOps:
    name: str
    macs: int
    weight_bits: int
    act_bits: int

    @property
    def bitops(self) -> int:
        return self.macs * self.weight_bits * self.act_bits


@dataclass(frozen=True)
class BitOpsReport:
    """BitOps = sum over Conv/Linear layers of MACs x weight bits x input bits.

    Float tensors count as 32 bits.  Other operators (pooling, adds) are not
    counted; the MACs are per input (batch size 1).
    """

    layers: tuple[LayerBitOps, ...]

    @property
    def total(self) -> int:
        return sum(layer.bitops for layer in self.layers)

    @property
    def float_total(self) -> int:
        return sum(layer.macs * 32 * 32 for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bitops": self.total,
            "float_bitops": self.float_total,
            "fraction_of_float": self.total / self.float_total if self.float_total else math.nan,
            "macs": self.macs,
            "layers": [
                {"name": x.name, "macs": x.macs, "weight_bits": x.weight_bits, "act_bits": x.act_bits,
                 "bitops": x.bitops}
                for x in self.layers
            ],
        }


def layer_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Multiply-accumulates per input of every Conv/Linear layer (one forward pass)."""
    modules = dict(model.named_modules())
    names = quantizable_layers(model)
    macs: dict[str, int] = {}

    def make_hook(name: str):
        def hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            per_out = mod.weight[0].numel()  # in_features, or in_channels / groups * kernel size
            macs[name] = macs.get(name, 0) + (out.numel() // out.shape[0]) * per_out

        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in names]
    try:
        with torch.inference_mode():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return macs


def bitops(model: nn.Module, policy: QuantPolicy, example: torch.Tensor) -> BitOpsReport:
    """BitOps of the float ``model`` under ``policy`` for one input like ``example``."""
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    macs = layer_macs(model, example.to(param.device) if param is not None else example)
    model.train(was_training)
    rows = []
    for name in quantizable_layers(model):
        pol = policy.for_layer(name)
        wb = pol.weight.bits if pol is not None and pol.weight is not None else 32
        ab = pol.activation.bits if pol is not None and pol.activation is not None else 32
        rows.append(LayerBitOps(name=name, macs=macs.get(name, 0), weight_bits=wb, act_bits=ab))
    return BitOpsReport(layers=tuple(rows))
