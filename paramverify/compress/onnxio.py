"""Stage-described CNNs to ONNX and back.

:func:`to_onnx` writes a :class:`~paramverify.compress.arch.StageNet` node by node with
``onnx.helper`` (opset 17, dynamic batch): per block ``Conv`` (a depthwise ``Conv`` with
``group = channels`` first for ``dws``), ``BatchNormalization`` (eval mode), and
``Relu`` / ``LeakyRelu`` / ``Sigmoid`` + ``Mul`` (SiLU); then ``GlobalAveragePool``,
``Flatten`` and ``Gemm``.  The architecture goes into the model's metadata under
:data:`META_KEY` and every initializer has a fixed name (``b{i}.conv.weight`` ...), so
:func:`read_teacher` can rebuild the torch network exactly.  A model without that metadata
or with other initializers cannot be read as stages: :class:`TeacherFormatError`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from paramverify.compress.arch import LEAKY_SLOPE, ArchSpec, StageNet
from paramverify.errors import ModelError, SpecError
from paramverify.fileio import write_bytes

META_KEY = "paramverify.compress.arch"
OPSET = 17


class TeacherFormatError(ModelError):
    """An ONNX model that cannot be read as a stage-described CNN."""


def _arr(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def to_onnx(net: StageNet) -> onnx.ModelProto:
    """The network as an ONNX model (input ``x``, output ``logits``; see the module docstring)."""
    arch = net.arch
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def init(name: str, value: torch.Tensor) -> str:
        inits.append(numpy_helper.from_array(_arr(value), name))
        return name

    cur = "x"
    for i, b in enumerate(net.blocks):
        p = f"b{i}"
        stride = b.conv.stride[0] if b.conv_type == "std" else b.dw.stride[0]
        if b.conv_type == "dws":
            cin = b.dw.weight.shape[0]
            nodes.append(helper.make_node("Conv", [cur, init(f"{p}.dw.weight", b.dw.weight)], [f"{p}.dw"], name=f"{p}.dw",
                                          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride], group=cin))
            nodes.append(helper.make_node("Conv", [f"{p}.dw", init(f"{p}.conv.weight", b.conv.weight),
                                                   init(f"{p}.conv.bias", b.conv.bias)], [f"{p}.conv"], name=f"{p}.conv",
                                          kernel_shape=[1, 1]))
        else:
            nodes.append(helper.make_node("Conv", [cur, init(f"{p}.conv.weight", b.conv.weight),
                                                   init(f"{p}.conv.bias", b.conv.bias)], [f"{p}.conv"], name=f"{p}.conv",
                                          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]))
        cur = f"{p}.conv"
        if b.bn is not None:
            names = [init(f"{p}.bn.{k}", getattr(b.bn, k)) for k in ("weight", "bias", "running_mean", "running_var")]
            nodes.append(helper.make_node("BatchNormalization", [cur, *names], [f"{p}.bn"], name=f"{p}.bn",
                                          epsilon=float(b.bn.eps)))
            cur = f"{p}.bn"
        if b.act_name == "relu":
            nodes.append(helper.make_node("Relu", [cur], [f"{p}.act"], name=f"{p}.act"))
        elif b.act_name == "leaky_relu":
            nodes.append(helper.make_node("LeakyRelu", [cur], [f"{p}.act"], name=f"{p}.act", alpha=LEAKY_SLOPE))
        else:
            nodes.append(helper.make_node("Sigmoid", [cur], [f"{p}.sig"], name=f"{p}.sig"))
            nodes.append(helper.make_node("Mul", [cur, f"{p}.sig"], [f"{p}.act"], name=f"{p}.act"))
        cur = f"{p}.act"
    nodes.append(helper.make_node("GlobalAveragePool", [cur], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat", axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", init("fc.weight", net.fc.weight), init("fc.bias", net.fc.bias)],
                                  ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "stage_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *arch.in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", arch.classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="paramverify.compress")
    model.ir_version = 8
    helper.set_model_props(model, {META_KEY: json.dumps(arch.to_json())})
    onnx.checker.check_model(model)
    return model


def save_onnx(net: StageNet, path: str | Path) -> Path:
    """Write the network as ONNX atomically."""
    write_bytes(path, to_onnx(net).SerializeToString())
    return Path(path)


def read_teacher(path: str | Path) -> StageNet:
    """The torch network of an ONNX model written by :func:`to_onnx` (TeacherFormatError otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("teacher", f"{p} does not exist", "pass the path of a .onnx file")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # onnx raises several types for a corrupt file
        raise ModelError(f"cannot read {p} as ONNX: {type(exc).__name__}: {exc}") from exc
    return from_onnx(model, str(p))


def from_onnx(model: onnx.ModelProto, where: str = "the model") -> StageNet:
    meta = {m.key: m.value for m in model.metadata_props}
    if META_KEY not in meta:
        raise TeacherFormatError(
            f"{where} cannot be read as stages: it has no '{META_KEY}' metadata (only CNNs written by "
            "paramverify compress / paramverify.compress.teacher can be teachers)")
    try:
        arch = ArchSpec.from_json(json.loads(meta[META_KEY]))
    except (json.JSONDecodeError, SpecError) as exc:
        raise TeacherFormatError(f"{where} cannot be read as stages: bad '{META_KEY}' metadata ({exc})") from exc
    net = StageNet(arch)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    expected = {}
    for i, b in enumerate(net.blocks):
        expected[f"b{i}.conv.weight"] = b.conv.weight
        expected[f"b{i}.conv.bias"] = b.conv.bias
        if b.conv_type == "dws":
            expected[f"b{i}.dw.weight"] = b.dw.weight
        if b.bn is not None:
            for k in ("weight", "bias", "running_mean", "running_var"):
                expected[f"b{i}.bn.{k}"] = getattr(b.bn, k)
    expected["fc.weight"], expected["fc.bias"] = net.fc.weight, net.fc.bias
    for name, param in expected.items():
        value = inits.get(name)
        if value is None or tuple(value.shape) != tuple(param.shape):
            got = "missing" if value is None else f"shape {tuple(value.shape)}"
            raise TeacherFormatError(f"{where} cannot be read as stages: initializer '{name}' is {got}, the metadata "
                                     f"needs shape {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(torch.from_numpy(value.astype(np.float32)))
    return net.eval()
