"""One compression run for a teacher: the agent (fine-tuned from a meta-trained agent, or
learning on this task alone), the baselines with the same number of evaluations, the final
test on held-out images, the chosen sub-network as ONNX, and the report.

Everything is checkpointed in the output folder after each evaluation (``checkpoint.pt``:
the agent run; ``baselines.json``: the baselines' evaluations), so ``resume=True`` continues
an interrupted run and ends where the uninterrupted run ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paramverify.compress.agent import SCREENED, AgentRun, default_ddpg
from paramverify.compress.baselines import BASELINES, run_baseline
from paramverify.compress.env import CompressEnv, EnvConfig, Evaluation
from paramverify.compress.onnxio import read_teacher, save_onnx
from paramverify.compress.report import (
    arch_table,
    best,
    paired_test,
    pareto_front,
    plot_pareto,
)
from paramverify.compress.tasks import Task, data_for_shape, load_task_data
from paramverify.errors import SpecError, check
from paramverify.fileio import write_json, write_text
from paramverify.options import Deadline

Progress = Callable[[str], None]
SCHEMA = "paramverify.compress/1"


@dataclass(frozen=True)
class CompressSettings:
    budget: float
    task: Task
    episodes: int = 20
    warmup: int = 8
    baselines: tuple[str, ...] = BASELINES
    env: EnvConfig = field(default_factory=EnvConfig)
    eval_images: int = 300
    test_images: int = 300
    seed: int = 0
    agent: str | None = None
    screen: int = SCREENED

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise SpecError("episodes", f"must be >= 1, got {self.episodes}")
        for b in self.baselines:
            if b not in BASELINES:
                raise SpecError("baselines", f"unknown baseline {b!r}", f"use some of {', '.join(BASELINES)} or none")


class CompressSession:
    """See the module docstring; ``run`` returns True when every evaluation ran."""

    def __init__(self, teacher_path: Path, settings: CompressSettings, out: Path, resume: bool = False,
                 progress: Progress | None = None) -> None:
        self.settings, self.out, self.progress = settings, out, progress or (lambda _m: None)
        self.teacher = read_teacher(teacher_path)
        self.data = load_task_data(data_for_shape(self.teacher.arch.in_shape), settings.eval_images, settings.test_images)
        if self.data.classes != self.teacher.arch.classes:
            raise SpecError("teacher", f"has {self.teacher.arch.classes} classes, {self.data.name} has {self.data.classes}")
        out.mkdir(parents=True, exist_ok=True)
        self.settings_file = out / "settings.json"
        js = _settings_json(settings, teacher_path)
        if resume and self.settings_file.is_file():
            old = json.loads(self.settings_file.read_text())
            if {k: v for k, v in old.items() if k != "teacher"} != {k: v for k, v in js.items() if k != "teacher"}:
                raise SpecError("resume", f"the run in {out} used other settings", "repeat its flags or use a new --out")
        elif not resume and (out / "checkpoint.pt").exists():
            raise SpecError("out", f"{out} holds a run already", "add --resume to continue it, or choose a new --out")
        write_json(self.settings_file, js, indent=1)
        self.progress(f"teacher {self.teacher.arch.label()}: attacking it on the evaluation images ...")
        self.env = CompressEnv(self.teacher, settings.task, self.data, replace(settings.env, budget=settings.budget))
        plan = [("finetune" if settings.agent else "meta", settings.episodes)]
        self.agent_run = AgentRun(default_ddpg(settings.warmup), settings.seed, plan, out / "checkpoint.pt",
                                  screen=settings.screen)
        if settings.agent:
            self.agent_run.load_agent(Path(settings.agent))
        self.baseline_evals: dict[str, list[Evaluation]] = {b: [] for b in settings.baselines}
        if resume and (out / "checkpoint.pt").is_file():
            self.agent_run.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=False))
            if (out / "baselines.json").is_file():
                done = json.loads((out / "baselines.json").read_text())
                self.baseline_evals.update({k: [Evaluation.from_json(e) for e in v] for k, v in done.items()
                                            if k in self.baseline_evals})

    def run(self, deadline: Deadline | None = None, pool: Any = None) -> bool:
        """Every evaluation; ``pool`` (a RayPool or None): the baselines' candidates and the
        certified reward's images as tasks (a lost cluster raises ClusterError; what finished
        is checkpointed)."""
        self.env.pool = pool
        try:
            return self._run(deadline, pool)
        finally:
            self.env.pool = None

    def _run(self, deadline: Deadline | None, pool: Any) -> bool:
        if not self.agent_run.run(lambda _p: [self.env], deadline, self.progress):
            return False
        n = self.settings.episodes
        for name in self.settings.baselines:
            done = self.baseline_evals[name]

            def hook(ev: Evaluation, name: str = name) -> None:
                self.baseline_evals[name].append(ev)
                write_json(self.out / "baselines.json", {k: [e.to_json() for e in v] for k, v in self.baseline_evals.items()})
                self.progress(f"{name} {len(self.baseline_evals[name])}/{n}: reward {ev.reward:.3f} "
                              f"({ev.adv_acc:.3f} adv at {ev.macs_fraction:.1%} MACs)")
                if deadline is not None and deadline.expired():
                    raise _Stopped

            try:
                run_baseline(name, self.env, n, self.settings.seed, hook, done=list(done), pool=pool)
            except _Stopped:
                return False
        return True

    def methods(self) -> dict[str, list[Evaluation]]:
        phase = "finetune" if self.settings.agent else "meta"
        return {"agent": self.agent_run.evaluations(phase), **self.baseline_evals}

    def write_outputs(self, complete: bool = True) -> dict[str, Any]:
        """The test comparison, the chosen sub-network (ONNX), report.json / report.md / pareto.png."""
        methods = self.methods()
        bests = {k: best(v) for k, v in methods.items()}
        chosen_name, chosen = max(((k, v) for k, v in bests.items() if v is not None), key=lambda kv: kv[1].reward,
                                  default=(None, None))
        env = self.env
        rep: dict[str, Any] = {
            "schema": SCHEMA, "complete": complete, "settings": json.loads(self.settings_file.read_text()),
            "teacher": {"arch": self.teacher.arch.to_json(), "macs": env.teacher_macs, "clean_acc": env.teacher_clean,
                        "adv_acc": env.teacher_adv, "cert_acc": env.teacher_cert, "lipschitz_estimate": env.lipschitz},
            "budget_macs": env.max_macs, "methods": {}, "pareto": [e.to_json() for e in pareto_front([e for v in methods.values() for e in v])],
        }
        test: dict[str, np.ndarray] = {}
        for name, evals in methods.items():
            b = bests[name]
            entry: dict[str, Any] = {"evaluations": len(evals), "history": [e.to_json() for e in evals],
                                     "best": b.to_json() if b else None}
            if name == "agent":
                entry["warmup_evaluations"] = sum(1 for h in self.agent_run.history if h.warmup)
                entry["best_from_warmup"] = bool(b is not None and any(h.warmup and h.evaluation == b for h in self.agent_run.history))
            if b is not None and complete:
                clean, adv = env.test_correct(b.choices)
                test[name] = adv
                entry["test"] = {"images": len(adv), "clean_acc": float(clean.mean()), "adv_acc": float(adv.mean())}
            rep["methods"][name] = entry
        if "agent" in test:
            for name, correct in test.items():
                if name != "agent":
                    rep["methods"][name]["paired_vs_agent"] = paired_test(test["agent"], correct)
        if chosen is not None:
            net = env.build(chosen.choices)
            path = save_onnx(net, self.out / "subnet.onnx")
            rep["chosen"] = {"method": chosen_name, "onnx": str(path), **chosen.to_json(),
                             "replay_max_abs_diff": _replay(path, net, self.data.test_x[:64])}
            rep["chosen_table"] = arch_table(net.arch, self.teacher.arch)
        write_json(self.out / "report.json", rep, indent=1)
        ylabel = "certified accuracy" if self.settings.env.reward == "certified" else "adversarial accuracy (eval)"
        plot_pareto(methods, env.teacher_acc, ylabel, env.config.budget, self.out / "pareto.png")
        write_text(self.out / "report.md", _markdown(rep))
        return rep


class _Stopped(Exception):
    """The deadline passed during a baseline (the finished evaluations are saved)."""


def _replay(path: Path, net: Any, x: np.ndarray) -> float:
    """Largest |onnxruntime - torch| logit difference of the exported sub-network on ``x``."""
    import onnxruntime as ort

    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max())
    check(diff < 1e-3, f"exported sub-network differs from torch by {diff}")
    return diff


def _settings_json(s: CompressSettings, teacher: Path) -> dict[str, Any]:
    d = asdict(s)
    d["baselines"] = list(s.baselines)
    d["teacher"] = str(teacher)
    return json.loads(json.dumps(d))


def _markdown(rep: dict[str, Any]) -> str:
    t = rep["teacher"]
    lines = ["# Compression report", "",
             (f"Teacher: {t['macs']} MACs, clean {t['clean_acc']:.3f}, adversarial {t['adv_acc']:.3f} (evaluation images); "
              f"budget {rep['budget_macs']} MACs."), "",
             "| method | evaluations | best reward | MACs fraction | eval adv acc | test adv acc | only agent / only method (p) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in rep["methods"].items():
        b = m["best"]
        if b is None:
            lines.append(f"| {name} | {m['evaluations']} | - | - | - | - | - |")
            continue
        tst = f"{m['test']['adv_acc']:.3f}" if "test" in m else "-"
        pv = m.get("paired_vs_agent")
        pair = f"{pv['only_a']} / {pv['only_b']} ({pv['p_value']:.3g})" if pv else "-"
        lines.append(f"| {name} | {m['evaluations']} | {b['reward']:.4f} | {b['macs_fraction']:.3f} | {b['adv_acc']:.3f} | {tst} | {pair} |")
    if "chosen" in rep:
        c = rep["chosen"]
        lines += ["", (f"Chosen: {c['method']}, {c['macs']} MACs ({c['macs_fraction']:.1%}), written to {c['onnx']} "
                       f"(onnxruntime vs torch: {c['replay_max_abs_diff']:.2e})."), "", rep["chosen_table"]]
    if not rep["complete"]:
        lines += ["", "The run was cut short (time limit or signal): continue it with --resume."]
    return "\n".join(lines) + "\n"
