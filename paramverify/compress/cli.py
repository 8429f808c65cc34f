"""``paramverify compress``: robust compression search (RC-NAS style) for a stage-described teacher.

    paramverify compress TEACHER.onnx --budget FLOPS_FRACTION [--attack pgd|square] [--eps E]
        [--steps K] [--episodes N] [--agent AGENT.pt] [--save-agent AGENT.pt]
        [--baselines uniform,random,rule|none] [--out DIR] [--resume] [--reward adversarial|certified]
        [--timeout S] [--seed S] [--workers N | --ray-address ADDR] [--json] [--quiet]

Writes into ``--out``: ``subnet.onnx`` (the chosen sub-network, replayed on onnxruntime),
``report.json``, ``report.md`` (with the chosen architecture as a table), ``pareto.png``,
and a checkpoint after every evaluation.  With ``--workers`` / ``--ray-address`` the
baselines' candidates (one task each) and the certified reward's images run as Ray tasks
(:mod:`paramverify.compress.jobs`); the report is the same as in one process.  Exit codes:
0 done, 2 input error, 3 the Ray cluster was lost (what finished is written; ``--resume``
continues), 130 interrupted or cut short by ``--timeout`` (continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from paramverify.argtypes import (
    fraction,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
)
from paramverify.distributed.runtime import add_parallel_args, open_pool, parallel_config
from paramverify.errors import BackendUnavailableError, ClusterError, ParamVerifyError, SpecError
from paramverify.fileio import check_output_folder, check_output_path
from paramverify.interrupt import finishing


def add_subparser(subparsers: Any) -> None:
    """Add ``compress`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "compress", help="robust compression search (RC-NAS style): shrink a teacher CNN under a FLOPs budget",
        description="Shrink a stage-described teacher CNN (one written by paramverify.compress) stage by stage into "
        "a sub-network that stays adversarially robust under a FLOPs budget: an RL agent (DDPG; optionally "
        "meta-trained, see --agent) proposes widths, depths and block choices, each sub-network inherits the "
        "teacher's weights, is fine-tuned with PGD-k and attacked on held-out images; uniform scaling, random "
        "search and a deepen-before-widening rule get the same number of evaluations.",
    )
    p.add_argument("teacher", type=Path, help="teacher ONNX written by paramverify.compress (stage metadata)")
    p.add_argument("--budget", type=fraction, required=True, metavar="FRACTION",
                   help="FLOPs (MACs) budget as a fraction of the teacher's (e.g. 0.5)")
    p.add_argument("--out", type=Path, default=Path("compress_out"), help="output folder (default compress_out)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (same flags)")
    t = p.add_argument_group("task")
    t.add_argument("--attack", choices=["pgd", "square"], default="pgd", help="attack of the reward (default pgd, L-inf)")
    t.add_argument("--eps", type=positive_float, default=0.1, help="L-inf radius in pixel units of [0, 1] (default 0.1)")
    t.add_argument("--steps", type=positive_int, default=10, help="PGD steps of the reward's attack (Square: 10x queries; default 10)")
    t.add_argument("--train-steps", type=positive_int, default=5, help="PGD steps of the adversarial fine-tuning (default 5)")
    t.add_argument("--eval-images", type=positive_int, default=300, help="held-out images of the reward (default 300)")
    t.add_argument("--test-images", type=positive_int, default=300, help="further held-out images of the final test (default 300)")
    s = p.add_argument_group("search")
    s.add_argument("--episodes", type=positive_int, default=20, help="agent evaluations; every baseline gets as many (default 20)")
    s.add_argument("--warmup", type=nonneg_int, default=8, help="random warm-up episodes without --agent (default 8)")
    s.add_argument("--agent", type=Path, help="a meta-trained agent (--save-agent or python -m paramverify.compress.zoo meta): "
                   "fine-tune it on this task instead of learning from scratch")
    s.add_argument("--screen", type=positive_int, default=32,
                   help="with --agent: rollouts the agent's critic rates before each evaluation; the best untried one "
                        "is evaluated (default 32; 1 evaluates the actor's noisy rollout as drawn)")
    s.add_argument("--save-agent", type=Path, help="write the agent after the run (to fine-tune it on other tasks)")
    s.add_argument("--baselines", default="uniform,random,rule", help="comma list of uniform, random, rule, or 'none'")
    s.add_argument("--constraint", choices=["wall", "penalty"], default="wall",
                   help="budget as a wall (over-budget choices are narrowed until they fit; default) or a penalty")
    s.add_argument("--penalty", type=nonneg_float, default=2.0, help="penalty per unit of relative overshoot (with --constraint penalty)")
    s.add_argument("--flops-weight", type=nonneg_float, default=0.1, help="exponent of the compression ratio in the reward (default 0.1)")
    s.add_argument("--finetune-steps", type=nonneg_int, default=30, help="PGD-k fine-tuning steps per sub-network (default 30)")
    s.add_argument("--finetune-lr", type=positive_float, default=2e-3, help="Adam learning rate of the fine-tuning (default 2e-3)")
    s.add_argument("--batch", type=positive_int, default=64, help="fine-tuning batch size (default 64)")
    r = p.add_argument_group("certified reward")
    r.add_argument("--reward", choices=["adversarial", "certified"], default="adversarial",
                   help="adversarial accuracy (default) or randomized-smoothing certified accuracy (fine-tuning adds noise)")
    r.add_argument("--sigma", type=positive_float, default=0.25, help="smoothing noise of the certified reward (default 0.25)")
    r.add_argument("--cert-radius", type=nonneg_float, default=0.25, help="L2 radius of the certified accuracy (default 0.25)")
    r.add_argument("--cert-n", type=positive_int, default=200, help="samples per certificate (default 200)")
    d = p.add_argument_group("execution")
    d.add_argument("--seed", type=int, default=0, help="seed of every random choice (repeatable runs)")
    d.add_argument("--timeout", type=positive_float, help="wall-clock limit in seconds (then exit 130; --resume continues)")
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.add_argument("--quiet", action="store_true", help="no progress output")
    add_parallel_args(p)


def run(args: argparse.Namespace) -> int:
    """Run ``paramverify compress``; 0 done, 2 input error, 3 lost cluster, 130 interrupted."""
    try:
        return _run(args)
    except ParamVerifyError as exc:
        print(f"paramverify compress: error: {exc}", file=sys.stderr)
        return 2


def settings_from_args(args: argparse.Namespace) -> Any:
    from paramverify.compress.env import EnvConfig
    from paramverify.compress.session import CompressSettings
    from paramverify.compress.tasks import Task
    from paramverify.compress.train import TrainConfig

    names = () if args.baselines.strip().lower() == "none" else tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    if args.eps >= 1:
        raise SpecError("eps", f"must be below 1 (pixels lie in [0, 1]), got {args.eps}")
    noise = args.sigma if args.reward == "certified" else 0.0
    env = EnvConfig(budget=args.budget, constraint=args.constraint, penalty=args.penalty, flops_weight=args.flops_weight,
                    finetune=TrainConfig(steps=args.finetune_steps, batch=args.batch, lr=args.finetune_lr, noise_sigma=noise),
                    reward=args.reward, cert_sigma=args.sigma, cert_radius=args.cert_radius, cert_n=args.cert_n,
                    seed=args.seed)
    task = Task(attack=args.attack, eps=args.eps, steps=args.steps, train_steps=args.train_steps)
    return CompressSettings(budget=args.budget, task=task, episodes=args.episodes, warmup=args.warmup, baselines=names,
                            env=env, eval_images=args.eval_images, test_images=args.test_images, seed=args.seed,
                            agent=str(args.agent) if args.agent else None, screen=args.screen)


def _run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError("compress needs torch: pip install 'paramverify[smooth]'") from exc
    from paramverify.argtypes import wall_budget
    from paramverify.compress.session import CompressSession
    from paramverify.options import Options
    from paramverify.progress import ConsoleProgress

    if not args.teacher.is_file():
        raise SpecError("teacher", f"{args.teacher} does not exist", "pass the path of a .onnx file")
    if args.agent is not None and not args.agent.is_file():
        raise SpecError("agent", f"{args.agent} does not exist", "pass a file written with --save-agent")
    check_output_folder(args.out, "out")
    check_output_path(args.save_agent, "save-agent")
    settings = settings_from_args(args)
    config = parallel_config(args)
    deadline = Options(timeout_s=wall_budget(args), stop=getattr(args, "stop", None)).deadline()
    stopped: str | None = None
    with ConsoleProgress(enabled=not args.quiet) as bar:
        try:
            with open_pool(config) as pool:  # None without --workers/--ray-address (Ray not imported)
                session = CompressSession(args.teacher, settings, args.out, resume=args.resume, progress=bar.update)
                try:
                    complete = session.run(deadline, pool)
                except ClusterError as exc:  # the evaluations finished in order are checkpointed
                    complete, stopped = False, str(exc)
        except KeyboardInterrupt:
            bar.note("interrupted; the checkpoint of the last finished evaluation is kept (--resume continues)")
            return 130
        if not complete:
            finishing(args)
            session.write_outputs(complete=False)
            if stopped is not None:
                print(f"paramverify compress: error: {stopped}; the finished evaluations are in {args.out / 'report.json'} "
                      "(--resume continues)", file=sys.stderr)
            else:
                bar.note(f"stopped early: best so far in {args.out / 'report.json'}; continue with --resume")
            if args.json:
                sys.stdout.write(json.dumps({"out": str(args.out), "complete": False,
                                             **({"stopped": stopped} if stopped else {})}) + "\n")
            return 3 if stopped is not None else 130
        bar.update("testing the best sub-networks on the test images ...")
        finishing(args)
        report = session.write_outputs()
        if args.save_agent is not None:
            session.agent_run.save_agent(args.save_agent)
    summary = _summary(report, args.out)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    elif not args.quiet:
        print(json.dumps(summary, indent=1))
        if "chosen_table" in report:
            print(report["chosen_table"])
    return 0


def _summary(report: dict[str, Any], out: Path) -> dict[str, Any]:
    s: dict[str, Any] = {"schema": report["schema"], "out": str(out), "complete": report["complete"],
                         "teacher": {k: report["teacher"][k] for k in ("macs", "clean_acc", "adv_acc")}}
    if "chosen" in report:
        c = report["chosen"]
        s["chosen"] = {k: c[k] for k in ("method", "onnx", "arch", "macs", "macs_fraction", "adv_acc", "reward")}
    s["methods"] = {k: {"evaluations": m["evaluations"], "best_reward": m["best"]["reward"] if m["best"] else None,
                        "test_adv_acc": m.get("test", {}).get("adv_acc")} for k, m in report["methods"].items()}
    return s
