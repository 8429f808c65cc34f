"""Large counterexamples and witnesses go to a side ``.npz``; the JSON keeps a reference.

A counterexample whose perturbed parameters hold more than :data:`INLINE_LIMIT`
values (a 256x2 MNIST net has ~200,000) would make a JSON of megabytes.  Above
the limit the full parameters go to ``FILE.npz`` (``numpy.load(FILE)`` gives
``input`` and one array per parameter, named ``param/<initializer name>``, in the
initializer's shape, exactly the values that were replayed), and the JSON object
replaces ``parameters`` with:

* ``parameters_file``: the path of the ``.npz`` as written (relative to the
  working directory of the run unless given absolute), and ``parameters_sha256``;
* ``changed_parameters``: per initializer ``{"count": changed entries, "size":
  entries}`` and, when the changed entries of all initializers together number at
  most :data:`INLINE_LIMIT`, their flat (C-order) ``index`` and ``value`` lists.

Below the limit nothing changes: ``parameters`` holds every perturbed initializer inline.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: largest number of parameter values kept inline in a JSON counterexample
INLINE_LIMIT = 10_000

PARAM_PREFIX = "param/"


def is_large(cex_json: Mapping[str, Any]) -> bool:
    params = cex_json.get("parameters", {})
    return sum(int(np.size(np.asarray(v, dtype=np.float64))) for v in params.values()) > INLINE_LIMIT


def externalize(cex_json: dict[str, Any], nominal: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> dict[str, Any]:
    """``cex_json`` (a ``Counterexample.to_json()``) with its parameters moved to ``path`` when large.

    ``nominal`` maps initializer names to their nominal values (for the changed-entry
    lists).  Returns ``cex_json`` itself when it is small enough to stay inline.
    """
    if not is_large(cex_json):
        return cex_json
    params = {k: np.asarray(v, dtype=np.float64) for k, v in cex_json["parameters"].items()}
    arrays = {"input": np.asarray(cex_json["input"], dtype=np.float64)}
    arrays.update({PARAM_PREFIX + k: v for k, v in params.items()})
    digest = _write_npz_atomically(Path(path), arrays)
    changed: dict[str, dict[str, Any]] = {}
    indices: dict[str, np.ndarray] = {}
    for name, value in params.items():
        base = np.asarray(nominal[name], dtype=np.float64).reshape(value.shape) if name in nominal else None
        idx = np.flatnonzero(value != base) if base is not None else np.arange(value.size)
        indices[name] = idx
        changed[name] = {"count": int(idx.size), "size": int(value.size)}
    if sum(i.size for i in indices.values()) <= INLINE_LIMIT:
        for name, idx in indices.items():
            changed[name]["index"] = idx.tolist()
            changed[name]["value"] = params[name].reshape(-1)[idx].tolist()
    out = {k: v for k, v in cex_json.items() if k != "parameters"}
    out["parameters_file"] = os.fspath(path)
    out["parameters_sha256"] = digest
    out["changed_parameters"] = changed
    return out


def load_parameters(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(input, parameters) from a side file written by :func:`externalize`."""
    with np.load(path, allow_pickle=False) as data:
        params = {k[len(PARAM_PREFIX):]: data[k] for k in data.files if k.startswith(PARAM_PREFIX)}
        return data["input"], params


def _write_npz_atomically(path: Path, arrays: Mapping[str, np.ndarray]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: the rename is atomic
    try:
        with open(tmp, "wb") as fh:  # the usual permissions (umask), unlike mkstemp's 0600
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return hashlib.sha256(path.read_bytes()).hexdigest()
