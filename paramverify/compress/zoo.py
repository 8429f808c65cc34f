"""Built-in teachers and the meta-training task buffer, with a small command line.

    python -m paramverify.compress.zoo teacher NAME --out TEACHER.onnx [--steps N] [--eps E] [--seed S]
    python -m paramverify.compress.zoo meta --out AGENT.pt [--episodes N] [--warmup W] [--seed S]

``teacher`` trains one of :data:`TEACHERS` adversarially (PGD-k) on its data set and writes it
as ONNX with the stage metadata (a teacher for ``paramverify compress``); ``meta``
meta-trains the agent over :func:`task_buffer` and writes it for ``paramverify compress
--agent``.  Teachers are cached in ``--cache`` (default: next to ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from paramverify.compress.arch import ArchSpec, StageNet, StageSpec
from paramverify.compress.env import CompressEnv, EnvConfig
from paramverify.compress.onnxio import read_teacher, save_onnx
from paramverify.compress.tasks import Task, TaskData, load_task_data
from paramverify.compress.train import TrainConfig, train_teacher
from paramverify.errors import ParamVerifyError, SpecError

#: name -> (data set, stages (width, depth, stride))
TEACHERS: dict[str, tuple[str, tuple[tuple[int, int, int], ...]]] = {
    "digits-a": ("digits", ((16, 2, 1), (32, 2, 2), (64, 2, 2))),
    "digits-b": ("digits", ((24, 3, 1), (48, 2, 2))),
    "mnist14-a": ("mnist14", ((16, 2, 1), (32, 2, 2), (48, 2, 2))),
    "mnist14-b": ("mnist14", ((16, 3, 2), (32, 3, 2))),
    "mnist-a": ("mnist", ((16, 2, 2), (32, 2, 2), (64, 2, 2))),
}

#: meta-training buffer: (teacher, task); the held-out task of the benchmark is not in it
META_TASKS: tuple[tuple[str, Task], ...] = (
    ("digits-a", Task("digits", "pgd", 0.1)),
    ("digits-a", Task("digits", "square", 0.1)),
    ("digits-b", Task("digits", "pgd", 0.05)),
    ("digits-b", Task("digits", "pgd", 0.15)),
    ("mnist14-a", Task("mnist14", "pgd", 0.05)),
    ("mnist14-a", Task("mnist14", "square", 0.1)),
)
HELD_OUT: tuple[str, Task] = ("mnist14-b", Task("mnist14", "pgd", 0.1))
META_BUDGETS = (0.3, 0.5, 0.7)


def teacher_arch(name: str, data: TaskData) -> ArchSpec:
    if name not in TEACHERS:
        raise SpecError("teacher", f"unknown built-in teacher {name!r}", f"use one of {', '.join(TEACHERS)}")
    return ArchSpec(data.in_shape, data.classes, tuple(StageSpec(w, d, s) for w, d, s in TEACHERS[name][1]))


def get_teacher(name: str, task: Task, cfg: TrainConfig, cache: Path | None, seed: int = 0,
                data: TaskData | None = None) -> StageNet:
    """Built-in teacher ``name`` PGD-trained for ``task`` (read from ``cache`` when it is there)."""
    data = data or load_task_data(TEACHERS[name][0])
    path = None
    if cache is not None:
        path = cache / f"{name}_eps{task.eps:g}_k{task.train_steps}_s{cfg.steps}_seed{seed}.onnx"
        if path.is_file():
            return read_teacher(path)
    net = train_teacher(teacher_arch(name, data), data, replace(task, attack="pgd"), cfg, seed)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        save_onnx(net, path)
    return net


def task_buffer(env_cfg: EnvConfig, teacher_cfg: TrainConfig, cache: Path | None, eval_images: int = 200,
                tasks: tuple[tuple[str, Task], ...] = META_TASKS, budgets: tuple[float, ...] = META_BUDGETS,
                progress: Callable[[str], None] | None = None) -> list[CompressEnv]:
    """One environment per (teacher, task, budget) of the meta-training buffer, the task varying
    fastest (consecutive episodes see different tasks)."""
    items = []
    datas: dict[str, TaskData] = {}
    for i, (name, task) in enumerate(tasks):
        ds = TEACHERS[name][0]
        data = datas.setdefault(ds, load_task_data(ds, eval_images, eval_images))
        if progress is not None:
            progress(f"meta task {i + 1}/{len(tasks)}: teacher {name}, {task.label()}")
        items.append((get_teacher(name, task, teacher_cfg, cache, data=data), task, data))
    return [CompressEnv(teacher, task, data, replace(env_cfg, budget=b)) for b in budgets for teacher, task, data in items]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m paramverify.compress.zoo", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("teacher", help="train and write a built-in teacher")
    t.add_argument("name", choices=sorted(TEACHERS))
    t.add_argument("--out", type=Path, required=True, help="teacher ONNX to write")
    t.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    t.add_argument("--eps", type=float, default=0.1, help="PGD radius of the adversarial training (default 0.1)")
    t.add_argument("--seed", type=int, default=0, help="seed")
    m = sub.add_parser("meta", help="meta-train the agent over the task buffer")
    m.add_argument("--out", type=Path, required=True, help="agent file to write (for paramverify compress --agent)")
    m.add_argument("--episodes", type=int, default=180, help="meta-training episodes (default 180)")
    m.add_argument("--warmup", type=int, default=30, help="random warm-up episodes (default 30)")
    m.add_argument("--teacher-steps", type=int, default=600, help="training steps of each teacher (default 600)")
    m.add_argument("--finetune-steps", type=int, default=30, help="fine-tuning steps per sub-network (default 30)")
    m.add_argument("--cache", type=Path, help="teacher cache folder (default: next to --out)")
    m.add_argument("--seed", type=int, default=0, help="seed")
    args = p.parse_args(argv)
    try:
        if args.cmd == "teacher":
            data = load_task_data(TEACHERS[args.name][0])
            net = train_teacher(teacher_arch(args.name, data), data, Task(TEACHERS[args.name][0], eps=args.eps),
                                TrainConfig(steps=args.steps), args.seed)
            save_onnx(net, args.out)
            print(f"wrote {args.out}: {net.arch.label()}")
            return 0
        from paramverify.compress.agent import AgentRun, default_ddpg

        env_cfg = EnvConfig(finetune=TrainConfig(steps=args.finetune_steps), seed=args.seed)
        envs = task_buffer(env_cfg, TrainConfig(steps=args.teacher_steps), args.cache or args.out.parent / "teachers",
                           progress=print)
        run = AgentRun(default_ddpg(args.warmup), args.seed, [("meta", args.episodes)])
        run.run(lambda _p: envs, progress=print)
        run.save_agent(args.out)
        print(f"wrote {args.out}")
        return 0
    except ParamVerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
