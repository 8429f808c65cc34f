"""Shared test models for the smoothing tests (a linear classifier with a closed form)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def linear_classifier(w: np.ndarray, b: float) -> nn.Linear:
    """Two-class linear model: class 1 iff w.x + b > 0 (logits -s/2, s/2)."""
    d = len(w)
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(np.stack([-w / 2, w / 2]), dtype=torch.float32))
        lin.bias.copy_(torch.tensor([-b / 2, b / 2], dtype=torch.float32))
    return lin


def decision(lin: nn.Linear) -> tuple[np.ndarray, float]:
    """(w, b) of the decision function logit1 - logit0 of a two-class linear model."""
    w = lin.weight.detach().double().numpy()
    c = lin.bias.detach().double().numpy()
    return w[1] - w[0], float(c[1] - c[0])


def distance(lin: nn.Linear, x: np.ndarray) -> float:
    """L2 distance from x to the decision hyperplane of a two-class linear model."""
    w, b = decision(lin)
    return abs(float(w @ x + b)) / float(np.linalg.norm(w))


def point_at(w: np.ndarray, b: float, signed_distance: float, rng: np.random.Generator) -> np.ndarray:
    """A random point whose signed distance to {w.x + b = 0} is ``signed_distance``."""
    x = rng.standard_normal(len(w))
    unit = w / np.linalg.norm(w)
    x = x - (x @ unit + b / np.linalg.norm(w)) * unit  # on the hyperplane
    return x + signed_distance * unit
