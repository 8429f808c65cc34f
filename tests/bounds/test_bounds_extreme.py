"""Sound bounds at every magnitude: saturated sigmoid / tanh far outside +-1e6 (issue 11, item 1).

The relaxations used to clip the pre-activation interval to +-1e6 before
building their lines; a line that is sound on the clipped interval leaves the
bounded curve far outside it, and the engine proved a label that flips on
onnxruntime.  The lines are checked here against the function evaluated
with 60 significant digits (mpmath), at the ends, the kink and a log-spaced
grid of intervals reaching 1e300, and the two models of the issue must not be
verified (the engine falsifies them with a replayed counterexample).
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from paramverify import api
from paramverify.bounds.differential import sigmoidal_difference
from paramverify.bounds.interval import Interval, isigmoid, isoftmax, sigmoid_enclosure, sigmoid_value
from paramverify.bounds.relax import SIGMOID, TANH, relu_relaxation, sigmoidal_relaxation
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.results import Falsified, Verified

DPS = 60


def _sigmoid(z: mpmath.mpf) -> mpmath.mpf:
    with mpmath.workdps(DPS):
        return 1 / (1 + mpmath.exp(-z))


def _tanh(z: mpmath.mpf) -> mpmath.mpf:
    with mpmath.workdps(DPS):
        return mpmath.tanh(z)


_EXACT = {"sigmoid": _sigmoid, "tanh": _tanh}
_FN = {"sigmoid": SIGMOID, "tanh": TANH}
_MAGS = [0.0, 1e-3, 1.0, 30.0, 40.0, 710.0, 1e4, 1e6, 1e6 + 1, 3e6, 1e8, 1e12, 1e300]


def _intervals() -> list[tuple[float, float]]:
    out = []
    for a in _MAGS:
        for b in _MAGS:
            out += [(-a, b), (a, a + max(b, 1.0)), (-a - max(b, 1.0), -a)]
    return out


def _points(l: float, u: float) -> list[float]:
    pts = {l, u, min(max(0.0, l), u)}
    pts.update(float(v) for v in np.linspace(l, u, 33))
    for m in _MAGS:
        for s in (-1.0, 1.0):
            if l <= s * m <= u:
                pts.add(s * m)
    return sorted(pts)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_sigmoidal_lines_enclose_at_every_magnitude(name: str) -> None:
    ivs = _intervals()
    l = np.array([a for a, _ in ivs])
    u = np.array([b for _, b in ivs])
    r = sigmoidal_relaxation(_FN[name], l, u)
    for arr in (r.a_up, r.b_up, r.a_lo, r.b_lo):
        assert np.all(np.isfinite(arr))
    f = _EXACT[name]
    with mpmath.workdps(DPS):
        for i, (li, ui) in enumerate(ivs):
            lines = [mpmath.mpf(float(v[i])) for v in (r.a_up, r.b_up, r.a_lo, r.b_lo)]
            for z in _points(li, ui):
                zm = mpmath.mpf(z)
                fz = f(zm)
                assert lines[0] * zm + lines[1] >= fz, f"{name} upper line below the curve at z={z} on [{li}, {ui}]"
                assert lines[2] * zm + lines[3] <= fz, f"{name} lower line above the curve at z={z} on [{li}, {ui}]"


def test_the_old_clipped_line_was_wrong_and_the_new_one_is_tight() -> None:
    # [-1e8, 1000]: a line clipped to [-1e6, 1000] has slope > 0 and is negative at -1e8
    r = sigmoidal_relaxation(SIGMOID, np.array([-1e8]), np.array([1000.0]))
    assert r.a_up[0] * -1e8 + r.b_up[0] >= 0.0
    # saturated intervals get (nearly) constant lines, tight to the curve
    sat = sigmoidal_relaxation(SIGMOID, np.array([50.0, -1e8]), np.array([1e8, -50.0]))
    assert np.all(sat.a_up <= 1e-15) and np.all(sat.a_lo <= 1e-15)
    assert sat.b_lo[0] >= 1 - 1e-12 and sat.b_up[1] <= 1e-12


@pytest.mark.parametrize("fn", [SIGMOID, TANH])
def test_infinite_or_nan_ends_give_constant_lines(fn) -> None:
    l = np.array([-np.inf, -1.0, -np.inf, np.nan])
    u = np.array([1.0, np.inf, np.inf, 1.0])
    r = sigmoidal_relaxation(fn, l, u)
    assert np.all(r.a_up == 0.0) and np.all(r.a_lo == 0.0)
    floor = 0.0 if fn is SIGMOID else -1.0
    assert r.b_lo[0] == floor and r.b_up[1] == 1.0 and r.b_lo[3] == floor
    assert r.b_up[0] >= float(_EXACT["sigmoid" if fn is SIGMOID else "tanh"](mpmath.mpf(1)))


def test_relu_lines_enclose_at_every_magnitude() -> None:
    ivs = _intervals()
    l = np.array([a for a, _ in ivs])
    u = np.array([b for _, b in ivs])
    for alpha in (0.0, 0.1):
        r = relu_relaxation(l, u, alpha)
        for i, (li, ui) in enumerate(ivs):
            a_up, b_up, a_lo, b_lo = (Fraction(float(v[i])) for v in (r.a_up, r.b_up, r.a_lo, r.b_lo))
            for z in _points(li, ui):
                zf = Fraction(z)
                f = zf if zf >= 0 else Fraction(alpha) * zf
                assert a_lo * zf + b_lo <= f <= a_up * zf + b_up


# ---------------------------------------------------------------------------
# the models of the issue


def _issue_model(act: str) -> onnx.ModelProto:
    """x -> z = 1000 x; y = [act(z), z] @ [1, -0.001] - 99970 (Concat, two Gemms)."""
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["z"], transB=1),
        helper.make_node(act, ["z"], ["h"]),
        helper.make_node("Concat", ["h", "z"], ["hz"], axis=1),
        helper.make_node("Gemm", ["hz", "W2", "b2"], ["y"], transB=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([[1000]], np.float32), "W1"),
        numpy_helper.from_array(np.array([0], np.float32), "b1"),
        numpy_helper.from_array(np.array([[1, -0.001]], np.float32), "W2"),
        numpy_helper.from_array(np.array([-99970], np.float32), "b2"),
    ]
    graph = helper.make_graph(nodes, f"issue11_{act}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh"])
def test_saturated_activation_label_is_falsified_not_verified(act: str) -> None:
    g = load_model(_issue_model(act))
    problem = api.make_problem(g, delta=0.01, params=["W1"], domain=[(-100000.0, 1.0)])
    v = api.verify(problem, "label", backend="bounds")
    assert not isinstance(v, Verified)
    assert isinstance(v, Falsified) and v.counterexample.replayed
    # the replayed flip is a real one: the label of y against 0.5 differs
    cex = v.counterexample
    y0 = g.evaluate(cex.input)[0, 0]
    yp = g.evaluate(cex.input, cex.parameters)[0, 0]
    assert (y0 >= 0.5) != (yp >= 0.5)


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh"])
def test_saturated_activation_eps_bound_contains_the_true_change(act: str) -> None:
    # at x = -99971 with W1 = 999.99 the output moves by about 1 (the issue's flip)
    g = load_model(_issue_model(act))
    problem = api.make_problem(g, delta=0.01, params=["W1"], domain=[(-100000.0, 1.0)])
    b = api.bound(problem, "eps", backend="bounds", options=Options(timeout_s=2.0))
    y0 = g.evaluate(np.array([-99971.0]))[0, 0]
    yp = g.evaluate(np.array([-99971.0]), {"W1": np.array([[999.99]])})[0, 0]
    assert b.upper >= abs(yp - y0) >= 0.99


# ---------------------------------------------------------------------------
# interval enclosures and the difference rule in deep saturation


def test_sigmoid_enclosure_is_sound_where_expit_underflows() -> None:
    # scipy's expit returns 0 below about -709.8; the true value is a subnormal up to 4.5e-309
    z = np.array([-40.5, -700.0, -709.9, -711.0, -730.0, -744.0, -746.0, -1e8])
    lo, hi = sigmoid_enclosure(z)
    for zi, a, b in zip(z, lo, hi):
        exact = _EXACT["sigmoid"](mpmath.mpf(float(zi)))
        assert mpmath.mpf(float(a)) <= exact <= mpmath.mpf(float(b)), zi
    iv = isigmoid(Interval(np.array([-711.0]), np.array([-710.0])))
    assert mpmath.mpf(float(iv.hi[0])) >= _EXACT["sigmoid"](mpmath.mpf(-710.0))


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_difference_rule_encloses_at_every_magnitude(name: str) -> None:
    fn, lip = (sigmoid_value, 0.25) if name == "sigmoid" else (np.tanh, 1.0)
    f = _EXACT[name]
    cases = [(-1e8, -1e8 + 5.0, 0.0, 1e3), (-720.0, -700.0, -5.0, 5.0), (-1e6, 1e6, -1e4, 1e4),
             (1e6, 1e8, -1e7, 1e7), (-1e300, 1e300, -1e300, 1e300), (-711.0, -709.0, 0.5, 2.0)]
    for zl, zh, dl, dh in cases:
        iv = sigmoidal_difference(fn, lip, Interval(np.array([zl]), np.array([zh])), Interval(np.array([dl]), np.array([dh])))
        lo, hi = mpmath.mpf(float(iv.lo[0])), mpmath.mpf(float(iv.hi[0]))
        with mpmath.workdps(DPS):
            for z in np.linspace(zl, zh, 9):
                for d in np.linspace(dl, dh, 9):
                    v = f(mpmath.mpf(float(z)) + mpmath.mpf(float(d))) - f(mpmath.mpf(float(z)))
                    assert lo <= v <= hi, (name, z, d)


def test_softmax_enclosure_is_sound_when_exp_overflows() -> None:
    x = Interval(np.array([[-1e8, 0.0, 1e6]]), np.array([[-1e8 + 1, 800.0, 1e8]]))
    out = isoftmax(x, 1)
    with mpmath.workdps(DPS):
        for pt in ([-1e8, 0.0, 1e6], [-1e8 + 1, 800.0, 1e6], [-1e8, 800.0, 1e6 + 0.5]):
            zs = [mpmath.mpf(v) for v in pt]
            m = max(zs)
            den = sum(mpmath.exp(z - m) for z in zs)
            for i, z in enumerate(zs):
                s = mpmath.exp(z - m) / den
                assert mpmath.mpf(float(out.lo[0, i])) <= s <= mpmath.mpf(float(out.hi[0, i]))


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh"])
def test_issue_command_line_no_longer_says_verified(act: str, tmp_path, capsys) -> None:
    from paramverify.cli import main

    path = tmp_path / f"{act}.onnx"
    onnx.save(_issue_model(act), str(path))
    code = main(["verify", str(path), "--property", "label", "--delta", "0.01", "--params", "W1", "--domain=-100000:1"])
    out = capsys.readouterr().out
    assert "VERIFIED" not in out.split("\n")[0]
    assert code == 1 and out.startswith("FALSIFIED") and "replayed on onnxruntime" in out
