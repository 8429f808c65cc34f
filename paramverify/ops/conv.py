"""Convolution family: Conv (2-D, via im2col) and BatchNormalization (inference)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from paramverify.errors import CapabilityError, ModelError
from paramverify.ops.base import ROLE_BIAS, ROLE_STAT, ROLE_WEIGHT, Kernel, Op, is_const


@dataclasses.dataclass(frozen=True)
class Conv(Op):
    """2-D convolution, lowered to a gather (im2col) and one matmul per group."""

    auto_pad: str = "NOTSET"
    dilations: tuple[int, ...] = ()
    group: int = 1
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    op_type: ClassVar[str] = "Conv"
    input_roles: ClassVar[dict[int, str]] = {1: ROLE_WEIGHT, 2: ROLE_BIAS}
    arity: ClassVar[tuple[int, int]] = (2, 3)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x, w = inputs[0], inputs[1]
        n, c, h, wd = _four(k.shape(x), "Conv input")
        m, cg, kh, kw = _four(k.shape(w), "Conv weight")
        if cg * self.group != c:
            raise ModelError(f"Conv: weight expects {cg * self.group} input channels, got {c}")
        sh, sw = self.strides or (1, 1)
        dh, dw = self.dilations or (1, 1)
        pt, pl, pb, pr = self._pads(h, wd, kh, kw, sh, sw, dh, dw)
        x = k.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        hp, wp = h + pt + pb, wd + pl + pr
        ho = (hp - dh * (kh - 1) - 1) // sh + 1
        wo = (wp - dw * (kw - 1) - 1) // sw + 1
        # flat index of every (channel, ky, kx) x (oy, ox) tap inside one group
        ci, ky, kx = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
        oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
        rows = ky.reshape(-1, 1) * dh + oy.reshape(1, -1) * sh
        cols = kx.reshape(-1, 1) * dw + ox.reshape(1, -1) * sw
        base = ci.reshape(-1, 1) * (hp * wp) + rows * wp + cols  # [cg*kh*kw, ho*wo]
        flat = k.reshape(x, (n, c * hp * wp))
        mg = m // self.group
        outs = []
        for g in range(self.group):
            idx = base + g * cg * hp * wp
            patches = k.reshape(k.take(flat, idx.reshape(-1), axis=1), (n, cg * kh * kw, ho * wo))
            wg = k.take(k.reshape(w, (m, cg * kh * kw)), np.arange(g * mg, (g + 1) * mg), axis=0)
            outs.append(k.matmul(wg, patches))  # [n, mg, ho*wo]
        y = outs[0] if self.group == 1 else k.concat(outs, axis=1)
        y = k.reshape(y, (n, m, ho, wo))
        if len(inputs) > 2:
            y = k.add(y, k.reshape(inputs[2], (1, m, 1, 1)))
        return y

    def channel_axis(self, index: int, ndim: int) -> int | None:
        return 0 if index == 1 and ndim >= 2 else None

    def _pads(self, h: int, w: int, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> tuple[int, int, int, int]:
        if self.auto_pad in ("NOTSET", ""):
            p = self.pads or (0, 0, 0, 0)
            return p[0], p[1], p[2], p[3]
        if self.auto_pad == "VALID":
            return 0, 0, 0, 0
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = []
            for size, kk, s, d in ((h, kh, sh, dh), (w, kw, sw, dw)):
                total = max(0, (-(-size // s) - 1) * s + d * (kk - 1) + 1 - size)
                small, big = total // 2, total - total // 2
                out.append((small, big) if self.auto_pad == "SAME_UPPER" else (big, small))
            return out[0][0], out[1][0], out[0][1], out[1][1]
        raise ModelError(f"Conv: auto_pad '{self.auto_pad}' is not supported")


@dataclasses.dataclass(frozen=True)
class BatchNormalization(Op):
    """Inference-mode batch norm: (x - mean) / sqrt(var + eps) * scale + B.

    scale and B are parameters by default; mean may be perturbed when named;
    var may not (its square root is not lowered).
    """

    epsilon: float = 1e-5
    momentum: float = 0.9
    training_mode: int = 0

    op_type: ClassVar[str] = "BatchNormalization"
    input_roles: ClassVar[dict[int, str]] = {1: ROLE_WEIGHT, 2: ROLE_BIAS, 3: ROLE_STAT, 4: ROLE_STAT}
    arity: ClassVar[tuple[int, int]] = (5, 5)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if self.training_mode:
            raise ModelError("BatchNormalization: training_mode=1 is not supported; export in eval mode")
        x, scale, bias, mean, var = inputs
        if not is_const(var):
            raise CapabilityError("BatchNormalization: the running variance cannot be perturbed; perturb scale/B")
        nd = len(k.shape(x))
        bshape = (1, -1) + (1,) * (nd - 2)
        inv_std = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + self.epsilon)
        factor = k.mul(scale, inv_std)
        centred = k.sub(x, k.reshape(mean, _shape(k, mean, bshape)))
        y = k.mul(centred, k.reshape(factor, _shape(k, factor, bshape)))
        return k.add(y, k.reshape(bias, _shape(k, bias, bshape)))


def _shape(k: Kernel, a: Any, bshape: tuple[int, ...]) -> tuple[int, ...]:
    size = int(np.prod(k.shape(a)))
    return tuple(size if d == -1 else d for d in bshape)


def _four(shape: tuple[int, ...], what: str) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise ModelError(f"{what} must be 4-D (N, C, H, W); got shape {shape}; only 2-D convolution is supported")
    return shape[0], shape[1], shape[2], shape[3]


OPS: tuple[type[Op], ...] = (Conv, BatchNormalization)
