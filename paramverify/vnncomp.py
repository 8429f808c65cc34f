"""VNN-COMP style runs: ``verify --vnnlib``, many ``--x0`` rows, and the ``vnncomp`` runner.

``paramverify vnncomp instances.csv --results DIR`` reads the competition's
instance list (rows ``onnx,vnnlib,timeout``, paths relative to the csv) and
writes, per instance, ``DIR/<onnx>__<vnnlib>.txt`` in the competition's
result format -- a first line ``sat``, ``unsat``, ``timeout``, ``unknown``
or ``error``, and for ``sat`` the counterexample
``((X_0 v) ... (Y_0 v) ...)`` (outputs as onnxruntime computed them) -- and
a summary ``DIR/results.csv`` (``onnx,vnnlib,result,time_s``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from paramverify.errors import ParamVerifyError, SpecError
from paramverify.results import Verdict

VNN_STATUS = {"verified": "unsat", "falsified": "sat"}


def vnn_status(verdict: Verdict) -> str:
    if verdict.name in VNN_STATUS:
        return VNN_STATUS[verdict.name]
    return "timeout" if str(getattr(verdict, "reason", "")).startswith("timeout") else "unknown"


def _perturbation(args: argparse.Namespace) -> dict[str, Any]:
    from paramverify.cli import parse_names

    return {
        "delta": args.delta, "relative": args.relative, "bits": args.bits, "symmetric": not args.asymmetric,
        "per_channel": args.per_channel, "quantized_model": args.quantized, "params": parse_names(args.params),
        "rounded": args.rounded, "output": args.output_tensor,
    }


def cmd_verify_vnnlib(args: argparse.Namespace) -> int:
    from paramverify import api
    from paramverify.cli import ConsoleProgress, _emit, _options
    from paramverify.vnnlib import witness_text

    if args.vnnlib is None:
        raise SpecError("property", "is required", "give --property eps|label|sigma, or a VNN-LIB file with --vnnlib FILE")
    if args.property is not None or args.x0 is not None or args.domain is not None or args.spec:
        raise SpecError("vnnlib", "the VNN-LIB file states the inputs and the property", "drop --property, --x0, --domain and --spec")
    with ConsoleProgress(enabled=not args.quiet) as progress:
        verdict = api.verify_vnnlib(args.model, args.vnnlib, options=_options(args, progress), **_perturbation(args))
    status = vnn_status(verdict)
    payload = {"command": "verify", "property": "vnnlib", "vnnlib": args.vnnlib, "model": args.model, "vnncomp": status,
               **verdict.to_json()}
    text = f"{verdict.name.upper()}  [{status}]  ({verdict.method}, {verdict.time_s:.2f} s)"
    if verdict.name == "unknown":
        text += f"\nreason: {verdict.reason}"  # type: ignore[union-attr]
    if verdict.name == "falsified":
        cex = verdict.counterexample  # type: ignore[union-attr]
        text += "\ncounterexample (replayed on onnxruntime):\n" + witness_text(cex.input, cex.perturbed_output)
    _emit(args, payload, text.rstrip("\n"))
    return verdict.exit_code


# ---------------------------------------------------------------------------
# the runner


def add_subparser(sub: Any) -> None:
    p = sub.add_parser("vnncomp", help="run a VNN-COMP benchmark's instances.csv",
                       description="Run every instance (onnx, vnnlib, timeout) of a VNN-COMP instances.csv and write "
                       "sat/unsat/timeout/unknown/error result files with counterexamples in the competition's format.")
    p.add_argument("instances", metavar="INSTANCES.csv", help="rows onnx,vnnlib,timeout (paths relative to the csv)")
    p.add_argument("--results", required=True, metavar="DIR", help="folder for the result files and results.csv")
    p.add_argument("--timeout-scale", type=float, default=1.0, metavar="F", help="multiply every instance's timeout (default 1)")
    p.add_argument("--quantized", metavar="Q.onnx", help="check the properties on this int8 copy of every network instead")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def read_instances(path: str | os.PathLike[str]) -> list[tuple[Path, Path, float]]:
    path = Path(path)
    if not path.exists():
        raise SpecError("instances", f"file '{path}' not found")
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise SpecError("instances", f"row {i + 1} has {len(row)} fields; expected onnx,vnnlib,timeout")
            try:
                timeout = float(row[2])
            except ValueError as exc:
                raise SpecError("instances", f"row {i + 1}: timeout '{row[2]}' is not a number") from exc
            out.append((path.parent / row[0].strip(), path.parent / row[1].strip(), timeout))
    return out


def run_instance(onnx_path: Path, vnnlib_path: Path, timeout: float, quantized: str | None = None) -> tuple[str, str, float]:
    """(status, result-file text, seconds) of one instance; errors become ``error``."""
    from paramverify import api
    from paramverify.options import Options
    from paramverify.vnnlib import witness_text

    t0 = time.monotonic()
    try:
        verdict = api.verify_vnnlib(str(onnx_path), str(vnnlib_path), options=Options(timeout_s=timeout), quantized_model=quantized)
    except ParamVerifyError as exc:
        return "error", f"error\n; {exc}\n", time.monotonic() - t0
    status = vnn_status(verdict)
    text = status + "\n"
    if verdict.name == "falsified":
        cex = verdict.counterexample  # type: ignore[union-attr]
        text += witness_text(cex.input, cex.perturbed_output)
    return status, text, time.monotonic() - t0


def run(args: argparse.Namespace) -> int:
    if not (np.isfinite(args.timeout_scale) and args.timeout_scale > 0):
        raise SpecError("timeout_scale", f"must be a positive number, got {args.timeout_scale}")
    instances = read_instances(args.instances)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for onnx_path, vnn_path, timeout in instances:
        status, text, secs = run_instance(onnx_path, vnn_path, timeout * args.timeout_scale, args.quantized)
        name = f"{onnx_path.stem}__{vnn_path.stem}.txt"
        (out / name).write_text(text, encoding="utf-8")
        rows.append({"onnx": str(onnx_path), "vnnlib": str(vnn_path), "result": status, "time_s": round(secs, 3), "file": name})
        if not args.quiet:
            print(f"{onnx_path.name} {vnn_path.name}: {status} ({secs:.2f} s)", flush=True)
    with open(out / "results.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["onnx", "vnnlib", "result", "time_s"])
        for r in rows:
            w.writerow([r["onnx"], r["vnnlib"], r["result"], r["time_s"]])
    if args.json:
        print(json.dumps({"command": "vnncomp", "instances": rows}))
    return 0
