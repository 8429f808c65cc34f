"""A small, deterministic numpy MLP trainer and its ONNX exporter.

:func:`train_mlp` fits a fully connected network with full-batch Adam:
binary cross-entropy with one sigmoid output unit for two classes, softmax
cross-entropy for ``k > 2`` classes.  Training runs in float64; the finished
parameters are rounded once to float32 and *those float32 values are the
model*: :class:`TrainedMLP` stores them, :meth:`TrainedMLP.predict_proba`
evaluates them (in float64 arithmetic), and :func:`export_onnx` writes them
unchanged as float32 initializers, so the ONNX file and the Python object
describe the same function up to float32 rounding of the arithmetic.

The exported graph is deliberately plain (opset 17)::

    x [N, d] -> Sub(norm_mean) -> Div(norm_std)          (only if standardized)
             -> Gemm(W1, b1, transB=1) -> activation
             -> ...
             -> Gemm(WL, bL, transB=1) -> Sigmoid | Softmax(axis=-1) -> y

``W{i}`` has shape ``[out, in]`` (Gemm's ``transB=1`` layout) and ``b{i}``
shape ``[out]``.  The linear activation emits no node.

Training is deterministic for a given seed on a given machine (one
``numpy.random.default_rng(seed)`` draws the initial weights; everything
else is plain full-batch arithmetic).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from paramverify.errors import ModelError, SpecError
from paramverify.fileio import write_bytes

ACTIVATIONS: tuple[str, ...] = ("relu", "linear", "tanh", "sigmoid", "leaky_relu")
LEAKY_RELU_ALPHA = 0.01
ONNX_OPSET = 17
ONNX_IR_VERSION = 8

_ONNX_ACTIVATION_OPS: Mapping[str, str | None] = {
    "relu": "Relu",
    "linear": None,
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "leaky_relu": "LeakyRelu",
}


def _frozen(a: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Return a read-only C-contiguous copy of ``a`` in ``dtype``."""
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -z))


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stabilized by subtracting the row maximum."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    """Apply hidden activation ``name`` elementwise."""
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "linear":
        return z
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "leaky_relu":
        return np.where(z > 0.0, z, LEAKY_RELU_ALPHA * z)
    raise SpecError("activation", f"unknown activation {name!r}", f"use one of {', '.join(ACTIVATIONS)}")


def _activation_grad(name: str, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Derivative of activation ``name`` at pre-activation ``z`` (``h`` = value)."""
    if name == "relu":
        return (z > 0.0).astype(np.float64)
    if name == "linear":
        return np.ones_like(z)
    if name == "tanh":
        return 1.0 - h * h
    if name == "sigmoid":
        return h * (1.0 - h)
    if name == "leaky_relu":
        return np.where(z > 0.0, 1.0, LEAKY_RELU_ALPHA)
    raise SpecError("activation", f"unknown activation {name!r}", f"use one of {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True, eq=False)
class TrainedMLP:
    """A trained fully connected classifier with float32 parameters.

    ``weights[i]`` has shape ``[out, in]`` and ``biases[i]`` shape ``[out]``;
    every hidden layer uses ``activation``.  The last layer has one unit
    (sigmoid, two classes) or ``n_classes`` units (softmax).  ``mean`` and
    ``std`` (both ``None`` when not standardized) map raw inputs to
    ``(x - mean) / std`` before the first layer.  All arrays are read-only.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activation: str
    n_classes: int
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    seed: int | None = None
    final_loss: float = float("nan")

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise SpecError("activation", f"unknown activation {self.activation!r}",
                            f"use one of {', '.join(ACTIVATIONS)}")
        if len(self.weights) == 0 or len(self.weights) != len(self.biases):
            raise SpecError("weights", "need one bias per weight matrix and at least one layer",
                            "pass equally long non-empty tuples")
        if not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise SpecError("n_classes", f"must be an integer >= 2, got {self.n_classes!r}")
        ws = tuple(_frozen(w) for w in self.weights)
        bs = tuple(_frozen(b) for b in self.biases)
        for i, (w, b) in enumerate(zip(ws, bs), start=1):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise SpecError(f"weights[{i - 1}]", f"shapes {w.shape} / {b.shape} do not form a layer",
                                "use W of shape [out, in] and b of shape [out]")
            if i > 1 and w.shape[1] != ws[i - 2].shape[0]:
                raise SpecError(f"weights[{i - 1}]", f"input size {w.shape[1]} != previous output size "
                                f"{ws[i - 2].shape[0]}")
        out_units = 1 if self.n_classes == 2 else self.n_classes
        if ws[-1].shape[0] != out_units:
            raise SpecError("weights", f"last layer has {ws[-1].shape[0]} units, {self.n_classes} classes "
                            f"need {out_units}")
        if (self.mean is None) != (self.std is None):
            raise SpecError("std", "mean and std must both be given or both be None")
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "biases", bs)
        if self.mean is not None and self.std is not None:
            mean, std = _frozen(self.mean), _frozen(self.std)
            if mean.shape != (self.n_features,) or std.shape != (self.n_features,):
                raise SpecError("mean", f"mean/std shapes {mean.shape}/{std.shape} do not match "
                                f"{self.n_features} features")
            if not np.all(std > 0):
                raise SpecError("std", "every standard deviation must be > 0")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    @property
    def n_features(self) -> int:
        """Number of input features ``d``."""
        return int(self.weights[0].shape[1])

    @property
    def hidden(self) -> tuple[int, ...]:
        """Sizes of the hidden layers."""
        return tuple(int(w.shape[0]) for w in self.weights[:-1])

    @property
    def standardized(self) -> bool:
        """Whether the model standardizes its inputs."""
        return self.mean is not None

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise SpecError("X", f"expected shape [N, {self.n_features}], got {np.shape(X)}")
        return x

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Pre-sigmoid/softmax outputs, shape ``[N, 1]`` or ``[N, k]`` (float64)."""
        h = self._check_input(X)
        if self.mean is not None and self.std is not None:
            h = (h - self.mean.astype(np.float64)) / self.std.astype(np.float64)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w.astype(np.float64).T + b.astype(np.float64)
            if i < last:
                h = _activate(self.activation, h)
        return h

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The network's output exactly as the ONNX graph defines it.

        Shape ``[N, 1]`` (probability of class 1) for two classes, ``[N, k]``
        for ``k`` classes.  Computed in float64 from the float32 parameters.
        """
        z = self.logits(X)
        return _sigmoid(z) if self.n_classes == 2 else _softmax(z)

    def predict(self, X: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Integer class labels; for two classes label 1 iff ``p > threshold``."""
        p = self.predict_proba(X)
        if self.n_classes == 2:
            return (p[:, 0] > threshold).astype(np.int64)
        return np.argmax(p, axis=1).astype(np.int64)

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Fraction of rows whose predicted label equals ``y``."""
        return float(np.mean(self.predict(X) == np.asarray(y).astype(np.int64)))


def _check_training_inputs(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate ``X``/``y``; return float64 X, int64 y and the class count."""
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise SpecError("X", f"expected a non-empty 2-D array [N, d], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SpecError("X", "contains NaN or infinite values", "drop or impute those rows")
    yr = np.asarray(y)
    if yr.ndim != 1 or yr.shape[0] != x.shape[0]:
        raise SpecError("y", f"expected shape [{x.shape[0]}], got {yr.shape}")
    yf = yr.astype(np.float64)
    yi = np.rint(yf).astype(np.int64)
    if not np.all(np.isfinite(yf)) or np.any(yf != yi) or np.any(yi < 0):
        raise SpecError("y", "labels must be integers 0..k-1", "encode classes as 0, 1, ..., k-1")
    k = int(yi.max()) + 1
    if k < 2 or np.unique(yi).size != k:
        raise SpecError("y", f"labels must cover every class 0..{max(k, 2) - 1} with k >= 2",
                        "encode classes as consecutive integers starting at 0")
    return x, yi, k


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    hidden: Sequence[int] = (3,),
    activation: str = "relu",
    seed: int = 0,
    epochs: int = 3000,
    lr: float = 0.01,
    standardize: bool = True,
) -> TrainedMLP:
    """Fit an MLP classifier with full-batch Adam; deterministic given ``seed``.

    ``y`` holds integer labels ``0..k-1``.  Two classes give one sigmoid
    output unit (binary cross-entropy), ``k > 2`` classes a softmax layer.
    Weights start Glorot-normal from ``numpy.random.default_rng(seed)``,
    biases at zero.  ``standardize`` folds ``(x - mean) / std`` (population
    std; constant columns use std 1) into the model.  The returned
    parameters are the float64 optimum rounded to float32.
    """
    x, yi, k = _check_training_inputs(X, y)
    if activation not in ACTIVATIONS:
        raise SpecError("activation", f"unknown activation {activation!r}", f"use one of {', '.join(ACTIVATIONS)}")
    sizes = tuple(hidden)
    if any(not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 1 for h in sizes):
        raise SpecError("hidden", f"layer sizes must be positive integers, got {sizes!r}")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise SpecError("epochs", f"must be a positive integer, got {epochs!r}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise SpecError("lr", f"must be a positive finite number, got {lr!r}")

    mean32 = std32 = None
    if standardize:
        std = x.std(axis=0)
        mean32 = x.mean(axis=0).astype(np.float32)
        std32 = np.where(std > 0, std, 1.0).astype(np.float32)
        xin = (x - mean32.astype(np.float64)) / std32.astype(np.float64)
    else:
        xin = x

    out_units = 1 if k == 2 else k
    dims = (x.shape[1], *[int(h) for h in sizes], out_units)
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        params.append(rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_out, fan_in)))
        params.append(np.zeros(fan_out))
    target = yi.astype(np.float64).reshape(-1, 1) if k == 2 else np.eye(k)[yi]

    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    n = x.shape[0]
    n_layers = len(dims) - 1
    loss = float("nan")
    for step in range(1, int(epochs) + 1):
        zs: list[np.ndarray] = []
        hs: list[np.ndarray] = [xin]
        for i in range(n_layers):
            z = hs[-1] @ params[2 * i].T + params[2 * i + 1]
            zs.append(z)
            if i < n_layers - 1:
                hs.append(_activate(activation, z))
        z_out = zs[-1]
        if k == 2:
            loss = float(np.mean(np.logaddexp(0.0, z_out) - target * z_out))
            delta = (_sigmoid(z_out) - target) / n
        else:
            shifted = z_out - z_out.max(axis=1, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = float(-np.mean(np.sum(target * log_p, axis=1)))
            delta = (np.exp(log_p) - target) / n
        grads: list[np.ndarray] = [np.empty(0)] * len(params)
        for i in range(n_layers - 1, -1, -1):
            grads[2 * i] = delta.T @ hs[i]
            grads[2 * i + 1] = delta.sum(axis=0)
            if i > 0:
                delta = (delta @ params[2 * i]) * _activation_grad(activation, zs[i - 1], hs[i])
        for j, g in enumerate(grads):
            m[j] = beta1 * m[j] + (1.0 - beta1) * g
            v[j] = beta2 * v[j] + (1.0 - beta2) * g * g
            m_hat = m[j] / (1.0 - beta1**step)
            v_hat = v[j] / (1.0 - beta2**step)
            params[j] = params[j] - lr * m_hat / (np.sqrt(v_hat) + adam_eps)

    return TrainedMLP(
        weights=tuple(params[0::2]),
        biases=tuple(params[1::2]),
        activation=activation,
        n_classes=k,
        mean=mean32,
        std=std32,
        seed=int(seed),
        final_loss=loss,
    )


def _default_initializer_names(n_layers: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"W{i}", f"b{i}") for i in range(1, n_layers + 1))


def build_onnx_model(
    model: TrainedMLP,
    input_name: str = "x",
    output_name: str = "y",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    initializer_names: Sequence[tuple[str, str]] | None = None,
    doc_string: str = "",
) -> onnx.ModelProto:
    """Build (but do not write) the ONNX graph of ``model``; see :func:`export_onnx`."""
    n_layers = len(model.weights)
    names = tuple(initializer_names) if initializer_names is not None else _default_initializer_names(n_layers)
    if len(names) != n_layers or any(len(pair) != 2 for pair in names):
        raise SpecError("initializer_names", f"need {n_layers} (weight, bias) name pairs, got {names!r}")
    flat = [s for pair in names for s in pair] + (["norm_mean", "norm_std"] if model.standardized else [])
    if len(set(flat)) != len(flat) or input_name in flat or output_name in flat:
        raise SpecError("initializer_names", "initializer, input and output names must all differ")
    d = model.n_features
    if feature_names is not None and len(feature_names) != d:
        raise SpecError("feature_names", f"got {len(feature_names)} names for {d} features")

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    cur = input_name
    if model.mean is not None and model.std is not None:
        inits.append(numpy_helper.from_array(model.mean, "norm_mean"))
        inits.append(numpy_helper.from_array(model.std, "norm_std"))
        nodes.append(helper.make_node("Sub", [cur, "norm_mean"], ["x_centered"], name="normalize_sub_mean"))
        nodes.append(helper.make_node("Div", ["x_centered", "norm_std"], ["x_normalized"],
                                      name="normalize_div_std"))
        cur = "x_normalized"
    act_op = _ONNX_ACTIVATION_OPS[model.activation]
    for i, ((wname, bname), w, b) in enumerate(zip(names, model.weights, model.biases), start=1):
        inits.append(numpy_helper.from_array(w, wname))
        inits.append(numpy_helper.from_array(b, bname))
        z = f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, wname, bname], [z], name=f"layer{i}_gemm", transB=1))
        cur = z
        if i < n_layers and act_op is not None:
            h = f"h{i}"
            kwargs = {"alpha": LEAKY_RELU_ALPHA} if act_op == "LeakyRelu" else {}
            nodes.append(helper.make_node(act_op, [z], [h], name=f"layer{i}_{model.activation}", **kwargs))
            cur = h
    if model.n_classes == 2:
        nodes.append(helper.make_node("Sigmoid", [cur], [output_name], name="output_sigmoid"))
        out_dim = 1
    else:
        nodes.append(helper.make_node("Softmax", [cur], [output_name], name="output_softmax", axis=-1))
        out_dim = model.n_classes

    graph = helper.make_graph(
        nodes,
        "paramverify_mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", out_dim])],
        initializer=inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="paramverify.train", producer_version="1")
    proto.ir_version = ONNX_IR_VERSION
    if doc_string:
        proto.doc_string = doc_string
    meta = {"activation": model.activation, "n_classes": str(model.n_classes)}
    if feature_names is not None:
        meta["feature_names"] = json.dumps([str(f) for f in feature_names])
    if class_names is not None:
        meta["class_names"] = json.dumps([str(c) for c in class_names])
    helper.set_model_props(proto, meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"exported ONNX graph failed onnx.checker: {exc}") from exc
    return proto


def export_onnx(
    model: TrainedMLP,
    path: str | Path,
    input_name: str = "x",
    feature_names: Sequence[str] | None = None,
    output_name: str = "y",
    class_names: Sequence[str] | None = None,
    initializer_names: Sequence[tuple[str, str]] | None = None,
    doc_string: str = "",
) -> onnx.ModelProto:
    """Write ``model`` as an opset-17 ONNX file and return the ModelProto.

    Input ``input_name`` is float32 ``[N, d]`` (symbolic batch ``"N"``);
    output ``output_name`` is ``[N, 1]`` (sigmoid) or ``[N, k]`` (softmax).
    Initializers are ``norm_mean``/``norm_std`` (standardized models only)
    and ``W1, b1, W2, b2, ...`` unless ``initializer_names`` gives one
    ``(weight, bias)`` pair per layer.  ``feature_names``/``class_names``
    are stored as JSON in the model's metadata.  The file is written
    byte-for-byte deterministically.
    """
    proto = build_onnx_model(model, input_name=input_name, output_name=output_name,
                             feature_names=feature_names, class_names=class_names,
                             initializer_names=initializer_names, doc_string=doc_string)
    out = Path(path)
    if not out.parent.is_dir():
        raise SpecError("path", f"directory {str(out.parent)!r} does not exist", "create it first")
    write_bytes(out, proto.SerializeToString(deterministic=True))  # atomic
    return proto
