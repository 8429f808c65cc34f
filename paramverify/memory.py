"""glibc malloc settings for long numeric runs.

numpy's temporaries of a bound pass (several MB each) are, with glibc's defaults, fresh
memory mappings that the kernel zero-fills at every call and takes back after it.  On
the branch and bound of a small model that is about a fifth of the run: the digits
MLP query of ``benchmarks/bench_ray.py`` took 21.5-22.0 s for 8,000 boxes in one process
with the defaults and 17.3 s with the settings below (no change on the MNIST MLP, whose
CROWN pass already runs in groups sized to avoid it).  The command-line program applies
them to its own process (:func:`keep_freed_memory`); Ray's workers get them through their
environment (:data:`ENV`).  Other C libraries ignore both.
"""

from __future__ import annotations

import ctypes
import sys
from types import MappingProxyType

#: keep up to this many bytes of freed memory instead of handing it back to the kernel
TRIM_THRESHOLD = 256 << 20
#: serve blocks below this size from the heap, not from their own memory mapping
MMAP_THRESHOLD = 32 << 20
#: the same settings as environment variables, read by glibc when a process starts
ENV = MappingProxyType({"MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD), "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)})

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Apply the settings to this process now (glibc's ``mallopt``); False where the C
    library is not glibc or refuses them (nothing changes then)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
