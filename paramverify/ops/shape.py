"""Shape ops (static shapes only): Identity, Flatten, Reshape, Concat, Constant."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from onnx import numpy_helper

from paramverify.errors import ModelError
from paramverify.ops.base import Kernel, Op, const_value


@dataclasses.dataclass(frozen=True)
class Identity(Op):
    op_type: ClassVar[str] = "Identity"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return inputs[0]


@dataclasses.dataclass(frozen=True)
class Flatten(Op):
    axis: int = 1
    op_type: ClassVar[str] = "Flatten"

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        shape = k.shape(inputs[0])
        axis = self.axis if self.axis >= 0 else self.axis + len(shape)
        return k.reshape(inputs[0], (math.prod(shape[:axis]), math.prod(shape[axis:])))


@dataclasses.dataclass(frozen=True)
class Reshape(Op):
    """ONNX Reshape.  ``batch_leading`` is set by the loader, never read from a file: on the
    Reshapes of a graph exported with a fixed batch of 1 that carry that batch in their
    leading dimension (the dynamo exporter writes targets such as ``[1, 64]``), the target is
    resolved for one input and its leading 1 replaced by the input's leading dimension, so a
    batch of inputs runs as that many batches of 1 would."""

    allowzero: int = 0
    batch_leading: bool = False
    op_type: ClassVar[str] = "Reshape"
    arity: ClassVar[tuple[int, int]] = (2, 2)

    @classmethod
    def from_onnx(cls, node: Any) -> Reshape:
        if any(a.name == "batch_leading" for a in node.attribute):
            raise ModelError(f"node '{node.name}' (Reshape): attribute 'batch_leading' is not an ONNX attribute")
        return super().from_onnx(node)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        in_shape = k.shape(inputs[0])
        target = [int(v) for v in const_value(inputs[1], "the shape input of Reshape")]
        if self.batch_leading and in_shape and target and target[0] == 1:
            batch, in_shape = in_shape[0], (1,) + tuple(in_shape[1:])
            resolved = self._resolve(in_shape, target)
            return k.reshape(inputs[0], (batch,) + tuple(resolved[1:]))
        return k.reshape(inputs[0], tuple(self._resolve(in_shape, target)))

    def _resolve(self, in_shape: Sequence[int], target: list[int]) -> list[int]:
        if not self.allowzero:
            target = [in_shape[i] if v == 0 else v for i, v in enumerate(target)]
        if target.count(-1) > 1:
            raise ModelError("Reshape: at most one -1 is allowed in the target shape")
        if -1 in target:
            known = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = math.prod(in_shape) // max(known, 1)
        if math.prod(target) != math.prod(in_shape):
            raise ModelError(f"Reshape: cannot reshape {tuple(in_shape)} to {tuple(target)}")
        return target


@dataclasses.dataclass(frozen=True)
class Concat(Op):
    axis: int = 0
    op_type: ClassVar[str] = "Concat"
    arity: ClassVar[tuple[int, int]] = (1, 1 << 16)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        return k.concat(list(inputs), self.axis)


@dataclasses.dataclass(frozen=True)
class Constant(Op):
    value: Any = None
    value_float: float | None = None
    value_floats: tuple[float, ...] | None = None
    value_int: int | None = None
    value_ints: tuple[int, ...] | None = None
    op_type: ClassVar[str] = "Constant"
    arity: ClassVar[tuple[int, int]] = (0, 0)

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:
        if self.value is not None:
            arr = numpy_helper.to_array(self.value)
            return arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        if self.value_float is not None:
            return np.asarray(float(self.value_float))
        if self.value_floats is not None:
            return np.asarray(self.value_floats, dtype=np.float64)
        if self.value_int is not None:
            return np.asarray(int(self.value_int), dtype=np.int64)
        if self.value_ints is not None:
            return np.asarray(self.value_ints, dtype=np.int64)
        raise ModelError("Constant: only the value, value_float(s) and value_int(s) attributes are supported")


OPS: tuple[type[Op], ...] = (Identity, Flatten, Reshape, Concat, Constant)
