"""Stage-described CNNs, the per-stage actions that shrink them, and weight inheritance.

A network is a stem-less stack of *stages*; stage ``s`` has ``depth`` blocks of ``width``
output channels, the first block with stride ``stride`` (the others stride 1).  A block is

* ``std``: Conv 3x3 (pad 1, bias) -> norm -> activation, or
* ``dws``: depthwise Conv 3x3 (pad 1, no bias, the block's stride) -> pointwise Conv 1x1
  (bias) -> norm -> activation,

with norm ``bn`` (BatchNorm) or ``none`` and activation ``relu``, ``leaky_relu`` (0.1) or
``silu``.  A global average pool and one Linear layer make the logits.

An action per stage (:class:`StageAction`) keeps a fraction of the channels, the first
``depth`` blocks, and picks the block choices.  :func:`inherit` builds the sub-network
with the teacher's weights where the shapes allow: it keeps the output channels with the
largest L1 norm in each block (and the matching input channels of the next), the first
blocks of each stage, and the head's matching columns; BatchNorm is copied, or folded into
the convolution when the sub-network drops it; a ``dws`` block inherits from a ``std``
teacher block the best rank-one factorisation (SVD) of each input channel's kernels; a
BatchNorm the teacher lacks starts as the identity (calibrated on data, see
:func:`calibrate_new_norms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from paramverify.errors import SpecError, check

CONV_TYPES = ("std", "dws")
ACTIVATIONS = ("relu", "leaky_relu", "silu")
NORMS = ("bn", "none")
WIDTH_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
LEAKY_SLOPE = 0.1
BN_EPS = 1e-5


@dataclass(frozen=True)
class StageSpec:
    width: int
    depth: int
    stride: int
    conv: str = "std"
    act: str = "relu"
    norm: str = "bn"

    def __post_init__(self) -> None:
        for name in ("width", "depth", "stride"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise SpecError(f"stage {name}", f"must be a positive integer, got {v!r}")
        for name, options in (("conv", CONV_TYPES), ("act", ACTIVATIONS), ("norm", NORMS)):
            if getattr(self, name) not in options:
                raise SpecError(f"stage {name}", f"unknown choice {getattr(self, name)!r}", f"use one of {', '.join(options)}")


@dataclass(frozen=True)
class ArchSpec:
    """Input shape (C, H, W), number of classes and the stages."""

    in_shape: tuple[int, int, int]
    classes: int
    stages: tuple[StageSpec, ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise SpecError("stages", "a network needs at least one stage")
        if len(self.in_shape) != 3 or min(self.in_shape) < 1 or self.classes < 2:
            raise SpecError("arch", f"bad input shape {self.in_shape} or class count {self.classes}")

    def to_json(self) -> dict:
        return {"in_shape": list(self.in_shape), "classes": self.classes,
                "stages": [{k: getattr(s, k) for k in ("width", "depth", "stride", "conv", "act", "norm")} for s in self.stages]}

    @staticmethod
    def from_json(d: dict) -> ArchSpec:
        try:
            stages = tuple(StageSpec(**{k: s[k] for k in ("width", "depth", "stride", "conv", "act", "norm")}) for s in d["stages"])
            return ArchSpec(tuple(int(v) for v in d["in_shape"]), int(d["classes"]), stages)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError("arch", f"not a stage description: {exc}") from exc

    def label(self) -> str:
        """One line: ``width x blocks / stride conv,act,norm`` per stage, separated by ``; ``."""
        return "; ".join(f"{s.width}x{s.depth}/{s.stride} {s.conv},{s.act},{s.norm}" for s in self.stages)


@dataclass(frozen=True)
class StageAction:
    """Width ratio (of the teacher stage's channels), blocks kept, block choices."""

    width_ratio: float
    depth: int
    conv: str = "std"
    act: str = "relu"
    norm: str = "bn"


def stage_width(teacher_width: int, ratio: float) -> int:
    return max(1, round(ratio * teacher_width))


def apply_actions(teacher: ArchSpec, actions: tuple[StageAction, ...]) -> ArchSpec:
    """The sub-network's description (raises SpecError on a malformed action)."""
    if len(actions) != len(teacher.stages):
        raise SpecError("actions", f"need one action per stage ({len(teacher.stages)}), got {len(actions)}")
    stages = []
    for t, a in zip(teacher.stages, actions):
        if not (0 < a.width_ratio <= 1) or not (1 <= a.depth <= t.depth):
            raise SpecError("actions", f"width ratio {a.width_ratio} / depth {a.depth} outside (0, 1] / 1..{t.depth}")
        stages.append(StageSpec(stage_width(t.width, a.width_ratio), a.depth, t.stride, a.conv, a.act, a.norm))
    return replace(teacher, stages=tuple(stages))


def conv_out(size: int, stride: int) -> int:
    """Output side of a 3x3 convolution with padding 1."""
    return (size + 2 - 3) // stride + 1


def arch_macs(arch: ArchSpec) -> int:
    """Multiply-accumulates of the network, counted from its description (the ONNX graph count
    in :mod:`paramverify.compress.flops` is the independent check): convolutions and the
    Linear layer, plus one per BatchNorm output element."""
    c, h, w = arch.in_shape
    total = 0
    for s in arch.stages:
        for j in range(s.depth):
            stride = s.stride if j == 0 else 1
            h, w = conv_out(h, stride), conv_out(w, stride)
            if s.conv == "std":
                total += h * w * s.width * c * 9
            else:
                total += h * w * c * 9 + h * w * s.width * c
            if s.norm == "bn":
                total += h * w * s.width
            c = s.width
    return total + c * arch.classes


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, conv: str, act: str, norm: str) -> None:
        super().__init__()
        self.conv_type, self.act_name = conv, act
        if conv == "std":
            self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=True)
        else:
            self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
            self.conv = nn.Conv2d(cin, cout, 1, bias=True)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS) if norm == "bn" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv_type == "dws":
            x = self.dw(x)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act_name == "relu":
            return torch.relu(x)
        if self.act_name == "leaky_relu":
            return nn.functional.leaky_relu(x, LEAKY_SLOPE)
        return nn.functional.silu(x)


class StageNet(nn.Module):
    """The torch network of an :class:`ArchSpec`."""

    def __init__(self, arch: ArchSpec) -> None:
        super().__init__()
        self.arch = arch
        blocks = []
        c = arch.in_shape[0]
        for s in arch.stages:
            for j in range(s.depth):
                blocks.append(Block(c, s.width, s.stride if j == 0 else 1, s.conv, s.act, s.norm))
                c = s.width
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(c, arch.classes)
        self.new_norms: list[int] = []  # indices of blocks whose BatchNorm starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.fc(x.mean(dim=(2, 3)))

    def stage_blocks(self) -> list[list[Block]]:
        out, i = [], 0
        for s in self.arch.stages:
            out.append([self.blocks[i + j] for j in range(s.depth)])  # type: ignore[misc]
            i += s.depth
        return out


def _effective(block: Block) -> tuple[np.ndarray, np.ndarray]:
    """The block's convolution as one (cout, cin, 3, 3) kernel and a bias (before the norm)."""
    w = block.conv.weight.detach().double().numpy()
    b = block.conv.bias.detach().double().numpy()
    if block.conv_type == "dws":
        d = block.dw.weight.detach().double().numpy()[:, 0]  # (cin, 3, 3)
        w = w[:, :, 0, 0][:, :, None, None] * d[None]
    return w, b


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
    return scale, bn.bias.detach().double().numpy() - bn.running_mean.detach().double().numpy() * scale


def _set(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(param.dtype).reshape(param.shape))


def inherit(teacher: StageNet, sub_arch: ArchSpec) -> StageNet:
    """A :class:`StageNet` for ``sub_arch`` initialised from ``teacher`` (see the module docstring)."""
    t_arch = teacher.arch
    if (len(sub_arch.stages) != len(t_arch.stages) or sub_arch.in_shape != t_arch.in_shape
            or sub_arch.classes != t_arch.classes):
        raise SpecError("sub-network", "must have the teacher's stages, input shape and classes")
    sub = StageNet(sub_arch)
    in_idx = np.arange(t_arch.in_shape[0])
    k = 0
    for ts, ss, tblocks, sblocks in zip(t_arch.stages, sub_arch.stages, teacher.stage_blocks(), sub.stage_blocks()):
        if ss.width > ts.width or ss.depth > ts.depth or ss.stride != ts.stride:
            raise SpecError("sub-network", f"stage {ss} is not a part of the teacher's stage {ts}")
        for tb, sb in zip(tblocks, sblocks):
            w, b = _effective(tb)
            if tb.bn is not None and sb.bn is None:  # fold the teacher's norm into the kernel
                scale, shift = _bn_affine(tb.bn)
                w, b = w * scale[:, None, None, None], b * scale + shift
            w = w[:, in_idx]
            out_idx = np.sort(np.argsort(-np.abs(w).sum(axis=(1, 2, 3)), kind="stable")[:ss.width])
            w, b = w[out_idx], b[out_idx]
            if sb.conv_type == "std":
                _set(sb.conv.weight, w)
            else:
                pw = np.zeros((len(out_idx), len(in_idx)))
                dw = np.zeros((len(in_idx), 3, 3))
                for i in range(len(in_idx)):
                    u, s, vt = np.linalg.svd(w[:, i].reshape(len(out_idx), 9), full_matrices=False)
                    r = math.sqrt(s[0])
                    pw[:, i], dw[i] = u[:, 0] * r, (vt[0] * r).reshape(3, 3)
                _set(sb.conv.weight, pw)
                _set(sb.dw.weight, dw)
            _set(sb.conv.bias, b)
            if sb.bn is not None:
                if tb.bn is not None:
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        _set(getattr(sb.bn, name), getattr(tb.bn, name).detach().double().numpy()[out_idx])
                else:
                    sub.new_norms.append(k + sblocks.index(sb))
            in_idx = out_idx
        k += ss.depth
    _set(sub.fc.weight, teacher.fc.weight.detach().double().numpy()[:, in_idx])
    _set(sub.fc.bias, teacher.fc.bias.detach().double().numpy())
    return sub.eval()


@torch.no_grad()
def calibrate_new_norms(net: StageNet, x: torch.Tensor) -> None:
    """Make every BatchNorm the teacher lacked the identity on ``x``: running mean and variance
    from the data, and an affine map that undoes them (so inheritance stays exact at the start)."""
    if not net.new_norms:
        return
    captured: dict[int, torch.Tensor] = {}
    hooks = [net.blocks[i].bn.register_forward_pre_hook(  # type: ignore[union-attr]
        lambda _m, inp, i=i: captured.__setitem__(i, inp[0].detach())) for i in net.new_norms]
    was_training = net.training
    net.eval()
    try:
        net(x)
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    for i in net.new_norms:
        bn = net.blocks[i].bn
        check(bn is not None and i in captured, "calibrating a block without a new BatchNorm")
        v = captured[i]
        mean, var = v.mean(dim=(0, 2, 3)), v.var(dim=(0, 2, 3), unbiased=False)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(mean)
    net.new_norms = []
