"""Property tests (hypothesis): physical monotonicity, exact breakdowns, determinism, sharding."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.parallel.plan import Plans
from trainsim.perf.step import evaluate

from conftest import ctx_for, make_system

PLANS = st.fixed_dictionaries({
    "tp": st.sampled_from([1, 2, 4, 8]),
    "pp": st.sampled_from([1, 2, 4]),
    "ep": st.sampled_from([1, 2, 4, 8]),
    "cp": st.sampled_from([1, 2]),
    "zero": st.integers(0, 3),
    "recompute": st.integers(0, 2),
    "mb": st.sampled_from([1, 2]),
    "schedule": st.sampled_from([0, 2]),
})


def _plans(d, chips=64):
    dp = chips // (d["tp"] * d["pp"] * d["cp"])
    sched = d["schedule"] if d["pp"] > 1 else 0
    return Plans.from_columns(tp=d["tp"], pp=d["pp"], vpp=1, ep=d["ep"], etp=1, cp=d["cp"], dp=dp, zero=d["zero"],
                              recompute=d["recompute"], mb=d["mb"], schedule=sched, node_limit=0)


@settings(max_examples=60, deadline=None)
@given(PLANS, st.sampled_from(["hbm_bw", "up", "out", "bf16"]), st.floats(1.01, 4.0))
def test_more_hardware_never_slower(small_moe, d, what, factor):
    base = dict(bf16=312e12, hbm=80e9, hbm_bw=2e12, up=300e9, out=25e9)
    faster = dict(base)
    faster[what] = base[what] * factor
    p = _plans(d)
    t0 = evaluate(ctx_for(small_moe, make_system(**base), gbs=128), p).step_time_s[0]
    t1 = evaluate(ctx_for(small_moe, make_system(**faster), gbs=128), p).step_time_s[0]
    assert t1 <= t0 * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(PLANS)
def test_breakdown_sums_to_step(small_moe, d):
    r = evaluate(ctx_for(small_moe, make_system(), gbs=128), _plans(d))
    total = sum(v[0] for v in r.breakdown.values())
    assert np.isclose(total, r.step_time_s[0], rtol=1e-12)
    assert all(v[0] >= -1e-15 for v in r.breakdown.values())


@settings(max_examples=20, deadline=None)
@given(PLANS)
def test_deterministic(small_moe, d):
    a = evaluate(ctx_for(small_moe, make_system(), gbs=128), _plans(d))
    b = evaluate(ctx_for(small_moe, make_system(), gbs=128), _plans(d))
    assert a.step_time_s[0] == b.step_time_s[0]
    assert a.memory["total"][0] == b.memory["total"][0]


@settings(max_examples=40, deadline=None)
@given(PLANS, st.sampled_from(["tp", "pp", "zero"]))
def test_memory_decreases_with_more_sharding(small_moe, d, knob):
    """More tp or pp at the same dp (twice the chips), or a higher ZeRO stage, never needs more memory per chip."""
    ctx = ctx_for(small_moe, make_system(), chips=64, gbs=128)
    more = dict(d)
    chips = 64
    if knob == "zero":
        if d["zero"] >= 2:  # ZeRO-3 adds gathered-layer buffers: it can cost memory at small dp (a real effect)
            return
        more["zero"] = d["zero"] + 1
    else:
        if (knob == "tp" and d["tp"] == 8) or (knob == "pp" and d["pp"] == 4):
            return
        more[knob] = d[knob] * 2
        chips = 128
    m0 = evaluate(ctx, _plans(d)).memory["total"][0]
    m1 = evaluate(ctx, _plans(more, chips=chips)).memory["total"][0]
    assert m1 <= m0 * (1 + 1e-12)


def test_vectorised_equals_one_by_one(small_moe):
    ctx = ctx_for(small_moe, make_system(), gbs=128)
    rows = [dict(tp=t, pp=p, ep=e, cp=1, zero=z, recompute=r, mb=1, schedule=0)
            for t in (1, 2) for p in (1, 2) for e in (1, 4) for z in (1, 3) for r in (0, 2)]
    many = Plans.concat([_plans(d) for d in rows])
    rv = evaluate(ctx, many)
    for i, d in enumerate(rows):
        one = evaluate(ctx, _plans(d))
        assert rv.step_time_s[i] == one.step_time_s[0]
