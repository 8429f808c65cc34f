"""Soundness invariants survive ``python -O`` (issue 11, item 2).

``assert`` statements vanish under ``-O``; every invariant whose failure would
make a result unsound is a :func:`paramverify.errors.check` (an
:class:`InternalError`) instead, and input the user controls gets a proper
``ModelError`` / ``SpecError``.  The subprocess test runs the checks under
``-O``; the source scan keeps new ``assert`` statements out of the library
(type narrowing for mypy, ``assert x is not None`` / ``isinstance``, may stay).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from bounds_helpers import linear_1d

from paramverify import api
from paramverify.bounds.interval import Interval, intersect
from paramverify.errors import InternalError, ModelError, SpecError, check
from paramverify.ir import load_model
from paramverify.results import Bracket

ROOT = Path(__file__).resolve().parents[2]

_UNDER_O = r"""
import sys
import numpy as np
assert False, "unreachable under -O"  # proves the asserts are stripped
from paramverify.errors import InternalError, ModelError, check
from paramverify.bounds.interval import Interval, intersect
from paramverify.results import Bracket
from paramverify.specs import ParamBox
fired = []
for name, fn in [
    ("check", lambda: check(False, "planted")),
    ("bracket", lambda: Bracket("eps", 2.0, 1.0, 0.0, "m", "upper")),
    ("bracket_nan", lambda: Bracket("eps", 0.0, float("nan"), 0.0, "m", "upper")),
    ("intersect", lambda: intersect(Interval(np.array([0.0]), np.array([1.0])), Interval(np.array([2.0]), np.array([3.0])))),
    ("box", lambda: ParamBox({"W": np.array([1.0])}, {"W": np.array([2.0])}, {"W": np.array([1.0])})),
]:
    try:
        fn()
    except InternalError:
        fired.append(name)
try:
    ParamBox({"W": np.array([np.nan])}, {"W": np.array([np.nan])}, {"W": np.array([np.nan])})
except ModelError as e:
    fired.append("nan_weight" if "'W'" in str(e) else "nan_weight_unnamed")
print(",".join(fired))
"""


def test_soundness_checks_fire_under_python_O() -> None:
    out = subprocess.run([sys.executable, "-O", "-c", _UNDER_O], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(",") == ["check", "bracket", "bracket_nan", "intersect", "box", "nan_weight"]


def test_check_raises_internal_error() -> None:
    check(True, "fine")
    with pytest.raises(InternalError, match="planted"):
        check(False, "planted")
    with pytest.raises(InternalError, match="inverted bracket"):
        Bracket("eps", 2.0, 1.0, 0.0, "m", "upper")
    with pytest.raises(InternalError, match="empty intersection"):
        intersect(Interval(np.array([0.0]), np.array([1.0])), Interval(np.array([2.0]), np.array([3.0])))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_is_a_model_error_naming_the_tensor(bad: float) -> None:
    # the loader refuses it first; a Graph built around the loader is refused by the box
    with pytest.raises(ModelError, match="'W'"):
        load_model(linear_1d(bad, 0.0))
    g = load_model(linear_1d(1.0, 0.0))
    g = dataclasses.replace(g, initializers=MappingProxyType({**g.initializers, "W": np.full_like(g.initializers["W"], bad)}))
    with pytest.raises(ModelError, match="'W'"):
        api.make_problem(g, delta=0.01, x0=[0.5])


def test_overflowing_perturbation_is_a_spec_error() -> None:
    g = load_model(linear_1d(3e38, 0.0))
    with pytest.raises(SpecError, match="'W'"):
        api.make_problem(g, relative=1e300, x0=[0.5])


def _is_narrowing(test: ast.expr) -> bool:
    """``x is not None``, ``isinstance(...)`` and ``and``-chains of them (for mypy only)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return all(_is_narrowing(v) for v in test.values)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot):
        return isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None
    return isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"


def test_no_soundness_asserts_in_the_library() -> None:
    found = []
    for pkg in ("paramverify", "encoders"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Assert) and not _is_narrowing(node.test):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name)
                        and node.exc.func.id == "AssertionError"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} (raise AssertionError)")
    assert found == [], "use paramverify.errors.check (or a ModelError/SpecError for input) instead of assert: " + ", ".join(found)
