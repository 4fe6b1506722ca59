"""Handing memory a build has freed back to the system between its steps.

A build frees large temporaries (an input's Arrow table, a million footprints' Python
objects, the repair's scratch arrays) whose pages the allocators keep for reuse: Arrow's
pool (mimalloc or jemalloc) keeps what it freed, and glibc's ``malloc`` keeps free
pages anywhere below the top of its heap (only the top is returned on its own). Kept,
they count in the process's resident memory until the end of the build. At the start of
the L2 stage of a million footprints the build process held 1.26 GB, of which Arrow's
pool gave back 0.23 GB and ``malloc_trim`` another 0.33 GB (in 50 ms).

:func:`release_unused` is called where a step's temporaries are gone: after a stage,
after the footprints are read and checked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

import pyarrow as pa

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        # CDLL: the call releases the GIL (the other threads of a build go on)
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_unused() -> None:
    """Give the memory freed so far back to the system: the unused pages of Arrow's
    pool and, with glibc, the free pages of ``malloc``'s heaps (``malloc_trim``).

    Cheap (tens of milliseconds for a heap of a gigabyte) and safe from any thread;
    what is still in use is not touched.
    """
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
