"""The joint step of ``paramverify bits``: per-tensor widths that certify together.

Split from :mod:`paramverify.bits` (module size); every width returned here is one the
search's queries verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paramverify.bits import Width
    from paramverify.bits import _Search as Search


def _storage(widths: Mapping[str, int], sizes: Mapping[str, int]) -> int:
    return int(sum(sizes[n] * b for n, b in widths.items()))


def _raise_greedily(s: Search, joint: dict[str, int], sizes: Mapping[str, int], max_bits: int, steps: list[dict[str, Any]]) -> bool:
    """Raise one tensor by one bit at a time until ``joint`` (updated in place) certifies.

    A raise that certifies every input wins (the one costing the fewest
    storage bits); otherwise the raise with the largest gain, per storage
    bit, in the certified scaling of the joint box (a MaxDelta lower end,
    minimised over the inputs still failing).
    """
    failing = s.failing(joint)
    while failing:
        base = s.delta_score(joint, failing)
        certifying: list[tuple[int, str]] = []
        gains: list[tuple[float, int, str, float]] = []
        for n in (t for t in joint if joint[t] < max_bits):
            cand = dict(joint, **{n: joint[n] + 1})
            still = s.failing(cand, failing)
            if not still:
                certifying.append((sizes[n], n))
                continue
            score = s.delta_score(cand, still)
            gains.append(((score - base) / sizes[n], -joint[n], n, score))
        if certifying:
            best, score = min(certifying)[1], 1.0
        elif gains:
            _, _, best, score = max(gains)
        else:
            return False
        joint[best] += 1
        steps.append({"raised": best, "to_bits": joint[best], "certified_scaling": score})
        s.options.progress.update(f"bits: joint, raised {best} to {joint[best]}")
        failing = s.failing(joint, failing)
    return True


def _descend(s: Search, joint: dict[str, int], floor: Mapping[str, int], sizes: Mapping[str, int]) -> list[dict[str, Any]]:
    """Lower certified ``joint`` (in place) one bit at a time, largest tensors first, while it certifies."""
    steps = []
    for n in sorted(joint, key=lambda t: -sizes[t]):
        while joint[n] > floor[n]:
            cand = dict(joint, **{n: joint[n] - 1})
            if s.failing(cand):
                break
            joint[n] -= 1
            steps.append({"lowered": n, "to_bits": joint[n]})
    return steps


def joint_search(s: Search, per_tensor: Mapping[str, Width], uniform: Width, sizes: Mapping[str, int],
                  min_bits: int, max_bits: int) -> tuple[dict[str, int], bool, list[dict[str, Any]]]:
    """Per-tensor widths that certify together, with as little storage as the two starts below give.

    Start 1: the per-tensor widths (each a lower bound of any joint answer),
    raised greedily until the combination certifies, then lowered where it
    still certifies.  Start 2: the uniform width, lowered tensor by tensor.
    The cheaper certified result is returned.
    """
    floor = {n: (w.bits if w.bits is not None else max_bits) for n, w in per_tensor.items()}
    joint = dict(floor)
    steps: list[dict[str, Any]] = []
    ok = _raise_greedily(s, joint, sizes, max_bits, steps)
    if ok:
        steps += _descend(s, joint, floor, sizes)
    if uniform.bits is not None:
        alt = {n: max(uniform.bits, min_bits) for n in floor}
        alt_steps = [{"start": "uniform", "bits": uniform.bits}] + _descend(s, alt, floor, sizes)
        if not ok or _storage(alt, sizes) < _storage(joint, sizes):
            return alt, True, alt_steps
    return joint, ok, steps
