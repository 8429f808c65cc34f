"""QDQ export: runs on onnxruntime and matches the fake-quantized torch model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import onnx
from onnx import numpy_helper

from paramverify.errors import SpecError
from paramverify.search.export import check_qdq, count_qdq, export_qdq, run_ort
from paramverify.search.space import BitPolicy
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import QuantPolicy, quantize_model

from .nets import labelled_inputs, tiny_cnn

NAMES = ("conv", "fc1", "fc2")


def _quantized(proto, bits, **scheme):
    model = load_onnx(proto)
    x, _ = labelled_inputs(proto, 64, seed=2)
    calib = torch.from_numpy(x) + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    mapping = BitPolicy.from_bits(NAMES, bits).to_quant_mapping(**scheme)
    return model, quantize_model(model, QuantPolicy.from_mapping(mapping), calib), x


@pytest.mark.parametrize("bits", [(8, 8, 8), (2, 5, 3), (4, 2, 8)])
@pytest.mark.parametrize("matmul_head", [False, True])
def test_qdq_export_runs_in_onnxruntime_and_matches_fake_quant(bits, matmul_head):
    proto = tiny_cnn(1, matmul_head=matmul_head)
    model, q, x = _quantized(proto, bits)
    qdq = export_qdq(proto, model, q)
    onnx.checker.check_model(qdq)
    counts = count_qdq(qdq)
    assert counts["QuantizeLinear"] == 3 and counts["DequantizeLinear"] == 6
    assert counts["Clip"] == sum(b < 8 for b in bits)  # 8-bit asymmetric activations use uint8's full range
    xs = np.concatenate([x, x + 0.3 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)])
    check = check_qdq(qdq, q, xs)
    assert check["label_agreement"] == 1.0
    assert check["max_rel_diff"] < 1e-2  # at most a rounding tie apart
    # the stored integers lie on each layer's b-bit grid
    ints = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer if t.name.endswith("weight_quantized")}
    for name, b in zip(NAMES, bits):
        w = ints[f"{name}.weight_quantized"]
        assert w.dtype == np.int8 and np.abs(w).max() <= 2 ** (b - 1) - 1
    # the float weights are gone; the smoothing loader reads the QDQ model back exactly
    assert not {"cw", "w1", "w2"} & {t.name for t in qdq.graph.initializer}
    with torch.inference_mode():
        back = load_onnx(qdq)(torch.from_numpy(xs))
        assert torch.allclose(back, q(torch.from_numpy(xs)), atol=1e-5)


def test_weight_only_and_per_tensor_export():
    proto = tiny_cnn(2)
    model = load_onnx(proto)
    mapping = BitPolicy.from_bits(NAMES, (3, 4, 5), quantize_activations=False).to_quant_mapping(weight_per_channel=False)
    q = quantize_model(model, QuantPolicy.from_mapping(mapping))
    qdq = export_qdq(proto, model, q)
    assert count_qdq(qdq) == {"QuantizeLinear": 0, "DequantizeLinear": 3, "Clip": 0}
    x, _ = labelled_inputs(proto, 20, seed=3)
    with torch.inference_mode():
        ref = q(torch.from_numpy(x)).numpy()
    assert np.allclose(run_ort(qdq, x), ref, atol=1e-5)


def test_export_writes_fine_tuned_weights_and_biases():
    proto = tiny_cnn(3)
    _, _, x = _quantized(proto, (8, 8, 8))
    tuned = load_onnx(proto)
    with torch.no_grad():
        tuned.fc1.weight.mul_(1.5)
        tuned.fc1.bias.add_(0.25)
    calib = torch.from_numpy(x)
    q = quantize_model(tuned, QuantPolicy.from_mapping(BitPolicy.from_bits(NAMES, (6, 6, 6)).to_quant_mapping()), calib)
    qdq = export_qdq(proto, tuned, q)
    bias = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}["b1"]
    assert np.allclose(bias, tuned.fc1.bias.detach().numpy())
    assert check_qdq(qdq, q, x)["label_agreement"] == 1.0


def test_per_channel_activations_are_refused():
    proto = tiny_cnn(4)
    base, q, _ = _quantized(proto, (4, 4, 4), act_per_channel=True)
    with pytest.raises(SpecError, match="per-channel activation"):
        export_qdq(proto, base, q)


def test_static_batch_one_export_is_checked_in_chunks():
    """A batch-1 export (fixed first input dimension) ran the search to its end and then failed in the QDQ
    check: onnxruntime rejects a batch of 10 ('Got: 10 Expected: 1')."""
    proto = tiny_cnn(3)
    x, _ = labelled_inputs(proto, 10, seed=2)
    for t in list(proto.graph.input) + list(proto.graph.output):
        dim = t.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_param")
        dim.dim_value = 1
    model = load_onnx(proto)
    mapping = BitPolicy.from_bits(NAMES, (8, 4, 4)).to_quant_mapping()
    q = quantize_model(model, QuantPolicy.from_mapping(mapping), torch.from_numpy(x))
    qdq = export_qdq(proto, model, q)
    check = check_qdq(qdq, q, x[:10])
    assert check["inputs"] == 10 and check["label_agreement"] == 1.0 and check["max_rel_diff"] < 1e-2
    assert run_ort(qdq, x[:3]).shape == (3, 4)
