"""Engine lookup by name; each backend guards its own optional imports.

``bounds`` (the default) is sound bound propagation with branch and bound;
``z3`` is exact SMT over the rationals; ``dreal`` is delta-complete SMT and
only available where the ``dreal`` package (and its IBEX library) imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType

from paramverify.errors import BackendUnavailableError, SpecError
from paramverify.properties import Engine

#: name -> (module, class); modules are imported only when asked for
ENGINES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "bounds": ("paramverify.bounds.engine", "BoundsEngine"),
        "z3": ("encoders.z3_backend", "Z3Engine"),
        "dreal": ("encoders.dreal_backend", "DRealEngine"),
    }
)


def get_engine(name: str) -> Engine:
    """Instantiate the engine called ``name``.

    Raises :class:`SpecError` for an unknown name and
    :class:`BackendUnavailableError` when its solver is not installed.
    """
    if name not in ENGINES:
        raise SpecError("backend", f"unknown backend {name!r}", f"use one of {', '.join(ENGINES)}")
    module, cls = ENGINES[name]
    engine_cls = getattr(importlib.import_module(module), cls)
    if not engine_cls.available():
        raise BackendUnavailableError(f"backend '{name}' is not available: {engine_cls.unavailable_reason()}")
    return engine_cls()


def available_engines() -> tuple[str, ...]:
    out = []
    for name, (module, cls) in ENGINES.items():
        try:
            if getattr(importlib.import_module(module), cls).available():
                out.append(name)
        except ImportError:
            continue
    return tuple(out)
