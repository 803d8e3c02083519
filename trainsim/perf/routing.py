"""Routing statistics of mixture-of-experts layers (balls in bins), shared by training and inference.

``balls`` independent draws each land in a given one of ``bins`` bins with probability ``picks / bins``; a bin
is hit by at least one draw with probability 1 - (1 - picks/bins)^balls, so the expected number of distinct bins
hit is bins x that. Decode: bins = experts, picks = top-k, balls = tokens in the batch (which expert weights a step
reads). How many EP ranks or scale-up domains one token reaches is not this (its k experts are distinct):
:func:`expected_distinct_blocks`.
"""
from __future__ import annotations

import numpy as np
from .arrays import Num


def hit_probability(balls: Num, picks: Num, bins: Num) -> Num:
    """Probability that one given bin is hit: 1 - (1 - picks/bins)^balls."""
    return 1.0 - (1.0 - np.asarray(picks, dtype=np.float64) / bins) ** np.asarray(balls, dtype=np.float64)


def expected_distinct(balls: Num, picks: Num, bins: Num) -> Num:
    """Expected distinct bins hit: bins x (1 - (1 - picks/bins)^balls)."""
    return bins * hit_probability(balls, picks, bins)


def expected_distinct_blocks(top_k: float, experts: float, blocks: Num) -> Num:
    """Expected distinct blocks one token reaches when its router picks ``top_k`` distinct experts out of
    ``experts``, uniformly, the experts split into ``blocks`` equal blocks of b = experts / blocks consecutive
    experts (the EP ranks, or the scale-up domains, each holding the same number of experts): a block is missed
    with probability C(E - b, k) / C(E, k) = prod_{i<k} (E - b - i) / (E - i) (hypergeometric), so the mean is
    blocks x (1 - prod_{i<k} (E - b - i) / (E - i)). A top-k router picks k DIFFERENT experts (torch.topk over
    the expert scores; the random scores of Megatron-Core's ``moe_router_force_load_balancing`` and of the
    DeepEP / HybridEP benchmarks make the k-subset uniform: DeepEP tests/test_intranode.py ``torch.topk(scores,
    num_topk)``, hybrid-ep tests/test_hybrid_ep.py ``torch.randperm(num_of_experts)[:topk]``), so the
    independent-draws count :func:`expected_distinct` (k, 1, blocks) undercounts: 5.25 against 5.43 ranks for top-8
    of 64 experts on 8 ranks. A fractional k (zero experts: the mean number of real ones) takes the last factor to
    the power of its fractional part (exact at integer k)."""
    E = float(experts)
    nb = np.asarray(blocks, dtype=np.float64)
    b = E / nb
    k = float(top_k)
    whole = int(np.floor(k))
    miss = np.ones_like(nb)
    for i in range(whole + (1 if k > whole else 0)):
        f = np.clip((E - b - i) / (E - i), 0.0, 1.0)
        miss = miss * (f if i < whole else f ** (k - whole))
    return nb * (1.0 - miss)


def fake_balanced_blocks(top_k: int, experts: int, block: Num) -> Num:
    """Mean number of distinct blocks of ``block`` consecutive experts (one EP rank's experts, or one scale-up
    domain's) that one token reaches under NeMo AutoModel's ``FakeBalancedGate`` with noise 0
    (NVIDIA-NeMo/Automodel 809f1993, nemo_automodel/components/moe/layers.py ``FakeBalancedGate.forward``: token t
    takes experts ``(t k + j) mod E``, j = 0 .. k-1, i.e. k consecutive experts from a start s = t k mod E; Primus's
    ``moe_router_force_load_balancing`` routes the same way, AMD-AGI/Primus b3699abf
    primus/backends/megatron/core/transformer/moe/router.py ``PrimusTopKRouter.routing`` and the ``token_indices`` of
    primus_turbo.py ``PrimusTurboDeepEPTokenDispatcher.dispatch_preprocess``). The
    starts are the multiples of g = gcd(k, E) below E, equally often; the window [s, s + k - 1] (mod E) covers
    floor((s + k - 1) / B) - floor(s / B) + 1 blocks of size B when it does not wrap, the blocks of both pieces when
    it does, at most E / B. Vectorised over ``block``."""
    k, E = int(top_k), int(experts)
    g = np.gcd(k, E)
    s = (g * np.arange(E // g, dtype=np.float64))[:, None]
    B = np.atleast_1d(np.asarray(block, dtype=np.float64))[None, :]
    end = s + k - 1.0
    plain = np.floor(end / B) - np.floor(s / B) + 1.0
    wrapped = (np.floor((E - 1.0) / B) - np.floor(s / B) + 1.0) + (np.floor((end - E) / B) + 1.0)
    n = np.minimum(np.where(end < E, plain, wrapped), E / B)
    return n.mean(axis=0).reshape(np.shape(block)) if np.ndim(block) else float(n.mean())
