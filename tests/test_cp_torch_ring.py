"""PyTorch's experimental context parallelism (torchtitan 2024, NeMo AutoModel): K/V repeated to the query heads,
an all-gather hidden only by the first sub-SDPA, fp32 dK/dV passed round the ring, and the backward's buffers.

Sources (stated in trainsim/catalog/data/framework_schedules.yaml and trainsim/perf/comm_cp.py):
pytorch/pytorch torch/distributed/tensor/experimental/_attention.py (_templated_ring_attention and its backward);
pytorch/torchtitan torchtitan/models/llama/model.py (repeat_kv before SDPA) and config_manager.py (rotate method
'allgather') at 9dec370; NVIDIA-NeMo/Automodel cp_utils.py and HF transformers 5.8.1 sdpa_attention.py."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from trainsim.frameworks import stack_flags
from trainsim.model.inline import InlineModel, build_inline
from trainsim.perf.comm_cp import cp_block_bytes, ring_merge_time, torch_ring_exposed, torch_ring_merge_bytes
from trainsim.perf.memory import cp_backward_working_bytes, memory_breakdown
from trainsim.perf.step import _stage, shared_costs

from conftest import ctx_for, make_system, one_plan


plan = one_plan


@pytest.fixture(scope="module")
def llama405_shape():
    # Llama 3.1 405B's attention shape: 128 query heads, 8 KV heads, head dim 128 (hidden 16384); 4 layers suffice
    return build_inline(InlineModel(name="l405-4", layers=4, hidden=16384, heads=128, kv_heads=8, ffn=53248,
                                    vocab=128256, ffn_act="swiglu"))


def _ctx(arch, seq=262144, **flags):
    h100 = make_system(bf16=989e12, hbm=96e9, up=450e9, out=50e9)
    return replace(ctx_for(arch, h100, chips=512, seq=seq, gbs=8), **flags)


def test_torchtitan_and_automodel_profiles_state_the_torch_ring():
    tt, am = stack_flags("torchtitan-2024"), stack_flags("other-nemo-automodel")
    mc = stack_flags("megatron-bridge-2026")
    assert tt["cp_torch_ring"] and tt["cp_kv_repeated"]
    # AutoModel: the same PyTorch CP, but transformers 5.8.1 passes enable_gqa=True (no repeat_kv) without a mask
    assert am["cp_torch_ring"] and not am["cp_kv_repeated"]
    assert not mc["cp_torch_ring"] and not mc["cp_kv_repeated"]


def test_ring_block_carries_the_repeated_heads(llama405_shape):
    # Table 6 row CP 8 at 256K, tp 8: 32,768 tokens per cp rank. torchtitan repeats K/V to 128 / 8 = 16 heads per tp
    # rank: 32768 x 16 x (128 + 128) x 2 B = 268,435,456 B = 256 MiB; the K/V heads alone: 8 / 8 = 1 head, 16 MiB.
    lk = llama405_shape.layers[0]
    p = plan(tp=8, pp=8, cp=8)
    tokens = 262144 / 8
    rep = cp_block_bytes(lk, _ctx(llama405_shape, cp_kv_repeated=True), p, tokens)
    kv = cp_block_bytes(lk, _ctx(llama405_shape), p, tokens)
    assert float(rep[0]) == 32768 * 16 * 256 * 2 == 256 * 2**20
    assert float(kv[0]) == 32768 * 1 * 256 * 2 == 16 * 2**20


def test_torch_ring_exposure_by_hand():
    # kv = 10 ms of K/V exchange, dkv = 4 ms per fp32 dK/dV step, attention 24 ms forward, 60 ms backward, cp 4, f 0.9:
    # forward: the all-gather hides under step 0's sub-SDPA only (24 / 4 = 6 ms): 10 - 0.9 x 6 = 4.6 ms.
    # backward: the all-gather again under 60 / 4 = 15 ms: 10 - 0.9 x 10 = 1.0; three dK/dV sends hidden each under
    # one later sub-SDPA: 3 x (4 - 0.9 x 4) = 1.2; the last send awaited after the loop: 4. Total 6.2 ms.
    f, b = torch_ring_exposed(np.array([10.0, 10.0]), np.array([4.0, 4.0]), 24.0, 60.0, np.array([4, 1]), 0.9)
    assert f[0] == pytest.approx(4.6) and b[0] == pytest.approx(6.2)
    assert f[1] == 0.0 and b[1] == 0.0   # cp = 1: no exchange


def test_torch_ring_traced_by_compile_hides_nothing():
    # Same numbers, the ring traced by torch.compile: functional collectives get wait_tensor right after the
    # collective (torch/distributed/_functional_collectives.py _maybe_wrap_tensor while tracing), so nothing hides:
    # forward the whole all-gather, 10 ms; backward the all-gather again, 10, and every one of the cp = 4 dK/dV
    # sends, 4 x 4 = 16: 26 ms. cp = 1: nothing.
    f, b = torch_ring_exposed(np.array([10.0, 10.0]), np.array([4.0, 4.0]), 24.0, 60.0, np.array([4, 1]), 0.9,
                              traced=True)
    assert f[0] == pytest.approx(10.0) and b[0] == pytest.approx(26.0)
    assert f[1] == 0.0 and b[1] == 0.0


def test_stage_uses_the_torch_ring_only_for_that_stack(llama405_shape):
    p = plan(tp=8, pp=8, cp=8, mb=1)
    tokens = 262144 / 8
    ring_ctx = _ctx(llama405_shape, cp_kv_repeated=True, elementwise_kernels="eager")
    torch_ctx = replace(ring_ctx, cp_torch_ring=True)
    lc_r = shared_costs(ring_ctx, p).rows()[0]
    lc_t = shared_costs(torch_ctx, p).rows()[0]
    ring = _stage(ring_ctx, p, lc_r, 1.0, False, tokens)
    tor = _stage(torch_ctx, p, lc_t, 1.0, False, tokens)
    cp_f, attn, sync, dkv = lc_t["cp"], lc_t["attn"], lc_t["cp_sync"], lc_t["cp_dkv"]
    assert float(lc_r["cp_dkv"][0]) == 0.0 and float(dkv[0]) > 0.0
    # by hand: the cp group (stride tp 8 on 8-chip nodes) crosses the 50 GB/s scale-out link at coll_eff 0.85, 5 us
    # latency: a 256 MiB block step is 268,435,456 / 42.5e9 + 5e-6 = 6.3211 ms; the forward ring is cp - 1 = 7 such
    # steps per layer, the fp32 dK/dV step ONE step of twice the bytes, 536,870,912 / 42.5e9 + 5e-6 = 12.6373 ms;
    # 4 layers here
    block_step_s = 268_435_456 / 42.5e9 + 5e-6
    assert float(cp_f[0]) == pytest.approx(4 * 7 * block_step_s, rel=1e-9)
    assert float(dkv[0]) == pytest.approx(4 * (2 * 268_435_456 / 42.5e9 + 5e-6), rel=1e-9)
    # forward: only attention / cp hides the all-gather (the ring hides it behind all of the attention)
    # + the eager fp32 merges between the sub-SDPAs (test_torch_ring_merge_by_hand); the Megatron ring has Transformer
    # Engine's fused corrections instead (test_te_ring_merge_by_hand), far fewer bytes
    assert tor["cp_exp_f"][0] == pytest.approx(cp_f[0] - 0.9 * min(cp_f[0], attn[0] / 8) + sync[0]
                                               + lc_t["cp_merge_f"][0])
    assert 0.0 < float(lc_r["cp_merge_f"][0]) < float(lc_t["cp_merge_f"][0]) / 5
    assert ring["cp_exp_f"][0] == pytest.approx(cp_f[0] - 0.9 * min(cp_f[0], attn[0]) + sync[0]
                                                + lc_r["cp_merge_f"][0])
    assert ring["cp_exp_b"][0] == pytest.approx(2 * cp_f[0] - 0.9 * min(2 * cp_f[0], lc_r["attn_b"][0])
                                                + 2 * sync[0] + lc_r["cp_merge_b"][0])
    assert tor["t_mb"][0] > ring["t_mb"][0]
    # fused elementwise kernels alone do not trace the ring (the profile's compiled setting does)
    fused_ctx = replace(torch_ctx, elementwise_kernels="fused")
    fused = _stage(fused_ctx, p, shared_costs(fused_ctx, p).rows()[0], 1.0, False, tokens)
    assert fused["cp_exp_f"][0] == pytest.approx(tor["cp_exp_f"][0])
    # compiled (torchtitan's per-block torch.compile): the all-gather waited at once, nothing of it hidden
    comp_ctx = replace(fused_ctx, compiled=True)
    lc_c = shared_costs(comp_ctx, p).rows()[0]
    comp = _stage(comp_ctx, p, lc_c, 1.0, False, tokens)
    assert comp["cp_exp_f"][0] == pytest.approx(lc_c["cp"][0] + lc_c["cp_sync"][0] + lc_c["cp_merge_f"][0])
    assert comp["cp_exp_b"][0] == pytest.approx(lc_c["cp"][0] + 8 * lc_c["cp_dkv"][0] + 2 * lc_c["cp_sync"][0]
                                                + lc_c["cp_merge_b"][0])


def test_backward_working_set_of_the_torch_ring(llama405_shape):
    # CP 8, tp 8 at 256K: 8 all-gathered blocks + fp32 dK/dV (2 blocks' bytes) + its torch.cat send copy (2 blocks):
    # 12 x 256 MiB = 3 GiB. CP 1: nothing. A stack without the torch ring: nothing.
    ctx = _ctx(llama405_shape, cp_torch_ring=True, cp_kv_repeated=True)
    p = plan(tp=8, pp=8, cp=np.array([8, 1]))
    tokens = 262144 / p.cp
    got = cp_backward_working_bytes(ctx, p, tokens)
    assert float(got[0]) == 3 * 2**30 and float(got[1]) == 0.0
    assert cp_backward_working_bytes(_ctx(llama405_shape), p, tokens) == 0.0
    # and it reaches the reported activations, once per rank
    p8 = plan(tp=8, pp=8, cp=8)
    with_ring = memory_breakdown(ctx, p8, 32768.0, np.array([8.0]))["activations"]
    without = memory_breakdown(replace(ctx, cp_torch_ring=False), p8, 32768.0, np.array([8.0]))["activations"]
    assert float(with_ring[0] - without[0]) == pytest.approx(3 * 2**30)


def test_torch_ring_merge_by_hand(llama405_shape):
    # Table 6 row CP 8 at 256K, tp 8, K/V repeated to 16 heads per rank, rank 7 (every later step uses the full query):
    # q = o = 32768 x 16 x 128 x 2 B = 134,217,728 B; kv = K + V = 2 q.
    # forward: K/V contiguous() copies 2 kv = 4 q; K/V torch.cat before the 7 sends 7 x 2 kv = 28 q; fp32 cast of
    #   step 0's output 3 q; 7 merges of (cast 3 + out - block_out 6 + sigmoid x diff 4 + out - prod 6) = 7 x 19 =
    #   133 q; cast back 3 q: 171 q.
    # backward: zeros 2 q + 2 kv; contiguous() 2 kv; K/V cats 7 x 2 kv; step 0 += 5 kv; 7 partial updates 7 x 6.5 kv;
    #   8 dK/dV cats 8 x 4 kv; 8 dQ += 8 x 5 q; casts 3 q + 3 kv: 45 q + (2 + 2 + 14 + 5 + 45.5 + 32 + 3) kv
    #   = 45 q + 103.5 kv = 252 q.
    q = 32768 * 16 * 128 * 2
    f, b = torch_ring_merge_bytes(np.array([8, 1]), q, q, 2 * q)
    assert f[0] == 171 * q and b[0] == 252 * q
    assert f[1] == 0.0 and b[1] == 0.0                       # cp 1: no ring, no merges
    # one layer at the HBM rate: 2.039e12 B/s (the fixture's chip) x mem_eff 0.8 = 1.6312e12 B/s
    ctx = _ctx(llama405_shape, cp_torch_ring=True, cp_kv_repeated=True)
    tf, tb = ring_merge_time(llama405_shape.layers[0], ctx, plan(tp=8, pp=8, cp=8), 262144 / 8)
    rate = 2.039e12 * 0.8
    assert ctx.chip.hbm_bw * ctx.calib.mem_eff == pytest.approx(rate)
    assert float(tf[0]) == pytest.approx(171 * q / rate, rel=1e-9)
    assert float(tb[0]) == pytest.approx(252 * q / rate, rel=1e-9)
    # without repeat_kv (NeMo AutoModel: enable_gqa) the K/V block is 1 head of 16: kv = q / 16
    f2, b2 = torch_ring_merge_bytes(8, q, q, q / 16)
    assert float(f2) == pytest.approx(16 * q / 16 + 139 * q) and float(b2) == pytest.approx(45 * q + 103.5 * q / 16)


def test_compiled_is_a_runtime_setting_of_the_stack():
    """``compiled``: off in torchtitan (``--training.compile`` store_true, config_manager.py at 9dec370) and NeMo
    AutoModel (``enable_compile: bool = False``, distributed/config.py at 809f1993) unless a run states it; stated
    alone it brings Inductor's fused elementwise kernels, a stated elementwise_kernels wins."""
    from trainsim.frameworks import runtime_settings
    from trainsim.spec import TrainingSpec
    for fw in ("torchtitan-2024", "other-nemo-automodel", "megatron-bridge-2026"):
        assert runtime_settings(TrainingSpec(global_batch_seqs=8), fw)["compiled"] is False
    tt = runtime_settings(TrainingSpec(global_batch_seqs=8), "torchtitan-2024")
    assert tt["elementwise_kernels"] == "eager"
    on = runtime_settings(TrainingSpec(global_batch_seqs=8, compiled=True), "torchtitan-2024")
    assert on["compiled"] is True and on["elementwise_kernels"] == "fused"
    both = runtime_settings(TrainingSpec(global_batch_seqs=8, compiled=True, elementwise_kernels="eager"),
                            "torchtitan-2024")
    assert both["elementwise_kernels"] == "eager"
    with pytest.raises(Exception, match="compiled"):
        TrainingSpec(global_batch_seqs=8, compiled="sometimes")


def test_compiled_runs_state_it():
    """The CP runs of the PyTorch stacks: torchtitan's 256K CP 8 row ran with torch.compile (its table header),
    AutoModel's CP 2 benchmark config sets enable_compile: True; both take the traced ring."""
    from pathlib import Path

    from trainsim.plan_estimate import context
    from trainsim.spec import load_run
    runs = Path(__file__).resolve().parent.parent / "validation" / "runs"
    for f in ("torchtitan-llama31-h100-405b-512gpu-4d-cp8-256k.yaml", "automodel-llama3-70b-h100-64-bf16-cp2.yaml"):
        ctx = context(load_run(runs / f))
        assert ctx.cp_torch_ring and ctx.compiled and ctx.elementwise_kernels == "fused", f
