"""The symbolic kernel: exact rational semantics of every op, constants exact, capabilities."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netgen import random_mlp
from onnx import TensorProto, helper, numpy_helper

from encoders.base import SolverBackend, TermBuilder
from encoders.bounded import BoundedBuilder
from encoders.smtlib import SmtLibBuilder, smt_number
from encoders.symbolic import Sym, SymbolicKernel, exact_outputs, flat
from encoders.z3_backend import Z3Backend, Z3Builder
from paramverify.errors import CapabilityError
from paramverify.ir import load_model
from paramverify.ops.base import is_const


def test_protocols() -> None:
    assert isinstance(Z3Backend(), SolverBackend)
    assert isinstance(Z3Builder(), TermBuilder)
    assert isinstance(SmtLibBuilder(), TermBuilder)
    assert "exact" in Z3Backend.capabilities and "exp" not in Z3Backend.capabilities


def test_sym_is_not_a_constant() -> None:
    s = Sym(np.array([Fraction(1)], dtype=object))
    assert not is_const(s)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    activation=st.sampled_from(["relu", "leaky_relu", "linear"]),
    hidden=st.integers(1, 5),
)
def test_exact_outputs_match_float64(seed: int, activation: str, hidden: int) -> None:
    model = random_mlp(seed, [3, hidden, 2], activation, normalise=([0.5, -1.0, 2.0], [2.0, 0.5, 3.0]))
    g = load_model(model)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=3)
    params = {n: v + rng.normal(scale=0.1, size=v.shape) for n, v in g.initializers.items() if n.startswith(("W", "b"))}
    exact = np.array([float(v) for v in exact_outputs(g, x, params)])
    np.testing.assert_allclose(exact, g.evaluate(x, params)[0], rtol=1e-12, atol=1e-12)


def test_conv_net_exact_matches_float64() -> None:
    w = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2) / 8
    inits = [
        numpy_helper.from_array(w, "Wc"),
        numpy_helper.from_array(np.array([0.5, -0.25], dtype=np.float32), "bc"),
        numpy_helper.from_array(np.ones((2, 8), dtype=np.float32) / 4, "W"),
        numpy_helper.from_array(np.zeros(2, dtype=np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "Wc", "bc"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    g = load_model(model)
    x = np.linspace(-1, 1, 9)
    exact = [float(v) for v in exact_outputs(g, x)]
    np.testing.assert_allclose(exact, g.evaluate(x)[0], rtol=1e-12)


def test_constants_are_the_exact_binary_values() -> None:
    b = SmtLibBuilder()
    k = SymbolicKernel(b)
    x = Sym(np.array([b.var("x")], dtype=object))
    out = flat(k.mul(x, np.array([0.1])))
    assert out[0] == "(* (/ 3602879701896397 36028797018963968) x)"
    assert smt_number(Fraction(-3, 4)) == "(- (/ 3 4))"
    assert smt_number(Fraction(2)) == "2.0"


def test_constant_folding_is_exact() -> None:
    k = SymbolicKernel(Z3Builder())
    a = k.add(np.array([0.1]), np.array([0.2]))  # 0.1 + 0.2 in real arithmetic, not float64
    assert flat(a)[0] == Fraction(0.1) + Fraction(0.2)
    d = k.div(np.array([1.0]), np.array([3.0]))
    assert flat(d)[0] == Fraction(1, 3)
    r = k.relu(np.array([-0.5, 0.5]))
    assert flat(r) == [0, Fraction(1, 2)]
    lr = k.leaky_relu(np.array([-0.5]), 0.25)
    assert flat(lr) == [Fraction(-1, 8)]


def test_pad_take_transpose_concat_on_terms() -> None:
    b = Z3Builder()
    k = SymbolicKernel(b)
    x = Sym(np.array([[b.var("a"), b.var("b")]], dtype=object))
    p = k.pad(x, ((0, 0), (1, 1)))
    assert k.shape(p) == (1, 4) and flat(p)[0] == 0 and flat(p)[3] == 0
    assert k.shape(k.transpose(x, (1, 0))) == (2, 1)
    assert k.shape(k.concat([x, np.zeros((1, 2))], axis=1)) == (1, 4)
    assert str(flat(k.take(x, np.array([1]), axis=1))[0]) == "b"
    assert isinstance(k.reshape(np.zeros(4), (2, 2)), np.ndarray)  # constants stay constants


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_z3_builder_refuses_transcendentals(op: str) -> None:
    b = Z3Builder()
    k = SymbolicKernel(b)
    x = Sym(np.array([b.var("a")], dtype=object))
    with pytest.raises(CapabilityError, match="z3 has no exp"):
        getattr(k, op)(x)
    with pytest.raises(CapabilityError):
        k.softmax(Sym(np.array([[b.var("c"), b.var("d")]], dtype=object)), -1)


def test_bounded_builder_folds_stable_relus_and_decided_comparisons() -> None:
    b = BoundedBuilder(Z3Builder())
    assert isinstance(b, TermBuilder)
    x = b.declare_bounds(b.var("x"), Fraction(1), Fraction(2))
    k = SymbolicKernel(b)
    pos = flat(k.relu(Sym(np.array([x], dtype=object))))[0]
    assert pos is x  # x >= 1 on its domain: relu(x) = x
    neg = flat(k.relu(k.neg(Sym(np.array([x], dtype=object)))))[0]
    assert neg == 0  # -x <= -1: relu(-x) = 0, folded to a constant
    assert b.compare(">=", x, b.const(Fraction(1))) is True
    assert b.compare(">", x, b.const(Fraction(2))) is False
    assert not isinstance(b.compare(">", x, b.const(Fraction(3, 2))), bool)
    y = b.declare_bounds(b.var("y"), Fraction(-1), Fraction(3))
    prod = b.mul(x, y)
    assert (prod.lo, prod.hi) == (-2, 6)
    assert b.variables.keys() == {"x", "y"} and b.nonlinear


def test_bounded_point_query_agrees_with_plain_builder() -> None:
    """Interval folding changes the formula, never the answer."""
    import z3

    from encoders.encode import LabelQuery, build_network, choose_head, subqueries
    from paramverify.properties import Problem
    from paramverify.specs import AbsoluteDelta, InputRegion

    g = load_model(random_mlp(5, [3, 6, 3]))
    problem = Problem(g, AbsoluteDelta(0.05).to_box(g), InputRegion.point([0.3, -0.1, 0.7]))
    query = LabelQuery()
    answers = []
    for builder in (Z3Builder(z3.Context()), BoundedBuilder(Z3Builder(z3.Context()))):
        net = build_network(problem, choose_head(problem, query), builder)
        got = []
        for sub in subqueries(problem, query):
            f = net.encoding(sub).formula
            if isinstance(f, bool):
                got.append(f)
                continue
            s = z3.SolverFor("QF_NRA", ctx=builder.ctx)
            s.add(f)
            got.append(s.check() == z3.sat)
        answers.append(got)
    assert answers[0] == answers[1]
