"""The kernels a context-parallel ring runs between its attention calls (merging each step's partial output, copying
K/V and dK/dV into send buffers, accumulating dQ / dK / dV): Transformer Engine's P2P ring (Megatron-Core's default
CP) and MindSpeed's eager ring, counted by hand from their sources.

Sources (stated in trainsim/perf/comm_cp.py and trainsim/catalog/data/framework_schedules.yaml):
NVIDIA/TransformerEngine v2.9 transformer_engine/pytorch/attention/dot_product_attention/context_parallel.py
AttnFuncWithCPAndKVP2P; Ascend/MindSpeed mindspeed/core/context_parallel/ring_context_parallel.py at 2b0edd2."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from trainsim.frameworks import stack_flags
from trainsim.model.inline import InlineModel, build_inline
from trainsim.perf.comm_cp import mindspeed_ring_merge_bytes, ring_merge_time, te_ring_merge_bytes

from conftest import ctx_for, make_system, one_plan


plan = one_plan


@pytest.fixture(scope="module")
def llama405():
    # Llama 3.1 405B's attention: 128 query heads, 8 KV heads, head dim 128
    return build_inline(InlineModel(name="l405-2", layers=2, hidden=16384, heads=128, kv_heads=8, ffn=53248,
                                    vocab=128256, ffn_act="swiglu"))


@pytest.fixture(scope="module")
def mixtral_attn():
    # Mixtral 8x7B's attention: 32 query heads, 8 KV heads, head dim 128 (the FFN does not enter the merges)
    return build_inline(InlineModel(name="mx-2", layers=2, hidden=4096, heads=32, kv_heads=8, ffn=14336,
                                    vocab=32000, ffn_act="swiglu"))


def _ctx(arch, seq, **flags):
    h100 = make_system(bf16=989e12, hbm=80e9, up=450e9, out=50e9)
    return replace(ctx_for(arch, h100, chips=1024, seq=seq, gbs=8), **flags)


def test_te_ring_merge_by_hand(llama405):
    # Megatron-Bridge's 405B H100 plan: tp 8, cp 2, seq 8192 -> 4,096 tokens per cp rank, 16 query heads and 1 KV
    # head per tp rank: q = o = 4096 x 16 x 128 x 2 B = 16,777,216 B; K + V = 4096 x 1 x 256 x 2 B = 2,097,152 B.
    # forward: K/V torch.cat 2 kv; step 0's out_correction_init 2 o; step 1's out_correction (read out, read the
    #   step's out, write out) 3 o: 4,194,304 + 5 x 16,777,216 = 88,080,384 B.
    # backward: K/V copy into the send buffer 2 kv; step 0 dq / dkv copy_ 2 (q + kv); step 1 add_ 3 (q + kv):
    #   4,194,304 + 5 x 18,874,368 = 98,566,144 B.
    q, kv = 4096 * 16 * 128 * 2, 4096 * 1 * 256 * 2
    f, b = te_ring_merge_bytes(np.array([2, 1, 4]), q, q, kv)
    assert f[0] == 88_080_384 and b[0] == 98_566_144
    assert f[1] == 0.0 and b[1] == 0.0                       # cp 1: no ring
    # cp 4: three corrections after the init, three add_ steps: 2 kv + 11 o, 2 kv + 11 (q + kv)
    assert f[2] == 2 * kv + 11 * q and b[2] == 2 * kv + 11 * (q + kv)
    # through the engine: the Megatron-Core stack (no CP flag) prices these bytes at HBM x mem_eff
    ctx = _ctx(llama405, 8192)
    tf, tb = ring_merge_time(llama405.layers[0], ctx, plan(tp=8, pp=8, cp=2), 8192 / 2)
    rate = ctx.chip.hbm_bw * ctx.calib.mem_eff
    assert float(tf[0]) == pytest.approx(88_080_384 / rate, rel=1e-12)
    assert float(tb[0]) == pytest.approx(98_566_144 / rate, rel=1e-12)


def test_mindspeed_ring_merge_by_hand(mixtral_attn):
    # MindSpeed-LLM's Mixtral 8x7B script: tp 8, cp 2, seq 32768 -> 16,384 tokens per cp rank, 4 query heads and 1 KV
    # head per tp rank: o = q = 16384 x 4 x 128 x 2 B = 16,777,216 B; K + V = 16384 x 256 x 2 B = 8,388,608 B;
    # one fp32 [b, n, s, 8] statistic = 16384 x 4 x 8 x 4 B = 2,097,152 B.
    # forward: K/V cat 2 kv = 16,777,216; one forward_update: 28 row (58,720,256) + two scales repeated to fp32 and
    #   made contiguous 12 o + two fp32 products 10 o + sum 6 o + cast 3 o = 31 o (520,093,696): 595,591,168 B.
    # backward: K/V cat 2 kv, zeros q + kv, K/V copy into the send buffer 2 kv, step 0's half copy_ kv: q + 6 kv;
    #   step 1: dK/dV cat + copy 4 kv, add_ of dQ, dK, dV 3 q + 3 kv: 4 q + 13 kv = 67,108,864 + 109,051,904
    #   = 176,160,768 B.
    o, kv, row = 16384 * 4 * 128 * 2, 16384 * 256 * 2, 16384 * 4 * 8 * 4
    f, b = mindspeed_ring_merge_bytes(np.array([2, 1]), o, o, kv, row)
    assert f[0] == 595_591_168 and b[0] == 176_160_768
    assert f[1] == 0.0 and b[1] == 0.0
    ctx = _ctx(mixtral_attn, 32768, cp_eager_merge=True)
    tf, tb = ring_merge_time(mixtral_attn.layers[0], ctx, plan(tp=8, pp=4, cp=2), 32768 / 2)
    rate = ctx.chip.hbm_bw * ctx.calib.mem_eff
    assert float(tf[0]) == pytest.approx(595_591_168 / rate, rel=1e-12)
    assert float(tb[0]) == pytest.approx(176_160_768 / rate, rel=1e-12)
    # the same rank under Transformer Engine's fused corrections: 2 kv + 5 o = 100,663,296 B, 5.92x fewer
    te_f, _ = te_ring_merge_bytes(2, o, o, kv)
    assert float(te_f) == 2 * kv + 5 * o and f[0] / float(te_f) == pytest.approx(595_591_168 / 100_663_296)


def test_allgather_cp_and_cp1_have_no_merges(llama405):
    # an all-gather CP (Llama 3's, nanotron's) runs one attention call over the gathered K/V: nothing to merge
    ctx = _ctx(llama405, 131072, cp_allgather=True)
    assert ring_merge_time(llama405.layers[0], ctx, plan(tp=8, pp=16, cp=16), 131072 / 16) == (0.0, 0.0)
    f, b = ring_merge_time(llama405.layers[0], _ctx(llama405, 8192), plan(tp=8, cp=1), 8192.0)
    assert float(f[0]) == 0.0 and float(b[0]) == 0.0


def test_profiles_state_which_ring_merges_eagerly():
    for fw in ("mindspeed-2024", "mindspeed-2025", "mindspeed-2026"):
        assert stack_flags(fw)["cp_eager_merge"]
    for fw in ("megatron-bridge-2025", "megatron-bridge-2026", "nemo-2024", "megatron-core-2024", "torchtitan-2024"):
        assert not stack_flags(fw)["cp_eager_merge"]


def test_merges_reach_the_step(llama405):
    # the cp 2 plan is slower than the same plan without the merges by exactly their time per layer (2 layers)
    from trainsim.perf.step import _stage, shared_costs
    ctx = _ctx(llama405, 8192)
    p = plan(tp=8, pp=1, cp=2, mb=1)
    lc = shared_costs(ctx, p).rows()[0]
    st = _stage(ctx, p, lc, 1.0, False, 4096.0)
    tf, tb = ring_merge_time(llama405.layers[0], ctx, p, 4096.0)
    assert float(lc["cp_merge_f"][0]) == pytest.approx(2 * float(tf[0]))
    assert float(lc["cp_merge_b"][0]) == pytest.approx(2 * float(tb[0]))
    no = dict(lc, cp_merge_f=np.zeros(1), cp_merge_b=np.zeros(1))
    st0 = _stage(ctx, p, no, 1.0, False, 4096.0)
    assert float(st["cp_exp_f"][0] - st0["cp_exp_f"][0]) == pytest.approx(2 * float(tf[0]))
    assert float(st["cp_exp_b"][0] - st0["cp_exp_b"][0]) == pytest.approx(2 * float(tb[0]))
