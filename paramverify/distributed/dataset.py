"""``verify`` / ``bound`` over a data set: ``--x0 FILE.npy`` holding many inputs.

A ``.npy`` whose array holds exactly the model's input size is one input (as
before).  An array of shape ``[N, ...]`` (N >= 2) whose rows each hold the
input size is N inputs: the command runs once per row, with the same
options and seed, and reports one result per row in input order.  Each row
is its own run: ``--timeout`` is per input.

With ``--workers``/``--ray-address`` each row is one Ray task; the row runs
the same code with the same seed, so the verdicts and brackets equal the
single-process run's (only ``time_s`` differs).  Interrupted or cut off by a
lost cluster, the rows finished so far are reported and the others are
listed as not run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from paramverify.distributed.runtime import ParallelConfig, open_pool
from paramverify.errors import ClusterError
from paramverify.options import NullProgress, Options
from paramverify.properties import Problem
from paramverify.specs import InputRegion

EXIT_OK, EXIT_FALSIFIED, EXIT_UNKNOWN, EXIT_INTERRUPTED = 0, 1, 3, 130


def dataset_rows(x0: str | None) -> np.ndarray | None:
    """The rows of ``--x0 FILE.npy`` when it holds N >= 2 rows, else None.

    Whether the rows are inputs (and not one input of shape [N, ...]) is
    decided against the model by the caller (a row must fit the model).
    """
    if x0 is None or not x0.endswith(".npy"):
        return None
    try:
        arr = np.load(x0, allow_pickle=False)
    except (OSError, ValueError):
        return None  # the single-input path reports the error
    if arr.ndim < 2 or arr.shape[0] < 2:
        return None
    return np.asarray(arr, dtype=np.float64).reshape(arr.shape[0], -1)


@dataclass(frozen=True, eq=False)
class RowJob:
    """Runs one command on one row (picklable: shipped to Ray workers once)."""

    problem: Problem
    command: str  # verify | bound
    prop: str
    options: Options
    epsilon: float | None = None
    sigma: float | None = None
    backend: str = "bounds"
    radius: float | None = None  # --radius: the L-inf ball around each row, else the row itself

    def __call__(self, item: tuple[int, np.ndarray]) -> tuple[int, dict[str, Any]]:
        from paramverify import api

        i, row = item
        region = InputRegion.ball(row, self.radius, f"x0[{i}]") if self.radius else InputRegion.point(row, f"x0[{i}]")
        problem = replace(self.problem, region=region)
        if self.command == "verify":
            verdict = api.verify(problem, self.prop, epsilon=self.epsilon, sigma=self.sigma, backend=self.backend, options=self.options)  # type: ignore[arg-type]
            return verdict.exit_code, verdict.to_json()
        bracket = api.bound(problem, self.prop, sigma=self.sigma, backend=self.backend, options=self.options)  # type: ignore[arg-type]
        return bracket.exit_code, bracket.to_json()


def portable(options: Options) -> Options:
    """Options a worker can use: no console, no nested pool."""
    return replace(options, progress=NullProgress(), pool=None)


def run_rows(job: RowJob, rows: np.ndarray, config: ParallelConfig,
             note: Callable[[str], None] = lambda s: None) -> tuple[list[tuple[int, dict[str, Any]] | None], str | None]:
    """Every row's ``(exit code, result JSON)`` in input order (None: not run) and why the run stopped early (or None)."""
    out: list[tuple[int, dict[str, Any]] | None] = [None] * len(rows)
    items = [(i, rows[i]) for i in range(len(rows))]
    stopped: str | None = None
    with open_pool(config) as pool:  # a cluster that cannot be started or reached: the error itself (exit 2)
        try:
            if pool is None:
                for item in items:
                    out[item[0]] = job(item)
                    note(f"{item[0] + 1}/{len(rows)} inputs done")
            else:
                done = 0
                for i, value in pool.completed(job, items):
                    out[i] = value
                    done += 1
                    note(f"{done}/{len(rows)} inputs done")
        except KeyboardInterrupt:
            stopped = "interrupted"
        except ClusterError as exc:
            stopped = str(exc)
    return out, stopped


def run_dataset(args: argparse.Namespace, command: str, problem: Problem, rows: np.ndarray, options: Options,
                config: ParallelConfig, emit: Callable[[argparse.Namespace, dict[str, Any], str], None]) -> int:
    job = RowJob(problem, command, args.property, portable(options), getattr(args, "epsilon", None), getattr(args, "sigma", None), args.backend,
                 getattr(args, "radius", None))
    start = time.monotonic()
    out, stopped = run_rows(job, rows, config, lambda s: options.progress.update(s))
    results: list[dict[str, Any]] = []
    lines = []
    for i, got in enumerate(out):
        if got is None:
            results.append({"index": i, "verdict": "not-run"})
            lines.append(f"[{i}] NOT RUN")
            continue
        results.append({"index": i, **got[1]})
        r = got[1]
        if command == "verify":
            lines.append(f"[{i}] {r['verdict'].upper()}  ({r['method']}, {r['time_s']:.2f} s)")
        else:
            lines.append(f"[{i}] {r['quantity']}: [{r['lower']:.8g}, {r['upper']:.8g}]  ({r['method']}, {r['time_s']:.2f} s)"
                         + ("" if r["complete"] else "  [INCOMPLETE]"))
    codes = [got[0] for got in out if got is not None]
    counts = {k: sum(1 for r in results if r.get("verdict") == k) for k in ("verified", "falsified", "unknown", "not-run")}
    payload = {"command": command, "property": args.property, "model": args.model, "backend": args.backend,
               "inputs": len(rows), "finished": len(codes), "time_s": time.monotonic() - start,
               "workers": config.workers, "ray_address": config.address, "results": results}
    if command == "verify":
        payload["summary"] = {k: v for k, v in counts.items() if k != "not-run" or v}
    if stopped is not None:
        payload["stopped"] = stopped
    emit(args, payload, "\n".join(lines))
    if stopped is not None:
        print(f"paramverify: {'interrupted' if stopped == 'interrupted' else 'error: ' + stopped}; "
              f"{len(codes)} of {len(rows)} inputs finished (reported above)", file=sys.stderr)
        return EXIT_INTERRUPTED if stopped == "interrupted" else EXIT_UNKNOWN
    if EXIT_FALSIFIED in codes:
        return EXIT_FALSIFIED
    return EXIT_UNKNOWN if any(c != EXIT_OK for c in codes) else EXIT_OK
