"""The ``paramverify`` command line.

Exit codes: 0 verified / bound found, 1 falsified, 3 unknown, 2 usage or
input error (one line on stderr, no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from paramverify import __version__
from paramverify.errors import InternalError, ParamVerifyError, SpecError
from paramverify.options import Options
from paramverify.progress import ConsoleProgress

EXIT_OK, EXIT_FALSIFIED, EXIT_USAGE, EXIT_UNKNOWN, EXIT_INTERNAL = 0, 1, 2, 3, 4

_EPILOG = """exit codes: 0 verified or bound found, 1 falsified, 2 usage or input error, 3 unknown,
4 internal error (a bug: please report), 130 interrupted (what was proved so far is reported).
Write negative interval ends with '=': --domain=-1:1,-2:2"""


def parse_vector(text: str, field: str) -> np.ndarray:
    """``"1,2.5,3"`` or a path to a .npy / text file."""
    if os.path.exists(text):
        try:
            arr = np.load(text) if text.endswith(".npy") else np.loadtxt(text, delimiter=",")
        except (OSError, ValueError) as exc:
            raise SpecError(field, f"cannot read '{text}': {exc}") from exc
        return np.asarray(arr, dtype=np.float64).reshape(-1)
    try:
        return np.array([float(v) for v in text.split(",") if v.strip() != ""], dtype=np.float64)
    except ValueError as exc:
        raise SpecError(field, f"'{text}' is not a comma-separated list of numbers", f"e.g. --{field} 0.5,1.2") from exc


def parse_domain(text: str) -> list[tuple[float, float]]:
    """``"LO1:HI1,LO2:HI2"``; a single ``LO:HI`` applies to every input."""
    out = []
    for i, part in enumerate(text.split(",")):
        bits = part.split(":")
        if len(bits) != 2:
            raise SpecError("domain", f"interval {i} ('{part}') is not LO:HI", "e.g. --domain 0:1,2:3.5 (use --domain=-1:1 for negatives)")
        try:
            out.append((float(bits[0]), float(bits[1])))
        except ValueError as exc:
            raise SpecError("domain", f"interval {i} ('{part}') has a non-number", "e.g. --domain 0:1,2:3.5") from exc
    return out


def parse_names(text: str | None) -> tuple[str, ...] | None:
    return None if not text else tuple(n.strip() for n in text.split(",") if n.strip())


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
    g.add_argument("--spec", metavar="FILE", help="JSON/YAML spec with a 'perturbation' mapping (and optionally x0/domain)")
    g.add_argument("--params", metavar="NAME,...", help="initializers to perturb (default: all weights and biases)")
    p.add_argument(*(["--output"] if output_flag else []), "--output-tensor", dest="output_tensor", metavar="NAME",
                   help="state the property on this tensor (default: the model's output, a trailing classifier "
                   "head such as ArgMax/ZipMap skipped)")
    r = p.add_argument_group("inputs (give one)")
    r.add_argument("--x0", metavar="V1,V2,...", help="one input (local property); or a .npy/.csv file")
    r.add_argument("--domain", metavar="LO1:HI1,...", help="an input box (global property); one LO:HI applies to all")
    p.add_argument("--radius", type=float, metavar="R", help="with --x0: the L-inf ball [x0 - R, x0 + R] instead of the point")
    p.add_argument("--level", type=float, default=0.5, help="decision level of a single-output model (default 0.5)")
    s = p.add_argument_group("engine")
    s.add_argument("--backend", default="bounds", choices=["bounds", "z3", "dreal"], help="proof engine (default: bounds)")
    s.add_argument("--timeout", type=float, default=60.0, help="wall-clock budget in seconds (default 60)")
    s.add_argument("--tolerance", type=float, default=1e-6, help="stop when the bracket is this narrow (default 1e-6)")
    s.add_argument("--seed", type=int, default=0, help="seed for the falsifier's random restarts")
    s.add_argument("--dreal-precision", type=float, default=1e-6, metavar="D", help="with --backend dreal: its delta, so that unsat is a proof and delta-sat only a candidate (default 1e-6)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    b.add_argument("--sigma", type=float, help="with --property delta and --domain: only inputs with margin >= S must keep labels")
    _problem_args(b)
    _common(b)

    v = sub.add_parser("verify", help="prove or refute one property", epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Verify Def 1/2 (eps: output change <= E), Def 3/4 (label: labels kept) or "
                       "Def 5 (sigma: labels kept for inputs at least S from the decision level).")
    v.add_argument("--property", choices=["eps", "label", "sigma"], help="eps: Def 1/2; label: Def 3/4; sigma: Def 5 "
                   "(required unless --vnnlib)")
    v.add_argument("--vnnlib", metavar="FILE", help="a VNN-LIB property (input boxes and unsafe output constraints) instead "
                   "of --property and --x0/--domain; combines with any perturbation (none: the model as it is)")
    v.add_argument("--epsilon", type=float, help="the output bound E (for --property eps)")
    v.add_argument("--sigma", type=float, help="the margin S (for --property sigma)")
    _problem_args(v)
    _common(v)

    e = sub.add_parser("export-smt", help="write the property as an SMT-LIB2 script",
                       description="Write an SMT-LIB2 script whose unsat answer proves the property.")
    e.add_argument("--property", required=True, choices=["eps", "label", "sigma"], help="the property whose negation the script asserts")
    e.add_argument("--epsilon", type=float, help="the output bound E (for --property eps)")
    e.add_argument("--sigma", type=float, help="the margin S (for --property sigma)")
    e.add_argument("-o", "--output", metavar="FILE.smt2", help="output file (default: stdout)")
    e.add_argument("--logit", action="store_true",
                   help="for a sigmoid-output model, state label/sigma properties on the logit (no exp: any SMT solver)")
    _problem_args(e, output_flag=False)
    _common(e)

    rp = sub.add_parser("reproduce", help="the seed paper's case studies: Table 1 and Figures 6-8",
                        description="Run the built-in case studies (CAT, ATH-ReLU, ATH-Linear): proved brackets "
                        "for Table 1 and PNG analogues of Figures 6-8.")
    rp.add_argument("--out", default="reproduce_out", help="folder for figures and results.json (default: reproduce_out)")
    rp.add_argument("--points", type=int, default=1000, help="random inputs for the figures (default 1000)")
    rp.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    rp.add_argument("--backend", default="bounds", choices=["bounds", "z3", "dreal"], help="proof engine (default: bounds); cells it cannot answer soundly are n/a")
    rp.add_argument("--timeout", type=float, default=30.0, help="budget per table cell in seconds")
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
    return Options(timeout_s=args.timeout, tolerance=args.tolerance, seed=args.seed, dreal_precision=args.dreal_precision, progress=progress)


def _problem(args: argparse.Namespace, unit_box: bool = False) -> Any:
    from paramverify import api

    x0 = parse_vector(args.x0, "x0") if args.x0 is not None else None
    domain = parse_domain(args.domain) if args.domain is not None else None
    if args.spec:
        from paramverify.specs import load_spec_file, perturbation_from_dict

        data = load_spec_file(args.spec)
        if x0 is None and domain is None:
            x0, domain = data.get("x0"), data.get("domain")
        pert = perturbation_from_dict(data.get("perturbation", {}), "perturbation")
        return api.make_problem(args.model, perturbation=pert, x0=x0, domain=domain, level=args.level,
                                output=args.output_tensor, radius=args.radius)
    return api.make_problem(
        args.model,
        delta=args.delta,
        relative=args.relative,
        bits=args.bits,
        symmetric=not args.asymmetric,
        per_channel=args.per_channel,
        quantized_model=args.quantized,
        params=parse_names(args.params),
        x0=x0,
        domain=domain,
        level=args.level,
        unit_box=unit_box,
        output=args.output_tensor,
        rounded=args.rounded,
        radius=args.radius,
    )


def _output_json(problem: Any) -> dict[str, Any]:
    """``{"output": {"tensor", "note"}}`` when the property is not stated on the model's own output."""
    g = problem.graph
    return {"output": {"tensor": g.output_name, "note": g.note}} if g.note else {}


def cmd_bound(args: argparse.Namespace) -> int:
    from paramverify import api
    from paramverify.properties import for_labels

    if args.property == "delta" and args.delta is not None:
        raise SpecError("delta", "--property delta searches for delta itself", "drop --delta (or use --bits/--relative to scale a scheme's box)")
    if args.property != "delta" and args.sigma is not None:
        raise SpecError("sigma", "is only used with --property delta", "drop --sigma")
    problem = _problem(args, unit_box=args.property == "delta")
    if args.property == "delta" and args.sigma is None:
        problem = for_labels(problem)
    with ConsoleProgress(enabled=not args.quiet) as progress:
        bracket = api.bound(problem, args.property, sigma=args.sigma, backend=args.backend, options=_options(args, progress))
    payload = {"command": "bound", "property": args.property, "model": args.model, "backend": args.backend,
               "region": problem.region.to_json(), "box": problem.box.to_json(), **_output_json(problem), **bracket.to_json()}
    _emit(args, payload, _note_text(problem) + _bound_text(bracket))
    return bracket.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    from paramverify import api, vnncomp
    from paramverify.properties import for_labels

    if args.vnnlib is not None or args.property is None:
        return vnncomp.cmd_verify_vnnlib(args)
    rows = vnncomp.rows_file(args)
    if rows is not None:
        return vnncomp.cmd_verify_rows(args, rows)
    problem = _problem(args)
    if args.property == "label":
        problem = for_labels(problem)
    with ConsoleProgress(enabled=not args.quiet) as progress:
        verdict = api.verify(problem, args.property, epsilon=args.epsilon, sigma=args.sigma, backend=args.backend,
                             options=_options(args, progress))
    payload = {"command": "verify", "property": args.property, "model": args.model, "backend": args.backend,
               "region": problem.region.to_json(), "box": problem.box.to_json(), **_output_json(problem), **verdict.to_json()}
    text = _note_text(problem) + f"{verdict.name.upper()}  ({verdict.method}, {verdict.time_s:.2f} s)"
    if verdict.name == "unknown":
        text += f"\nreason: {verdict.reason}"  # type: ignore[union-attr]
    if verdict.name == "falsified":
        cex = verdict.counterexample  # type: ignore[union-attr]
        text += f"\ncounterexample input: {np.array2string(cex.input, precision=6)}"
        text += f"\nnominal output {np.array2string(cex.nominal_output, precision=6)} -> perturbed {np.array2string(cex.perturbed_output, precision=6)} (replayed on onnxruntime)"
        if args.bits is not None and not args.rounded:
            text += ("\nnote: this refutes the whole rounding box: SOME parameter values within half a step of the weights "
                     "break the property, not necessarily the round-to-nearest model; check that model with --rounded")
    _emit(args, payload, text)
    return verdict.exit_code


def cmd_export_smt(args: argparse.Namespace) -> int:
    from encoders.smtlib import export_smtlib
    from paramverify import api

    problem = _problem(args)
    prop = api.make_property(problem, args.property, args.epsilon, args.sigma)
    text = export_smtlib(problem, prop, logit=args.logit)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
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
        lines.append(f"  class {pc['class']}: [{pc['lower']:.8g}, {pc['upper']:.8g}]  gap {pc['gap']:.3g}")
    return "\n".join(lines)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=_json_default))
    else:
        print(text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


COMMANDS = {"bound": cmd_bound, "verify": cmd_verify, "export-smt": cmd_export_smt, "reproduce": cmd_reproduce}


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (``kill``, a batch scheduler's time limit) like Ctrl-C while a command runs.

    Every long command already turns KeyboardInterrupt into "report what was proved so
    far"; this gives a terminated run the same ending instead of dying silently.
    """

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = COMMANDS.get(args.command)
    if handler is None:
        import importlib

        module, _, run = PLUGGED[args.command]
        handler = getattr(importlib.import_module(module), run)
    try:
        with _terminate_as_interrupt():
            return int(handler(args))
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


if __name__ == "__main__":
    sys.exit(main())
