"""The ``paramverify`` command line.

Exit codes: 0 verified / bound found, 1 falsified, 3 unknown, 2 usage or
input error (one line on stderr, no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from paramverify import __version__
from paramverify.argtypes import (  # parse_* and wall_budget: shared with bits, compare and search
    finite_float,
    nonneg_float,
    parse_domain,
    parse_names,
    parse_vector,
    positive_float,
    positive_int,
    wall_budget,
)
from paramverify.distributed.runtime import add_parallel_args, open_pool, parallel_config
from paramverify.errors import InternalError, ParamVerifyError, SpecError
from paramverify.fileio import check_output_path, write_text
from paramverify.interrupt import finishing, handle_signals, ignore_further_signals, shielded
from paramverify.memory import keep_freed_memory
from paramverify.options import Options
from paramverify.progress import ConsoleProgress
from paramverify.results import SCHEMA_VERSION

EXIT_OK, EXIT_FALSIFIED, EXIT_USAGE, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

_EPILOG = """exit codes: 0 verified or bound found, 1 falsified, 2 usage or input error, 3 unknown,
4 internal error (a bug: please report), 130 interrupted (what was proved so far is reported).
Write negative interval ends with '=': --domain=-1:1,-2:2"""


# --------------------------------------------------------------------- parsers
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _problem_args(p: argparse.ArgumentParser, delta_required: bool = False, output_flag: bool = True) -> None:
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    g = p.add_argument_group("perturbation (give one)")
    g.add_argument("--delta", type=float, help="absolute box |p - p0| <= D on the chosen parameters")
    g.add_argument("--relative", type=float, metavar="F", help="relative box |p - p0| <= F |p0|")
    g.add_argument("--bits", type=int, help="rounding box of a BITS-bit uniform quantization scheme")
    g.add_argument("--asymmetric", action="store_true", help="with --bits: asymmetric (zero point) instead of symmetric")
    g.add_argument("--per-channel", action="store_true", help="with --bits: one scale per output channel")
    g.add_argument("--rounded", action="store_true", help="with --bits: the round-to-nearest model itself (a concrete copy), "
                   "not the whole rounding box")
    g.add_argument("--quantized", metavar="Q.onnx", help="a concrete quantized copy: an onnxruntime int8 model (QDQ, QOperator or "
                   "quantize_dynamic; activation rounding included, names may differ) or a float copy with the same "
                   "initializer names")
    g.add_argument("--spec", metavar="FILE", help="JSON/YAML spec with perturbation, x0 or domain, level (each in the file or as a flag, not both)")
    g.add_argument("--params", metavar="NAME,...", help="initializers to perturb (default: all weights and biases)")
    p.add_argument(*(["--output"] if output_flag else []), "--output-tensor", dest="output_tensor", metavar="NAME",
                   help="state the property on this tensor (default: the model's output, a trailing classifier "
                   "head such as ArgMax/ZipMap skipped)")
    r = p.add_argument_group("inputs (give one)")
    r.add_argument("--x0", metavar="V1,V2,...", help="one input (local property); or a .npy/.csv file; a .npy of N >= 2 rows: N inputs, one result each")
    r.add_argument("--domain", metavar="LO1:HI1,...", help="an input box (global property); one LO:HI applies to all")
    p.add_argument("--radius", type=positive_float, metavar="R", help="with --x0: the L-inf ball [x0 - R, x0 + R] instead of the point")
    p.add_argument("--level", type=finite_float, help="decision level of a single-output model (default 0.5, or the spec file's level)")
    s = p.add_argument_group("engine")
    s.add_argument("--backend", default="bounds", choices=["bounds", "z3", "dreal"], help="proof engine (default: bounds)")
    s.add_argument("--timeout", type=positive_float, default=60.0, help="wall-clock budget of the whole command in seconds (default 60)")
    s.add_argument("--tolerance", type=nonneg_float, default=1e-6, help="stop when the bracket is this narrow (default 1e-6)")
    s.add_argument("--seed", type=int, default=0, help="seed for the falsifier's random restarts")
    s.add_argument("--dreal-precision", type=float, default=1e-6, metavar="D", help="with --backend dreal: its delta, so that unsat is a proof and delta-sat only a candidate (default 1e-6)")


def _witness_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--witness-file", metavar="FILE.npz",
                   help="with --json: where a witness or counterexample with more than 10,000 parameter values goes "
                   "(default MODEL-stem.COMMAND-PROPERTY.witness.npz in the working directory); the JSON keeps "
                   "only the changed entries and the file's path")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (what is wrong and where the help is), exit 2; subparsers inherit it."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="paramverify",
        description="Prove how far a network's outputs and labels move when its parameters move "
        "(quantization rounding, pruning, drift).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"paramverify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("bound", help="optimise: largest epsilon, smallest sigma, largest delta", epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Compute a proved bracket [lower, upper] of the largest output change (eps), "
                       "the smallest safe margin per class (sigma) or the largest delta that keeps labels (delta).")
    b.add_argument("--property", required=True, choices=["eps", "sigma", "delta"], help="eps: largest output change; sigma: smallest safe margin per class; delta: largest delta that keeps labels")
    b.add_argument("--sigma", type=nonneg_float, help="with --property delta and --domain: only inputs with margin >= S must keep labels")
    _witness_arg(b)
    _problem_args(b)
    add_parallel_args(b, boxes=True)
    _common(b)

    v = sub.add_parser("verify", help="prove or refute one property", epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Verify Def 1/2 (eps: output change <= E), Def 3/4 (label: labels kept) or "
                       "Def 5 (sigma: labels kept for inputs at least S from the decision level).")
    v.add_argument("--property", choices=["eps", "label", "sigma"], help="eps: Def 1/2; label: Def 3/4; sigma: Def 5 "
                   "(required unless --vnnlib)")
    v.add_argument("--vnnlib", metavar="FILE", help="a VNN-LIB property (input boxes and unsafe output constraints) instead "
                   "of --property and --x0/--domain; combines with any perturbation (none: the model as it is)")
    v.add_argument("--epsilon", type=nonneg_float, help="the output bound E (for --property eps)")
    v.add_argument("--sigma", type=nonneg_float, help="the margin S (for --property sigma)")
    _witness_arg(v)
    _problem_args(v)
    add_parallel_args(v, boxes=True)
    _common(v)

    e = sub.add_parser("export-smt", help="write the property as an SMT-LIB2 script",
                       description="Write an SMT-LIB2 script whose unsat answer proves the property.")
    e.add_argument("--property", required=True, choices=["eps", "label", "sigma"], help="the property whose negation the script asserts")
    e.add_argument("--epsilon", type=nonneg_float, help="the output bound E (for --property eps)")
    e.add_argument("--sigma", type=nonneg_float, help="the margin S (for --property sigma)")
    e.add_argument("-o", "--output", metavar="FILE.smt2", help="output file (default: stdout)")
    e.add_argument("--logit", action=argparse.BooleanOptionalAction, default=True,
                   help="state the property of a final Sigmoid on its logit where it can (label and sigma "
                   "properties, an output bound at a point): no exp, so any SMT solver (default); --no-logit "
                   "writes the Sigmoid with exp, a dReal extension that z3 rejects")
    _problem_args(e, output_flag=False)
    _common(e)

    rp = sub.add_parser("reproduce", help="the seed paper's case studies: Table 1 and Figures 6-8",
                        description="Run the built-in case studies (CAT, ATH-ReLU, ATH-Linear): proved brackets "
                        "for Table 1 and PNG analogues of Figures 6-8.")
    rp.add_argument("--out", default="reproduce_out", help="folder for figures and results.json (default: reproduce_out)")
    rp.add_argument("--points", type=positive_int, default=1000, help="random inputs for the figures (default 1000)")
    rp.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    rp.add_argument("--backend", default="bounds", choices=["bounds", "z3", "dreal"], help="proof engine (default: bounds); cells it cannot answer soundly are n/a")
    rp.add_argument("--timeout", type=positive_float, default=30.0, help="budget per table cell in seconds")
    _common(rp)

    _optional_subcommands(sub)
    return parser


#: subcommands that live in their own modules: name -> (module, add-parser function, run function)
PLUGGED: dict[str, tuple[str, str, str]] = {
    "smooth": ("paramverify.smoothing.cli", "add_subparser", "run"),
    "compare": ("paramverify.compare", "add_compare_subparser", "run_compare"),
    "report": ("paramverify.report", "add_report_subparser", "run_report"),
    "bits": ("paramverify.bits", "add_subparser", "run"),
    "search": ("paramverify.search.cli", "add_subparser", "run"),
    "compress": ("paramverify.compress.cli", "add_subparser", "run"),
    "attack": ("paramverify.attacks.cli", "add_subparser", "run"),
    "sq": ("paramverify.sq.cli", "add_subparser", "run"),
    "vnncomp": ("paramverify.vnncomp", "add_subparser", "run"),
}


def _optional_subcommands(sub: Any) -> None:
    """Subcommands implemented in their own modules (they import heavy packages lazily)."""
    import importlib
    import importlib.util

    for module, add, _ in PLUGGED.values():
        if importlib.util.find_spec(module) is not None:
            getattr(importlib.import_module(module), add)(sub)


# -------------------------------------------------------------------- commands
def _options(args: argparse.Namespace, progress: ConsoleProgress) -> Options:
    if not (np.isfinite(args.dreal_precision) and args.dreal_precision > 0):
        raise SpecError("dreal_precision", f"must be a finite number > 0, got {args.dreal_precision!r}", "e.g. --dreal-precision 1e-6")
    return Options(timeout_s=wall_budget(args), tolerance=args.tolerance, seed=args.seed, dreal_precision=args.dreal_precision,
                   progress=progress, stop=getattr(args, "stop", None))


def _problem(args: argparse.Namespace, unit_box: bool = False, x0_row: np.ndarray | None = None) -> Any:
    from paramverify import api

    x0 = x0_row if x0_row is not None else parse_vector(args.x0, "x0") if args.x0 is not None else None
    domain = parse_domain(args.domain) if args.domain is not None else None
    level, perturbation = args.level, None
    if args.spec:
        from paramverify.specfile import merge_with_flags, read_spec_file

        flags = {"--delta": args.delta is not None, "--relative": args.relative is not None, "--bits": args.bits is not None,
                 "--quantized": args.quantized is not None, "--params": args.params is not None,
                 "--asymmetric": args.asymmetric, "--per-channel": args.per_channel}
        merged = merge_with_flags(read_spec_file(args.spec), model=args.model, x0=x0, domain=domain, level=level,
                                  perturbation_flags=flags)
        x0, domain, level, perturbation = merged["x0"], merged["domain"], merged["level"], merged["perturbation"]
    return api.make_problem(
        args.model,
        delta=args.delta,
        relative=args.relative,
        bits=args.bits,
        symmetric=not args.asymmetric,
        per_channel=args.per_channel,
        quantized_model=args.quantized,
        perturbation=perturbation,
        params=parse_names(args.params),
        x0=x0,
        domain=domain,
        level=0.5 if level is None else level,
        unit_box=unit_box,
        output=args.output_tensor,
        rounded=args.rounded,
        radius=args.radius,
    )


def _output_json(problem: Any) -> dict[str, Any]:
    """``{"output": {"tensor", "note"}}`` when the property is not stated on the model's own output."""
    g = problem.graph
    return {"output": {"tensor": g.output_name, "note": g.note}} if g.note else {}


def _problem_and_rows(args: argparse.Namespace, unit_box: bool = False) -> tuple[Any, np.ndarray | None]:
    """The problem, and the data set's rows when ``--x0 FILE.npy`` holds N >= 2 inputs (else None)."""
    from paramverify.distributed.dataset import dataset_rows

    rows = dataset_rows(args.x0)
    if rows is not None:
        try:
            return _problem(args, unit_box, x0_row=rows[0]), rows
        except SpecError:
            pass  # not rows of inputs (e.g. one input of shape [2, k]): the single-input path decides
    return _problem(args, unit_box), None


def _run_dataset(args: argparse.Namespace, command: str, problem: Any, rows: np.ndarray, options: Options, config: Any) -> int:
    from paramverify.distributed.dataset import run_dataset

    return run_dataset(args, command, problem, rows, options, config, _emit)


def cmd_bound(args: argparse.Namespace) -> int:
    from paramverify import api
    from paramverify.properties import for_labels

    if args.property == "delta" and args.delta is not None:
        raise SpecError("delta", "--property delta searches for delta itself", "drop --delta (or use --bits/--relative to scale a scheme's box)")
    if args.property != "delta" and args.sigma is not None:
        raise SpecError("sigma", "is only used with --property delta", "drop --sigma")
    config = parallel_config(args)
    problem, rows = _problem_and_rows(args, unit_box=args.property == "delta")
    if args.property == "delta" and args.sigma is None:
        problem = for_labels(problem)
    with ConsoleProgress(enabled=not args.quiet) as progress:
        if rows is not None:
            return _run_dataset(args, "bound", problem, rows, _options(args, progress), config)
        with open_pool(config) as pool:
            options = replace(_options(args, progress), pool=pool)
            bracket = api.bound(problem, args.property, sigma=args.sigma, backend=args.backend, options=options)
    payload = {"command": "bound", "property": args.property, "model": args.model, "backend": args.backend,
               "region": problem.region.to_json(), "box": problem.box.to_json(), **_output_json(problem), **bracket.to_json()}
    if args.json:
        _side_files(args, problem, payload, "witness")
        for pc in payload.get("per_class", []):
            _side_files(args, problem, pc, "witness", f".class{pc['class']}")
    _emit(args, payload, _note_text(problem) + _bound_text(bracket))
    notes = [bracket.note] + [pc.get("note", "") for pc in bracket.extra.get("per_class", [])]
    return EXIT_INTERRUPTED if any(_interrupted(n) for n in notes) else bracket.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    from paramverify import api, vnncomp
    from paramverify.properties import for_labels

    if args.vnnlib is not None or args.property is None:
        return vnncomp.cmd_verify_vnnlib(args)
    config = parallel_config(args)
    problem, rows = _problem_and_rows(args)
    if args.property == "label":
        problem = for_labels(problem)
    with ConsoleProgress(enabled=not args.quiet) as progress:
        if rows is not None:
            return _run_dataset(args, "verify", problem, rows, _options(args, progress), config)
        with open_pool(config) as pool:
            options = replace(_options(args, progress), pool=pool)
            verdict = api.verify(problem, args.property, epsilon=args.epsilon, sigma=args.sigma, backend=args.backend, options=options)
    payload = {"command": "verify", "property": args.property, "model": args.model, "backend": args.backend,
               "region": problem.region.to_json(), "box": problem.box.to_json(), **_output_json(problem), **verdict.to_json()}
    text = _note_text(problem) + f"{verdict.name.upper()}  ({verdict.method}, {verdict.time_s:.2f} s)"
    if verdict.name == "unknown":
        text += f"\nreason: {verdict.reason}"  # type: ignore[union-attr]
    if verdict.name == "falsified":
        cex = verdict.counterexample  # type: ignore[union-attr]
        text += f"\ncounterexample input: {np.array2string(cex.input, precision=6)}"
        text += f"\nnominal output {np.array2string(cex.nominal_output, precision=6)} -> perturbed {np.array2string(cex.perturbed_output, precision=6)} (replayed on onnxruntime)"
        if args.property in ("label", "sigma"):
            text += label_line(cex)
        if args.bits is not None and not args.rounded:
            text += ("\nnote: this refutes the whole rounding box: SOME parameter values within half a step of the weights "
                     "break the property, not necessarily the round-to-nearest model; check that model with --rounded")
    if args.json:
        _side_files(args, problem, payload, "counterexample")
    _emit(args, payload, text)
    return EXIT_INTERRUPTED if verdict.name == "unknown" and _interrupted(verdict.reason) else verdict.exit_code  # type: ignore[union-attr]


def label_line(cex: Any) -> str:
    """The labels a label counterexample shows on onnxruntime (float64 outputs where it was not
    replayed), naming a tie: the perturbed model does not give the nominal label strictly
    there, whatever argmax picks.  Empty for a single-output (threshold) model."""
    y0, yp = cex.onnxruntime_outputs if cex.onnxruntime_outputs is not None else (cex.nominal_output, cex.perturbed_output)
    y0, yp = np.asarray(y0, dtype=np.float64).ravel(), np.asarray(yp, dtype=np.float64).ravel()
    if y0.size < 2:
        return ""
    c = int(np.argmax(y0))
    top = np.flatnonzero(yp == yp.max())
    where = "onnxruntime" if cex.onnxruntime_outputs is not None else "float64"
    if top.size > 1:
        tied = ", ".join(str(int(i)) for i in top)
        return (f"\nlabels ({where}): nominal {c}; perturbed: outputs {tied} tie at {yp.max():.6g}, so it does not "
                f"give {c} strictly (argmax picks {int(top[0])})")
    return f"\nlabels ({where}): nominal {c}, perturbed {int(top[0])}"


def _interrupted(note: str) -> bool:
    """Did the engine stop on Ctrl-C/SIGTERM? (every engine says "interrupted" in its note/reason)."""
    return "interrupted" in note


def _side_files(args: argparse.Namespace, problem: Any, payload: dict[str, Any], key: str, suffix: str = "") -> None:
    """Move a large witness/counterexample in ``payload[key]`` to a side .npz (see paramverify.witness_file)."""
    from paramverify.witness_file import externalize, is_large

    if key not in payload or not is_large(payload[key]):
        return
    if args.witness_file:
        base = args.witness_file[:-4] if args.witness_file.endswith(".npz") else args.witness_file
    else:
        base = f"{os.path.splitext(os.path.basename(args.model))[0]}.{args.command}-{args.property}.witness"
    payload[key] = externalize(payload[key], problem.box.nominal, base + suffix + ".npz")


def cmd_export_smt(args: argparse.Namespace) -> int:
    from encoders.smtlib import export_smtlib
    from paramverify import api

    check_output_path(args.output, "output")  # before the encoding
    problem = _problem(args)
    prop = api.make_property(problem, args.property, args.epsilon, args.sigma)
    text = export_smtlib(problem, prop, logit=args.logit)
    if args.output:
        finishing(args)
        write_text(args.output, text)  # atomic: an earlier file is never left truncated
        _emit(args, {"command": "export-smt", "output": args.output, "bytes": len(text)}, f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from paramverify import reproduce

    return reproduce.run(args)


def _note_text(problem: Any) -> str:
    return f"note: {problem.graph.note}\n" if problem.graph.note else ""


def _bound_text(b: Any) -> str:
    lines = [f"{b.quantity}: [{b.lower:.8g}, {b.upper:.8g}]  gap {b.gap:.3g}  ({b.method}, {b.time_s:.2f} s)"]
    side = "upper" if b.proof_side == "upper" else "lower"
    lines.append(f"  {side} end proved; the other from a concrete witness" + ("" if b.complete else "  [INCOMPLETE: " + b.note + "]"))
    for pc in b.extra.get("per_class", []):
        lo, hi, gap = (float(pc[k]) for k in ("lower", "upper", "gap"))  # JSON spells infinities "inf"
        lines.append(f"  class {pc['class']}: [{lo:.8g}, {hi:.8g}]  gap {gap:.3g}")
    return "\n".join(lines)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    out = json.dumps({"schema": SCHEMA_VERSION, **payload}, default=_json_default) if getattr(args, "json", False) else text
    with shielded(args):  # a signal now must not lose the result
        print(out, flush=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


COMMANDS = {"bound": cmd_bound, "verify": cmd_verify, "export-smt": cmd_export_smt, "reproduce": cmd_reproduce}


def _process_age() -> float:
    """Seconds since this process started (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


_NEGATIVE_VALUE = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--x0 -0.3,1`` -> ``--x0=-0.3,1``: argparse takes a value starting with '-' for an option.

    No option of paramverify starts with a digit, so a '-' followed by a digit, '.', inf
    or nan after a long option is always that option's (negative) value.
    """
    out: list[str] = []
    for tok in argv:
        prev = out[-1] if out else ""
        if _NEGATIVE_VALUE.match(tok) and prev.startswith("--") and "=" not in prev and len(prev) > 2:
            out[-1] = f"{prev}={tok}"
        else:
            out.append(tok)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    # run as a program (argv from sys.argv): --timeout counts from the process start, the
    # interpreter's own start-up included; called from Python: from this call
    started = time.monotonic() - (_process_age() if argv is None else 0.0)
    if argv is None:  # this program's own process: keep freed memory (numpy's temporaries; paramverify/memory.py)
        keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    args.started = started  # see wall_budget
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = COMMANDS.get(args.command)
    if handler is None:
        import importlib

        module, _, run = PLUGGED[args.command]
        handler = getattr(importlib.import_module(module), run)
    try:
        with handle_signals() as stop:
            args.stop = stop  # commands pass it down in their Options (see paramverify.interrupt)
            code = int(handler(args))
        if stop.requested and argv is None:  # a program about to exit (not a caller's process)
            ignore_further_signals()  # the result is out; one more SIGTERM must not turn exit 130 into a kill
        # a signal during the work (not only while the output was written) ends with 130
        return 130 if stop.interrupted_work and code in (EXIT_OK, EXIT_UNKNOWN) else code
    except MemoryError:
        if getattr(args, "debug", False):
            raise
        print("paramverify: error: out of memory (the model or the query is too large for this machine; "
              "try a smaller --batch, fewer inputs or parameters, or more memory)", file=sys.stderr)
        return EXIT_USAGE
    except InternalError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"paramverify: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except ParamVerifyError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"paramverify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("paramverify: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's input: one line and exit 4, never 1 (which means falsified)
        if getattr(args, "debug", False):
            raise
        detail = " ".join(str(exc).split())[:300]
        print(f"paramverify: internal error (please report; --debug shows the traceback): {type(exc).__name__}: {detail}",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
