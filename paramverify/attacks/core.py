"""White-box FGM and PGD (L-inf and L2) and the gradient-free Square attack (L-inf), each with
Expectation over Transformation (EOT) for stochastic models.

A model is any torch module mapping a batch to logits ``(batch, classes)``; a
stochastic one (e.g. an :class:`~paramverify.sq.model.SQNet`) draws fresh
randomness on every call.  With ``eot = N`` every loss and gradient is the mean
over ``N`` independent passes of each image (the batch is replicated ``N``
times), so an attacker back-propagates through the SQ samples with the same
straight-through Gumbel-softmax the network was trained with.

Every adversarial example is clipped to ``[clip_min, clip_max]`` and checked to
lie in the eps-ball around its clean image (:func:`paramverify.errors.check`);
clipping a point of the ball towards a box that contains the clean image never
leaves the ball.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paramverify.errors import SpecError, check

KINDS = ("fgm", "pgd", "square")
NORMS = ("inf", "2")


@dataclass(frozen=True)
class AttackConfig:
    """kind: fgm | pgd | square; norm: inf | 2; eps: radius (input units); steps (PGD);
    step_size (PGD; default 2.5 eps / steps); random_start (PGD); eot: passes per loss;
    queries and p_init (Square); clip_min/clip_max: the valid input box; seed."""

    kind: str
    eps: float
    norm: str = "inf"
    steps: int = 20
    step_size: float | None = None
    random_start: bool = True
    eot: int = 1
    queries: int = 300
    p_init: float = 0.05
    clip_min: float = 0.0
    clip_max: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError("attack", f"unknown attack {self.kind!r}", f"use one of {', '.join(KINDS)}")
        if self.norm not in NORMS:
            raise SpecError("norm", f"unknown norm {self.norm!r}", "use inf or 2")
        if self.kind == "square" and self.norm != "inf":
            raise SpecError("norm", "the Square attack is implemented for the L-inf norm only",
                            "use --norm inf (or --engine art for ART's L2 Square)")
        if not self.eps >= 0:
            raise SpecError("eps", f"must be >= 0, got {self.eps}")
        if self.steps < 1 or self.eot < 1 or self.queries < 1:
            raise SpecError("steps/eot/queries", "must be >= 1")
        if not 0 < self.p_init <= 1:
            raise SpecError("p_init", f"must lie in (0, 1], got {self.p_init}")
        if not self.clip_max > self.clip_min:
            raise SpecError("clip", f"clip_max {self.clip_max} must exceed clip_min {self.clip_min}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


def _flat_norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    flat = d.flatten(1)
    return flat.abs().amax(1) if norm == "inf" else flat.norm(dim=1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def eot_logits(model: nn.Module, x: torch.Tensor, eot: int) -> torch.Tensor:
    """``(eot, batch, classes)``: ``eot`` passes of every image."""
    if eot == 1:
        return model(x).unsqueeze(0)
    rep = x.unsqueeze(0).expand(eot, *x.shape).reshape(eot * x.shape[0], *x.shape[1:])
    return model(rep).view(eot, x.shape[0], -1)


def eot_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eot: int) -> torch.Tensor:
    """Gradient of the EOT loss ``mean_k CE(model_k(x), y)`` with respect to ``x`` (per image)."""
    xg = x.detach().clone().requires_grad_(True)
    logits = eot_logits(model, xg, eot)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(eot), reduction="sum") / eot
    (grad,) = torch.autograd.grad(loss, xg)
    return grad


def project(x_adv: torch.Tensor, x0: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    """Project onto the eps-ball around ``x0`` and then clip to the input box."""
    d = x_adv - x0
    if cfg.norm == "inf":
        d = d.clamp(-cfg.eps, cfg.eps)
    else:
        n = _bcast(_flat_norm(d, "2"), d)
        d = d * torch.clamp(cfg.eps * (1 - 1e-6) / n.clamp_min(1e-12), max=1.0)  # margin for rounding
    out = (x0 + d).clamp(cfg.clip_min, cfg.clip_max)
    if cfg.norm == "inf":  # x0 + d rounds: step back towards x0 until |out - x0| <= eps in this precision
        for _ in range(8):
            over = (out - x0).abs() > cfg.eps
            if not bool(over.any()):
                break
            out = torch.where(over, torch.nextafter(out, x0), out)
    return out


def _step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "inf":
        return grad.sign()
    return grad / _bcast(_flat_norm(grad, "2").clamp_min(1e-12), grad)


def fgm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig) -> torch.Tensor:
    """One gradient step of length eps (sign step for L-inf)."""
    return project(x + cfg.eps * _step(eot_gradient(model, x, y, cfg.eot), cfg.norm), x, cfg)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Madry et al.'s PGD: optional random start in the ball, ``steps`` projected steps."""
    x_adv = x.clone()
    if cfg.random_start and cfg.eps > 0:
        if cfg.norm == "inf":
            noise = (torch.rand(x.shape, generator=generator) * 2 - 1) * cfg.eps
        else:
            g = torch.randn(x.shape, generator=generator)
            g = g / _bcast(_flat_norm(g, "2").clamp_min(1e-12), g)
            r = torch.rand(x.shape[0], generator=generator) ** (1.0 / x[0].numel())
            noise = g * _bcast(r * cfg.eps, g)
        x_adv = project(x + noise.to(x.dtype), x, cfg)
    for _ in range(cfg.steps):
        grad = eot_gradient(model, x_adv, y, cfg.eot)
        x_adv = project(x_adv + cfg.alpha * _step(grad, cfg.norm), x, cfg)
    return x_adv


def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eot: int) -> torch.Tensor:
    """EOT margin loss per image: mean over passes of ``logp_y - max_{j != y} logp_j`` (< 0: wrong)."""
    logp = torch.log_softmax(eot_logits(model, x, eot), -1).mean(0)
    true = logp.gather(1, y[:, None]).squeeze(1)
    other = logp.masked_fill(F.one_hot(y, logp.shape[1]).bool(), float("-inf")).amax(1)
    return true - other


def _p_schedule(p_init: float, it: int, queries: int) -> float:
    """Andriushchenko et al.'s schedule of the square's area, rescaled to ``queries``."""
    i = int(it / queries * 10000)
    for k, bound in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if i <= bound:
            return p_init / 2**k
    return p_init / 512


@torch.no_grad()
def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Square attack (Andriushchenko et al. 2020), L-inf: random square updates accepted when the
    EOT margin loss falls; ``queries`` iterations (one EOT evaluation each)."""
    b, c, h, w = x.shape
    eps = cfg.eps
    stripes = (torch.randint(0, 2, (b, c, 1, w), generator=generator) * 2 - 1).to(x.dtype)
    x_adv = project(x + eps * stripes, x, cfg)
    best = _margin(model, x_adv, y, cfg.eot)
    rows = torch.arange(h)
    cols = torch.arange(w)
    for it in range(cfg.queries - 1):
        active = best > 0
        if not bool(active.any()):
            break
        p = _p_schedule(cfg.p_init, it, cfg.queries)
        s = max(1, min(h, w, int(round((p * h * w) ** 0.5))))
        r0 = torch.randint(0, h - s + 1, (b,), generator=generator)
        c0 = torch.randint(0, w - s + 1, (b,), generator=generator)
        mask = ((rows[None] >= r0[:, None]) & (rows[None] < (r0 + s)[:, None]))[:, :, None] & \
               ((cols[None] >= c0[:, None]) & (cols[None] < (c0 + s)[:, None]))[:, None, :]
        signs = (torch.randint(0, 2, (b, c, 1, 1), generator=generator) * 2 - 1).to(x.dtype)
        cand = torch.where(mask[:, None], x + eps * signs, x_adv)
        cand = project(cand, x, cfg)
        cand = torch.where(_bcast(active, cand), cand, x_adv)
        margin = _margin(model, cand, y, cfg.eot)
        better = (margin < best) & active
        x_adv = torch.where(_bcast(better, x_adv), cand, x_adv)
        best = torch.where(better, margin, best)
    return x_adv


def attack_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial examples for one batch; checked to lie in the eps-ball and the input box."""
    if cfg.kind == "square" and x.dim() != 4:
        raise SpecError("attack", f"Square needs images (batch, channels, h, w), got shape {tuple(x.shape)}")
    if cfg.kind == "fgm":
        x_adv = fgm(model, x, y, cfg)
    elif cfg.kind == "pgd":
        x_adv = pgd(model, x, y, cfg, generator)
    else:
        x_adv = square(model, x, y, cfg, generator)
    x_adv = x_adv.detach()
    dist = _flat_norm(x_adv - x, cfg.norm)
    tol = 1e-5 * max(1.0, cfg.eps)
    check(bool((dist <= cfg.eps + tol).all()), f"attack left the eps-ball: {float(dist.max())} > {cfg.eps}")
    check(bool(((x_adv >= cfg.clip_min) & (x_adv <= cfg.clip_max)).all()), "attack left the input box")
    return x_adv
