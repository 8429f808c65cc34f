"""The stochastic quantizer (Farkya, Raghavan & Ziskind, SRI; the paper's Eq. 2).

A value ``x`` is mapped to one of ``n + 1`` evenly spaced bins ``b_0 < ... < b_n``
(``n = 2**bits - 1``, spacing ``Delta = (b_n - b_0) / n``).  In bin units
``u = (x - b_0) / Delta`` (clamped to ``[0, n]``), bin ``i`` gets the weight

    w_i = ReLU(1 - |u - i| / alpha)                      (sparsity parameter alpha)

and probability ``w_i / sum_j w_j``.  For an integer ``alpha`` this triangle kernel
reproduces constants and linear functions on the integer grid, so the sample is
*unbiased* (``E[q(x)] = x``) wherever all its bins exist, i.e. at least
``alpha - 1`` bins away from both ends.  Near an end (``d = min(u, n - u) <
alpha``) bins are missing, and there the only unbiased choice shrinks the noise
(at ``x = b_0`` it must be ``b_0`` itself): this module mixes the kernels of
integer half-widths ``floor(a)`` and ``floor(a) + 1`` with ``a = clamp(d, 1,
alpha)``, weights ``1 - frac(a)`` and ``frac(a)``.  Every kernel in that mixture
has all its bins, so the mixture is unbiased; it is continuous in ``x``
(also across bin boundaries), its support lies within ``alpha`` bins of ``x``
(so ``|q(x) - x| < alpha * Delta``), and it equals the paper's kernel at least
``alpha`` bins away from both ends.  Non-integer ``alpha`` is refused (the kernel would be biased).

Range: ``b_0, b_n`` fixed (given, or learnable parameters, see
:class:`StochasticQuantizer`) or ``per_sample``: the minimum and maximum of
each sample (image or feature vector) over all non-batch dimensions.

Sampling: exact categorical sampling (``hard``), or the Gumbel-softmax
relaxation with temperature ``tau`` whose straight-through form (the default)
returns an exact bin value forward and the relaxed gradient backward - the same
path for training and for an attacker's EOT gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from paramverify.errors import SpecError


@dataclass(frozen=True)
class SQConfig:
    """Settings of one stochastic quantizer.

    bits: ``2**bits`` bins; alpha: integer sparsity (support within alpha bins);
    low/high: fixed ``b_0``/``b_n`` (ignored when ``per_sample``); learnable:
    ``b_0`` and ``b_n`` are trained parameters; tau: Gumbel-softmax temperature;
    straight_through: exact bin values forward, relaxed gradient backward.
    """

    bits: int = 4
    alpha: int = 4
    low: float = 0.0
    high: float = 1.0
    per_sample: bool = False
    learnable: bool = False
    tau: float = 1.0
    straight_through: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 16:
            raise SpecError("bits", f"must be an integer in 1..16, got {self.bits!r}")
        if not isinstance(self.alpha, int) or isinstance(self.alpha, bool) or self.alpha < 1:
            raise SpecError("alpha", f"must be an integer >= 1, got {self.alpha!r}",
                            "a non-integer alpha makes the triangle kernel biased")
        if not self.per_sample and not self.high > self.low:
            raise SpecError("high", f"must exceed low ({self.low}), got {self.high}")
        if not self.tau > 0:
            raise SpecError("tau", f"must be > 0, got {self.tau}")
        if self.per_sample and self.learnable:
            raise SpecError("learnable", "per_sample bins are computed from each sample, not learned",
                            "use one of per_sample and learnable")

    @property
    def levels(self) -> int:
        """``n``: the index of the last bin (``2**bits - 1``)."""
        return 2**self.bits - 1


def _window(u: torch.Tensor, alpha: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin indices ``floor(u) - alpha + 1 .. floor(u) + alpha`` (last dim) and ``u - index``."""
    base = torch.floor(u).detach()
    offsets = torch.arange(-alpha + 1, alpha + 1, device=u.device, dtype=u.dtype)
    idx = base.unsqueeze(-1) + offsets
    return idx, u.unsqueeze(-1) - idx


def _kernel(dist: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Normalised triangle kernel of (integer, per-element) half-width ``width`` at distances ``dist``."""
    w = torch.relu(1.0 - dist.abs() / width.unsqueeze(-1))
    return w / w.sum(-1, keepdim=True)


def bin_pmf(u: torch.Tensor, levels: int, alpha: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PMF over the window of bins around ``u`` (bin units, clamped to ``[0, levels]``).

    Returns ``(idx, p)`` of shape ``u.shape + (2 * alpha,)``: bin indices (as
    floats; entries outside ``0..levels`` have probability 0) and probabilities.
    Differentiable in ``u``.
    """
    u = u.clamp(0.0, float(levels))
    idx, dist = _window(u, alpha)
    if alpha == 1:
        p = _kernel(dist, torch.ones_like(u))
    else:
        d = torch.minimum(u, levels - u)
        a = d.clamp(1.0, float(alpha))
        j = torch.floor(a).clamp(max=alpha - 1)
        t = (a - j).unsqueeze(-1)
        p = (1.0 - t) * _kernel(dist, j) + t * _kernel(dist, j + 1.0)
    inside = (idx >= 0) & (idx <= levels)
    return idx, torch.where(inside, p, torch.zeros_like(p))


def pmf_mean(u: torch.Tensor, levels: int, alpha: int) -> torch.Tensor:
    """The expected bin index under :func:`bin_pmf` (equals the clamped ``u``: unbiased)."""
    idx, p = bin_pmf(u, levels, alpha)
    return (idx * p).sum(-1)


def sample_bins(idx: torch.Tensor, p: torch.Tensor, *, relaxed: bool, tau: float, straight_through: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample a bin index per element from ``(idx, p)``; Gumbel-softmax when ``relaxed``."""
    logits = torch.where(p > 0, torch.log(p.clamp_min(1e-30)), torch.full_like(p, float("-inf")))
    uni = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    gumbel = -torch.log(-torch.log(uni.clamp(1e-12, 1.0 - 1e-7)))
    scores = logits + gumbel
    pick = scores.argmax(-1, keepdim=True)
    hard_idx = idx.gather(-1, pick).squeeze(-1)
    if not relaxed:
        return hard_idx.detach()
    soft = torch.softmax(scores / tau, -1)
    soft_idx = (soft * idx).sum(-1)
    if straight_through:
        return _StraightThrough.apply(hard_idx.detach(), soft_idx)
    return soft_idx


class _StraightThrough(torch.autograd.Function):
    """Forward: the exact hard value; backward: the gradient of the soft value."""

    @staticmethod
    def forward(ctx, hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return hard.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, grad


class StochasticQuantizer(nn.Module):
    """``x -> b_0 + Delta * i`` with ``i`` drawn from :func:`bin_pmf` (see the module docstring).

    ``forward(x)`` samples (relaxed when ``torch.is_grad_enabled()`` and a
    gradient is needed, else exact); ``pmf(x)`` returns ``(values, p)`` for
    the exact mutual information.  Dimension 0 is the batch.
    """

    def __init__(self, config: SQConfig) -> None:
        super().__init__()
        self.config = config
        low = torch.tensor(float(config.low))
        high = torch.tensor(float(config.high))
        if config.learnable:
            self.low = nn.Parameter(low)
            self.high = nn.Parameter(high)
        else:
            self.register_buffer("low", low)
            self.register_buffer("high", high)
        self.generator: torch.Generator | None = None

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(b_0, Delta)`` broadcastable against ``x``."""
        if self.config.per_sample:
            flat = x.flatten(1)
            lo, hi = flat.min(1).values, flat.max(1).values
            hi = torch.maximum(hi, lo + 1e-6)
            shape = (-1,) + (1,) * (x.dim() - 1)
            lo, hi = lo.view(shape), hi.view(shape)
        else:
            lo = self.low.to(x.dtype)
            hi = torch.maximum(self.high.to(x.dtype), lo + 1e-6)
        return lo, (hi - lo) / self.config.levels

    def spacing(self) -> torch.Tensor:
        """``b_1 - b_0`` of fixed or learned bins (the mu term of the training loss)."""
        return (self.high - self.low) / self.config.levels

    def pmf(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, p)``, each ``x.shape + (2 * alpha,)``: bin values and their probabilities."""
        lo, delta = self.bounds(x)
        idx, p = bin_pmf((x - lo) / delta, self.config.levels, self.config.alpha)
        return lo.unsqueeze(-1) + delta.unsqueeze(-1) * idx, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        lo, delta = self.bounds(x)
        idx, p = bin_pmf((x - lo) / delta, cfg.levels, cfg.alpha)
        relaxed = torch.is_grad_enabled() and (x.requires_grad or any(q.requires_grad for q in (lo, delta)))
        i = sample_bins(idx, p, relaxed=relaxed, tau=cfg.tau, straight_through=cfg.straight_through,
                        generator=self.generator)
        return lo + delta * i
