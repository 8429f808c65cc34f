"""Make ``int8_models`` and ``torch_threads`` importable; one torch thread per test."""

from __future__ import annotations

import sys
from pathlib import Path

for _p in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from torch_threads import single_torch_thread  # noqa: F401  (autouse fixture)
