"""Smooth.predict / Smooth.certify against the closed form of a linear classifier."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import numpy as np
from scipy.stats import binomtest, norm

from paramverify.errors import ModelError, SpecError
from paramverify.smoothing import ABSTAIN
from paramverify.smoothing.core import (
    NoiseSpec,
    NoiseStream,
    Smooth,
    SmoothOptions,
    clopper_pearson_lower,
    clopper_pearson_upper,
)

from .helpers import decision, distance, linear_classifier, point_at

SIGMA = 0.5


@pytest.fixture(scope="module")
def lin():
    rng = np.random.default_rng(0)
    return linear_classifier(rng.standard_normal(20), 0.3)


def smooth_for(model, seed: int = 0, **kw) -> Smooth:
    return Smooth(model, 2, SmoothOptions(sigma=SIGMA, **kw), torch.Generator().manual_seed(seed))


def test_clopper_pearson_matches_scipy():
    for k, n in [(0, 10), (3, 10), (10, 10), (480, 1000), (99990, 100000)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * 0.01, method="exact")
        assert clopper_pearson_lower(k, n, 0.01) == pytest.approx(ci.low, abs=1e-12)
        assert clopper_pearson_upper(k, n, 0.01) == pytest.approx(ci.high, abs=1e-12)


def test_all_agree_radius_matches_reported_table():
    # ANCHORS: every sample agrees, alpha 0.001 -> 2.46, 3.20, 3.81 sigma for N = 1e3, 1e4, 1e5
    for n, expect in [(1000, 2.46), (10_000, 3.20), (100_000, 3.81)]:
        assert norm.ppf(clopper_pearson_lower(n, n, 0.001)) == pytest.approx(expect, abs=0.006)


def test_radius_below_and_approaching_hyperplane_distance(lin):
    rng = np.random.default_rng(1)
    w, b = decision(lin)
    x = point_at(w, b, 0.5 * SIGMA, rng)  # pA = Phi(0.5) ~ 0.69
    d = distance(lin, x)
    assert d == pytest.approx(0.5 * SIGMA, rel=1e-6)
    sm = smooth_for(lin, batch_size=10_000)
    gaps = []
    for n in (1_000, 10_000, 100_000):
        cert = sm.certify(x, 100, n, 0.001, seed=7)
        assert cert.predict == 1
        assert cert.radius <= d
        gaps.append(d - cert.radius)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.03 * SIGMA
    # the empirical pA agrees with the closed form Phi(d / sigma)
    assert cert.count / cert.n == pytest.approx(norm.cdf(d / SIGMA), abs=0.006)


def test_coverage_of_certified_radius(lin):
    """Over repeated certifications the radius exceeds the true distance at most alpha of the time."""
    rng = np.random.default_rng(2)
    w, b = decision(lin)
    x = point_at(w, b, 0.4 * SIGMA, rng)
    d = distance(lin, x)
    sm = smooth_for(lin, batch_size=200)
    alpha, trials = 0.1, 400
    too_big = 0
    for t in range(trials):
        cert = sm.certify(x, 20, 200, alpha, seed=10_000 + t)
        too_big += cert.predict != ABSTAIN and (cert.radius > d or cert.predict != 1)
    tolerance = alpha * trials + 3 * math.sqrt(trials * alpha * (1 - alpha))
    assert too_big <= tolerance
    assert too_big > 0 or trials * alpha < 5  # the test has power: overestimates do occur sometimes


def test_abstains_on_the_decision_boundary(lin):
    rng = np.random.default_rng(3)
    w, b = decision(lin)
    x = point_at(w, b, 0.0, rng)
    sm = smooth_for(lin)
    cert = sm.certify(x, 100, 5000, 0.001, seed=1)
    assert cert.predict == ABSTAIN and cert.radius == 0.0 and cert.abstained
    pred = sm.predict(x, 5000, 0.001, seed=2)
    assert pred.predict == ABSTAIN and pred.p_value > 0.001
    far = point_at(w, b, -3 * SIGMA, rng)
    assert sm.predict(far, 1000, 0.001, seed=3).predict == 0
    assert sm.certify(far, 100, 1000, 0.001, seed=4).predict == 0


def test_constant_classifier_never_abstains():
    class Const(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 3)
            out[:, 2] = 1.0
            return out

    sm = Smooth(Const(), 3, SmoothOptions(sigma=1.0), torch.Generator().manual_seed(0))
    cert = sm.certify(np.zeros(4), 10, 1000, 0.001)
    assert cert.predict == 2
    assert cert.radius == pytest.approx(norm.ppf(0.001 ** (1 / 1000)), rel=1e-9)
    assert sm.predict(np.zeros(4), 50, 0.001).predict == 2


@pytest.mark.parametrize("batch", [3, 64, 999, 5000])
def test_batch_size_invariance(lin, batch):
    x = np.linspace(-0.2, 0.2, 20)
    ref = smooth_for(lin, batch_size=1000, noise_block=64).certify(x, 50, 1500, 0.01, seed=123)
    got = smooth_for(lin, batch_size=batch, noise_block=64).certify(x, 50, 1500, 0.01, seed=123)
    assert (got.count, got.guess, got.radius) == (ref.count, ref.guess, ref.radius)
    p_ref = smooth_for(lin, batch_size=1000, noise_block=64).predict(x, 333, 0.01, seed=5)
    p_got = smooth_for(lin, batch_size=batch, noise_block=64).predict(x, 333, 0.01, seed=5)
    assert p_ref.counts == p_got.counts


def test_noise_stream_is_slicing_invariant():
    spec = NoiseSpec(seed=9, stream=1, block=16, device_type="cpu")
    whole = NoiseStream(spec, (3,), torch.device("cpu")).take(100)
    s = NoiseStream(spec, (3,), torch.device("cpu"))
    parts = torch.cat([s.take(k) for k in (1, 15, 16, 33, 35)])
    assert torch.equal(whole, parts)
    assert abs(float(whole.mean())) < 0.3 and 0.7 < float(whole.std()) < 1.3


def test_injected_generator_makes_runs_repeatable(lin):
    x = np.zeros(20)
    a = [smooth_for(lin, seed=42).certify(x, 10, 500, 0.01).count for _ in range(2)]
    s = smooth_for(lin, seed=42)
    b = [s.certify(x, 10, 500, 0.01) for _ in range(2)]
    assert a[0] == a[1] == b[0].count
    assert b[0].noise.seed != b[1].noise.seed  # successive calls draw fresh seeds


def test_keep_labels_matches_counts(lin):
    cert = smooth_for(lin).certify(np.zeros(20), 10, 1234, 0.01, seed=3, keep_labels=True, batch_size=100)
    assert cert.labels is not None and cert.labels.shape == (1234,)
    assert int((cert.labels == cert.guess).sum()) == cert.count


def test_bfloat16_autocast_runs(lin):
    cert = smooth_for(lin, dtype="bfloat16").certify(np.ones(20), 10, 500, 0.01, seed=3)
    assert cert.predict in (ABSTAIN, 0, 1)


def test_input_errors(lin):
    with pytest.raises(SpecError, match="sigma"):
        SmoothOptions(sigma=0.0)
    with pytest.raises(SpecError, match="dtype"):
        SmoothOptions(sigma=1.0, dtype="int8")
    sm = smooth_for(lin)
    with pytest.raises(SpecError, match="alpha"):
        sm.certify(np.zeros(20), 10, 100, 1.5)
    with pytest.raises(SpecError, match="n0"):
        sm.certify(np.zeros(20), 0, 100, 0.01)
    with pytest.raises(SpecError, match="NaN"):
        sm.predict(np.full(20, np.nan), 10, 0.01)
    wrong = Smooth(lin, 3, SmoothOptions(sigma=1.0))
    with pytest.raises(ModelError, match="shape"):
        wrong.predict(np.zeros(20), 10, 0.01)
