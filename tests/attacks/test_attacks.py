"""Attacks lower the accuracy of an undefended model, never leave the eps-ball, and EOT through SQ
is differentiable."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from attacks_helpers import digits, trained_tiny  # noqa: E402

from paramverify.attacks.core import AttackConfig, attack_batch, eot_gradient  # noqa: E402
from paramverify.attacks.run import art_available, resolve_engine, run_attack  # noqa: E402
from paramverify.errors import BackendUnavailableError, SpecError  # noqa: E402
from paramverify.options import Deadline  # noqa: E402
from paramverify.sq.model import SQNet  # noqa: E402
from paramverify.sq.quantizer import SQConfig  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    x, y = digits()
    with torch.random.fork_rng():
        net = trained_tiny(x[:1500], y[:1500])
    return net, x[1500:1620], y[1500:1620]


def _dist(a, b, norm):
    d = (a - b).reshape(len(a), -1)
    return np.abs(d).max(1) if norm == "inf" else np.linalg.norm(d, axis=1)


@pytest.mark.parametrize("kind,norm,eps", [("fgm", "inf", 0.2), ("pgd", "inf", 0.2), ("fgm", "2", 1.5),
                                           ("pgd", "2", 1.5), ("square", "inf", 0.2)])
def test_attack_lowers_accuracy_and_stays_in_the_ball(setup, kind, norm, eps):
    net, x, y = setup
    cfg = AttackConfig(kind, eps, norm, steps=10, queries=150, seed=1)
    res = run_attack(net, x, y, cfg, engine="own", batch=60)
    s = res.summary()
    assert s["clean_accuracy"] > 0.85
    assert s["robust_accuracy"] < s["clean_accuracy"] - 0.3, s
    d = _dist(res.x_adv, x, norm)
    assert d.max() <= eps + 1e-5 and res.max_distance == pytest.approx(float(d.max()), abs=1e-6)
    assert res.x_adv.min() >= 0.0 and res.x_adv.max() <= 1.0
    assert res.complete and res.done == len(x)


def test_pgd_is_at_least_as_strong_as_fgm(setup):
    net, x, y = setup
    f = run_attack(net, x, y, AttackConfig("fgm", 0.1), engine="own").summary()["robust_accuracy"]
    p = run_attack(net, x, y, AttackConfig("pgd", 0.1, steps=20), engine="own").summary()["robust_accuracy"]
    assert p <= f


def test_eps_zero_changes_nothing(setup):
    net, x, y = setup
    res = run_attack(net, x[:20], y[:20], AttackConfig("pgd", 0.0, steps=3), engine="own")
    assert np.array_equal(res.x_adv, x[:20]) and np.array_equal(res.adv_correct, res.clean_correct)


def test_eot_gradient_through_sq_matches_finite_differences(setup):
    net, x, y = setup
    sq = SQNet(net.double(), None, SQConfig(bits=4, alpha=4, tau=0.5, straight_through=False))
    xb = torch.from_numpy(x[:2]).double()
    yb = torch.from_numpy(y[:2])

    def loss(inp):
        sq.set_generator(torch.Generator().manual_seed(7))  # the same SQ samples on every call
        inp = inp.clone().requires_grad_(True)  # the relaxed sample is drawn when a gradient is wanted
        logits = sq.sample_logits(inp, 4)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 10), yb.repeat(4), reduction="sum") / 4

    # a few coordinates against central differences of the relaxed EOT loss
    sq.set_generator(torch.Generator().manual_seed(7))
    g = eot_gradient(sq, xb, yb, 4)
    rng = np.random.default_rng(0)
    for _ in range(6):
        b, i, j = int(rng.integers(2)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
        e = torch.zeros_like(xb)
        e[b, 0, i, j] = 1e-6
        fd = (loss(xb + e).detach() - loss(xb - e).detach()) / 2e-6
        assert float(g[b, 0, i, j]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)
    net.float()


def test_eot_through_sq_straight_through_gives_a_useful_gradient(setup):
    net, x, y = setup
    sq = SQNet(net, None, SQConfig(bits=4, alpha=4))
    xb, yb = torch.from_numpy(x[:30]), torch.from_numpy(y[:30])
    sq.set_generator(torch.Generator().manual_seed(0))
    g = eot_gradient(sq, xb, yb, 8)
    assert torch.isfinite(g).all() and (g.flatten(1).abs().sum(1) > 0).all()
    res = run_attack(sq, x[:60], y[:60], AttackConfig("pgd", 0.3, steps=10, eot=4), engine="own",
                     eval_samples=8, stochastic=True)
    s = res.summary()
    assert s["engine"] == "own" and s["eval_samples"] == 8
    assert s["robust_accuracy"] < s["clean_accuracy"] - 0.3
    assert _dist(res.x_adv, x[:60], "inf").max() <= 0.3 + 1e-6


def test_interrupt_and_deadline_keep_what_is_done(setup):
    net, x, y = setup
    calls = []

    def stop_after_first(done, total):
        calls.append(done)
        if len(calls) == 1:
            raise KeyboardInterrupt

    res = run_attack(net, x, y, AttackConfig("fgm", 0.1), engine="own", batch=40, progress=stop_after_first)
    assert res.interrupted and res.done == 40 and not res.complete and res.x_adv.shape[0] == 40
    res = run_attack(net, x, y, AttackConfig("fgm", 0.1), engine="own", deadline=Deadline(time.monotonic()))
    assert res.done == 0 and not res.complete


def test_bad_settings_are_refused():
    with pytest.raises(SpecError):
        AttackConfig("cw", 0.1)
    with pytest.raises(SpecError):
        AttackConfig("square", 0.1, norm="2")
    with pytest.raises(SpecError):
        AttackConfig("pgd", -0.1)
    with pytest.raises(SpecError):
        resolve_engine("foolbox", AttackConfig("fgm", 0.1), False)


def test_square_needs_images():
    lin = torch.nn.Linear(4, 2)
    with pytest.raises(SpecError):
        attack_batch(lin, torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64), AttackConfig("square", 0.1))


def test_engine_choice():
    cfg = AttackConfig("pgd", 0.1)
    assert resolve_engine("own", cfg, False) == "own"
    assert resolve_engine("auto", AttackConfig("pgd", 0.1, eot=4), False) == "own"
    assert resolve_engine("auto", cfg, True) == "own"
    if art_available():
        assert resolve_engine("auto", cfg, False) == "art"
        with pytest.raises(SpecError):
            resolve_engine("art", cfg, True)
    else:
        with pytest.raises(BackendUnavailableError):
            resolve_engine("art", cfg, False)


@pytest.mark.skipif(not art_available(), reason="IBM ART is not installed (pip install 'paramverify[attacks]')")
@pytest.mark.parametrize("kind,norm,eps", [("fgm", "inf", 0.2), ("pgd", "2", 1.5), ("square", "inf", 0.2)])
def test_art_engine(setup, kind, norm, eps):
    net, x, y = setup
    res = run_attack(net, x[:60], y[:60], AttackConfig(kind, eps, norm, steps=10, queries=100), engine="art")
    s = res.summary()
    assert s["engine"] == "art"
    assert s["robust_accuracy"] < s["clean_accuracy"] - 0.3
    assert _dist(res.x_adv, x[:60], norm).max() <= eps + 1e-5


def test_projection_is_exact_in_float32():
    from paramverify.attacks.core import project

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(64, 1, 8, 8, generator=g)
    far = x0 + (torch.rand(x0.shape, generator=g) * 2 - 1)
    for eps in (0.1, 0.3, 0.15):
        out = project(far, x0, AttackConfig("pgd", eps))
        assert float((out - x0).abs().max()) <= float(np.float32(eps))
        assert out.min() >= 0 and out.max() <= 1
        out2 = project(far, x0, AttackConfig("pgd", eps * 10, norm="2"))
        assert float((out2 - x0).flatten(1).norm(dim=1).max()) <= eps * 10
