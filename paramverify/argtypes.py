"""``argparse`` ``type=`` functions that refuse meaningless numbers up front.

``type=float`` happily accepts ``nan``, ``inf`` and negative timeouts, which
then run silently to a meaningless end.  These converters raise
:class:`argparse.ArgumentTypeError` with what was expected and an example, so
argparse prints ``error: argument --timeout: must be a finite number > 0,
got 'nan'`` and exits 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


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
