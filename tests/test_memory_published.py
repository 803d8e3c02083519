"""Memory per chip against published memory figures, each written here with its source."""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.estimate import estimate
from trainsim.perf.context import OptimizerStates
from trainsim.perf.memory import _state_bytes, layer_activation_bytes
from trainsim.spec import load_run, parse_run

from conftest import ctx_for, one_plan


@pytest.mark.parametrize("zero,gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1(gpt3, a100_system, zero, gb):
    # ZeRO (Rajbhandari et al. 2020) Figure 1: a 7.5B-parameter model, 64-way data parallel, mixed-precision Adam
    # (K = 12): 120 GB baseline, 31.4 GB (P_os), 16.6 GB (P_os+g), 1.9 GB (P_os+g+p) of model states per GPU.
    # fp16 params and grads (2 + 2 bytes), fp32 master + moments (12 bytes).
    from dataclasses import replace
    ctx = replace(ctx_for(gpt3, a100_system, chips=64), optimizer=OptimizerStates(grad_bytes=2.0))
    p = one_plan(dp=64, zero=zero)
    w, g, o = _state_bytes(ctx, p, np.array([7.5e9]), np.array([0.0]))
    assert (w + g + o)[0] / 1e9 == pytest.approx(gb, rel=0.02)


def test_megatron_theoretical_activation_formula(gpt3, a100_system):
    # Megatron-LM megatron/training/theoretical_memory_usage.py compute_activation_memory (Korthikanti et al. 2022
    # Table 2, selective recompute): s b h (18 + 4 ffn / h) / t bytes per layer = 34 s b h / t for GPT-3. That
    # formula keeps the two hidden-dropout masks (2 s b h): exact at hidden dropout 0.1, 2 s b h / t less at 0.
    from dataclasses import replace
    s, b, h, t = 2048, 1, 12288, 8
    megatron = s * b * h * (18 + 4 * 4) / t
    for p, want in ((0.1, megatron), (0.0, megatron - 2 * s * b * h / t)):
        ctx = replace(ctx_for(gpt3, a100_system), hidden_dropout=p)
        kept, _ = layer_activation_bytes(gpt3.layers[0], ctx, one_plan(tp=t, recompute=1), np.array([float(s * b)]))
        assert kept[0] == pytest.approx(want, rel=1e-12)


def test_torchtitan_8b_fsdp_peak_memory():
    # torchtitan benchmarks/llama3_h100_202412_torchtitan.md Table 1: Llama 3.1 8B, 8 H100 (96 GB), FSDP 8,
    # local batch 2 x 8192, op-level selective AC, torch.compile: peak memory 77.0 GiB (max reserved, which
    # includes the caching allocator's slack). Predicted within 10% (the run file; every table row is below).
    from pathlib import Path
    runs = Path(__file__).resolve().parent.parent / "validation/runs"
    run = load_run(runs / "torchtitan-llama31-h100-8b-8gpu-fsdp-bf16-compile.yaml")
    est = estimate(run, advise=False)
    assert est.fits
    assert est.memory_per_chip_bytes / 2**30 == pytest.approx(77.0, rel=0.10)


def test_logit_peak_bytes_hand_derived(gpt3, a100_system):
    # Bytes per logit live at the loss's peak (perf/memory.logit_peak_bytes), derived by hand from the kernels:
    # PyTorch's aten cross entropy on an fp32 upcast (torchtitan): saved log-softmax output + nll_loss_backward's
    # gradient + _log_softmax_backward_data's result, 3 x 4 B = 12; loss parallel (tp > 1):
    # (zeros_like(x) + exp(x)) * grad with x saved, 4 fp32 tensors = 16; pipelined: + the BF16 stage output (2).
    # Megatron's vocab-parallel cross entropy: BF16 logits (2) + fp32 softmax (4) = 6; TE's in-place loss: 2.
    from dataclasses import replace
    from trainsim.perf.memory import logit_peak_bytes
    tt = replace(ctx_for(gpt3, a100_system), cross_entropy_fusion="fp32_upcast")
    got = logit_peak_bytes(tt, one_plan(tp=np.array([1, 8, 1, 8]), pp=np.array([1, 1, 4, 4])))
    assert list(got) == [12.0, 16.0, 14.0, 18.0]
    mc = ctx_for(gpt3, a100_system)
    assert float(np.max(logit_peak_bytes(mc, one_plan(tp=8, pp=4)))) == 6.0
    assert float(np.max(logit_peak_bytes(replace(mc, cross_entropy_fusion="te"), one_plan(tp=8)))) == 2.0


def test_torchtitan_loss_logits_hand_derived():
    # Llama 3.1 8B (vocab 128,256) at tp = pp = 1, 2 x 8,192 tokens per micro-batch: the loss term on the last
    # rank is tokens x vocab x 12 B = 16,384 x 128,256 x 12 = 25.2 GB, where Megatron's 6 B would give 12.6 GB:
    # the torchtitan estimate is higher by exactly the 6 B difference x (1 + alloc_margin).
    from trainsim.perf.memory import memory_breakdown
    from trainsim.plan_estimate import context
    from dataclasses import replace
    run = parse_run(_tt_spec("llama-3.1-8b", 8, 8192, 16, "bf16",
                             dict(tp=1, pp=1, cp=1, zero=3, recompute="selective", recompute_modules=["op_sac"],
                                  micro_batch=2, schedule="1f1b")))
    ctx = context(run)
    assert ctx.cross_entropy_fusion == "fp32_upcast"
    p = one_plan(dp=8, zero=3, recompute=1, mb=2)
    tokens = np.array([16384.0])
    m = np.array([1.0])
    up = memory_breakdown(ctx, p, tokens, m)["activations"][0]
    mg = memory_breakdown(replace(ctx, cross_entropy_fusion="none"), p, tokens, m)["activations"][0]
    assert up - mg == pytest.approx(16384 * 128256 * (12 - 6), rel=1e-9)


# torchtitan benchmarks/llama3_h100_202412_torchtitan.md (torchtitan 9dec370, torch 1963fc8, Dec 2024): Grand
# Teton H100 with 96 GB HBM2e; "Memory(GiB)" is torch.cuda max reserved (torchtitan/metrics.py
# reserved_bytes.all.peak), the maximum across GPUs; seq 8,192 unless stated; the stack's defaults: FSDP2 over
# the remaining ranks (and the CP ranks), op-level selective AC in the 8B config, n_microbatches = pp, 2 stages per
# rank for the looped schedule. Each row: (label, model, chips, seq, global batch, precision, plan, published GiB).
# The prediction compared is the modelled allocation at the peak plus the constant allocator margin and buffers
# (perf/data/constants.yaml alloc_margin 8%, buffer_bytes 2 GB); no source gives torchtitan's reserved/allocated
# ratio, so nothing more is modelled for the caching allocator (torchtitan's run_llama_train.sh at 9dec370 sets
# PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True; reserved_bytes counts neither the CUDA context nor NCCL's own
# buffers). The pipelined rows (Tables 5 and 6) include torch.distributed.pipelining's per-micro-batch receive
# buffers and cached stage outputs (perf/memory.py pipeline_stage_buffers), on torchtitan's default layer split
# (_TT_405B_SPLIT). torch.compile and Float8 are not run-spec inputs: the three rows of Table 1 (and of Table 3)
# share one prediction.
# torchtitan 9dec370 pipelining_utils.py generate_split_points (no split points stated): 126 layers on 8 stages are
# 15, 6 x 16, 15; on 16 (2 a rank) 7, 14 x 8, 7, so ranks 0 and 7 hold 15 layers either way
_TT_405B_SPLIT = dict(first_stage_layers=15, last_stage_layers=15)
_FSDP_SAC = dict(tp=1, pp=1, cp=1, zero=3, recompute="selective", recompute_modules=["op_sac"], micro_batch=2,
                 schedule="1f1b")
TORCHTITAN_MEMORY = [
    # Table 1: 8B, 8 GPUs, local batch 2, selective (op) AC
    ("T1 8B FSDP", "llama-3.1-8b", 8, 8192, 16, "bf16", _FSDP_SAC, 82.4),
    ("T1 8B FSDP+compile", "llama-3.1-8b", 8, 8192, 16, "bf16", _FSDP_SAC, 77.0),
    ("T1 8B FSDP+compile+Float8", "llama-3.1-8b", 8, 8192, 16, "fp8", _FSDP_SAC, 76.8),
    # Table 2: 8B, 8 GPUs, FSDP x CP = 8, local batch 1, full AC, compile + Float8 (32,768 tokens per rank in all)
    ("T2 8B FSDP8 CP1 32K", "llama-3.1-8b", 8, 32768, 8, "fp8",
     dict(tp=1, pp=1, cp=1, zero=3, recompute="full", micro_batch=1, schedule="1f1b"), 83.9),
    ("T2 8B FSDP4 CP2 64K", "llama-3.1-8b", 8, 65536, 4, "fp8",
     dict(tp=1, pp=1, cp=2, zero=3, recompute="full", micro_batch=1, schedule="1f1b"), 84.2),
    ("T2 8B FSDP2 CP4 128K", "llama-3.1-8b", 8, 131072, 2, "fp8",
     dict(tp=1, pp=1, cp=4, zero=3, recompute="full", micro_batch=1, schedule="1f1b"), 84.0),
    ("T2 8B FSDP1 CP8 256K", "llama-3.1-8b", 8, 262144, 1, "fp8",
     dict(tp=1, pp=1, cp=8, zero=3, recompute="full", micro_batch=1, schedule="1f1b"), 84.5),
    # Table 3: 8B, 128 GPUs, local batch 2, selective (op) AC
    ("T3 8B FSDP", "llama-3.1-8b", 128, 8192, 256, "bf16", _FSDP_SAC, 67.0),
    ("T3 8B FSDP+compile", "llama-3.1-8b", 128, 8192, 256, "bf16", _FSDP_SAC, 62.0),
    ("T3 8B FSDP+compile+Float8", "llama-3.1-8b", 128, 8192, 256, "fp8", _FSDP_SAC, 61.8),
    # Table 4: 70B, 256 GPUs, FSDP 32 x TP 8, local batch 16, full AC, compile + Float8
    ("T4 70B 2D", "llama-3.1-70b", 256, 8192, 512, "fp8",
     dict(tp=8, pp=1, cp=1, zero=3, recompute="full", micro_batch=16, schedule="1f1b"), 71.9),
    ("T4 70B 2D+AsyncTP", "llama-3.1-70b", 256, 8192, 512, "fp8",
     dict(tp=8, pp=1, cp=1, zero=3, recompute="full", micro_batch=16, schedule="1f1b"), 67.6),
    # Table 5: 405B, 512 GPUs, FSDP 8 x TP 8 x PP 8, local batch 32 (8 micro-batches of 4), full AC
    ("T5 405B 1F1B", "llama-3.1-405b", 512, 8192, 256, "fp8",
     dict(_TT_405B_SPLIT, tp=8, pp=8, cp=1, zero=3, recompute="full", micro_batch=4, schedule="1f1b"), 82.5),
    ("T5 405B interleaved 1F1B", "llama-3.1-405b", 512, 8192, 256, "fp8",
     dict(_TT_405B_SPLIT, tp=8, pp=8, vpp=2, cp=1, zero=3, recompute="full", micro_batch=4,
          schedule="interleaved"), 72.7),
    # Table 6: 405B, 512 GPUs, TP 8 x PP 8, FSDP x CP = 8, local batch 8 (8 micro-batches of 1), full AC, 1F1B
    ("T6 405B FSDP8 CP1 32K", "llama-3.1-405b", 512, 32768, 64, "fp8",
     dict(_TT_405B_SPLIT, tp=8, pp=8, cp=1, zero=3, recompute="full", micro_batch=1,
          schedule="1f1b"), 75.3),
    ("T6 405B FSDP4 CP2 64K", "llama-3.1-405b", 512, 65536, 32, "fp8",
     dict(_TT_405B_SPLIT, tp=8, pp=8, cp=2, zero=3, recompute="full", micro_batch=1,
          schedule="1f1b"), 75.9),
    ("T6 405B FSDP2 CP4 128K", "llama-3.1-405b", 512, 131072, 16, "fp8",
     dict(_TT_405B_SPLIT, tp=8, pp=8, cp=4, zero=3, recompute="full", micro_batch=1,
          schedule="1f1b"), 77.1),
    ("T6 405B FSDP1 CP8 256K", "llama-3.1-405b", 512, 262144, 8, "fp8",
     dict(_TT_405B_SPLIT, tp=8, pp=8, cp=8, zero=3, recompute="full", micro_batch=1,
          schedule="1f1b"), 84.9),
]

# Figures the model misses by more than 10%, each with what is known (strict: a closed gap fails the test).
TORCHTITAN_MEMORY_GAPS = {
    "T5 405B 1F1B": "predicted 70.4 GiB (-14.7%): per rank the same layers, micro-batches, tokens per micro-batch "
                    "(4 x 8K vs 1 x 32K) and shards as the Table 6 FSDP 8 CP 1 row, predicted 70.4 GiB against its "
                    "published 75.3 (-6.6%); nothing in the plan separates the two, so the 7.2 GiB between the two "
                    "published reserved peaks is not a term of the plan (allocator cache)",
    "T6 405B FSDP1 CP8 256K": "predicted 73.6 GiB (-13.3%): per rank the tokens, layers and shards equal those of "
                              "the CP 1-4 rows (75.3-77.1 GiB, predicted within 7%); PyTorch's CP backward holds the "
                              "all-gathered K/V repeated to 16 heads per tp rank and fp32 dK/dV, (cp + 4) x 256 MiB "
                              "(1.5 / 2 / 3 GiB at CP 2 / 4 / 8: perf/comm_cp.py torch_ring_backward_bytes), but the "
                              "published rows grow 0.6 / 1.8 / 9.6 GiB over CP 1: the rest at CP 8 is not in the "
                              "source (allocator fragmentation of the cp-sized buffers is not modelled)",
}


def _tt_spec(model, chips, seq, gbs, precision, plan):
    return {"model": model, "chips": chips, "framework": "torchtitan-2024",
            # NVIDIA H100s running NCCL (the validation runs' chip: validation/runs/torchtitan-*.yaml)
            "system": {"chip": {"name": "h100-96gb-hbm2e-500w", "vendor": "NVIDIA", "family": "nvidia-hopper",
                                "bf16_tflops": 912, "fp8_tflops": 1824, "hbm": "96 GB", "hbm_bandwidth": "2.4 TB/s"},
                       "scale_up": {"size": 8, "bandwidth": "450 GB/s"}, "scale_out": {"bandwidth": "400 Gb/s"}},
            "training": {"seq_len": seq, "global_batch_seqs": gbs, "precision": precision}, "plan": dict(plan)}


@pytest.mark.parametrize("row", TORCHTITAN_MEMORY, ids=[r[0] for r in TORCHTITAN_MEMORY])
def test_torchtitan_published_peak_memory_within_10_percent(row):
    label, model, chips, seq, gbs, precision, plan, published_gib = row
    est = estimate(parse_run(_tt_spec(model, chips, seq, gbs, precision, plan)), advise=False)
    got = est.memory_per_chip_bytes / 2**30
    within = abs(got / published_gib - 1.0) <= 0.10
    if label in TORCHTITAN_MEMORY_GAPS:
        assert not within, f"known gap closed ({got:.1f} GiB vs {published_gib}): remove {label} from the gaps"
        pytest.xfail(TORCHTITAN_MEMORY_GAPS[label])
    assert est.fits
    assert within, f"{got:.1f} GiB predicted vs {published_gib} GiB published"


def test_torch_pipelining_stage_buffers_hand_derived():
    # torch.distributed.pipelining (pytorch/pytorch torch/distributed/pipelining/stage.py: one activation receive
    # buffer per micro-batch on a non-first stage, one gradient receive buffer per micro-batch on a non-last stage,
    # each stage output cached until its backward). torchtitan's Table 5 '1F1B' row: Llama 3.1 405B (hidden 16,384),
    # tp 8, pp 8, 8 micro-batches of 4 x 8,192 tokens. One stage-boundary tensor (BF16, sequence-parallel) is
    # 4 x 8,192 / 8 x 16,384 x 2 B = 134,217,728 B. By hand:
    #   rank 0 (stage 0): 8 gradient buffers + 8 cached outputs (1F1B with m = pp: 8 micro-batches in flight) = 16
    #   a middle rank: 8 activation + 8 gradient buffers (its in-flight activation buffers are its first layer's saved
    #   inputs, counted with the activations; the same number of cached outputs) = 16
    #   the last rank: 8 activation buffers less the 1 in flight, no gradient buffers, output = the logits = 7
    # Interleaved with 2 stages per rank, a middle rank: 2 x 8 activation + 2 x 8 gradient buffers = 32.
    from trainsim.perf.memory import pipeline_stage_buffers
    from trainsim.plan_estimate import context
    from trainsim.parallel.schedules import code
    run = parse_run(_tt_spec("llama-3.1-405b", 512, 8192, 256, "fp8",
                             dict(tp=8, pp=8, cp=1, zero=3, recompute="full", micro_batch=4, schedule="1f1b")))
    ctx = context(run)
    assert ctx.pp_torch_stage
    B = 4 * 8192 / 8 * 16384 * 2
    assert B == 134217728
    tokens, m = np.array([4 * 8192.0]), np.array([8.0])
    p = one_plan(tp=8, pp=8, dp=8, zero=3, recompute=2, mb=4, schedule=code("1f1b"))
    got = {k: float(pipeline_stage_buffers(ctx, p, tokens, m, k)[0]) for k in ("first", "mid", "last")}
    assert got == {"first": 16 * B, "mid": 16 * B, "last": 7 * B}
    pi = one_plan(tp=8, pp=8, vpp=2, dp=8, zero=3, recompute=2, mb=4, schedule=code("interleaved"))
    assert float(pipeline_stage_buffers(ctx, pi, tokens, m, "mid")[0]) == 32 * B
    # no pipeline, or a stack that pipelines otherwise (Megatron-Core frees a sent output, counts no such buffers)
    assert float(np.max(pipeline_stage_buffers(ctx, one_plan(tp=8, dp=64, zero=3), tokens, m, "first"))) == 0.0
    from dataclasses import replace
    assert float(np.max(pipeline_stage_buffers(replace(ctx, pp_torch_stage=False), p, tokens, m, "mid"))) == 0.0
