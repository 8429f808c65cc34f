"""Training SQ networks (the paper's Eq. 7).

    loss = CE(ensemble) + beta * I(X~; T~) + mu * (b_1 - b_0 of the feature bins)

Each image of a batch is replicated ``ensemble`` times (16 in the paper), every copy
gets its own SQ samples at the input and the feature layer, the cross-entropy is
averaged over the copies, and the MI is computed exactly from the feature PMFs of
the copies (:mod:`paramverify.sq.mi`).  The feature SQ is sampled with the
straight-through Gumbel-softmax, so the gradient reaches the extractor; its
bins ``b_0, b_n`` are learned when ``SQConfig.learnable``.  As in the paper,
the SQ networks start from a pre-trained network (:func:`pretrain`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from paramverify.errors import SpecError
from paramverify.options import Deadline
from paramverify.sq.mi import mutual_information, scatter_pmf
from paramverify.sq.model import SQNet
from paramverify.sq.quantizer import bin_pmf


@dataclass(frozen=True)
class TrainOptions:
    """epochs, batch (images per step), ensemble (SQ copies per image), lr (Adam), beta (MI weight),
    mu (feature-bin spacing weight), seed."""

    epochs: int = 3
    batch: int = 32
    ensemble: int = 16
    lr: float = 1e-3
    beta: float = 0.0
    mu: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch", "ensemble"):
            if int(getattr(self, name)) < 1:
                raise SpecError(name, f"must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise SpecError("lr", f"must be > 0, got {self.lr}")
        if self.beta < 0 or self.mu < 0:
            raise SpecError("beta/mu", "must be >= 0")


@dataclass(frozen=True)
class TrainReport:
    epochs_done: int
    steps: int
    seconds: float
    complete: bool
    history: tuple[dict[str, float], ...] = field(default_factory=tuple)
    interrupted: bool = False


def _loss(net: SQNet, xb: torch.Tensor, yb: torch.Tensor, opts: TrainOptions) -> tuple[torch.Tensor, dict[str, float]]:
    k = opts.ensemble if net.stochastic else 1
    rep = xb.unsqueeze(0).expand(k, *xb.shape).reshape(k * xb.shape[0], *xb.shape[1:])
    t = net.features(net.quantize_input(rep))
    terms: dict[str, torch.Tensor] = {}
    if net.feature_sq is not None:
        q = net.feature_sq
        if opts.beta > 0:
            lo, delta = q.bounds(t)
            idx, p = bin_pmf((t.flatten(1) - lo) / delta, q.config.levels, q.config.alpha)
            full = scatter_pmf(idx, p, q.config.levels).view(k, xb.shape[0], -1, q.config.levels + 1)
            terms["mi"] = mutual_information(full).mean()
        terms["spacing"] = q.spacing()
        t = q(t)
    logits = net.classifier(t)
    ce = F.cross_entropy(logits, yb.repeat(k))
    loss = ce + opts.beta * terms.get("mi", torch.zeros(())) + opts.mu * terms.get("spacing", torch.zeros(()))
    stats = {"ce": float(ce.detach()), **{n: float(v.detach()) for n, v in terms.items()}}
    return loss, stats


def train(net: SQNet, x: np.ndarray, y: np.ndarray, opts: TrainOptions, deadline: Deadline | None = None,
          progress: Callable[[str], None] | None = None) -> TrainReport:
    """Train ``net`` in place on images ``x`` (N, C, H, W) in [0, 1] and labels ``y``.

    Stops early (``complete=False``) when ``deadline`` expires or on an interrupt
    (Ctrl-C; ``interrupted=True``), leaving ``net`` trained so far.
    """
    if len(x) != len(y) or len(x) == 0:
        raise SpecError("data", f"need as many labels as images (got {len(x)} and {len(y)})")
    gen = torch.Generator().manual_seed(opts.seed)
    net.set_generator(gen)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    optim = torch.optim.Adam(net.parameters(), lr=opts.lr)
    t0, steps, history, done = time.monotonic(), 0, [], 0
    net.train()
    try:
        for epoch in range(opts.epochs):
            order = torch.randperm(len(xt), generator=gen)
            sums: dict[str, float] = {}
            nb = math.ceil(len(xt) / opts.batch)
            for b in range(nb):
                if deadline is not None and deadline.expired():
                    return TrainReport(done, steps, time.monotonic() - t0, False, tuple(history))
                sel = order[b * opts.batch:(b + 1) * opts.batch]
                loss, stats = _loss(net, xt[sel], yt[sel], opts)
                optim.zero_grad()
                loss.backward()
                optim.step()
                steps += 1
                for n, v in stats.items():
                    sums[n] = sums.get(n, 0.0) + v / nb
            done = epoch + 1
            history.append({"epoch": done, **{n: round(v, 5) for n, v in sums.items()}})
            if progress is not None:
                progress(f"epoch {done}/{opts.epochs}: " + " ".join(f"{n} {v:.4f}" for n, v in sums.items()))
    except KeyboardInterrupt:
        return TrainReport(done, steps, time.monotonic() - t0, False, tuple(history), True)
    finally:
        net.eval()
        net.set_generator(None)
    return TrainReport(done, steps, time.monotonic() - t0, True, tuple(history))


def feature_range(net: SQNet, x: np.ndarray, quantile: float = 0.99) -> float:
    """A high bin ``b_n`` for the feature SQ: the ``quantile`` of the clean features (at least 1e-3)."""
    with torch.no_grad():
        t = net.features(torch.from_numpy(np.ascontiguousarray(x[:512], np.float32)))
    return max(float(torch.quantile(t.flatten()[:200_000], quantile)), 1e-3)


@torch.no_grad()
def accuracy(net: SQNet, x: np.ndarray, y: np.ndarray, n: int = 16, batch: int = 256,
             generator: torch.Generator | None = None) -> float:
    """Clean accuracy of the ensemble (averaged softmax over ``n`` passes)."""
    net.set_generator(generator)
    try:
        hits = 0
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))
            hits += int((net.predict_proba(xb, n).argmax(1).numpy() == y[i:i + batch]).sum())
    finally:
        net.set_generator(None)
    return hits / max(1, len(x))
