"""Units of work of ``paramverify compress`` that run as Ray tasks (``--workers`` / ``--ray-address``).

* :class:`EvalJob`: one evaluation (build, fine-tune, count, attack) of one candidate.  The
  baselines' candidate lists are fixed before they are evaluated, so :func:`evaluate_plan`
  sends one task per candidate (the environment is shipped once) and takes the results
  back *in plan order*: the evaluation indices (:meth:`CompressEnv.number`), the
  checkpoint and the deadline check all happen on the driver, candidate by candidate,
  exactly as in one process.  The agent's episodes stay sequential (each reward feeds the
  next action).
* :class:`CertJob`: the certified reward's images of one evaluation.  Image ``i`` draws its
  noise from its own seed :func:`~paramverify.smoothing.core.input_seed` ``(seed, i)`` on
  one torch thread, so how the images are grouped into tasks changes nothing.

An evaluation is a deterministic function of the candidate (the fine-tuning and the attack
are seeded by the environment's seed and run on one torch thread), so a worker computes
what the driver would: the report is identical with and without Ray (only ``seconds``
differs).  A lost cluster raises :class:`~paramverify.errors.ClusterError` after the
evaluations finished in plan order have been handed to the hook (checkpointed).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from paramverify.compress.env import Choice, CompressEnv, EnvConfig, Evaluation

#: images per certification task: about this many tasks per worker and evaluation
TASKS_PER_WORKER = 4


@dataclass(frozen=True, eq=False)
class CertJob:
    """Certifies some evaluation images of one sub-network (picklable; shipped once per evaluation)."""

    net: Any  # StageNet
    classes: int
    config: EnvConfig

    def __call__(self, items: Sequence[tuple[int, np.ndarray, int]]) -> int:
        """How many of ``items`` (``(index, image, label)``) are certified correct at ``cert_radius``."""
        from paramverify.smoothing.core import Smooth, SmoothOptions, input_seed, one_torch_thread

        c = self.config
        smooth = Smooth(self.net, self.classes, SmoothOptions(sigma=c.cert_sigma, batch_size=c.cert_n))
        hits = 0
        with one_torch_thread():
            for i, x, y in items:
                cert = smooth.certify(x, c.cert_n0, c.cert_n, c.cert_alpha, seed=input_seed(c.seed, i))
                hits += int(cert.predict == y and cert.radius >= c.cert_radius)
        return hits


def certified_hits(job: CertJob, items: list[tuple[int, np.ndarray, int]], pool: Any = None) -> int:
    """``job(items)``; with a pool, the items in groups as tasks (the sum does not depend on the grouping)."""
    if pool is None or len(items) < 2:
        return job(items)
    per = max(1, math.ceil(len(items) / (TASKS_PER_WORKER * pool.size)))
    return int(sum(pool.map(job, [items[s:s + per] for s in range(0, len(items), per)])))


@dataclass(frozen=True, eq=False)
class EvalJob:
    """One evaluation of one candidate, without its index (picklable; shipped once per baseline)."""

    env: CompressEnv  # a copy without a pool: a task certifies its images itself

    def __call__(self, choices: list[Choice]) -> Evaluation:
        return self.env.measure(choices)


def worker_env(env: CompressEnv) -> CompressEnv:
    """A shallow copy of ``env`` a worker can use (no pool: tasks do not start tasks)."""
    out = copy.copy(env)
    out.pool = None
    return out


def evaluate_plan(env: CompressEnv, plan: Sequence[list[Choice]], hook: Callable[[Evaluation], None],
                  pool: Any = None) -> None:
    """Evaluate ``plan`` and call ``hook`` with each numbered evaluation, in plan order.

    Without a pool (or with one candidate) each candidate is evaluated here; with one, each
    is one task, and a result is numbered and handed on once all before it are.  ``hook``
    may raise to stop (the tasks still pending are cancelled); a lost cluster raises
    :class:`~paramverify.errors.ClusterError` after the in-order prefix was handed on.
    """
    if pool is None or len(plan) < 2:
        for choices in plan:
            hook(env.evaluate(choices))
        return
    ready: dict[int, Evaluation] = {}
    nxt = 0
    with contextlib.closing(pool.completed(EvalJob(worker_env(env)), list(plan))) as results:
        for i, ev in results:
            ready[i] = ev
            while nxt in ready:
                hook(env.number(ready.pop(nxt)))
                nxt += 1
