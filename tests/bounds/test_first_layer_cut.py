"""The first layer of an MLP at a point input is exactly a box of activations (paramverify.bounds.firstlayer).

Checked both ways on models torch.onnx.export writes and on hand-built graphs: every sampled
parameter gives first-layer outputs inside the box, and every point of the box is reached by
parameters inside the original box (``lift``); the bounds proved on the cut problem are never
beaten by a sampled perturbation of the original one.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from bounds_helpers import sampled_outputs
from netgen import random_mlp
from onnx import TensorProto, helper, numpy_helper

from paramverify.bounds.firstlayer import cut_first_layer
from paramverify.bounds.local import SplitSearch, change_rows, nominal_enclosure
from paramverify.ir import load_model
from paramverify.properties import Problem
from paramverify.specs import AbsoluteDelta, InputRegion, QuantizationScheme


def _torch_mlp(tmp_path, sizes=(5, 7, 6, 3)) -> onnx.ModelProto:
    torch.manual_seed(3)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    m = torch.nn.Sequential(*layers).eval()
    path = tmp_path / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, torch.zeros(1, sizes[0]), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    return onnx.load(str(path))


def _first_layer(graph, params, x):
    """The first Relu's output under ``params`` (by running the graph up to it)."""
    from dataclasses import replace

    from paramverify.kernels import NumericKernel

    relu = next(n for n in graph.nodes if n.op.op_type == "Relu")
    k = graph.nodes.index(relu)
    g = replace(graph, nodes=graph.nodes[: k + 1], output_name=relu.output)
    return np.asarray(g.run(NumericKernel(), graph.as_batch(x), params), dtype=np.float64).reshape(-1)


def test_hand_computed_box() -> None:
    # z = 1*1 + 1*(-2) + 0 = -1; |x|_1 * 0.5 + 0.5 = 2: z in [-3, 1], h in [0, 1]
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["z"], transB=1), helper.make_node("Relu", ["z"], ["h"]),
             helper.make_node("Gemm", ["h", "V", "c"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(np.array([[1.0, 1.0]], np.float32), "W"), numpy_helper.from_array(np.zeros(1, np.float32), "b"),
             numpy_helper.from_array(np.array([[2.0]], np.float32), "V"), numpy_helper.from_array(np.zeros(1, np.float32), "c")]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)
    graph = load_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    box = AbsoluteDelta(0.5).to_box(graph)
    cut = cut_first_layer(Problem(graph, box, InputRegion.point(np.array([1.0, -2.0]))))
    assert cut is not None and cut.name == "h"
    assert cut.z_lo[0] == pytest.approx(-3.0) and cut.z_hi[0] == pytest.approx(1.0)
    assert cut.z_lo[0] <= -3.0 and cut.z_hi[0] >= 1.0  # outward
    assert cut.problem.box.lo["h"].reshape(-1)[0] == 0.0 and cut.problem.box.hi["h"].reshape(-1)[0] >= 1.0
    assert [n.op.op_type for n in cut.problem.graph.nodes] == ["Gemm"]
    # the cut problem's bound on y = 2 h (V, c perturbed too: y <= 2.5 * 1 + 0.5 = 3)
    rows = change_rows(nominal_enclosure(Problem(graph, box, InputRegion.point(np.array([1.0, -2.0])))))
    s = SplitSearch(Problem(graph, box, InputRegion.point(np.array([1.0, -2.0]))), rows)
    assert s.cut is not None
    assert s.root_bounds()[0] == pytest.approx(3.0, abs=1e-9) and s.root_bounds()[0] >= 3.0


@pytest.mark.parametrize("how", ["delta", "bits"])
def test_torch_mlp_box_is_exact_both_ways(tmp_path, how: str) -> None:
    graph = load_model(_torch_mlp(tmp_path))
    x = np.random.default_rng(1).uniform(-1, 1, 5)
    box = AbsoluteDelta(0.05).to_box(graph) if how == "delta" else QuantizationScheme(bits=4).to_box(graph)
    problem = Problem(graph, box, InputRegion.point(x))
    cut = cut_first_layer(problem)
    assert cut is not None
    lo, hi = cut.problem.box.lo[cut.name].reshape(-1), cut.problem.box.hi[cut.name].reshape(-1)
    rng = np.random.default_rng(0)
    # every sampled parameter (corners included) lands inside the box
    for _ in range(300):
        t = rng.integers(0, 2, size=1) if rng.random() < 0.5 else None
        p = {n: (box.lo[n] + (rng.random(box.lo[n].shape) if t is None else rng.integers(0, 2, box.lo[n].shape))
                 * (box.hi[n] - box.lo[n])) for n in box.names}
        h = _first_layer(graph, p, x)
        assert np.all(lo <= h) and np.all(h <= hi)
    # every point of the box (its corners and random points) is reached from inside the original box
    for _ in range(50):
        target = lo + rng.random(lo.shape) * (hi - lo)
        if rng.random() < 0.5:
            target = np.where(rng.random(lo.shape) < 0.5, lo, hi)
        p = cut.lift({**{n: cut.problem.box.nominal[n] for n in cut.problem.box.names}, cut.name: target}, box)
        assert set(p) == set(box.names)
        for n in box.names:
            assert np.all(box.lo[n] <= p[n]) and np.all(p[n] <= box.hi[n])
        np.testing.assert_allclose(_first_layer(graph, p, x), target, atol=1e-9)


def test_bound_on_the_cut_problem_is_never_beaten_by_samples() -> None:
    graph = load_model(random_mlp(5, [6, 10, 8, 3]))
    x = np.random.default_rng(5).uniform(0, 1, 6)
    problem = Problem(graph, AbsoluteDelta(0.05).to_box(graph), InputRegion.point(x))
    rows = change_rows(nominal_enclosure(problem))
    with_cut, without = SplitSearch(problem, rows), SplitSearch(problem, rows, cut=False)
    assert with_cut.cut is not None and without.cut is None
    up_cut = with_cut.root_bounds()
    ys = sampled_outputs(graph, problem.box, x[None], np.random.default_rng(0), 2000)
    y0 = graph.evaluate(x)
    k = y0.shape[1]
    sampled = np.concatenate([np.max(ys - y0, axis=0), np.max(y0 - ys, axis=0)]).reshape(-1)
    assert np.all(sampled[: 2 * k] <= up_cut + 1e-9)
    # the cut gives the exact first layer: never looser than CROWN on the whole graph here
    assert np.all(up_cut <= without.root_bounds() + 1e-6)


def _matmul_graph(shared: bool = False, skip: bool = False, scalar_bias: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["h"]), helper.make_node("MatMul", ["h", "V"], ["y0"])]
    out = "y0"
    if shared:  # the first layer's weight read again later
        nodes += [helper.make_node("MatMul", ["x", "W"], ["u"]), helper.make_node("Add", ["y0", "u"], ["y"])]
        out = "y"
    if skip:  # a later node reads the pre-activation
        nodes += [helper.make_node("Add", ["y0", "z"], ["y"])]
        out = "y"
    width = 4 if (shared or skip) else 3
    inits = [numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(1 if scalar_bias else 4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((4, width)).astype(np.float32), "V")]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_matmul_add_is_cut_and_exact() -> None:
    graph = load_model(_matmul_graph())
    x = np.array([0.3, -0.7, 1.1])
    box = AbsoluteDelta(0.1).to_box(graph)
    cut = cut_first_layer(Problem(graph, box, InputRegion.point(x)))
    assert cut is not None and cut.weight == "W" and cut.bias == "b" and not cut.transB
    lo, hi = cut.problem.box.lo["h"].reshape(-1), cut.problem.box.hi["h"].reshape(-1)
    p = cut.lift({"V": box.nominal["V"], "h": hi}, box)
    np.testing.assert_allclose(_first_layer(graph, p, x), hi, atol=1e-9)
    p = cut.lift({"V": box.nominal["V"], "h": lo}, box)
    np.testing.assert_allclose(_first_layer(graph, p, x), lo, atol=1e-9)


@pytest.mark.parametrize("kind", ["shared", "skip", "scalar_bias", "box_input", "conv"])
def test_no_cut_where_the_layer_is_not_a_box(kind: str, tmp_path) -> None:
    if kind == "conv":
        from torch_exports import export

        graph = load_model(str(export("cnn", tmp_path / "cnn.onnx", "legacy", 17, True)))
        x = np.random.default_rng(0).uniform(0, 1, graph.input_size)
        region = InputRegion.point(x)
    else:
        graph = load_model(_matmul_graph(shared=kind == "shared", skip=kind == "skip", scalar_bias=kind == "scalar_bias"))
        x = np.array([0.3, -0.7, 1.1])
        region = InputRegion.box(x - 0.1, x + 0.1) if kind == "box_input" else InputRegion.point(x)
    assert cut_first_layer(Problem(graph, AbsoluteDelta(0.1).to_box(graph), region)) is None
