"""Models as the exporters write them, built at test time: torch's legacy and dynamo
exporters (dynamic or fixed batch) and onnxruntime.quantization (QDQ, QOperator, dynamic).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch


class CNN(torch.nn.Module):
    """Conv, BatchNorm, Relu, MaxPool, AveragePool, a reshape on the batch size, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.c2 = torch.nn.Conv2d(4, 6, 3)
        self.fc = torch.nn.Linear(6 * 3 * 3, 3)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
        x = torch.nn.functional.avg_pool2d(torch.relu(self.c2(x)), 1)
        return self.fc(x.reshape(x.shape[0], -1))


class BranchCNN(torch.nn.Module):
    """LeakyRelu, Sigmoid, Concat, Add, GlobalAveragePool: the rest of the QOperator ops."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.b = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        u = torch.nn.functional.leaky_relu(self.a(x), 0.1)
        v = torch.sigmoid(self.b(x))
        h = torch.cat([u + v, u], 1)
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1))


class MLP(torch.nn.Module):
    """Linear, GELU (Erf below opset 20, Gelu at 20), Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.b = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(self.a(x)))


class HeadMLP(torch.nn.Module):
    """Linear, Relu, Dropout (inference), Linear, Softmax: a classifier head on the scores."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(6, 10)
        self.drop = torch.nn.Dropout(0.2)
        self.b = torch.nn.Linear(10, 3)

    def forward(self, x):
        return torch.softmax(self.b(self.drop(torch.relu(self.a(x)))), -1)


NETS = {"cnn": (CNN, (1, 1, 10, 10)), "branch": (BranchCNN, (1, 1, 6, 6)), "mlp": (MLP, (1, 8)),
        "head": (HeadMLP, (1, 6))}


def net(kind: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    cls, shape = NETS[kind]
    m = cls()
    if isinstance(m, CNN):
        with torch.no_grad():  # non-trivial running statistics
            m.bn.running_mean.uniform_(-0.2, 0.2)
            m.bn.running_var.uniform_(0.5, 1.5)
    return m.eval(), shape


def export(kind: str, path: Path, exporter: str, opset: int, dynamic_batch: bool) -> Path:
    """``kind`` exported by torch.onnx.export with the legacy or the dynamo exporter."""
    m, shape = net(kind)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dyn = ({0: torch.export.Dim("n")},) if dynamic_batch else None
            torch.onnx.export(m, (x,), str(path), dynamo=True, opset_version=opset, dynamic_shapes=dyn)
        else:
            torch.onnx.export(m, x, str(path), dynamo=False, opset_version=opset, input_names=["x"],
                              dynamic_axes={"x": {0: "n"}} if dynamic_batch else None)
    return path


def quantize(src: Path, dst: Path, how: str) -> Path:
    """onnxruntime.quantization: "qdq" / "qoperator" (static, calibrated) or "dynamic"."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx

    m = onnx.load(str(src))
    name = m.graph.input[0].name
    shape = [d.dim_value or 1 for d in m.graph.input[0].type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{name: np.random.default_rng(i).random(shape, dtype=np.float32)} for i in range(8)])

        def get_next(self):
            return next(self.it, None)

    pre = dst.with_suffix(".pre.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        if how == "dynamic":
            quantize_dynamic(str(pre), str(dst))
        else:
            fmt = QuantFormat.QDQ if how == "qdq" else QuantFormat.QOperator
            quantize_static(str(pre), str(dst), Reader(), quant_format=fmt)
    return dst
