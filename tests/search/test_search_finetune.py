"""Noise-augmented fine-tuning of a quantized copy (straight-through estimators)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paramverify.errors import SpecError
from paramverify.search.finetune import FinetuneConfig, Finetuner
from paramverify.search.reward import RewardConfig, SmoothingEvaluator
from paramverify.search.space import BitPolicy
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import QuantPolicy, quantize_model

from .nets import labelled_inputs, tiny_cnn

NAMES = ("conv", "fc1", "fc2")
RC = RewardConfig(sigma=0.25, n0=8, float_n=64, n_q=32, batch_size=256, seed=0)


def _loss(model, x, y, sigma, seed=9):
    g = torch.Generator().manual_seed(seed)
    xs = torch.from_numpy(x).repeat(4, 1, 1, 1)
    xs = xs + sigma * torch.randn(xs.shape, generator=g)
    with torch.inference_mode():
        return float(torch.nn.functional.cross_entropy(model(xs), torch.from_numpy(y).repeat(4)))


def test_fine_tuning_is_deterministic_and_lowers_the_quantized_loss():
    proto = tiny_cnn(6)
    model = load_onnx(proto)
    x, y = labelled_inputs(proto, 200, seed=4)
    calib = torch.from_numpy(x[:64])
    tuner = Finetuner(model, x, y, calib, RC, FinetuneConfig(steps=25, lr=5e-3, batch_size=32, seed=1))
    policy = BitPolicy.from_bits(NAMES, (2, 2, 3))
    a, b = tuner(policy), tuner(policy)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc1.weight, model.fc1.weight)  # the float model itself is untouched ...
    assert torch.equal(model.fc1.weight, load_onnx(proto).fc1.weight)  # ... and still the file's weights
    qp = QuantPolicy.from_mapping(policy.to_quant_mapping())
    before = _loss(quantize_model(model, qp, calib), x, y, RC.sigma)
    after = _loss(quantize_model(a, qp, calib), x, y, RC.sigma)
    assert after < before
    assert not any(hasattr(m, "parametrizations") for m in a.modules())


def test_evaluator_uses_the_fine_tuned_model():
    proto = tiny_cnn(6)
    model = load_onnx(proto)
    x, y = labelled_inputs(proto, 40, seed=5)
    calib = torch.from_numpy(x[:32])
    tuner = Finetuner(model, x, y, calib, RC, FinetuneConfig(steps=5, lr=1e-3, batch_size=8))
    ev = SmoothingEvaluator(model, x[:6], y[:6], calib, RC, 4, finetune=tuner)
    policy = BitPolicy.from_bits(NAMES, (4, 4, 4))
    base, q = ev.materialize(policy)
    assert q.fc1.layer.weight.shape == base.fc1.weight.shape
    assert base is not model and not torch.equal(base.fc1.weight, model.fc1.weight)
    r1, r2 = ev.evaluate(policy), ev.evaluate(policy)
    assert r1.reward == r2.reward and np.isfinite(r1.reward)


def test_finetune_config_checks():
    with pytest.raises(SpecError):
        FinetuneConfig(steps=-1)
    with pytest.raises(SpecError):
        FinetuneConfig(lr=0.0)
