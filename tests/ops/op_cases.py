"""Tiny models, one per new op (or op form), built with onnx.helper at test time.

Every case is ``x [N, 1, 5, 5] -> Conv(2x1x3x3, pad 1) -> <the op> -> Flatten``,
so the Conv's weight and bias are the perturbed parameters feeding the op.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class OpCase:
    name: str
    nodes: list  # c -> o
    opset: int = 13
    inits: dict = field(default_factory=dict)  # extra (integer or float) initializers
    piecewise_linear: bool = True  # exact rational semantics (z3 can hold it)


def _i64(*v: int) -> np.ndarray:
    return np.asarray(v, dtype=np.int64)


def n(op: str, ins: list[str], outs: list[str] | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, ins, outs or ["o"], **attrs)


CASES = [
    OpCase("maxpool", [n("MaxPool", ["c"], kernel_shape=[2, 2], strides=[2, 2])]),
    OpCase("maxpool-pad-ceil", [n("MaxPool", ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)]),
    OpCase("maxpool-dilated", [n("MaxPool", ["c"], kernel_shape=[2, 2], dilations=[2, 2])], opset=13),
    OpCase("avgpool", [n("AveragePool", ["c"], kernel_shape=[2, 2], strides=[2, 2])]),
    OpCase("avgpool-pad", [n("AveragePool", ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]),
    OpCase("avgpool-pad-count", [n("AveragePool", ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)]),
    OpCase("avgpool-ceil", [n("AveragePool", ["c"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], opset=19),
    OpCase("globalavg", [n("GlobalAveragePool", ["c"])]),
    OpCase("globalmax", [n("GlobalMaxPool", ["c"])]),
    OpCase("reducemean-attr", [n("ReduceMean", ["c"], axes=[2, 3], keepdims=0)]),
    OpCase("reducemean-input", [n("ReduceMean", ["c", "ax"], keepdims=1)], opset=18, inits={"ax": _i64(1, 3)}),
    OpCase("reducesum", [n("ReduceSum", ["c", "ax"], keepdims=0)], inits={"ax": _i64(-1)}),
    OpCase("pad-constant", [n("Pad", ["c", "pads", "cv"])], inits={"pads": _i64(0, 0, 1, 2, 0, 0, 2, 0), "cv": np.asarray(0.5, np.float32)}),
    OpCase("pad-reflect", [n("Pad", ["c", "pads"], mode="reflect")], inits={"pads": _i64(0, 0, 1, 2, 0, 0, 2, 1)}),
    OpCase("pad-edge-crop", [n("Pad", ["c", "pads"], mode="edge")], inits={"pads": _i64(0, 0, -1, 2, 0, 0, 1, -2)}),
    OpCase("clip-relu6", [n("Clip", ["c", "lo", "hi"])], inits={"lo": np.asarray(0.0, np.float32), "hi": np.asarray(0.3, np.float32)}),
    OpCase("clip-max-only", [n("Clip", ["c", "", "hi"])], inits={"hi": np.asarray(0.1, np.float32)}),
    OpCase("clip-attrs", [n("Clip", ["c"], min=-0.2, max=0.25)], opset=6),
    OpCase("transpose", [n("Transpose", ["c"], perm=[0, 2, 3, 1])]),
    OpCase("squeeze-unsqueeze", [n("Unsqueeze", ["c", "a2"], ["u"]), n("Squeeze", ["u", "a2"])], inits={"a2": _i64(2)}),
    OpCase("unsqueeze-attr", [n("Unsqueeze", ["c"], axes=[-1])], opset=11),
    OpCase("slice-step", [n("Slice", ["c", "st", "en", "ax", "sp"])],
           inits={"st": _i64(0, 4), "en": _i64(2**62, -100), "ax": _i64(2, 3), "sp": _i64(2, -2)}),
    OpCase("gather", [n("Gather", ["c", "gi"], axis=2)], inits={"gi": _i64(4, 0, -1)}),
    OpCase("shape-chain", [n("Shape", ["c"], ["s"]), n("Gather", ["s", "zero"], ["b"], axis=0),
                           n("Unsqueeze", ["b", "a0"], ["bu"]), n("Concat", ["bu", "minus1"], ["shp"], axis=0),
                           n("Cast", ["shp"], ["shp64"], to=TensorProto.INT64),
                           n("Mul", ["shp64", "one"], ["shp2"]),
                           n("Reshape", ["c", "shp2"])],
           inits={"zero": np.asarray(0, np.int64), "a0": _i64(0), "minus1": _i64(-1), "one": _i64(1)}),
    OpCase("constantofshape-pad", [n("ConstantOfShape", ["cs"], ["z"], value=helper.make_tensor("v", TensorProto.INT64, [1], [1])),
                                   n("Pad", ["c", "z", "", "pax"])],
           opset=18, inits={"cs": _i64(4), "pax": _i64(2, 3)}),
    OpCase("dropout-identity-cast", [n("Dropout", ["c"], ["d", "mask"]), n("Identity", ["d"], ["i"]),
                                     n("Cast", ["i"], to=TensorProto.FLOAT)]),
    OpCase("logsoftmax", [n("Flatten", ["c"], ["f"]), n("LogSoftmax", ["f"], axis=-1)], piecewise_linear=False),
    OpCase("erf", [n("Erf", ["c"])], piecewise_linear=False),
    OpCase("gelu-erf", [n("Gelu", ["c"])], opset=20, piecewise_linear=False),
    OpCase("gelu-tanh", [n("Gelu", ["c"], approximate="tanh")], opset=20, piecewise_linear=False),
]


def build(case: OpCase, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = {"Wc": (rng.standard_normal((2, 1, 3, 3)) * 0.5).astype(np.float32),
             "bc": (rng.standard_normal(2) * 0.1).astype(np.float32)}
    inits.update(case.inits)
    nodes = [n("Conv", ["x", "Wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    nodes += case.nodes
    nodes.append(n("Flatten", ["o"], ["y"]))
    graph = helper.make_graph(
        nodes, case.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "K"])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model
