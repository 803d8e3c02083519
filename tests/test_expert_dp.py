"""Plans.expert_dp: the expert-data-parallel size, one definition for placement, gradient sync, the optimizer step
and memory. Hand values: 16 ranks per stage (tp 2 x cp 1 x dp 8) re-sliced into EP 4 groups -> 4 expert-data-
parallel ranks; tp 1 x cp 2 x dp 32 = 64 ranks with ep 8 x etp 2 = 16 -> 4; a dense plan (ep 1) -> all 16; an EP
wider than the stage (an invalid plan) is floored at 1, never 0."""
from __future__ import annotations

import numpy as np

from trainsim.parallel.plan import Plans


def test_expert_dp_by_hand():
    p = Plans.from_columns(tp=[2, 1, 2, 1], pp=1, vpp=1, dp=[8, 32, 8, 4], ep=[4, 8, 1, 8], etp=[1, 2, 1, 1],
                           cp=[1, 2, 1, 1], zero=1, recompute=0, mb=1, schedule=0, node_limit=0)
    assert np.array_equal(p.expert_dp, [4, 4, 16, 1])
