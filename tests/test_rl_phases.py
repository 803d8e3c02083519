"""The RL step's phases one by one against NeMo RL's published per-phase timings (issue 18).

The RL table (validation/rl, tests/test_rl_step.py) compares whole steps, which cannot tell generation from the
rest. NeMo RL's v0.3 announcement publishes one GRPO step split by its own timers, for four colocated Megatron
runs on H100 (NVIDIA-NeMo blog 'NeMo-RL V0.3: Scalable and Performant Post-training with Nemo-RL via
Megatron-Core', 2025-07-21, nvidia-nemo.github.io/blog/2025/07/21/nemo-rl-v0.3, NVIDIA-NeMo/RL discussion 1161;
averages over steps 22-29; max sequence length 4,096, 2,048 rollouts per step, global batch 512, sequence
packing). Each run is a spec in tests/data/rl_phases/, built from its recipe at NVIDIA-NeMo/RL tag v0.3.0 (each
field cited in the spec's notes). The timers (nemo_rl/algorithms/grpo.py at v0.3.0) map to the timeline's stages:

* 'Policy training' = ``policy_training`` (``policy.train`` only) -> the ``train`` stage;
* 'Get logprobs' = ``policy_and_reference_logprobs`` (old-policy and reference forward passes, with the
  reference weight swap) -> the ``logprobs`` stage;
* 'Refit' = ``prepare_for_generation``: ``offload_before_refit`` (optimizer state to host), vLLM's wake, the
  weight transfer, ``offload_after_refit`` (parameters to host) -> the ``weights`` stage plus the host-to-device
  half of the ``offload`` stage (the reloads run in ``training_prep`` / ``logprob_inference_prep``, timers the
  table leaves out);
* 'Generation' = ``generation`` -> the ``rollout`` stage (the serving model's; compared in the known-gap text only,
  it is not this file's subject).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trainsim.posttrain.spec import PostTrain, load_posttrain
from trainsim.posttrain.timeline import evaluate
from trainsim.posttrain.validate import stage_seconds

DATA = Path(__file__).resolve().parent / "data" / "rl_phases"

#: the blog's table, seconds per step: total step, policy training, refit, generation, get logprobs
PUBLISHED = {
    "nemo-rl-v03-h100-llama8b-8-sync.yaml": {"total": 112, "train": 28, "refit": 5, "generation": 58,
                                             "logprobs": 18},
    "nemo-rl-v03-h100-llama70b-64-sync.yaml": {"total": 147, "train": 28, "refit": 14, "generation": 84,
                                               "logprobs": 18},
    "nemo-rl-v03-h100-q32b-64-sync.yaml": {"total": 213, "train": 68, "refit": 7, "generation": 96,
                                           "logprobs": 40},
    "nemo-rl-v03-h100-q30-64-sync.yaml": {"total": 167, "train": 50, "refit": 12, "generation": 78,
                                          "logprobs": 23},
}
DENSE = ("nemo-rl-v03-h100-llama8b-8-sync.yaml", "nemo-rl-v03-h100-llama70b-64-sync.yaml",
         "nemo-rl-v03-h100-q32b-64-sync.yaml")
MOE = "nemo-rl-v03-h100-q30-64-sync.yaml"

_MOE_TRAINER = (
    "Qwen3-30B-A3B (64 H100, trainer TP2 x EP8, dropless all-to-all; vLLM TP4): the blog's policy training 50 s and "
    "log-probs 23 s against the model's 23.3 s (-53%) and 13.5 s (-41%) without NeMo RL's loop cost, while its generation (78 s) is met (78.8 s, "
    "+1%) and the three dense runs' training and log-prob phases are within 20% (-17% to +9%). So the MoE step's "
    "~36 s shortfall lies in the Megatron trainer's own passes (forward-backward and forward-only), not in "
    "generation, refit, host offload or vLLM's sleep / wake: the per-step MoE trainer cost the RL table's colocated "
    "MoE rows leave unexplained (README 'Whole RL steps': ~40 s outside generation on the v0.5 Qwen3-30B-A3B and "
    "DeepSeek-V3 H100 rows). Read per micro-batch (training: 64 packed bins per data-parallel rank of one "
    "~3,358-token sample each, forward and backward; log-probs: 2 x 16 bins of four samples, forward only) the "
    "missing time is ~0.42 s per training micro-batch and ~0.30 s per log-prob micro-batch, nearly independent of the micro-batch's tokens "
    "(x4 between the two): a per-micro-batch, per-MoE-layer cost (~6 ms per layer and forward over 48 layers) "
    "beyond the engine's dispatcher synchronisation (moe_layer_host_s 3.26 ms, 0.19 s per training micro-batch here). "
    "Checked (rlmoetrainer), not it: the kernels. NeMo RL v0.3.0 (b1c86a81) builds the model config with NeMo's HF "
    "importer (nemo/tron/converter/qwen.py -> Qwen3MoEConfig at NeMo 33259f25: moe_grouped_gemm, the alltoall "
    "dispatcher and moe_permute_fusion all on, as in the pretraining recipes moe_layer_host_s is fitted on) and "
    "megatron_policy_worker.py overrides only the parallel sizes, precision, recompute, the router (fp64, frozen, no "
    "load balancing: 0.4 s a step at most, tests/test_rl_step.py) and RoPE fusion; empty_unused_memory_level 1 empties the cache once per "
    "global batch (4 a step), not per micro-batch; the packed micro-batch's max_seqlen .item() "
    "(nemo_rl/models/megatron/common.py) and the THD attention path are the dense runs' too, which run 4x the micro-"
    "batches per rank (Qwen3-32B: 256) and are within 20%; the MoE layer itself sees no cu_seqlens. The v0.5 / v0.6 "
    "Qwen3-30B-A3B recipes run the permutation unfused (grpo_math_1B.yaml moe_permute_fusion false; only the "
    "DeepSeek-V3 and Qwen3-235B performance recipes set it true): Megatron-Core's unfused permute syncs on "
    "masked_select and sort_chunks_by_idxs splits into one chunk per expert on the host (128), unpriced, but the "
    "fused v0.3 run has the same per-micro-batch shortfall, and so does the v0.5 H100 row (TP1 x EP8, 32 H100: 64 "
    "training and 2 x 16 log-prob micro-batches per rank, 64 x 0.42 + 32 x 0.30 = 36.5 s against the ~40 s it leaves "
    "outside generation): the cause is what both stacks share and the fitted pretraining runs do not. Candidates, none with a "
    "published figure: NeMo RL's own loop in Ray actors without the host-jitter remedies Megatron-Bridge's performance "
    "guide lists for host-bound runs and its performance scripts apply (manual garbage collection: Megatron-Bridge "
    "v0.5.0 scripts/performance/perf_plugins.py enable_manual_gc True, interval 100; none in nemo_rl v0.3.0-v0.6.0; "
    "CPU / NUMA binding), real routing (the pretraining rows force-balance the router), the caching allocator with "
    "expandable_segments off under the dropless dispatcher's varying shapes. Not priced. rlmb (issue 18): this reading "
    "and pull request 3295's (tests/test_rl_logprob_b200.py) are now the model's measured cost of NeMo RL's Megatron "
    "MoE trainer loop, mechanism unnamed (student.train_loop nemo-rl-megatron, trainsim/posttrain/data/"
    "train_loops.yaml: 6.50 ms a training and 4.63 ms a log-prob micro-batch and MoE layer, 8.68 / 6.18 ms at the "
    "high end), which takes this run to 43.3 s (-13%) and 20.6 s (-10%).")
#: gcjitter (issue 18, criterion 4): the garbage-collection candidate above, looked up; still unpriced, for want of a
#: rate. What is sourced: NeMo RL v0.3.0 (.python-version 3.12) and v0.6.0 (3.13.13) run CPython's generational
#: collector at its default thresholds (700 / 10 / 10; no gc.disable / gc.freeze / set_threshold anywhere in nemo_rl up
#: to 7ea279a), and a full collection starts only when the objects promoted into the oldest generation since the last
#: one exceed a quarter of the long-lived total (CPython's collector: Modules/gcmodule.c to 3.12, Python/gc.c in 3.13;
#: 3.14's incremental collector is not used there). A full collection walks the whole heap, so one rank's
#: full-collection time per unit of work is 4 x c x r, c the seconds per tracked object, r the objects promoted per unit
#: of work, whatever the heap's size; with expert parallelism each pause stalls every rank of the group at the next
#: dispatch, so G ranks lose G x 4 x c x r. Published c: 1.02 us (ROCm/ATOM pull request 1991: 979 ms for 959,694
#: objects), 0.33 us (268 ms for 819,923), 0.65 us (NVIDIA-NeMo/Automodel pull request 3896: 0.65 s for ~1 M). Pull
#: request 3295's 4.65 ms per MoE layer and log-prob micro-batch at EP16 would need 0.29 ms per rank, r = 70-220 objects
#: promoted per MoE layer pass. No source counts r; a CPU probe of Megatron-Core 0.16.1's own MoE layer code
#: (scripts/gc_promotion_probe.py on branch gcjitter, not landed: it needs torch and Megatron-Core, which trainsim does not depend on; local spec, SequentialMLP, alltoall dispatcher, top-8, world size 1, 8 experts) finds
#: the gen-0 counter, net of frees, crossing 700 only where objects stay alive: a no_grad forward (NeMo RL's log-probs
#: run under torch.no_grad) collects gen-0 once per ~89 layer passes and promoted nothing in 800 (16 layers), while
#: forward + backward keeps the autograd objects alive, so r grows with depth: 0.7 (4 layers), 24.3 (16), 71 (48 layers,
#: gen-0 every 5 layer passes) a layer pass. It scales with the local experts SequentialMLP loops over (16 layers: 24.3
#: with 8, 1,194 with 128; Qwen3-30B-A3B at EP16 has 8 a rank, at EP8 16; TE's grouped GEMM, which NeMo RL's recipes
#: use, splits its input per expert too). At r = 71 and EP16, 16 x 4 x c x r = 1.5-4.6 ms per MoE layer and training
#: micro-batch (c 0.33-1.02 us), part of the v0.3 blog's 8.7 ms; for log-probs the layer's code gives ~0, against 4.65 /
#: 6.2 ms measured, so GC is at most part of the training shortfall and not the log-prob one (TE, DeepEP and NeMo RL's
#: own loss and worker code are not in the probe). Per-step published figures, none with micro-batches per step:
#: deepspeedai/DeepSpeed pull request 8451 (Qwen3-30B-A3B EP16, 16 H100, 27 gen-2 collections of 234-327 ms in 20 steps,
#: 7.60 s, all in the forward; its pull request 8423 traced the slow steps to one late rank at the DeepEP dispatch:
#: medians 633 / 638 ms, means 755 / 747 ms, 16 of 40 steps over 800 ms): 7.60 s / (20 x 48 layers) = 7.9 ms per MoE
#: layer and step, the NeMo RL range (4.6-8.7 ms) only if a step there is one micro-batch; Automodel pull request 3896
#: (Kimi-K3, 256 GB200, EP32 PP8): manual GC every 10 steps 56.62 -> 52.24 s an iteration (-7.7%); marin-community/marin
#: pull request 9224 (JAX MoE, EP64): 0.675 s of a 17.591 s update (3.8%) above quiet steps, put down to staggered GC;
#: pytorch/torchtitan pull request 148 (dense FSDP, 512 GPUs): +1.5%. Against GC as the whole gap: AMD Primus benchmarks
#: every MoE run with manual_gc at interval 1 (examples/moe_package/README.md, 'Manual GC Helper') and its DeepSeek-V2
#: rows still miss ~5 ms per MoE layer and micro-batch (README, AMD Primus MoE); NeMo RL's dense trainers (same workers,
#: same automatic GC) are within 20% above, so a dense layer promotes few objects or its pauses stall few ranks. Side
#: finding: NeMo RL v0.5.0-v0.7.0 end each refit's weight streaming with an explicit full gc.collect()
#: (nemo_rl/models/policy/utils.py, stream_weights_via_ipc_zmq_impl), removed at ec46ab3 (pull request 2983, 2026-07-20)
#: as 'a multi-second rank straggler'; once a step, unquantified, not priced.
_REFIT = (
    "'Refit' (prepare_for_generation) against the colocated refit plus the host-offload's device-to-host half: "
    "Llama 8B 7.7 s vs 5 s (+53%; the optimizer's 12 GB per chip at the 1.8 GB/s per-tensor pageable rate of "
    "NVIDIA-NeMo/RL issue 3976 alone is 6.7 s, so this v0.3 host moved it at >= 2.4 GB/s), Llama 70B 10.2 vs 14 s "
    "(-27%), Qwen3-32B 4.3 vs 7 s (-39%), Qwen3-30B-A3B 4.2 vs 12 s (-65%): no one copy rate fits, and v0.3's "
    "refit had per-bucket CUDA-IPC handle costs its later versions removed (NeMo RL blog 'Journey of Optimizing "
    "Weight Transfer in Large MoE Models by 10x', 2025-08-12: DeepSeek-V3 EP64 PP8 -> TP64 refit 47.2 s, of which "
    "33.5 s IPC handle transfer at v0.3); not modelled for a stack the RL table does not hold")


def without_loop(pt: PostTrain) -> PostTrain:
    """``pt`` with the engine's own training loop: no RL-framework loop cost (``student.train_loop`` unset)."""
    return dataclasses.replace(pt, student=pt.student.model_copy(update={"train_loop": None}))


def _phases(name: str, loop: bool = True) -> dict[str, float]:
    """Model seconds per published column: train, logprobs, refit (weights + D2H half of offload), generation;
    ``loop`` False: without the spec's training-loop cost (the model the per-micro-batch readings are taken on)."""
    pt = load_posttrain(DATA / name)
    res = evaluate(pt if loop else without_loop(pt))
    st = stage_seconds(res)
    return {"train": st.get("train", 0.0), "logprobs": st.get("logprobs", 0.0),
            "refit": st.get("weights", 0.0) + 0.5 * st.get("offload", 0.0),
            "generation": st.get("rollout", 0.0), "total": res["step_time_s"]}


def _err(name: str, column: str, loop: bool = True) -> float:
    return _phases(name, loop)[column] / PUBLISHED[name][column] - 1.0


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_columns_add_up(name):
    """The four published phases fill the step but for the small timers the table leaves out (data processing,
    rewards, training_prep, logprob_inference_prep): 109 of 112 s, 144 of 147, 211 of 213, 163 of 167."""
    p = PUBLISHED[name]
    parts = p["train"] + p["refit"] + p["generation"] + p["logprobs"]
    assert 0 <= p["total"] - parts <= 5


@pytest.mark.parametrize("column", ["train", "logprobs"])
@pytest.mark.parametrize("name", DENSE)
def test_dense_trainer_phases_within_20_percent(name, column):
    """Dense Megatron trainers: the training and log-prob phases each within 20% of the published timer
    (model: Llama 8B 25.0 / 19.6 s vs 28 / 18; Llama 70B 23.2 / 15.8 vs 28 / 18; Qwen3-32B 66.0 / 40.8 vs 68 / 40)."""
    e = _err(name, column)
    assert abs(e) <= 0.20, f"{name} {column}: {_phases(name)[column]:.1f} s vs {PUBLISHED[name][column]} s ({e:+.0%})"


@pytest.mark.parametrize("column", ["train", "logprobs"])
def test_moe_trainer_phases_within_20_percent(column):
    """With NeMo RL's measured loop cost (_MOE_TRAINER, rlmb) the MoE trainer's phases are within 20% (was a strict
    xfail: -53% / -41% without it). A consistency check, not validation: this run is a source of the cost itself
    (its training reading, scaled by the two log-prob readings' ratio, is the training value; its log-prob reading
    is the log-prob high end; posttrain/data/train_loops.yaml), so it says the data file still reproduces its
    sources at the present engine. The independent checks are the RL table's MoE rows (validation/rl/, test_rl_step.py)."""
    assert abs(_err(MOE, column)) <= 0.20


#: the MoE trainer gap without NeMo RL's loop cost as _MOE_TRAINER states it (model / published - 1), held within
#: GAP_BAND so the text is brought up to date when the gap moves
MOE_GAP = {"train": -0.53, "logprobs": -0.41}
GAP_BAND = 0.05


#: the per-micro-batch reading _MOE_TRAINER states: seconds missing per micro-batch on one data-parallel rank, and
#: the micro-batches each rank runs (hand derivation: 2,048 samples over dp = 64 / (TP2 x PP1) = 32 ranks, 64 each;
#: training packs one ~3,358-token sample per 4,096-token bin, 64 bins; each of the two log-prob passes packs
#: floor(16,384 / 3,358) = 4 samples per bin, 16 bins, 32 in all)
MOE_PER_MB = {"train": (0.42, 64), "logprobs": (0.30, 32)}


@pytest.mark.parametrize("column", sorted(MOE_PER_MB))
def test_moe_trainer_shortfall_per_micro_batch_is_as_stated(column):
    """(published - model) / micro-batches per rank within 0.05 s of the figure _MOE_TRAINER gives for it, so the
    per-micro-batch reading (and the v0.5 cross-check built on it) is brought up to date when the model moves."""
    stated, mbs = MOE_PER_MB[column]
    assert f"~{stated:.2f} s per" in _MOE_TRAINER
    per_mb = (PUBLISHED[MOE][column] - _phases(MOE, loop=False)[column]) / mbs
    assert abs(per_mb - stated) <= 0.05, f"{column}: now {per_mb:.3f} s per micro-batch, stated {stated}"


@pytest.mark.parametrize("column", sorted(MOE_GAP))
def test_moe_trainer_gap_is_as_stated(column):
    stated = MOE_GAP[column]
    assert f"({100 * stated:+.0f}%)" in _MOE_TRAINER
    e = _err(MOE, column, loop=False)
    assert abs(e - stated) <= GAP_BAND, f"{column}: now {e:+.1%}, stated {stated:+.0%}: update _MOE_TRAINER"


def test_moe_gap_is_outside_generation():
    """The MoE run's published non-generation time exceeds the model's by over 25 s while the dense runs' is
    met within 15 s each way (published - model: MoE +44.7 s; Llama 8B -5.3, Llama 70B +6.1, Qwen3-32B
    +2.3 s): the shortfall is the trainer's, whatever the rollout rate (generation is left out
    on both sides: published total - generation against the model's step - rollout stage). Read without NeMo RL's
    loop cost, which this finding located (the dense runs have no MoE layer to pay it)."""
    def outside(name):
        m = _phases(name, loop=False)
        return (PUBLISHED[name]["total"] - PUBLISHED[name]["generation"]) - (m["total"] - m["generation"])
    assert outside(MOE) > 25.0
    for name in DENSE:
        assert abs(outside(name)) < 15.0, f"{name}: {outside(name):+.1f} s outside generation"


@pytest.mark.xfail(strict=True, reason=_REFIT)
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_refit_column_within_20_percent(name):
    assert abs(_err(name, "refit")) <= 0.20


def test_dsv3_export_between_published_speed_of_light_and_measured_gather():
    """NeMo RL's refit blog ('NeMo-RL: Journey of Optimizing Weight Transfer in Large MoE Models by 10x',
    NVIDIA-NeMo blog 2025-08-12, Table 1) times step 1 of a colocated DeepSeek-V3 refit, every policy rank gathering
    the full weights (training EP64 x PP8 on H100, generation TP64): 12.2 s measured on NeMo RL v0.3 against a
    speed of light of 3.3 s 'based on full utilization of GPU network and HBM bandwidth, and zero cpu runtime
    overhead'. The model's export (:func:`trainsim.posttrain.phases.megatron_export_s`: the pipeline broadcast and
    the expert all-gather, priced with the engine's collectives) must lie between the two: no faster than the
    links allow, no slower than the unoptimised v0.3 gather (its per-tensor host costs since removed: Megatron-Bridge
    caches each tensor's spec). Model: 5.3 s on 512 H100 (dp 64), 0.24 s of it the per-call latencies."""
    from trainsim.perf.calibration import calib_for
    from trainsim.posttrain.phases import megatron_export_s

    pt = load_posttrain(Path(__file__).resolve().parents[1] / "validation" / "rl" / "nemo-rl-h100-dsv3-256-sync.yaml")
    system = pt.clusters[pt.student.cluster].system
    coll_eff = calib_for(system.chip.family, chip=system.chip.id).coll_eff
    t = megatron_export_s(pt.student_arch, system, {"tp": 1, "etp": 1, "ep": 64, "pp": 8, "dp": 64}, coll_eff)
    assert 3.3 <= t <= 12.2, t


#: H100 SXM FP64 Tensor Core peak, FLOP/s (NVIDIA H100 Tensor Core GPU datasheet: 67 teraFLOPS FP64 Tensor Core, SXM)
H100_FP64_TENSOR_FLOPS = 67e12


def test_fp64_router_is_a_small_part_of_the_moe_shortfall():
    """NeMo RL runs the MoE router in FP64 (examples/configs/grpo_math_1B.yaml ``moe_router_dtype: fp64`` at v0.3.0 -
    v0.6.0): Megatron-Core's RouterGatingLinearFunction skips Transformer Engine for FP64 and runs torch.mm, forward
    2 x hidden x experts FLOPs per token and MoE layer (megatron/core/transformer/moe/moe_utils.py at d30c3ae), which
    the engine does not price. By hand on the v0.3 run's log-prob micro-batch: floor(16,384 / 3,358) = 4 samples,
    13,432 tokens; 2 x 13,432 x 2,048 x 128 = 7.04 GFLOP a MoE layer, 0.105 ms at the H100's 67 TFLOP/s FP64 tensor
    peak, under 2% of the 6.25 ms a MoE layer the run misses per log-prob micro-batch (MOE_PER_MB: 0.30 s over its
    48 MoE layers), and under 4% at half the peak: the FP64 router is not the per-layer shortfall (tests/
    test_rl_step.py, note rltrainer)."""
    from trainsim.posttrain.phases import logprob_microbatches

    pt = load_posttrain(DATA / MOE)
    st, arch = pt.step, pt.student_arch
    moe = [lk for lk in arch.layers if lk.moe is not None]
    assert (arch.hidden, moe[0].moe.experts, sum(lk.n_layers for lk in moe)) == (2048, 128, 48)
    lp_len, _ = logprob_microbatches(st.sequences, 32, st.seq_len, st.logprob_pack_tokens, st.pad_multiple)
    assert lp_len == 4 * 3358 == 13432
    router_s = 2.0 * lp_len * arch.hidden * moe[0].moe.experts / H100_FP64_TENSOR_FLOPS
    assert router_s == pytest.approx(0.105e-3, rel=0.01)
    shortfall_per_layer_s = MOE_PER_MB["logprobs"][0] / 48
    assert router_s / shortfall_per_layer_s < 0.02
    assert 2.0 * router_s / shortfall_per_layer_s < 0.04


# --- NeMo RL's measured MoE trainer-loop cost (rlmb, issue 18 criterion 4) -----------------------------------------
#: pull request 3295's spec (tests/test_rl_logprob_b200.py) and its published log-prob phase, seconds
PR3295 = DATA / "nemo-rl-pr3295-b200-q30-16-sync.yaml"
PR3295_LOGPROB_S = 87.5
#: Qwen3-30B-A3B's MoE layers (its config.json: num_hidden_layers 48, every layer sparse: decoder_sparse_step 1)
Q30_MOE_LAYERS = 48


def _loop_cost():
    from trainsim.posttrain.loops import train_loop_cost
    cost = train_loop_cost("nemo-rl-megatron")
    assert cost is not None
    return cost


def test_loop_cost_is_the_two_published_readings_by_hand():
    """The data file's NeMo RL Megatron MoE costs are the two published phase splits read per MoE layer and
    micro-batch on one rank against the model without them, by hand: pull request 3295's log-probs, (87.5 s - model)
    / (128 micro-batches x 48 layers), is the value (dp 16, 2,048 / 16 = 128 samples a rank, two to an 8,192-token
    bin, 64 bins a pass, two passes); the v0.3 blog's training (50 s - model) / (64 x 48) and log-probs (23 s -
    model) / (32 x 48) are the high ends (MOE_PER_MB's counts); the training value is the v0.3 training reading
    scaled by the log-prob readings' ratio. Each within 1%, so the file is re-read when the engine under it moves (a
    consistency check of the data file against its sources, not validation)."""
    cost = _loop_cost()
    pr = load_posttrain(PR3295)
    pr_lp = (PR3295_LOGPROB_S - stage_seconds(evaluate(without_loop(pr)))["logprobs"]) / (128 * Q30_MOE_LAYERS)
    v03 = _phases(MOE, loop=False)
    v03_tr = (PUBLISHED[MOE]["train"] - v03["train"]) / (64 * Q30_MOE_LAYERS)
    v03_lp = (PUBLISHED[MOE]["logprobs"] - v03["logprobs"]) / (32 * Q30_MOE_LAYERS)
    assert cost.moe_layer_logprob_s == pytest.approx(pr_lp, rel=0.01)
    assert cost.logprob_range_s == pytest.approx((pr_lp, v03_lp), rel=0.01)
    assert cost.moe_layer_train_s == pytest.approx(v03_tr * pr_lp / v03_lp, rel=0.01)
    assert cost.train_range_s == pytest.approx((v03_tr * pr_lp / v03_lp, v03_tr), rel=0.01)


def test_loop_cost_added_to_each_phase_by_hand():
    """What the loop adds, by hand, at the data file's 6.50 / 4.63 ms: the v0.3 run (pp 1) 6.50 ms x 48 x 64 =
    19.97 s of training and 4.63 ms x 48 x 32 = 7.11 s of log-probs; pull request 3295's run 4.63 ms x 48 x 128 =
    28.45 s of log-probs (and 6.50 ms x 48 x 4 global batches x 512 / 16 = 128 micro-batches = 39.94 s of training);
    TrainTime reports them as loop_update_s / loop_forward_s."""
    from trainsim.posttrain.timeline import trainer_time

    with_loop, without = _phases(MOE), _phases(MOE, loop=False)
    assert with_loop["train"] - without["train"] == pytest.approx(6.50e-3 * 48 * 64, rel=1e-3)
    assert with_loop["logprobs"] - without["logprobs"] == pytest.approx(4.63e-3 * 48 * 32, rel=1e-3)
    t = trainer_time(load_posttrain(PR3295))
    assert t.loop_forward_s == pytest.approx(4.63e-3 * 48 * 128, rel=1e-3)
    assert t.loop_update_s == pytest.approx(6.50e-3 * 48 * 128, rel=1e-3)


def test_loop_cost_meets_the_published_phases():
    """With the cost, pull request 3295's log-prob phase is its published 87.5 s (within 2%; was 59.1 s, -32%), and
    the v0.3 run's phases sit below the blog's, within 20% (the value is the low end of the two sources: 43.3 / 20.6 s
    against 50 / 23 s). A consistency check, not validation: both runs are the sources the cost was read from
    (pull request 3295's log-prob phase is the log-prob value, the v0.3 blog's phases the training value and the high
    ends), so this holds the data file to its sources while the engine under it moves."""
    assert stage_seconds(evaluate(load_posttrain(PR3295)))["logprobs"] == pytest.approx(PR3295_LOGPROB_S, rel=0.02)
    for column in ("train", "logprobs"):
        assert -0.20 <= _err(MOE, column) < 0.0


@pytest.mark.parametrize("name", DENSE)
def test_dense_trainer_pays_no_loop_cost(name):
    """The cost is per MoE layer: the dense runs' phases are the same with and without ``train_loop``."""
    a, b = _phases(name), _phases(name, loop=False)
    assert a == pytest.approx(b, rel=1e-12)


def test_train_loop_s_pipeline_by_hand():
    """:func:`train_loop_s`: ``cost x MoE layers of a stage x (m + pp - 1)``. DeepSeek-V3 at PP16: 58 MoE layers
    (61 layers, the first 3 dense), ceil(58 / 16) = 4 a stage; 16 micro-batches a rank pay 4.63 ms x 4 x (16 + 15) =
    0.574 s; pp 1: 4.63 ms x 48 x 128 = 28.45 s."""
    from trainsim.model.load import resolve_model
    from trainsim.posttrain.loops import moe_layers_per_stage, train_loop_s

    assert moe_layers_per_stage(resolve_model("deepseek-v3"), 16) == 4
    assert train_loop_s(4.63e-3, 4, 16, 16) == pytest.approx(4.63e-3 * 4 * 31, rel=1e-12)
    assert train_loop_s(4.63e-3, 48, 128) == pytest.approx(28.4467, rel=1e-4)


def test_unknown_train_loop_is_refused():
    """An unknown ``student.train_loop`` is a one-line input error naming the loops there are."""
    import yaml
    from trainsim.errors import TrainsimError
    from trainsim.posttrain.spec import parse_posttrain

    doc = yaml.safe_load(PR3295.read_text())
    doc["student"]["train_loop"] = "verl"
    with pytest.raises(TrainsimError, match="nemo-rl-megatron") as exc:
        parse_posttrain(doc)
    assert "\n" not in str(exc.value)
