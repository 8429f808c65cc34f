"""The images of a search: reward, test and training images with their labels.

``--inputs/--labels`` (.npy; the first ``reward_images`` are the reward images,
the next ``test_images`` the test images), or for a model with a 28x28 (or
784) input the held-out MNIST digits of ``split_mnist_5k()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paramverify.errors import SpecError


@dataclass(frozen=True, eq=False)
class SearchData:
    """Reward, test and training images (float32, model input shape) with labels."""

    reward_x: np.ndarray
    reward_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_x: np.ndarray | None = None
    train_y: np.ndarray | None = None
    source: str = ""


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SpecError(what, f"cannot read {path} as .npy: {exc}", "save it with numpy.save") from exc
    return np.asarray(arr)


def resolve_data(
    input_shape: tuple[int | None, ...],
    reward_images: int,
    test_images: int,
    inputs: Path | None = None,
    labels: Path | None = None,
    train_inputs: Path | None = None,
    train_labels: Path | None = None,
) -> SearchData:
    """Images for a search (see the module docstring); raises SpecError when none fit."""
    sample = tuple(d if d else 1 for d in input_shape[1:])
    if inputs is not None:
        if labels is None:
            raise SpecError("--labels", "is required with --inputs", "pass Y.npy with one integer label per input")
        x = _load_npy(inputs, "inputs").astype(np.float32)
        y = _load_npy(labels, "labels").reshape(-1)
        if not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
            raise SpecError("labels", f"need {len(x)} integer labels, got {len(y)} of {y.dtype}")
        x = x.reshape((len(x), *sample))
        if len(x) <= reward_images:
            raise SpecError("inputs", f"{len(x)} inputs leave no test image after {reward_images} reward images",
                            "pass more inputs or lower --reward-images")
        tx = ty = None
        if train_inputs is not None:
            tx = _load_npy(train_inputs, "train_inputs").astype(np.float32)
            tx = tx.reshape((len(tx), *sample))
            ty = _load_npy(train_labels, "train_labels").reshape(-1) if train_labels is not None else None
        end = reward_images + test_images
        return SearchData(x[:reward_images], y[:reward_images].astype(np.int64), x[reward_images:end],
                          y[reward_images:end].astype(np.int64), tx, ty, f"{inputs} (reward 0..{reward_images - 1})")
    if int(np.prod(sample)) == 784:
        from paramverify.smoothing.data import split_mnist_5k

        if reward_images > 500 or test_images > 500:
            raise SpecError("reward_images", "MNIST reward and test images are at most 500 each",
                            "lower --reward-images / --test-images")
        x_tr, y_tr, x_te, y_te = split_mnist_5k()
        shape = (-1, *sample)
        return SearchData(x_te[:reward_images].reshape(shape), y_te[:reward_images], x_te[500:500 + test_images].reshape(shape),
                          y_te[500:500 + test_images], x_tr.reshape(shape), y_tr,
                          f"MNIST 5k held-out (split_mnist_5k seed 0): reward 0..{reward_images - 1}, "
                          f"test 500..{499 + test_images}")
    raise SpecError("inputs", f"no built-in data for input shape {input_shape}", "pass --inputs X.npy --labels Y.npy")
