"""Tensor plumbing: Transpose, Squeeze, Unsqueeze, Gather, Slice, Shape,
ConstantOfShape, Cast, Dropout, Expand.

Shapes are static in the IR, so ``Shape`` yields a numpy constant in every
kernel and the shape arithmetic exporters emit (Shape -> Gather ->
Unsqueeze -> Concat -> Reshape, ConstantOfShape, integer Cast) runs on
numpy values: it folds away at run time without a separate folder, and
follows the run's real batch size.  On data tensors these ops are exact
rearrangements (reshape / transpose / take).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx import helper, numpy_helper

from paramverify.errors import CapabilityError, ModelError
from paramverify.ops.base import Kernel, Op, const_value, is_const

_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


def _axes(attr: tuple[int, ...], inputs: Sequence[Any], index: int, what: str) -> tuple[int, ...] | None:
    """Axes from an attribute (old opsets) or a constant input (opset >= 13/18)."""
    if len(inputs) > index and inputs[index] is not None:
        return tuple(int(v) for v in np.asarray(const_value(inputs[index], f"the axes of {what}")).reshape(-1))
    return attr or None


@dataclasses.dataclass(frozen=True)
class Transpose(Op):
    perm: tuple[int, ...] = ()
    op_type: ClassVar[str] = "Transpose"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        nd = len(k.shape(inputs[0]))
        perm = self.perm or tuple(reversed(range(nd)))
        return k.transpose(inputs[0], tuple(p % nd for p in perm))


@dataclasses.dataclass(frozen=True)
class Squeeze(Op):
    axes: tuple[int, ...] = ()
    op_type: ClassVar[str] = "Squeeze"
    arity: ClassVar[tuple[int, int]] = (1, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        shape = k.shape(inputs[0])
        axes = _axes(self.axes, inputs, 1, "Squeeze")
        drop = {a % len(shape) for a in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        if any(shape[a] != 1 for a in drop):
            raise ModelError(f"Squeeze: axes {sorted(drop)} of shape {shape} are not all 1")
        return k.reshape(inputs[0], tuple(d for i, d in enumerate(shape) if i not in drop))


@dataclasses.dataclass(frozen=True)
class Unsqueeze(Op):
    axes: tuple[int, ...] = ()
    op_type: ClassVar[str] = "Unsqueeze"
    arity: ClassVar[tuple[int, int]] = (1, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        shape = list(k.shape(inputs[0]))
        axes = _axes(self.axes, inputs, 1, "Unsqueeze")
        if not axes:
            raise ModelError("Unsqueeze: no axes given")
        rank = len(shape) + len(axes)
        for a in sorted(a % rank for a in axes):
            shape.insert(a, 1)
        return k.reshape(inputs[0], tuple(shape))


@dataclasses.dataclass(frozen=True)
class Gather(Op):
    """Gather with constant indices (negative indices count from the end)."""

    axis: int = 0
    op_type: ClassVar[str] = "Gather"
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        shape = k.shape(inputs[0])
        axis = self.axis % len(shape)
        idx = np.asarray(const_value(inputs[1], "the indices of Gather")).astype(np.int64)
        if np.any((idx < -shape[axis]) | (idx >= shape[axis])):
            raise ModelError(f"Gather: index out of range for axis {axis} of size {shape[axis]}")
        return k.take(inputs[0], idx % shape[axis], axis)


@dataclasses.dataclass(frozen=True)
class Slice(Op):
    """Slice with constant starts/ends/axes/steps (inputs, or attributes before opset 10)."""

    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()
    axes: tuple[int, ...] = ()
    op_type: ClassVar[str] = "Slice"
    arity: ClassVar[tuple[int, int]] = (1, 5)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x = inputs[0]
        shape = k.shape(x)

        def vec(i: int, default: Any) -> list[int]:
            if len(inputs) > i and inputs[i] is not None:
                return [int(v) for v in np.asarray(const_value(inputs[i], "a Slice bound")).reshape(-1)]
            return list(default)

        starts = vec(1, self.starts)
        ends = vec(2, self.ends)
        axes = vec(3, self.axes or range(len(starts)))
        steps = vec(4, [1] * len(starts))
        for s, e, a, st in zip(starts, ends, axes, steps):
            a %= len(shape)
            if st == 0:
                raise ModelError("Slice: a step of 0")
            idx = np.arange(*slice(s, e, st).indices(shape[a]), dtype=np.int64)
            if len(idx) != shape[a] or st != 1:
                x = k.take(x, idx, a)
        return x


@dataclasses.dataclass(frozen=True)
class Shape(Op):
    """The (static) shape as an int64 constant; ``start``/``end`` as in opset 15."""

    start: int = 0
    end: int = 1 << 30
    op_type: ClassVar[str] = "Shape"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return np.asarray(k.shape(inputs[0]), dtype=np.int64)[self.start : self.end]


@dataclasses.dataclass(frozen=True)
class ConstantOfShape(Op):
    value: Any = None
    op_type: ClassVar[str] = "ConstantOfShape"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        shape = tuple(int(v) for v in np.asarray(const_value(inputs[0], "the shape of ConstantOfShape")).reshape(-1))
        v = numpy_helper.to_array(self.value).reshape(-1)[0] if self.value is not None else np.float32(0)
        arr = np.full(shape, v)
        return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


@dataclasses.dataclass(frozen=True)
class Cast(Op):
    """Float-to-float Cast is the identity (the IR computes in reals); any Cast of a constant folds.

    A data tensor cast to an integer, bool or 16-bit float type changes its
    value in a way no bound kernel follows: that raises CapabilityError (a
    trailing label Cast is skipped with the classifier head before this runs).
    """

    to: int = onnx.TensorProto.FLOAT
    saturate: int = 1
    round_mode: str = "up"
    op_type: ClassVar[str] = "Cast"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x = inputs[0]
        if self.to in _FLOAT_TYPES:
            return np.asarray(x).astype(np.float64) if is_const(x) else x
        if is_const(x):
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(self.to))
            out = np.asarray(x).astype(dtype)
            return out.astype(np.float64) if dtype.kind == "f" else out
        name = onnx.TensorProto.DataType.Name(self.to)
        raise CapabilityError(
            f"op Cast to {name} of a data tensor: no bound kernel follows it (float-to-float casts are the identity); "
            "choose the tensor before it with --output NAME"
        )


@dataclasses.dataclass(frozen=True)
class Dropout(Op):
    """Inference-mode dropout: the identity (training_mode must be absent or false)."""

    seed: int = 0
    ratio: float = 0.5
    is_test: int = 1
    op_type: ClassVar[str] = "Dropout"
    arity: ClassVar[tuple[int, int]] = (1, 3)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if len(inputs) > 2 and inputs[2] is not None and bool(np.asarray(const_value(inputs[2], "training_mode of Dropout")).reshape(-1)[0]):
            raise ModelError("Dropout: training_mode=true is not supported; export the model in eval mode")
        return inputs[0]


@dataclasses.dataclass(frozen=True)
class Expand(Op):
    """Broadcast a constant to a constant shape (data tensors: only when the shape is unchanged)."""

    op_type: ClassVar[str] = "Expand"
    arity: ClassVar[tuple[int, int]] = (2, 2)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        x = inputs[0]
        shape = tuple(int(v) for v in np.asarray(const_value(inputs[1], "the shape of Expand")).reshape(-1))
        if is_const(x):
            return np.asarray(x) * np.ones(shape, dtype=np.asarray(x).dtype)
        out = np.broadcast_shapes(k.shape(x), shape)
        if out != k.shape(x):
            raise CapabilityError(f"op Expand of a data tensor from {k.shape(x)} to {out} is not supported")
        return x


OPS: tuple[type[Op], ...] = (Transpose, Squeeze, Unsqueeze, Gather, Slice, Shape, ConstantOfShape, Cast, Dropout, Expand)
