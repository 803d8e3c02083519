"""trainsim: what can be trained on which hardware, how fast, and at what cost.

Public API: :func:`load_run`, :func:`estimate`, :func:`search` (and more in :mod:`trainsim.api`).
"""
from ._version import __version__
from .api import Estimate, PlanSpec, Run, SearchResult, TrainsimError, estimate, load_run, parse_fix, parse_run, search

__all__ = ["Estimate", "PlanSpec", "Run", "SearchResult", "TrainsimError", "estimate", "load_run", "parse_fix",
           "parse_run", "search", "__version__"]
