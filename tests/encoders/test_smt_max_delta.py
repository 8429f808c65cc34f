"""z3's largest-delta bracket contains the optimum, also when a flip sits exactly at t*.

The scale t is that of the real box ``p0 -/+ t r``; the float box the specs
build is one ulp outside it.  Measured against the float ends, a flip found
at exactly t* used to be reported a hair below t* (issue 11, item 6).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from known_answers import mlp

from encoders.bisect import scale_of, scaled_outward, witness_scale_bound
from encoders.z3_backend import Z3Engine
from paramverify.ir import load_model
from paramverify.options import Options
from paramverify.properties import MaxDelta, Problem, label_kept
from paramverify.specs import AbsoluteDelta, InputRegion, RelativeDelta

ENGINE = Z3Engine()


def _problem(layers: list, x0: list[float], level: float = 0.5) -> Problem:
    g = load_model(mlp(layers, activation="linear"))
    return Problem(g, AbsoluteDelta(1.0).to_box(g), InputRegion.point(x0), level)


def _contains(b, t_star: Fraction) -> bool:
    return Fraction(b.lower) <= t_star <= Fraction(b.upper)


def test_flip_exactly_at_the_optimum_is_inside_the_bracket() -> None:
    # y = (1 + t) 0.25 + t reaches the level 0.40625 exactly at t = 0.125; y >= level is label 1,
    # so the nominal label 0 is flipped there: t* = 0.125 and the witness sits at t* itself
    problem = _problem([([[1.0]], [0.0])], [0.25], level=0.40625)
    b = ENGINE.optimise(problem, MaxDelta(), Options(tolerance=1e-6))
    assert b.complete and b.proof_side == "lower"
    assert _contains(b, Fraction(1, 8)), (b.lower, b.upper)
    assert b.witness is not None and b.witness.replayed
    assert float(b.witness.perturbed_output[0]) == 0.40625  # on the level: flipped, not kept
    assert witness_scale_bound(problem, b.witness.parameters) <= Fraction(b.upper)
    assert b.upper - b.lower <= 1e-6


def test_output_reaching_the_level_from_above_keeps_the_label() -> None:
    # y = 0.5 (1 - t) - t = level 0.3125 at t = 0.125: still label 1 (kept), flips only beyond
    problem = _problem([([[1.0]], [0.0])], [0.5], level=0.3125)
    b = ENGINE.optimise(problem, MaxDelta(), Options(tolerance=1e-6))
    assert b.complete and _contains(b, Fraction(1, 8)), (b.lower, b.upper)
    assert b.witness is not None and float(b.witness.perturbed_output[0]) < 0.3125


@pytest.mark.parametrize("winner", [0, 1])
def test_a_tie_of_two_logits_at_the_optimum_is_a_flip(winner: int) -> None:
    # the winner's logit 1 - 2t meets the rival's 0.5 + 2t at t = 0.125; a tie is not kept
    w = [[1.0], [0.0]] if winner == 0 else [[0.0], [1.0]]
    b0 = [0.0, 0.5] if winner == 0 else [0.5, 0.0]
    problem = _problem([(w, b0)], [1.0])
    b = ENGINE.optimise(problem, MaxDelta(), Options(tolerance=1e-6))
    assert b.complete and _contains(b, Fraction(1, 8)), (b.lower, b.upper)
    wit = b.witness
    assert wit is not None and wit.replayed
    assert not label_kept(wit.nominal_output[None], wit.perturbed_output[None], problem.level)[0]


def test_scaled_outward_covers_the_real_scaled_box() -> None:
    # nominal 3, radius 1, t = 1e-17: rounded to nearest, box.scaled(t) collapses onto 3.0
    g = load_model(mlp([([[3.0]], [-5.0])], activation="linear"))
    box = AbsoluteDelta(1.0).to_box(g)
    t = 1e-17
    near, out = box.scaled(t), scaled_outward(box, t)
    for n in box.names:
        nom = Fraction(float(box.nominal[n].reshape(-1)[0]))
        lo, hi = nom - Fraction(t), nom + Fraction(t)  # the real box at scale t
        assert Fraction(float(out.lo[n].reshape(-1)[0])) <= lo and Fraction(float(out.hi[n].reshape(-1)[0])) >= hi
        # box.scaled rounds outward too (a few ulps wider than the exact rounding)
        assert Fraction(float(near.lo[n].reshape(-1)[0])) <= lo and Fraction(float(near.hi[n].reshape(-1)[0])) >= hi
        assert out.lo[n].reshape(-1)[0] >= near.lo[n].reshape(-1)[0] and out.hi[n].reshape(-1)[0] <= near.hi[n].reshape(-1)[0]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)


@settings(max_examples=150, deadline=None)
@given(nom=finite, radius=st.floats(min_value=1e-9, max_value=1e3), s=st.floats(min_value=1e-6, max_value=1.0),
       up=st.booleans(), relative=st.booleans())
def test_witness_scale_bound_is_never_below_the_real_scale(nom: float, radius: float, s: float, up: bool, relative: bool) -> None:
    nom = float(np.float32(nom))  # initializers are float32
    g = load_model(mlp([([[nom]], [0.0])], activation="linear"))
    if relative and nom != 0:
        box = RelativeDelta(radius, ("W1",)).to_box(g)
        real_r = Fraction(radius) * abs(Fraction(nom))
    else:
        box = AbsoluteDelta(radius, ("W1",)).to_box(g)
        real_r = Fraction(radius)
    p = float(np.nextafter(nom + (1 if up else -1) * s * float(real_r), np.inf if up else -np.inf))
    dev = abs(Fraction(p) - Fraction(nom))
    bound = witness_scale_bound(Problem(g, box, InputRegion.point([0.0]), 0.5), {"W1": np.array([[p]])})
    ulp = Fraction(float(np.spacing(abs(nom)))) if nom else Fraction(0)
    if bound is None:  # only a radius of a few ulps leaves no provable room
        assert real_r <= 4 * ulp
        return
    assert bound >= dev / real_r
    if real_r >= 2**30 * ulp:  # and the bound is tight, not vacuous
        assert bound <= (dev / real_r) * (1 + Fraction(1, 10**8))


def test_float_ends_understate_the_real_scale() -> None:
    # the measure that the bracket used to rely on: against float ends that were widened by an ulp
    # 0.125 became 0.125 - 1 ulp; absolute boxes now have exact ends where float64 computes
    # p0 +- delta exactly, so it may be exact, but it never exceeds the real scale, and the
    # bracket's bound is never below it
    problem = _problem([([[1.0]], [0.0])], [0.25], level=0.40625)
    params = {"W1": np.array([[1.125]]), "b1": np.array([0.125])}
    assert scale_of(problem, params) <= Fraction(1, 8) <= witness_scale_bound(problem, params)
