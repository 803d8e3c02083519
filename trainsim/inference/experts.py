"""Which routed experts a batch touches (balls in bins).

With ``T`` tokens each routed to ``k`` of ``E`` experts (uniformly, independently), one expert is hit by at least one
token with probability ``p = 1 - (1 - k/E)^T``, so the expected number of distinct experts hit per layer is
``E (1 - (1 - k/E)^T)``. Decode reads only those experts' weights (batch 1: ``k``; large batch: all ``E``).
An expert-parallel group of ``ep`` chips holds ``E / ep`` experts each (``ep > E``: ``ep / E`` copies of each expert,
one per chip, each serving ``1 / copies`` of the tokens).
"""
from __future__ import annotations

import numpy as np

from ..perf.routing import expected_distinct
from ..perf.routing import hit_probability as _hit


def expected_distinct_experts(tokens, top_k: float, experts: int):
    """E (1 - (1 - k/E)^T): expected distinct experts hit by ``tokens`` tokens."""
    return expected_distinct(tokens, top_k, experts)


def hit_probability(tokens, top_k: float, experts: int):
    """Probability that one given expert is hit by ``tokens`` tokens."""
    return _hit(tokens, top_k, experts)


def local_experts(ep, experts: int):
    """Experts (or expert copies) held per chip and the number of copies of each expert."""
    ep = np.asarray(ep, dtype=np.float64)
    copies = np.maximum(ep / experts, 1.0)
    return experts * copies / ep, copies
