"""Units of work that commands hand to a pool: the per-tensor widths of ``bits``.

``paramverify bits`` first searches, for each tensor alone, the smallest
certified width; those searches are independent (their queries never share a
cache entry: each key holds the one tensor's width), so with
``--workers``/``--ray-address`` each tensor is one task.  Every task runs the
same queries as the one-process loop, so the widths, the query count and the
cache merged back are identical; only the order of work changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from paramverify.distributed.dataset import portable
from paramverify.distributed.runtime import add_parallel_args, open_pool, parallel_config
from paramverify.options import Deadline, Options

#: the runtime's flag helpers are re-exported for the commands that use these units
__all__ = ["LabelJob", "TensorJob", "add_parallel_args", "open_pool", "parallel_config", "per_tensor_widths"]


@dataclass(frozen=True, eq=False)
class TensorJob:
    """The smallest width of one tensor alone (picklable; shipped to workers once)."""

    search: Any  # paramverify.bits._Search with portable options and an empty cache
    lo: int
    hi: int
    remaining_s: float | None  # what was left of the overall budget when the tasks were sent

    def __call__(self, name: str) -> tuple[Any, dict[Any, Any], int]:
        from paramverify.bits import _Stop

        s = replace(self.search, cache={}, queries=0, deadline=Options(timeout_s=self.remaining_s).deadline())
        try:
            width = s.smallest((name,), self.lo, self.hi)
        except _Stop:
            width = None
        return width, s.cache, s.queries


def per_tensor_widths(s: Any, tensors: Sequence[str], lo: int, hi: int, out: dict[str, Any]) -> None:
    """Fill ``out[name]`` with each tensor's smallest width alone, in tensor order.

    Without ``s.options.pool`` this is the plain loop; with it, one task per
    tensor.  Raises ``paramverify.bits._Stop`` (after keeping every finished
    tensor) when the overall budget ran out.
    """
    from paramverify.bits import _Stop

    pool = s.options.pool
    if pool is None or len(tensors) < 2:
        for n in tensors:
            out[n] = s.smallest((n,), lo, hi)
            s.options.progress.update(f"bits: {n} alone -> {out[n].bits}")
        return
    job = TensorJob(replace(s, options=portable(s.options), cache={}, queries=0, deadline=Deadline(None)), lo, hi, s.deadline.remaining())
    stopped = False
    for n, (width, cache, queries) in zip(tensors, pool.map(job, list(tensors))):
        s.cache.update(cache)
        s.queries += queries
        if width is None:
            stopped = True
            continue
        out[n] = width
        s.options.progress.update(f"bits: {n} alone -> {width.bits}")
    if stopped:
        raise _Stop


@dataclass(frozen=True, eq=False)
class LabelJob:
    """Def 3 at one input under one perturbation: the formal search reward's unit (picklable)."""

    graph: Any
    perturbation: Any
    backend: str
    options: Options

    def __call__(self, x: Any) -> str:
        """The verdict's name, or "interrupted" when a stop cut the query short."""
        from paramverify import api
        from paramverify.results import Unknown

        problem = api.make_problem(self.graph, perturbation=self.perturbation, x0=x)
        verdict = api.verify(problem, "label", backend=self.backend, options=self.options)
        if isinstance(verdict, Unknown) and verdict.reason.startswith("interrupted"):
            return "interrupted"
        return verdict.name
