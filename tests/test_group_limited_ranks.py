"""DeepEP / HybridEP send a token once per destination EP rank; group-limited routing caps those ranks.

Hand derivation (hypergeometric, counted here with math.comb, independent of trainsim.perf.routing):

* DeepSeek-V2 (160 routed experts, n_group 8, topk_group 3, top-6; DeepSeek-V2 sec. 2.1.2 device-limited routing,
  M = 3) at ep 8: each group is one rank of 20 experts, a token's 6 experts are uniform over its 3 groups' 60:
  3 (1 - C(40, 6) / C(60, 6)) = 2.770 ranks, against 8 (1 - C(140, 6) / C(160, 6)) = 4.459 with no limit.
* DeepSeek-V3 (256 experts, n_group 8, topk_group 4, top-8) at ep 16: each group spans 2 ranks of 16 experts, so the
  token's 8 experts are uniform over 128 experts on 8 ranks: 8 (1 - C(112, 8) / C(128, 8)) = 5.339, against
  16 (1 - C(240, 8) / C(256, 8)) = 6.523.
* At ep 4 two groups share a rank: the unlimited count stands (an upper bound).
"""
from __future__ import annotations

from math import comb

import numpy as np
import pytest

from trainsim.model.load import resolve_model
from trainsim.perf.comm_ep import group_limited_ranks


def _moe_layer(model_id):
    arch = resolve_model(model_id)
    return next(lk for lk in arch.layers if lk.moe is not None)


def test_deepseek_v2_device_limited_routing_at_ep8():
    lk = _moe_layer("deepseek-v2")
    assert (lk.moe.experts, lk.moe.groups, lk.moe.top_groups) == (160, 8, 3)
    got = group_limited_ranks(lk, 6.0, np.array([8.0]))
    assert float(got[0]) == pytest.approx(3 * (1 - comb(40, 6) / comb(60, 6)), rel=1e-9)
    assert float(got[0]) == pytest.approx(2.770, abs=1e-3)


def test_deepseek_v3_groups_spanning_two_ranks():
    lk = _moe_layer("deepseek-v3")
    assert (lk.moe.experts, lk.moe.groups, lk.moe.top_groups) == (256, 8, 4)
    got = group_limited_ranks(lk, 8.0, np.array([16.0, 4.0]))
    assert float(got[0]) == pytest.approx(8 * (1 - comb(112, 8) / comb(128, 8)), rel=1e-9)
    # ep 4 < n_group 8: two groups per rank, the unlimited count (4 ranks of 64 experts)
    assert float(got[1]) == pytest.approx(4 * (1 - comb(192, 8) / comb(256, 8)), rel=1e-9)


def test_no_groups_is_the_uniform_count():
    lk = _moe_layer("deepseek-v2-lite")
    assert lk.moe.groups == 1
    got = group_limited_ranks(lk, 6.0, np.array([8.0]))
    assert float(got[0]) == pytest.approx(8 * (1 - comb(56, 6) / comb(64, 6)), rel=1e-9)


def test_a_dense_layer_is_refused():
    dense = next(lk for lk in resolve_model("deepseek-v2").layers if lk.moe is None)
    with pytest.raises(ValueError, match="no experts"):
        group_limited_ranks(dense, 6.0, np.array([8.0]))
