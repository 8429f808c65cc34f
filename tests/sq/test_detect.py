"""Detection figures: the AUC against hand-computed values, ROC end points, threshold at the clean mean."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from paramverify.errors import SpecError  # noqa: E402
from paramverify.sq.detect import auc, detect, plot_aip, plot_roc, roc_curve  # noqa: E402


def test_auc_known_answers():
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    # pairs (clean, attacked): (1,2) > , (1,0) <, (3,2) <, (3,0) < ... plus a tie (1,1) = 1/2
    assert auc(np.array([1.0, 3.0]), np.array([2.0, 0.0, 1.0])) == pytest.approx((1 + 0 + 0.5 + 0 + 0 + 0) / 6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=200) + 1
    brute = np.mean([(bb > aa) + 0.5 * (bb == aa) for aa in a for bb in b])
    assert auc(a, b) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(SpecError):
        auc(np.array([]), np.array([1.0]))


def test_roc_and_detection():
    clean = np.array([0.1, 0.2, 0.3, 0.4])
    attacked = np.array([0.35, 0.5, 0.6])
    fpr, tpr = roc_curve(clean, attacked)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    d = detect(clean, attacked)
    assert d.threshold == pytest.approx(0.25)
    assert d.tpr == 1.0 and d.fpr == 0.5
    assert d.auc == pytest.approx(auc(clean, attacked))
    below = detect(-clean, -attacked, direction="below")
    assert below.auc == pytest.approx(d.auc) and below.tpr == 1.0
    assert np.trapezoid(d.tpr_curve, d.fpr_curve) == pytest.approx(d.auc)


def test_plots_are_written(tmp_path):
    d = detect(np.array([0.1, 0.2]), np.array([0.3, 0.15]))
    p = plot_roc({"pgd 0.1": d}, tmp_path / "roc.png")
    q = plot_aip({"pgd": [(0.1, 0.5, 0.8), (0.0, 0.3, 0.99)]}, tmp_path / "aip.png", clean_mi=0.3)
    for f in (p, q):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["aip.png", "roc.png"]
