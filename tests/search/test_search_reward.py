"""The sampled reward equals per-image incremental certification; fast quantization equals quantize_model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from paramverify.errors import SpecError
from paramverify.search.env import CachedEvaluator
from paramverify.search.layers import layer_infos, onnx_layers
from paramverify.search.reward import RewardConfig, SmoothingEvaluator, build_quantized, calibrate_all, image_seed
from paramverify.search.space import BitPolicy
from paramverify.smoothing.core import Smooth
from paramverify.smoothing.incremental import certify_incremental
from paramverify.smoothing.onnx_torch import load_onnx
from paramverify.smoothing.quant import quantize_model

from .nets import labelled_inputs, tiny_cnn

CFG = RewardConfig(sigma=0.25, n0=16, float_n=200, n_q=100, batch_size=256, seed=11)
NAMES = ("conv", "fc1", "fc2")


@pytest.fixture(scope="module")
def setup():
    proto = tiny_cnn(0)
    model = load_onnx(proto)
    x, y = labelled_inputs(proto, 12, seed=1)
    y[0] = (y[0] + 1) % 4  # one wrong label: never counted as correct
    calib = torch.from_numpy(x) + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    ev = SmoothingEvaluator(model, x, y, calib, CFG, num_classes=4)
    return proto, model, x, y, calib, ev


def test_layers_and_onnx_mapping_of_a_small_cnn(setup):
    proto, model, x, *_ = setup
    infos = layer_infos(model, torch.from_numpy(x[:1]))
    assert [i.name for i in infos] == list(NAMES)
    assert infos[0].macs == 3 * 36 * 9 and infos[1].macs == 108 * 8 and infos[2].macs == 8 * 4
    assert infos[0].kind == "conv" and infos[0].kernel == 9 and infos[1].in_channels == 108
    mapping = onnx_layers(proto, model)
    assert mapping["fc1"].weight == "w1" and mapping["fc1"].axis == 0 and mapping["conv"].bias == "cb"
    head = tiny_cnn(0, matmul_head=True)
    m2 = onnx_layers(head, load_onnx(head))
    assert m2["fc2"].transposed and m2["fc2"].axis == 1 and m2["fc2"].bias is None


@pytest.mark.parametrize("bits", [(8, 8, 8), (3, 2, 4)])
def test_reward_per_image_equals_certify_incremental(setup, bits):
    _, model, x, _, _, ev = setup
    policy = BitPolicy.from_bits(NAMES, bits)
    predict, radius, dis = ev.per_image(policy)
    qsmooth = Smooth(ev.quantized_model(policy), 4, CFG.smooth_options())
    fsmooth = Smooth(model, 4, CFG.smooth_options())
    for i in range(len(x)):
        fc = fsmooth.certify(x[i], CFG.n0, CFG.float_n, CFG.alpha, seed=image_seed(CFG.seed, i), keep_labels=True)
        ic = certify_incremental(qsmooth, fc, x[i], CFG.n_q, CFG.alpha_q)
        assert predict[i] == ic.predict
        assert radius[i] == pytest.approx(ic.radius, abs=1e-12)
        assert dis[i] == ic.disagreements


@pytest.mark.parametrize("bits", [(3, 2, 4)])
def test_reward_with_more_samples_equals_certify_incremental(setup, bits):
    """evaluate_n / per_image(n) for the final race: the first n samples of the same float certificates' noise."""
    _, model, x, _, _, ev = setup
    policy = BitPolicy.from_bits(NAMES, bits)
    n = CFG.float_n
    predict, radius, dis = ev.per_image(policy, n)
    qsmooth = Smooth(ev.quantized_model(policy), 4, CFG.smooth_options())
    fsmooth = Smooth(model, 4, CFG.smooth_options())
    for i in range(len(x)):
        fc = fsmooth.certify(x[i], CFG.n0, CFG.float_n, CFG.alpha, seed=image_seed(CFG.seed, i), keep_labels=True)
        ic = certify_incremental(qsmooth, fc, x[i], n, CFG.alpha_q)
        assert predict[i] == ic.predict and dis[i] == ic.disagreements
        assert radius[i] == pytest.approx(ic.radius, abs=1e-12)
    e = ev.evaluate_n(policy, n)
    assert e.samples == len(ev.active) * n
    # the first n_q of those samples are the search reward's samples
    assert ev.evaluate_n(policy, CFG.n_q).reward == ev.evaluate(policy).reward
    cache = CachedEvaluator(ev)
    cache.evaluate(policy)
    b, hit = cache.evaluate(policy, n=n)
    assert not hit and b.reward == e.reward and cache.computed == 2
    assert cache.evaluate(policy, n=n)[1]  # cached under its own key
    with pytest.raises(SpecError) as info:
        ev.evaluate_n(policy, CFG.float_n + 1)
    assert info.value.field == "final_n" and "float_n" in str(info.value)


def test_reward_metrics_and_normalisation(setup):
    ev = setup[-1]
    fm = ev.float_metrics
    assert fm["cert_acc@0"] <= 11 / 12  # the wrong label never counts
    good = ev.evaluate(BitPolicy.from_bits(NAMES, (8, 8, 8)))
    bad = ev.evaluate(BitPolicy.from_bits(NAMES, (2, 2, 2)))
    assert good.samples == len(ev.active) * CFG.n_q
    assert 0.0 <= bad.reward < good.reward <= 1.0 + 1e-9
    m = good.metrics
    assert m["cert_acc@0"] >= m["cert_acc@0.25"] >= m["cert_acc@0.5"]
    expected = 0.5 * m["cert_acc@0.25"] / fm["cert_acc@0.25"] + 0.5 * m["acr"] / fm["acr"]
    assert good.reward == pytest.approx(expected)
    cache = CachedEvaluator(ev)
    a, _ = cache.evaluate(BitPolicy.from_bits(NAMES, (8, 8, 8)))
    assert a.reward == good.reward  # deterministic in the policy


def test_float_certificates_are_cached_on_disk(setup, tmp_path, monkeypatch):
    _, model, x, y, calib, ev = setup
    path = tmp_path / "fc.npz"
    first = SmoothingEvaluator(model, x, y, calib, CFG, 4, cache_path=path)
    assert path.is_file()

    def no_certify(*_a, **_k):
        raise AssertionError("the float certificates should come from the cache file")

    with monkeypatch.context() as mp:
        mp.setattr(Smooth, "certify", no_certify)
        second = SmoothingEvaluator(model, x, y, calib, CFG, 4, cache_path=path)
    assert dict(second.float_metrics) == dict(first.float_metrics) == dict(ev.float_metrics)
    other = SmoothingEvaluator(model, x, y, calib, RewardConfig(sigma=0.25, n0=16, float_n=150, n_q=100, seed=11), 4,
                               cache_path=path)  # other settings: recomputed, not reused
    assert other._float["labels"].shape == (len(x), 150)  # every estimation sample's label (the final race)


def test_precalibrated_quantization_equals_quantize_model(setup):
    _, model, x, _, calib, _ = setup
    ranges = calibrate_all(model, calib, per_channel=False)
    xt = torch.from_numpy(x) + 0.3
    for bits in [(2, 3, 4), (8, 8, 8), (5, 2, 7)]:
        qp = CFG.quant_policy(BitPolicy.from_bits(NAMES, bits))
        with torch.inference_mode():
            assert torch.equal(build_quantized(model, qp, ranges)(xt), quantize_model(model, qp, calib)(xt))


def test_config_checks():
    with pytest.raises(SpecError):
        RewardConfig(sigma=0.25, float_n=100, n_q=200)
    with pytest.raises(SpecError):
        RewardConfig(sigma=0.25, acr_weight=1.5)
