"""The search is no better than the experts without a reason (issue 14 item 3).

For every validation run taken from a tuned recipe (Megatron-Bridge / NeMo performance tables) the plan is removed
and the whole space the recipe's software stack offers is searched. The search's best plan must not be predicted
more than 15% faster than the recipe's own plan in the same model: a larger gap means a cost the model leaves free
(or a real gain the experts missed, which then needs its reason named here). Runs where that is so today are
named known gaps, each with the reason found, and xfail strictly: closing one fails the test until it leaves the
list. Against the published tuned throughput (model error included) the median must stay within 15%.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from trainsim.validate.recipes import check_recipe, tuned_recipe_files

RUNS = Path(__file__).resolve().parent.parent / "validation" / "runs"
LIMIT = 1.15

_MB = ("the search raises the micro-batch (8-16, with full recompute and ZeRO-3 to fit) to spread the per-MoE-layer "
       "host synchronisation (moe_layer_host_s, fitted 3.3 ms per layer and micro-batch outside whole-iteration "
       "CUDA graphs, 10.0 of the recipe plan's 30.0 s step on 16 H100, 0.6 s at micro-batch 16) and keeps the "
       "experts inside NVLink (EP 2 against EP 16 over InfiniBand: 5.1 -> 0.6 s); full recompute costs it 5.1 s, "
       "its rerun of the dispatcher's sync included (all of it, the sync being in the forward: perf/step.py "
       "MOE_HOST_SYNC_FORWARD_SHARE, moe_host_recompute_time). A real gain, measured on the same 8-GPU H100 "
       "nodes by another stack: NeMo AutoModel's Qwen3-30B-A3B (micro-batch 4, full "
       "recompute, FSDP2, DeepEP; automodel-qwen3-30b-a3b-h100-8-bf16) ran 12,040 tokens/s per GPU in BF16 "
       "against these recipes' 8,826-9,058 in FP8; no Megatron-Bridge H100 recipe raised the micro-batch (c)")

_FSDP = ("the search drops the pipeline for Megatron-FSDP (ZeRO-3, optim_grads_params) at one micro-batch per step "
         "(micro-batch 16 x dp 256 = the 4,096-sequence batch, so the parameters are gathered once a step), the plan "
         "family NVIDIA's own Megatron-FSDP DeepSeek-V3 example recommends (Megatron-LM d98e8a64 "
         "examples/megatron_fsdp/sbatch_mfsdp_deepseek_v3.sh: TP 1, EP 8, no PP, ZeRO-3, HybridEP, MBS 4 at GBS "
         "2048); on 256 B200 it saves the per-MoE-layer host sync of 256 micro-batches (-3.7 s of the recipe plan's "
         "20.4 s step), the 1F1B bubble and transfers (-1.8 s) and the inter-node all-to-all (EP 2 inside NVLink, "
         "-0.8 s) against full recompute (+3.5 s) and the exposed gathers (+1.5 s), at 172 of 180 GiB (B300: 18.2 "
         "against 20.9 s, 195 of 270 GiB). NVIDIA publishes no throughput for that example, so the gain is "
         "unmeasured: a named gap, not evidence (c)")

KNOWN_GAPS = {
    "megatron-bridge-2604-dsv3-b200-256-mxfp8-pp16": _FSDP,
    "megatron-bridge-2604-dsv3-b300-256-mxfp8-pp16": _FSDP,
    "megatron-bridge-2608-dsv4-flash-gb300-128-mxfp8": "the search's best (ep 8, ZeRO-3, no recompute, micro-batch "
        "4: 5.77 s a step against the recipe plan's 6.70 s) cuts what the model charges per micro-batch: the "
        "all-to-all over 8 NVLink peers instead of 64 (-0.52 s), and the memory-bound glue and GEMM launches of "
        "DeepSeek-V4's per-layer eager kernels spread over 4x the tokens (-0.47 s), and no recompute (-0.15 s), for "
        "+0.22 s of exposed gathers, at 250 of 279 GiB. The recipe plan itself is predicted 19% above its published 8,224 tokens/s: about 1.1-1.3 "
        "s a step the model does not price (issue 14: teacher-score recompute, gradient-hook kernels), and if that "
        "cost is per micro-batch the best plan's gain shrinks with it; unmeasured (c)",
    "megatron-bridge-2511-qwen3-30b-a3b-b200-8-fp8mx-mbs1": "the search's best (24,314 tokens/s per GPU, "
        "micro-batch 8, pp 2 ep 4) is 0.90x what NVIDIA's own 26.04.01 recipe measured on the same 8 B200 with "
        "micro-batch 4 and HybridEP (27,136: megatron-bridge-260401-qwen3-30b-a3b-b200-8-mxfp8, its own plan "
        "predicted at 25,306); a real gain the 25.11 recipe (micro-batch 1, alltoall) left (c). The 25.11 recipe's "
        "own plan is predicted at 8,230 against 9,299 published: at micro-batch 1 its layers are host-bound "
        "(perf/step.py moe_launch_floor, the per-expert launches of TE 2.9's grouped GEMM)",
    "megatron-bridge-2511-qwen3-30b-a3b-h100-16-fp8cs-pp2": _MB,   # micro-batch 1 as the shipped recipe (v0.2.0)
    "megatron-bridge-260201-qwen3-30b-a3b-h100-16-fp8-pp2": _MB,
    "megatron-bridge-2606-qwen3-30b-a3b-h100-16-fp8": _MB,
    "nemo-2407-nemotron-22b-h100-64-fp8": "the search's best (5,528 tokens/s per GPU: tp 4 pp 1 dp 16, "
        "micro-batch 4) is 1.36x the recipe's plan as predicted (4,062; published 4,312): the recipe splits the 40 "
        "layers evenly over pp 4 (a smaller last stage, last_pipeline_num_layers, came with Megatron-Core 0.10: "
        "transformer_config.py at core_r0.10.0, not at core_r0.8.0, NeMo 24.07's), so its last rank also runs the 256,000-entry output head, in BF16 (perf/compute.py head_gemm_fwd): forward + backward 6.0 decoder "
        "layers' GEMM time, 1.45x the mean rank's GEMM work (compute_gemm 3.21 s against 2.24 s pipeline-free). A "
        "real gain, measured by the same stack on the same 64 H100: NeMo 24.07's GPT3-20B, whose layers are "
        "Nemotron-22B's (hidden 6144, 48 heads, ffn 24576; nemo-2407-gpt3-20b-h100-64-fp8), ran pipeline-free "
        "(tp 2, micro-batch 2) at 750 model TFLOP/s per GPU against Nemotron-22B's 562 at pp 4 in the same table; "
        "the search's best is 720 in NVIDIA's count (test_nemotron_22b_gain_is_measured)",
}


@pytest.fixture(scope="module")
def checks():
    out = {}
    for f in tuned_recipe_files(RUNS):
        c = check_recipe(f)
        if c is not None:
            out[c.run] = c
    return out


def test_every_tuned_recipe_is_checked(checks):
    # the Megatron-Bridge / NeMo tables in validation/runs: at least 60 recipes with a plan that fits somewhere
    assert len(checks) >= 60
    assert set(KNOWN_GAPS) <= set(checks), sorted(set(KNOWN_GAPS) - set(checks))


def test_qwen3_b200_gain_is_measured(checks):
    # the 25.11 gap is named a real gain because NVIDIA measured it later: the search's best plan for the 25.11
    # run (alltoall, MXFP8, 8 B200) within issue 14's 15% of the 26.04 recipe's published 27,136 tokens/s per GPU
    # (micro-batch 4, HybridEP, MXFP8, same 8 B200; Megatron-Bridge performance-summary-archive.md, NeMo 26.04.01
    # table) and not above it by more than 5% (the 25.11 stack's alltoall has no reason to beat HybridEP)
    c = checks["megatron-bridge-2511-qwen3-30b-a3b-b200-8-fp8mx-mbs1"]
    assert 0.85 <= c.search_best / 27136.0 <= 1.05


def test_nemotron_22b_gain_is_measured(checks):
    # the Nemotron-22B gap is named a real gain because NVIDIA measured a pipeline-free plan of the same layers:
    # NeMo 24.07's performance table (NVIDIA/NeMo docs/source/performance/performance_summary.md at 8e3d65dc, FP8,
    # 64 DGX-H100) gives GPT3-20B (hidden 6144, 48 heads, ffn 24576 as Nemotron-22B; tp 2 pp 1) 750 model TFLOP/s
    # per GPU and Nemotron-22B (tp 2 pp 4 vp 10) 562 at 4,312 tokens/s. The search's best for Nemotron-22B, in
    # NVIDIA's FLOP count (562e12 / 4,312 FLOPs per token), within issue 14's 15% of the 750 and not above it by
    # more than 5% (its 256,000-entry BF16 head costs more per FLOP than GPT3-20B's 50,257)
    c = checks["nemo-2407-nemotron-22b-h100-64-fp8"]
    tflops = c.search_best * 562.0 / 4312.0
    assert 0.85 <= tflops / 750.0 <= 1.05


def test_dsv3_fsdp_gap_is_the_one_microbatch_fsdp_plan(checks):
    # _FSDP names its cause: a pipeline-free ZeRO-3 plan with one micro-batch per step (micro-batch x dp = the
    # recipe's 4,096-sequence global batch, Megatron-Bridge table GBS 4096) and no tensor parallelism, as NVIDIA's
    # Megatron-FSDP DeepSeek-V3 example; a different best plan means the reason no longer holds
    for name in ("megatron-bridge-2604-dsv3-b200-256-mxfp8-pp16", "megatron-bridge-2604-dsv3-b300-256-mxfp8-pp16"):
        b = checks[name].best_plan
        assert (b["pp"], b["tp"], b["zero"]) == (1, 1, 3), (name, b)
        assert b["micro_batch"] * b["dp"] == 4096, (name, b)


def test_search_median_within_15_percent_of_published(checks):
    ratios = [c.over_published for c in checks.values()]
    assert statistics.median(ratios) <= LIMIT


@pytest.mark.parametrize("name", sorted(p.stem for p in tuned_recipe_files(RUNS)))
def test_search_no_better_than_the_recipe_plan(checks, name):
    c = checks.get(name)
    if c is None or c.over_recipe_plan is None:
        pytest.skip("no steady-state throughput, or the recipe's plan fits nowhere in the model "
                    "(tests/test_published_plans_fit.py names those)")
    if name in KNOWN_GAPS:
        if c.over_recipe_plan <= LIMIT:
            pytest.fail(f"gap closed ({c.over_recipe_plan:.2f}x): remove {name} from KNOWN_GAPS")
        pytest.xfail(KNOWN_GAPS[name])
    assert c.over_recipe_plan <= LIMIT, (f"search best {c.search_best:.0f} tok/s/chip is {c.over_recipe_plan:.2f}x "
                                         f"the recipe's plan ({c.stated_plan:.0f}); best plan {c.best_plan}")
