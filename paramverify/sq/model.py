"""SQ networks: a feature extractor and a classifier with stochastic quantization at the input
and at the feature layer between them (the paper's ensemble), evaluated as an ensemble of
``n`` stochastic forward passes.

:class:`LeNet5` is the classic MNIST network (conv 6@5x5 pad 2, pool, conv 16@5x5,
pool, fc 400-120 / 120-84 / 84-10, ReLU); its feature layer is the 120-wide output
of the first fully connected layer.  Any torch module (e.g. an ONNX model through
:func:`paramverify.smoothing.onnx_torch.load_onnx`) can be wrapped with SQ at the
input only.  Checkpoints are plain dicts (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paramverify.errors import ModelError, check
from paramverify.sq.mi import mutual_information, scatter_pmf
from paramverify.sq.quantizer import SQConfig, StochasticQuantizer

MEAN, STD = 0.1307, 0.3081


class LeNet5Features(nn.Module):
    """Input normalisation, two conv/pool stages and fc 400 -> 120 with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - MEAN) / STD
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return torch.relu(self.fc1(x.flatten(1)))


class LeNet5Head(nn.Module):
    """fc 120 -> 84 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(t)))


class SQNet(nn.Module):
    """``classifier(SQ_t(features(SQ_x(x))))``; either quantizer may be absent.

    ``forward(x)`` is one stochastic pass (logits); :meth:`sample_logits` stacks
    ``n`` passes; :meth:`predict_proba` is the ensemble's averaged softmax.
    """

    def __init__(self, features: nn.Module, classifier: nn.Module | None = None,
                 input_sq: SQConfig | None = None, feature_sq: SQConfig | None = None,
                 arch: str = "custom") -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier if classifier is not None else nn.Identity()
        self.input_sq = StochasticQuantizer(input_sq) if input_sq is not None else None
        self.feature_sq = StochasticQuantizer(feature_sq) if feature_sq is not None else None
        self.arch = arch

    @property
    def stochastic(self) -> bool:
        return self.input_sq is not None or self.feature_sq is not None

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Draw every SQ sample from ``generator`` (repeatable runs)."""
        for q in (self.input_sq, self.feature_sq):
            if q is not None:
                q.generator = generator

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_sq(x) if self.input_sq is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.features(self.quantize_input(x))
        if self.feature_sq is not None:
            t = self.feature_sq(t)
        return self.classifier(t)

    def sample_logits(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``(n, batch, classes)``: ``n`` stochastic passes (one pass when nothing is stochastic)."""
        if not self.stochastic:
            return self(x).unsqueeze(0)
        rep = x.unsqueeze(0).expand(n, *x.shape).reshape(n * x.shape[0], *x.shape[1:])
        out = self(rep)
        return out.view(n, x.shape[0], -1)

    def predict_proba(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """The ensemble's averaged softmax over ``n`` passes, ``(batch, classes)``."""
        return torch.softmax(self.sample_logits(x, n), -1).mean(0)

    def feature_pmfs(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Full PMFs ``(n, batch, features, bins)`` of the quantized feature for ``n`` input samples."""
        if self.feature_sq is None:
            raise ModelError("mutual information needs SQ at the feature layer (this network has none)")
        rep = x.unsqueeze(0).expand(n, *x.shape).reshape(n * x.shape[0], *x.shape[1:])
        t = self.features(self.quantize_input(rep)).flatten(1)
        values_idx, p = self._feature_index_pmf(t)
        full = scatter_pmf(values_idx, p, self.feature_sq.config.levels)
        return full.view(n, x.shape[0], *full.shape[1:])

    def _feature_index_pmf(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from paramverify.sq.quantizer import bin_pmf

        q = self.feature_sq
        check(q is not None, "feature PMFs of a network without a feature quantizer")
        assert q is not None  # for the type checker; check() above raises under python -O too
        lo, delta = q.bounds(t)
        return bin_pmf((t - lo) / delta, q.config.levels, q.config.alpha)

    def mi_per_image(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``I(X~; T~)`` in bits for each image (averaged over features), from ``n`` input samples."""
        return mutual_information(self.feature_pmfs(x, n)).mean(-1)

    # -- checkpoints --------------------------------------------------------------
    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.arch != "lenet5":
            raise ModelError("only LeNet-5 SQ networks are saved as checkpoints; wrap ONNX models at load time")
        return {
            "format": "paramverify-sq/1", "arch": self.arch,
            "input_sq": asdict(self.input_sq.config) if self.input_sq is not None else None,
            "feature_sq": asdict(self.feature_sq.config) if self.feature_sq is not None else None,
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "meta": dict(extra or {}),
        }


def lenet5_sq(input_sq: SQConfig | None = None, feature_sq: SQConfig | None = None) -> SQNet:
    """A LeNet-5 as an :class:`SQNet` (feature layer: the 120-wide fc1 output)."""
    return SQNet(LeNet5Features(), LeNet5Head(), input_sq, feature_sq, arch="lenet5")


def from_checkpoint(ckpt: dict[str, Any]) -> SQNet:
    """Rebuild an :class:`SQNet` saved by :meth:`SQNet.checkpoint`."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != "paramverify-sq/1" or ckpt.get("arch") != "lenet5":
        raise ModelError("not a paramverify SQ checkpoint (format paramverify-sq/1, arch lenet5)")
    cfg = {k: SQConfig(**ckpt[k]) if ckpt.get(k) else None for k in ("input_sq", "feature_sq")}
    net = lenet5_sq(cfg["input_sq"], cfg["feature_sq"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


def load_checkpoint(path: str | Path) -> SQNet:
    """Load an SQ checkpoint (.pt) written by ``paramverify sq train``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"SQ checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"cannot read SQ checkpoint {path}: {exc}") from exc
    return from_checkpoint(ckpt)


def with_config(net: SQNet, input_sq: SQConfig | None, feature_sq: SQConfig | None) -> SQNet:
    """A copy of a LeNet-5 SQ network with other quantizers (weights shared by value)."""
    out = lenet5_sq(input_sq, feature_sq)
    out.features.load_state_dict(net.features.state_dict())
    out.classifier.load_state_dict(net.classifier.state_dict())
    return out
