"""CIFAR-10 ResNets (He et al. 2016) as in Cohen et al.'s ResNet-110 baseline.

Depth ``6k + 2`` with basic blocks, 16/32/64 channels, for 3x32x32 inputs; the
benchmark times randomized smoothing on ResNet-110 (1.7M parameters).  Weights
are random unless loaded; :func:`fold_batchnorm` folds eval-mode BatchNorm into
the preceding convolution (what an inference engine does) for speed.
"""

from __future__ import annotations

import torch
from torch import nn

from paramverify.errors import SpecError


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6k+2) for CIFAR-10; ``normalize`` puts the per-channel standardization inside."""

    def __init__(self, depth: int = 110, num_classes: int = 10, normalize: bool = True) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise SpecError("depth", f"must be 6k + 2 with k >= 1, got {depth}", "e.g. 20, 56 or 110")
        k = (depth - 2) // 6
        self.register_buffer("mean", torch.tensor([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2470, 0.2435, 0.2616]).reshape(1, 3, 1, 1))
        self.normalize = normalize
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(k):
                layers.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = (x - self.mean) / self.std
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(torch.mean(x, dim=(2, 3)), 1))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every (Conv2d, BatchNorm2d) pair that is an attribute pair convN/bnN or a Sequential into the conv.

    Works in place on eval-mode models built from :class:`CifarResNet`; returns the model.
    """
    model.eval()

    def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        with torch.no_grad():
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is None:
                conv.bias = nn.Parameter(bias.clone())
            else:
                conv.bias.copy_(conv.bias * scale + bias)

    for mod in list(model.modules()):
        for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2")):
            conv, bn = getattr(mod, conv_name, None), getattr(mod, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                fold(conv, bn)
                setattr(mod, bn_name, nn.Identity())
        if isinstance(mod, nn.Sequential) and len(mod) == 2 and isinstance(mod[0], nn.Conv2d) \
                and isinstance(mod[1], nn.BatchNorm2d):
            fold(mod[0], mod[1])
            mod[1] = nn.Identity()
    return model
