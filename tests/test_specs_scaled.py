"""ParamBox.scaled rounds outward: the float box covers the real-number scaled box."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramverify.errors import SpecError
from paramverify.specs import ParamBox


def _box(nom: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> ParamBox:
    return ParamBox({"W": nom}, {"W": lo}, {"W": hi}, "test")


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)


@settings(max_examples=200, deadline=None)
@given(nom=finite, below=st.floats(min_value=0.0, max_value=1e3), above=st.floats(min_value=0.0, max_value=1e3),
       t=st.floats(min_value=0.0, max_value=50.0, allow_subnormal=False))
def test_scaled_box_covers_the_real_scaled_box(nom: float, below: float, above: float, t: float) -> None:
    lo, hi = np.nextafter(nom - below, -np.inf), np.nextafter(nom + above, np.inf)
    box = _box(np.array([nom]), np.array([lo]), np.array([hi]))
    s = box.scaled(t)
    tq = Fraction(t)
    real_lo = Fraction(nom) + tq * (Fraction(float(lo)) - Fraction(nom))
    real_hi = Fraction(nom) + tq * (Fraction(float(hi)) - Fraction(nom))
    assert Fraction(float(s.lo["W"][0])) <= real_lo
    assert Fraction(float(s.hi["W"][0])) >= real_hi
    assert s.lo["W"][0] <= nom <= s.hi["W"][0]


def test_rounding_to_nearest_would_miss_the_real_box() -> None:
    # nominal 3, end 4, t = 1e-17: 3 + 1e-17 rounds to 3.0, a box that misses the real one
    box = _box(np.array([3.0]), np.array([2.0]), np.array([4.0]))
    assert 3.0 + 1e-17 * (4.0 - 3.0) == 3.0
    s = box.scaled(1e-17)
    assert s.hi["W"][0] > 3.0 and s.lo["W"][0] < 3.0


def test_scale_one_and_zero_are_exact() -> None:
    box = _box(np.array([0.1, 2.0]), np.array([0.05, 1.0]), np.array([0.2, 2.5]))
    assert box.scaled(1.0) is box
    z = box.scaled(0.0)
    assert np.array_equal(z.lo["W"], box.nominal["W"]) and np.array_equal(z.hi["W"], box.nominal["W"])


def test_equal_ends_stay_exact() -> None:
    box = _box(np.array([1.5]), np.array([1.5]), np.array([2.0]))
    s = box.scaled(0.3)
    assert s.lo["W"][0] == 1.5 and s.hi["W"][0] > 1.5


@pytest.mark.parametrize("t", [-0.5, float("nan"), float("inf")])
def test_bad_scale_is_refused(t: float) -> None:
    box = _box(np.array([1.0]), np.array([0.0]), np.array([2.0]))
    with pytest.raises(SpecError):
        box.scaled(t)
