"""Quantizable layers of a model loaded from ONNX, and where they live in the ONNX graph.

:func:`layer_infos` describes every Conv/Linear module of a torch model (the
agent's state).  :func:`onnx_layers` maps each torch layer name that
:func:`paramverify.smoothing.onnx_torch.load_onnx` gives to its ONNX node and
weight initializer (the QDQ export and the formal variant need them); it
re-derives the converter's naming rule and then checks every match by
comparing the weights, so a mismatch is an error and never a silent mix-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from paramverify.errors import ModelError
from paramverify.search.space import LayerInfo
from paramverify.smoothing.onnx_torch import module_name
from paramverify.smoothing.quant import layer_macs, quantizable_layers


def layer_infos(model: nn.Module, example: torch.Tensor) -> tuple[LayerInfo, ...]:
    """One :class:`LayerInfo` per quantizable layer, in model order (MACs per input)."""
    was_training = model.training
    model.eval()
    macs = layer_macs(model, example[:1])
    model.train(was_training)
    modules = dict(model.named_modules())
    out = []
    for name in quantizable_layers(model):
        m = modules[name]
        if isinstance(m, nn.Linear):
            out.append(LayerInfo(name, "linear", m.in_features, m.out_features, 1, 1,
                                 sum(p.numel() for p in m.parameters()), macs.get(name, 0)))
        else:
            assert isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
            out.append(LayerInfo(name, "conv", m.in_channels, m.out_channels, int(np.prod(m.kernel_size)),
                                 int(np.prod(m.stride)), sum(p.numel() for p in m.parameters()), macs.get(name, 0)))
    return tuple(out)


@dataclass(frozen=True)
class OnnxLayer:
    """Where a torch layer comes from: its node, weight and bias initializers.

    ``transposed`` is True when the ONNX weight is the torch weight transposed
    (MatMul, Gemm with transB=0); ``axis`` is the output-channel axis of the
    ONNX weight (0 for Conv and Gemm transB=1, 1 otherwise).
    """

    name: str
    node_index: int
    op_type: str
    weight: str
    bias: str | None
    transposed: bool

    @property
    def axis(self) -> int:
        return 1 if self.transposed else 0


def _attr(node: onnx.NodeProto, key: str, default: object) -> object:
    for a in node.attribute:
        if a.name == key:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def onnx_layers(model: onnx.ModelProto, torch_model: nn.Module) -> dict[str, OnnxLayer]:
    """Map torch layer names to ONNX nodes with initializer weights; checked by value.

    Raises :class:`ModelError` if a quantizable torch layer has no ONNX node
    with a plain float initializer weight (e.g. a weight computed in the
    graph), or if the weights differ.
    """
    inits = {t.name: t for t in model.graph.initializer}
    const_outputs = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    taken: set[str] = set()
    found: dict[str, OnnxLayer] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        w = node.input[1]
        if w not in inits and w not in const_outputs:
            continue
        if node.op_type == "Conv" and _attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            continue
        if node.op_type == "Gemm" and int(_attr(node, "transA", 0)):  # type: ignore[call-overload]
            continue
        if node.op_type == "MatMul" and w in inits and len(inits[w].dims) != 2:
            continue
        name = module_name(node.name or f"{node.op_type.lower()}_{i}", taken)
        if w not in inits:
            continue
        bias = node.input[2] if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2] else None
        if bias is not None and bias not in inits:
            raise ModelError(f"layer {name!r}: its bias {bias!r} is not an initializer; export cannot rewrite it")
        if node.op_type == "Gemm" and float(_attr(node, "alpha", 1.0)) != 1.0:  # type: ignore[arg-type]
            raise ModelError(f"layer {name!r}: Gemm alpha != 1 is not supported by the search export")
        transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not int(_attr(node, "transB", 0)))  # type: ignore[call-overload]
        found[name] = OnnxLayer(name, i, node.op_type, w, bias, transposed)
    modules = dict(torch_model.named_modules())
    out: dict[str, OnnxLayer] = {}
    for name in quantizable_layers(torch_model):
        if name not in found:
            raise ModelError(f"quantizable layer {name!r} has no ONNX node with an initializer weight; "
                             "use a model whose Conv/Gemm/MatMul weights are initializers")
        lay = found[name]
        w_onnx = numpy_helper.to_array(inits[lay.weight]).astype(np.float32)
        w_torch = modules[name].weight.detach().cpu().numpy()
        if lay.transposed:
            w_onnx = w_onnx.T
        if w_onnx.shape != w_torch.shape or not np.array_equal(w_onnx, w_torch):
            raise ModelError(f"layer {name!r}: the ONNX weight {lay.weight!r} does not match the torch module "
                             "(the converter's naming rule changed; report this)")
        out[name] = lay
    return out
