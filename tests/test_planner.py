"""The planner on real clusters (issue 15): batch as a target, idle chips, no dead ends, one JSON schema.

Numbers are derived by hand in the comments (divisibility, nearest multiples), never copied from the code.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.alternatives import alternatives
from trainsim.catalog.load import get_system
from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.batch import chip_counts, fit_batch, within
from trainsim.assumptions import Assumptions
from trainsim.scenario.capacity import capacity
from trainsim.search import search
from trainsim.spec import PlanSpec, Run, TrainingSpec, load_run

from conftest import make_system, trainsim_cli

ROOT = Path(__file__).resolve().parents[1]
LONGCAT = ROOT / "benchmarks" / "runs" / "longcat2-class-cm384x65.yaml"
SMALL = build_inline(InlineModel(name="gpt-125m", layers=12, hidden=768, heads=12, ffn=3072, vocab=50257,
                                 ffn_act="gelu"))


def run_of(arch, system, chips, training, plan=None, use_all=False):
    return Run(name="t", arch=arch, system=system, chips=chips, training=TrainingSpec(**training),
               plan=plan or PlanSpec(), reported=None, use_all=use_all)


# ---------------------------------------------------------------- batch as a target

def test_batch_tolerance_parsing_and_defaults():
    assert TrainingSpec(seq_len=4096, global_batch_tokens="64M", batch_tolerance="5%").batch_tol == 0.05
    assert TrainingSpec(seq_len=4096, global_batch_tokens="64M").batch_tol == 0.05     # tokens: a round target
    assert TrainingSpec(seq_len=4096, global_batch_seqs=16384).batch_tol == 0.0       # sequences: exact
    assert TrainingSpec(seq_len=4096, global_batch_seqs=16384, batch_tolerance=0).batch_tol == 0.0
    with pytest.raises(ValueError):
        TrainingSpec(seq_len=4096, global_batch_seqs=16384, batch_tolerance="150%")


def test_nearest_batch_by_hand():
    # 64M tokens / 4,096 = 15,625 sequences; dp 3,072 x mb 1: 15,625 / 3,072 = 5.09 -> 5 x 3,072 = 15,360 (-1.7%)
    assert fit_batch(15625, 3072) == 15360
    assert within(15360, 15625, 0.05) and not within(15360, 15625, 0.01) and not within(15360, 15625, 0.0)
    assert within(15625, 15625, 0.0)
    # a unit larger than the batch: one step of it (2 x 1,000 = 2,000 is 100% off)
    assert fit_batch(1000, 2000) == 2000 and not within(2000, 1000, 0.5)


def test_search_uses_the_nearest_batch_within_tolerance():
    # 125M model, 8 chips, 1,001 sequences = 7 x 11 x 13: exactly, dp x mb must divide 1,001, so with tp pp cp
    # powers of two over 8 chips dp is 1 (tp pp cp = 8). Within 1%, pure data parallel dp = 8 uses 1,000 (125 x 8).
    sysm = make_system()
    exact = search(run_of(SMALL, sysm, 8, dict(seq_len=2048, global_batch_seqs=1001)))
    assert exact.best.plan["dp"] == 1 and exact.best.run.training.batch_seqs == 1001
    tol = search(run_of(SMALL, sysm, 8, dict(seq_len=2048, global_batch_seqs=1001, batch_tolerance=0.01),
                        plan=PlanSpec(micro_batch=1)))
    b = tol.best
    assert b.plan["dp"] == 8 and b.run.training.batch_seqs == 1000 and b.batch_requested_seqs == 1001
    assert b.step_time_s < exact.best.step_time_s
    d = b.to_dict()
    assert d["global_batch_seqs"] == 1000 and d["global_batch_requested_seqs"] == 1001
    # micro-batch free: whatever it picks, its batch is a multiple of dp x mb within 1% of 1,001
    free = search(run_of(SMALL, sysm, 8, dict(seq_len=2048, global_batch_seqs=1001, batch_tolerance=0.01))).best
    used = free.run.training.batch_seqs
    assert used % (free.plan["dp"] * free.plan["micro_batch"]) == 0 and abs(used / 1001 - 1) <= 0.01


# ---------------------------------------------------------------- idle chips

def test_chip_counts_whole_domains_first():
    # 65 pods of 384: 65 pods, then 64 (the largest multiple of 2); 2,600 pods: 2,600, 2,592 (16 x 162),
    # 2,560 (512 x 5), 2,048
    assert chip_counts(24960, 384) == [24960, 24576]
    assert chip_counts(2600 * 384, 384) == [2600 * 384, 2592 * 384, 2560 * 384, 2048 * 384]
    assert chip_counts(24960, 384, use_all=True) == [24960]
    assert chip_counts(3 * 8, 8) == [24]           # 2 of 3 servers would leave a third idle (> 25%)


def test_idle_chips_are_counted_in_cost():
    # 10 chips, 64 sequences: dp = 10 cannot split 64 and 5 x 2 leaves an odd factor; 8 chips (dp 8) can
    sysm = make_system(size=1)
    run = run_of(SMALL, sysm, 10, dict(seq_len=2048, global_batch_seqs=64, tokens=1e10))
    e = search(run).best
    assert e.used == 8 and e.idle_chips == 2
    # days from the working chips; chip-hours paid for all 10
    assert e.days == pytest.approx(1e10 / (e.tokens_per_s_per_chip * 8) / 86400, rel=1e-12)
    assert e.chip_hours == pytest.approx(e.days * 24 * 10, rel=1e-12)
    assert search(replace(run, use_all=True)).best.used == 10     # --use-all: every chip (dp 10 with tp/pp/cp)


@pytest.fixture(scope="module")
def longcat_16k():
    run = load_run(LONGCAT)
    tr = run.training.model_copy(update={"global_batch_seqs": 16384, "global_batch_tokens": None})
    return replace(run, training=tr)


def test_24960_chips_16384_sequences_uses_at_least_64_pods(longcat_16k):
    # 16,384 = 2^14 and 24,960 = 2^7 x 195: with every chip used, dp x mb | 2^14 makes dp a power of two and tp, cp
    # are powers of two, so pp must hold 195 > 64 layers: no plan. Leaving whole pods idle, 64 pods = 24,576 =
    # 2^13 x 3 leaves 3 for pp.
    none = search(longcat_16k, use_all=True, top=1, with_pareto=False)
    assert none.best is None and none.plans_evaluated == 0
    res = search(longcat_16k, top=1, with_pareto=False)
    assert res.best is not None and res.best.used >= 64 * 384
    assert res.best.used % 384 == 0 and res.best.run.training.batch_seqs == 16384


# ---------------------------------------------------------------- capacity never falls when units are added

_CAP: dict[int, float] = {}


def _cap(units: int) -> float:
    if units not in _CAP:
        r = capacity(get_system("dgx-h100"), units * 8, 30.0, Assumptions(), family="dense")
        _CAP[units] = r.training_flops or 0.0
    return _CAP[units]


@settings(max_examples=6, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=4))
def test_capacity_is_monotone_in_units(units, more):
    assert _cap(units + more) >= _cap(units) * (1 - 1e-9)


# ---------------------------------------------------------------- no dead ends

def test_no_plan_alternatives_are_valid_when_tried():
    # tp fixed at 16 cannot divide 12 heads; 1,001 sequences exactly on 8 chips with tp 16 is doubly impossible
    sysm = make_system()
    run = run_of(SMALL, sysm, 8, dict(seq_len=2048, global_batch_seqs=1001), plan=PlanSpec(tp=16), use_all=True)
    assert search(run).best is None
    alts = alternatives(run)
    assert alts and any(a["change"] == "plan.tp" for a in alts)
    for a in alts:
        if a["change"] == "chips":
            tried = replace(run, chips=a["to"])
        elif a["change"] == "training.global_batch_seqs":
            tried = replace(run, training=run.training.model_copy(update={"global_batch_seqs": a["to"]}))
        else:
            name = a["change"].split(".", 1)[1]
            tried = replace(run, plan=run.plan.model_copy(update={name: None}))
        assert search(tried).best is not None, a["text"]


def test_batch_alternative_when_only_the_batch_blocks():
    # every chip used and 1,001 = 7 x 11 x 13 sequences exactly, on 16 chips with tp = pp = cp = 1 fixed: dp 16
    # cannot split 1,001; the nearest batch dp 16 splits is 1,008 (63 x 16) and freeing a field or 7/14 chips also work
    sysm = make_system()
    run = run_of(SMALL, sysm, 16, dict(seq_len=2048, global_batch_seqs=1001), plan=PlanSpec(tp=1, pp=1, cp=1),
                 use_all=True)
    alts = {a["change"]: a for a in alternatives(run)}
    assert alts["training.global_batch_seqs"]["to"] % 16 == 0
    b = alts["training.global_batch_seqs"]["to"]
    tried = replace(run, training=run.training.model_copy(update={"global_batch_seqs": b}))
    assert search(tried).best is not None


def test_plan_json_one_schema_and_exit_codes(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 16\n"
                  "training: {tokens: 1e11, seq_len: 4096, global_batch_seqs: 256}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: llama-3.1-8b\nsystem: dgx-h100\nchips: 16\n"
                   "training: {tokens: 1e11, seq_len: 4096, global_batch_seqs: 256}\nplan: {tp: 8, pp: 4}\n")
    # tp 8 x pp 4 = 32 chips of 16: no plan (tp 16 of 8 key/value heads is bad input since qa16, exit 2)
    r1, r2 = trainsim_cli("plan", str(ok), "--json"), trainsim_cli("plan", str(bad), "--json")
    assert r1.returncode == 0 and r2.returncode == 1          # no answer: 1 (bad input stays 2)
    d1, d2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert set(d1) == set(d2)
    assert isinstance(d1["best"], dict) and d2["best"] is None
    assert d1["message"] is None and d2["message"] and d2["alternatives"]
    assert trainsim_cli("plan", str(tmp_path / "missing.yaml")).returncode == 2


def test_chunked_search_equals_one_chunk(monkeypatch):
    # the best plans and the Pareto front are merged from per-chunk results: the same as one chunk over all plans
    import importlib

    S = importlib.import_module("trainsim.search")    # the module (the package re-exports the function)

    mid = build_inline(InlineModel(name="7b", layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000,
                                   ffn_act="swiglu"))
    run = run_of(mid, make_system(hbm=40e9), 64, dict(seq_len=2048, global_batch_seqs=250, batch_tolerance=0.05))
    monkeypatch.setattr(S, "CHUNK", 10**9)
    one = search(run)
    monkeypatch.setattr(S, "CHUNK", 97)
    many = search(run)
    assert one.plans_evaluated > 97 * 20
    assert [p["plan"] for p in many.pareto] == [p["plan"] for p in one.pareto] and one.pareto
    assert many.best.plan == one.best.plan and many.plans_feasible == one.plans_feasible
    assert [r.plan for r in many.runners_up] == [r.plan for r in one.runners_up]
