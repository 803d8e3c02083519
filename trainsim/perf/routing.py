"""Routing statistics of mixture-of-experts layers (balls in bins), shared by training and inference.

``balls`` independent draws each land in a given one of ``bins`` bins with probability ``picks / bins``; a bin
is hit by at least one draw with probability 1 - (1 - picks/bins)^balls, so the expected number of distinct bins
hit is bins x that. Decode: bins = experts, picks = top-k, balls = tokens in the batch (which expert weights a step
reads). Node-limited dispatch (DeepSeek-V3 sec. 2.1.2): bins = scale-up domains of the EP group, picks = 1,
balls = top-k (how many domains one token reaches).
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
