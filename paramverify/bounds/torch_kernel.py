"""A Kernel over torch float64 tensors (autograd and ``torch.func.vmap`` friendly).

Used only to *search* (the batched falsifier in :mod:`paramverify.bounds.pgd`);
nothing it computes is trusted as a proof.  Needs the optional torch
dependency; importing this module without torch raises ImportError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _t(a: Any) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


class TorchKernel:
    """Every Kernel primitive as a torch op; numpy constants become float64 tensors."""

    def shape(self, a: Any) -> tuple[int, ...]:
        return tuple(a.shape) if isinstance(a, torch.Tensor) else tuple(np.shape(a))

    def add(self, a: Any, b: Any) -> Any:
        return _t(a) + _t(b)

    def sub(self, a: Any, b: Any) -> Any:
        return _t(a) - _t(b)

    def mul(self, a: Any, b: Any) -> Any:
        return _t(a) * _t(b)

    def div(self, a: Any, b: np.ndarray) -> Any:
        return _t(a) / _t(b)

    def neg(self, a: Any) -> Any:
        return -_t(a)

    def matmul(self, a: Any, b: Any) -> Any:
        return torch.matmul(_t(a), _t(b))

    def relu(self, a: Any) -> Any:
        return torch.relu(_t(a))

    def leaky_relu(self, a: Any, alpha: float) -> Any:
        ta = _t(a)
        return torch.where(ta >= 0, ta, ta * alpha)

    def sigmoid(self, a: Any) -> Any:
        return torch.sigmoid(_t(a))

    def tanh(self, a: Any) -> Any:
        return torch.tanh(_t(a))

    def softmax(self, a: Any, axis: int) -> Any:
        return torch.softmax(_t(a), dim=axis)

    def log_softmax(self, a: Any, axis: int) -> Any:
        return torch.log_softmax(_t(a), dim=axis)

    def erf(self, a: Any) -> Any:
        return torch.special.erf(_t(a))

    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any:
        return _t(a).reshape(tuple(int(s) for s in shape))

    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any:
        return _t(a).permute(tuple(int(p) for p in perm))

    def concat(self, values: Sequence[Any], axis: int) -> Any:
        return torch.cat([_t(v) for v in values], dim=axis)

    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any:
        ta = _t(a)
        idx = np.asarray(indices)
        ax = axis % ta.dim()
        out = torch.index_select(ta, ax, torch.as_tensor(idx.reshape(-1).astype(np.int64)))
        return out.reshape(tuple(ta.shape[:ax]) + idx.shape + tuple(ta.shape[ax + 1 :]))

    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any:
        flat: list[int] = []
        for before, after in reversed(tuple(pad_width)):
            flat += [int(before), int(after)]
        return F.pad(_t(a), flat)
