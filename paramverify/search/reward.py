"""The sampled reward: incremental certification of the quantized copy.

Once per run, the float model is certified on the reward images with
:meth:`Smooth.certify` (``n0`` + ``float_n`` samples each, ``keep_labels``).
A policy's reward then costs ``n_q`` forward passes of the quantized copy per
image: on the first ``n_q`` samples of each float certificate's estimation
noise (regenerated from its seed, kept in memory) it counts the
disagreements ``k`` with the float labels and applies
:func:`paramverify.smoothing.incremental.certify_incremental`'s rule:
``pA >= pA_float_low - zeta(k)``, ``zeta`` the one-sided Clopper-Pearson upper
bound at ``1 - alpha_q``; class = the float class and radius
``sigma * PhiInverse(pA)`` when ``pA > 1/2``, else abstain.  The difference
from calling ``certify_incremental`` per image is only batching across images
(a test checks that the answers coincide).

With ``pool`` (``--workers`` / ``--ray-address``) the float certificates (per image) and
each policy's quantized labels (whole batches of the same layout) run as Ray tasks
(:mod:`paramverify.search.reward_jobs`); the numbers are those of one process.

:meth:`SmoothingEvaluator.evaluate_n` computes the same reward from the first
``n`` samples (``n <= float_n``) of the same noise: the final race
(:func:`paramverify.search.baselines.race`) re-evaluates the best policies of
a search with it.  The float certificates keep the labels of all ``float_n``
estimation samples for that; the noise beyond the ``n_q`` kept in memory is
regenerated on demand from the same seeds.

Guarantee (per image, over the sampling noise): each quantized certificate is
correct with probability at least ``1 - alpha - alpha_q``.  Certified
accuracy at radius ``r`` and the average certified radius (ACR, radius of a
correct certificate, 0 otherwise, averaged over all reward images) follow;
the reward is ``(1 - w) * CA_q(r*) / CA_f(r*) + w * ACR_q / ACR_f`` with the
float model's values from its own certificates (``w = acr_weight``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from paramverify.errors import SpecError
from paramverify.fileio import atomic_path
from paramverify.search.env import Evaluation
from paramverify.search.reward_jobs import (
    FloatCertJob,
    batch_labels,
    noisy_rows,
    pooled_float_certificates,
    pooled_labels,
)
from paramverify.search.space import BitPolicy
from paramverify.smoothing import ABSTAIN
from paramverify.smoothing.core import (
    Smooth,
    SmoothOptions,
    clopper_pearson_upper,
    radius_from_pa,
)
from paramverify.smoothing.quant import (
    FakeQuantLayer,
    QuantPolicy,
    calibrate_ranges,
    quantizable_layers,
    quantize_model,
)

RADII = (0.0, 0.25, 0.5)
#: RewardConfig fields the float certificates do not depend on (kept out of their cache key)
_NOT_IN_FLOAT_CERTIFICATES = ("n_q", "alpha_q", "radius", "acr_weight", "radii", "weight_symmetric",
                              "weight_per_channel", "act_symmetric", "act_per_channel")


@dataclass(frozen=True)
class RewardConfig:
    """How the sampled reward is computed (see the module docstring)."""

    sigma: float
    n0: int = 100
    float_n: int = 1000
    n_q: int = 128
    alpha: float = 0.001
    alpha_q: float = 0.001
    radius: float = 0.25
    acr_weight: float = 0.5
    radii: tuple[float, ...] = RADII
    batch_size: int = 1000
    device: str = "cpu"
    seed: int = 0
    weight_symmetric: bool = True
    weight_per_channel: bool = True
    act_symmetric: bool = False
    act_per_channel: bool = False

    def __post_init__(self) -> None:
        for name in ("n0", "float_n", "n_q", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise SpecError(name, f"must be a positive integer, got {v!r}")
        if self.n_q > self.float_n:
            raise SpecError("n_q", f"({self.n_q}) must not exceed float_n ({self.float_n})",
                            "the quantized copy reuses the float certificate's samples")
        for name in ("alpha", "alpha_q"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise SpecError(name, f"must lie in (0, 1), got {v!r}", "e.g. 0.001")
        if not 0.0 <= self.acr_weight <= 1.0:
            raise SpecError("acr_weight", f"must lie in [0, 1], got {self.acr_weight!r}")
        if self.radius < 0:
            raise SpecError("radius", f"must be >= 0, got {self.radius!r}")

    def smooth_options(self) -> SmoothOptions:
        return SmoothOptions(sigma=self.sigma, batch_size=self.batch_size, device=self.device)

    def quant_policy(self, policy: BitPolicy) -> QuantPolicy:
        return QuantPolicy.from_mapping(policy.to_quant_mapping(
            weight_symmetric=self.weight_symmetric, weight_per_channel=self.weight_per_channel,
            act_symmetric=self.act_symmetric, act_per_channel=self.act_per_channel))


def image_seed(base: int, i: int) -> int:
    """The certification seed of reward image ``i`` (``certify_dataset``'s rule)."""
    return base + i


def metrics_from(correct: np.ndarray, radius: np.ndarray, radii: Sequence[float]) -> dict[str, float]:
    """Certified accuracy at each radius and the ACR (per-image arrays, abstain = not correct)."""
    out = {f"cert_acc@{r:g}": float(np.mean(correct & (radius >= r))) if len(correct) else 0.0 for r in radii}
    out["acr"] = float(np.mean(np.where(correct, radius, 0.0))) if len(correct) else 0.0
    return out


class SmoothingEvaluator:
    """Reward of a policy from incremental certification on fixed reward images.

    ``finetune`` (optional) maps a policy to a float model whose weights were
    fine-tuned for it (:mod:`.finetune`); it must be deterministic.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: np.ndarray,
        labels: np.ndarray,
        calibration: torch.Tensor,
        config: RewardConfig,
        num_classes: int,
        *,
        finetune: Callable[[BitPolicy], nn.Module] | None = None,
        cache_path: Path | None = None,
        progress: Callable[[str], None] | None = None,
        pool: Any = None,
    ) -> None:
        if len(inputs) != len(labels) or len(inputs) == 0:
            raise SpecError("inputs", f"need one label per reward image, got {len(inputs)} inputs, {len(labels)} labels")
        self.model = model.eval()
        self.config = config
        self.num_classes = num_classes
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.calibration = calibration
        self.finetune = finetune
        self.device = torch.device(config.device)
        self._ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.pool = pool  # a RayPool: the work below as tasks (same numbers)
        start = time.perf_counter()
        self._float = self._float_certificates(cache_path, progress)
        self.float_seconds = time.perf_counter() - start
        self._prepare()

    # -- float certificates (once) --------------------------------------------------
    def _meta(self) -> str:
        digest = hashlib.sha256(self.inputs.tobytes()).hexdigest()[:16]
        params = hashlib.sha256(
            b"".join(p.detach().cpu().numpy().tobytes() for p in self.model.parameters())).hexdigest()[:16]
        # only what the float certificates depend on: n_q and the reward's shape may change
        config = {k: v for k, v in asdict(self.config).items() if k not in _NOT_IN_FLOAT_CERTIFICATES}
        return json.dumps({"config": config, "inputs": digest, "params": params, "labels": "all float_n"},
                          sort_keys=True)

    def _float_certificates(self, cache_path: Path | None, progress: Callable[[str], None] | None) -> dict[str, np.ndarray]:
        meta = self._meta()
        if cache_path is not None and cache_path.is_file():
            with np.load(cache_path, allow_pickle=False) as data:
                if str(data["meta"]) == meta:
                    return {k: data[k] for k in ("predict", "pa_lower", "radius", "labels")}
        c = self.config
        smooth = Smooth(self.model, self.num_classes, c.smooth_options(), generator=torch.Generator().manual_seed(c.seed))
        n = len(self.inputs)
        out = {"predict": np.zeros(n, np.int64), "pa_lower": np.zeros(n), "radius": np.zeros(n),
               "labels": np.zeros((n, c.float_n), np.int32)}
        if self.pool is not None:  # groups of images as tasks, each image as in the loop below
            certs = pooled_float_certificates(self.pool, FloatCertJob(self.model, self.num_classes, c), self.inputs)
            for i, (predict, pa_lower, radius, labels) in enumerate(certs):
                out["predict"][i], out["pa_lower"][i], out["radius"][i] = predict, pa_lower, radius
                out["labels"][i] = labels
            if progress is not None:
                progress(f"float certificates {n}/{n}")
        todo = range(n) if self.pool is None else range(0)
        for i in todo:
            cert = smooth.certify(self.inputs[i], c.n0, c.float_n, c.alpha, seed=image_seed(c.seed, i), keep_labels=True)
            assert cert.labels is not None
            out["predict"][i], out["pa_lower"][i], out["radius"][i] = cert.predict, cert.pa_lower, cert.radius
            out["labels"][i] = cert.labels[: c.float_n]
            if progress is not None:
                progress(f"float certificates {i + 1}/{n}")
        if cache_path is not None:
            with atomic_path(cache_path, suffix=".npz") as tmp:
                np.savez(tmp, meta=np.array(meta), **out)
        return out

    def _prepare(self) -> None:
        c = self.config
        self.active = np.flatnonzero(self._float["predict"] != ABSTAIN)
        shape = tuple(self.inputs.shape[1:])
        noisy = torch.empty((len(self.active), c.n_q, *shape), dtype=torch.float32, device=self.device)
        for j, i in enumerate(self.active):
            noisy[j] = noisy_rows(self.inputs[i], image_seed(c.seed, int(i)), c.n_q, c, self.device)
        self._noisy = noisy.reshape(len(self.active) * c.n_q, *shape)
        self._float_labels = self._float["labels"][self.active]
        self._zetas: dict[int, np.ndarray] = {}
        correct = self._float["predict"] == self.labels
        self.float_metrics = MappingProxyType(metrics_from(correct, self._float["radius"], c.radii))

    @property
    def n_images(self) -> int:
        return len(self.inputs)

    @property
    def float_samples(self) -> int:
        return len(self.inputs) * (self.config.n0 + self.config.float_n)

    # -- quantized copies -------------------------------------------------------------
    def materialize(self, policy: BitPolicy) -> tuple[nn.Module, nn.Module]:
        """``(float base, fake-quantized copy)`` of ``policy``; the base is fine-tuned if configured.

        Without fine-tuning the activation ranges are calibrated once (they
        depend on the float model only) and reused; the copy equals
        ``quantize_model(model, policy, calibration)`` (a test checks it).
        """
        qpolicy = self.config.quant_policy(policy)
        if self.finetune is not None:
            base = self.finetune(policy)
            return base, quantize_model(base, qpolicy, self.calibration).eval()
        if self._ranges is None:
            self._ranges = calibrate_all(self.model, self.calibration, self.config.act_per_channel)
        return self.model, build_quantized(self.model, qpolicy, self._ranges)

    def quantized_model(self, policy: BitPolicy) -> nn.Module:
        """The fake-quantized (and, if configured, fine-tuned) model of ``policy``."""
        return self.materialize(policy)[1]

    def _zeta(self, n: int) -> np.ndarray:
        """``zeta(k)`` for ``k = 0..n`` disagreements in ``n`` samples (one-sided Clopper-Pearson at alpha_q)."""
        z = self._zetas.get(n)
        if z is None:
            z = self._zetas[n] = np.array([clopper_pearson_upper(k, n, self.config.alpha_q) for k in range(n + 1)])
        return z

    def _check_n(self, n: int) -> None:
        if not (isinstance(n, int) and 1 <= n <= self.config.float_n):
            raise SpecError("final_n", f"({n!r}) must be a positive integer no larger than float_n "
                            f"({self.config.float_n})", "the quantized copy reuses the float certificates' samples: "
                            "lower --final-n or raise --float-n")

    def _quantized_labels(self, qmodel: nn.Module, n: int) -> np.ndarray:
        """Labels of the quantized copy on the first ``n`` noise samples of every active image."""
        c = self.config
        # other sample counts (the final race): the same noise streams regenerated, a few images at a time
        group = max(1, len(self.active)) if n == c.n_q else max(1, c.batch_size // n)
        groups = [self.active[g : g + group] for g in range(0, len(self.active), group)]
        if self.pool is not None and groups:  # whole batches of the same layout as tasks
            return np.concatenate(pooled_labels(self.pool, qmodel, self.inputs, c, groups, n)).astype(np.int32)
        if n == c.n_q:
            return batch_labels(qmodel, self._noisy, c.batch_size).reshape(len(self.active), n)
        shape = tuple(self.inputs.shape[1:])
        out_labels = np.empty((len(self.active), n), dtype=np.int32)
        for g, idx in zip(range(0, len(self.active), group), groups):
            noisy = torch.empty((len(idx), n, *shape), dtype=torch.float32, device=self.device)
            for j, i in enumerate(idx):
                noisy[j] = noisy_rows(self.inputs[i], image_seed(c.seed, int(i)), n, c, self.device)
            out_labels[g : g + len(idx)] = batch_labels(qmodel, noisy.reshape(len(idx) * n, *shape), c.batch_size).reshape(len(idx), n)
        return out_labels

    def per_image(self, policy: BitPolicy, n: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(predict, radius, disagreements)`` for every reward image, as certify_incremental gives them.

        ``n`` (default ``n_q``) quantized samples per image: the first ``n`` of each float certificate's noise.
        """
        c = self.config
        n = c.n_q if n is None else n
        self._check_n(n)
        q = self._quantized_labels(self.quantized_model(policy), n)
        k = np.count_nonzero(q != self._float_labels[:, :n], axis=1)
        pa = self._float["pa_lower"][self.active] - self._zeta(n)[k]
        count = len(self.inputs)
        predict = np.full(count, ABSTAIN, dtype=np.int64)
        radius = np.zeros(count)
        dis = np.zeros(count, dtype=np.int64)
        ok = pa > 0.5
        predict[self.active[ok]] = self._float["predict"][self.active[ok]]
        radius[self.active[ok]] = [radius_from_pa(float(p), c.sigma) for p in pa[ok]]
        dis[self.active] = k
        return predict, radius, dis

    def evaluate(self, policy: BitPolicy) -> Evaluation:
        """The reward of ``policy`` from ``n_q`` samples per image (the search's reward)."""
        return self.evaluate_n(policy, self.config.n_q)

    def evaluate_n(self, policy: BitPolicy, n: int) -> Evaluation:
        """The reward of ``policy`` from the first ``n`` samples per image (``n <= float_n``; the final race)."""
        start = time.perf_counter()
        predict, radius, dis = self.per_image(policy, n)
        c = self.config
        metrics = metrics_from(predict == self.labels, radius, c.radii)
        metrics["disagreement_rate"] = float(dis.sum() / max(1, len(self.active) * n))
        fm = self.float_metrics
        ca_key = f"cert_acc@{c.radius:g}"
        ca = metrics.get(ca_key, metrics_from(predict == self.labels, radius, [c.radius])[ca_key])
        ca_f = fm.get(ca_key, metrics_from(self._float["predict"] == self.labels, self._float["radius"], [c.radius])[ca_key])
        rel_ca = ca / ca_f if ca_f > 0 else ca
        rel_acr = metrics["acr"] / fm["acr"] if fm["acr"] > 0 else metrics["acr"]
        reward = (1.0 - c.acr_weight) * rel_ca + c.acr_weight * rel_acr
        return Evaluation(reward, MappingProxyType(metrics), samples=len(self.active) * n,
                          seconds=time.perf_counter() - start)


def calibrate_all(model: nn.Module, calibration: torch.Tensor, per_channel: bool,
                  batch_size: int = 256) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Min/max of every quantizable layer's input over the calibration inputs (quant.py's rule)."""
    return calibrate_ranges(model, quantizable_layers(model), per_channel, calibration, batch_size)


def build_quantized(model: nn.Module, policy: QuantPolicy,
                    ranges: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> nn.Module:
    """``quantize_model`` with precomputed activation ranges (see :func:`calibrate_all`)."""
    qmodel = copy.deepcopy(model).eval()
    for name in quantizable_layers(model):
        pol = policy.for_layer(name)
        if pol is None or (pol.weight is None and pol.activation is None):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = qmodel.get_submodule(parent_name) if parent_name else qmodel
        layer = getattr(parent, attr)
        setattr(parent, attr, FakeQuantLayer(layer, pol, ranges.get(name) if pol.activation is not None else None))
    return qmodel
