"""The engine against hand derivations written out here (not values copied from the code)."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.model.counts import count
from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.plan import Plans
from trainsim.perf.collectives import all_reduce_time, all_to_all_time, reduce_scatter_time
from trainsim.perf.comm_dp import dp_sync_times
from trainsim.perf.memory import layer_activation_bytes, memory_breakdown, model_state_params
from trainsim.perf.pipeline import bubble_time, pipeline_calls
from trainsim.perf.step import evaluate

from conftest import ctx_for, make_system, one_plan


plan = one_plan


def test_gpt3_step_flops(gpt3):
    # GPT-3 175B, s = 2048, no biases: per layer 4h^2 (QKV, O) + 8h^2 (MLP) matmul weights; logits V h.
    h, L, V, s, a = 12288, 96, 51200, 2048, 96
    matmul = 6 * (L * 12 * h * h + V * h)
    # causal attention forward per token per layer: QK^T and AV, 2 x a x (128 + 128) x mean context (s+1)/2
    attn = 3 * L * 2 * a * (128 + 128) * (s + 1) / 2
    c = count(gpt3, s)
    assert c.flops_per_token == pytest.approx(matmul + attn, rel=1e-12)
    # a 1536-sequence step (GPT-3 paper batch 3.2M tokens ~ 1536 x 2048): 6 N T dominates
    step_flops = c.flops_per_token * 1536 * 2048
    # 6 N T = 6 x 174.58e9 x 3.146e6 = 3.295e18, plus causal attention 1.4e10 / 1.047e12 = 1.4% -> 3.341e18
    assert step_flops == pytest.approx(3.341e18, rel=0.002)


@pytest.mark.parametrize("p,m", [(8, 64), (4, 16), (16, 128), (2, 1)])
def test_1f1b_bubble_fraction(p, m):
    t = 1.0
    b = bubble_time(np.array([0]), np.array([p]), np.array([1]), t)[0]
    assert b / (m * t + b) == pytest.approx((p - 1) / (m + p - 1))


@pytest.mark.parametrize("p,m,v", [(8, 64, 2), (4, 16, 4), (16, 128, 3)])
def test_interleaved_bubble_fraction(p, m, v):
    t = 1.0
    b = bubble_time(np.array([1]), np.array([p]), np.array([v]), t)[0]
    assert b / (m * t + b) == pytest.approx((p - 1) / (v * m + p - 1))


def test_ring_all_reduce_single_level():
    # 8 chips in one 300 GB/s domain, 1 GB buffer, efficiency 1: 2 (n-1)/n S / B + 2 (n-1) alpha
    sysm = make_system(up=300e9, size=8)
    t = all_reduce_time(1e9, np.array([8]), np.array([1]), sysm, (1.0, 1.0))[0]
    assert t == pytest.approx(2 * 7 / 8 * 1e9 / 300e9 + 2 * 7 * 2e-6)


def test_hierarchical_reduce_scatter_two_levels():
    # 32 members, 8 per domain: NCCL's flat ring, pipelined, so its bytes (31/32 S per ring) go at the slowest
    # link: inside a domain 300 GB/s per chip; each domain's egress leaves over its 8 members' NICs, 8 x 25 GB/s.
    # Latency: NCCL's flat ring of 32 in rank order takes 31 hops, 4 - 1 = 3 of them between domains (the network's
    # 5 us) and 31 - 3 = 28 inside one (2 us) (NVIDIA/nccl src/graph/tuning.cc nInterSteps = nNodes - 1)
    sysm = make_system(up=300e9, out=25e9, size=8)
    S = 4e9
    t = reduce_scatter_time(S, np.array([32]), np.array([1]), sysm, (1.0, 1.0))[0]
    hand = 31 / 32 * S / min(300e9, 8 * 25e9) + 28 * 2e-6 + 3 * 5e-6
    assert t == pytest.approx(hand)


def test_all_to_all_split_by_level():
    # 16 members with stride 1 on 8-chip domains: 7/16 of the bytes over scale-up, 8/16 over scale-out
    sysm = make_system(up=300e9, out=25e9, size=8)
    S = 1.6e9
    t = all_to_all_time(S, np.array([16]), np.array([1]), sysm, (1.0, 1.0))[0]
    assert t == pytest.approx(max(S * 7 / 16 / 300e9, S * 8 / 16 / 25e9) + 2e-6 + 5e-6)


def test_adam_bytes_per_parameter(gpt3, a100_system):
    # Megatron mixed precision: bf16 weights 2 + fp32 grads 4 + fp32 master/m/v 12 = 18 B/param without ZeRO;
    # ZeRO-1 over d ranks: 6 + 12/d (Korthikanti/Megatron distributed optimizer)
    ctx = ctx_for(gpt3, a100_system, chips=64)
    p0 = plan(tp=8, pp=8, dp=1, zero=0)
    m0 = memory_breakdown(ctx, p0, np.array([2048.0]), np.array([64.0]))
    states0 = m0["weights"][0] + m0["gradients"][0] + m0["optimizer"][0]
    ctx16 = ctx_for(gpt3, a100_system, chips=1024, gbs=1024)
    p1 = plan(tp=8, pp=8, dp=16, zero=1)
    m1 = memory_breakdown(ctx16, p1, np.array([2048.0]), np.array([64.0]))
    states1 = m1["weights"][0] + m1["gradients"][0] + m1["optimizer"][0]
    assert states0 / states1 == pytest.approx(18 / (6 + 12 / 16))


def test_korthikanti_activation_example(gpt3, a100_system):
    # Korthikanti et al. 2022 eq. (2), tensor + sequence parallel: s b h (34 / t) + 5 a s^2 b / t per layer.
    # With flash attention the 5 a s^2 b term (scores, softmax, dropout) is not stored, and without dropout the
    # two 1-byte masks (2 s b h) go too: 32 s b h / t.
    s, b, h, t = 2048, 1, 12288, 8
    ctx = ctx_for(gpt3, a100_system)
    kept, full = layer_activation_bytes(gpt3.layers[0], ctx, plan(tp=t), np.array([float(s * b)]))
    assert kept[0] == pytest.approx(32 * s * b * h / t)
    # full recompute keeps only the layer input, 2 s b h / t
    kept_full, _ = layer_activation_bytes(gpt3.layers[0], ctx, plan(tp=t, recompute=2), np.array([float(s * b)]))
    assert kept_full[0] == pytest.approx(2 * s * b * h / t)


def test_gemm_roofline_bandwidth_bound():
    from trainsim.perf.compute import gemm_time

    # a 1 x 8192 x 8192 GEMM (decode-like) moves ~8192^2 x 2 bytes; at 2 TB/s that is 67 us, far above 2 x 8192^2 FLOPs
    t = gemm_time(1.0, 8192.0, 8192.0, 312e12, 1.0, 2e12, 1.0, 2.0, 0.0)
    assert t == pytest.approx((8192 + 8192 * 8192 + 8192) * 2 / 2e12)


def test_selective_recompute_of_unfused_attention_is_korthikanti(gpt3, a100_system):
    # Korthikanti et al. 2022 sec. 5: selective recompute of the attention core removes exactly the 5 a s^2 b / t
    # term; with no dropout masks the rest is 32 s b h / t (their 34 less the two 1-byte masks).
    from dataclasses import replace as dreplace
    s, b, h, t, a = 2048, 1, 12288, 8, 96
    ctx = dreplace(ctx_for(gpt3, a100_system), attention_kernel="unfused")
    none, _ = layer_activation_bytes(gpt3.layers[0], ctx, plan(tp=t), np.array([float(s * b)]))
    sel, _ = layer_activation_bytes(gpt3.layers[0], ctx, plan(tp=t, recompute=1), np.array([float(s * b)]))
    assert none[0] == pytest.approx(32 * s * b * h / t + 5 * a * s * s * b / t)
    assert sel[0] == pytest.approx(32 * s * b * h / t)


def test_flash_selective_core_attn_frees_nothing(gpt3, a100_system):
    # with flash attention there is no s^2 tensor: Megatron-Core's default selective set (core_attn) frees nothing
    ctx = ctx_for(gpt3, a100_system)
    tok = np.array([2048.0])
    none, _ = layer_activation_bytes(gpt3.layers[0], ctx, plan(tp=8), tok)
    sel, _ = layer_activation_bytes(gpt3.layers[0], ctx, plan(tp=8, recompute=1), tok)
    assert sel[0] == pytest.approx(none[0])


def test_interleaved_in_flight_per_rank():
    from trainsim.perf.pipeline import microbatches_in_flight
    # Megatron-Core interleaved warm-up: rank r runs 2 (p - r - 1) + (v - 1) p chunks before its first backward.
    # p = 4, v = 2, m = 8: rank 0 holds 2*3 + 4 + 1 = 11 chunks = 5.5 stage-loads; last rank 0 + 4 + 1 = 5 -> 2.5
    sched, pp, vpp = np.array([1]), np.array([4]), np.array([2])
    assert microbatches_in_flight(sched, pp, vpp, 8.0, 0)[0] == pytest.approx(5.5)
    assert microbatches_in_flight(sched, pp, vpp, 8.0, 3)[0] == pytest.approx(2.5)
    # with m = p micro-batches the whole batch is in flight on rank 0 (min(m v, ...) / v = m)
    assert microbatches_in_flight(sched, pp, vpp, 4.0, 0)[0] == pytest.approx(4.0)
    # 1F1B: rank r holds min(m, p - r)
    assert microbatches_in_flight(np.array([0]), pp, vpp * 0 + 1, 8.0, 1)[0] == pytest.approx(3.0)


def test_bf16_moments_and_offload_bytes(gpt3, a100_system):
    # DeepSeek-V3 sec. 3.3.3: BF16 Adam moments, fp32 master and grads: 2 + 4 + (4 + 2 + 2) = 14 B/param (no ZeRO);
    # optimizer offloaded to the host: 2 + 4 = 6 B/param in HBM
    from dataclasses import replace as dreplace
    from trainsim.perf.context import OptimizerStates
    ctx = ctx_for(gpt3, a100_system, chips=64)
    p0 = plan(tp=8, pp=8, dp=1, zero=0)
    tok, m = np.array([2048.0]), np.array([64.0])
    base = memory_breakdown(ctx, p0, tok, m)
    bf16 = memory_breakdown(dreplace(ctx, optimizer=OptimizerStates(moments_bytes=4.0)), p0, tok, m)
    off = memory_breakdown(dreplace(ctx, optimizer=OptimizerStates(offload_optimizer=True)), p0, tok, m)
    states = lambda d: d["weights"][0] + d["gradients"][0] + d["optimizer"][0]  # noqa: E731
    assert states(bf16) / states(base) == pytest.approx(14 / 18)
    assert states(off) / states(base) == pytest.approx(6 / 18)


def test_mla_up_projection_recompute_frees_q_k_v():
    # DeepSeek-V3 MLA: 128 heads, q/k head dim 192, v head dim 128: Q + K + V = 128 x (192 + 192 + 128) = 65,536
    # BF16 elements per token (128 KiB) freed by recomputing the up-projections (report sec. 3.2.3)
    from trainsim.model.load import resolve_model
    from trainsim.perf.activations import activation_tensors, kept_bytes_per_token
    arch = resolve_model("deepseek-v3")
    lk = arch.layers[-1]
    ts = activation_tensors(lk, arch.hidden, 4096, gemm_bytes=1.0, act_fn_bytes=1.0)
    assert kept_bytes_per_token(ts) - kept_bytes_per_token(ts, ("mla_up_proj",)) == pytest.approx(65536 * 2)
    # moe_act frees the routed experts' down-projection inputs: top-8 x 2048 FP8 bytes
    assert kept_bytes_per_token(ts) - kept_bytes_per_token(ts, ("moe_act",)) == pytest.approx(8 * 2048)


def test_zero2_reduce_scatter_per_microbatch_hides_behind_the_next_one():
    # ZeRO-2 (DeepSpeed stage 2, FSDP SHARD_GRAD_OP) reduce-scatters every micro-batch's gradients on its own
    # stream: behind the next micro-batch's forward + backward, the last one behind its own backward only. On a
    # network so slow that the reduce-scatter g outlasts every window W, exposed = g - f W (f = dp_overlap), so
    #   zero 2: (m - 1)(g - f (t_f + t_b)) + (g - f t_b),   zero 1: (g - f t_b) (one sync per step, pp = 1),
    #   zero 2 - zero 1 = (m - 1)(g - f (t_f + t_b)),   with t_f + t_b = (step compute) / m.
    arch = build_inline(InlineModel(name="d", layers=4, hidden=2048, heads=16, ffn=8192, vocab=32000,
                                    ffn_act="gelu"))
    sysm = make_system(out=0.05e9)          # 0.4 Gb/s per chip: communication outlasts compute
    ctx = ctx_for(arch, sysm, chips=16, seq=2048, gbs=64)
    base = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=16, recompute=0, mb=1, schedule=0, node_limit=0)
    r1 = evaluate(ctx, Plans.from_columns(zero=1, **base))
    r2 = evaluate(ctx, Plans.from_columns(zero=2, **base))
    p = Plans.from_columns(zero=2, **base)
    dense, expert = model_state_params(ctx, p)
    g, _ = dp_sync_times(ctx, p, dense, expert)
    m = 64 / 16
    b = r1.breakdown
    t_mb = (b["compute_gemm"][0] + b["attention"][0] + b["memory_bound"][0]) / m
    f = ctx.calib.dp_overlap
    assert g[0] > t_mb
    expect = (m - 1) * (g[0] - f * t_mb)
    assert r2.breakdown["dp_comm"][0] - r1.breakdown["dp_comm"][0] == pytest.approx(expect, rel=1e-6)


def test_allgather_cp_exposes_the_kv_traffic(gpt3, a100_system):
    # Ring CP (Megatron-Core / TE): the K/V bytes overlap the attention, exposed = cp_f - f x min(cp_f, attn)
    # plus the per-step launches. All-gather CP (Llama 3 report sec. 3.3.2: "the all-gather communication latency
    # is exposed in the critical path"): the whole cp_f forward and 2 cp_f backward (dK/dV), plus the launches.
    from dataclasses import replace as dreplace

    from trainsim.perf.step import _stage, cp_overlap_for, shared_costs
    ctx = ctx_for(gpt3, a100_system, chips=64, seq=32768, gbs=64)
    p = plan(tp=8, cp=8, dp=1, mb=1)
    lc = shared_costs(ctx, p).rows()[0]
    tokens = 32768 / 8
    ring = _stage(ctx, p, lc, 1.0, False, tokens)
    ag_ctx = dreplace(ctx, cp_allgather=True)
    lc_ag = shared_costs(ag_ctx, p).rows()[0]
    ag = _stage(ag_ctx, p, lc_ag, 1.0, False, tokens)
    assert cp_overlap_for(ctx) == ctx.calib.cp_overlap == 0.9
    assert cp_overlap_for(ag_ctx) == 0.0
    cp_f, sync, attn = lc["cp"], lc["cp_sync"], lc["attn"]
    assert float(cp_f[0]) > 0.0
    f = 0.9
    # + the ring's merges between its attention calls (Transformer Engine's P2P ring, comm_cp.te_ring_merge_bytes);
    # an all-gather CP runs one attention call over the gathered K/V and merges nothing
    assert float(lc["cp_merge_f"][0]) > 0.0 and float(lc_ag["cp_merge_f"][0]) == 0.0
    assert ring["cp_exp_f"] == pytest.approx(cp_f - f * np.minimum(cp_f, attn) + sync + lc["cp_merge_f"], rel=1e-12)
    assert lc_ag["cp"] == pytest.approx(cp_f, rel=1e-12)
    assert ag["cp_exp_f"] == pytest.approx(cp_f + sync, rel=1e-12)
    assert ag["cp_exp_b"] == pytest.approx(2.0 * cp_f + 2.0 * sync, rel=1e-12)
    assert ag["t_mb"][0] > ring["t_mb"][0]


@pytest.mark.parametrize("gbs,dp,local,calls", [
    (8192, 256, 8, 4.0),    # AutoModel DeepSeek-V3 1024 H100: GA 8192 / (256 x 8) = 4 schedule calls
    (512, 64, 8, 1.0),      # AutoModel DeepSeek-V3 256 H100: GA 512 / (64 x 8) = 1
    (512, 32, 8, 2.0),      # AutoModel Kimi K2: GA 512 / (32 x 8) = 2
    (512, 128, 8, 1.0),     # a local batch larger than the rank's share: still one call
    (512, 64, None, 1.0),   # unstated (Megatron-Core): all micro-batches in one schedule call
])
def test_pipeline_calls(gbs, dp, local, calls):
    assert pipeline_calls(gbs, np.array([dp]), local)[0] == calls


def test_bubble_recurs_per_schedule_call(gpt3, a100_system):
    from dataclasses import replace as dreplace
    # 64 chips, pp 4 x dp 16, gbs 128: 8 micro-batches per dp rank; a local batch of 2 -> 128 / (16 x 2) = 4 calls,
    # so the step gains 3 extra fills and drains: 3 x (p - 1) t_mb = 3 x the one-call bubble; and (ZeRO 1, DDP
    # under torch.distributed.pipelining) the gradient sync runs at the last backward of every call: 3 more syncs
    # (vpp 1: the same window each time). All else unchanged.
    base = dict(tp=1, pp=4, vpp=1, ep=1, etp=1, cp=1, dp=16, zero=1, recompute=0, mb=1, schedule=0, node_limit=0)
    ctx = ctx_for(gpt3, a100_system, chips=64, gbs=128)
    one = evaluate(ctx, Plans.from_columns(**base))
    four = evaluate(dreplace(ctx, local_batch_seqs=2), Plans.from_columns(**base))
    b1 = one.breakdown["pipeline_bubble"][0]
    d1 = one.breakdown["dp_comm"][0]
    assert b1 > 0 and d1 > 0
    assert four.breakdown["pipeline_bubble"][0] == pytest.approx(4 * b1)
    assert four.breakdown["dp_comm"][0] == pytest.approx(4 * d1)
    assert four.step_time_s[0] - one.step_time_s[0] == pytest.approx(3 * b1 + 3 * d1)


@pytest.mark.parametrize("pp,calls,hand", [(4, 4.0, 4.0), (1, 4.0, 1.0), (8, 1.0, 1.0), (2, 2.0, 2.0)])
def test_dp_syncs_per_step(pp, calls, hand):
    # torch.distributed.pipelining decides "last backward" per schedule.step call (a fresh backward_counter per
    # _step_microbatches): one gradient sync per call where pp > 1; without pipelining there is no schedule: 1.
    from trainsim.perf.step import dp_syncs_per_step
    assert dp_syncs_per_step(plan(pp=pp), np.array([calls]))[0] == hand


def test_fsdp_under_pp_syncs_per_schedule_call(gpt3, a100_system):
    # FSDP (ZeRO 2) kept gathered under PP (the stack's fsdp_pp_unsharded flag, torchtitan / AutoModel): one
    # reduce-scatter and one re-gather per schedule call, so 4 calls (gbs 128 / (dp 16 x local batch 2)) expose 4x
    # the one-call DP sync (vpp 1: the same exposure window each call).
    from dataclasses import replace as dreplace
    ctx = dreplace(ctx_for(gpt3, a100_system, chips=64, gbs=128), fsdp_pp_unsharded=True)
    pp4 = Plans.from_columns(tp=1, pp=4, vpp=1, ep=1, etp=1, cp=1, dp=16, zero=2, recompute=0, mb=1, schedule=0,
                             node_limit=0)
    d1 = evaluate(ctx, pp4).breakdown["dp_comm"][0]
    d4 = evaluate(dreplace(ctx, local_batch_seqs=2), pp4).breakdown["dp_comm"][0]
    assert d1 > 0
    assert d4 == pytest.approx(4 * d1)


def test_fsdp_under_pp_reduce_scatter_not_hidden(gpt3, a100_system):
    # torch.distributed.pipelining's stage runs FSDP's post_backward (the reduce-scatters) only after the stage's
    # whole last backward, and finalize_backward makes the compute stream wait on them: the gradient reduce-scatter
    # is exposed in full. The parameter gather still prefetches behind the first forward (vpp 1: window t_f, here
    # longer than the gather), hidden up to the overlap f: exposed (1 - f) x gather. So dp_comm = grad + (1 - f) ag.
    from dataclasses import replace as dreplace
    from trainsim.perf.comm_dp import ddp_overlap
    ctx = dreplace(ctx_for(gpt3, a100_system, chips=64, gbs=128), fsdp_pp_unsharded=True)
    p = Plans.from_columns(tp=1, pp=4, vpp=1, ep=1, etp=1, cp=1, dp=16, zero=2, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    r = evaluate(ctx, p)
    dense, expert = model_state_params(ctx, p)
    g, ag = dp_sync_times(ctx, p, dense, expert)
    f = ddp_overlap(ctx, p, dense + expert)[0]
    # one micro-batch forward of a 24-layer GPT-3 stage (2048 tokens) is far longer than the gather
    t_f = r.breakdown["compute_gemm"][0] / 3.0 / (128 / 16)
    assert 0 < ag[0] < t_f and 0 < f < 1
    assert r.breakdown["dp_comm"][0] == pytest.approx(g[0] + (1.0 - f) * ag[0], rel=1e-9)


def test_local_batch_seqs_must_be_positive():
    from pydantic import ValidationError

    from trainsim.spec import TrainingSpec
    assert TrainingSpec(global_batch_seqs=512, local_batch_seqs=8).local_batch_seqs == 8
    with pytest.raises(ValidationError):
        TrainingSpec(global_batch_seqs=512, local_batch_seqs=0)


@pytest.mark.parametrize("k,E,block,hand", [
    (8, 256, 4, 2.0),       # DeepSeek-V3, ep 64: 4 experts per rank; 8 consecutive from a multiple of 8 -> 2 ranks
    (8, 256, 32, 1.0),      # ... 32 experts per 8-GPU node: the 8 always inside one node
    (8, 384, 12, 4 / 3),    # Kimi K2, ep 32: starts 0, 8, 16 (mod 12: 0, 8, 4) -> 1, 2, 1 ranks: mean 4/3
    (8, 128, 16, 1.0),      # Qwen3-30B-A3B, ep 8: 16 per rank -> one rank
    (4, 32, 4, 1.0),        # gpt-oss-20b, ep 8: 4 per rank, 4 consecutive from a multiple of 4 -> one rank
    # k 3, E 8 (gcd 1: every start 0..7), blocks {0-3},{4-7}: windows 012:1 123:1 234:2 345:2 456:1 567:1
    # 670 (wraps):2 701 (wraps):2 -> 12 / 8
    (3, 8, 4, 1.5),
])
def test_fake_balanced_blocks(k, E, block, hand):
    from trainsim.perf.routing import fake_balanced_blocks
    assert fake_balanced_blocks(k, E, block) == pytest.approx(hand)


def test_fake_balanced_gate_cuts_deepep_traffic():
    # DeepSeek-V3 on 256 H100 (AutoModel): under the fake gate a token reaches 1 node and 2 ranks instead of
    # min(5.25, 4) nodes and 7.57 ranks, so the dispatch + combine time must fall, and by less than the 4x of the
    # scale-out bytes alone (launch and latency terms stay)
    from dataclasses import replace as dreplace
    from trainsim.plan_estimate import context, plans_from_spec
    from trainsim.perf.comm_ep import ep_alltoall_fwd
    from trainsim.spec import load_run
    run = load_run("validation/runs/automodel-dsv3-h100-256-bf16.yaml")
    ctx = context(run)
    assert ctx.moe_fake_balanced_gate
    p = plans_from_spec(run.plan, run.chips, run.arch)
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    tok = np.array([4096.0])
    fake = ep_alltoall_fwd(lk, ctx, p, tok)[0]
    learned = ep_alltoall_fwd(lk, dreplace(ctx, moe_fake_balanced_gate=False), p, tok)[0]
    assert learned / 4.0 < fake < learned


def test_fsdp_fp32_reduce_of_bf16_dense_gradients():
    # PyTorch FSDP2 with MixedPrecisionPolicy(reduce_dtype=float32) over BF16 weights (NeMo AutoModel's MoE
    # parallelizer, late 2025): the gradients stay BF16 (2 bytes stored) but cross the reduce-scatter at 4 bytes.
    # Dense model, zero 3, dp 8 in one 300 GB/s domain, collective efficiency 1: a single-level ring
    # reduce-scatter of S bytes takes 7/8 S / 300e9 + 7 x 2 us, so FP32 instead of BF16 adds 7/8 x 2 D / 300e9
    # for D dense parameters, and changes nothing else (the parameter gather, the stored-gradient bytes).
    from dataclasses import replace as dreplace

    from trainsim.perf.calibration import Calib
    from trainsim.perf.context import OptimizerStates
    arch = build_inline(InlineModel(name="d", layers=4, hidden=2048, heads=16, ffn=8192, vocab=32000,
                                    ffn_act="gelu"))
    sysm = make_system(up=300e9, size=8)
    calib = dreplace(Calib.defaults(), coll_eff=(1.0, 1.0, 1.0))
    bf16 = OptimizerStates.from_precisions({"moments": "bf16", "master_weights": "bf16", "grads": "bf16"})
    fp32r = OptimizerStates.from_precisions({"moments": "bf16", "master_weights": "bf16", "grads": "bf16"},
                                            dense_grad_reduce="fp32")
    assert (bf16.grad_bytes, bf16.dense_reduce_bytes) == (2.0, 2.0)
    assert (fp32r.grad_bytes, fp32r.dense_reduce_bytes) == (2.0, 4.0)
    p = plan(dp=8, zero=3)
    c16 = dreplace(ctx_for(arch, sysm, chips=8, calib=calib), optimizer=bf16)
    c32 = dreplace(c16, optimizer=fp32r)
    dense, expert = model_state_params(c16, p)
    assert expert[0] == 0
    g16, a16 = dp_sync_times(c16, p, dense, expert)
    g32, a32 = dp_sync_times(c32, p, dense, expert)
    # (+ 7 x 2 us more: the expert reduce-scatter, 0 bytes here, is still charged its ring steps; + 4 x 7 x 2 us:
    # zero 3 reduces each of its 5 units, 4 layers + the rest, in a ring of its own, comm_dp.zero3_units)
    assert g16[0] == pytest.approx(7 / 8 * 2 * dense[0] / 300e9 + 2 * 7 * 2e-6 + 4 * 7 * 2e-6)
    assert g32[0] == pytest.approx(7 / 8 * 4 * dense[0] / 300e9 + 2 * 7 * 2e-6 + 4 * 7 * 2e-6)
    assert a32[0] == a16[0]
    # the run spec's optimizer.dense_grad_reduce reaches the engine; unset it follows the gradients
    from trainsim.spec import OptimizerSpec
    assert OptimizerSpec(dense_grad_reduce="fp32").dense_grad_reduce == "fp32"
    assert OptimizerSpec().dense_grad_reduce is None
    with pytest.raises(ValueError):
        OptimizerSpec(dense_grad_reduce="fp16")
