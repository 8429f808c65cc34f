"""Randomized smoothing: statistical robustness certificates that scale to CNNs.

The sampling path of paramverify.  Formal bound propagation stops scaling at
some depth; randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019) gives a
certificate for the *smoothed* classifier ``g(x) = argmax_c P(f(x + e) = c)``,
``e ~ N(0, sigma^2 I)``, that holds with probability ``1 - alpha`` over the
sampling noise.  This package adds quantized (mixed-precision) models and the
incremental certification of a quantized copy (Ugare et al., ICLR 2024).

torch is an optional dependency (``pip install paramverify[smooth]``); the
submodules import it at module level, so import them directly::

    from paramverify.smoothing.core import Smooth, SmoothOptions
"""

from __future__ import annotations

ABSTAIN = -1
"""Class index reported when the smoothed classifier abstains."""

__all__ = ["ABSTAIN"]
