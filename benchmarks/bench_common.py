"""Pieces every benchmark script shares: where the numbers were taken, and when a bracket closed."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def machine_info() -> dict[str, Any]:
    """Where and under what load the numbers were taken (other jobs on the machine inflate wall times)."""
    return {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
            "numpy": np.__version__, "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()]}


def write_results(path: str | Path, data: dict[str, Any], indent: int = 1) -> Path:
    """Write a benchmark's JSON (creating its folder); numpy scalars are written as floats."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=indent, default=float) + "\n", encoding="utf-8")
    return out


class RatioClock:
    """A progress sink that notes when the bracket first reaches upper <= ratio * lower."""

    def __init__(self, ratio: float) -> None:
        self.ratio, self.t0, self.reached_s = ratio, time.perf_counter(), None

    def update(self, message: str, lower: float | None = None, upper: float | None = None) -> None:
        if self.reached_s is None and lower is not None and upper is not None and 0 < lower and upper <= self.ratio * lower:
            self.reached_s = time.perf_counter() - self.t0
