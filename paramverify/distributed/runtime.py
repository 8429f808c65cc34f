"""The Ray runtime: flags, a pool of tasks, and shipping problems to workers.

Ray is imported only inside :func:`open_pool` (and the functions it hands
out), never at module level: ``--workers`` / ``--ray-address`` absent means
``ray`` is never imported.

Shipping: a problem's mappings are read-only ``MappingProxyType`` views,
which the standard pickler refuses; :func:`pack` uses Ray's cloudpickle with
a per-pickler dispatch entry (no global ``copyreg`` change) that rebuilds
them as proxies.  A function shipped to many tasks is packed once and put
in Ray's object store once; each task receives a reference.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from paramverify import memory
from paramverify.errors import BackendUnavailableError, ClusterError, SpecError, check

INSTALL = 'pip install -e ".[ray]"'


def install_hint() -> str:
    return INSTALL


MIN_TASKS_PER_BATCH = 4


def chunk_size(n: int, boxes_per_task: int) -> int:
    """Rows per task for a batch of ``n`` rows: ``boxes_per_task``, or fewer where that would
    leave fewer than :data:`MIN_TASKS_PER_BATCH` tasks (at least one row each).

    A branch-and-bound search's first steps double from one box, and on a model whose
    boxes take seconds each (a convolutional network's CROWN pass) a step of 16 boxes in
    one task of 32 would run on one worker while the others wait.  The size depends on
    ``n`` and ``boxes_per_task`` only, never on the number of workers, so every worker
    count computes the same numbers.
    """
    return max(1, min(boxes_per_task, n // MIN_TASKS_PER_BATCH))


@dataclass(frozen=True)
class ParallelConfig:
    """Where tasks run: ``workers`` local CPUs (a Ray instance the command starts)
    or an existing cluster at ``address``; neither means one process.

    ``max_retries``: Ray re-runs a task whose worker died this many times.
    ``boxes_per_task``: branch and bound ships its batches in chunks of this
    many boxes (a batch of fewer than 4 x that many in at least 4 smaller
    chunks: :func:`chunk_size`); the chunking does not depend on the number of workers,
    so every worker count computes the same numbers.  A step bounds 128 boxes,
    so at most 128 / ``boxes_per_task`` workers share one step (4 at the
    default 32, which 2 workers on 2 cores ran fastest: docs/scaling.md).
    ``cpus_per_task``: CPUs Ray reserves for each task (2 on a 2-CPU instance
    runs one task at a time).
    """

    workers: int | None = None
    address: str | None = None
    max_retries: int = 3
    boxes_per_task: int = 32
    cpus_per_task: float = 1.0

    @property
    def enabled(self) -> bool:
        return self.workers is not None or self.address is not None

    def validate(self) -> ParallelConfig:
        if self.workers is not None and self.address is not None:
            raise SpecError("workers", "conflicts with --ray-address", "a cluster's size is set by `ray start`; drop --workers")
        if self.workers is not None and self.workers < 1:
            raise SpecError("workers", f"must be >= 1, got {self.workers}", "e.g. --workers 2")
        if self.address is not None and not self.address.strip():
            raise SpecError("ray_address", "is empty", "e.g. --ray-address 10.0.0.1:6379 (or 'auto')")
        if not isinstance(self.boxes_per_task, int) or self.boxes_per_task < 1:
            raise SpecError("boxes_per_task", f"must be an integer >= 1, got {self.boxes_per_task!r}", "e.g. --boxes-per-task 16")
        if self.max_retries < 0 or not self.cpus_per_task > 0:
            raise SpecError("workers", "max_retries must be >= 0 and cpus_per_task > 0")
        return self


def add_parallel_args(p: argparse.ArgumentParser, boxes: bool = False) -> None:
    """The shared scale-out flags (``--workers N``, ``--ray-address ADDR``; with ``boxes``
    also ``--boxes-per-task K`` for commands that run branch and bound)."""
    g = p.add_argument_group(f"scale-out on Ray (optional: {INSTALL})")
    g.add_argument("--workers", type=int, metavar="N", help="run tasks on a local Ray instance with N worker processes")
    g.add_argument("--ray-address", metavar="ADDR", help="run tasks on an existing Ray cluster (`ray start --head` prints ADDR)")
    if boxes:
        default = ParallelConfig.boxes_per_task
        g.add_argument("--boxes-per-task", type=int, metavar="K", default=default,
                       help=f"branch and bound (--domain): boxes per task (default {default}; a smaller step goes out "
                            "in 4 or more tasks); a step bounds 128 boxes, so at most 128/K workers share it: "
                            "use 8 or 16 on larger clusters")


def parallel_config(args: argparse.Namespace) -> ParallelConfig:
    return ParallelConfig(getattr(args, "workers", None), getattr(args, "ray_address", None),
                          boxes_per_task=getattr(args, "boxes_per_task", ParallelConfig.boxes_per_task)).validate()


def require_ray() -> Any:
    """Import Ray or raise a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(f"--workers/--ray-address need Ray, which is not installed ({INSTALL})") from exc
    return ray


# ----------------------------------------------------------------- shipping
def _mappingproxy(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(d)


def _reduce_proxy(m: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mappingproxy, (dict(m),))


def pack(obj: Any) -> bytes:
    """Serialise ``obj`` (closures and read-only mapping proxies included)."""
    from ray.cloudpickle import CloudPickler

    buf = io.BytesIO()
    pickler = CloudPickler(buf, protocol=5)
    pickler.dispatch_table = ChainMap({MappingProxyType: _reduce_proxy}, CloudPickler.dispatch_table)
    pickler.dump(obj)
    return buf.getvalue()


def unpack(blob: bytes) -> Any:
    import pickle

    return pickle.loads(blob)


def _call_packed(blob: bytes, *args: Any) -> Any:
    """The one Ray task: unpack a shipped function and apply it."""
    return unpack(blob)(*args)


def _call_timed(blob: bytes, *args: Any) -> tuple[Any, float, float, float]:
    """:func:`_call_packed` that also reports its seconds unpacking, computing (wall) and
    computing (CPU time of the worker process): what a task costs beyond its work, and
    how much CPU its work got."""
    t0 = time.perf_counter()
    fn = unpack(blob)
    t1, c1 = time.perf_counter(), time.process_time()
    value = fn(*args)
    return value, t1 - t0, time.perf_counter() - t1, time.process_time() - c1


# --------------------------------------------------------------------- pool
def _blas_controller() -> Any:
    """threadpoolctl's view of the driver's BLAS libraries, or None without threadpoolctl.

    While a batch of tasks is in flight (:meth:`RayPool.start`) the driver's BLAS is held to one
    thread.  OpenBLAS's extra threads keep spinning on a core for a while after each product, so
    a driver that works between sending and receiving (the branch and bound's probe) with
    numpy's default threads took the cores its own workers needed: on 2 cores the driver used
    9.4 s of CPU for an 11.7 s run with 2 workers (1.17x), and 4.0 s for a 9.1 s run (1.56x)
    with one thread (digits MLP query of ``benchmarks/bench_ray.py``, 4,000 boxes).  Ray gives
    its workers one thread already (``OMP_NUM_THREADS=1``).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


# Tasks in flight are never cancelled (``ray.cancel``): in Ray 2.60 cancelling a task whose reply is
# on its way, with or without ``force``, can abort the whole driver process (``task_manager.cc``:
# "Tried to complete task that was not pending"; seen twice in our Ray tests' interrupt case), which
# would lose the proved-so-far bracket of an interrupted run.  Their results are dropped instead; the
# pool's shutdown (or, on a cluster the command joined, the tasks' own end) finishes them.
#: environment of the worker processes that run our tasks (Ray's ``runtime_env``): glibc's malloc
#: keeps freed memory (:mod:`paramverify.memory`).  With glibc's defaults a Ray worker handed the
#: temporaries of every task back to the kernel and took them again, zero-filled, in the next task:
#: 10,000 page faults per 16-box branch-and-bound task on the MNIST MLP, about 20% more CPU time per
#: box than the same calls in one process.  The command-line program applies the same settings to
#: its own process.
WORKER_ENV = memory.ENV


@dataclass
class RayPool:
    """Runs packed functions as Ray tasks (created by :func:`open_pool`)."""

    config: ParallelConfig
    ray: Any
    stats: dict[str, float] = field(default_factory=lambda: {"tasks": 0, "bytes": 0, "fallback_batches": 0, "spread_calls": 0,
                                                               "spread_s": 0.0, "inflight_s": 0.0, "worker_unpack_s": 0.0,
                                                               "worker_run_s": 0.0, "worker_cpu_s": 0.0})

    def __post_init__(self) -> None:
        opts = {"max_retries": self.config.max_retries, "num_cpus": self.config.cpus_per_task,
                "runtime_env": {"env_vars": dict(WORKER_ENV)}}
        self._task = self.ray.remote(_call_packed).options(**opts)
        self._timed = self.ray.remote(_call_timed).options(**opts)
        self._lost = False
        self._blas = _blas_controller()
        self._inflight = 0
        self._limit: Any = None

    def _busy(self, delta: int) -> None:
        """Count the batches in flight; while there are any the driver's BLAS runs one thread
        (see :func:`_blas_controller`)."""
        self._inflight += delta
        check(self._inflight >= 0, "Ray pool: more batches received than sent")
        if self._blas is None:
            return
        if self._inflight > 0 and self._limit is None:
            self._limit = self._blas.limit(limits=1, user_api="blas")
        elif self._inflight == 0 and self._limit is not None:
            self._limit.restore_original_limits()
            self._limit = None

    def release(self) -> None:
        """Forget batches never waited for (an interrupt): the driver's BLAS threads come back."""
        if self._inflight:
            self._busy(-self._inflight)

    @property
    def size(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self.ray.exceptions.RayError, ConnectionError)

    def _submit(self, ref: Any, *args: Any, timed: bool = False) -> Any:
        self.stats["tasks"] += 1
        self.stats["bytes"] += sum(a.nbytes if isinstance(a, np.ndarray) else 0 for a in args)
        return (self._timed if timed else self._task).remote(ref, *args)

    def _unwrap(self, exc: BaseException) -> BaseException | None:
        """A task's own exception (a ParamVerifyError from the user's input) or None for a lost worker/cluster."""
        if isinstance(exc, self.ray.exceptions.RayTaskError):
            cause = getattr(exc, "cause", None)
            return cause if isinstance(cause, BaseException) else exc
        return None

    def completed(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``(index, fn(item))`` as tasks finish (one task per item).

        A task whose worker dies is re-run by Ray (``max_retries``); a lost
        cluster raises :class:`ClusterError` (the caller keeps what it got).
        Tasks still pending are not cancelled on an interrupt or an error (see
        the comment above :class:`RayPool`): their results are dropped, and the pool's shutdown ends them.
        """
        ray = self.ray
        try:
            blob = ray.put(pack(fn))
            index = {}
            for i, item in enumerate(items):
                index[self._submit(blob, item)] = i
        except self._errors() as exc:
            raise ClusterError(f"cannot submit tasks to the Ray cluster: {type(exc).__name__}: {exc}") from exc
        pending = list(index)
        while pending:
            try:
                done, pending = ray.wait(pending, num_returns=1)
            except self._errors() as exc:
                raise ClusterError(f"lost the Ray cluster: {type(exc).__name__}: {exc}") from exc
            for ref in done:
                try:
                    value = ray.get(ref)
                except self._errors() as exc:
                    own = self._unwrap(exc)
                    if own is not None:
                        raise own from None
                    raise ClusterError(f"lost the Ray cluster or a worker beyond {self.config.max_retries} retries: "
                                       f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
                yield index[ref], value

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]`` with one task per item, in input order."""
        out: list[Any] = [None] * len(items)
        for i, value in self.completed(fn, items):
            out[i] = value
        return out

    def spread(self, fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        """A batch function ``fn(a, b, ..., *scalars) -> [..., N]`` evaluated in chunks of
        ``boxes_per_task`` rows, one Ray task per chunk, joined along the last axis in order
        (:meth:`start`, waited for at once)."""
        begin = self.start(fn)
        return lambda *args: begin(*args)()

    def start(self, fn: Callable[..., np.ndarray]) -> Callable[..., Pending]:
        """Like :meth:`spread`, but calling the result only sends the tasks and returns a
        :class:`Pending`; calling that waits for the batch.  The driver can work meanwhile.

        The leading array arguments (``[N, ...]``) are cut into chunks; later arguments
        that are not arrays of N rows (scalars) go to every chunk whole.  ``fn`` is
        packed and put in the object store once, on its first batch.  Chunks do not
        depend on the number of workers.  If the cluster is lost the remaining chunks
        are evaluated here, on the driver (the same function, so the numbers stay
        sound); ``stats["fallback_batches"]`` counts those batches.  ``stats`` also
        splits the time: ``spread_s`` (the driver waiting for a batch), ``inflight_s``
        (from sending a batch to having it back), ``worker_run_s`` / ``worker_cpu_s``
        (the tasks computing: wall / CPU), ``worker_unpack_s``.
        """
        ray = self.ray
        holder: dict[str, Any] = {}

        def begin(*args: Any) -> Pending:
            n = len(args[0])
            per = chunk_size(n, self.config.boxes_per_task)
            rows = [isinstance(a, np.ndarray) and a.ndim >= 1 and len(a) == n for a in args]
            cuts = [(s, min(s + per, n)) for s in range(0, n, per)]

            def chunk(s: int, e: int) -> list[Any]:
                return [a[s:e] if r else a for a, r in zip(args, rows)]

            def here() -> np.ndarray:
                self.stats["fallback_batches"] += 1
                return np.concatenate([np.asarray(fn(*chunk(s, e)), dtype=np.float64) for s, e in cuts], axis=-1)

            if self._lost:
                return Pending(here)
            refs: list[Any] = []
            sent = time.perf_counter()
            try:
                if "blob" not in holder:
                    holder["blob"] = ray.put(pack(fn))
                refs = [self._submit(holder["blob"], *chunk(s, e), timed=True) for s, e in cuts]
            except self._errors():
                self._lost = True
                return Pending(here)
            self._busy(+1)

            def wait() -> np.ndarray:
                t0 = time.perf_counter()
                try:
                    try:
                        timed = ray.get(refs)
                    finally:
                        self._busy(-1)  # before a fallback on the driver, which wants all its threads
                except self._errors() as exc:
                    own = self._unwrap(exc)
                    if own is not None:
                        raise own from None
                    self._lost = True
                    return here()
                self.stats["spread_calls"] += 1
                self.stats["spread_s"] += time.perf_counter() - t0
                self.stats["inflight_s"] += time.perf_counter() - sent
                self.stats["worker_unpack_s"] += sum(t[1] for t in timed)
                self.stats["worker_run_s"] += sum(t[2] for t in timed)
                self.stats["worker_cpu_s"] += sum(t[3] for t in timed)
                return np.concatenate([np.asarray(t[0], dtype=np.float64) for t in timed], axis=-1)

            return Pending(wait)

        return begin


@dataclass(frozen=True, eq=False)
class Pending:
    """A batch under way (:meth:`RayPool.start`): call it to wait for the result."""

    wait: Callable[[], np.ndarray]

    def __call__(self) -> np.ndarray:
        return self.wait()


def _reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast on a ``HOST:PORT`` nobody listens on (Ray itself keeps retrying for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "//" in host or not host:
        return  # "auto", "ray://...": left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc} "
                           "(start it with `ray start --head`, which prints the address)") from exc


@contextlib.contextmanager
def open_pool(config: ParallelConfig) -> Iterator[RayPool | None]:
    """``None`` (and no Ray import) unless ``config.enabled``; else a pool on a
    local Ray instance (``workers``) or a cluster (``address``), shut down after.

    While the pool is open, ``sys.stdout`` points to stderr: Ray prints its
    error notices (a worker died, ...) on stdout, which must stay one JSON
    object under ``--json``; commands print their results after the pool closes.
    """
    if not config.enabled:
        yield None
        return
    ray = require_ray()
    started = time.monotonic()
    if config.address is not None:
        _reachable(config.address)
    if ray.is_initialized():  # a caller (a notebook, a test fixture) already connected: use it, leave it up
        pool = RayPool(config, ray)
        pool.stats["startup_s"] = 0.0
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield pool
        finally:
            pool.release()
        return
    try:
        if config.address is not None:
            ray.init(address=config.address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=config.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {config.address}" if config.address else "a local Ray instance"
        raise ClusterError(f"cannot start or join {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    pool = RayPool(config, ray)
    pool.stats["startup_s"] = time.monotonic() - started
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield pool
    finally:
        pool.release()
        ray.shutdown()
