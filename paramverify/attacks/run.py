"""Attack a data set in batches: robust accuracy, adversarial examples, partial results on a deadline.

Engines: ``own`` (:mod:`paramverify.attacks.core`, EOT-capable) and ``art`` (IBM's
Adversarial Robustness Toolbox, ``pip install 'paramverify[attacks]'``; its
FastGradientMethod, ProjectedGradientDescent and SquareAttack on the same torch
module, for deterministic models: ART has no EOT through our stochastic quantizer).
``auto`` picks ``art`` when it is installed and the run needs no EOT, else ``own``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from paramverify.attacks.core import AttackConfig, attack_batch, eot_logits, project
from paramverify.errors import BackendUnavailableError, SpecError, check
from paramverify.options import Deadline

ENGINES = ("auto", "own", "art")


def art_available() -> bool:
    return importlib.util.find_spec("art") is not None


def resolve_engine(engine: str, cfg: AttackConfig, stochastic: bool) -> str:
    """The engine that runs: ``auto`` -> ``art`` for deterministic runs without EOT when installed."""
    if engine not in ENGINES:
        raise SpecError("engine", f"unknown engine {engine!r}", "use auto, own or art")
    needs_own = cfg.eot > 1 or stochastic
    if engine == "art":
        if not art_available():
            raise BackendUnavailableError("--engine art needs IBM ART: pip install 'paramverify[attacks]'")
        if needs_own:
            raise SpecError("engine", "ART cannot take EOT gradients through stochastic quantization",
                            "use --engine own (or auto)")
        return "art"
    if engine == "auto" and art_available() and not needs_own:
        return "art"
    return "own"


@dataclass(frozen=True)
class AttackResult:
    """Per-image outcome of one attack run (``done`` images of ``total`` when cut short)."""

    config: AttackConfig
    engine: str
    x_adv: np.ndarray
    clean_correct: np.ndarray
    adv_correct: np.ndarray
    max_distance: float
    seconds: float
    total: int
    eval_samples: int
    interrupted: bool = False

    @property
    def done(self) -> int:
        return len(self.adv_correct)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    def summary(self) -> dict[str, object]:
        n = max(1, self.done)
        return {
            "attack": self.config.kind, "norm": self.config.norm, "eps": self.config.eps, "engine": self.engine,
            "eot": self.config.eot, "steps": self.config.steps if self.config.kind == "pgd" else None,
            "queries": self.config.queries if self.config.kind == "square" else None,
            "images": self.done, "of": self.total, "complete": self.complete,
            "clean_accuracy": float(self.clean_correct.sum()) / n,
            "robust_accuracy": float(self.adv_correct.sum()) / n,
            "max_distance": self.max_distance, "eval_samples": self.eval_samples,
            "seconds": round(self.seconds, 3), "interrupted": self.interrupted,
        }


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, samples: int) -> torch.Tensor:
    """Labels of the model (the averaged softmax of ``samples`` passes for a stochastic model)."""
    return torch.softmax(eot_logits(model, x, samples), -1).mean(0).argmax(1)


def _art_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, classes: int) -> torch.Tensor:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent, SquareAttack
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=classes, clip_values=(cfg.clip_min, cfg.clip_max), device_type="cpu")
    norm = np.inf if cfg.norm == "inf" else 2
    if cfg.kind == "fgm":
        atk = FastGradientMethod(clf, norm=norm, eps=cfg.eps, batch_size=len(x))
    elif cfg.kind == "pgd":
        atk = ProjectedGradientDescent(clf, norm=norm, eps=cfg.eps, eps_step=cfg.alpha, max_iter=cfg.steps,
                                       num_random_init=1 if cfg.random_start else 0, batch_size=len(x),
                                       verbose=False)
    else:
        atk = SquareAttack(clf, norm=norm, eps=cfg.eps, max_iter=cfg.queries, p_init=cfg.p_init,
                           batch_size=len(x), verbose=False)
    out = atk.generate(x.numpy(), y.numpy())
    # ART projects in float64 and may land a rounding step outside the float32 ball: project again
    x_adv = project(torch.from_numpy(np.asarray(out, np.float32)), x, cfg)
    dist = (x_adv - x).flatten(1)
    dist = dist.abs().amax(1) if cfg.norm == "inf" else dist.norm(dim=1)
    check(bool((dist <= cfg.eps * (1 + 1e-5) + 1e-6).all()), "ART result left the eps-ball")
    return x_adv


def run_attack(model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, *, engine: str = "own",
               eval_samples: int = 16, batch: int = 100, deadline: Deadline | None = None,
               progress: Callable[[int, int], None] | None = None, stochastic: bool = False) -> AttackResult:
    """Attack every image of ``x`` (labels ``y``) in batches; stops early at the deadline.

    Robust accuracy counts an image as correct when the model (the ensemble of
    ``eval_samples`` passes if ``stochastic``) labels its adversarial example
    correctly.  An interrupt (Ctrl-C) ends the run after the batches finished so
    far, which are returned with ``interrupted=True``.
    """
    if len(x) != len(y):
        raise SpecError("labels", f"need {len(x)} labels, got {len(y)}")
    engine = resolve_engine(engine, cfg, stochastic)
    samples = eval_samples if stochastic else 1
    gen = torch.Generator().manual_seed(cfg.seed)
    if hasattr(model, "set_generator"):
        model.set_generator(gen)
    model.eval()
    t0 = time.monotonic()
    advs: list[np.ndarray] = []
    clean: list[np.ndarray] = []
    robust: list[np.ndarray] = []
    worst = 0.0
    classes = None
    interrupted = False
    try:
        for i in range(0, len(x), batch):
            if deadline is not None and deadline.expired():
                break
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))
            yb = torch.from_numpy(np.asarray(y[i:i + batch], np.int64))
            if engine == "art":
                if classes is None:
                    with torch.no_grad():
                        classes = int(model(xb[:1]).shape[1])
                xa = _art_batch(model, xb, yb, cfg, classes)
            else:
                xa = attack_batch(model, xb, yb, cfg, gen)
            d = (xa - xb).flatten(1)
            worst = max(worst, float((d.abs().amax(1) if cfg.norm == "inf" else d.norm(dim=1)).max()))
            ok_clean = (predict(model, xb, samples) == yb).numpy()
            ok_adv = (predict(model, xa, samples) == yb).numpy()
            advs.append(xa.numpy())
            clean.append(ok_clean)
            robust.append(ok_adv)
            if progress is not None:
                progress(min(i + batch, len(x)), len(x))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if hasattr(model, "set_generator"):
            model.set_generator(None)
    k = min(len(advs), len(clean), len(robust))
    advs, clean, robust = advs[:k], clean[:k], robust[:k]
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    return AttackResult(cfg, engine, cat(advs, (0, *x.shape[1:])).astype(np.float32),
                        cat(clean, (0,)).astype(bool), cat(robust, (0,)).astype(bool), worst,
                        time.monotonic() - t0, len(x), samples, interrupted)
