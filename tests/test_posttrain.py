"""Post-training: link traffic by hand, sync/async composition, WAN monotonicity, the S7 scenario."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from trainsim.errors import TrainsimError
from trainsim.model.inline import InlineModel, build_inline
from trainsim.posttrain.multicluster import MultiClusterCase, multi_cluster, single_alone, single_summed
from trainsim.posttrain.spec import StepPart, parse_posttrain
from trainsim.posttrain.timeline import evaluate, phases, sync_step

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(name="small", layers=8, hidden=1024, heads=16, kv_heads=4, ffn=4096, ffn_act="swiglu", vocab=32000)
STEP = dict(prompts=16, samples_per_prompt=4, prompt_len=256, rollout_len=1024, steps=10)


def two_cluster_doc(**step) -> dict:
    return {
        "name": "opd", "kind": "opd",
        "clusters": {"s": {"system": "hgx-h800", "chips": 16}, "t": {"system": "hgx-h800", "chips": 8}},
        "links": [{"between": ["s", "t"], "bandwidth": "1 Gb/s", "latency": "20 ms"}],
        "student": {"model": SMALL, "cluster": "s"},
        "teachers": [{"name": "remote", "model": SMALL, "cluster": "t", "share": 1.0}],
        "step": {**STEP, **step},
    }


def _link_bytes(res: dict, key: str) -> float:
    return res["wan_bytes_per_step"][key]


def test_logprob_traffic_per_token_by_hand():
    res = evaluate(parse_posttrain(two_cluster_doc()))
    n = STEP["prompts"] * STEP["samples_per_prompt"]            # 64 samples
    gen = n * STEP["rollout_len"]                               # generated tokens per step
    # out: token ids of prompt + response, 4 B each; back: one FP32 log-prob per generated token
    assert _link_bytes(res, "s->t") == n * (STEP["prompt_len"] + STEP["rollout_len"]) * 4
    assert _link_bytes(res, "t->s") == gen * 4
    assert res["logprob_bytes_per_token"] == 4
    # link time = bytes / (1 Gb/s = 1.25e8 B/s) + 20 ms
    lp = [p for p in res["phases"] if p.get("link") == "t->s"][0]
    assert lp["seconds"] == pytest.approx(gen * 4 / 1.25e8 + 0.020)
    topk = evaluate(parse_posttrain(two_cluster_doc(logprobs="topk", topk=20)))
    assert _link_bytes(topk, "t->s") == gen * 20 * (4 + 2)       # k x (4 B id + 2 B value) = 120 B/token
    full = evaluate(parse_posttrain(two_cluster_doc(logprobs="full")))
    assert _link_bytes(full, "t->s") == gen * SMALL["vocab"] * 2  # BF16 over the whole vocabulary


def test_sync_is_sum_of_stages_and_async_is_not_slower():
    pt = parse_posttrain(two_cluster_doc(mode="sync"))
    phs = phases(pt)
    by_stage = {}
    for p in phs:
        by_stage[p.stage] = by_stage.get(p.stage, 0.0) + p.seconds   # one resource per stage here
    assert sync_step(phs, pt) == pytest.approx(sum(by_stage.values()))
    sync = evaluate(pt)
    asyn = evaluate(parse_posttrain(two_cluster_doc(mode="async")))
    assert asyn["step_time_s"] <= sync["step_time_s"] + 1e-9
    assert asyn["step_time_s"] >= sync["step_time_s"] / 2 - 1e-9    # at most two steps in flight


def test_weights_cross_the_link_when_rollouts_are_remote():
    doc = two_cluster_doc()
    doc["student"]["rollout_cluster"] = "t"
    res = evaluate(parse_posttrain(doc))
    params = build_inline(InlineModel(**SMALL))
    from trainsim.model.counts import count

    assert _link_bytes(res, "s->t") >= count(params).total_params * 2   # BF16 weights every step


def test_spec_errors():
    doc = two_cluster_doc()
    doc["teachers"][0]["share"] = 0.5
    with pytest.raises(TrainsimError, match="sum to 1"):
        parse_posttrain(doc)
    doc = two_cluster_doc()
    doc["student"]["cluster"] = "nowhere"
    with pytest.raises(TrainsimError, match="unknown cluster"):
        parse_posttrain(doc)
    with pytest.raises(TrainsimError, match="unknown key"):
        parse_posttrain({**two_cluster_doc(), "linkz": []})


@pytest.fixture(scope="module")
def case():
    from trainsim.catalog import get_system

    arch = build_inline(InlineModel(**SMALL))
    step = StepPart(**{**STEP, "mode": "async"})
    return MultiClusterCase(student=arch, teacher=arch, domains=3, system=get_system("hgx-h800"),
                            chips_per_cluster=16, wan_bandwidth=1.25e9, wan_latency=0.03, rl_step=step,
                            opd_step=step)


@settings(max_examples=20, deadline=None)
@given(bw=st.floats(1e4, 1e11), factor=st.floats(1.0, 100.0))
def test_more_wan_bandwidth_is_never_slower(case, bw, factor):
    slow = multi_cluster(case, bw)["wall_time_s"]
    fast = multi_cluster(case, bw * factor)["wall_time_s"]
    assert fast <= slow * (1 + 1e-12)


def test_multi_cluster_between_alone_and_summed(case):
    multi = multi_cluster(case, 1e12)["wall_time_s"]
    assert single_summed(case)["wall_time_s"] <= multi * (1 + 1e-9)
    assert multi <= single_alone(case)["wall_time_s"]


def test_s7_scenario_returns_required_keys():
    from trainsim.scenario.run import run_file

    res = run_file(REPO / "scenarios" / "S7.yaml")
    for key in ("id", "claim", "verdict", "numbers", "assumptions", "best_plan"):
        assert key in res
    assert res["id"] == "S7"
    assert res["verdict"].split(":")[0] in ("supported", "not supported", "depends on WAN bandwidth",
                                            "depends on the student size")
    n = res["numbers"]
    assert n["single_summed_wall_h"] <= n["multi_cluster_wall_h"] <= n["single_alone_wall_h"]
    assert n["break_even_wan_gbit_s"] <= n["within_tolerance_wan_gbit_s"]
    assert all("source" in a for a in res["assumptions"])


def test_student_size_assumption_names_the_students_where_size_does_not_order_them():
    """A larger student within tolerance than a smaller one outside it (each trains with its own best plan: the 1.6T
    one with MindSpeed's swapped optimizer) is said as the students each side, not as a size bound."""
    from trainsim.posttrain.scenario import _student_assumption

    small = {"total_params": 31e9, "multi_over_summed": 1.07, "wan_gbit_s_within_tolerance": 1.8}
    mid = {"total_params": 671e9, "multi_over_summed": 1.21, "wan_gbit_s_within_tolerance": None}
    big = {"total_params": 1573e9, "multi_over_summed": 1.09, "wan_gbit_s_within_tolerance": 2.65}
    s = _student_assumption([small, mid, big], 0.10, "1.8 Gb/s")
    assert "31B, 1,573B students" in s and "671B ones stay above 10% at any WAN bandwidth" in s and "up to" not in s
    ordered = _student_assumption([small, mid], 0.10, "1.8 Gb/s")
    assert ordered.startswith("student size: within 10% up to 30B-class") and ordered.endswith("at any WAN bandwidth")
