"""Every new op: equal to onnxruntime, sound in every bound kernel, exact in rationals.

* differential: float64 evaluation == onnxruntime (float32) on random inputs;
* soundness by sampling: no sampled input and parameter in the boxes lands
  outside the interval kernel's, the differential kernel's or differential
  CROWN's enclosures of the nominal output, the perturbed output and their
  difference;
* exact: the rational (z3) semantics equals float64 evaluation for the
  piecewise-linear ops, and the autodiff kernel's gradient matches finite
  differences.
"""

from __future__ import annotations

import numpy as np
import pytest

from encoders.symbolic import exact_outputs
from paramverify.bounds.autodiff import AutodiffKernel, Tape
from paramverify.bounds.crown import linear_outputs
from paramverify.bounds.interval import Interval, IntervalKernel
from paramverify.bounds.sound import box_outputs
from paramverify.ir import load_model
from paramverify.replay import run_onnxruntime
from paramverify.specs import AbsoluteDelta
from op_cases import CASES, build

IDS = [c.name for c in CASES]


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request):
    return request.param, load_model(build(request.param))


def test_matches_onnxruntime(case) -> None:
    c, g = case
    x = np.random.default_rng(1).normal(size=(4, g.input_size))
    ours = g.evaluate(x)
    ort = run_onnxruntime(g, x)
    assert ours.shape == ort.shape
    np.testing.assert_allclose(ours, ort, rtol=1e-5, atol=1e-5)


def _samples(g, box, lo, hi, rng, k=40):
    """(x, params) pairs: random interior points and random corners."""
    for i in range(k):
        corner = i % 2 == 1
        u = rng.integers(0, 2, size=lo.shape) if corner else rng.random(lo.shape)
        x = lo + (hi - lo) * u
        params = {}
        for name in box.names:
            v = rng.integers(0, 2, size=box.lo[name].shape) if corner else rng.random(box.lo[name].shape)
            params[name] = box.lo[name] + (box.hi[name] - box.lo[name]) * v
        yield x, params


def _inside(v, iv, what):
    slack = 1e-9 * (1 + np.abs(v))
    assert np.all(iv.lo - slack <= v) and np.all(v <= iv.hi + slack), f"{what}: sample outside the proved enclosure"


def test_bound_kernels_are_sound_by_sampling(case) -> None:
    c, g = case
    rng = np.random.default_rng(2)
    box = AbsoluteDelta(0.05).to_box(g)
    x0 = rng.normal(size=(1, g.input_size))
    lo, hi = x0 - 0.1, x0 + 0.1
    params_iv = {n: Interval(box.lo[n], box.hi[n]) for n in box.names}
    out_iv = g.run(IntervalKernel(), Interval(g.as_batch(lo), g.as_batch(hi)), params_iv)
    out_iv = Interval(out_iv.lo.reshape(1, -1), out_iv.hi.reshape(1, -1))
    diff = box_outputs(g, box, lo, hi)
    crown = linear_outputs(g, box, lo, hi)  # no CapabilityError: CROWN holds every new op
    for x, params in _samples(g, box, lo[0], hi[0], rng):
        y0 = g.evaluate(x)
        yp = g.evaluate(x, params)
        _inside(yp, out_iv, "interval kernel")
        _inside(y0, diff.n, "differential kernel, nominal")
        _inside(yp, diff.p, "differential kernel, perturbed")
        _inside(yp - y0, diff.d, "differential kernel, difference")
        _inside(y0, crown[0], "CROWN, nominal")
        _inside(yp, crown[1], "CROWN, perturbed")
        _inside(yp - y0, crown[2], "CROWN, difference")


def test_exact_rational_semantics(case) -> None:
    c, g = case
    if not c.piecewise_linear:
        pytest.skip("transcendental: no rational semantics (the symbolic kernel raises CapabilityError)")
    x = np.random.default_rng(3).normal(size=g.input_size)
    exact = np.array([float(v) for v in exact_outputs(g, x)])
    np.testing.assert_allclose(exact, g.evaluate(x)[0], rtol=1e-12, atol=1e-12)


def test_autodiff_gradient(case) -> None:
    c, g = case
    rng = np.random.default_rng(4)
    x = g.as_batch(rng.normal(size=g.input_size))
    w = g.initializers["Wc"]
    seed = rng.normal(size=g.evaluate(x).shape)

    def f(wc):
        return float(np.sum(g.evaluate(x, {"Wc": wc}) * seed))

    tape = Tape()
    wv = tape.var(w)
    out = g.run(AutodiffKernel(tape), x, {"Wc": wv})
    total = tape.node(np.sum(out.value.reshape(seed.shape) * seed), [(out, lambda gr: gr * seed.reshape(out.value.shape))])
    tape.backward(total)
    eps = 1e-6
    for idx in [(0, 0, 1, 1), (1, 0, 0, 2)]:
        d = np.zeros_like(w)
        d[idx] = eps
        fd = (f(w + d) - f(w - d)) / (2 * eps)
        assert abs(wv.grad[idx] - fd) <= 1e-4 * (1 + abs(fd))


def test_z3_is_exact_on_a_tiny_pooling_net() -> None:
    """Conv -> Clip -> Pad -> MaxPool -> AveragePool at a point: z3's bracket is tight, covers
    every sampled change, and agrees with the bound engine's proved upper end."""
    from onnx import TensorProto, helper, numpy_helper

    from encoders.z3_backend import Z3Engine
    from paramverify import api
    from paramverify.options import Options
    from paramverify.properties import MaxEpsilon

    nodes = [helper.make_node("Conv", ["x", "W", "b"], ["c"], kernel_shape=[2, 2]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["k"]),
             helper.make_node("Pad", ["k", "pads"], ["p"]),
             helper.make_node("MaxPool", ["p"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2]),
             helper.make_node("Flatten", ["a"], ["y"])]
    inits = [numpy_helper.from_array(np.array([[[[0.5, -1.0], [1.5, 0.25]]]], np.float32), "W"),
             numpy_helper.from_array(np.array([0.1], np.float32), "b"),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"), numpy_helper.from_array(np.array(1.5, np.float32), "hi"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)
    g = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    x0 = np.array([0.3, -0.2, 0.8, 0.5, 0.1, -0.6, 0.9, 0.4, 0.2])
    problem = api.make_problem(g, delta=0.2, x0=x0)
    exact = Z3Engine().optimise(problem, MaxEpsilon(), Options(tolerance=1e-6, timeout_s=60, query_timeout_s=20))
    assert exact.complete and exact.upper - exact.lower <= 1e-5
    rng = np.random.default_rng(5)
    y0 = g.evaluate(x0)
    for i in range(200):
        u = (lambda s: rng.integers(0, 2, s)) if i % 2 else rng.random
        params = {n: problem.box.lo[n] + (problem.box.hi[n] - problem.box.lo[n]) * u(problem.box.lo[n].shape) for n in problem.box.names}
        assert np.max(np.abs(g.evaluate(x0, params) - y0)) <= exact.upper + 1e-12
    engine = api.bound(problem, "eps")
    assert engine.upper >= exact.lower - 1e-12 and exact.upper >= engine.lower - 1e-12


def test_refusals_name_the_op_and_the_kernel() -> None:
    """An integer Cast of a data tensor, Erf under z3, a training-mode Dropout: clear errors."""
    from onnx import TensorProto, helper

    from paramverify.errors import CapabilityError, ModelError
    from op_cases import OpCase

    g = load_model(build(OpCase("int-cast", [helper.make_node("Cast", ["c"], ["i"], to=TensorProto.INT32),
                                             helper.make_node("Cast", ["i"], ["o"], to=TensorProto.FLOAT)])))
    with pytest.raises(CapabilityError, match="Cast to INT32 of a data tensor"):
        g.run(IntervalKernel(), Interval.const(g.as_batch(np.zeros(g.input_size))), {"Wc": Interval(g.initializers["Wc"] - 0.1, g.initializers["Wc"] + 0.1)})
    from paramverify import api

    erf = load_model(build([c for c in CASES if c.name == "erf"][0]))
    with pytest.raises(CapabilityError, match="Erf"):
        api.verify(api.make_problem(erf, delta=0.01, x0=np.zeros(25)), "eps", epsilon=1.0, backend="z3")
    training = OpCase("dropout-train", [helper.make_node("Dropout", ["c", "", "yes"], ["o"])],
                      inits={"yes": np.array(True)})
    with pytest.raises(ModelError, match="training_mode"):
        load_model(build(training))
