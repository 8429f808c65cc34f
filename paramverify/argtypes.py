"""Command-line arguments: ``argparse`` ``type=`` functions that refuse meaningless
numbers up front, the parsers of vectors, domains and name lists, and the
``--timeout`` budget.  Shared by every command (``paramverify.cli``, ``bits``,
``compare``, ``search``), so no library module needs to import the CLI.

``type=float`` happily accepts ``nan``, ``inf`` and negative timeouts, which
then run silently to a meaningless end.  These converters raise
:class:`argparse.ArgumentTypeError` with what was expected and an example, so
argparse prints ``error: argument --timeout: must be a finite number > 0,
got 'nan'`` and exits 2.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

import numpy as np

from paramverify.errors import SpecError


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def finite_float(text: str) -> float:
    """Any finite number (a decision level, a margin)."""
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def nonneg_float(text: str) -> float:
    """A finite number >= 0 (a tolerance, an epsilon, a delta)."""
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a timeout in seconds, a noise level)."""
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A probability strictly between 0 and 1 (a failure probability alpha)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a probability strictly between 0 and 1, got {text!r} (e.g. 0.001)")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1] (a size budget as a fraction of the float model)."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text!r} (e.g. 0.25)")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1] (a weight between two terms)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r} (e.g. 0.5)")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (a sample count, a batch size)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    """A whole number >= 0 (warm-up episodes, fine-tuning steps)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number in ``lo..hi`` (a bit width)."""

    def convert(text: str) -> int:
        value = _integer(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be a whole number in {lo}..{hi}, got {text!r}")
        return value

    convert.__name__ = f"int_{lo}_{hi}"
    return convert


#: bit widths a quantization scheme may use (uniform integer grids up to int32)
bit_width = int_range(2, 32)


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


def wall_budget(args: argparse.Namespace, seconds: float | None = None) -> float | None:
    """What is left of ``--timeout`` (or ``seconds``) for the engine: the clock starts when the
    command starts (model loading and imports count), less a short reserve for the report."""
    total = args.timeout if seconds is None else seconds
    if total is None:
        return None
    used = time.monotonic() - getattr(args, "started", time.monotonic())
    return max(0.0, total - used - min(0.5, 0.1 * total))
