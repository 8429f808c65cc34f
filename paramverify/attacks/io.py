"""Saving attack and SQ outputs (.npy arrays, torch checkpoints) atomically, through
:mod:`paramverify.fileio` (a temporary file in the same folder, then ``os.replace``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paramverify.fileio import atomic_path


def save_npy(arr: np.ndarray, path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def save_torch(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
