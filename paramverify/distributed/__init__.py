"""Scale-out on Ray (optional: ``pip install -e ".[ray]"``).

Nothing in this package imports Ray at module level; Ray is imported only
when a :class:`~paramverify.distributed.runtime.ParallelConfig` is turned
into a running :class:`~paramverify.distributed.runtime.RayPool` (the CLI's
``--workers N`` / ``--ray-address ADDR``).  Without those flags every command
runs in one process exactly as before and ``ray`` is never imported.

* :mod:`.runtime` -- the config, the pool (one task per unit, results in
  input order, Ray's ``max_retries`` for killed workers, a lost cluster as
  :class:`~paramverify.errors.ClusterError` carrying the finished results)
  and the pickling of problems (whose mappings are read-only proxies).
* :mod:`.dataset` -- ``verify``/``bound`` over a ``.npy`` of many inputs.
* Distributed branch and bound: :func:`paramverify.bounds.branch.branch_and_bound`
  hands each step's bound work (one :class:`~paramverify.bounds.branch.BoundStep`)
  to ``Options.pool``, one task per chunk of boxes and one round trip per step;
  the queue, the bracket and the stopping rules stay on the driver, so the
  bracket is sound and monotone at every moment.
* Per-input units of other commands: :mod:`.tasks` (``bits``, the formal search
  reward), :class:`paramverify.smoothing.jobs.InputJob` (``smooth``) and
  :class:`paramverify.compare.ModelJob` (``compare``).
"""

from paramverify.distributed.runtime import ParallelConfig, RayPool, install_hint

__all__ = ["ParallelConfig", "RayPool", "install_hint"]
