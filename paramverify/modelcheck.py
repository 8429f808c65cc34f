"""Structural checks of an ONNX model, run before it is lowered or converted.

Each check raises :class:`~paramverify.errors.ModelError` with one line that
names the offending node, tensor or field and says how to fix it, so that a
malformed model never ends in a traceback (or, worse, in a silently wrong
answer: a custom-domain ``Relu`` taken for the standard one, a NaN weight
turned into an empty parameter box, an integer weight perturbed as a float).

Used by :func:`paramverify.ir.load_model` and by the smoothing converter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto
from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model

from paramverify.errors import ModelError

#: The most elements one tensor (the input, an initializer, an intermediate
#: value) may have: 1e8 float64 values are 800 MB, far beyond what any of the
#: engines can verify, so a larger size is a typo in the model (or a model this
#: tool cannot handle) and is refused before anything is allocated.
MAX_ELEMENTS = 10**8

STANDARD_DOMAINS = ("", "ai.onnx")


def node_label(node: onnx.NodeProto, index: int) -> str:
    """How errors name a node: its name, or ``Op_index`` when it has none."""
    return node.name or f"{node.op_type}_{index}"


# ---------------------------------------------------------------------- reading
def read_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX file, checking external-data references before reading them."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"model file '{path}' not found; pass the path to an .onnx file")
    if os.path.isdir(path):
        raise ModelError(f"'{path}' is a directory; pass the path to an .onnx file")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for garbage
        raise ModelError(f"'{path}' is not a readable ONNX model ({type(exc).__name__}: {_one_line(exc)})") from exc
    base = os.path.dirname(os.path.abspath(path))
    external = False
    for tensor, owner in _tensors(proto):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        external = True
        _check_external(tensor, owner, base)
    if external:
        try:
            load_external_data_for_model(proto, base)
        except Exception as exc:  # onnx raises ValidationError, OSError, ... for bad references
            raise ModelError(f"cannot read the external data of '{path}' ({_one_line(exc)}); "
                             "re-save the model with its data files next to it") from exc
    return proto


def _tensors(proto: onnx.ModelProto) -> Iterable[tuple[TensorProto, str]]:
    for t in proto.graph.initializer:
        yield t, f"initializer '{t.name}'"
    for i, n in enumerate(proto.graph.node):
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t, f"node '{node_label(n, i)}' ({n.op_type}) attribute '{a.name}'"


def _check_external(tensor: TensorProto, owner: str, base: str) -> None:
    try:
        location = ExternalDataInfo(tensor).location
    except Exception as exc:  # malformed external_data entries
        raise ModelError(f"{owner}: malformed external-data reference ({_one_line(exc)}); re-save the model") from exc
    if not location:
        raise ModelError(f"{owner}: external data without a file location; re-save the model")
    full = os.path.realpath(os.path.join(base, location))
    root = os.path.realpath(base)
    if os.path.isabs(location) or os.path.commonpath([full, root]) != root:
        raise ModelError(f"{owner}: its external data file '{location}' lies outside the model's folder '{base}'; "
                         "move the file next to the model and re-save it with a relative location")
    if not os.path.isfile(full):
        raise ModelError(f"{owner}: external data file '{location}' is missing from '{base}'; "
                         "copy it next to the model")


def tensor_array(tensor: TensorProto, owner: str) -> np.ndarray:
    """``numpy_helper.to_array`` with a one-line error for corrupt tensors."""
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # truncated raw data, unknown dtype, ...
        raise ModelError(f"{owner}: its data cannot be read ({_one_line(exc)}); re-export the model") from exc


# -------------------------------------------------------------------- structure
def check_structure(proto: onnx.ModelProto) -> list[tuple[int, onnx.NodeProto]]:
    """Check the graph's wiring; return ``(original index, node)`` in topological order.

    Nodes out of order are accepted (onnxruntime accepts them too) and sorted;
    an input nobody produces, a tensor produced twice, a cycle and a graph
    output nobody produces are refused.
    """
    if not any(o.domain in STANDARD_DOMAINS for o in proto.opset_import):
        raise ModelError(
            "opset_import: the model imports no opset of the standard ONNX domain, so its operators have no "
            "defined meaning; re-export it with one (e.g. helper.make_model(graph, "
            "opset_imports=[helper.make_opsetid('', 17)]))"
        )
    g = proto.graph
    if not g.node:
        raise ModelError("graph: the model has no nodes; export the network itself")
    inits = {t.name for t in g.initializer}
    available = inits | {i.name for i in g.input} | {""}
    producer: dict[str, str] = {}
    for i, n in enumerate(g.node):
        label = node_label(n, i)
        if not n.output or not n.output[0]:
            raise ModelError(f"node '{label}' ({n.op_type}) has no output; give it an output name")
        for out in n.output:
            if not out:
                continue
            if out in producer:
                raise ModelError(f"tensor '{out}' is produced by both node '{producer[out]}' and node '{label}'; "
                                 "each tensor must have exactly one producer (rename one output)")
            if out in available:
                what = "an initializer" if out in inits else "a graph input"
                raise ModelError(f"node '{label}' ({n.op_type}) writes tensor '{out}', which is also {what}; "
                                 "rename the node's output")
            producer[out] = label
    for i, n in enumerate(g.node):
        for inp in n.input:
            if inp not in available and inp not in producer:
                raise ModelError(f"node '{node_label(n, i)}' ({n.op_type}): input '{inp}' is produced by no node, "
                                 "initializer or graph input; fix the input name or add the missing initializer")
    order = _topological(g.node, available)
    for o in g.output:
        if o.name not in producer and o.name not in available:
            raise ModelError(f"graph output '{o.name}' is produced by no node; name an existing tensor as the output "
                             f"(node outputs: {', '.join(list(producer)[-5:])})")
    return order


def _topological(nodes: Sequence[onnx.NodeProto], available: set[str]) -> list[tuple[int, onnx.NodeProto]]:
    """Kahn's algorithm, keeping the file's order among ready nodes (stable)."""
    ready = set(available)
    pending = list(enumerate(nodes))
    order: list[tuple[int, onnx.NodeProto]] = []
    while pending:
        rest = []
        for i, n in pending:
            if all(x in ready for x in n.input):
                order.append((i, n))
                ready.update(n.output)
            else:
                rest.append((i, n))
        if len(rest) == len(pending):
            names = ", ".join(f"'{node_label(n, i)}'" for i, n in rest[:6])
            raise ModelError(f"nodes {names} form a cycle (each waits for another's output); "
                             "an ONNX graph must be acyclic: fix the node inputs")
        pending = rest
    return order


def live_nodes(order: list[tuple[int, onnx.NodeProto]], outputs: Sequence[str], data_input: str | None = None
               ) -> list[tuple[int, onnx.NodeProto]]:
    """The nodes the graph outputs depend on, in order (dead branches are dropped, as onnxruntime does).

    With ``data_input``, refuse a graph whose outputs do not depend on that input.
    """
    needed = set(outputs)
    live: list[tuple[int, onnx.NodeProto]] = []
    for i, n in reversed(order):
        if any(o in needed for o in n.output if o):
            live.append((i, n))
            needed.update(x for x in n.input if x)
            needed.update(_subgraph_reads(n))
    if data_input is not None and data_input not in needed:
        raise ModelError(f"input '{data_input}' does not reach the output {', '.join(repr(o) for o in outputs)}: "
                         "the model ignores its input; check the first nodes' inputs")
    return live[::-1]


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Names the subgraphs of a control-flow node (If/Loop/Scan) read from the outer scope."""
    reads: set[str] = set()
    for a in node.attribute:
        for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            for inner in sub.node:
                reads.update(x for x in inner.input if x)
                reads |= _subgraph_reads(inner)
    return reads


def check_domains(nodes: Iterable[tuple[int, onnx.NodeProto]]) -> list[tuple[str, str]]:
    """``(op, node)`` of every node outside the standard ONNX domain.

    A ``Relu`` of domain ``com.example`` is a different operator that merely
    shares the name; treating it as the standard one would verify the wrong
    network.
    """
    return [(f"{n.domain}::{n.op_type}", node_label(n, i)) for i, n in nodes if n.domain not in STANDARD_DOMAINS]


# ----------------------------------------------------------------------- values
def check_float_values(arr: np.ndarray, owner: str) -> None:
    """Refuse empty or non-finite float tensors (weights, biases, constants)."""
    if arr.size == 0:
        raise ModelError(f"{owner} is empty (shape {tuple(arr.shape)}); a weight needs at least one value: "
                         "re-export the model")
    if arr.size > MAX_ELEMENTS:
        raise ModelError(f"{owner} has {arr.size} values, more than the limit of {MAX_ELEMENTS}")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - finite.sum()) - n_nan
        raise ModelError(f"{owner} holds {n_nan} NaN and {n_inf} infinite values (the first at index "
                         f"{tuple(int(b) for b in bad)}); replace them with finite numbers (retrain or fix the export)")


def check_input_size(name: str, shape: Sequence[int]) -> None:
    """Refuse an input too large to allocate before anything is allocated."""
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise ModelError(f"input '{name}' has shape {tuple(shape)} = {size:.3g} values, more than the limit of "
                         f"{MAX_ELEMENTS:.0e}; check the input dimensions in the model")


def check_value_sizes(proto: onnx.ModelProto) -> None:
    """Refuse a model whose inferred intermediate tensors are too large.

    Uses onnx's (non-strict) shape inference; a model it cannot infer is
    left to the lowering, which reports its own shape errors.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(_without_large_data(proto))
    except Exception:  # inference is a best-effort pre-check here
        return
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        values = [d.dim_value for d in dims if d.HasField("dim_value")]
        if values and math.prod(values) > MAX_ELEMENTS:
            raise ModelError(f"tensor '{vi.name}' would have shape {tuple(values)} = {math.prod(values):.3g} values, "
                             f"more than the limit of {MAX_ELEMENTS:.0e}; check the attributes (pads, shapes) "
                             "of the node that produces it")


def _without_large_data(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for shape inference whose large initializers are typed graph inputs (no data copied)."""
    if proto.graph.ByteSize() < (1 << 20):
        return proto
    light = onnx.ModelProto()
    _copy_structure(proto, light)
    return light


def _copy_structure(proto: onnx.ModelProto, light: onnx.ModelProto) -> None:
    graph = proto.graph
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    light.graph.name = graph.name
    light.graph.node.extend(graph.node)
    light.graph.output.extend(graph.output)
    light.graph.input.extend(i for i in graph.input)
    declared = {i.name for i in graph.input}
    for t in graph.initializer:
        if math.prod(t.dims) <= 4096:  # shapes and other small constants keep their values
            light.graph.initializer.append(t)
        elif t.name not in declared:
            light.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
