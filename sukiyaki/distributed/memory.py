"""A native coordinator's or worker's heap: freed frame buffers kept for the next ones, not handed
back to the kernel.

Every round the coordinator reads and writes thousands of frames of a few MiB (PARAMS parts out,
GRADS parts in, and the copies aiohttp and asyncio make of them on the event loop). With glibc's
default settings a buffer of that size is either mapped afresh (``mmap`` above the dynamic
threshold) or its memory is trimmed from the heap's top when freed, so the next one faults its
pages in again: the kernel zeroes every page before the copy lands in it. On VGG16 (138 M
parameters, 8-bit both ways) with 8 workers that was a third of the coordinator's CPU, all of it on
the event loop's thread (``clear_page_erms`` under ``memmove``), the serial cost that made a round
slower with 8 workers than with 4 (issue 9). A native worker moves the same frames (its weights
in, its gradient out) and keeps its buffers the same way.

:func:`keep_freed_memory` sets, once per process: buffers below ``MMAP_THRESHOLD`` come from the
heap, and up to ``TRIM_THRESHOLD`` bytes freed at its top stay mapped (the next round's frames
reuse them); the heap grows by ``TOP_PAD`` beyond what is asked. It does nothing where the C
library is not glibc, or when ``SUKIYAKI_KEEP_FREED_MEMORY=0``.

Example:
    >>> keep_freed_memory() in (True, False)
    True
"""

import ctypes
import ctypes.util
import os
import sys

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: Allocations below this come from the heap (glibc's maximum: 32 MiB on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Free bytes at the heap's top kept mapped (about a round's frames for 8 workers on VGG16).
TRIM_THRESHOLD = 1 << 30
#: Extra bytes the heap grows by when it must grow.
TOP_PAD = 64 << 20

_done = None


def keep_freed_memory():
    """Keep freed frame buffers mapped (see the module docstring); True when the settings are in force."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("SUKIYAKI_KEEP_FREED_MEMORY", "1").strip() == "0":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only (musl has no mallopt parameters of these numbers)
    except (OSError, AttributeError):
        return _done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in
                ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    return _done
