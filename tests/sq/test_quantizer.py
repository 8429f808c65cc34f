"""The stochastic quantizer: unbiased, supported within alpha bins, continuous, noise O(alpha delta)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from paramverify.errors import SpecError  # noqa: E402
from paramverify.sq.mi import scatter_pmf  # noqa: E402
from paramverify.sq.quantizer import (  # noqa: E402
    SQConfig,
    StochasticQuantizer,
    bin_pmf,
    pmf_mean,
    sample_bins,
)

CASES = [(1, 1), (3, 1), (3, 2), (4, 4), (4, 3), (8, 4), (5, 16)]


def _grid(levels: int) -> torch.Tensor:
    fine = torch.linspace(0, levels, 40 * levels + 1, dtype=torch.float64)
    jitter = torch.rand(500, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * levels
    return torch.cat([fine, jitter, torch.arange(levels + 1, dtype=torch.float64)])


@pytest.mark.parametrize("bits,alpha", CASES)
def test_pmf_is_a_distribution_and_unbiased_everywhere(bits, alpha):
    levels = 2**bits - 1
    u = _grid(levels)
    idx, p = bin_pmf(u, levels, alpha)
    assert (p >= 0).all()
    assert torch.allclose(p.sum(-1), torch.ones_like(u), atol=1e-12)
    assert torch.allclose(pmf_mean(u, levels, alpha), u, atol=1e-10)


@pytest.mark.parametrize("bits,alpha", CASES)
def test_support_within_alpha_bins_and_inside_the_range(bits, alpha):
    levels = 2**bits - 1
    u = _grid(levels)
    idx, p = bin_pmf(u, levels, alpha)
    live = p > 0
    assert ((idx - u[:, None]).abs()[live] < alpha).all()
    assert ((idx >= 0) & (idx <= levels))[live].all()


def test_interior_equals_the_papers_kernel():
    levels, alpha = 255, 4
    u = torch.tensor([4.0, 10.25, 100.5, 250.999], dtype=torch.float64)  # >= alpha bins from both ends
    idx, p = bin_pmf(u, levels, alpha)
    paper = torch.relu(1 - (u[:, None] - idx).abs() / alpha)
    assert torch.allclose(p, paper / paper.sum(-1, keepdim=True), atol=1e-12)
    assert torch.allclose(paper.sum(-1), torch.full_like(u, alpha), atol=1e-12)  # the normaliser is alpha


@pytest.mark.parametrize("bits,alpha", [(3, 1), (4, 4), (4, 3), (8, 4)])
def test_pmf_is_continuous_including_bin_boundaries(bits, alpha):
    levels = 2**bits - 1
    h = 1e-7
    centres = torch.cat([torch.arange(levels + 1, dtype=torch.float64),  # bin boundaries of the window
                         torch.arange(levels, dtype=torch.float64) + 0.5,
                         torch.linspace(0, levels, 333, dtype=torch.float64)]).clamp(h, levels - h)
    lo = scatter_pmf(*bin_pmf(centres - h, levels, alpha), levels)
    hi = scatter_pmf(*bin_pmf(centres + h, levels, alpha), levels)
    # Lipschitz in u with constant at most 2 per bin (the kernel slope 1/width times the width mix)
    assert (lo - hi).abs().max() <= 10 * h


def test_samples_are_bins_unbiased_and_within_the_noise_bound():
    cfg = SQConfig(bits=4, alpha=4, low=0.0, high=1.0)
    q = StochasticQuantizer(cfg)
    q.generator = torch.Generator().manual_seed(0)
    delta = 1.0 / cfg.levels
    x = torch.tensor([0.0, 0.013, 0.2, 0.5, 0.77, 0.98, 1.0], dtype=torch.float64)
    n = 40_000
    with torch.no_grad():
        s = q(x.expand(n, -1).clone())
    on_grid = (s / delta - torch.round(s / delta)).abs()
    assert on_grid.max() < 1e-9
    assert ((s - x).abs() < cfg.alpha * delta + 1e-12).all()  # |q(x) - x| < alpha * delta
    std_err = s.std(0) / n**0.5
    assert ((s.mean(0) - x).abs() <= 5 * std_err + 1e-12).all()  # unbiased, within 5 standard errors
    # the noise is O(alpha delta): the interior variance is that of the triangle kernel
    dist = [abs(7.5 - i) for i in range(16)]  # x = 0.5 is u = 7.5 in bin units
    w = [max(0.0, 1 - d / 4) for d in dist]
    var_theory = delta**2 * sum(wi * d * d for wi, d in zip(w, dist)) / sum(w)
    assert var_theory < (cfg.alpha * delta) ** 2
    assert abs(float(s[:, 3].var()) - var_theory) < 0.05 * var_theory
    assert s[:, 0].eq(0).all() and s[:, -1].eq(1).all()  # the ends are deterministic (unbiasedness forces it)


def test_per_sample_range_uses_each_images_min_and_max():
    q = StochasticQuantizer(SQConfig(bits=2, alpha=1, per_sample=True))
    x = torch.tensor([[0.0, 3.0, 1.0], [2.0, 2.5, 5.0]], dtype=torch.float64)
    values, p = q.pmf(x)
    assert torch.allclose((values * p).sum(-1), x)
    assert float(values[p > 0].min()) >= 0.0 and float(values[1][p[1] > 0].min()) >= 2.0


def test_gumbel_softmax_sampling_is_differentiable():
    levels, alpha = 15, 4
    u0 = (torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 12 + 1.5)

    def relaxed(u):
        idx, p = bin_pmf(u, levels, alpha)
        return sample_bins(idx, p, relaxed=True, tau=0.7, straight_through=False,
                           generator=torch.Generator().manual_seed(5))

    assert torch.autograd.gradcheck(relaxed, (u0.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)
    # straight-through: exact bin values forward, a finite non-zero gradient backward
    u = u0.clone().requires_grad_(True)
    idx, p = bin_pmf(u, levels, alpha)
    out = sample_bins(idx, p, relaxed=True, tau=0.7, straight_through=True, generator=torch.Generator())
    assert torch.equal(out, torch.round(out))
    (g,) = torch.autograd.grad(out.sum(), u)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [dict(alpha=2.5), dict(alpha=0), dict(bits=0), dict(low=1.0, high=1.0),
                                    dict(tau=0.0), dict(per_sample=True, learnable=True)])
def test_bad_configs_are_refused(kwargs):
    with pytest.raises(SpecError):
        SQConfig(**kwargs)
