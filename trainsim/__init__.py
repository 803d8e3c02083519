"""trainsim: what can be trained on which hardware, how fast, and at what cost.

Public API: :func:`load_run`, :func:`estimate`, :func:`search` (and more in :mod:`trainsim.api`).

The ``trainsim`` command (the console script, or ``python -m trainsim``) runs with one OpenBLAS thread: unless
``OPENBLAS_NUM_THREADS`` is set, it is set to 1 here, before numpy is first imported (:func:`_blas_threads`).
Imported as a library, trainsim leaves BLAS alone.
"""
import os as _os
import sys as _sys


def _blas_threads() -> None:
    """``OPENBLAS_NUM_THREADS=1`` (unless set) when this process is the ``trainsim`` command and numpy is not
    loaded yet. trainsim calls no BLAS routine (no matmul, dot or linalg: its arrays meet in elementwise ufuncs
    and reductions), but numpy's OpenBLAS starts one server thread per further CPU when it is loaded, and each
    spins (``YIELDING``) for ``thread_timeout`` = 2^28 cycles before it sleeps (OpenBLAS
    driver/others/blas_server.c, ``THREAD_TIMEOUT 28``; the variable is read once, at load: OpenBLAS USAGE.md,
    "export OPENBLAS_NUM_THREADS=1"). Measured on the 2-core machine: a bare ``import numpy`` 0.09 -> 0.05
    CPU-s, a whole ``trainsim plan`` of the planner benchmark 0.42 -> 0.31 CPU-s, wall unchanged with a CPU idle
    (the spinning thread takes the other CPU)."""
    if "numpy" in _sys.modules:
        return
    orig = getattr(_sys, "orig_argv", [])
    if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "trainsim" or orig[1:3] == ["-m", "trainsim"]:
        _os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


_blas_threads()

from ._version import __version__  # noqa: E402 - after the BLAS setting, which must precede numpy's import
from .api import (Estimate, PlanSpec, Run, SearchResult, TrainsimError, estimate, load_run, parse_fix,  # noqa: E402
                  parse_run, search)

__all__ = ["Estimate", "PlanSpec", "Run", "SearchResult", "TrainsimError", "estimate", "load_run", "parse_fix",
           "parse_run", "search", "__version__"]
