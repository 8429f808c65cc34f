"""``paramverify search``: mixed-precision search that keeps certified robustness.

    paramverify search MODEL.onnx --budget FRACTION_OF_FLOAT_BITOPS [--out DIR] [--resume]
        [--episodes N] [--warmup W] [--sigma S] [--reward-images R] [--reward-n NQ] [--float-n N]
        [--test-images T] [--test-n N] [--baselines uniform,greedy,random|none] [--random-trials K]
        [--constraint wall|penalty] [--min-bits 2] [--max-bits 8] [--finetune-steps K]
        [--final-top-k 5] [--final-n N] [--final-tolerance 0.01] [--formal] [--inputs X.npy --labels Y.npy] [--device cpu|cuda] [--seed S] [--timeout S]
        [--json] [--quiet]

Writes into ``--out``: ``policy.json`` (readable by ``paramverify smooth
certify --policy``), ``model_qdq.onnx`` (QuantizeLinear/DequantizeLinear),
``report.md`` + ``pareto.png`` + ``report.json``, and a checkpoint after
every episode.  Ctrl-C keeps the last checkpoint, writes the best policy so
far and exits with 130; ``--resume`` continues.  Progress goes to stderr;
with ``--json`` exactly one JSON object goes to stdout.  With ``--workers`` /
``--ray-address`` each reward's work runs as Ray tasks (the same numbers as one
process; the DDPG loop stays sequential).  Exit codes: 0 done
(also when ``--timeout`` cut the search short: the report says so), 2 input
error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from paramverify.argtypes import (
    fraction,
    int_range,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    probability,
    unit_interval,
)
from paramverify.distributed.runtime import add_parallel_args, open_pool, parallel_config
from paramverify.errors import BackendUnavailableError, ParamVerifyError, SpecError
from paramverify.fileio import check_output_folder
from paramverify.interrupt import finishing
from paramverify.results import SCHEMA_VERSION

#: bit widths the search may choose (the fake quantizer's integer grids)
search_bits = int_range(2, 16)


def add_subparser(subparsers: Any) -> None:
    """Add ``search`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "search", help="mixed-precision search (DDPG, ARQ-style) that keeps certified robustness",
        description="Search per-layer bit widths under a BitOps budget with a DDPG agent rewarded by "
        "randomized-smoothing certification (or, with --formal, by proved label invariance); compare with "
        "uniform, greedy and random baselines; export the policy, a QDQ ONNX model and a report.",
    )
    p.add_argument("model", type=Path, help="float ONNX classifier")
    p.add_argument("--budget", type=fraction, required=True, metavar="FRACTION",
                   help="BitOps budget as a fraction of the float model's BitOps (e.g. 0.1)")
    p.add_argument("--out", type=Path, default=Path("search_out"), help="output folder (default search_out)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (other --test-images/--test-n/--test-n0 keep the search and certify the test images again)")
    g = p.add_argument_group("search")
    g.add_argument("--episodes", type=positive_int, default=60, help="DDPG episodes, warm-up included (default 60)")
    g.add_argument("--warmup", type=nonneg_int, default=20, help="random warm-up episodes (default 20)")
    g.add_argument("--hidden", type=positive_int, default=300, help="actor/critic hidden width (default 300)")
    g.add_argument("--lr-actor", type=positive_float, default=1e-3, help="actor learning rate (default 1e-3; HAQ 1e-4)")
    g.add_argument("--delta-decay", type=fraction, default=0.95,
                   help="exploration decay per episode after warm-up (default 0.95; HAQ 0.99 over ~600 episodes)")
    g.add_argument("--baselines", default="uniform,greedy,random", help="comma list, or 'none'")
    g.add_argument("--random-trials", type=positive_int, default=30, help="policies tried by random search (default 30)")
    g.add_argument("--constraint", choices=["wall", "penalty"], default="wall",
                   help="enforce the budget (HAQ's wall, default) or penalise going over it")
    g.add_argument("--penalty", type=nonneg_float, default=1.0, help="penalty per unit of relative overshoot")
    g.add_argument("--min-bits", type=search_bits, default=2, help="smallest bit width an action may choose (default 2)")
    g.add_argument("--max-bits", type=search_bits, default=8, help="largest bit width considered")
    g.add_argument("--finetune-steps", type=nonneg_int, default=0,
                   help="noise-augmented fine-tuning steps per evaluated policy (default 0: off)")
    g.add_argument("--finetune-lr", type=positive_float, default=1e-4, help="learning rate of the optional noise-augmented fine-tuning")
    g.add_argument("--final-top-k", type=nonneg_int, default=5,
                   help="final race: re-evaluate the K best distinct policies of DDPG and random search (and "
                        "greedy's last-step candidates) with --final-n samples on the reward images and keep the "
                        "best (default 5; 0: no race)")
    g.add_argument("--final-n", type=positive_int, default=None,
                   help="samples per reward image in the final race (default min(4 x --reward-n, --float-n); "
                        "at most --float-n)")
    g.add_argument("--final-tolerance", type=nonneg_float, default=0.01,
                   help="the race also takes every policy within this of the best search reward (at most "
                        "max(K, 10) policies; default 0.01)")
    r = p.add_argument_group("reward and test certification")
    r.add_argument("--sigma", type=positive_float, default=0.25, help="smoothing noise (default 0.25)")
    r.add_argument("--reward-images", type=positive_int, default=100, help="held-out images used for the reward")
    r.add_argument("--reward-n", type=positive_int, default=128, help="quantized-copy samples per reward image (default 128)")
    r.add_argument("--float-n", type=positive_int, default=1000, help="float certificate samples per reward image")
    r.add_argument("--n0", type=positive_int, default=100, help="selection samples of the float certificates")
    r.add_argument("--alpha", type=probability, default=0.001, help="failure probability of each smoothing certificate")
    r.add_argument("--alpha-q", type=probability, default=0.001, help="failure probability of the disagreement bound")
    r.add_argument("--reward-radius", type=nonneg_float, default=0.25, help="radius of the certified accuracy in the reward")
    r.add_argument("--acr-weight", type=unit_interval, default=0.5, help="weight of ACR (vs certified accuracy) in the reward")
    r.add_argument("--test-images", type=positive_int, default=200, help="images for the final evaluation of the chosen policies")
    r.add_argument("--test-n", type=positive_int, default=500, help="samples per test image (from scratch)")
    r.add_argument("--test-n0", type=positive_int, default=64, help="selection samples per image in the final evaluation")
    r.add_argument("--no-test", action="store_true", help="skip the final test certification and the report")
    r.add_argument("--formal", action="store_true",
                   help="formal reward: proved label invariance under the rounding boxes (small models; weights only)")
    r.add_argument("--formal-timeout", type=positive_float, default=10.0, help="seconds per verification query")
    d = p.add_argument_group("data and execution")
    d.add_argument("--inputs", type=Path, help=".npy inputs (reward images first, then test images)")
    d.add_argument("--labels", type=Path, help=".npy integer labels for --inputs")
    d.add_argument("--train-inputs", type=Path, help=".npy training inputs (calibration, fine-tuning)")
    d.add_argument("--train-labels", type=Path, help="labels (.npy) for the fine-tuning images")
    d.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    d.add_argument("--batch", type=positive_int, default=1000, help="forward-pass batch size")
    d.add_argument("--seed", type=int, default=0, help="seed for every random choice (repeatable runs)")
    d.add_argument("--timeout", type=positive_float, help="wall-clock limit of the search in seconds")
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.add_argument("--quiet", action="store_true", help="no progress output")
    add_parallel_args(p)  # the reward's work as Ray tasks (--formal: one image each; sampled: see reward_jobs)


def run(args: argparse.Namespace) -> int:
    """Run ``paramverify search``; 0 done, 2 input error, 130 interrupted."""
    try:
        return _run(args)
    except ParamVerifyError as exc:
        print(f"paramverify search: error: {exc}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace) -> Any:
    from paramverify.search.pipeline import SearchSettings

    names = [] if args.baselines.strip().lower() == "none" else [b.strip() for b in args.baselines.split(",") if b.strip()]
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError("--device cuda requested but torch.cuda.is_available() is False; use --device cpu")
    if args.alpha + args.alpha_q >= 1:
        raise SpecError("alpha-q", f"alpha + alpha_q = {args.alpha + args.alpha_q:g} leaves no confidence "
                        "(each reward certificate holds with 1 - alpha - alpha_q)", "use smaller failure probabilities, e.g. 0.001 each")
    return SearchSettings(
        sigma=args.sigma, episodes=args.episodes, warmup=args.warmup, hidden=args.hidden, lr_actor=args.lr_actor,
        delta_decay=args.delta_decay, baselines=tuple(names),
        random_trials=args.random_trials, constraint=args.constraint, penalty=args.penalty, min_bits=args.min_bits,
        max_bits=args.max_bits, reward_images=args.reward_images, reward_n=args.reward_n, float_n=args.float_n,
        n0=args.n0, alpha=args.alpha, alpha_q=args.alpha_q, reward_radius=args.reward_radius,
        acr_weight=args.acr_weight, test_images=args.test_images, test_n=args.test_n, test_n0=args.test_n0,
        finetune_steps=args.finetune_steps, finetune_lr=args.finetune_lr, final_top_k=args.final_top_k,
        final_n=args.final_n, final_tolerance=args.final_tolerance, formal=args.formal,
        formal_timeout=args.formal_timeout, device=args.device, batch=args.batch, seed=args.seed,
    )


def _run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("the search needs torch: pip install 'paramverify[smooth]'") from exc
    from paramverify.options import Options
    from paramverify.progress import ConsoleProgress
    from paramverify.search.formal import FormalEvaluator
    from paramverify.search.layers import layer_infos
    from paramverify.search.data import resolve_data
    from paramverify.search.pipeline import SearchSession
    from paramverify.search.space import BitRange, Budget
    from paramverify.smoothing.onnx_torch import load_onnx

    if not args.model.is_file():
        raise SpecError("model", f"{args.model} does not exist", "pass the path of a .onnx file")
    check_output_folder(args.out, "out")  # before the float certificates, not after the search
    if parallel_config(args).enabled and not args.formal and args.device != "cpu":
        raise SpecError("workers", "the sampled reward's Ray tasks run on the workers' CPUs, not on --device " + args.device,
                        "add --device cpu or drop --workers/--ray-address")
    settings = _settings(args)
    model = load_onnx(args.model)
    data = resolve_data(model.input_shape, settings.reward_images, settings.test_images, args.inputs, args.labels,
                        args.train_inputs, args.train_labels)
    # validate the budget before the float certificates are computed
    Budget(layer_infos(model, torch.from_numpy(data.reward_x[:1])), args.budget,
           BitRange(settings.min_bits, settings.max_bits), quantize_activations=not settings.formal)
    from paramverify.argtypes import wall_budget

    deadline = Options(timeout_s=wall_budget(args), stop=getattr(args, "stop", None)).deadline()
    with ConsoleProgress(enabled=not args.quiet) as bar, contextlib.ExitStack() as stack:
        try:
            pool = stack.enter_context(open_pool(parallel_config(args)))
            session = SearchSession(args.model, settings, data, args.out, resume=args.resume, progress=bar.update,
                                    pool=pool)  # the sampled reward's float certificates and labels as tasks
            for ev in (session.evaluator, getattr(session.test, "evaluator", None)):
                if isinstance(ev, FormalEvaluator):
                    ev.pool = pool  # the formal reward's images as tasks
            budget = session.budget(args.budget)  # validates the budget before the search
            outcome = session.run_budget(budget.fraction, deadline)
        except KeyboardInterrupt:
            bar.note("interrupted; the checkpoint of the last finished step is kept")
            return 130
        if outcome.interrupted:
            finishing(args)  # a second signal cannot cut the writing short
            session.write_outputs([outcome], test=False)
            bar.note(f"interrupted: best policy so far in {args.out / 'policy.json'}; continue with --resume")
            if args.json:
                sys.stdout.write(json.dumps({"schema": SCHEMA_VERSION, "interrupted": True, "out": str(args.out)}) + "\n")
            return 130
        try:
            report = session.write_outputs([outcome], test=not args.no_test)
        except KeyboardInterrupt:
            bar.note("interrupted during the final certification; rerun with --resume to finish")
            return 130
    summary = _summary(report, args.out)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    elif not args.quiet:
        print(json.dumps(summary, indent=1))
    return 0


def _summary(report: dict[str, Any], out: Path) -> dict[str, Any]:
    b = report["budgets"][0]
    ddpg = b["methods"].get("ddpg", {})
    s: dict[str, Any] = {"schema": SCHEMA_VERSION, "out": str(out), "budget": b["budget"], "complete": b["complete"],
                         "policy": str(out / b.get("policy_file", "policy.json")),
                         "bits": ddpg.get("best", {}).get("policy", {}).get("weight_bits"),
                         "bitops_fraction": ddpg.get("best", {}).get("bitops_fraction"),
                         "certifications": report["certifications"]}
    if "float" in report:
        s["float"] = report["float"]
    for row in b.get("rows", []):
        s.setdefault("test", {})[row["method"]] = row["test"]
    if "qdq" in b:
        s["qdq"] = {k: b["qdq"][k] for k in ("path", "max_abs_diff", "label_agreement")}
    return s


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m paramverify.search.cli search MODEL.onnx --budget F``."""
    parser = argparse.ArgumentParser(prog="paramverify")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
