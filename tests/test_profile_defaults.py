"""Unstated is not optimal: a field a source leaves out takes what its software stack does by default
(issue 14 item 2), from the profile's ``defaults`` in catalog/data/framework_schedules.yaml."""
from __future__ import annotations


import yaml

from trainsim.api import estimate, parse_run
from trainsim.frameworks import frameworks, with_defaults
from trainsim.spec import PlanSpec


def test_megatron_defaults_fill_only_unstated_fields():
    # Megatron-Core r0.9 arguments: --recompute-granularity None, no distributed optimizer, no virtual pipeline;
    # --micro-batch-size has no default, so it stays for the search
    plan, filled = with_defaults(PlanSpec(tp=8, pp=4), "megatron-core-2024")
    assert filled == {"zero": 0, "recompute": "none", "schedule": "1f1b"}
    assert (plan.tp, plan.pp, plan.vpp, plan.schedule) == (8, 4, 1, "1f1b")
    # stated fields are kept; a stated vpp means the interleaved schedule, which the default must not override
    plan, filled = with_defaults(PlanSpec(tp=8, pp=4, vpp=4, recompute="full", zero=1), "megatron-core-2024")
    assert filled == {}
    assert plan.recompute == "full" and plan.zero == 1 and plan.schedule is None and plan.vpp == 4


def test_stack_specific_defaults():
    # Megatron-Bridge recipes turn the distributed optimizer on; torchtitan shards with FSDP2 and uses selective AC
    assert with_defaults(PlanSpec(), "megatron-bridge-2026")[1]["zero"] == 1
    assert with_defaults(PlanSpec(), "torchtitan-2024")[1] == {"zero": 3, "recompute": "selective"}
    # an in-house stack states no defaults: the search fills the fields
    assert with_defaults(PlanSpec(tp=8), "meta-llama3") == (PlanSpec(tp=8), {})


def test_every_default_is_offered_and_sourced():
    for fw, p in frameworks().items():
        d = p.get("defaults") or {}
        if d:
            assert p.get("defaults_source"), fw
        if "zero" in d:
            assert d["zero"] in p["zero"], fw
        if "recompute" in d:
            assert d["recompute"] in p["recompute"], fw
        if "schedule" in d:
            assert d["schedule"] in p["schedules"], fw


SPEC = """
name: defaults
framework: megatron-core-2024
model: {{name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}}
system: dgx-h100
chips: 64
training: {{seq_len: 4096, global_batch_seqs: 256, precision: bf16}}
plan: {{tp: {tp}, pp: {pp}}}
"""


def test_estimate_uses_the_defaults_and_says_so():
    est = estimate(parse_run(yaml.safe_load(SPEC.format(tp=2, pp=2))))
    # a 7B model on 64 H100 fits without recompute: the defaults stand, no search over them
    assert est.plan["recompute"] == "none" and est.plan["zero"] == 0 and est.plan["schedule"] == "1f1b"
    assert est.extra["profile_defaults"]["searched_instead"] == []


def test_defaults_that_fit_nowhere_are_searched():
    # a 70B-class model (80 layers, h 8192, ffn 28672: 6.9e10 parameters) on tp 8 x pp 2 x dp 4 H100s. Stack defaults
    # (plain data parallel, no recompute): weights 2 B + grads 2 B + fp32 master and Adam moments 12 B per
    # parameter, / (tp x pp) = 16 -> 6.9e10 x 16 B / 16 = 69 GB before activations: over the 80 GB of an H100
    # once activations and buffers come. The distributed optimizer (zero 1) shards the 12 B over dp 4: 4.3e9 x
    # (2 + 2 + 12 / 4) B = 30 GB of states, which fits. So the ZeRO stage and recompute are searched, and the
    # schedule keeps its default.
    spec = SPEC.format(tp=8, pp=2).replace("layers: 32, hidden: 4096, heads: 32, ffn: 11008",
                                            "layers: 80, hidden: 8192, heads: 64, ffn: 28672")
    est = estimate(parse_run(yaml.safe_load(spec)))
    assert est.fits
    info = est.extra["profile_defaults"]
    assert info["defaults"]["zero"] == 0 and info["defaults"]["recompute"] == "none"
    assert info["searched_instead"] == ["recompute", "zero"]
    assert (est.plan["schedule"], est.plan["vpp"]) == ("1f1b", 1)
    assert est.plan["zero"] == 1


def test_a_stack_without_model_parallelism_by_default_fills_tp_and_pp():
    # SageMaker model parallelism v1: tensor_parallel_degree and pipeline_parallel_degree default to 1 (BloombergGPT
    # describes only sharded data parallelism); a stated degree is kept
    p, filled = with_defaults(PlanSpec(zero=3), "other-sagemaker-smp")
    assert (p.tp, p.pp) == (1, 1) and filled == {"tp": 1, "pp": 1}
    p, filled = with_defaults(PlanSpec(tp=8), "other-sagemaker-smp")
    assert (p.tp, p.pp) == (8, 1) and filled == {"pp": 1}
