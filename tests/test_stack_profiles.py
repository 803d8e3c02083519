"""Software-stack profiles a user names (issue 14 item 2): what ``plan --framework ID`` offers and what ``estimate``
fills for the fields a source leaves out, for profiles added from the stack's own code at a dated commit. The
expected values are read from that code (cited per test), not from trainsim's output."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from trainsim.api import estimate, parse_run, search_plans
from trainsim.errors import TrainsimError
from trainsim.frameworks import plan_rules, profile, runtime_settings, stack_flags, with_defaults
from trainsim.spec import PlanSpec

DENSE = """
name: stack-profile
framework: {fw}
model: {{name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}}
system: dgx-h100
chips: 64
training: {{seq_len: 4096, global_batch_seqs: 256, precision: {prec}}}
plan: {plan}
"""


def _run(fw: str, prec: str = "bf16", plan: str = "{}"):
    return parse_run(yaml.safe_load(DENSE.format(fw=fw, prec=prec, plan=plan)))


def _feasible(fw: str, prec: str = "bf16"):
    cols = search_plans(_run(fw, prec), framework=fw).feasible_table()
    assert cols and len(cols["tp"]) > 0
    return cols


# ---------------------------------------------------------------- megatron-lm-2023 (Megatron-LM 23.04-23.08)


def test_megatron_lm_2023_search_offers_only_what_23_08_has():
    # NVIDIA/Megatron-LM 23.08 (375395c187): 1F1B and interleaved; the distributed optimizer (ZeRO-1) but no
    # ZeRO-2/3; no --context-parallel-size or --expert-model-parallel-size (both first in core_v0.4.0); FP8 through
    # Transformer Engine (--fp8-format)
    c = _feasible("megatron-lm-2023", "fp8")
    assert set(c["schedule"]) <= {"1f1b", "interleaved"} and "interleaved" in set(c["schedule"])
    assert set(c["zero"].tolist()) <= {0, 1} and set(c["zero"].tolist()) == {0, 1}
    assert set(c["cp"].tolist()) == {1} and set(c["ep"].tolist()) == {1}
    # the interleaved schedule as 23.08 builds it: pp divides the 32 layers and vpp the layers per stage
    # (megatron/arguments.py:141-150, megatron/model/transformer.py _get_num_layers), and the number of
    # micro-batches is a multiple of pp (megatron/core/pipeline_parallel/schedules.py:430)
    il = c["schedule"] == "interleaved"
    pp, vpp, dp, mb = (c[k][il] for k in ("pp", "vpp", "dp", "micro_batch"))
    assert np.all(32 % pp == 0) and np.all((32 // pp) % vpp == 0)
    m = c["global_batch_seqs"][il] // (dp * mb)
    assert np.all(m % pp == 0)
    # and only with pp > 2 (megatron/arguments.py:142-144 at 23.08: 'pipeline-model-parallel size should be greater
    # than 2 with interleaved schedule')
    assert pp.min() >= 3
    assert plan_rules("megatron-lm-2023") == {"even_vpp": True, "zero3_fsdp2": False, "dualpipev_fb_overlap": False,
                                              "microbatch_groups": False, "vpp_min_pp3": True,
                                              # megatron/model/transformer.py _get_num_layers at 23.08 asserts
                                              # num_layers % pp == 0 for every plan, not only interleaved ones
                                              "even_pp": True}
    # Megatron-Core after 3ee489d9ea (May 2024) interleaves at pp 2: the 2026 profile's search offers it
    c26 = _feasible("megatron-bridge-2026")
    assert (c26["pp"][c26["schedule"] == "interleaved"] == 2).any()


def test_megatron_lm_before_may_2024_interleaves_only_above_pp_2():
    # the same assert in v2.5 (megatron/arguments.py:119-120) and d63c254 / v3.0 (:147-148): 2021 and 2022 profiles
    for fw in ("megatron-lm-2021", "megatron-lm-2022", "megatron-lm-2023"):
        assert plan_rules(fw)["vpp_min_pp3"] is True, fw
    # removed by 3ee489d9ea (31 May 2024), first released in core_v0.8.0: the profiles read at core_r0.9 and later
    for fw in ("megatron-core-2024", "megatron-bridge-2025", "megatron-bridge-2026"):
        assert plan_rules(fw)["vpp_min_pp3"] is False, fw


def test_megatron_lm_2023_refuses_interleaved_at_pp_2():
    run = _run("megatron-lm-2023", plan="{tp: 2, pp: 2, vpp: 2, schedule: interleaved, zero: 1, micro_batch: 1}")
    with pytest.raises(TrainsimError, match="only with pp > 2"):
        estimate(run)
    ok = estimate(_run("megatron-lm-2023", plan="{tp: 2, pp: 4, vpp: 2, schedule: interleaved, zero: 1, "
                                                "micro_batch: 1}"))
    assert ok.plan["schedule"] == "interleaved" and ok.plan["pp"] == 4


@pytest.mark.parametrize("fix, text", [("cp=2", "no context parallel"), ("zero=3", "offers zero 0, 1, not 3"),
                                       ("schedule=dualpipe", "not dualpipe"),
                                       ("schedule=zero-bubble", "not zero-bubble")])
def test_megatron_lm_2023_refuses_what_it_lacks(fix, text):
    with pytest.raises(TrainsimError, match=text):
        search_plans(_run("megatron-lm-2023"), framework="megatron-lm-2023", fix=fix)


def test_megatron_lm_2023_has_fp8_and_2022_has_not():
    # FP8 came with Transformer Engine (3499542, Dec 2022; first released in 23.04); v3.0 / d63c254 had none
    assert "fp8" in profile("megatron-lm-2023")["precisions"]
    with pytest.raises(TrainsimError, match="not fp8"):
        search_plans(_run("megatron-lm-2022", "fp8"), framework="megatron-lm-2022")


def test_megatron_lm_2023_defaults_for_unstated_fields():
    # Megatron-LM 23.08 megatron/arguments.py: --use-distributed-optimizer store_true (off), --recompute-granularity
    # None, no --num-layers-per-virtual-pipeline-stage (1F1B); --micro-batch-size required (no default: searched)
    plan, filled = with_defaults(PlanSpec(tp=2, pp=4), "megatron-lm-2023")
    assert filled == {"zero": 0, "recompute": "none", "schedule": "1f1b"}
    assert (plan.vpp, plan.micro_batch) == (1, None)
    run = _run("megatron-lm-2023", plan="{tp: 2, pp: 4}")
    est = estimate(run)
    assert (est.plan["zero"], est.plan["recompute"], est.plan["schedule"], est.plan["vpp"]) == (0, "none", "1f1b", 1)
    # --DDP-impl local: optimizer.reduce_model_grads after forward_backward_func (training.py train_step), no
    # --overlap-grad-reduce before core_v0.4.0; --transformer-impl local without --use-flash-attn: CoreAttention
    # (scores materialised); Transformer Engine's DelayedScaling for FP8
    rt = runtime_settings(run.training, "megatron-lm-2023")
    assert (rt["grad_sync_overlap"], rt["attention"], rt["fp8_recipe"]) == (False, "unfused", "delayed")
    assert stack_flags("megatron-lm-2023")["mcore_ddp_buckets"] is False
    # a run that states them keeps its own
    stated = _run("megatron-lm-2023", plan="{tp: 2, pp: 4}").training.model_copy(
        update={"attention": "flash", "grad_sync_overlap": True})
    rt = runtime_settings(stated, "megatron-lm-2023")
    assert (rt["grad_sync_overlap"], rt["attention"]) == (True, "flash")
    # and the defaults cost what they should: the unfused attention and the exposed gradient all-reduce are slower
    fast = estimate(parse_run({**yaml.safe_load(DENSE.format(fw="megatron-lm-2023", prec="bf16",
                                                                plan="{tp: 2, pp: 4}")),
                               "training": {"seq_len": 4096, "global_batch_seqs": 256, "precision": "bf16",
                                            "attention": "flash", "grad_sync_overlap": True}}))
    assert fast.plan == est.plan and fast.step_time_s < est.step_time_s


# ---------------------------------------------------------------- nanotron-2025 (huggingface/nanotron 7bc99232)


def test_afab_schedule_holds_every_microbatch_with_1f1b_bubble():
    # GPipe's order (Huang et al. 2019 sec. 2.3), nanotron's AllForwardAllBackwardPipelineEngine: all m forwards,
    # then all m backwards, so every rank holds m micro-batches (pp 1 included: the trainer always steps through
    # the engine); the idle time is 1F1B's (p - 1) t
    from trainsim.parallel.schedules import bubble_time, code, microbatches_in_flight
    afab, f1b = code("afab"), code("1f1b")
    pp, vpp, m = np.array([4, 4, 1]), np.array([1, 1, 1]), np.array([32, 32, 4])
    for rank in (0, 3):
        got = microbatches_in_flight(np.full(3, afab), pp, vpp, m, rank)
        assert got.tolist() == [32, 32, 4]
    # 1F1B rank 0 holds min(m, p) = 4, rank 3 (the last) 1; without a pipeline 1
    assert microbatches_in_flight(np.full(3, f1b), pp, vpp, m, 0).tolist() == [4, 4, 1]
    assert microbatches_in_flight(np.full(3, f1b), pp, vpp, m, 3).tolist() == [1, 1, 1]
    t = np.array([0.5, 0.5, 0.5])
    assert bubble_time(np.full(3, afab), pp, vpp, t).tolist() == [1.5, 1.5, 0.0]    # (4 - 1) x 0.5; none at pp 1
    assert bubble_time(np.full(3, afab), pp, vpp, t).tolist() == bubble_time(np.full(3, f1b), pp, vpp, t).tolist()


def test_nanotron_search_offers_only_what_7bc99232_has():
    # engine.py: afab and 1f1b only (no interleaved, zero-bubble or DualPipe); helpers.py: zero_stage > 0 is
    # ZeroDistributedOptimizer, ZeRO-1; recompute_layer (whole layers) or nothing; no all-to-all in nn/moe.py: no EP
    c = _feasible("nanotron-2025")
    assert set(c["schedule"]) == {"afab", "1f1b"}
    assert set(c["zero"].tolist()) == {0, 1}
    assert set(c["recompute"]) <= {"none", "full"}
    assert set(c["ep"].tolist()) == {1} and set(c["vpp"].tolist()) == {1}
    assert len(set(c["cp"].tolist())) > 1          # context parallelism (Qwen2's llama3_ring_attention)
    assert stack_flags("nanotron-2025")["cp_allgather"] is True


@pytest.mark.parametrize("fix, text", [("schedule=interleaved", "not interleaved"), ("zero=3", "not 3"),
                                       ("recompute=selective", "not selective"), ("zero=2", "not 2")])
def test_nanotron_refuses_what_it_lacks(fix, text):
    with pytest.raises(TrainsimError, match=text):
        search_plans(_run("nanotron-2025"), framework="nanotron-2025", fix=fix)


def test_nanotron_has_no_fp8_and_no_expert_parallelism():
    with pytest.raises(TrainsimError, match="not fp8"):
        search_plans(_run("nanotron-2025", "fp8"), framework="nanotron-2025")
    moe = {**yaml.safe_load(DENSE.format(fw="nanotron-2025", prec="bf16", plan="{ep: 8}")),
           "model": "qwen3-30b-a3b"}
    with pytest.raises(TrainsimError, match="no expert parallel"):
        search_plans(parse_run(moe), framework="nanotron-2025")


def test_nanotron_defaults_for_unstated_fields():
    # ParallelismArgs.__post_init__: pp_engine AllForwardAllBackwardPipelineEngine when unset; recompute_layer
    # False; _attn_implementation 'flash_attention_2'. zero_stage and micro_batch_size are required fields (searched)
    plan, filled = with_defaults(PlanSpec(tp=2, pp=4), "nanotron-2025")
    assert filled == {"recompute": "none", "schedule": "afab"}
    assert (plan.vpp, plan.zero, plan.micro_batch) == (1, None, None)
    run = _run("nanotron-2025", plan="{tp: 2, pp: 4, zero: 1, micro_batch: 1}")
    assert runtime_settings(run.training, "nanotron-2025")["attention"] == "flash2"
    est = estimate(run)
    assert (est.plan["schedule"], est.plan["recompute"]) == ("afab", "none")
    # AFAB holds all 256 / (8 x 1) = 32 micro-batches on every rank where 1F1B's first rank holds pp = 4: the
    # activations (the same per micro-batch under both) are about 8x; the step time is the same (same bubble)
    f1b = estimate(_run("nanotron-2025", plan="{tp: 2, pp: 4, zero: 1, micro_batch: 1, schedule: 1f1b}"))
    assert est.step_time_s == pytest.approx(f1b.step_time_s, rel=1e-12)
    ratio = est.memory["activations"] / f1b.memory["activations"]
    assert 7.5 < ratio < 8.5
