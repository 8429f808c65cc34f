"""The intermediate form: a static, topologically ordered graph of typed ops.

``load_model`` lowers an ONNX file (or ``ModelProto``) to a :class:`Graph`.
Parameters are the graph's float initializers; each is tagged with the role
the consuming op gives it ("weight", "bias", "stat", "constant"), and the
default perturbation set is every weight and bias.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import onnx

from paramverify.errors import ModelError, SpecError, UnsupportedOpsError
from paramverify.heads import select_output
from paramverify.kernels.numeric import NumericKernel
from paramverify.modelcheck import (
    STANDARD_DOMAINS,
    check_float_values,
    check_input_size,
    check_structure,
    check_value_sizes,
    live_nodes,
    node_label,
    read_onnx,
    tensor_array,
)
from paramverify.ops import DEFAULT_PERTURBED_ROLES, Kernel, Op, OpRegistry, default_registry
from paramverify.ops.base import ROLE_CONSTANT

_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
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
        integer = [n for n in names if n in self.constants]
        if integer:
            raise SpecError(
                field,
                f"'{integer[0]}' is an integer initializer ({self.constants[integer[0]].dtype}); only float parameters can be perturbed",
                f"choose from: {', '.join(self.parameter_names)}",
            )
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



LEGACY_SOFTMAX_OPSET = 13  # Softmax/LogSoftmax normalise along one axis from this opset on


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
    check_structure(proto)  # the whole model's wiring, before anything walks it
    selection = select_output(proto, output)
    proto = selection.model
    order = check_structure(proto)
    g = proto.graph
    init_names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
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
    order = live_nodes(order, [g.output[0].name], inp.name)
    def lowered(n: onnx.NodeProto) -> bool:
        """A registered op of the node's own domain (a custom-domain Relu is not the standard one)."""
        op = registry.get(n.op_type)
        return op is not None and op.domain == ("" if n.domain in STANDARD_DOMAINS else n.domain)

    unsupported = [(f"{n.domain}::{n.op_type}" if n.domain not in STANDARD_DOMAINS else n.op_type, node_label(n, i))
                   for i, n in order if not lowered(n)]
    if unsupported:
        raise UnsupportedOpsError(unsupported, hint=_unsupported_hint(g, registry))
    floats: dict[str, np.ndarray] = {}
    ints: dict[str, np.ndarray] = {}
    dtypes: dict[str, np.dtype] = {}
    for init in g.initializer:
        arr = tensor_array(init, f"initializer '{init.name}'")
        dtypes[init.name] = arr.dtype
        if arr.dtype.kind == "f":
            check_float_values(arr, f"initializer '{init.name}'")
            floats[init.name] = arr.astype(np.float64)
        else:
            ints[init.name] = arr
    consumed = {i for _, n in order for i in n.input} | {o.name for o in g.output}
    opset = next((o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS), LEGACY_SOFTMAX_OPSET)
    legacy_softmax: set[str] = set()
    nodes: list[Node] = []
    roles: dict[str, str] = {}
    channel_axes: dict[str, int] = {}
    problems: list[str] = []
    for i, n in order:
        name = node_label(n, i)
        try:
            op = registry[n.op_type].from_onnx(n)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        if opset < LEGACY_SOFTMAX_OPSET and n.op_type in ("Softmax", "LogSoftmax") and n.domain in STANDARD_DOMAINS:
            legacy_softmax.add(name)  # opset < 13: axis 1 by default, and the trailing axes are flattened
            if not any(a.name == "axis" for a in n.attribute):
                op = dataclasses.replace(op, axis=1)  # type: ignore[call-arg]
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type in _FLOAT_TYPES:
                check_float_values(tensor_array(a.t, f"node '{name}'"), f"node '{name}' ({n.op_type}) attribute '{a.name}'")
        extra = [o for o in n.output[1:] if o and o in consumed]
        if extra:
            problems.append(f"node '{name}' ({n.op_type}): only the first output is supported")
        for idx, tensor in enumerate(n.input):
            if tensor in ints and op.role(idx) in DEFAULT_PERTURBED_ROLES:
                raise ModelError(
                    f"initializer '{tensor}' ({ints[tensor].dtype}) is the {op.role(idx)} of node '{name}' ({n.op_type}); "
                    "only float weights and biases can be verified: store it as float32"
                )
            if tensor in floats:
                axis = op.channel_axis(idx, floats[tensor].ndim)
                if axis is not None:
                    channel_axes.setdefault(tensor, axis)
                role = op.role(idx)
                if _ROLE_RANK[role] > _ROLE_RANK.get(roles.get(tensor, ROLE_CONSTANT), 0):
                    roles[tensor] = role
                roles.setdefault(tensor, role)
        nodes.append(Node(name, op, tuple(n.input), n.output[0]))
    if problems:
        raise ModelError("; ".join(problems))
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
    check_input_size(inp.name, shape)
    check_value_sizes(proto)
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
        _check_shapes(graph, legacy_softmax)
        if dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            graph = _batch_free(graph)
    except ModelError:
        raise
    except (ValueError, IndexError, TypeError) as exc:
        raise ModelError(f"the model's shapes do not fit together: {' '.join(str(exc).split())}") from exc
    except MemoryError as exc:
        raise ModelError(f"the model needs more memory than this machine has ({exc}); check its dimensions") from exc
    return graph


def _batch_free(graph: Graph) -> Graph:
    """A graph exported with a fixed batch of 1, made to run any batch: each Reshape that
    carries the batch in its leading dimension (1 in, 1 out, traced on one input) gets
    ``batch_leading`` (see :class:`paramverify.ops.shape.Reshape`)."""
    from paramverify.ops.shape import Reshape

    env: dict[str, Any] = dict(graph.initializers)
    env.update(graph.constants)
    env[graph.input_name] = graph.as_batch(np.zeros(graph.input_size))
    env[""] = None
    kernel = NumericKernel()
    nodes = []
    for node in graph.nodes:
        ins = [env[i] for i in node.inputs]
        if node.inputs and node.inputs[-1] == "":
            ins = ins[:-1]
        env[node.output] = node.op.apply(kernel, ins)
        if isinstance(node.op, Reshape) and np.shape(ins[0])[:1] == (1,) and np.shape(env[node.output])[:1] == (1,):
            node = Node(node.name, dataclasses.replace(node.op, batch_leading=True), node.inputs, node.output)
        nodes.append(node)
    return dataclasses.replace(graph, nodes=tuple(nodes))


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


def _check_shapes(graph: Graph, legacy_softmax: set[str] | frozenset[str] = frozenset()) -> None:
    """Evaluate once at zero input and check the shape rules numpy is laxer about than ONNX.

    Gemm takes 2-D ``A`` and ``B`` and a ``C`` that broadcasts to the ``(M, N)``
    result (numpy would also accept higher ranks and grow the result).
    """
    kernel = NumericKernel()
    env: dict[str, Any] = {**graph.initializers, **graph.constants, "": None}
    env[graph.input_name] = graph.as_batch(np.zeros(graph.input_size))
    for node in graph.nodes:
        ins = [env[i] for i in node.inputs]
        if node.inputs and node.inputs[-1] == "":
            ins = ins[:-1]
        if node.name in legacy_softmax:
            rank = np.ndim(ins[0])
            axis = getattr(node.op, "axis", -1)
            if rank and axis % rank != rank - 1:
                raise ModelError(
                    f"node '{node.name}' ({node.op.op_type}): under opset < {LEGACY_SOFTMAX_OPSET} it normalises over "
                    f"the axes {axis % rank}..{rank - 1} of its rank-{rank} input taken together, which is not lowered "
                    f"(only the last axis is); re-export with opset >= {LEGACY_SOFTMAX_OPSET}, or state the property on "
                    "the tensor before it with --output NAME")
        if node.op.op_type == "Gemm":
            a, b = np.shape(ins[0]), np.shape(ins[1])
            if len(a) != 2 or len(b) != 2:
                raise ModelError(f"node '{node.name}' (Gemm): A and B must be 2-D matrices, got shapes {a} and {b}; "
                                 "insert a Flatten before it or use MatMul")
            if len(ins) > 2 and ins[2] is not None:
                mn = (a[1] if getattr(node.op, "transA", 0) else a[0], b[0] if getattr(node.op, "transB", 0) else b[1])
                c = np.shape(ins[2])
                if len(c) > 2 or any(ci not in (1, m) for ci, m in zip(c[::-1], mn[::-1])):
                    raise ModelError(f"node '{node.name}' (Gemm): C of shape {c} does not broadcast to the result "
                                     f"{mn}; give the bias shape (N,) or (1, N)")
        env[node.output] = node.op.apply(kernel, ins)
    y = env[graph.output_name]
    if y is None or not np.all(np.isfinite(y)):
        raise ModelError(f"output '{graph.output_name}' is not finite at input 0 (an overflow or a division by zero "
                         "in the model); check its constants")


def read_model(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """The ONNX proto and its source name (ModelError for a missing or unreadable file)."""
    return _read(model)


def _read(model: str | os.PathLike[str] | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, "<memory>"
    path = os.fspath(model)
    proto = read_onnx(path)
    if not proto.graph.node:
        raise ModelError(f"'{path}' holds no graph nodes; is it really an ONNX model?")
    return proto, path
