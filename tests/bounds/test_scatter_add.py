"""``scatter_add`` (the backward pass of gathers: conv windows, pooling) equals ``np.add.at``."""

from __future__ import annotations

import numpy as np
import pytest

from paramverify.bounds.scatter import scatter_add


@pytest.mark.parametrize("lead", [(), (3,), (2, 5), (0, 4)])
def test_scatter_add_matches_add_at(lead) -> None:
    rng = np.random.default_rng(0)
    size, n = 7, 30
    index = rng.integers(0, size, n)
    values = rng.integers(-50, 50, lead + (n,)).astype(np.float64)  # integers: every order sums exactly
    expected = np.zeros(lead + (size,))
    np.add.at(expected, (..., index), values)
    got = scatter_add(values, index, size)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
