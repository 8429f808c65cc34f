"""The search space: action mapping, policies, BitOps and HAQ's budget wall."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paramverify.errors import SpecError
from paramverify.search.space import BitPolicy, BitRange, Budget, float_bitops, policy_bitops

from .nets import layers


def test_action_mapping_covers_every_bit_width_evenly():
    r = BitRange(2, 8)
    grid = [r.from_action(i / 7000) for i in range(7001)]
    counts = {b: grid.count(b) for b in range(2, 9)}
    assert set(grid) == set(range(2, 9))
    assert max(counts.values()) - min(counts.values()) <= 2  # equal-width action intervals
    assert all(r.from_action(r.to_action(b)) == b for b in range(2, 9))
    assert r.from_action(-3.0) == 2 and r.from_action(7.0) == 8


def test_bitops_counts_macs_times_bits():
    ls = layers([100, 1000])
    p = BitPolicy.from_bits(("l0", "l1"), (4, 2))
    assert policy_bitops(ls, p) == 100 * 16 + 1000 * 4
    assert float_bitops(ls) == 1100 * 1024
    weights_only = BitPolicy.from_bits(("l0", "l1"), (4, 2), quantize_activations=False)
    assert policy_bitops(ls, weights_only) == 100 * 4 * 32 + 1000 * 2 * 32
    with pytest.raises(SpecError):
        policy_bitops(ls, BitPolicy.from_bits(("l1", "l0"), (4, 2)))


def test_uniform_bits_is_the_largest_that_fits():
    ls = layers([100, 1000, 10])
    assert Budget(ls, 0.1).uniform_bits() == 8  # 8 bits = 6.25% of float
    assert Budget(ls, 16 / 1024).uniform_bits() == 4
    assert Budget(ls, 15.9 / 1024).uniform_bits() == 3


def test_budget_below_the_minimum_is_a_spec_error():
    with pytest.raises(SpecError, match="below the smallest"):
        Budget(layers([100, 100]), 3.9 / 1024)
    with pytest.raises(SpecError):
        Budget(layers([100]), -0.1)


@settings(max_examples=150, deadline=None)
@given(
    macs=st.lists(st.integers(1, 10_000), min_size=1, max_size=6),
    bits=st.lists(st.integers(0, 12), min_size=6, max_size=6),
    frac=st.floats(4.0 / 1024, 0.2),
)
def test_wall_always_meets_the_budget_and_only_lowers_bits(macs, bits, frac):
    budget = Budget(layers(macs), frac)
    wanted = bits[: len(macs)]
    out = budget.wall(wanted)
    assert budget.fits(budget.policy(out))
    clipped = [min(8, max(2, b)) for b in wanted]
    assert all(2 <= o <= c for o, c in zip(out, clipped))
    if budget.fits(budget.policy(clipped)):
        assert list(out) == clipped  # a policy within budget is left alone


def test_policy_mapping_is_read_by_the_smoothing_quantizer():
    pytest.importorskip("torch")
    from paramverify.smoothing.quant import QuantPolicy

    p = BitPolicy.from_bits(("conv1", "fc"), (3, 8))
    q = QuantPolicy.from_mapping(p.to_quant_mapping())
    assert q.for_layer("conv1").weight.bits == 3 and q.for_layer("conv1").activation.bits == 3
    assert q.for_layer("fc").weight.per_channel and not q.for_layer("fc").activation.symmetric
    assert q.for_layer("other") is None
    w_only = QuantPolicy.from_mapping(BitPolicy.from_bits(("fc",), (5,), False).to_quant_mapping())
    assert w_only.for_layer("fc").activation is None
    assert p.key == "conv1=3/3,fc=8/8"
    assert BitPolicy.from_json(p.to_json()) == p
