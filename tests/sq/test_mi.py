"""Mutual information from the PMFs: hand-computed answers, on PMFs and on a toy SQ network."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from paramverify.sq.mi import average_mi, entropy_bits, max_mi_bits, mutual_information  # noqa: E402
from paramverify.sq.model import SQNet  # noqa: E402
from paramverify.sq.quantizer import SQConfig  # noqa: E402


def _hb(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_known_answers_on_pmfs():
    # disjoint supports, two equally likely samples: I = H(X~) = 1 bit
    pm = torch.tensor([[[0.25, 0.75, 0, 0]], [[0, 0, 0.75, 0.25]]], dtype=torch.float64)
    assert float(mutual_information(pm)[0]) == pytest.approx(1.0, abs=1e-12)
    # overlapping: marginal [0.25, 0.75]: H = 0.811278; mean H(p_s) = (1 + 0) / 2
    pm = torch.tensor([[[0.5, 0.5]], [[0.0, 1.0]]], dtype=torch.float64)
    assert float(mutual_information(pm)[0]) == pytest.approx(_hb(0.25) - 0.5, abs=1e-12)
    # identical PMFs carry no information; two features are averaged
    pm = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5], [0.0, 1.0]]], dtype=torch.float64)
    assert mutual_information(pm).tolist() == pytest.approx([0.0, 1.0], abs=1e-12)
    assert float(average_mi(pm)) == pytest.approx(0.5, abs=1e-12)
    assert float(entropy_bits(torch.tensor([0.5, 0.25, 0.25, 0.0]))) == pytest.approx(1.5)
    assert max_mi_bits(128, 16) == 4.0


def _toy() -> SQNet:
    """x in [0, 1] -> input SQ on 2 bins {0, 1} -> t = 0.5 x~ + 0.25 -> feature SQ on 4 bins {0, 1/3, 2/3, 1}."""
    lin = nn.Linear(1, 1).double()
    with torch.no_grad():
        lin.weight.fill_(0.5)
        lin.bias.fill_(0.25)
    return SQNet(lin, None, SQConfig(bits=1, alpha=1), SQConfig(bits=2, alpha=1)).double()


def test_known_answer_on_a_toy_network():
    net = _toy()
    # x~ = 0 -> t = 0.25 = 0.75 bins -> PMF (0.25, 0.75, 0, 0); x~ = 1 -> t = 0.75 -> (0, 0, 0.75, 0.25)
    with torch.no_grad():
        _, p0 = net.feature_sq.pmf(torch.tensor([[0.25]], dtype=torch.float64))
        full = net.feature_pmfs(torch.tensor([[0.0], [1.0]], dtype=torch.float64), 3)
    assert full[0, 0, 0].tolist() == pytest.approx([0.25, 0.75, 0.0, 0.0])
    assert full[0, 1, 0].tolist() == pytest.approx([0.0, 0.0, 0.75, 0.25])
    # clean images on a bin of the input SQ: every input sample is the same, so I = 0
    assert net.mi_per_image(torch.tensor([[0.0], [1.0]], dtype=torch.float64), 8).tolist() == [0.0, 0.0]
    # x = 0.25: x~ = 1 with probability 1/4; with k ones among n samples, I = H_b(k / n) exactly
    n = 64
    x = torch.full((1, 1), 0.25, dtype=torch.float64)
    net.set_generator(torch.Generator().manual_seed(11))
    with torch.no_grad():
        mi = float(net.mi_per_image(x, n)[0])
    net.set_generator(torch.Generator().manual_seed(11))
    k = int(net.quantize_input(x.expand(n, 1).clone()).sum())
    assert 0 < k < n
    assert mi == pytest.approx(_hb(k / n), abs=1e-12)
    assert _hb(k / n) == pytest.approx(_hb(0.25), abs=0.15)  # and it converges to H_b(1/4) = 0.811 bits
