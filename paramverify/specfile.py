"""Spec files (JSON or YAML) and how they combine with command-line flags.

A spec file may give ``model``, ``perturbation``, ``x0`` or ``domain``, and
``level``.  Every setting lives in one place: a field given both in the file
and by the matching flag is an error (never a silent choice of one of them),
and a field of the wrong type is an error naming it (``"false"`` is not
``false``, ``"0:1"`` is not an interval).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from paramverify.errors import SpecError
from paramverify.specs import Perturbation, load_spec_file, numeric_array, perturbation_from_dict

SPEC_FIELDS = ("model", "perturbation", "x0", "domain", "level")
DEFAULT_LEVEL = 0.5


@dataclass(frozen=True, eq=False)
class SpecFile:
    """A validated spec file; absent fields are ``None``."""

    path: str
    model: str | None
    perturbation: Perturbation | None
    x0: np.ndarray | None
    domain: np.ndarray | None
    level: float | None


def read_spec_file(path: str | os.PathLike[str]) -> SpecFile:
    """Load and validate a spec file; each error names the offending field."""
    path = os.fspath(path)
    data = load_spec_file(path)
    unknown = sorted(set(data) - set(SPEC_FIELDS))
    if unknown:
        raise SpecError(str(unknown[0]), "is not a spec-file field", f"allowed: {', '.join(SPEC_FIELDS)}")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise SpecError("model", f"must be a file name, got {model!r}", "e.g. model: net.onnx")
    pert = None
    if "perturbation" in data:
        pert = perturbation_from_dict(data["perturbation"], "perturbation")
    x0 = None
    if "x0" in data:
        x0 = numeric_array(data["x0"], "x0")
        if x0.ndim > 1:
            raise SpecError("x0", f"must be a flat list of numbers, got shape {x0.shape}", "e.g. x0: [0.5, 1.2]")
    domain = None
    if "domain" in data:
        domain = numeric_array(data["domain"], "domain")
        if domain.ndim != 2 or domain.shape[1] != 2:
            raise SpecError("domain", f"must be a list of [lo, hi] pairs, got shape {domain.shape}",
                            "e.g. domain: [[0, 1], [-2, 2]] (one pair applies to every input)")
    if x0 is not None and domain is not None:
        raise SpecError("x0/domain", "the spec file gives both", "keep x0 for a local property or domain for a global one")
    level = data.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level)):
        raise SpecError("level", f"must be a finite number, got {level!r}", "e.g. level: 0.5")
    return SpecFile(path, model, pert, x0, domain, None if level is None else float(level))


def merge_with_flags(
    spec: SpecFile,
    *,
    model: str | os.PathLike[str] | None,
    x0: Any,
    domain: Any,
    level: float | None,
    perturbation_flags: Mapping[str, bool],
) -> dict[str, Any]:
    """Keyword arguments of :func:`paramverify.api.make_problem` from a spec file and flags.

    ``perturbation_flags`` maps each perturbation flag (``--delta``,
    ``--params``, ...) to whether it was given.  Returns ``model``,
    ``perturbation`` (``None`` when the file has none: the flags give it),
    ``x0``, ``domain`` and ``level``.
    """
    if spec.model is not None and model is not None and not _same_file(spec.model, model, spec.path):
        raise SpecError("model", f"the spec file names '{spec.model}' but the command line names '{os.fspath(model)}'",
                        "name the model in one place")
    if model is None:
        if spec.model is None:
            raise SpecError("model", "is missing", "name the .onnx file in the spec or on the command line")
        model = spec.model
    flags = [flag for flag, given in perturbation_flags.items() if given]
    if spec.perturbation is not None and flags:
        raise SpecError("perturbation", f"is given by the spec file and by {flags[0]}",
                        f"give the perturbation in one place: drop {flags[0]} or the file's perturbation")
    cli_region = "--x0" if x0 is not None else "--domain" if domain is not None else None
    file_region = "x0" if spec.x0 is not None else "domain" if spec.domain is not None else None
    if cli_region and file_region:
        raise SpecError(file_region, f"is given by the spec file and by {cli_region}", "give the input region in one place")
    if level is not None and spec.level is not None:
        raise SpecError("level", f"is given by the spec file ({spec.level:g}) and by --level ({level:g})",
                        "give the level in one place")
    return {
        "model": model,
        "perturbation": spec.perturbation,
        "x0": x0 if cli_region else spec.x0,
        "domain": domain if cli_region else spec.domain,
        "level": level if level is not None else spec.level if spec.level is not None else DEFAULT_LEVEL,
    }


def _same_file(in_spec: str, given: str | os.PathLike[str], spec_path: str) -> bool:
    given = os.fspath(given)
    candidates = {os.path.abspath(in_spec), os.path.abspath(os.path.join(os.path.dirname(spec_path), in_spec))}
    if os.path.abspath(given) in candidates:
        return True
    try:
        return any(os.path.exists(c) and os.path.samefile(c, given) for c in candidates)
    except OSError:
        return False
