"""Large transient buffers go back to the system when freed (glibc's allocator).

A service frees buffers of megabytes all the time: the indicators' checkpoint documents
(megabytes, every few seconds), the Kafka client's fetch responses. glibc serves an
allocation of 128 KiB or more with a mapping of its own, returned at ``free``, but raises
that threshold to the size of every such block freed (up to 32 MiB): from then on, the
buffers below the largest freed so far are carved from the heap, whose pages stay resident
between two uses and fragment. With the threshold fixed, the indicators' heap held 55-76 MiB
over a soak's working day instead of 75-100 MiB.

Below the threshold, the heap still fragments: buffers of a few kilobytes to a megabyte (Kafka
batches, lists of snapshots, dicts growing) come and go between long-lived objects, so the heap
cannot shrink from its top, and glibc gives back only its top. ``keep_releasing_free_pages`` returns
the whole pages inside its free chunks, as jemalloc's background purge does; a thread does it
every half minute. Elsewhere (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

#: ``mallopt`` parameter: the size from which an allocation gets its own mapping (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
#: Allocations of this size or more are mapped on their own, and unmapped when freed.
MMAP_THRESHOLD_BYTES = 1024 * 1024


def _c_function(name: str, argtypes: list[type[Any]]) -> Any | None:
    """A function of the C library by name, returning an int; None where it has none (not glibc).

    Taken from the symbols the process already has, with no search for the library's file
    (``ctypes.util.find_library`` runs ``ldconfig``).
    """
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


def return_large_buffers(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where the C library has no ``mallopt``."""
    mallopt = _c_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    if mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) refused: large buffers stay in the heap", threshold)
        return False
    return True


#: Seconds between two releases of the heap's free pages.
RELEASE_EVERY_SECONDS = 30.0


def keep_releasing_free_pages(every: float = RELEASE_EVERY_SECONDS) -> threading.Thread | None:
    """Return the heap's free pages to the system (glibc's ``malloc_trim(0)``) now and every
    ``every`` seconds from a daemon thread; None without glibc.

    A thread rather than a task of the event loop: ctypes releases the GIL, so the few
    milliseconds of the walk over the free chunks hold back only the allocations of the moment.
    """
    malloc_trim = _c_function("malloc_trim", [ctypes.c_size_t])
    if malloc_trim is None:
        return None
    malloc_trim(0)

    def loop() -> None:
        while True:
            time.sleep(every)
            malloc_trim(0)

    thread = threading.Thread(target=loop, name="release-free-pages", daemon=True)
    thread.start()
    return thread
