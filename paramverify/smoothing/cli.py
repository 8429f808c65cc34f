"""``paramverify smooth certify|predict``: randomized smoothing from the command line.

    paramverify smooth certify MODEL.onnx --sigma S --n N --n0 N0 --alpha A --inputs X.npy
        [--labels Y.npy] [--policy BITS.json [--incremental NQ --alpha-q AQ]] [--batch B]
        [--device cpu|cuda] [--dtype float32|bfloat16|float16] [--seed SEED] [--json]
        [--tsv OUT.tsv] [--plot OUT.png]
    paramverify smooth predict MODEL.onnx --sigma S --n N --alpha A --inputs X.npy [...]

With ``--json`` exactly one JSON object goes to stdout; it has ``results``, one
object per input with ``predict`` (class index, -1 = abstain) and ``radius``.
Progress goes to stderr.  Inputs are in the model's input units (the noise is
added to them as they are); ``X.npy`` holds a batch ``(N, *input_shape)`` or a
single input.  torch is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from paramverify.argtypes import positive_float, positive_int, probability
from paramverify.distributed.runtime import (
    add_parallel_args,
    open_pool,
    parallel_config,
)
from paramverify.errors import (
    BackendUnavailableError,
    ClusterError,
    ParamVerifyError,
    SpecError,
)
from paramverify.fileio import check_output_path
from paramverify.interrupt import KeepFinished, finishing
from paramverify.results import SCHEMA_VERSION

_DTYPES = ("float32", "bfloat16", "float16")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="ONNX classifier (float or QDQ-quantized)")
    p.add_argument("--sigma", type=positive_float, required=True, help="noise standard deviation, in input units")
    p.add_argument("--n", type=positive_int, required=True, help="samples per input (estimation)")
    p.add_argument("--alpha", type=probability, default=0.001, help="failure probability (default 0.001)")
    p.add_argument("--inputs", type=Path, required=True, help=".npy with (N, *input_shape) or one input")
    p.add_argument("--labels", type=Path, help=".npy with N integer labels (adds 'correct')")
    p.add_argument("--policy", help="mixed-precision policy JSON (file or text): layer -> bits")
    p.add_argument("--calib", type=Path, help=".npy calibration inputs for activation ranges "
                   "(default: the inputs plus independent noise)")
    p.add_argument("--batch", type=positive_int, default=1000, help="noisy copies per forward pass (default 1000)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda when available; default cpu)")
    p.add_argument("--dtype", choices=_DTYPES, default="float32", help="compute precision (default float32)")
    p.add_argument("--seed", type=int, help="makes the run repeatable (a random one is chosen and reported)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_parallel_args(p)


def add_subparser(subparsers: Any) -> None:
    """Add ``smooth`` (with ``certify`` and ``predict``) to an argparse subparsers object."""
    smooth = subparsers.add_parser(
        "smooth", help="randomized smoothing: statistical certificates for float and quantized models",
        description="Randomized smoothing (Cohen et al. 2019) for float and quantized ONNX classifiers.",
    )
    sub = smooth.add_subparsers(dest="smooth_command", metavar="{certify,predict}")
    sub.required = True
    cert = sub.add_parser("certify", help="certified class and L2 radius per input")
    _common(cert)
    cert.add_argument("--n0", type=positive_int, default=100, help="selection samples per input (default 100)")
    cert.add_argument("--incremental", type=positive_int, metavar="NQ",
                      help="with --policy: certify the float model, then the quantized copy incrementally "
                           "from NQ samples (Ugare et al. 2024)")
    cert.add_argument("--alpha-q", type=probability, help="failure probability of the disagreement bound "
                      "(default: --alpha); the combined confidence is 1 - alpha - alpha_q")
    cert.add_argument("--tsv", type=Path, help="write per-input rows (idx label predict radius correct time)")
    cert.add_argument("--plot", type=Path, help="write a PNG of certified accuracy against radius (needs --labels)")
    pred = sub.add_parser("predict", help="smoothed prediction per input (abstains by a binomial test)")
    _common(pred)


def run(args: argparse.Namespace) -> int:
    """Run ``smooth certify`` or ``smooth predict``; 0 on success, 2 on an input error, 130 when
    interrupted (the inputs finished so far are still reported and written)."""
    try:
        return _run(args)
    except ParamVerifyError as exc:
        print(f"paramverify smooth: error: {exc}", file=sys.stderr)
        return 2


def _load_array(path: Path, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SpecError(what, f"cannot read {path} as .npy: {exc}", "save it with numpy.save") from exc
    if not isinstance(arr, np.ndarray):
        raise SpecError(what, f"{path} is not a single .npy array", "use numpy.save, not savez")
    return arr


def _shape_inputs(x: np.ndarray, dims: tuple[int | None, ...]) -> np.ndarray:
    want = dims[1:]
    if not np.issubdtype(x.dtype, np.number):
        raise SpecError("inputs", f"dtype {x.dtype} is not numeric")

    def fits(shape: tuple[int, ...]) -> bool:
        return len(shape) == len(want) and all(w is None or w == s for w, s in zip(want, shape, strict=True))

    if not want or fits(tuple(x.shape[1:])):
        return x.astype(np.float32)
    if fits(tuple(x.shape)):
        return x[None].astype(np.float32)
    raise SpecError("inputs", f"shape {x.shape} does not fit the model input {dims}",
                    "pass (N, *input_shape) or a single input")


def _run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("randomized smoothing needs torch: pip install 'paramverify[smooth]'") from exc
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from paramverify.smoothing.core import SmoothOptions, resolve_device
    from paramverify.smoothing.dataset import (
        CertRow,
        certified_accuracy,
        plot_certified_accuracy,
        write_tsv,
    )
    from paramverify.smoothing.jobs import InputJob
    from paramverify.smoothing.onnx_torch import load_onnx, num_classes_of
    from paramverify.smoothing.quant import QuantPolicy, bitops, quantize_model

    command = args.smooth_command
    config = parallel_config(args)
    incremental = getattr(args, "incremental", None)
    if incremental is not None and not args.policy:
        raise SpecError("--incremental", "needs --policy (the quantized copy to certify)", "add --policy BITS.json")
    if incremental is not None and args.alpha + (args.alpha_q or args.alpha) >= 1:
        raise SpecError("--alpha-q", f"alpha + alpha_q = {args.alpha + (args.alpha_q or args.alpha):g} leaves no confidence "
                        "(the combined confidence is 1 - alpha - alpha_q)", "use smaller failure probabilities, e.g. 0.001 each")
    if getattr(args, "plot", None) is not None and args.labels is None:
        raise SpecError("--plot", "certified accuracy needs --labels", "pass --labels Y.npy")
    for flag in ("tsv", "plot"):  # before the run, not after it
        check_output_path(getattr(args, flag, None), f"--{flag}")
    options = SmoothOptions(sigma=args.sigma, batch_size=args.batch, device=args.device, dtype=args.dtype)
    model = load_onnx(args.model)
    x = _shape_inputs(_load_array(args.inputs, "inputs"), model.input_shape)
    if not np.all(np.isfinite(x)):
        raise SpecError("inputs", f"{args.inputs} holds NaN or infinite values", "pass finite inputs")
    labels = None
    if args.labels is not None:
        labels = _load_array(args.labels, "labels").reshape(-1)
        if len(labels) != len(x) or not np.issubdtype(labels.dtype, np.integer):
            raise SpecError("labels", f"need {len(x)} integer labels, got {labels.dtype} x {len(labels)}")
    smooth_device = str(resolve_device(options.device))
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
    num_classes = num_classes_of(model, torch.from_numpy(x[:1]))
    if labels is not None and labels.size and not (labels.min() >= -1 and labels.max() < num_classes):
        bad = int(labels[(labels < -1) | (labels >= num_classes)][0])
        raise SpecError("labels", f"label {bad} is outside the model's classes 0..{num_classes - 1}",
                        "give class indices of the model's output, or -1 for an unlabelled input")
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION, "command": f"smooth {command}", "model": str(args.model), "sigma": args.sigma, "n": args.n,
        "alpha": args.alpha, "device": smooth_device, "dtype": options.dtype, "batch": args.batch, "seed": seed,
    }
    target = model
    if args.policy:
        policy = QuantPolicy.from_json(args.policy)
        calib = _calibration(args, x, seed)
        target = quantize_model(model, policy, torch.from_numpy(calib))
        out["policy"] = policy.to_mapping()
        out["bitops"] = bitops(model, policy, torch.from_numpy(x[:1])).to_dict()
    if config.enabled and torch.device(smooth_device).type != "cpu":
        raise SpecError("workers", f"Ray workers run on CPUs, not on {smooth_device}", "drop --workers/--ray-address or use --device cpu")
    alpha_q = getattr(args, "alpha_q", None)
    alpha_q = alpha_q if alpha_q is not None else args.alpha
    job = InputJob(command, target, model if incremental is not None else None, num_classes, options, seed, args.n, args.alpha,
                   getattr(args, "n0", 100), incremental, alpha_q)
    per_input = args.n + (args.n0 if command == "certify" else 0)
    if incremental is not None:
        per_input += incremental
    console = Console(stderr=True)
    done: dict[int, tuple[dict[str, Any], tuple[int, float, float] | None]] = {}
    stopped: str | None = None
    last_note = -1e9
    # an interrupt (SIGINT/SIGTERM) ends the loop; the inputs finished so far are reported
    with open_pool(config) as pool, KeepFinished() as cut, Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=console, disable=args.quiet, transient=True) as bar:
        task = bar.add_task(f"smooth {command}", total=per_input * len(x))

        def advance(k: int) -> None:
            bar.advance(task, k)

        def finished(i: int, got: tuple[dict[str, Any], tuple[int, float, float] | None]) -> None:
            nonlocal last_note
            entry = got[0]
            if labels is not None:
                entry = {"idx": entry["idx"], "label": int(labels[i]), **{k: v for k, v in entry.items() if k != "idx"}}
                entry["correct"] = int(labels[i] >= 0 and entry["predict"] == int(labels[i]))
            done[i] = (entry, got[1])
            if not args.quiet and not console.is_terminal and time.monotonic() - last_note >= 2.0:
                last_note = time.monotonic()  # a log (not a terminal) gets a line at most every 2 s
                console.print(f"smooth {command}: {len(done)}/{len(x)} inputs done", markup=False, highlight=False)

        if pool is None:
            for i in range(len(x)):
                finished(i, job.run(i, x[i], progress=advance))
        else:  # one task per input, in any order; each input's seed is its own, so the results are the same
            try:
                for i, got in pool.completed(job, [(i, x[i]) for i in range(len(x))]):
                    advance(per_input)
                    finished(i, got)
            except ClusterError as exc:
                stopped = str(exc)
    finishing(args)
    results = [done[i][0] for i in sorted(done)]
    float_rows = [CertRow(i, int(labels[i]) if labels is not None else -1, f[0], f[1],
                          int(labels is not None and labels[i] >= 0 and f[0] == labels[i]), f[2])
                  for i in sorted(done) if (f := done[i][1]) is not None]
    out["workers"], out["ray_address"] = config.workers, config.address
    out["complete"] = len(done) == len(x)
    if not out["complete"]:
        out["missing"] = [i for i in range(len(x)) if i not in done]
        why = "interrupted" if cut.interrupted else f"error: {stopped}"
        print(f"paramverify smooth: {why}; {len(done)} of {len(x)} inputs finished (reported)", file=sys.stderr)
    if stopped is not None:
        out["stopped"] = stopped
    if command == "certify":
        out["n0"] = args.n0
        if incremental is not None:
            out["incremental"] = {"n_q": incremental, "alpha_q": args.alpha_q or args.alpha,
                                  "confidence": 1.0 - args.alpha - (args.alpha_q or args.alpha)}
    out["results"] = results
    rows = [CertRow(r["idx"], r.get("label", -1), r["predict"], r["radius"], r.get("correct", 0), r["time"])
            for r in results]
    out["summary"] = {
        "inputs": len(results),
        "abstained": sum(r["predict"] == -1 for r in results),
        "mean_radius": float(np.mean([r["radius"] for r in results])) if results else 0.0,
    }
    if labels is not None:
        out["summary"]["accuracy"] = float(np.mean([r["correct"] for r in results]))
        if command == "certify":
            radii = [0.0, 0.25, 0.5, 0.75, 1.0]
            acc = certified_accuracy(rows, radii)
            out["summary"]["certified_accuracy"] = {str(r): float(a) for r, a in zip(radii, acc, strict=True)}
    if command == "certify" and args.tsv is not None:
        write_tsv(rows, args.tsv)
    if command == "certify" and args.plot is not None:
        curves = {"float32": float_rows} if float_rows else {}
        curves["quantized (incremental)" if float_rows else "quantized" if args.policy else "float32"] = rows
        plot_certified_accuracy(curves, args.plot)
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        _print_table(out, Console())
    sys.stdout.flush()
    return 130 if cut.interrupted else 3 if stopped is not None else 0


def _calibration(args: argparse.Namespace, x: np.ndarray, seed: int) -> np.ndarray:
    """Calibration inputs: --calib, or the inputs plus noise independent of the certification noise."""
    if args.calib is not None:
        calib = _load_array(args.calib, "calib")
        if not np.issubdtype(calib.dtype, np.number) or not np.isfinite(calib).all():
            raise SpecError("calib", f"{args.calib} holds NaN, infinity or non-numbers",
                            "pass finite calibration inputs (or drop --calib to use the inputs plus noise)")
        return calib.astype(np.float32)
    reps = max(1, -(-256 // len(x)))
    base = np.concatenate([x] * reps)[: max(256, len(x))]
    rng = np.random.default_rng([seed, 0xCA11B])
    return (base + args.sigma * rng.standard_normal(base.shape)).astype(np.float32)


def _print_table(out: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"paramverify {out['command']} (sigma {out['sigma']}, n {out['n']}, alpha {out['alpha']})")
    for col in ("idx", "label", "predict", "radius", "correct", "time"):
        table.add_column(col, justify="right")
    for r in out["results"]:
        table.add_row(str(r["idx"]), str(r.get("label", "")), "abstain" if r["predict"] == -1 else str(r["predict"]),
                      f"{r['radius']:.4f}", str(r.get("correct", "")), f"{r['time']:.2f}")
    console.print(table)
    console.print(json.dumps(out["summary"]))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m paramverify.smoothing.cli smooth certify ...``."""
    parser = argparse.ArgumentParser(prog="paramverify")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
