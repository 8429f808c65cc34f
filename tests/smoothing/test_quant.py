"""Fake quantization, mixed-precision policies and BitOps."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import numpy as np
from torch import nn

from paramverify.errors import SpecError
from paramverify.smoothing.data import MNIST_CNN_ONNX, load_test_samples
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import (
    FakeQuantLayer,
    QuantPolicy,
    QuantSpec,
    bitops,
    quantize_model,
    quantize_weight,
)


@pytest.fixture(scope="module")
def mnist():
    return load_onnx(MNIST_CNN_ONNX)


def test_policy_forms():
    flat = QuantPolicy.from_json('{"conv1": 4, "fc1": {"weight_bits": 4, "act_bits": 8}}')
    assert flat.for_layer("conv1").weight == QuantSpec(4, True, True)
    assert flat.for_layer("conv1").activation == QuantSpec(4, False, False)
    assert flat.for_layer("fc1").activation.bits == 8
    assert flat.for_layer("fc2") is None
    full = QuantPolicy.from_mapping(
        {"default": 8, "weight": {"per_channel": False}, "activation": {"symmetric": True},
         "layers": {"fc2": {"weight_bits": 8, "act_bits": None}, "conv1": 32}}
    )
    assert full.for_layer("conv2").weight == QuantSpec(8, True, False)
    assert full.for_layer("conv2").activation == QuantSpec(8, True, False)
    assert full.for_layer("fc2").activation is None
    assert full.for_layer("conv1").weight is None  # 32 bits = float


@pytest.mark.parametrize(
    "bad",
    ['{"conv1": 1}', '{"conv1": "8"}', "[]", "{}", '{"default": 8, "bogus": 1}', '{"weight": {}}',
     '{"conv1": {"wbits": 4}}', "{not json"],
)
def test_policy_errors(bad):
    with pytest.raises(SpecError):
        QuantPolicy.from_json(bad)


def test_unknown_layer_is_reported(mnist):
    with pytest.raises(SpecError, match="conv9"):
        quantize_model(mnist, QuantPolicy.from_json('{"conv9": 8}'))


def test_activation_quantization_needs_calibration(mnist):
    with pytest.raises(SpecError, match="calibration"):
        quantize_model(mnist, QuantPolicy.uniform(8))


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("per_channel", [True, False])
def test_weight_quantization_grid(symmetric, per_channel):
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    spec = QuantSpec(4, symmetric, per_channel)
    q = quantize_weight(w, spec)
    rows = q.reshape(6, -1) if per_channel else q.reshape(1, -1)
    for row in rows:
        levels = torch.unique(row)
        assert len(levels) <= 2**4
        steps = torch.diff(levels)
        assert torch.allclose(steps / steps.min(), torch.round(steps / steps.min()), atol=1e-3)
    # error at most half a step (no clipping: the range covers every weight)
    span = w.reshape(6, -1) if per_channel else w.reshape(1, -1)
    lo, hi = span.min(1).values.clamp(max=0), span.max(1).values.clamp(min=0)
    step = (torch.maximum(-lo, hi) / 7) if symmetric else (hi - lo) / 15
    err = (q - w).abs().reshape(span.shape[0], -1).max(1).values
    assert torch.all(err <= step / 2 + 1e-6)


def test_int8_copy_agrees_with_float_on_clean_inputs(mnist):
    x, y = load_test_samples("mnist")
    xt = torch.from_numpy(x)
    calib = xt.repeat(8, 1, 1, 1)
    calib = calib + 0.25 * torch.randn(calib.shape, generator=torch.Generator().manual_seed(1))
    q = quantize_model(mnist, QuantPolicy.uniform(8), calib)
    assert sum(isinstance(m, FakeQuantLayer) for m in q.modules()) == 4
    with torch.inference_mode():
        f_out, q_out = mnist(xt), q(xt)
    assert torch.equal(f_out.argmax(1), q_out.argmax(1))
    assert float((f_out.argmax(1) == torch.from_numpy(y)).float().mean()) >= 0.95
    assert float((f_out - q_out).abs().max()) < 0.05 * float(f_out.abs().max())
    # the float model is untouched
    assert not any(isinstance(m, FakeQuantLayer) for m in mnist.modules())


def test_quantized_model_is_a_function_of_each_input_alone(mnist):
    """Static ranges: an input's output does not depend on the rest of the batch.

    (Float kernels may round differently for another batch size, and a rounding
    step of the fake quantizer can amplify that to one quantization step, so
    compare up to that, and require identical labels.)
    """
    x, _ = load_test_samples("mnist")
    xt = torch.from_numpy(x)
    q = quantize_model(mnist, QuantPolicy.uniform(4, 8), xt)
    with torch.inference_mode():
        whole = q(xt)
        single = torch.cat([q(xt[i : i + 1]) for i in range(len(xt))])
        shuffled = q(xt.flip(0)).flip(0)
    assert torch.equal(whole.argmax(1), single.argmax(1))
    assert float((whole - single).abs().max()) < 0.02 * float(whole.abs().max())
    assert float((whole - shuffled).abs().max()) < 0.02 * float(whole.abs().max())


def test_bitops_counts_macs_times_bits():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    example = torch.zeros(1, 1, 8, 8)
    rep = bitops(model, QuantPolicy.from_json('{"0": 4, "3": {"weight_bits": 8, "act_bits": 2}}'), example)
    conv_macs, fc_macs = 4 * 6 * 6 * 9, 144 * 10
    assert rep.macs == conv_macs + fc_macs
    assert rep.total == conv_macs * 16 + fc_macs * 16
    assert rep.float_total == (conv_macs + fc_macs) * 1024
    d = rep.to_dict()
    assert d["layers"][0]["name"] == "0" and d["fraction_of_float"] == pytest.approx(16 / 1024)


def test_bitops_of_the_mnist_cnn(mnist):
    rep = bitops(mnist, QuantPolicy.uniform(8), torch.zeros(1, 1, 28, 28))
    assert rep.macs == 28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9 + 1568 * 64 + 640
    assert rep.total * 16 == rep.float_total
    assert np.isclose(rep.to_dict()["fraction_of_float"], 1 / 16)
