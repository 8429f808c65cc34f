"""The search space: quantizable layers, bit policies, BitOps and the budget.

A *policy* gives every quantizable layer (Conv/Linear, in model order) a
weight bit width and an input-activation bit width (``None``: the activation
stays float, as in the formal variant).  BitOps follow
:class:`paramverify.smoothing.quant.BitOpsReport`: the sum over layers of
MACs x weight bits x activation bits, float counting 32 bits; the budget is a
fraction of the all-float BitOps.

The budget wall is HAQ's: after an episode chose its bits, while the policy
is over budget, walk the layers in order and take one bit from each layer
above the minimum, stopping as soon as the budget is met.  Pure Python (no
torch), so the formal variant and the tests use it directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paramverify.errors import InternalError, SpecError, check

FLOAT_BITS = 32


@dataclass(frozen=True)
class LayerInfo:
    """One quantizable layer: what the agent's state describes.

    ``name`` is the policy key (the torch module name); ``kernel`` the number
    of kernel taps (1 for Linear); ``macs`` multiply-accumulates per input.
    """

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    params: int
    macs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "in_channels": self.in_channels,
            "out_channels": self.out_channels, "kernel": self.kernel, "stride": self.stride,
            "params": self.params, "macs": self.macs,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> LayerInfo:
        return LayerInfo(str(d["name"]), str(d["kind"]), int(d["in_channels"]), int(d["out_channels"]),
                         int(d["kernel"]), int(d["stride"]), int(d["params"]), int(d["macs"]))


@dataclass(frozen=True)
class BitRange:
    """The bit widths an action may choose, ``lo..hi`` inclusive (2..8 by default)."""

    lo: int = 2
    hi: int = 8

    def __post_init__(self) -> None:
        if not (isinstance(self.lo, int) and isinstance(self.hi, int) and 2 <= self.lo <= self.hi <= 16):
            raise SpecError("bits", f"bit range must satisfy 2 <= lo <= hi <= 16, got {self.lo}..{self.hi}",
                            "e.g. --min-bits 2 --max-bits 8")

    @property
    def choices(self) -> int:
        return self.hi - self.lo + 1

    def from_action(self, a: float) -> int:
        """HAQ's mapping of a continuous action in [0, 1] to a bit width."""
        a = min(1.0, max(0.0, float(a)))
        b = math.floor(self.lo - 0.5 + a * self.choices + 0.5)
        return min(self.hi, max(self.lo, b))

    def to_action(self, bits: int) -> float:
        """The centre of the action interval that maps to ``bits`` (the executed action)."""
        return (bits - self.lo + 0.5) / self.choices


@dataclass(frozen=True)
class BitPolicy:
    """Bits per layer: ``weight_bits[i]`` and ``act_bits[i]`` (None = float) of ``layers[i]``."""

    layers: tuple[str, ...]
    weight_bits: tuple[int, ...]
    act_bits: tuple[int | None, ...]

    def __post_init__(self) -> None:
        if not (len(self.layers) == len(self.weight_bits) == len(self.act_bits)):
            raise SpecError("policy", "layers, weight_bits and act_bits differ in length")

    @staticmethod
    def from_bits(layers: Sequence[str], bits: Sequence[int], quantize_activations: bool = True) -> BitPolicy:
        """Weights and activations at the same bits (activations float when not quantized)."""
        b = tuple(int(v) for v in bits)
        a: tuple[int | None, ...] = b if quantize_activations else (None,) * len(b)
        return BitPolicy(tuple(layers), b, a)

    @property
    def key(self) -> str:
        """A canonical string naming the policy (the evaluation cache key)."""
        return ",".join(
            f"{n}={w}/{'f' if a is None else a}" for n, w, a in zip(self.layers, self.weight_bits, self.act_bits)
        )

    def to_quant_mapping(
        self,
        *,
        weight_symmetric: bool = True,
        weight_per_channel: bool = True,
        act_symmetric: bool = False,
        act_per_channel: bool = False,
    ) -> dict[str, Any]:
        """A mapping that :meth:`QuantPolicy.from_mapping` reads (``paramverify smooth --policy``)."""
        return {
            "weight": {"symmetric": weight_symmetric, "per_channel": weight_per_channel},
            "activation": {"symmetric": act_symmetric, "per_channel": act_per_channel},
            "layers": {n: {"weight_bits": w, "act_bits": a}
                       for n, w, a in zip(self.layers, self.weight_bits, self.act_bits)},
        }

    def to_json(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "weight_bits": list(self.weight_bits), "act_bits": list(self.act_bits)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> BitPolicy:
        return BitPolicy(tuple(d["layers"]), tuple(int(v) for v in d["weight_bits"]),
                         tuple(None if v is None else int(v) for v in d["act_bits"]))


def policy_bitops(layers: Sequence[LayerInfo], policy: BitPolicy) -> int:
    """Sum of MACs x weight bits x activation bits (float activations: 32 bits)."""
    if tuple(layer.name for layer in layers) != policy.layers:
        raise SpecError("policy", f"names layers {list(policy.layers)}, the model has {[la.name for la in layers]}")
    return sum(
        layer.macs * w * (FLOAT_BITS if a is None else a)
        for layer, w, a in zip(layers, policy.weight_bits, policy.act_bits)
    )


def float_bitops(layers: Sequence[LayerInfo]) -> int:
    return sum(layer.macs * FLOAT_BITS * FLOAT_BITS for layer in layers)


@dataclass(frozen=True)
class Budget:
    """A BitOps budget: ``fraction`` of the float model's BitOps."""

    layers: tuple[LayerInfo, ...]
    fraction: float
    bit_range: BitRange = BitRange()
    quantize_activations: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, (int, float)) and math.isfinite(self.fraction) and 0 < self.fraction):
            raise SpecError("budget", f"must be a positive fraction of the float BitOps, got {self.fraction!r}",
                            "e.g. --budget 0.1")
        if not self.layers:
            raise SpecError("model", "has no quantizable (Conv/Linear) layer", "export Conv/Gemm/MatMul layers")
        if self.bitops(self.policy([self.bit_range.lo] * len(self.layers))) > self.limit:
            lowest = self.fraction_of(self.policy([self.bit_range.lo] * len(self.layers)))
            raise SpecError("budget", f"{self.fraction:g} is below the smallest reachable fraction {lowest:.4g} "
                            f"(every layer at {self.bit_range.lo} bits)", f"use --budget >= {lowest:.4g}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def float_total(self) -> int:
        return float_bitops(self.layers)

    @property
    def limit(self) -> float:
        return self.fraction * self.float_total

    def policy(self, bits: Sequence[int]) -> BitPolicy:
        return BitPolicy.from_bits(self.names, bits, self.quantize_activations)

    def bitops(self, policy: BitPolicy) -> int:
        return policy_bitops(self.layers, policy)

    def fraction_of(self, policy: BitPolicy) -> float:
        return self.bitops(policy) / self.float_total

    def fits(self, policy: BitPolicy) -> bool:
        return self.bitops(policy) <= self.limit

    def wall(self, bits: Sequence[int]) -> tuple[int, ...]:
        """HAQ's final action wall: lower bits layer by layer until the budget is met."""
        out = [min(self.bit_range.hi, max(self.bit_range.lo, int(b))) for b in bits]
        if len(out) != len(self.layers):
            raise SpecError("bits", f"got {len(out)} bit widths for {len(self.layers)} layers")
        while not self.fits(self.policy(out)):
            changed = False
            for i in range(len(out)):
                if out[i] > self.bit_range.lo:
                    out[i] -= 1
                    changed = True
                    if self.fits(self.policy(out)):
                        break
            check(changed, "budget below the all-minimum policy (checked in __post_init__)")
        return tuple(out)

    def uniform_bits(self) -> int:
        """The largest uniform bit width within the budget."""
        for b in range(self.bit_range.hi, self.bit_range.lo - 1, -1):
            if self.fits(self.policy([b] * len(self.layers))):
                return b
        raise InternalError("internal error (please report): the all-minimum policy does not fit (checked in __post_init__)")
