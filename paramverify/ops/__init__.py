"""Explicit, immutable registry of ONNX op lowerings.

One module per op family (``linear``, ``activation``, ``shape``, ``conv``,
``tensor``, ``pool``; ``quant`` holds the activation rounding of int8 models).
Ops can be added from outside without touching global state::

    registry = default_registry().with_ops(MyOp)
    graph = load_model("m.onnx", registry=registry)

A custom op is a frozen dataclass subclassing :class:`Op` with a class-level
``op_type`` and an ``apply(kernel, inputs)`` written against :class:`Kernel`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from paramverify.ops import activation, conv, linear, pool, quant, shape, tensor
from paramverify.ops.base import DEFAULT_PERTURBED_ROLES, Kernel, Op, is_const


class OpRegistry(Mapping[str, type[Op]]):
    """A read-only mapping ``op_type -> Op class``; ``with_ops`` returns a new one."""

    def __init__(self, ops: Mapping[str, type[Op]]) -> None:
        self._ops = MappingProxyType(dict(ops))

    def __getitem__(self, op_type: str) -> type[Op]:
        return self._ops[op_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def with_ops(self, *ops: type[Op]) -> OpRegistry:
        """A new registry with ``ops`` added (replacing same-named ones)."""
        merged = dict(self._ops)
        for op in ops:
            if not op.op_type:
                raise TypeError(f"{op.__name__} must set the class attribute op_type")
            merged[op.op_type] = op
        return OpRegistry(merged)


def default_registry() -> OpRegistry:
    """The built-in lowerings of every supported ONNX op."""
    return OpRegistry({}).with_ops(*linear.OPS, *activation.OPS, *shape.OPS, *conv.OPS, *tensor.OPS, *pool.OPS, *quant.OPS)


__all__ = ["DEFAULT_PERTURBED_ROLES", "Kernel", "Op", "OpRegistry", "default_registry", "is_const"]
