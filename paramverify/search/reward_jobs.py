"""The sampled reward's work as Ray tasks (``paramverify search --workers`` / ``--ray-address``).

Two units, both computing exactly what :class:`~paramverify.search.reward.SmoothingEvaluator`
computes in one process:

* :class:`FloatCertJob`: the float certificate of one reward image (once per run).  Image ``i``
  is certified with its own seed ``image_seed(seed, i)`` and its own batches, as in the loop.
* :class:`LabelJob`: the quantized copy's labels on a range of the noisy samples of one
  policy's reward.  In one process the samples of a group of images (all active images for
  the search's ``n_q``; a few at a time for other sample counts) are flattened and run
  through the model in batches of ``batch_size`` rows from the group's start.  A task takes
  whole batches of that layout (its range starts on a batch boundary) and regenerates the
  noise of the images it touches from their seeds (the same blocks, the same float32
  operations), so each batch holds the same rows as in one process and gives the same
  labels.  Only the number of batches per task depends on the number of workers.

Tasks run on the CPU: ``--device cuda`` with workers is refused by the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from paramverify.errors import check
from paramverify.smoothing.core import STREAM_ESTIMATE, NoiseSpec, NoiseStream, Smooth

#: about this many tasks per worker for one reward evaluation (or the float certificates)
TASKS_PER_WORKER = 4


def noisy_rows(x: np.ndarray, seed: int, n: int, config: Any, device: torch.device) -> torch.Tensor:
    """The first ``n`` estimation samples of image ``x`` (seed ``seed``): ``x + sigma * noise``, float32."""
    shape = tuple(x.shape)
    spec = NoiseSpec(seed=seed, stream=STREAM_ESTIMATE, block=config.smooth_options().noise_block, device_type=device.type)
    xt = torch.from_numpy(x).to(device)
    return NoiseStream(spec, shape, device).take(n).mul_(config.sigma).add_(xt)


def batch_labels(qmodel: torch.nn.Module, flat: torch.Tensor, batch_size: int) -> np.ndarray:
    """Argmax labels of ``flat`` in batches of ``batch_size`` rows from its start."""
    labels = torch.empty(flat.shape[0], dtype=torch.int32)
    with torch.inference_mode():
        for start in range(0, flat.shape[0], batch_size):
            out = qmodel(flat[start : start + batch_size])
            labels[start : start + out.shape[0]] = out.argmax(dim=1).to(torch.int32).cpu()
    return labels.numpy()


@dataclass(frozen=True, eq=False)
class LabelJob:
    """Labels of one policy's quantized copy on a batch-aligned range of a group's samples (picklable)."""

    qmodel: Any  # torch.nn.Module
    inputs: np.ndarray  # every reward image (float32)
    config: Any  # RewardConfig
    n: int  # samples per image

    def __call__(self, item: tuple[tuple[int, ...], int, int]) -> np.ndarray:
        """``item = (group's image indices, start row, end row)`` of the group's flattened samples."""
        from paramverify.search.reward import image_seed

        group, s, e = item
        c, n = self.config, self.n
        first, last = s // n, math.ceil(e / n)
        device = torch.device("cpu")
        rows = torch.cat([noisy_rows(self.inputs[i], image_seed(c.seed, i), n, c, device) for i in group[first:last]])
        return batch_labels(self.qmodel, rows[s - first * n : e - first * n], c.batch_size)


def pooled_labels(pool: Any, qmodel: torch.nn.Module, inputs: np.ndarray, config: Any,
                  groups: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """Each group's labels ``[len(group), n]`` (as the one-process loop computes them), as tasks."""
    bs = config.batch_size
    batches = sum(math.ceil(len(g) * n / bs) for g in groups)
    per = max(1, math.ceil(batches / (TASKS_PER_WORKER * pool.size))) * bs  # rows per task: whole batches
    items, owner = [], []
    for k, g in enumerate(groups):
        total = len(g) * n
        for s in range(0, total, per):
            items.append((tuple(int(i) for i in g), s, min(s + per, total)))
            owner.append(k)
    got = pool.map(LabelJob(qmodel, inputs, config, n), items)
    return [np.concatenate([lab for lab, o in zip(got, owner) if o == k]).reshape(len(g), n) for k, g in enumerate(groups)]


@dataclass(frozen=True, eq=False)
class FloatCertJob:
    """The float certificates of some reward images (picklable)."""

    model: Any  # torch.nn.Module
    num_classes: int
    config: Any  # RewardConfig

    def __call__(self, items: Sequence[tuple[int, np.ndarray]]) -> list[tuple[int, float, float, np.ndarray]]:
        """``(predict, pa_lower, radius, labels[:float_n])`` of each ``(index, image)``."""
        from paramverify.search.reward import image_seed

        c = self.config
        smooth = Smooth(self.model, self.num_classes, c.smooth_options())
        out = []
        for i, x in items:
            cert = smooth.certify(x, c.n0, c.float_n, c.alpha, seed=image_seed(c.seed, i), keep_labels=True)
            check(cert.labels is not None, "float certificate without its labels")
            out.append((cert.predict, cert.pa_lower, cert.radius, np.asarray(cert.labels[: c.float_n])))  # type: ignore[index]
        return out


def pooled_float_certificates(pool: Any, job: FloatCertJob, inputs: np.ndarray) -> list[tuple[int, float, float, np.ndarray]]:
    """Every image's float certificate in input order, in groups of images as tasks."""
    n = len(inputs)
    per = max(1, math.ceil(n / (TASKS_PER_WORKER * pool.size)))
    chunks = pool.map(job, [[(i, inputs[i]) for i in range(s, min(s + per, n))] for s in range(0, n, per)])
    return [c for chunk in chunks for c in chunk]
