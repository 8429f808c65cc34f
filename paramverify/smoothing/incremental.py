"""Incremental certification of a quantized copy (Ugare et al., ICLR 2024).

Given a certificate of the float model ``f`` at ``x`` (its class ``cA``, the
lower bound ``pA_low`` at level ``1 - alpha_f`` and the seed of its estimation
noise), certify a modified copy ``f_q`` (quantized, pruned) with few samples:

* evaluate ``f_q`` on the first ``n_q`` noise samples of the float
  certificate's estimation stream (regenerated from its seed) and count the
  ``k`` samples on which ``f_q`` and ``f`` disagree (``f``'s labels come from the
  certificate's cache, ``keep_labels=True``, or are recomputed);
* ``zeta`` = one-sided Clopper-Pearson upper bound on
  ``P(f_q(x + e) != f(x + e))`` at level ``1 - alpha_q``;
* ``P(f_q(x + e) = cA) >= P(f(x + e) = cA) - P(f_q != f) >= pA_low - zeta``,
  so the smoothed ``f_q`` is certified at ``cA`` with radius
  ``sigma * PhiInverse(pA_low - zeta)`` if ``pA_low - zeta > 1/2`` (else abstain).

Confidence: both bounds hold together with probability at least
``1 - alpha_f - alpha_q`` (union bound; no independence is needed, so reusing
the float noise is sound).  The saving comes from ``zeta`` being a bound on a
small probability, whose Clopper-Pearson interval is much narrower than one on
a mid-range ``pA``; when ``pA`` is already close to 1 there is nothing to gain,
and certifying ``f_q`` from scratch with ``n_q`` samples is about as good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from paramverify.errors import SpecError, check
from paramverify.smoothing import ABSTAIN
from paramverify.smoothing.core import (
    Certificate,
    ProgressFn,
    Smooth,
    clopper_pearson_upper,
    radius_from_pa,
)


@dataclass(frozen=True)
class IncrementalCertificate:
    """Certificate of the quantized copy; ``confidence = 1 - alpha_float - alpha_q``.

    ``samples`` counts forward passes of the quantized model (``n_q``), plus
    ``float_samples`` of the float model when its labels were not cached.
    """

    predict: int
    radius: float
    pa_lower: float
    float_pa_lower: float
    zeta: float
    disagreements: int
    n_q: int
    alpha_float: float
    alpha_q: float
    confidence: float
    sigma: float
    samples: int
    float_samples: int
    seconds: float

    @property
    def abstained(self) -> bool:
        return self.predict == ABSTAIN


def certify_incremental(
    quant: Smooth,
    float_cert: Certificate,
    x: object,
    n_q: int,
    alpha_q: float,
    *,
    float_smooth: Smooth | None = None,
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
) -> IncrementalCertificate:
    """Certify ``quant`` (the smoothed quantized copy) at ``x`` from ``float_cert``.

    ``float_cert`` must come from ``Smooth.certify`` of the float model at the
    same ``x`` and sigma, on the same device type; pass it with
    ``keep_labels=True`` to reuse its per-sample labels, or pass
    ``float_smooth`` to recompute them (costing ``n_q`` float forward passes).
    """
    if not 0.0 < alpha_q < 1.0:
        raise SpecError("alpha_q", f"must lie in (0, 1), got {alpha_q!r}", "e.g. 0.001")
    if not (isinstance(n_q, int) and 1 <= n_q <= float_cert.n):
        raise SpecError("n_q", f"must lie in 1..{float_cert.n} (the float certificate's n), got {n_q!r}")
    if abs(quant.options.sigma - float_cert.sigma) > 1e-12:
        raise SpecError("sigma", f"quantized sigma {quant.options.sigma} != float certificate's {float_cert.sigma}")
    if quant.device.type != float_cert.noise.device_type:
        raise SpecError(
            "device",
            f"the float certificate's noise was drawn on {float_cert.noise.device_type}, not {quant.device.type}",
            "certify both models on the same device type",
        )
    start = time.perf_counter()
    alpha_f = float_cert.alpha
    confidence = 1.0 - alpha_f - alpha_q
    if float_cert.abstained:
        return IncrementalCertificate(
            ABSTAIN, 0.0, 0.0, float_cert.pa_lower, 1.0, 0, 0, alpha_f, alpha_q, confidence,
            float_cert.sigma, 0, 0, time.perf_counter() - start,
        )
    float_samples = 0
    if float_cert.labels is not None:
        float_labels = float_cert.labels[:n_q]
    else:
        if float_smooth is None:
            raise SpecError(
                "float_cert", "has no cached labels and no float model was given",
                "certify the float model with keep_labels=True or pass float_smooth",
            )
        _, recomputed = float_smooth.sample_labels(
            x, n_q, float_cert.noise, batch_size=batch_size, keep_labels=True, progress=progress
        )
        assert recomputed is not None
        float_labels = recomputed
        float_samples = n_q
    _, q_labels = quant.sample_labels(x, n_q, float_cert.noise, batch_size=batch_size, keep_labels=True,
                                      progress=progress)
    check(q_labels is not None and q_labels.shape == float_labels.shape, "quantized and float label arrays differ in shape")
    assert q_labels is not None  # for mypy
    k = int(np.count_nonzero(q_labels != float_labels))
    zeta = clopper_pearson_upper(k, n_q, alpha_q)
    pa = float_cert.pa_lower - zeta
    if pa <= 0.5:
        predicted, radius = ABSTAIN, 0.0
    else:
        predicted, radius = float_cert.predict, radius_from_pa(pa, float_cert.sigma)
    return IncrementalCertificate(
        predict=predicted,
        radius=radius,
        pa_lower=max(pa, 0.0),
        float_pa_lower=float_cert.pa_lower,
        zeta=zeta,
        disagreements=k,
        n_q=n_q,
        alpha_float=alpha_f,
        alpha_q=alpha_q,
        confidence=confidence,
        sigma=float_cert.sigma,
        samples=n_q,
        float_samples=float_samples,
        seconds=time.perf_counter() - start,
    )
