"""The plan search reaches DeepSeek-V3's published plan on DeepSeek's own stack (scenario S9).

HAI-LLM routes each token to at most M = 4 nodes and sends it once per node over InfiniBand (DeepSeek-V3 report,
arXiv 2412.19437, sec. 2.1.2 / 3.2.2 / 4.2), recomputes RMSNorm and the MLA up-projections (sec. 3.2.3) and puts the
embedding, output head and MTP module on the DualPipe edge ranks (sec. 3.2.3). The search does not search these
options, so they are the stack's (framework_schedules.yaml deepseek-hai-llm): before, the search saw Megatron's
all-to-all, an even split and core_attn recompute, and its best plan was 26.0 s against the published plan's 19.7 s.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from trainsim.errors import NoPlanError
from trainsim.estimate import estimate
from trainsim.frameworks import plan_options, stack_flags
from trainsim.parallel.plan import INT_FIELDS, Plans
from trainsim.perf.comm_ep import node_cap
from trainsim.plan_estimate import context
from trainsim.search import search
from trainsim.spec import PlanSpec, load_run

RUN = Path(__file__).resolve().parent.parent / "validation" / "runs" / "deepseek-v3-paper-h800-2048.yaml"
#: the plan of the report, sec. 3.2: written here, not read from the run file
PUBLISHED = dict(tp=1, pp=16, ep=64, etp=1, cp=1, vpp=1, schedule="dualpipe", zero=1, micro_batch=1,
                 recompute="selective")


@pytest.fixture(scope="module")
def run():
    return load_run(RUN)


def _with_plan(run, **fields):
    return replace(run, plan=PlanSpec.model_validate(fields))


#: and its options as the report states them (sec. 2.1.2, 3.2.3, 3.3.3)
STATED = dict(node_limit=4, recompute_modules=["layernorm", "mla_up_proj", "moe_act"], pipeline_split="balanced")


def test_search_finds_a_plan_at_least_as_fast_as_the_published_one(run):
    published = estimate(_with_plan(run, **PUBLISHED, **STATED))
    assert published.fits
    # the stack's defaults are the stated options: the bare plan is the same plan
    assert estimate(_with_plan(run, **PUBLISHED)).step_time_s == pytest.approx(published.step_time_s, rel=1e-12)
    best = search(_with_plan(run), top=1, with_pareto=False).best
    assert best is not None
    assert best.step_time_s <= published.step_time_s * (1 + 1e-9), (best.plan, best.step_time_s,
                                                                      published.step_time_s)
    # and pinned to the published parallel sizes the search returns that plan, not a slower one
    pinned = search(_with_plan(run, tp=1, pp=16, ep=64), top=1, with_pareto=False).best
    assert pinned.step_time_s == pytest.approx(published.step_time_s, rel=1e-9)


def test_node_limit_unstated_is_the_stacks_four_nodes(run):
    # the model's router: 8 groups, a token in its 4 best (HF config n_group 8, topk_group 4) = the report's M = 4
    unstated = estimate(_with_plan(run, **PUBLISHED))
    stated = estimate(_with_plan(run, **PUBLISHED, node_limit=4))
    assert unstated.breakdown["ep_alltoall"] == pytest.approx(stated.breakdown["ep_alltoall"], rel=1e-12)
    # a tighter stated limit still wins over the stack's
    two = estimate(_with_plan(run, **PUBLISHED, node_limit=2))
    assert two.breakdown["ep_alltoall"] < stated.breakdown["ep_alltoall"]


def test_node_cap_by_stack_and_router(run):
    ctx = context(run)
    moe_kind = next(lk for lk in run.arch.layers if lk.moe is not None)
    n = 3
    p = Plans(**{k: np.ones(n, dtype=np.int64) for k in INT_FIELDS})
    p = replace(p, ep=np.full(n, 64), node_limit=np.array([0, 2, 6]))
    assert ctx.moe_node_limited_routing is True
    assert node_cap(moe_kind, ctx, p).tolist() == [4.0, 2.0, 6.0]
    # Megatron-Core's stack: only a stated node limit (the router's group limit is costed separately)
    off = replace(ctx, moe_node_limited_routing=False)
    assert node_cap(moe_kind, off, p).tolist() == [0.0, 2.0, 6.0]
    # a router without groups gets no limit from the stack
    flat = replace(moe_kind, moe=replace(moe_kind.moe, groups=1, top_groups=1))
    assert node_cap(flat, ctx, p).tolist() == [0.0, 2.0, 6.0]


def test_only_hai_llm_routes_node_limited():
    assert stack_flags("deepseek-hai-llm")["moe_node_limited_routing"] is True
    for fw in ("megatron-core-2024", "megatron-bridge-2026", "torchtitan-2024", "mindspeed-2024"):
        assert stack_flags(fw)["moe_node_limited_routing"] is False


def test_plan_options_stated_then_stack_then_megatron():
    hai = plan_options(PlanSpec(), "deepseek-hai-llm")
    assert hai == {"recompute_modules": ["layernorm", "mla_up_proj", "moe_act"], "pipeline_split": "balanced"}
    stated = plan_options(PlanSpec(recompute_modules=["core_attn"], pipeline_split="even"), "deepseek-hai-llm")
    assert stated == {"recompute_modules": ["core_attn"], "pipeline_split": "even"}
    assert plan_options(PlanSpec(), "megatron-core-2024") == {"recompute_modules": None, "pipeline_split": "even"}


def test_stated_even_split_overrides_the_stack_and_does_not_fit(run):
    # the published plan with the decoder layers split evenly: 4 layers on every rank plus the embedding, head and
    # MTP module on the DualPipe edge ranks -- over the H800's 80 GiB (89.6 GiB), so HAI-LLM cannot have done that
    est = estimate(_with_plan(run, **PUBLISHED, pipeline_split="even"), advise=False)
    assert not est.fits
    assert estimate(_with_plan(run, **PUBLISHED), advise=False).fits


def test_default_modules_change_nothing_a_dense_model_lacks():
    # MLA up-projection and the routed experts' activation do not exist in a dense GQA model: HAI-LLM's selective
    # recompute there is the RMSNorm recompute alone
    base = {"model": {"name": "d", "layers": 8, "hidden": 2048, "heads": 16, "ffn": 5632, "ffn_act": "swiglu",
                      "vocab": 32000},
            "system": "hgx-h800", "chips": 16, "framework": "deepseek-hai-llm",
            "training": {"seq_len": 4096, "global_batch_seqs": 64, "precision": "bf16"}}
    from trainsim.spec import parse_run
    plan = dict(tp=1, pp=2, ep=1, etp=1, cp=1, vpp=1, schedule="1f1b", zero=1, micro_batch=1, recompute="selective")
    a = estimate(parse_run({**base, "plan": plan}))
    b = estimate(parse_run({**base, "plan": {**plan, "recompute_modules": ["layernorm"],
                                             "pipeline_split": "balanced"}}))
    assert a.step_time_s == pytest.approx(b.step_time_s, rel=1e-12)
    assert a.memory_per_chip_bytes == pytest.approx(b.memory_per_chip_bytes, rel=1e-12)


def test_a_stated_plan_with_unknown_split_is_refused(run):
    with pytest.raises(ValidationError):
        PlanSpec.model_validate({**PUBLISHED, "pipeline_split": "uneven"})
    with pytest.raises(NoPlanError):
        # the published sizes with nothing recomputed: no plan with them fits
        estimate(_with_plan(run, tp=1, pp=16, ep=64, schedule="dualpipe", recompute="none", zero=1, cp=1))
