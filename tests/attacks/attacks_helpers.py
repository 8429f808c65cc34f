"""A small undefended classifier trained at test time on scikit-learn's 8x8 digits (about a second)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


def digits() -> tuple[np.ndarray, np.ndarray]:
    from paramverify.smoothing.data import load_digits_images

    return load_digits_images()


def trained_tiny(x: np.ndarray, y: np.ndarray, epochs: int = 30, seed: int = 0) -> TinyCNN:
    torch.manual_seed(seed)
    net = TinyCNN()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for i in range(0, len(xt), 500):
            loss = nn.functional.cross_entropy(net(xt[i:i + 500]), yt[i:i + 500])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()
