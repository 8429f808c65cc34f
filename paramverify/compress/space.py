"""The decisions of one episode and the state the agent sees before each.

An episode makes :data:`DECISIONS` choices per stage, one scalar action in [0, 1] each
(the DDPG agent of :mod:`paramverify.search.ddpg` acts that way): the width ratio (one of
:data:`~paramverify.compress.arch.WIDTH_RATIOS`), the blocks kept (1 .. teacher depth),
the convolution type, the activation and the normalisation.  A scalar ``a`` picks position
``min(n - 1, floor(a * n))`` of ``n`` options, ordered so that a larger action keeps more of
the teacher for every decision: widths and depths ascending, and for the block choices the
teacher's own choice last (the others in their listed order before it).  With one meaning
for "larger" across all five decisions, an actor that drifts towards 1 drifts towards the
teacher (narrowed onto the budget by the wall), not towards arbitrary block types.

:func:`project_to_budget` enforces the FLOPs budget as a wall (HAQ's way): while the
sub-network is over budget it narrows the stage that costs most (one width option at a
time; a stage at the narrowest width loses a block, then becomes depthwise-separable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paramverify.compress.arch import (
    ACTIVATIONS,
    CONV_TYPES,
    NORMS,
    WIDTH_RATIOS,
    ArchSpec,
    StageAction,
    StageSpec,
    apply_actions,
    arch_macs,
)
from paramverify.errors import SpecError

DECISIONS = ("width", "depth", "conv", "act", "norm")


def n_options(decision: int, teacher_stage: StageSpec) -> int:
    return (len(WIDTH_RATIOS), teacher_stage.depth, len(CONV_TYPES), len(ACTIVATIONS), len(NORMS))[decision]


def pick(a: float, n: int) -> int:
    return min(n - 1, max(0, math.floor(a * n)))


def option_order(decision: int, teacher_stage: StageSpec) -> list[int]:
    """Option indices by position (see the module docstring)."""
    n = n_options(decision, teacher_stage)
    if decision < 2:
        return list(range(n))
    keep = teacher_choice(teacher_stage)[decision]
    return [i for i in range(n) if i != keep] + [keep]


def decode(a: float, decision: int, teacher_stage: StageSpec) -> int:
    """The option index that action ``a`` picks."""
    order = option_order(decision, teacher_stage)
    return order[pick(a, len(order))]


def encode(option: int, decision: int, teacher_stage: StageSpec) -> float:
    """The action value in the middle of ``option``'s position."""
    order = option_order(decision, teacher_stage)
    return centre(order.index(option), len(order))


def centre(i: int, n: int) -> float:
    """The action value in the middle of option ``i`` of ``n``."""
    return (i + 0.5) / n


def to_action(choice: tuple[int, int, int, int, int]) -> StageAction:
    w, d, c, a, n = choice
    return StageAction(WIDTH_RATIOS[w], d + 1, CONV_TYPES[c], ACTIVATIONS[a], NORMS[n])


def to_actions(choices: list[tuple[int, int, int, int, int]]) -> tuple[StageAction, ...]:
    return tuple(to_action(c) for c in choices)


def teacher_choice(stage: StageSpec) -> tuple[int, int, int, int, int]:
    """The option indices that keep a teacher stage as it is."""
    return (len(WIDTH_RATIOS) - 1, stage.depth - 1, CONV_TYPES.index(stage.conv), ACTIVATIONS.index(stage.act),
            NORMS.index(stage.norm))


def smallest(teacher: ArchSpec) -> list[tuple[int, int, int, int, int]]:
    """The cheapest sub-network: narrowest, one block, depthwise-separable, no norm."""
    return [(0, 0, CONV_TYPES.index("dws"), ACTIVATIONS.index(s.act), NORMS.index("none")) for s in teacher.stages]


def project_to_budget(teacher: ArchSpec, choices: list[tuple[int, int, int, int, int]],
                      max_macs: int) -> list[tuple[int, int, int, int, int]]:
    """Shrink ``choices`` until the sub-network has at most ``max_macs`` (see the module docstring)."""
    choices = [tuple(c) for c in choices]  # type: ignore[misc]
    while arch_macs(apply_actions(teacher, to_actions(choices))) > max_macs:  # type: ignore[arg-type]
        costs = []
        for s in range(len(choices)):
            sub = apply_actions(teacher, to_actions(choices[:s + 1] + [teacher_choice(t) for t in teacher.stages[s + 1:]]))  # type: ignore[arg-type]
            prev = apply_actions(teacher, to_actions(choices[:s] + [teacher_choice(t) for t in teacher.stages[s:]]))  # type: ignore[arg-type]
            costs.append(arch_macs(sub) - arch_macs(prev) + arch_macs(sub) * 1e-9)
        for s in np.argsort(costs, kind="stable")[::-1]:
            w, d, c, a, n = choices[s]
            if w > 0:
                choices[s] = (w - 1, d, c, a, n)
            elif d > 0:
                choices[s] = (w, d - 1, c, a, n)
            elif CONV_TYPES[c] != "dws":
                choices[s] = (w, d, CONV_TYPES.index("dws"), a, n)
            elif NORMS[n] != "none":
                choices[s] = (w, d, c, a, NORMS.index("none"))
            else:
                continue
            break
        else:
            raise SpecError("budget", f"even the smallest sub-network has more than {max_macs} MACs",
                            "raise --budget")
    return choices  # type: ignore[return-value]


@dataclass(frozen=True)
class TaskFeatures:
    """What the state says about the task and the budget (see :func:`state`)."""

    attack: str
    eps: float
    steps: int
    data_mean: float
    data_std: float
    side: int
    budget: float
    lipschitz: float
    teacher_adv: float


STATE_DIM = 3 + 3 + 2 + len(DECISIONS) + len(DECISIONS) + 2 + 1 + 2 + 3 + 2 + 3


def state(teacher: ArchSpec, task: TaskFeatures, stage: int, decision: int,
          choices: list[tuple[int, ...]], current: list[int]) -> np.ndarray:
    """The agent's observation before decision ``decision`` of stage ``stage``: the teacher's
    stage (width, depth, stride and its block choices), the position, the choices so far in this stage and the
    previous one, the MACs fraction if the rest stayed as the teacher's, the task (attack,
    strength, data statistics) and the budget with the teacher's Lipschitz estimate."""
    t = teacher.stages[stage]
    n_stages = len(teacher.stages)
    onehot = np.zeros(len(DECISIONS))
    onehot[decision] = 1.0
    so_far = np.zeros(len(DECISIONS))
    for k, v in enumerate(current):
        so_far[k] = encode(v, k, t)
    prev = np.zeros(2)
    if stage > 0:
        p, pt = choices[stage - 1], teacher.stages[stage - 1]
        prev[:] = WIDTH_RATIOS[p[0]], (p[1] + 1) / pt.depth
    partial = list(choices) + [teacher_choice(s) for s in teacher.stages[len(choices):]]
    if current and decision > 0:
        partial[stage] = tuple(current) + teacher_choice(t)[len(current):]
    frac = arch_macs(apply_actions(teacher, to_actions(partial))) / arch_macs(teacher)  # type: ignore[arg-type]
    keep = teacher_choice(t)
    vec = [math.log2(t.width) / 8, t.depth / 4, t.stride / 2,
           *(keep[k] / max(1, n_options(k, t) - 1) for k in (2, 3, 4)),
           stage / max(1, n_stages - 1), n_stages / 4, *onehot, *so_far, *prev, frac,
           1.0 if task.attack == "pgd" else 0.0, 1.0 if task.attack == "square" else 0.0,
           task.eps * 5, task.steps / 20, task.side / 28,
           task.data_mean * 2, task.data_std * 2, task.budget, math.log1p(task.lipschitz) / 5, task.teacher_adv]
    return np.asarray(vec, dtype=np.float32)
