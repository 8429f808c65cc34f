"""Incremental certification of a quantized copy (IRS) on linear models with a closed form."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import numpy as np

from paramverify.errors import SpecError
from paramverify.smoothing import ABSTAIN
from paramverify.smoothing.core import (
    Smooth,
    SmoothOptions,
    clopper_pearson_upper,
    radius_from_pa,
)
from paramverify.smoothing.incremental import certify_incremental
from paramverify.smoothing.quant import QuantPolicy, quantize_model

from .helpers import decision, distance, linear_classifier, point_at

SIGMA = 0.5


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(5)
    lin = linear_classifier(rng.standard_normal(16), -0.2)
    q = quantize_model(lin, QuantPolicy.from_json('{"default": {"weight_bits": 3, "act_bits": null}}'))
    return lin, q


def _smooth(model, **kw) -> Smooth:
    return Smooth(model, 2, SmoothOptions(sigma=SIGMA, **kw), torch.Generator().manual_seed(0))


def _quant_linear(q) -> torch.nn.Linear:
    return q.layer if hasattr(q, "layer") else q


def test_identical_copy_loses_only_zeta(models):
    lin, _ = models
    x = np.zeros(16)
    fc = _smooth(lin).certify(x, 100, 20_000, 0.001, seed=1, keep_labels=True)
    ic = certify_incremental(_smooth(lin), fc, x, 2_000, 0.001)
    assert ic.disagreements == 0
    assert ic.zeta == pytest.approx(clopper_pearson_upper(0, 2000, 0.001))
    assert ic.pa_lower == pytest.approx(fc.pa_lower - ic.zeta)
    assert ic.radius == pytest.approx(radius_from_pa(fc.pa_lower - ic.zeta, SIGMA))
    assert ic.radius < fc.radius and ic.predict == fc.predict
    assert ic.confidence == pytest.approx(1 - 0.002)
    assert ic.samples == 2000 and ic.float_samples == 0


def test_recomputing_float_labels_gives_the_same_answer(models):
    lin, q = models
    w, b = decision(lin)
    x = point_at(w, b, 0.8 * SIGMA, np.random.default_rng(3))
    fc = _smooth(lin).certify(x, 100, 5_000, 0.001, seed=2, keep_labels=True)
    assert not fc.abstained
    cached = certify_incremental(_smooth(q), fc, x, 1_000, 0.001, batch_size=300)
    no_cache = type(fc)(**{**fc.__dict__, "labels": None})
    recomputed = certify_incremental(_smooth(q), no_cache, x, 1_000, 0.001, float_smooth=_smooth(lin))
    assert (cached.disagreements, cached.radius) == (recomputed.disagreements, recomputed.radius)
    assert recomputed.float_samples == 1_000
    with pytest.raises(SpecError, match="cached labels"):
        certify_incremental(_smooth(q), no_cache, x, 1_000, 0.001)


def test_quantized_radius_never_exceeds_true_quantized_distance(models):
    lin, q = models
    ql = _quant_linear(q)
    w, b = decision(ql)
    rng = np.random.default_rng(7)
    alpha_f, alpha_q, trials = 0.05, 0.05, 150
    wrong = 0
    x = point_at(w, b, 0.6 * SIGMA, rng)  # moderate pA for the quantized model
    d_q = distance(ql, x)
    assert d_q == pytest.approx(0.6 * SIGMA, rel=1e-6)
    fs, qs = _smooth(lin, batch_size=2000), _smooth(q, batch_size=2000)
    for t in range(trials):
        fc = fs.certify(x, 20, 2_000, alpha_f, seed=500 + t, keep_labels=True)
        ic = certify_incremental(qs, fc, x, 400, alpha_q)
        wrong += ic.predict != ABSTAIN and (ic.predict != 1 or ic.radius > d_q)
    budget = alpha_f + alpha_q
    assert wrong <= budget * trials + 3 * math.sqrt(trials * budget * (1 - budget))


def test_abstains_when_float_abstains_or_bound_too_low(models):
    lin, q = models
    w, b = decision(lin)
    x = point_at(w, b, 0.0, np.random.default_rng(8))
    fc = _smooth(lin).certify(x, 100, 2_000, 0.001, seed=3, keep_labels=True)
    assert fc.abstained
    ic = certify_incremental(_smooth(q), fc, x, 500, 0.001)
    assert ic.abstained and ic.radius == 0.0 and ic.samples == 0
    x2 = point_at(w, b, 0.05 * SIGMA, np.random.default_rng(9))
    fc2 = _smooth(lin).certify(x2, 100, 100_000, 0.001, seed=4, keep_labels=True)
    ic2 = certify_incremental(_smooth(q), fc2, x2, 50, 0.001)  # 50 samples: zeta is large
    assert ic2.zeta > 0.1 and ic2.abstained


def test_input_checks(models):
    lin, q = models
    fc = _smooth(lin).certify(np.zeros(16), 10, 100, 0.01, seed=5, keep_labels=True)
    with pytest.raises(SpecError, match="n_q"):
        certify_incremental(_smooth(q), fc, np.zeros(16), 101, 0.01)
    with pytest.raises(SpecError, match="sigma"):
        other = Smooth(q, 2, SmoothOptions(sigma=0.3))
        certify_incremental(other, fc, np.zeros(16), 50, 0.01)
    with pytest.raises(SpecError, match="alpha_q"):
        certify_incremental(_smooth(q), fc, np.zeros(16), 50, 0.0)
