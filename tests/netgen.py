"""Small random ONNX models for tests (shared by every test package).

``dense_net(layers, activation, head, skip)`` builds one from given weights
(any magnitude; the soundness corpus's extreme tier uses it).

``random_mlp(seed, sizes, activation, sigmoid_output, scale)`` builds a
float32 MLP of Gemm layers (initializers ``W1, b1, W2, b2, ...``, ``transB=1``)
with ``activation`` between layers and an optional final Sigmoid.  Input
``x`` has shape ``["N", sizes[0]]``, output ``y`` shape ``["N", sizes[-1]]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "linear")


def _activation_node(activation: str, inp: str, out: str) -> onnx.NodeProto | None:
    if activation == "relu":
        return helper.make_node("Relu", [inp], [out])
    if activation == "leaky_relu":
        return helper.make_node("LeakyRelu", [inp], [out], alpha=0.1)
    if activation == "tanh":
        return helper.make_node("Tanh", [inp], [out])
    if activation == "sigmoid":
        return helper.make_node("Sigmoid", [inp], [out])
    if activation == "linear":
        return None
    raise ValueError(f"unknown activation {activation!r}; use one of {ACTIVATIONS}")


def random_mlp(
    seed: int,
    sizes: Sequence[int],
    activation: str = "relu",
    sigmoid_output: bool = False,
    scale: float = 1.0,
    normalise: tuple[Sequence[float], Sequence[float]] | None = None,
) -> onnx.ModelProto:
    """A random float32 MLP ``sizes[0] -> ... -> sizes[-1]`` as an ONNX model.

    Weights are N(0, scale^2 / fan_in), biases N(0, (scale/2)^2).  With
    ``normalise=(mean, std)`` the input is first standardised in the graph
    (Sub/Div constants, like the case-study models).
    """
    if len(sizes) < 2:
        raise ValueError("sizes needs at least an input and an output size")
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    cur = "x"
    if normalise is not None:
        mean = np.asarray(normalise[0], dtype=np.float32)
        std = np.asarray(normalise[1], dtype=np.float32)
        inits += [numpy_helper.from_array(mean, "norm_mean"), numpy_helper.from_array(std, "norm_std")]
        nodes += [helper.make_node("Sub", ["x", "norm_mean"], ["x_c"]), helper.make_node("Div", ["x_c", "norm_std"], ["x_n"])]
        cur = "x_n"
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        w = (rng.standard_normal((fan_out, fan_in)) * scale / np.sqrt(fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * scale * 0.5).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i + 1}"), numpy_helper.from_array(b, f"b{i + 1}")]
        z = f"z{i + 1}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i + 1}", f"b{i + 1}"], [z], transB=1))
        cur = z
        if i < n_layers - 1:
            node = _activation_node(activation, z, f"h{i + 1}")
            if node is not None:
                nodes.append(node)
                cur = f"h{i + 1}"
    if sigmoid_output:
        nodes.append(helper.make_node("Sigmoid", [cur], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [cur], ["y"]))
    graph = helper.make_graph(
        nodes,
        f"mlp_{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


HEADS = ("identity", "sigmoid", "softmax")


def dense_net(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    activation: str = "relu",
    head: str = "identity",
    skip: bool = False,
    name: str = "dense",
) -> onnx.ModelProto:
    """An MLP with the given weights ``[(W1, b1), ...]`` (``W`` is ``[out, in]``, Gemm ``transB=1``).

    ``activation`` sits between layers (``leaky_relu`` uses alpha 0.125, exact
    in float32); ``head`` is applied to the last Gemm (``softmax`` over the
    outputs).  With ``skip`` the last Gemm reads ``Concat([h, z])`` of the last
    hidden activation ``h`` and its pre-activation ``z`` (so its ``W`` has
    twice the hidden width), which makes saturated activations matter next to
    huge pre-activations.  Initializers are ``W1, b1, W2, b2, ...`` in float32.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; use one of {HEADS}")
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    cur = "x"
    n = len(layers)
    for i, (w, b) in enumerate(layers, 1):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"W{i}"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"b{i}")]
        z = f"z{i}"
        if i == n and skip and n > 1:
            nodes.append(helper.make_node("Concat", [cur, f"z{i - 1}"], ["skip"], axis=1))
            cur = "skip"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [z], transB=1))
        cur = z
        if i < n:
            node = (helper.make_node("LeakyRelu", [z], [f"h{i}"], alpha=0.125) if activation == "leaky_relu"
                    else _activation_node(activation, z, f"h{i}"))
            if node is not None:
                nodes.append(node)
                cur = f"h{i}"
    head_op = {"identity": "Identity", "sigmoid": "Sigmoid", "softmax": "Softmax"}[head]
    nodes.append(helper.make_node(head_op, [cur], ["y"], **({"axis": 1} if head == "softmax" else {})))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", int(np.shape(layers[0][0])[1])])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", int(np.shape(layers[-1][0])[0])])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model
