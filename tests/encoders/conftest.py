"""Make the shared test helpers (``tests/known_answers.py``, ``tests/netgen.py``) importable.

This directory has no ``__init__.py`` on purpose: a package named
``encoders`` here would shadow the real ``encoders`` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
