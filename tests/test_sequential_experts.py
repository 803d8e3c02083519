"""MoE experts run one after another (Megatron-Core SequentialMLP, no --moe-grouped-gemm): the whole-buffer copies
of the slicing implementation (Megatron-Core core_r0.6.0-0.8.0) and of the split / concatenate one (core_r0.9.0+),
against hand derivations written here (perf/compute.py sequential_experts_fwd_bwd)."""
from __future__ import annotations

from dataclasses import replace as dreplace

import numpy as np
import pytest
import yaml

from trainsim.api import estimate, parse_run
from trainsim.errors import TrainsimError
from trainsim.perf.compute import sequential_experts_fwd_bwd
from trainsim.plan_estimate import context, plans_from_spec
from trainsim.spec import load_run

MIXTRAL = "validation/runs/mindspeed-ascend-mixtral-8x7b-64.yaml"


def _mixtral():
    run = load_run(MIXTRAL)
    ctx = context(run)
    p = plans_from_spec(run.plan, run.chips, run.arch)
    lk = next(lk for lk in run.arch.layers if lk.moe is not None)
    return run, ctx, p, lk


def test_mindspeed_2024_runs_slicing_sequential_experts():
    # the script has no --moe-grouped-gemm; MindSpeed-LLM of Sep 2024 sits on Megatron-Core core_r0.6.0
    _, ctx, _, _ = _mixtral()
    assert ctx.moe_grouped_gemm is False
    assert ctx.sequential_mlp_slices is True


def test_slicing_sequential_experts_bytes_by_hand():
    # Mixtral 8x7B, seq 32768 / cp 2 = 16384 tokens per tp group, top-2, tp = etp = 8, ep 1: every chip's 8 local
    # experts receive 16384 x 2 x 8 / 8 = 32768 rows of hidden 4096 in BF16: B = 32768 x 4096 x 2 = 268,435,456 B.
    # Forward: zeros_like + slice copies = 3 B. Backward: 8 CopySlices (2 B + 5 B / 8 each) + 8 slice_backward
    # (B + 2 B / 8 each) + 7 gradient additions (3 B each) = 16 B + 5 B + 8 B + 2 B + 21 B = 52 B.
    # Ascend 910B2: 1.6 TB/s HBM x mem_eff 0.676 (the measured torch.add rate, tests/test_ascend_mem_eff.py)
    # = 1.0816e12 B/s.
    _, ctx, p, lk = _mixtral()
    B = 32768 * 4096 * 2
    assert B == 268_435_456
    bw = 1.6e12 * 0.676
    assert ctx.chip.hbm_bw * ctx.calib.mem_eff == pytest.approx(bw)
    f, b = sequential_experts_fwd_bwd(lk, ctx, p, np.array([16384.0]))
    assert f[0] == pytest.approx(3 * B / bw)          # 0.745 ms
    assert b[0] == pytest.approx(52 * B / bw)         # 12.9 ms
    assert b[0] == pytest.approx(0.0129056, rel=1e-5)


def test_split_concat_sequential_experts_and_grouped_gemm():
    # Megatron-Core core_r0.9.0+: torch.cat of the outputs (read + write, 2 B) and, backward, torch.cat of the split
    # gradients (2 B); a grouped GEMM pays neither; a dense layer has no experts
    run, ctx, p, lk = _mixtral()
    B = 32768 * 4096 * 2
    bw = 1.6e12 * 0.676
    f, b = sequential_experts_fwd_bwd(lk, dreplace(ctx, sequential_mlp_slices=False), p, np.array([16384.0]))
    assert (f[0], b[0]) == (pytest.approx(2 * B / bw), pytest.approx(2 * B / bw))
    f, b = sequential_experts_fwd_bwd(lk, dreplace(ctx, moe_grouped_gemm=True), p, np.array([16384.0]))
    assert (f[0], b[0]) == (0.0, 0.0)
    dense = dreplace(lk, moe=None)
    assert sequential_experts_fwd_bwd(dense, ctx, p, np.array([16384.0]))[1][0] == 0.0


def test_fewer_local_experts_under_expert_parallelism():
    # ep 2: 4 local experts, the same 32768 rows (tokens x k x etp / tp does not depend on ep): (6 x 4 + 4) B = 28 B
    _, ctx, p, lk = _mixtral()
    B = 32768 * 4096 * 2
    p2 = dreplace(p, ep=np.array([2]))
    b = sequential_experts_fwd_bwd(lk, ctx, p2, np.array([16384.0]))[1][0]
    assert b == pytest.approx(28 * B / (1.6e12 * 0.676))


def test_step_charges_it_per_layer_and_micro_batch():
    # the step's memory-bound share grows by (3 + 52) B / bw per MoE layer of the slowest stage per micro-batch:
    # 32 layers / pp 4 = 8 layers, 128 micro-batches -> 8 x 128 x 55 B / bw = 13.98 s
    spec = yaml.safe_load(open(MIXTRAL).read())
    seq = estimate(parse_run(spec))
    spec["training"]["moe_grouped_gemm"] = True
    grouped = estimate(parse_run(spec))
    B = 32768 * 4096 * 2
    hand = 8 * 128 * 55 * B / (1.6e12 * 0.676)
    assert hand == pytest.approx(13.98, abs=0.01)
    assert seq.breakdown["memory_bound"] - grouped.breakdown["memory_bound"] == pytest.approx(hand, rel=1e-6)
    assert seq.step_time_s > grouped.step_time_s + hand        # the bubble grows with the stage time too


@pytest.mark.parametrize("field, bad", [("moe_grouped_gemm", "sometimes"), ("moe_dispatcher", "all_gather")])
def test_bad_expert_setting_is_one_line(field, bad):
    spec = yaml.safe_load(open(MIXTRAL).read())
    spec["training"][field] = bad
    with pytest.raises(TrainsimError) as e:
        parse_run(spec)
    assert field in str(e.value) and "\n" not in str(e.value)


def test_allgather_dispatcher_gathers_each_token_once():
    # Megatron-Core core_r0.6.0 MoEAllGatherTokenDispatcher (the default of MindSpeed-LLM 2024): each chip's
    # 16384 / 8 = 2048 sequence-parallel tokens are all-gathered over the tp x ep = 8 ranks of one HCCS domain
    # (a 8 x 2048 x 4096 x 2 = 134,217,728 B buffer) and the combined outputs reduce-scattered back, one copy per
    # token: (n - 1) / n x S / (196 GB/s x 0.65) + ceil(log2 n) x 2 us (HCCL's logarithmic all-gather: 3 steps at
    # n = 8, perf/collectives.py log_latency_s), twice per forward (0.65: HCCL on the
    # HCCS full mesh, limulidae's 8-NPU all-gather 149 / 224 GB/s and all-reduce 72 / 112 GB/s, carried by the
    # mesh level: catalog/data/topologies.yaml)
    from trainsim.perf.comm_ep import ep_alltoall_fwd, etp_comm_fwd

    _, ctx, p, lk = _mixtral()
    assert ctx.moe_dispatcher == "allgather"
    S = 8 * 2048 * 4096 * 2
    assert S == 134_217_728
    one = 7 / 8 * S / (196e9 * 0.65) + 3 * 2e-6
    tok = np.array([16384.0])
    assert etp_comm_fwd(lk, ctx, p, tok)[0] == pytest.approx(2 * one, rel=1e-9)     # 1.856 ms
    assert ep_alltoall_fwd(lk, ctx, p, tok)[0] == 0.0
    # Megatron-Core's alltoall dispatcher with expert-TP gathers the top-2 copies: twice the bytes
    a2a = etp_comm_fwd(lk, dreplace(ctx, moe_dispatcher="alltoall"), p, tok)[0]
    assert a2a == pytest.approx(2 * (7 / 8 * 2 * S / (196e9 * 0.65) + 3 * 2e-6), rel=1e-9)



def _op_bytes(ops):
    # each op: (bytes read, bytes written)
    return sum(r + w for r, w in ops)


def test_allgather_dispatcher_permutes_the_gathered_tokens():
    # MindSpeed's allgather_token_permutation / _unpermutation (e6ea2117) on the Mixtral row: each chip gathers the
    # 16384 tokens of its tp = 8 group (ep 1) and permutes all top-2 copies: R = 32768 rows of h = 4096, BF16 row
    # block r = R h 2 = 268,435,456 B, FP32 r32 = 2 r; gathered block g = 16384 x 4096 x 2 = 134,217,728 B (FP32 2 g)
    from trainsim.perf.compute import allgather_permute_fwd_bwd

    _, ctx, p, lk = _mixtral()
    assert ctx.moe_allgather_index_put is True
    r, g = 32768 * 4096 * 2, 16384 * 4096 * 2
    assert (r, g) == (268_435_456, 134_217_728)
    fwd = [(r, r),              # global_hidden_states[global_local_map, :]
           (r, r),              # local_hidden_states[indices, :]
           (0, r),              # zeros_like
           (r, r),              # index_put_ (no accumulate)
           (r, r),              # x scores
           (0, 2 * g),          # FP32 zeros of the gathered shape
           (r, 2 * r),          # value_.float()
           (2 * r + 2 * r, 2 * r),  # FP32 accumulating index_put_: source rows, target rows read and written
           (2 * g, g)]          # .to(bf16)
    bwd = [(g, 2 * g),          # the BF16 cast's gradient to FP32
           (2 * r, 2 * r),      # NewIndePut.backward: index_select of FP32 rows
           (2 * r, r),          # .float()'s gradient back to BF16
           (r, r),              # grad x scores
           (2 * r, r), (r, 0),  # the scores' gradient: grad x rows, summed over h
           (r, r)]              # index_put_ -> the indexed gradient
    # each index's backward (PyTorch index_backward): zeros of the indexed tensor's shape, then an accumulating
    # BF16 _index_put_impl_, which aclnnIndexPutImpl runs on the 910B as: cast the target to FP32, cast the values
    # to FP32, FP32 IndexPutV2 accumulate (source rows, target rows read and written), cast the result back to
    # BF16 and ViewCopy it into the target (hicann/ops-nn index/index_put_v2/op_api/aclnn_index_put_impl.cpp at
    # ed71b624; the cast-free sorted kernel was not this 2024 stack's: MindSpeed d7bac29b rewrote the forward's
    # BF16 accumulating put 'to cut Cast operators')
    for t in (r, g):            # target: the sort's local rows (R x h), the gathered tokens (T_g x h)
        bwd += [(0, t), (t, 2 * t), (r, 2 * r), (2 * r + 2 * r, 2 * r), (2 * t, t), (t, t)]
    bw = 1.6e12 * 0.676
    f, b = allgather_permute_fwd_bwd(lk, ctx, p, np.array([16384.0]))
    assert f[0] == pytest.approx(_op_bytes(fwd) / bw)          # 5.50 GB: 5.09 ms
    assert b[0] == pytest.approx(_op_bytes(bwd) / bw)          # 12.88 GB: 11.91 ms
    assert _op_bytes(bwd) == 42 * r + 12 * g                   # 84 R h + 24 T_g h bytes (r = 2 R h, g = 2 T_g h)
    assert _op_bytes(fwd) + _op_bytes(bwd) == pytest.approx(18.39e9, rel=1e-3)
    # another dispatcher, a dense layer: none
    assert allgather_permute_fwd_bwd(lk, dreplace(ctx, moe_dispatcher="alltoall"), p, np.array([16384.0]))[0][0] == 0
    assert allgather_permute_fwd_bwd(dreplace(lk, moe=None), ctx, p, np.array([16384.0]))[1][0] == 0


def test_upstream_allgather_dispatcher_scatters_out_of_place():
    # Megatron-LM core_r0.6.0 without MindSpeed's patch: torch.gather with expanded indices, out-of-place scatter
    # and scatter_add (each clones its input first), BF16 throughout; r, g as above
    from trainsim.perf.compute import allgather_permute_fwd_bwd

    _, ctx, p, lk = _mixtral()
    r, g = 32768 * 4096 * 2, 16384 * 4096 * 2
    fwd = [(r, r), (r, r),                 # the two gathers
           (0, r), (r, r), (r, r),         # zeros_like, scatter's clone, scatter
           (r, r),                         # x scores
           (0, g), (g, g), (r + r, r)]     # zeros, scatter_add's clone, scatter_add (source + target rows)
    bwd = [(r, r),                         # scatter_add -> gather of the gradient rows
           (r, r), (2 * r, r), (r, 0),     # the scale: scaled gradient; the scores' gradient
           (r, r),                         # scatter -> gather
           (0, r), (2 * r, r),             # gather (sort) -> zeros + scatter_add_
           (0, g), (2 * r, r)]             # gather (selection) -> zeros + scatter_add_
    bw = 1.6e12 * 0.676
    f, b = allgather_permute_fwd_bwd(lk, dreplace(ctx, moe_allgather_index_put=False), p, np.array([16384.0]))
    assert (f[0], b[0]) == (pytest.approx(_op_bytes(fwd) / bw), pytest.approx(_op_bytes(bwd) / bw))


def test_allgather_permutation_is_not_also_charged_generically():
    # the element-wise kernels of an all-gather layer carry no permute of their own: the same bytes as under a
    # dispatcher whose permutation is priced apart (the fused all-to-all one)
    from trainsim.perf.compute import elementwise_fwd

    _, ctx, p, lk = _mixtral()
    tok = np.array([16384.0])
    assert elementwise_fwd(lk, ctx, p, tok)[0] == pytest.approx(
        elementwise_fwd(lk, dreplace(ctx, moe_dispatcher="alltoall"), p, tok)[0])
