"""Scatter-add for the backward passes of gathers (conv windows, pooling, take)."""

from __future__ import annotations

import numpy as np


def scatter_add(values: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """``acc[..., j] = sum of values[..., i] over i with index[i] == j`` (``acc`` has last axis ``size``).

    One ``np.bincount`` over all rows (row ``r`` offset by ``r * size``): the same
    sums as ``np.add.at`` in a possibly different order (the caller's error term
    covers any order), several times faster.
    """
    lead = values.shape[:-1]
    rows = int(np.prod(lead))
    if rows == 0 or values.shape[-1] == 0:
        return np.zeros(lead + (size,))
    flat = values.reshape(rows, -1)
    slots = (index[None, :] + size * np.arange(rows)[:, None]).reshape(-1)
    return np.bincount(slots, weights=flat.reshape(-1), minlength=rows * size).reshape(lead + (size,))
