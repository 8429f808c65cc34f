"""Float models exported with torch.onnx.export and quantized with onnxruntime.quantization, at test time."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

torch = __import__("pytest").importorskip("torch")
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

SHAPE = (1, 6, 6)


class TinyCNN(torch.nn.Module):
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, channels, 3, padding=1)
        self.fc1 = torch.nn.Linear(channels * 9, 6)
        self.fc2 = torch.nn.Linear(6, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


def export_float(path: Path, seed: int = 0, channels: int = 3, dynamic_batch: bool = True) -> Path:
    """``dynamic_batch=False``: exported as torch.onnx.export writes it by default, batch fixed to 1."""
    torch.manual_seed(seed)
    model = TinyCNN(channels).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros((1,) + SHAPE), str(path), input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False,
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}} if dynamic_batch else None)
    return path


class Calibration(CalibrationDataReader):
    def __init__(self, n: int = 16) -> None:
        rng = np.random.default_rng(0)
        self.data = iter([{"x": rng.uniform(0, 1, (1,) + SHAPE).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


#: (format, per_channel, activation type, weight type)
VARIANTS = [
    ("QDQ", False, "QInt8", "QInt8"),
    ("QDQ", True, "QUInt8", "QInt8"),
    ("QOperator", False, "QUInt8", "QUInt8"),
    ("QOperator", True, "QInt8", "QInt8"),
    ("dynamic", False, "", "QInt8"),
    ("dynamic", True, "", "QUInt8"),
]


def quantize(float_path: Path, out: Path, fmt: str, per_channel: bool, act: str, weight: str) -> Path:
    logging.getLogger().setLevel(logging.ERROR)
    if fmt == "dynamic":
        quantize_dynamic(str(float_path), str(out), per_channel=per_channel, weight_type=getattr(QuantType, weight))
    else:
        quantize_static(str(float_path), str(out), Calibration(), quant_format=getattr(QuantFormat, fmt), per_channel=per_channel,
                        activation_type=getattr(QuantType, act), weight_type=getattr(QuantType, weight))
    return out


def ort_outputs(path: Path, xs: np.ndarray, optimize: bool = True) -> np.ndarray:
    """onnxruntime outputs, one sample per run (dynamic quantization picks its grid per tensor)."""
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    batch = xs.reshape((-1,) + SHAPE).astype(np.float32)
    return np.concatenate([sess.run(None, {"x": batch[i : i + 1]})[0] for i in range(len(batch))]).astype(np.float64)


def sample_ball(x0: np.ndarray, radius: float, n: int, seed: int = 0) -> np.ndarray:
    """``n`` float32 points of the L-inf ball (corners and uniform)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, (n, x0.size))
    u[: n // 10] = np.sign(u[: n // 10])
    xs = (x0 + radius * u).astype(np.float32)
    lo, hi = (x0 - radius).astype(np.float32), (x0 + radius).astype(np.float32)
    return np.clip(xs, np.nextafter(lo, np.float32(np.inf)), np.nextafter(hi, np.float32(-np.inf))).astype(np.float64)
