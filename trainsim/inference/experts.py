"""Which routed experts a batch touches (balls in bins).

With ``T`` tokens each routed to ``k`` of ``E`` experts (uniformly, independently), one expert is hit by at least one
token with probability ``p = 1 - (1 - k/E)^T``, so the expected number of distinct experts hit per layer is
``E (1 - (1 - k/E)^T)``. Decode reads only those experts' weights (batch 1: ``k``; large batch: all ``E``).
An expert-parallel group of ``ep`` chips holds ``E / ep`` experts each. Where ``ep`` does not divide ``E`` the split
is uneven and the busiest chip, the one every step waits for, holds ``ceil(E / ep)`` (:func:`local_experts`); with
``ep > E`` that is one expert, on ``E`` of the chips, and the other ``ep - E`` hold none (no copies: vLLM replicates
experts only with EPLB's redundant experts).
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
    """Experts (or expert copies) held by the busiest chip of an expert-parallel group, and the number of copies
    of each expert.

    ``ep <= E``: vLLM places ``E // ep`` experts on every rank and one more on the first ``E % ep`` ranks, so the
    busiest rank holds ``ceil(E / ep)`` (vllm-project/vllm ``vllm/model_executor/layers/fused_moe/layer.py``
    ``determine_expert_map``: ``base_experts = global_num_experts // ep_size``, ``remainder = global_num_experts %
    ep_size``, ``local_num_experts = base_experts + 1 if ep_rank < remainder else base_experts``, since PR #21497
    "[MoE] More balanced expert sharding", merged 2025-07-24: 30 experts on 8 ranks as ``[4, 4, 4, 4, 4, 4, 3, 3]``;
    before it the last rank took the remainder, ``[3, ..., 3, 9]``, at commit c439a13); its weights
    are held and read, and its GEMMs run, on every decode step, so that rank prices the plan (``E / ep`` where
    ``ep`` divides ``E``). ``ep > E``: ``base_experts`` is 0 and ``remainder`` is ``E``, so ranks 0 .. E-1 hold one
    expert each and the other ``ep - E`` none (the same code at vllm-project/vllm 04d26335,
    ``vllm/model_executor/layers/fused_moe/expert_map_manager.py``, which neither refuses ``ep > E`` nor copies an
    expert; copies come only from EPLB's ``num_redundant_experts``): the busiest rank holds one expert and serves
    every token routed to it, so the number of copies of each expert is 1 (:func:`idle_expert_ranks` counts the
    ranks without one)."""
    ep = np.asarray(ep, dtype=np.float64)
    return np.maximum(np.ceil(experts / ep), 1.0), np.ones_like(ep)


def idle_expert_ranks(ep: int, experts: int) -> int:
    """Ranks of an expert-parallel group of ``ep`` that hold no routed expert: ``ep - E`` where ``ep > E``
    (vLLM ``determine_expert_map``, :func:`local_experts`), else 0."""
    return max(0, int(ep) - int(experts))
