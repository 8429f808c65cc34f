"""One autouse fixture for the torch-based test folders (smoothing, search).

Their models and tensors are tiny, so intra-op threads only add
synchronisation overhead (badly so on a busy 2-core machine): each test runs
with one torch thread, and the previous setting is restored afterwards.
Import it into a folder's ``conftest.py`` to apply it there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    try:
        from paramverify.smoothing.core import one_torch_thread
    except ImportError:  # torch missing: nothing to configure
        yield
        return
    with one_torch_thread():
        yield
