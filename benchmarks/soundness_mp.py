"""The extreme tier's reference (``soundness_extreme.py``): an independent evaluator in
mpmath with 50 significant digits, written out from a case's own weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import mpmath
import numpy as np

if TYPE_CHECKING:
    from soundness_extreme import XCase

#: significant digits of the reference evaluator, and the slack it is granted
DPS = 50
REL_TOL = 1e-25


def _act(name: str, z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        if name == "relu":
            return np.maximum(z, 0.0)
        if name == "leaky_relu":
            return np.where(z >= 0, z, 0.125 * z)
        if name == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        return np.tanh(z)


class MpNet:
    """The case's network in mpmath (independent of the engine's graph and kernels)."""

    def __init__(self, case: XCase) -> None:
        self.case = case

    def _layers(self, params: Mapping[str, np.ndarray] | None) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for i, (w, b) in enumerate(self.case.layers, 1):
            if params:
                w = np.asarray(params.get(f"W{i}", w), dtype=np.float64)
                b = np.asarray(params.get(f"b{i}", b), dtype=np.float64)
            out.append((w, b))
        return out

    def outputs(self, x: Sequence[float], params: Mapping[str, np.ndarray] | None = None) -> list[mpmath.mpf]:
        with mpmath.workdps(DPS):
            cur = [mpmath.mpf(float(v)) for v in np.asarray(x, dtype=np.float64).reshape(-1)]
            z: list[mpmath.mpf] = []
            layers = self._layers(params)
            for i, (w, b) in enumerate(layers):
                last = i == len(layers) - 1
                if last and self.case.skip and i > 0:
                    cur = cur + z
                z = [mpmath.fsum([mpmath.mpf(float(w[r, c])) * cur[c] for c in range(w.shape[1])]) + mpmath.mpf(float(b[r]))
                     for r in range(w.shape[0])]
                cur = z if last else [self._act(v) for v in z]
            return self._head(cur)

    def _act(self, z: mpmath.mpf) -> mpmath.mpf:
        a = self.case.activation
        if a == "relu":
            return z if z > 0 else mpmath.mpf(0)
        if a == "leaky_relu":
            return z if z >= 0 else z / 8
        if a == "sigmoid":
            return 1 / (1 + mpmath.exp(-z))
        return mpmath.tanh(z)

    def _head(self, y: list[mpmath.mpf]) -> list[mpmath.mpf]:
        if self.case.head == "sigmoid":
            return [1 / (1 + mpmath.exp(-v)) for v in y]
        if self.case.head == "softmax":
            m = max(y)
            e = [mpmath.exp(v - m) for v in y]
            s = mpmath.fsum(e)
            return [v / s for v in e]
        return y

    def float_outputs(self, x: np.ndarray, params: Mapping[str, np.ndarray] | None = None, preacts: list | None = None) -> np.ndarray:
        """A float64 evaluation (for searching boundary points only; never a reference)."""
        cur = np.asarray(x, dtype=np.float64).reshape(-1)
        z = cur
        layers = self._layers(params)
        for i, (w, b) in enumerate(layers):
            last = i == len(layers) - 1
            if last and self.case.skip and i > 0:
                cur = np.concatenate([cur, z])
            z = w @ cur + b
            if preacts is not None and not last:
                preacts.append(z)
            cur = z if last else _act(self.case.activation, z)
        with np.errstate(over="ignore"):
            if self.case.head == "sigmoid":
                return 0.5 * (1.0 + np.tanh(0.5 * cur))
            if self.case.head == "softmax":
                e = np.exp(cur - cur.max())
                return e / e.sum()
        return cur


def _tol(v: mpmath.mpf) -> mpmath.mpf:
    return REL_TOL * (1 + abs(v))


def _above(a: mpmath.mpf, b: mpmath.mpf) -> bool:
    """a > b beyond the reference's slack (computed with DPS digits)."""
    with mpmath.workdps(DPS):
        return bool(a - b > _tol(b))


def _label(y: list[mpmath.mpf], level: float) -> tuple[int, bool]:
    """(label, definite): definite unless a tie or the level is within the reference's slack."""
    if len(y) == 1:
        lv = mpmath.mpf(level)
        return int(y[0] >= lv), abs(y[0] - lv) > _tol(y[0])
    c = max(range(len(y)), key=lambda i: y[i])
    gap = min((y[c] - y[j] for j in range(len(y)) if j != c), default=mpmath.mpf(1))
    return c, gap > _tol(y[c])


def exact_flip(y0: list[mpmath.mpf], yp: list[mpmath.mpf], level: float) -> bool:
    """Does the perturbed output lose the nominal label, definitely (ties and near-ties are not flips)?"""
    with mpmath.workdps(DPS):
        c, sure = _label(y0, level)
        if not sure:
            return False
        if len(y0) == 1:
            d, sure_p = _label(yp, level)
            return sure_p and d != c
        return any(yp[j] - yp[c] > _tol(yp[c]) for j in range(len(yp)) if j != c)
