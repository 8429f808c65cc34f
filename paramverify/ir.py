"""The intermediate form: a static, topologically ordered graph of typed ops.

``load_model`` lowers an ONNX file (or ``ModelProto``) to a :class:`Graph`.
Parameters are the graph's float initializers; each is tagged with the role
the consuming op gives it ("weight", "bias", "stat", "constant"), and the
default perturbation set is every weight and bias.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from paramverify.errors import ModelError, SpecError, UnsupportedOpsError
from paramverify.heads import select_output
from paramverify.kernels.numeric import NumericKernel
from paramverify.ops import DEFAULT_PERTURBED_ROLES, Kernel, Op, OpRegistry, default_registry
from paramverify.ops.base import ROLE_CONSTANT

_ROLE_RANK = {"weight": 3, "bias": 2, "stat": 1, ROLE_CONSTANT: 0}


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True, eq=False)
class Graph:
    """A lowered model: one data input, one output, named initializers."""

    nodes: tuple[Node, ...]
    input_name: str
    input_shape: tuple[int, ...]  # including the batch dimension (1 where symbolic)
    output_name: str
    initializers: Mapping[str, np.ndarray]  # float initializers as float64
    dtypes: Mapping[str, np.dtype]  # the initializers' dtypes in the ONNX file
    roles: Mapping[str, str]
    model: onnx.ModelProto
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)  # integer initializers (shapes)
    source: str = "<memory>"
    #: output-channel axis of each weight, from its consumer (onnxruntime's per-channel convention)
    channel_axes: Mapping[str, int] = field(default_factory=dict)
    #: how the output was chosen when it is not the model's own (classifier head skipped, --output)
    note: str = ""
    #: (float, int8) ONNX models onnxruntime replays instead of ``model`` (an int8 lowering, paramverify.quantized)
    replay_models: tuple[onnx.ModelProto, onnx.ModelProto] | None = None

    # ------------------------------------------------------------------ inputs
    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.input_shape[1:]

    @property
    def input_size(self) -> int:
        return math.prod(self.sample_shape)

    def as_batch(self, x: Any, field: str = "x0") -> np.ndarray:
        """Reshape a flat vector (or a batch of them) to the model's input shape."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim <= 1 or arr.shape == self.sample_shape:
            arr = arr.reshape(1, -1)
        arr = arr.reshape(arr.shape[0], -1)
        if arr.shape[1] != self.input_size:
            raise SpecError(
                field,
                f"has {arr.shape[1]} values but the model input '{self.input_name}' takes {self.input_size}",
                f"give {self.input_size} comma-separated numbers",
            )
        return arr.reshape((arr.shape[0],) + self.sample_shape)

    # -------------------------------------------------------------- parameters
    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Every float initializer, in graph order."""
        return tuple(self.initializers)

    def default_parameters(self) -> tuple[str, ...]:
        """The initializers perturbed when a spec names none: weights and biases."""
        return tuple(n for n in self.initializers if self.roles.get(n) in DEFAULT_PERTURBED_ROLES)

    def check_parameters(self, names: Any, field: str = "params") -> tuple[str, ...]:
        names = tuple(names)
        missing = [n for n in names if n not in self.initializers]
        if missing:
            raise SpecError(
                field,
                f"the model has no parameter named {', '.join(repr(m) for m in missing)}",
                f"choose from: {', '.join(self.parameter_names)}",
            )
        return names

    # -------------------------------------------------------------- evaluation
    def run(self, kernel: Kernel, x: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Run the graph on ``kernel``; ``params`` override initializers by name."""
        env: dict[str, Any] = dict(self.initializers)
        env.update(self.constants)
        if params:
            env.update(params)
        env[self.input_name] = x
        env[""] = None
        for node in self.nodes:
            ins = [env[i] for i in node.inputs]
            if node.inputs and node.inputs[-1] == "":
                ins = ins[:-1]
            env[node.output] = node.op.apply(kernel, ins)
        return env[self.output_name]

    def evaluate(self, x: Any, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Float64 outputs for a batch of inputs, shape ``[N, n_outputs]``."""
        y = self.run(NumericKernel(), self.as_batch(x), params)
        return np.asarray(y, dtype=np.float64).reshape(np.shape(y)[0], -1)

    @property
    def n_outputs(self) -> int:
        return int(self.evaluate(np.zeros(self.input_size)).shape[1])



def load_model(
    model: str | os.PathLike[str] | onnx.ModelProto,
    registry: OpRegistry | None = None,
    output: str | None = None,
) -> Graph:
    """Lower an ONNX model to a :class:`Graph`.

    The property is stated on ``output`` when given, else on the model's
    output with a trailing classifier head skipped (see
    :mod:`paramverify.heads`); only the nodes computing it are lowered.
    Raises :class:`ModelError` for a missing or malformed file and
    :class:`UnsupportedOpsError` listing *every* unsupported node at once.
    """
    registry = registry if registry is not None else default_registry()
    proto, source = _read(model)
    selection = select_output(proto, output)
    proto = selection.model
    g = proto.graph
    floats: dict[str, np.ndarray] = {}
    ints: dict[str, np.ndarray] = {}
    dtypes: dict[str, np.dtype] = {}
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        dtypes[init.name] = arr.dtype
        if arr.dtype.kind == "f":
            floats[init.name] = arr.astype(np.float64)
        else:
            ints[init.name] = arr
    unsupported = [(n.op_type, n.name or f"#{i}") for i, n in enumerate(g.node) if n.op_type not in registry]
    if unsupported:
        raise UnsupportedOpsError(unsupported, hint=_unsupported_hint(g, registry))
    consumed = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    nodes: list[Node] = []
    roles: dict[str, str] = {}
    channel_axes: dict[str, int] = {}
    problems: list[str] = []
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        try:
            op = registry[n.op_type].from_onnx(n)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        extra = [o for o in n.output[1:] if o and o in consumed]
        if extra:
            problems.append(f"node '{name}' ({n.op_type}): only the first output is supported")
        for idx, inp in enumerate(n.input):
            if inp in floats:
                axis = op.channel_axis(idx, floats[inp].ndim)
                if axis is not None:
                    channel_axes.setdefault(inp, axis)
                role = op.role(idx)
                if _ROLE_RANK[role] > _ROLE_RANK.get(roles.get(inp, ROLE_CONSTANT), 0):
                    roles[inp] = role
                roles.setdefault(inp, role)
        nodes.append(Node(name, op, tuple(n.input), n.output[0]))
    if problems:
        raise ModelError("; ".join(problems))
    inputs = [i for i in g.input if i.name not in floats and i.name not in ints]
    if len(inputs) != 1:
        raise ModelError(
            f"the model must have exactly one data input; it has {len(inputs)} "
            f"({', '.join(i.name for i in inputs) or 'none'})"
        )
    if len(g.output) != 1:
        raise ModelError(
            f"the model must have exactly one output; it has {len(g.output)} "
            f"({', '.join(o.name for o in g.output)})"
        )
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    if not dims:
        raise ModelError(f"input '{inp.name}' has no static shape; export the model with a fixed input shape")
    shape = []
    for j, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif j == 0:
            shape.append(1)
        else:
            raise ModelError(f"input '{inp.name}' has a symbolic dimension {j}; only the batch dimension may be symbolic")
    graph = Graph(
        nodes=tuple(nodes),
        input_name=inp.name,
        input_shape=tuple(shape),
        output_name=g.output[0].name,
        initializers=MappingProxyType(floats),
        dtypes=MappingProxyType(dtypes),
        roles=MappingProxyType({k: roles.get(k, ROLE_CONSTANT) for k in floats}),
        model=proto,
        constants=MappingProxyType(ints),
        source=source,
        channel_axes=MappingProxyType(channel_axes),
        note=selection.note if output is None else f"property stated on the tensor '{selection.output}' (--output)",
    )
    try:
        graph.evaluate(np.zeros(graph.input_size))
    except ModelError:
        raise
    except (ValueError, IndexError) as exc:
        raise ModelError(f"the model's shapes do not fit together: {exc}") from exc
    return graph


_CONTROL_FLOW = ("If", "Loop", "Scan", "SequenceMap")


def _unsupported_hint(g: onnx.GraphProto, registry: OpRegistry) -> str:
    """What would help, for the unsupported ops of ``g``."""
    from paramverify.ops import ml

    ops = {n.op_type for n in g.node if n.op_type not in registry}
    tips = []
    if ops & set(_CONTROL_FLOW):
        tips.append("control flow is not supported (If/Loop/Scan): export a model without it")
    for n in g.node:
        if n.op_type in ml.ML_OPS:
            reason = ml.unsupported_reason(n)
            if reason:
                tips.append(f"{n.op_type}: {reason}")
    if "Normalizer" in ops:
        tips.append("Normalizer divides by a norm of its input, which no bound kernel follows")
    tips.append(
        "if they come after the scores, state the property on an earlier tensor with --output NAME; "
        "or export with another opset (13-20)"
    )
    tips.append(f"supported ops: {', '.join(sorted(registry))}; custom ops can be added with default_registry().with_ops(...)")
    return "; ".join(tips)


def read_model(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """The ONNX proto and its source name (ModelError for a missing or unreadable file)."""
    return _read(model)


def _read(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, "<memory>"
    path = os.fspath(model)
    if not os.path.exists(path):
        raise ModelError(f"model file '{path}' not found; pass the path to an .onnx file")
    if os.path.isdir(path):
        raise ModelError(f"'{path}' is a directory; pass the path to an .onnx file")
    try:
        proto = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for garbage
        raise ModelError(f"'{path}' is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    if not proto.graph.node:
        raise ModelError(f"'{path}' holds no graph nodes; is it really an ONNX model?")
    return proto, path
