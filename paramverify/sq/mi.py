"""Mutual information between a stochastically quantized input and feature (the paper's Eqs. 4-6).

For one image, ``n`` SQ samples ``x~_1 .. x~_n`` of the input are drawn; the
feature extractor maps each to a feature vector ``t(x~_s)``, whose stochastic
quantization ``T~`` has, per feature ``j``, an exactly known PMF
``p_s(k) = P(T~_j = b_k | X~ = x~_s)`` (:meth:`StochasticQuantizer.pmf`).  With
``X~`` uniform over the ``n`` samples,

    I(X~; T~_j) = H( (1/n) sum_s p_s ) - (1/n) sum_s H(p_s)

computed exactly from the PMFs (no sampling of ``T~``), in bits, then averaged
over the features.  Differentiable, so it can enter the training loss.
"""

from __future__ import annotations

import math

import torch


def entropy_bits(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits over the last dimension (``0 log 0 = 0``)."""
    logp = torch.log2(p.clamp_min(1e-30))
    return -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum(-1)


def scatter_pmf(idx: torch.Tensor, p: torch.Tensor, levels: int) -> torch.Tensor:
    """Window PMFs ``(..., W)`` over bin indices ``idx`` -> full PMFs ``(..., levels + 1)``."""
    full = torch.zeros(*p.shape[:-1], levels + 1, dtype=p.dtype, device=p.device)
    safe = idx.clamp(0, levels).long()
    return full.scatter_add(-1, safe, torch.where((idx >= 0) & (idx <= levels), p, torch.zeros_like(p)))


def mutual_information(pmfs: torch.Tensor) -> torch.Tensor:
    """MI in bits per feature from full PMFs of shape ``(n_samples, *features, bins)``.

    Returns a tensor of shape ``features``; :func:`average_mi` averages it.
    """
    marginal = pmfs.mean(0)
    return entropy_bits(marginal) - entropy_bits(pmfs).mean(0)


def average_mi(pmfs: torch.Tensor) -> torch.Tensor:
    """The scalar MI (bits) averaged over every feature."""
    return mutual_information(pmfs).mean()


def max_mi_bits(n_samples: int, bins: int) -> float:
    """Upper bound of the per-feature MI: ``log2(min(n_samples, bins))``."""
    return math.log2(min(n_samples, bins))
