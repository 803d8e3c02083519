"""What a software stack holds in memory when its source leaves it unstated (issue: Fidelity I, item 3).

Hand derivations:
* NeMo AutoModel keeps BF16 weights as their own master copy, BF16 gradients and torch.optim.Adam moments in the
  weights' dtype (its models are initialised in BF16, FSDP2 mp_policy param/reduce dtype bfloat16): optimizer
  states 2 x 2 = 4 bytes per parameter against Megatron-Core's 4 (fp32 master) + 2 x 4 (fp32 moments) = 12.
* Megatron-Bridge's FP8 presets gather weights in FP8 (fp8_param_gather=True): 1 byte per parameter on Blackwell
  against 2 in BF16; Hopper keeps the FP8 transpose too, so 2.
* Transformer Engine's cross entropy writes the gradient into the BF16 logits: 2 bytes per logit kept against 6
  (BF16 logits + fp32 softmax). Llama 3.1 8B, one 8,192-token sequence, tp 1, vocab 128,256: 4 x 8,192 x 128,256
  bytes = 4.20 GB less before the allocator margin.
"""
from __future__ import annotations

import numpy as np
import pytest

from trainsim.frameworks import optimizer_precisions
from trainsim.plan_estimate import estimate_complete
from trainsim.parallel.plan import Plans
from trainsim.spec import OptimizerSpec, parse_run

from conftest import ctx_for, one_plan


def _run(**kw):
    doc = {"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
           "training": {"seq_len": 8192, "global_batch_seqs": 64, "precision": "bf16"},
           "plan": {"tp": 1, "pp": 1, "cp": 1, "ep": 1, "etp": 1, "vpp": 1, "schedule": "1f1b", "zero": 1,
                    "micro_batch": 1, "recompute": "full"}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    run = parse_run(doc)
    return estimate_complete(run, run.plan)


def test_stated_precision_beats_the_stack_default():
    assert optimizer_precisions(OptimizerSpec(), "other-nemo-automodel") == {
        "moments": "bf16", "master_weights": "bf16", "grads": "bf16"}
    assert optimizer_precisions(OptimizerSpec(moments="fp32"), "other-nemo-automodel")["moments"] == "fp32"
    assert optimizer_precisions(OptimizerSpec(), "megatron-bridge-2026") == {
        "moments": "fp32", "master_weights": "fp32", "grads": "fp32"}


def test_automodel_keeps_bf16_states():
    auto = _run(framework="other-nemo-automodel", plan={"zero": 2})
    mega = _run(framework="other-nemo-automodel", plan={"zero": 2},
                optimizer={"moments": "fp32", "master_weights": "fp32", "grads": "fp32"})
    assert auto.memory["optimizer"] / mega.memory["optimizer"] == pytest.approx(4.0 / 12.0)
    assert auto.memory["gradients"] / mega.memory["gradients"] == pytest.approx(2.0 / 4.0)


def test_nemo_2407_distributed_fused_adam_states():
    """NeMo 24.07's Apex DistributedFusedAdam with BF16 (O2) weights and an fp32 optimizer keeps the fp32 master as
    an int16 remainder beside the BF16 weight (store_param_remainders): per parameter, sharded over dp, 2 bytes of
    master + 2 x 4 of fp32 moments = 10, against Megatron-Core's 4 + 8 = 12. Llama 3.1 8B on 8 chips at dp 8:
    8.03e9 params x 10 / 8 = 10.0 GB of optimizer states; the BF16-gradient buffer (grad_sync_dtype bf16) holds
    2 bytes per parameter unsharded, half of fp32's 4. With optim dtype bf16 (the 24.07 Nemotron-4 340B config)
    NeMo stores no master (store_params False, the BF16 weight is the master) and BF16 moments: 2 x 2 = 4."""
    n = 8_030_261_248   # Llama 3.1 8B's parameters (meta-llama/Llama-3.1-8B safetensors index: 16,060,522,496 B / 2)
    nemo = _run(framework="nemo-2024")
    mega = _run(framework="megatron-core-2024", plan={"zero": 1})
    # rel 1e-6: the engine leaves out the final norm (4,096 parameters)
    assert nemo.memory["optimizer"] == pytest.approx(n * (2 + 8) / 8, rel=1e-6)
    assert mega.memory["optimizer"] / nemo.memory["optimizer"] == pytest.approx(12.0 / 10.0)
    bf16_grads = _run(framework="nemo-2024", optimizer={"grads": "bf16"})
    assert bf16_grads.memory["gradients"] == pytest.approx(2 * n, rel=1e-6)
    assert nemo.memory["gradients"] == pytest.approx(4 * n, rel=1e-6)
    no_master = _run(framework="nemo-2024", optimizer={"moments": "bf16", "master_weights": "bf16"})
    assert no_master.memory["optimizer"] == pytest.approx(n * 4 / 8, rel=1e-6)


def test_unknown_master_weights_precision_is_an_input_error():
    from trainsim.errors import TrainsimError
    with pytest.raises(TrainsimError, match="master_weights"):
        _run(optimizer={"master_weights": "fp16_remainder"})


@pytest.mark.parametrize("system,ratio", [("gb200-nvl72", 0.5), ("dgx-h100", 1.0)])
def test_fp8_weights(system, ratio):
    on = _run(system=system, framework="megatron-bridge-2026", training={"precision": "fp8"})
    off = _run(system=system, framework="megatron-bridge-2026",
               training={"precision": "fp8", "fp8_param_gather": False})
    assert on.memory["weights"] / off.memory["weights"] == pytest.approx(ratio)
    # a BF16 run has no FP8 weights whatever the stack says
    b_on = _run(system=system, framework="megatron-bridge-2026")
    b_off = _run(system=system, framework="megatron-bridge-2026", training={"fp8_param_gather": False})
    assert b_on.memory["weights"] == b_off.memory["weights"]


def test_te_cross_entropy_keeps_bf16_logits_only():
    te = _run(training={"cross_entropy_fusion": "te"})
    unfused = _run(training={"cross_entropy_fusion": "none"})
    margin = 0.08   # perf/data/constants.yaml alloc_margin (PyTorch caching allocator)
    assert unfused.memory["total"] - te.memory["total"] == pytest.approx(4 * 8192 * 128256 * (1 + margin), rel=1e-6)


def test_group_limited_routing_caps_the_domains_a_token_reaches():
    """DeepSeek-V3 (n_group 8, topk_group 4): at ep 64 on 8-GPU nodes each group is one node, so a token reaches at
    most 4 nodes; at ep 256 a group spans 32 ranks = 4 nodes, so at most 4 x 4 = 16; at ep 8 (one node) groups
    share the node: at most 4 (the node count, 1, is the tighter bound and is applied by the balls-in-bins term).
    A router without groups (Qwen3) has no such cap."""
    import numpy as np

    from trainsim.model.load import resolve_model
    from trainsim.perf.comm_ep import group_domain_limit
    dsv3 = next(lk for lk in resolve_model("deepseek-v3").layers if lk.moe is not None)
    got = group_domain_limit(dsv3, np.array([64.0, 256.0, 8.0]), np.array([8.0, 8.0, 8.0]))
    assert list(got) == [4.0, 16.0, 4.0]
    qwen = next(lk for lk in resolve_model("qwen3-30b-a3b").layers if lk.moe is not None)
    assert np.isinf(group_domain_limit(qwen, np.array([64.0]), np.array([8.0]))).all()


def test_fsdp_under_pipeline_keeps_the_stage_whole():
    """torchtitan (FSDP2 + torch.distributed.pipelining): the stage's weights stay gathered in BF16 and its
    gradients accumulate unsharded in fp32 until the last backward. Llama 3.1 405B (405.9e9 parameters) on tp 8 x
    pp 8 x dp 8: a stage holds about 405.9e9 / 64 = 6.34e9 parameters per GPU (the embedding rank a little more),
    so 2 x 6.34e9 bytes of weights and 4 x 6.34e9 of gradients, where Megatron-style ZeRO-3 would shard both 8
    ways."""
    titan = _run(model="llama-3.1-405b", system="dgx-h100", chips=512, framework="torchtitan-2024",
                 training={"global_batch_seqs": 256},
                 plan={"tp": 8, "pp": 8, "zero": 3, "recompute": "full"})
    stage = 405.9e9 / 64
    assert titan.memory["weights"] == pytest.approx(2 * stage, rel=0.06)
    assert titan.memory["gradients"] == pytest.approx(4 * stage, rel=0.06)
    mega = _run(model="llama-3.1-405b", system="dgx-h100", chips=512, framework="megatron-bridge-2026",
                training={"global_batch_seqs": 256},
                plan={"tp": 8, "pp": 8, "zero": 3, "recompute": "full"})
    assert mega.memory["gradients"] < titan.memory["gradients"] / 4


def test_host_link_of_the_chip():
    """Offload copies run at the chip's own host link where the catalog states one (GB200: NVLink-C2C, 225 GB/s
    each way per GPU, x 0.8 reached = 180 GB/s), else the family's PCIe figure (Gen5 x16: 50 GB/s reached)."""
    from trainsim.plan_estimate import context
    gb = context(parse_run({"model": "llama-3.1-8b", "system": "gb200-nvl72", "chips": 8,
                            "training": {"global_batch_seqs": 8}}))
    h = context(parse_run({"model": "llama-3.1-8b", "system": "dgx-h100", "chips": 8,
                           "training": {"global_batch_seqs": 8}}))
    assert gb.host_link_bw == pytest.approx(180e9)
    assert h.host_link_bw == pytest.approx(50e9)


def test_balanced_interleaved_light_chunks_hand_derived(gpt3, a100_system):
    # Llama 3 405B's layout (Llama 3 report sec. 3.3.2; Megatron-Core --account-for-embedding/loss-in-pipeline-split):
    # pp 16, v 8 one-layer chunks, the first chunk of rank 0 holds only the embedding and the last chunk of rank 15
    # only the loss: ranks 0 and 15 hold 7 layers, the others 8. With m = 32 micro-batches, Megatron's warm-up
    # (2(p - r - 1) + (v - 1) p + 1 chunk-forwards, in groups of p per chunk) leaves on rank 0 31 micro-batches in
    # chunk 0 (16 + 15 of the second group) and 16 in each of chunks 1-7: 7 x 16 = 112 layer-micro-batches, where
    # 7 layers x 143 / 8 = 125.1 would spread the missing layer over every chunk. Rank 15 runs 113 chunk-forwards:
    # 16 in each of chunks 0-6 and 1 in chunk 7 (the loss chunk): 112, not 7 x 113 / 8 = 98.9. The function returns
    # the layer count that gives those at the rank's W / v micro-batches: 112 / 17.875 and 112 / 14.125.
    from dataclasses import replace
    from trainsim.parallel.schedules import code
    from trainsim.perf.memory import activation_layers
    ctx = replace(ctx_for(gpt3, a100_system), pipeline_split="balanced")
    p = one_plan(pp=16, vpp=8, schedule=code("interleaved"))
    m = np.array([32.0])
    first = activation_layers(ctx, p, m, np.array([7.0]), np.array([8.0]), np.array([0.0]), False)
    last = activation_layers(ctx, p, m, np.array([7.0]), np.array([8.0]), np.array([15.0]), True)
    assert first[0] == pytest.approx(112 / 17.875)
    assert last[0] == pytest.approx(112 / 14.125)
    # m = p: every chunk holds p micro-batches on rank 0 (W = v p), so the light chunk weighs as much as any: 7 x 16
    same = activation_layers(ctx, p, np.array([16.0]), np.array([7.0]), np.array([8.0]), np.array([0.0]), False)
    assert same[0] * 16 * 8 / 8 == pytest.approx(7 * 16)
    # a stated first/last count (Megatron-Core --decoder-first-pipeline-num-layers) spreads evenly: unchanged
    stated = replace(ctx, pipeline_split="even", first_stage_layers=7, last_stage_layers=7)
    assert activation_layers(stated, p, m, np.array([7.0]), np.array([8.0]), np.array([0.0]), False)[0] == 7.0


def test_fsdp2_sharded_master_and_freed_gradients_hand_derived(gpt3, a100_system):
    # torchtitan's FSDP2 (Dec 2024): fp32 parameters sharded over dp are the optimizer's master (no BF16 shard), and
    # optimizers.zero_grad() (set_to_none) frees the sharded gradients before each forward. For 8e9 parameters over
    # 8 ranks at ZeRO-3: weights 0, optimizer (4 master + 8 Adam) x 1e9 = 12 GB, gradients 4 GB that only count
    # where they exceed the activations they replace: with 10 GB of activations, 0; with 1 GB, 3 GB.
    from dataclasses import replace
    from trainsim.perf.memory import _gradients_at_peak, _state_bytes
    ctx = replace(ctx_for(gpt3, a100_system, chips=8), fsdp_sharded_master=True)
    p = one_plan(dp=8, zero=3)
    w, g, o = _state_bytes(ctx, p, np.array([8e9]), np.array([0.0]))
    assert (w[0], g[0], o[0]) == pytest.approx((0.0, 4e9, 12e9))
    assert _gradients_at_peak(ctx, p, g, np.array([10e9]))[0] == 0.0
    assert _gradients_at_peak(ctx, p, g, np.array([1e9]))[0] == pytest.approx(3e9)
    # Megatron-Core's persistent buffers: BF16 shard 2 B and fp32 main gradients 4 B stay resident
    mc = ctx_for(gpt3, a100_system, chips=8)
    w, g, o = _state_bytes(mc, p, np.array([8e9]), np.array([0.0]))
    assert (w[0], g[0], o[0]) == pytest.approx((2e9, 4e9, 12e9))
    assert _gradients_at_peak(mc, p, g, np.array([10e9]))[0] == pytest.approx(4e9)


def test_dtensor_tp_keeps_gathered_norm_outputs_and_repeated_kv_hand_derived():
    # Llama 3.1 70B layer (h 8,192, 64 heads of 128, 8 KV heads, SwiGLU 28,672), BF16, tp 8, no recompute, bytes per
    # token on one tp rank. Megatron-Core / TE (each tensor split over tp by TP + SP): norm inputs 4h, the two ln_out
    # 2 x 2h, Q 2h, K/V 2 x 2 x 8 x 128, flash output 2h, SwiGLU input 4f and down input 2f, all / 8.
    # torchtitan (pytorch/torchtitan parallelize_llama.py apply_tp at 9dec370): the ln_out tensors are all-gathered
    # to the full sequence (PrepareModuleInput ... desired_input_layouts=Replicate()) and saved whole by wq/wk/wv
    # and w1/w3: 2 x 2h per token on every rank, not / 8; models/llama/model.py repeat_kv copies K/V to the 64 query
    # heads before SDPA, which saves them: 2 x 2 x 64 x 128 / 8.
    from dataclasses import replace
    from trainsim.model.inline import InlineModel, build_inline
    from trainsim.perf.memory import layer_activation_bytes
    from conftest import make_system
    h, f, d = 8192, 28672, 128
    arch = build_inline(InlineModel(name="l70", layers=80, hidden=h, heads=64, kv_heads=8, ffn=f, ffn_act="swiglu",
                                    vocab=128256))
    ctx = ctx_for(arch, make_system(), seq=8192)
    p = Plans.from_columns(tp=8, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=0, mb=1, schedule=0,
                           node_limit=0)
    tok = np.array([8192.0])
    megatron = (4 * h + 2 * 2 * h + 2 * h + 2 * 2 * 8 * d + 2 * h + 4 * f + 2 * f) / 8
    titan = (4 * h + 2 * h + 2 * 2 * 64 * d + 2 * h + 4 * f + 2 * f) / 8 + 2 * 2 * h
    got_m, _ = layer_activation_bytes(arch.layers[0], ctx, p, tok)
    tt = replace(ctx, tp_gathered_gemm_inputs=True, cp_kv_repeated=True)
    got_t, full_t = layer_activation_bytes(arch.layers[0], tt, p, tok)
    assert got_m[0] == pytest.approx(megatron * 8192)
    assert got_t[0] == pytest.approx(titan * 8192) and full_t[0] == pytest.approx(got_t[0])
    # the layernorm module of selective recompute drops the two gathered ln_out tensors whole
    sel = replace(tt, recompute=replace(tt.recompute, modules=("layernorm",)))
    got_s, _ = layer_activation_bytes(arch.layers[0], sel, Plans.from_columns(
        tp=8, pp=1, vpp=1, ep=1, etp=1, cp=1, dp=1, zero=0, recompute=1, mb=1, schedule=0, node_limit=0), tok)
    assert got_s[0] == pytest.approx((titan - 2 * 2 * h) * 8192)
    # the stack's profile states both (framework_schedules.yaml, with their sources)
    from trainsim.frameworks import stack_flags
    flags = stack_flags("torchtitan-2024")
    assert flags["tp_gathered_gemm_inputs"] and flags["cp_kv_repeated"]
    assert not stack_flags("megatron-core-2024")["tp_gathered_gemm_inputs"]


def test_group_limited_routing_expected_domains_by_hand():
    """DeepSeek-V3 (256 experts, n_group 8, topk_group 4): with g domains of 8 / g whole groups each, a token's 4
    groups are a random 4 of 8 and it misses a domain with probability C(8 - 8/g, 4) / C(8, 4), C(8, 4) = 70:
    g = 1: 1; g = 2: 2 (1 - C(4,4)/70) = 2 x 69/70; g = 4: 4 (1 - C(6,4)/70) = 4 x 55/70; g = 8: 8 (1 - C(7,4)/70)
    = 8 x 35/70 = 4. At g = 16 a domain holds half a group: no bound from this rule (group_domain_limit's cap
    applies). A router without groups (Qwen3): none."""
    import numpy as np

    from trainsim.model.load import resolve_model
    from trainsim.perf.comm_ep import group_limited_domains
    dsv3 = next(lk for lk in resolve_model("deepseek-v3").layers if lk.moe is not None)
    got = group_limited_domains(dsv3, np.array([1.0, 2.0, 4.0, 8.0, 16.0]))
    want = [1.0, 2.0 * 69.0 / 70.0, 4.0 * 55.0 / 70.0, 4.0, np.inf]
    assert np.allclose(got[:4], want[:4], rtol=1e-12) and np.isinf(got[4])
    qwen = next(lk for lk in resolve_model("qwen3-30b-a3b").layers if lk.moe is not None)
    assert np.isinf(group_limited_domains(qwen, np.array([4.0]))).all()


def test_group_limited_domains_match_a_monte_carlo_of_the_router():
    """An independent simulation of Megatron-Core's group_limited_topk under force-balanced routing (i.i.d. normal
    logits, sigmoid scores, groups ranked by the sum of their top top_k / topk_group = 2 scores, then the top 8
    experts inside the 4 chosen groups; moe_utils.py at Megatron-LM 2edffadb): the mean number of distinct nodes
    of 64 / 32 consecutive experts (ep 32 / ep 64 on 8-GPU nodes) agrees with the closed form within 2%, and is
    well below the group-blind balls-in-bins count 4 (1 - (3/4)^8) = 3.60 at 4 nodes."""
    import numpy as np

    from trainsim.model.load import resolve_model
    from trainsim.perf.comm_ep import group_limited_domains
    rng = np.random.default_rng(7)
    n, E, ng, tg, k = 4000, 256, 8, 4, 8
    s = 1.0 / (1.0 + np.exp(-rng.standard_normal((n, E))))
    gs = np.sort(s.reshape(n, ng, -1), axis=-1)[:, :, -(k // tg):].sum(-1)
    chosen = np.argsort(-gs, axis=1)[:, :tg]
    mask = np.zeros((n, ng), bool)
    np.put_along_axis(mask, chosen, True, 1)
    top = np.argsort(-np.where(np.repeat(mask, E // ng, axis=1), s, -1.0), axis=1)[:, :k]
    dsv3 = next(lk for lk in resolve_model("deepseek-v3").layers if lk.moe is not None)
    for g in (4, 8):
        dom = top // (E // g)
        mc = np.mean([len(set(r)) for r in dom])
        assert abs(float(group_limited_domains(dsv3, np.array([float(g)]))[0]) / mc - 1.0) < 0.02
    assert float(group_limited_domains(dsv3, np.array([4.0]))[0]) < 0.9 * 4.0 * (1.0 - 0.75 ** 8)
