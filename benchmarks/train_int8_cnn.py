"""Train the digits CNN of ``bench_int8.py`` and quantize it with onnxruntime (QDQ and QOperator).

    python benchmarks/train_int8_cnn.py [--epochs 60]

Data: scikit-learn's ``load_digits`` (1,797 8x8 images, pixels scaled to
[0, 1]); a seeded permutation (seed 0) holds out 360 test images.  The
network (torch, seed 0, Adam, full batch)::

    x [N, 1, 8, 8] -> Conv(8, 3x3, pad 1) -> Relu -> MaxPool 2 -> Conv(8, 3x3, pad 1) -> Relu
      -> AveragePool 2 -> Flatten -> Gemm(32) -> Relu -> Gemm(10) -> y (logits)

exported with ``torch.onnx.export`` (opset 17) to
``benchmarks/models/int8_digits_cnn.onnx`` and quantized with
``onnxruntime.quantization.quantize_static`` on 200 training images:
``int8_digits_cnn.qdq.onnx`` (QDQ, int8 activations and per-channel int8
weights) and ``int8_digits_cnn.qop.onnx`` (QOperator, uint8 activations,
per-tensor int8 weights).  The split and accuracies go to
``int8_digits_cnn.split.json``.

``--penalty L`` trains the same network with a rounding-sensitivity penalty and writes
``int8_digits_cnn_rs.*`` instead: on top of the cross-entropy, the hinge
``L * mean(relu(slack - margin + 1))``, where ``margin`` is the logit of the true
class minus the largest other logit and ``slack`` its first-order change under an
input move of ``--penalty-eps`` per pixel plus half an int8 step on every activation
(``sum |d margin / d a| * step / 2``, the step of each tensor estimated as its range /
255 on the batch).  That is what a linear relaxation pays for the rounding of each
activation (docs/int8.md, "A model trained for it"); L ramps up over the first 30% of
the epochs.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
N_TEST = 360


def paths(stem: str = "int8_digits_cnn") -> tuple[Path, Path, Path, Path]:
    """The float model, its QDQ and QOperator copies and the split file of one variant."""
    return (MODELS / f"{stem}.onnx", MODELS / f"{stem}.qdq.onnx", MODELS / f"{stem}.qop.onnx",
            MODELS / f"{stem}.split.json")

VARIANTS = {"standard": "int8_digits_cnn", "penalized": "int8_digits_cnn_rs"}


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    test, train = perm[:N_TEST], perm[N_TEST:]
    return x[train], y[train], x[test], y[test]


def build():
    import torch

    class DigitsCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.f1 = torch.nn.Linear(8 * 2 * 2, 32)
            self.f2 = torch.nn.Linear(32, 10)

        def activations(self, x):
            """The hidden activations (first conv's relu, second conv's relu, average pool,
            hidden Gemm's relu) and the logits."""
            a1 = torch.relu(self.c1(x))
            a2 = torch.relu(self.c2(torch.nn.functional.max_pool2d(a1, 2)))
            p2 = torch.nn.functional.avg_pool2d(a2, 2)
            h = torch.relu(self.f1(torch.flatten(p2, 1)))
            return [a1, a2, p2, h], self.f2(h)

        def forward(self, x):
            return self.activations(x)[1]

    return DigitsCNN()


def rounding_slack(model, x, y, eps: float):
    """Logits, the margin of the true class and its first-order slack (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    x = x.clone().requires_grad_(True)
    acts, z = model.activations(x)
    true = F.one_hot(y, 10).bool()
    margin = z[true] - torch.where(true, -torch.inf, z).max(1).values
    grads = torch.autograd.grad(margin.sum(), [x, *acts], create_graph=True)
    slack = eps * grads[0].abs().flatten(1).sum(1)
    for a, g in zip(acts, grads[1:]):
        step = (a.detach().max() - torch.clamp(a.detach().min(), max=0)) / 255.0
        slack = slack + step / 2 * g.abs().flatten(1).sum(1)
    return z, margin, slack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="full-batch epochs (default 300; 1,000 with --penalty)")
    ap.add_argument("--penalty", type=float, default=0.0,
                    help="weight of the rounding-sensitivity penalty; > 0 writes the int8_digits_cnn_rs.* files (used: 3)")
    ap.add_argument("--penalty-eps", type=float, default=0.05, help="input move per pixel in the penalty (default 0.05)")
    args = ap.parse_args()
    epochs = args.epochs or (1000 if args.penalty > 0 else 300)
    float_path, qdq_path, qop_path, split_path = paths(VARIANTS["penalized" if args.penalty > 0 else "standard"])
    import torch
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    torch.manual_seed(0)
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = data()
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(epochs):
        opt.zero_grad()
        if args.penalty > 0:
            z, margin, slack = rounding_slack(model, xt, yt, args.penalty_eps)
            weight = args.penalty * min(1.0, epoch / (0.3 * epochs))
            loss = torch.nn.functional.cross_entropy(z, yt) + weight * torch.relu(slack - margin + 1.0).mean()
        else:
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc_train = float((model(xt).argmax(1) == yt).float().mean())
        acc_test = float((model(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    MODELS.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 1, 8, 8), str(float_path), input_names=["x"], output_names=["y"],
                          opset_version=17, dynamo=False, dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": xtr[i : i + 1]} for i in range(200)])

        def get_next(self):
            return next(self.it, None)

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(float_path), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    quantize_static(str(float_path), str(qop_path), Reader(), quant_format=QuantFormat.QOperator, per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    import onnxruntime as ort

    accs = {}
    for name, path in (("qdq", qdq_path), ("qop", qop_path)):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        accs[name] = float((sess.run(None, {"x": xte})[0].argmax(1) == yte).mean())
    perm = np.random.default_rng(0).permutation(len(xtr) + len(xte))
    split = {"test_indices": perm[:N_TEST].tolist(), "epochs": epochs, "penalty": args.penalty,
             "penalty_eps": args.penalty_eps if args.penalty > 0 else None, "accuracy_train": acc_train,
             "accuracy_test": acc_test, "accuracy_test_int8": accs}
    split_path.write_text(json.dumps(split, indent=1) + "\n")
    print(f"float: train {acc_train:.3f} test {acc_test:.3f}; int8 test {accs}")


if __name__ == "__main__":
    main()
