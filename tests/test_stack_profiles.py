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
    assert plan_rules("megatron-lm-2023") == {"even_vpp": True, "zero3_fsdp2": False, "dualpipev_fb_overlap": False,
                                              "microbatch_groups": False}


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
