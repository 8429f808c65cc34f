"""The contract between ONNX op lowerings and the arithmetic they run on.

Every op is written once, against :class:`Kernel`.  A kernel decides what a
value *is*: a float64 array (evaluation), an interval (sound bounds), a
(nominal, perturbed, difference) triple (differential bounds), or an array
of solver terms (SMT encodings).  Plain ``numpy.ndarray`` operands are
always constants and every kernel must accept them.

An op is a frozen dataclass whose fields are its ONNX attributes, typed
(tinygrad's ``Gemm(alpha, beta, transA, transB)`` style);
:meth:`Op.from_onnx` fills them from a ``NodeProto`` and rejects attributes
it does not know.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import onnx
from onnx import helper

from paramverify.errors import ModelError

V = TypeVar("V")

#: Roles an op assigns to its initializer inputs.  "weight" and "bias" are
#: perturbed by default; "stat" (BatchNorm running statistics) and "constant"
#: (normalisation constants, shapes) only when a spec names them.
ROLE_WEIGHT = "weight"
ROLE_BIAS = "bias"
ROLE_STAT = "stat"
ROLE_CONSTANT = "constant"
DEFAULT_PERTURBED_ROLES = frozenset({ROLE_WEIGHT, ROLE_BIAS})


@runtime_checkable
class Kernel(Protocol):
    """Primitive arithmetic every value representation provides.

    Shapes follow numpy broadcasting.  ``div`` requires a constant divisor;
    ``take``/``pad``/``reshape``/``transpose``/``concat`` are linear and exact
    in every kernel.  A kernel that cannot hold a primitive names it, with the
    reason, in its class attribute ``UNSUPPORTED`` (see :data:`PRIMITIVES`).
    """

    def shape(self, a: Any) -> tuple[int, ...]: ...
    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: np.ndarray) -> Any: ...
    def neg(self, a: Any) -> Any: ...
    def matmul(self, a: Any, b: Any) -> Any: ...
    def relu(self, a: Any) -> Any: ...
    def leaky_relu(self, a: Any, alpha: float) -> Any: ...
    def sigmoid(self, a: Any) -> Any: ...
    def tanh(self, a: Any) -> Any: ...
    def softmax(self, a: Any, axis: int) -> Any: ...
    def log_softmax(self, a: Any, axis: int) -> Any: ...
    def erf(self, a: Any) -> Any: ...
    def reshape(self, a: Any, shape: tuple[int, ...]) -> Any: ...
    def transpose(self, a: Any, perm: tuple[int, ...]) -> Any: ...
    def concat(self, values: Sequence[Any], axis: int) -> Any: ...
    def take(self, a: Any, indices: np.ndarray, axis: int) -> Any: ...
    def pad(self, a: Any, pad_width: tuple[tuple[int, int], ...]) -> Any: ...


#: the primitives of :class:`Kernel`.  Every kernel class implements each of them or
#: lists it in its ``UNSUPPORTED`` table (primitive -> reason), and then raises
#: ``CapabilityError`` with that reason; ``tests/test_kernel_contract.py`` checks this
#: for every kernel, so a new primitive cannot be forgotten in one of them.
PRIMITIVES: tuple[str, ...] = tuple(
    name for name, v in vars(Kernel).items() if callable(v) and not name.startswith("_")
)


def is_const(a: Any) -> bool:
    """Plain numpy arrays (and Python scalars) are constants in every kernel."""
    return isinstance(a, (np.ndarray, np.generic, int, float))


_T = TypeVar("_T", bound="Op")


@dataclasses.dataclass(frozen=True)
class Op:
    """Base of every op lowering; subclasses are frozen dataclasses of attributes."""

    op_type: ClassVar[str] = ""
    #: the ONNX domain of the op ("" is the standard domain, also written "ai.onnx")
    domain: ClassVar[str] = ""
    #: input index -> role, for inputs that are usually initializers
    input_roles: ClassVar[dict[int, str]] = {}
    #: (min, max) number of inputs
    arity: ClassVar[tuple[int, int]] = (1, 1)

    @classmethod
    def from_onnx(cls: type[_T], node: onnx.NodeProto) -> _T:
        """Build the op from a node, converting attributes to the typed fields."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for attr in node.attribute:
            if attr.name not in fields:
                raise ModelError(
                    f"node '{node.name}' ({node.op_type}): attribute '{attr.name}' is not supported "
                    f"(supported: {', '.join(fields) or 'none'})"
                )
            value = helper.get_attribute_value(attr)
            try:
                kwargs[attr.name] = _coerce(value, fields[attr.name].default)
            except (TypeError, ValueError) as exc:
                raise ModelError(
                    f"node '{node.name}' ({node.op_type}): attribute '{attr.name}' {exc}; re-export the model"
                ) from exc
        lo, hi = cls.arity
        if not lo <= len(node.input) <= hi:
            raise ModelError(
                f"node '{node.name}' ({node.op_type}) has {len(node.input)} inputs; expected {lo}..{hi}"
            )
        return cls(**kwargs)

    def role(self, index: int) -> str:
        return self.input_roles.get(index, ROLE_CONSTANT)

    def channel_axis(self, index: int, ndim: int) -> int | None:
        """The output-channel axis of weight input ``index`` (``ndim`` dims), or None.

        Per-channel quantization gives each slice along it one scale;
        onnxruntime's convention: Conv axis 0, Gemm axis 0 with transB=1
        (else 1), MatMul's right operand its last axis.
        """
        return None

    def apply(self, k: Kernel, inputs: Sequence[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def _coerce(value: Any, default: Any) -> Any:
    """Convert an ONNX attribute value to the type of the field's default.

    Raises ``TypeError``/``ValueError`` (turned into a one-line ModelError by the
    caller) for a value of the wrong kind: a string or list where a number belongs,
    a fractional integer flag, a NaN or infinite coefficient.
    """
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float, np.number)) for v in value):
            raise TypeError(f"must be a list of numbers, got {_show(value)}")
        return tuple(int(v) if isinstance(v, (int, np.integer)) else float(v) for v in value)
    if isinstance(default, (bool, int)):
        if not isinstance(value, (int, np.integer)):
            raise TypeError(f"must be an integer, got {_show(value)}")
        return bool(value) if isinstance(default, bool) else int(value)
    if isinstance(default, float):
        if not isinstance(value, (int, float, np.number)):
            raise TypeError(f"must be a number, got {_show(value)}")
        if not np.isfinite(value):
            raise ValueError(f"must be finite, got {value!r}")
        return float(value)
    return value


def _show(value: Any) -> str:
    """A short one-line description of an attribute value for error messages."""
    if isinstance(value, (int, float, str, np.number)):
        return repr(value)[:40]
    if isinstance(value, (list, tuple)) and len(value) <= 8 and all(isinstance(v, (int, float, str)) for v in value):
        return repr(list(value))
    return f"a {type(value).__name__}"


def const_value(a: Any, what: str) -> np.ndarray:
    """Return ``a`` as a numpy constant or raise a clear error if it varies."""
    if not is_const(a):
        raise ModelError(f"{what} must be a constant (it may not be a perturbed parameter)")
    return np.asarray(a)
