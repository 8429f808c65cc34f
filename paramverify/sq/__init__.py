"""Stochastic quantization (SQ) ensembles (Farkya, Raghavan & Ziskind, SRI).

* :mod:`paramverify.sq.quantizer` - the stochastic quantizer (Eq. 2), Gumbel-softmax sampling;
* :mod:`paramverify.sq.mi` - exact mutual information from the PMFs (Eqs. 4-6);
* :mod:`paramverify.sq.model` - LeNet-5 with SQ at the input and the feature layer, ensembles;
* :mod:`paramverify.sq.train` - the training loss of Eq. 7;
* :mod:`paramverify.sq.detect` - MI-based attack detection (ROC, AUC) and the adversarial
  information plane;
* :mod:`paramverify.sq.cli` - ``paramverify sq train|attack|detect|aip``.

torch is imported by the submodules, so import them directly.
"""

from __future__ import annotations
