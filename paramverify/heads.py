"""Which tensor a property is stated on: classifier heads and ``--output``.

Exporters end classifiers with a *head* that turns scores into labels or
dictionaries: ``ArgMax``, ``ArrayFeatureExtractor`` (class labels),
integer ``Cast`` / ``Reshape`` of labels, ``ZipMap`` (skl2onnx's list of
dicts), an L1 ``Normalizer`` right after a softmax (the identity on
probabilities) and the label output of ``LinearClassifier``.  No kernel can
bound those and none changes which class wins, so :func:`select_output`
walks back through them from every graph output to the score tensor they
share, and states the property there (the result says so).  ``--output
NAME`` picks any tensor instead.

The model is then cut down to the nodes that compute the chosen tensor,
which becomes its only output, and the ai.onnx.ml linear ops in it are
rewritten into standard ops (:mod:`paramverify.ops.ml`).  The cut model is
a valid ONNX model: counterexamples are replayed on it with onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import onnx
from onnx import helper

from paramverify.errors import ModelError
from paramverify.ops import ml

_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
_LABEL_PLUMBING = ("Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze", "Cast")
_SOFTMAXES = ("Softmax",)


@dataclass(frozen=True)
class Selection:
    """The cut model, the tensor the property is stated on and what was skipped."""

    model: onnx.ModelProto
    output: str
    skipped: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        if not self.skipped:
            return ""
        return f"property stated on the score tensor '{self.output}' (classifier head skipped: {', '.join(self.skipped)})"


def _types(proto: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor onnx's shape inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError, RuntimeError):
        inferred = proto  # inference is only a hint: tensors it cannot type stay untyped
    g = inferred.graph
    out: dict[str, int] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.type.HasField("tensor_type"):
            out[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        out[init.name] = init.data_type
    return out


def _is_softmax(node: onnx.NodeProto | None) -> bool:
    if node is None:
        return False
    if node.op_type in _SOFTMAXES:
        return True
    if node.op_type == "LinearClassifier":
        return any(a.name == "post_transform" and a.s == b"SOFTMAX" for a in node.attribute)
    return False


def _strip(tensor: str, producer: Mapping[str, onnx.NodeProto], types: Callable[[], Mapping[str, int]],
           consts: set[str], skipped: list[str]) -> str:
    """Walk back from ``tensor`` through head ops; returns the score tensor."""
    for _ in range(len(producer) + 1):
        node = producer.get(tensor)
        if node is None:
            return tensor
        op = node.op_type
        if op in ("ZipMap", "ArgMax"):
            nxt = node.input[0]
        elif op == "ArrayFeatureExtractor" and node.input[0] in consts:
            nxt = node.input[1]
        elif op in _LABEL_PLUMBING and types().get(tensor, onnx.TensorProto.FLOAT) not in _FLOATS:
            nxt = node.input[0]
        elif op == "Normalizer" and any(a.name == "norm" and a.s == b"L1" for a in node.attribute) and _is_softmax(producer.get(node.input[0])):
            nxt = node.input[0]
        elif op == "LinearClassifier" and tensor == node.output[0] and len(node.output) > 1 and node.output[1]:
            skipped.append("LinearClassifier label output")
            return node.output[1]
        else:
            return tensor
        if op not in skipped:
            skipped.append(op)
        tensor = nxt
    raise ModelError("the model's graph has a cycle")


def select_output(proto: onnx.ModelProto, output: str | None = None) -> Selection:
    """Choose the tensor a property is stated on and cut the model to it (see the module doc)."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output if o}
    consts = {i.name for i in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
    skipped: list[str] = []
    if output is not None:
        if output not in producer:
            floats = [o for n in g.node for o in n.output if o][-20:]
            raise ModelError(f"--output '{output}' is not a tensor computed by the model; choose one of: {', '.join(floats)}")
        target = output
    else:
        cache: dict[str, int] | None = None

        def types() -> Mapping[str, int]:  # shape inference only when a label op needs its type
            nonlocal cache
            if cache is None:
                cache = _types(proto)
            return cache

        ends = {_strip(o.name, producer, types, consts, skipped) for o in g.output}
        if len(ends) != 1:
            raise ModelError(
                f"the model has {len(g.output)} outputs ({', '.join(o.name for o in g.output)}) that are not one "
                "classifier's scores and labels; choose the tensor to verify with --output NAME"
            )
        target = ends.pop()
    has_ml = any(n.op_type in ml.ML_OPS for n in g.node)
    if not has_ml and [o.name for o in g.output] == [target]:
        return Selection(proto, target, ())
    return Selection(cut(proto, target), target, tuple(skipped))


def cut(proto: onnx.ModelProto, target: str) -> onnx.ModelProto:
    """A copy with only the nodes computing ``target``, which becomes the only output."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output if o}
    need, stack = set(), [target]
    while stack:
        t = stack.pop()
        n = producer.get(t)
        if n is None or id(n) in need:
            continue
        need.add(id(n))
        stack.extend(i for i in n.input if i)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for i, n in enumerate(g.node):
        if id(n) not in need:
            continue
        if n.op_type in ml.ML_OPS and ml.unsupported_reason(n) is None:
            new_nodes, new_inits = ml.rewrite(n, i)
            nodes.extend(new_nodes)
            inits.extend(new_inits)
        else:
            nodes.append(n)
    used = {i for n in nodes for i in n.input}
    types = _types(proto)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    keep_inits = [t for t in g.initializer if t.name in used] + inits
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep_inits)
    inputs = [i for i in g.input if i.name in used]
    del out.graph.input[:]
    out.graph.input.extend(inputs)
    del out.graph.output[:]
    out.graph.output.extend([helper.make_tensor_value_info(target, types.get(target, onnx.TensorProto.FLOAT), None)])
    if not any(op.domain in ("", "ai.onnx") for op in out.opset_import):
        out.opset_import.extend([helper.make_opsetid("", 13)])
    return out
