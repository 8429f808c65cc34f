"""Adversarial attacks: an empirical upper bound on robust accuracy beside the certified lower bounds.

FGM, PGD (L-inf, L2) and Square (L-inf) with Expectation over Transformation for
stochastic models (:mod:`paramverify.attacks.core`); batched runs with deadlines,
partial results and an optional IBM ART engine (:mod:`paramverify.attacks.run`);
``paramverify attack`` (:mod:`paramverify.attacks.cli`).  torch is imported by the
submodules, so import them directly.
"""

from __future__ import annotations
