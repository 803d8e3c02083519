"""Plan search: hand-derivable answers, agreement with estimate, and brute force on a small space."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from trainsim.estimate import estimate
from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.plan import Plans
from trainsim.parallel.validity import check
from trainsim.perf.calibration import Calib
from trainsim.perf.step import evaluate
from trainsim.search import search
from trainsim.spec import PlanSpec, Run, TrainingSpec

from conftest import make_system


def run_of(arch, system, chips, seq=2048, gbs=64, plan=None):
    return Run(name="t", arch=arch, system=system, chips=chips,
               training=TrainingSpec(seq_len=seq, global_batch_seqs=gbs), plan=plan or PlanSpec(), reported=None)


SMALL = build_inline(InlineModel(name="gpt-125m", layers=12, hidden=768, heads=12, ffn=3072, vocab=50257,
                                 ffn_act="gelu"))
MID = build_inline(InlineModel(name="7b", layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000,
                               ffn_act="swiglu"))


def test_small_model_is_pure_data_parallel():
    # 125M params x 18 bytes = 2.3 GB of states: fits on one 80 GB chip, so splitting the model only adds
    # communication; the fastest plan replicates it (dp = chips).
    res = search(run_of(SMALL, make_system(), 8, gbs=64))
    p = res.best.plan
    assert (p["tp"], p["pp"], p["cp"], p["dp"]) == (1, 1, 1, 8)


def test_model_that_needs_pipeline_gets_pipeline():
    # 7B params with ZeRO-1 over 4 ranks: 6.7e9 x (2 + 4 + 12/4) = 60 GB of states > 24 GB of HBM; with tp = 1
    # fixed only pipeline stages can cut it, so the search must pick pp > 1.
    sysm = make_system(hbm=24e9)
    res = search(run_of(MID, sysm, 16, gbs=64), PlanSpec(tp=1, cp=1, zero=1))
    assert res.best is not None and res.best.plan["pp"] > 1
    assert res.best.memory_per_chip_bytes <= 24e9


def test_best_plan_estimate_equals_search_figures():
    sysm = make_system()
    run = run_of(MID, sysm, 64, gbs=256)
    res = search(run)
    b = res.best.plan
    fixed = PlanSpec(tp=b["tp"], pp=b["pp"], vpp=b["vpp"], schedule=b["schedule"], ep=b["ep"], etp=b["etp"],
                     cp=b["cp"], zero=b["zero"], recompute=b["recompute"], micro_batch=b["micro_batch"])
    est = estimate(run, fixed)
    assert est.step_time_s == res.best.step_time_s
    assert est.memory_per_chip_bytes == res.best.memory_per_chip_bytes
    assert res.plans_evaluated >= res.plans_feasible > 0


def test_no_faster_plan_outside_the_search():
    # brute force over the full cartesian product of a small space, validity and memory checked independently
    sysm = make_system(hbm=40e9)
    chips, seq, gbs = 16, 2048, 32
    run = run_of(MID, sysm, chips, seq=seq, gbs=gbs)
    res = search(run, calib=Calib.defaults())
    # the run's context: its software stack's runtime switches (tp_comm_overlap for the default Megatron-Bridge
    # profile) apply to every plan, brute-forced or searched
    from trainsim.plan_estimate import context
    ctx = context(run, Calib.defaults())
    # the search offers what the default software stack has (frameworks profile): brute-force the same choices
    from trainsim.frameworks import framework_of, profile
    from trainsim.parallel.plan import SCHEDULES
    prof = profile(framework_of(run))
    scheds = tuple(SCHEDULES.index(x) for x in prof["schedules"])
    # (zero, sharding group): the whole dp x cp group, and for the stages the profile shards in groups
    # (zero_shard_groups) one group per network level below the outermost (Plans.zgroup l: a level-(l-1) domain)
    zero_groups = [(z, 0) for z in prof["zero"]] + [(z, lv) for z in prof["zero"]
                                                    if z in prof.get("zero_shard_groups", ())
                                                    for lv in range(1, len(sysm.levels))]
    grid = itertools.product((1, 2, 4, 8, 16), (1, 2, 4, 8, 16), (1, 2, 3, 4, 6, 8), scheds, (1,), (1,),
                             (1, 2, 4, 8, 16), zero_groups, (0, 1, 2), (1, 2, 4, 8, 16))
    rows = []
    for tp, pp, vpp, sched, ep, etp, cp, (zero, zg), rec, mb in grid:
        if chips % (tp * pp * cp):
            continue
        rows.append(dict(tp=tp, pp=pp, vpp=vpp, ep=ep, etp=etp, cp=cp, dp=chips // (tp * pp * cp), zero=zero,
                         recompute=rec, mb=mb, schedule=sched, node_limit=0, zgroup=zg))
    cols = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    plans = Plans.from_columns(**cols)
    ok = check(plans, MID, chips, seq, gbs) == 0
    r = evaluate(ctx, plans)
    fits = ok & (r.memory["total"] <= sysm.chip.hbm_bytes)
    brute_best = r.step_time_s[fits].min()
    assert res.best.step_time_s == pytest.approx(brute_best, rel=1e-12)
    assert res.plans_feasible == int(fits.sum())


def test_nothing_fits_reports_memory():
    sysm = make_system(hbm=1e9)
    res = search(run_of(MID, sysm, 2, gbs=8))
    assert res.best is None
    assert "no plan fits in memory" in res.no_plan_message()


def test_search_space_limits_are_sourced_data():
    # every candidate limit of the search is data with its source (issue 12 item 3), and the enumeration uses it
    from trainsim.parallel.enumerate import candidate_values, search_space

    lim = search_space()
    assert set(lim) == {"tp_max", "cp_max", "pp_max", "micro_batch_max", "vpp", "etp"}
    cand = candidate_values(MID, 1024, 4096, 1024, None)
    assert max(cand["pp"]) <= lim["pp_max"] and max(cand["tp"]) <= lim["tp_max"]
    assert max(cand["mb"]) == lim["micro_batch_max"] == 16
    assert sorted({v for _, v in cand["sched_vpp"]}) == sorted(lim["vpp"])


def test_a_sourced_value_without_its_source_is_refused():
    # constants.yaml and search_space.yaml share one reader: a number without a source is a one-line error
    from trainsim.errors import TrainsimError
    from trainsim.yamlload import sourced_values

    assert sourced_values({"tp_max": {"value": 64, "source": "NVL72"}}, "search limit", "f.yaml") == {"tp_max": 64}
    for bad in ({"tp_max": {"value": 64}}, {"tp_max": 64}, {"tp_max": {"source": "x"}}):
        with pytest.raises(TrainsimError) as e:
            sourced_values(bad, "search limit", "f.yaml")
        assert "tp_max" in str(e.value) and "f.yaml" in str(e.value) and "\n" not in str(e.value)
