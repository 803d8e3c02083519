"""``plan --against``: the best plan beside a reference plan, cause by cause (issue 14 item 3)."""
from __future__ import annotations

import json
import textwrap

import pytest

from conftest import trainsim_cli
from trainsim.api import parse_fix, parse_run, search
from trainsim.plan_diff import plan_diff

SPEC = textwrap.dedent("""
    name: gpt-7b against
    model: {name: t7b, layers: 32, hidden: 4096, heads: 32, ffn: 11008, ffn_act: swiglu, vocab: 32000}
    system: dgx-h100
    chips: 64
    training: {tokens: 1T, seq_len: 4096, global_batch_seqs: 256, precision: bf16}
""")
REFERENCE = "tp=8,pp=4,cp=1,ep=1,zero=1,recompute=full,micro_batch=1,schedule=1f1b"


@pytest.fixture(scope="module")
def best():
    import yaml

    run = parse_run(yaml.safe_load(SPEC))
    return search(run, top=1, with_pareto=False).best


def test_against_itself_differs_in_nothing(best):
    d = plan_diff(best, parse_fix(",".join(f"{k}={v}" for k, v in best.plan.items()
                                           if k in ("tp", "pp", "vpp", "cp", "ep", "etp", "zero", "recompute",
                                                    "micro_batch", "schedule"))))
    assert d.plan_changes == {}
    assert d.speedup == pytest.approx(1.0)
    assert all(b == pytest.approx(r) for _, b, r in d.causes)
    assert d.headline() == "the best plan is the reference plan"


def test_causes_add_up_and_name_the_difference(best):
    d = plan_diff(best, parse_fix(REFERENCE))
    # tp 8 x pp 4 with full recompute is a slower plan than the search's best for a 7B model on 64 GPUs
    assert d.plan_changes and d.speedup > 1.0
    step = dict((c, (b, r)) for c, b, r in d.causes)["step"]
    # the step is the sum of its causes in both columns (the breakdown is additive), so the differences add up
    # to the step difference
    parts = [(b, r) for c, b, r in d.causes if c != "step"]
    assert sum(b for b, _ in parts) == pytest.approx(step[0], rel=1e-6)
    assert sum(r for _, r in parts) == pytest.approx(step[1], rel=1e-6)
    # full recompute re-runs the forward: the reference pays a recompute term the best plan does not
    rec = dict((c, (b, r)) for c, b, r in d.causes).get("recompute", (0.0, 0.0))
    assert rec[1] > rec[0]
    # per chip: the speedup is the inverse ratio of the step seconds on the same work
    assert d.speedup == pytest.approx(step[1] / step[0], rel=1e-6)


def test_cli_json_and_bad_reference(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(SPEC)
    r = trainsim_cli("plan", str(p), "--json", "--against", REFERENCE)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)["against"]
    assert a["reference_plan"]["tp"] == 8 and a["best_over_reference"] > 1.0
    assert {"cause", "best", "reference", "difference"} <= set(a["step_time_by_cause_s"][0])
    bad = trainsim_cli("plan", str(p), "--against", "tp=8,bogus=3")
    assert bad.returncode == 2
    assert "--against" in bad.stderr and "bogus" in bad.stderr and "Traceback" not in bad.stderr
    # without --against the key is there and null: one JSON schema
    r = trainsim_cli("plan", str(p), "--json")
    assert json.loads(r.stdout)["against"] is None
