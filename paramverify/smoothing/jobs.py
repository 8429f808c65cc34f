"""One input of ``smooth certify`` / ``smooth predict``: the unit the command runs
in a loop, or ships to Ray workers (``--workers`` / ``--ray-address``).

Seeds: input ``i`` of a run with seed ``s`` draws its noise from the base seed
:func:`~paramverify.smoothing.core.input_seed` ``(s, i)``, so an input's
certificate depends on the run's seed and its own index only -- not on the
inputs before it, the order in which inputs finish, or the number of
workers.  One process, one worker and many workers give identical results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.smoothing.core import Smooth, SmoothOptions, input_seed

Progress = Callable[[int], None]


@dataclass(frozen=True, eq=False)
class InputJob:
    """Certifies (or predicts) one input; picklable, shipped to workers once.

    ``target`` is the model certified (the quantized copy under ``--policy``),
    ``float_model`` the float model certified first under ``--incremental``.
    """

    command: str  # certify | predict
    target: Any  # torch.nn.Module
    float_model: Any | None
    num_classes: int
    options: SmoothOptions
    seed: int
    n: int
    alpha: float
    n0: int = 100
    incremental: int | None = None
    alpha_q: float | None = None

    def __call__(self, item: tuple[int, np.ndarray]) -> tuple[dict[str, Any], tuple[int, float, float] | None]:
        """``(result entry, float certificate)`` of input ``item = (index, x)``; no progress (a worker)."""
        return self.run(item[0], item[1])

    def run(self, i: int, x: np.ndarray, progress: Progress | None = None
            ) -> tuple[dict[str, Any], tuple[int, float, float] | None]:
        """The entry (``idx``, ``predict``, ``radius``, ...) of input ``i`` and, under
        ``--incremental``, the float certificate's ``(predict, radius, seconds)``."""
        from paramverify.smoothing.incremental import certify_incremental

        seed = input_seed(self.seed, i)
        smooth = Smooth(self.target, self.num_classes, self.options)
        entry: dict[str, Any] = {"idx": i}
        if self.command == "predict":
            p = smooth.predict(x, self.n, self.alpha, seed=seed, progress=progress)
            entry.update(predict=p.predict, radius=0.0, counts=list(p.counts), p_value=p.p_value, time=round(p.seconds, 4))
            return entry, None
        if self.float_model is not None and self.incremental is not None:
            fsmooth = Smooth(self.float_model, self.num_classes, self.options)
            fc = fsmooth.certify(x, self.n0, self.n, self.alpha, seed=seed, keep_labels=True, progress=progress)
            alpha_q = self.alpha_q if self.alpha_q is not None else self.alpha
            ic = certify_incremental(smooth, fc, x, self.incremental, alpha_q, progress=progress)
            entry.update(predict=ic.predict, radius=ic.radius, pa_lower=ic.pa_lower, zeta=ic.zeta,
                         disagreements=ic.disagreements, confidence=ic.confidence,
                         float={"predict": fc.predict, "radius": fc.radius, "pa_lower": fc.pa_lower},
                         time=round(fc.seconds + ic.seconds, 4))
            return entry, (fc.predict, fc.radius, fc.seconds)
        c = smooth.certify(x, self.n0, self.n, self.alpha, seed=seed, progress=progress)
        entry.update(predict=c.predict, radius=c.radius, pa_lower=c.pa_lower, count=c.count, time=round(c.seconds, 4))
        return entry, None
