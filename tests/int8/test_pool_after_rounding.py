"""A rounding read only by a MaxPool moves after it: the same function, tighter bounds.

``max(fq(a), fq(b)) = fq(max(a, b))`` for the non-decreasing rounding ``fq``,
so the lowering may round once per pooled value instead of once per tap.
Checked on torch.onnx.export's CNN quantized by onnxruntime (QDQ and
QOperator): the lowering still reproduces onnxruntime's int8 outputs, the
rounding now sits after the MaxPool, and the proved bound on
max |int8(x) - float(x)| is no wider than with the rounding before it (and
never beaten by a sample).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from int8_models import VARIANTS, export_float, ort_outputs, quantize, sample_ball
from onnx import helper

from paramverify import api
from paramverify.bounds.crown import LinearBounds
from paramverify.ir import Node
from paramverify.ops.quant import ActivationQuantize
from paramverify.options import Options
from paramverify.quantized.match import pool_after_rounding

RADIUS = 0.02
X0 = np.random.default_rng(5).uniform(0.2, 0.8, 36)
STATIC = [v for v in VARIANTS if v[0] != "dynamic"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("pool")
    f = export_float(d / "float.onnx")
    return f, {v: quantize(f, d / f"{v[0]}_{v[1]}_{v[2]}.onnx", *v) for v in STATIC}


def _rounding_before_pool(g):
    """The lowering with every rounding that follows a MaxPool put back before it."""
    nodes = list(g.nodes)
    for k in range(1, len(nodes)):
        pool, q = nodes[k - 1], nodes[k]
        if type(pool.op).__name__ == "MaxPool" and isinstance(q.op, ActivationQuantize) and q.inputs[0] == pool.output:
            nodes[k - 1] = Node(q.name, q.op, (pool.inputs[0],) + q.inputs[1:], q.output + "__tap")
            nodes[k] = Node(pool.name, pool.op, (q.output + "__tap",), q.output)
    return replace(g, nodes=tuple(nodes))


@pytest.mark.parametrize("variant", STATIC, ids=lambda v: "-".join(str(x) for x in v))
def test_rounding_after_maxpool_same_function_and_no_wider_bound(models, variant):
    f, qs = models
    problem = api.make_problem(str(f), quantized_model=str(qs[variant]), x0=X0, radius=RADIUS)
    g = problem.graph
    pools = [n for n in g.nodes if type(n.op).__name__ == "MaxPool"]
    assert pools and all(not any(isinstance(m.op, ActivationQuantize) and m.output == p.inputs[0] for m in g.nodes)
                         for p in pools)
    assert all(any(isinstance(m.op, ActivationQuantize) and m.inputs[0] == p.output for m in g.nodes) for p in pools)

    xs = sample_ball(X0, RADIUS, 2_000)
    values = {n: problem.box.lo[n] for n in problem.box.names}
    y_int8, y_float = ort_outputs(qs[variant], xs), ort_outputs(f, xs, optimize=False)
    before = _rounding_before_pool(g)
    assert np.max(np.abs(g.evaluate(xs, values) - y_int8)) < 1e-5
    assert np.max(np.abs(before.evaluate(xs, values) - y_int8)) < 1e-5

    # the int8 outputs' linear bounds over the ball (no search: deterministic)
    widths = []
    for graph in (g, before):
        lb = LinearBounds(graph, problem.box, problem.region.lo[None], problem.region.hi[None])
        lb.refine()
        eye = np.eye(graph.n_outputs)
        u = lb.upper([(lb.y, lb.rows(lb.y, np.concatenate([eye, -eye])))])[:, 0]
        assert np.all(y_int8 <= u[: len(eye)] + 1e-9) and np.all(-y_int8 <= u[len(eye):] + 1e-9)
        widths.append(u[: len(eye)] + u[len(eye):])
    assert np.all(widths[0] <= widths[1] + 1e-9) and np.sum(widths[0]) < np.sum(widths[1])

    bracket = api.bound(problem, "eps", options=Options(timeout_s=2, tolerance=1e-3))
    assert np.max(np.abs(y_int8 - y_float)) <= bracket.upper


def _q(name, src, out):
    return helper.make_node("ActivationQuantize", [src, "__int8_enable"], [out], name=name, domain="ai.paramverify",
                            scale=0.1, zero_point=0, qmin=-128, qmax=127)


def test_only_a_rounding_read_by_the_pool_alone_moves():
    pool = helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2])
    nodes = [_q("q", "a", "r"), pool]
    moved = pool_after_rounding(nodes, "y")
    assert [n.op_type for n in moved] == ["MaxPool", "ActivationQuantize"]
    assert list(moved[0].input) == ["a"] and list(moved[1].output) == ["p"]
    assert moved[1].input[0] == moved[0].output[0]
    # a second reader of the rounded value keeps the rounding where it is
    other = helper.make_node("Relu", ["r"], ["s"], name="other")
    assert pool_after_rounding([_q("q", "a", "r"), pool, other], "y") == [_q("q", "a", "r"), pool, other]
    # so does a rounding whose value is the graph's output
    assert [n.op_type for n in pool_after_rounding(nodes, "r")] == ["ActivationQuantize", "MaxPool"]
    # and a dynamic rounding (its grid comes from the whole tensor)
    dyn = helper.make_node("DynamicActivationQuantize", ["a", "__int8_enable"], ["r"], name="d", domain="ai.paramverify")
    assert [n.op_type for n in pool_after_rounding([dyn, pool], "y")] == ["DynamicActivationQuantize", "MaxPool"]
    assert isinstance(moved[0], onnx.NodeProto)
