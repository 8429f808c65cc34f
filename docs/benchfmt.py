"""Formatting helpers of docs/benchmarks.md, shared by docs/gen_benchmarks.py and the section
modules beside it (gen_benchmarks_*.py, gen_standard.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: the script that writes a result file, where it is not benchmarks/bench_NAME.py
SCRIPT = {"smoothing_incremental_N20000": "python benchmarks/bench_smoothing.py --skip-throughput",
          "soundness_extreme": "python benchmarks/bench_soundness.py --tier extreme",
          "int8_penalized": "python benchmarks/train_int8_cnn.py --penalty 3 && python benchmarks/bench_int8.py --variant penalized",
          "int8_penalized_from20": "python benchmarks/bench_int8.py --variant penalized --first 20"}
#: what a malformed JSON file raises in a section; it renders as a "not measured" line instead
ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError)


def load(name: str) -> Any:
    try:
        return json.loads((RESULTS / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def get(d: Any, *keys: Any, default: Any = None) -> Any:
    for k in keys:
        if (isinstance(d, dict) and k in d) or (isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d)):
            d = d[k]
        else:
            return default
    return default if d is None else d


def isnum(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def num(x: Any, fmt: str = ".3g", none: str = "n/a") -> str:
    return format(x, fmt) if isnum(x) else none


def span(values: Iterable[Any], fmt: str = ".2f") -> str:
    vals = [v for v in values if isnum(v)]
    if not vals:
        return "n/a"
    lo, hi = format(min(vals), fmt), format(max(vals), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def verdict(ok: Any) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "FAIL")


def pair(a: Any, b: Any, fmt: str = ".2f") -> str:
    return f"{num(a, fmt)} / {num(b, fmt)}"


def cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def guarded(name: str, fn: Callable[[Any], str], data: Any) -> str:
    """One section from one JSON file, or a "not measured" line when the file or a field is missing."""
    if data is None:
        script = SCRIPT.get(name, f"python benchmarks/bench_{name}.py")
        return f"Not measured: `benchmarks/results/{name}.json` has not been produced; run `{script}`."
    try:
        return fn(data)
    except ERRORS as exc:
        return f"Not measured: `benchmarks/results/{name}.json` lacks a field this page needs ({type(exc).__name__}: {exc})."
