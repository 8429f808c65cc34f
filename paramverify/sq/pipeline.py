"""The SQ experiments as functions (shared by ``paramverify sq`` and benchmarks/bench_sq.py).

* :func:`build` - the three models of the paper's Table 1 from a pre-trained LeNet-5:
  ``vanilla``, ``input`` (SQ at the input, fine-tuned) and ``ensemble`` (SQ at the
  input and the feature layer, trained with Eq. 7);
* :func:`sweep` - attacks at several strengths against one model, with the MI of the
  clean and attacked images, the detector's figures and the AIP points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from paramverify.attacks.core import AttackConfig
from paramverify.attacks.run import AttackResult, run_attack
from paramverify.errors import SpecError
from paramverify.options import Deadline
from paramverify.sq.detect import Detection, detect, mi_scores
from paramverify.sq.model import SQNet, lenet5_sq, with_config
from paramverify.sq.quantizer import SQConfig
from paramverify.sq.train import TrainOptions, TrainReport, feature_range, train

KINDS = ("vanilla", "input", "ensemble")


@dataclass(frozen=True)
class BuildOptions:
    """Model recipe: input SQ (bits, alpha), feature SQ (bits, alpha), training options per stage."""

    input_bits: int = 4
    input_alpha: int = 4
    feature_bits: int = 4
    feature_alpha: int = 4
    pretrain: TrainOptions = TrainOptions(epochs=3, batch=64, ensemble=1, lr=1e-3, mu=0.0)
    finetune: TrainOptions = TrainOptions(epochs=2, batch=32, ensemble=16, lr=5e-4, beta=0.0, mu=1.0)

    def input_sq(self) -> SQConfig:
        return SQConfig(bits=self.input_bits, alpha=self.input_alpha, low=0.0, high=1.0)


def pretrain(x: np.ndarray, y: np.ndarray, opts: BuildOptions, deadline: Deadline | None = None,
             progress: Callable[[str], None] | None = None) -> tuple[SQNet, TrainReport]:
    """A plain LeNet-5 trained on ``x, y`` (the starting point of every SQ model)."""
    torch.manual_seed(opts.pretrain.seed)
    net = lenet5_sq()
    return net, train(net, x, y, opts.pretrain, deadline, progress)


def derive(base: SQNet, kind: str, x: np.ndarray, y: np.ndarray, opts: BuildOptions,
           deadline: Deadline | None = None, progress: Callable[[str], None] | None = None
           ) -> tuple[SQNet, TrainReport | None]:
    """``vanilla`` (the base itself), ``input`` or ``ensemble``, fine-tuned from ``base``."""
    if kind not in KINDS:
        raise SpecError("kind", f"unknown model kind {kind!r}", f"use one of {', '.join(KINDS)}")
    if kind == "vanilla":
        return base, None
    if kind == "input":
        net = with_config(base, opts.input_sq(), None)
        ft = replace(opts.finetune, beta=0.0, mu=0.0)
    else:
        high = feature_range(base, x)
        fcfg = SQConfig(bits=opts.feature_bits, alpha=opts.feature_alpha, low=0.0, high=high, learnable=True)
        net = with_config(base, opts.input_sq(), fcfg)
        ft = opts.finetune
    return net, train(net, x, y, ft, deadline, progress)


@dataclass(frozen=True)
class SweepPoint:
    """One attack at one strength: the attack's result, mean MIs and the detector's figures."""

    result: AttackResult
    mi_clean: float | None
    mi_adv: float | None
    detection: Detection | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.result.summary())
        out["mi_adv"] = self.mi_adv
        out["mi_clean"] = self.mi_clean
        if self.detection is not None:
            out["detection"] = self.detection.to_dict()
        return out


def sweep(net: SQNet, x: np.ndarray, y: np.ndarray, configs: list[AttackConfig], *, eval_samples: int = 16,
          mi_samples: int = 0, batch: int = 100, engine: str = "own", deadline: Deadline | None = None,
          progress: Callable[[str], None] | None = None, seed: int = 0) -> tuple[list[SweepPoint], np.ndarray | None]:
    """Run every attack config; with ``mi_samples > 0`` (and a feature SQ) also MI and detection.

    Returns the points done (fewer when the deadline expires or the run is
    interrupted; an interrupted attack's partial result is the last point) and
    the clean MI scores.
    """
    clean_mi = None
    if mi_samples > 0 and net.feature_sq is not None:
        clean_mi = mi_scores(net, x, mi_samples, seed=seed)
    points: list[SweepPoint] = []
    for cfg in configs:
        if deadline is not None and deadline.expired():
            break
        res = run_attack(net, x, y, cfg, engine=engine, eval_samples=eval_samples, batch=batch,
                         deadline=deadline, stochastic=net.stochastic)
        mi_adv = det = None
        if clean_mi is not None and res.done > 0 and not res.interrupted:
            adv_mi = mi_scores(net, res.x_adv, mi_samples, seed=seed + 1)
            mi_adv = float(adv_mi.mean())
            det = detect(clean_mi[:res.done], adv_mi)
        points.append(SweepPoint(res, float(clean_mi.mean()) if clean_mi is not None else None, mi_adv, det))
        if progress is not None:
            s = res.summary()
            extra = f" MI {mi_adv:.4f} AUC {det.auc:.3f}" if det is not None and mi_adv is not None else ""
            progress(f"{cfg.kind} {cfg.norm} eps {cfg.eps:g}: accuracy {s['robust_accuracy']:.4f} "
                     f"({s['images']} images, {s['seconds']:.1f} s){extra}")
        if res.interrupted:
            break
    return points, clean_mi
