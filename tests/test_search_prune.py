"""The pruned plan search (issue 15): its lower bound never exceeds the engine's step time, and pruning never
changes an answer (best plan, runners-up, Pareto front, counts) against the exhaustive search."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.frameworks import framework_of, restrict_plan
from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.enumerate import enumerate_parents, enumerate_space
from trainsim.perf.bound import LayerTable, step_time_lower_bound
from trainsim.perf.calibration import Calib
from trainsim.perf.step import evaluate, layer_costs
from trainsim.plan_estimate import context
from trainsim.search import _enum_args, _front_rows, search
from trainsim.spec import PlanSpec, Run, TrainingSpec

from conftest import make_system

DENSE = build_inline(InlineModel(name="7b", layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000,
                                 ffn_act="swiglu"))
MOE = build_inline(InlineModel(name="moe", layers=8, hidden=1024, heads=16, ffn=4096, ffn_act="swiglu", vocab=32000,
                               moe=dict(experts=16, top_k=2, expert_ffn=512, shared_experts=1, dense_layers=1)))


def run_of(arch, system, chips, gbs, tol=0.0, plan=None, use_all=False, **tr):
    return Run(name="t", arch=arch, system=system, chips=chips,
               training=TrainingSpec(seq_len=2048, global_batch_seqs=gbs, batch_tolerance=tol, **tr),
               plan=plan or PlanSpec(), reported=None, use_all=use_all)


CASES = {
    "dense 64 chips": run_of(DENSE, make_system(hbm=40e9), 64, 256),
    "dense, idle chips and a batch tolerance": run_of(DENSE, make_system(hbm=40e9), 72, 250, tol=0.05),
    "moe 32 chips": run_of(MOE, make_system(hbm=16e9, size=4), 32, 128),
    "moe, slow scale-out, selective recompute": run_of(MOE, make_system(out=5e9, size=16), 48, 96, tol=0.05),
}


def _all_plans(run):
    """Every valid plan of ``run`` (what its software stack offers, as the search) with its step time and memory,
    evaluated by the engine in one pass."""
    ctx = context(run, Calib.defaults())
    fixed = restrict_plan(run.plan, framework_of(run))
    # the space the search enumerates for the run's stack (its profile's rules, e.g. micro-batch groups)
    args, kw = _enum_args(run, fixed, run.use_all)
    space, _ = enumerate_space(*args, **kw)
    p = space.plans()
    b = space.batch_of(np.arange(len(space)))
    res = evaluate(replace(ctx, global_batch_seqs=b, chips=p.tp * p.pp * p.cp * p.dp), p)
    return ctx, space, res, fixed


@pytest.mark.parametrize("name", list(CASES))
def test_bound_never_exceeds_the_step_time(name):
    # the bound of a base row holds for each of its zero x recompute plans, and the bound of a parent row (experts
    # not chosen) for each row it expands into
    run = CASES[name]
    ctx, space, res, fixed = _all_plans(run)
    b = space.base
    ctx_b = replace(ctx, global_batch_seqs=space.batch, chips=b.tp * b.pp * b.cp * b.dp)
    lb = step_time_lower_bound(ctx_b, b)
    assert np.all(np.repeat(lb, space.k) <= res.step_time_s)
    assert np.all(lb > 0)
    args, kw = _enum_args(run, fixed, run.use_all)
    par = enumerate_parents(*args, **kw)
    pp = par.plans()
    lbp = step_time_lower_bound(replace(ctx, global_batch_seqs=par.batch(), chips=pp.tp * pp.pp * pp.cp * pp.dp),
                                pp, par.experts)
    child, _ = par.expand(np.arange(len(par)))
    parent_of = child.rank // len(par.experts)
    assert np.all(lbp[parent_of] <= lb)


def test_layer_table_equals_layer_costs():
    run = CASES["moe 32 chips"]
    ctx, space, _, _ = _all_plans(run)
    b = space.base
    table = LayerTable(ctx, b)
    rows = b.take(np.arange(0, len(b), 7))
    direct = layer_costs(ctx, rows)
    looked_up = table(rows)
    assert direct.keys() == looked_up.keys()
    for k in direct:
        assert np.array_equal(direct[k], looked_up[k])
    # a row the table does not hold is costed on request
    other = replace(rows.take(np.arange(1)), tp=np.array([1024]))
    assert np.array_equal(table(other)["gemm"], layer_costs(ctx, other)["gemm"])


def _same(a, b):
    assert (a.best is None) == (b.best is None)
    if a.best is not None:
        assert a.best.plan == b.best.plan and a.best.step_time_s == b.best.step_time_s
        assert a.best.memory_per_chip_bytes == b.best.memory_per_chip_bytes
    assert [r.plan for r in a.runners_up] == [r.plan for r in b.runners_up]
    assert [r.step_time_s for r in a.runners_up] == [r.step_time_s for r in b.runners_up]
    assert a.pareto == b.pareto
    assert a.plans_evaluated == b.plans_evaluated and a.plans_feasible == b.plans_feasible
    assert a.rejected == b.rejected and a.smallest_memory_bytes == b.smallest_memory_bytes


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("top,pareto", [(1, False), (5, True)])
def test_pruned_search_equals_exhaustive(name, top, pareto):
    run = CASES[name]
    exhaustive = search(run, top=top, with_pareto=pareto, prune=False, calib=Calib.defaults())
    pruned = search(run, top=top, with_pareto=pareto, calib=Calib.defaults())
    # counted lazily when a plan was found, unless the Pareto front was asked for (its memory pass counts them)
    assert pruned.fit_counts is None or pruned.best is None or pareto
    _same(pruned, exhaustive)
    # the exhaustive search's best is the fastest fitting plan of a one-pass evaluation of every plan
    _, space, res, _ = _all_plans(run)
    fits = res.memory["total"] <= run.system.chip.hbm_bytes
    per_seq = res.step_time_s / space.batch_of(np.arange(len(space)))
    assert pruned.best.step_time_s / pruned.best.run.training.batch_seqs == per_seq[fits].min()


def test_pruned_search_with_nothing_that_fits_or_nothing_valid():
    small_hbm = run_of(DENSE, make_system(hbm=1e9), 2, 8)
    _same(search(small_hbm), search(small_hbm, prune=False))
    assert search(small_hbm).least_memory is not None
    # 7 chips (use all): tp, cp powers of two dividing 7 -> 1; pp | 7 with pp <= 32 layers -> 1 or 7, so dp = 7 or 1;
    # a batch of 9 sequences with tolerance 0 needs dp x micro-batch | 9: dp = 1 needs pp = 7, which 32 layers allow
    # (7 x 1 <= 32) -- so take 4 layers: pp = 7 > 4 layers is invalid and dp = 7 does not divide 9: no valid plan
    tiny = build_inline(InlineModel(name="tiny", layers=4, hidden=512, heads=8, ffn=2048, vocab=32000,
                                    ffn_act="gelu"))
    no_valid = run_of(tiny, make_system(), 7, 9, use_all=True)
    r = search(no_valid)
    assert r.best is None and r.plans_evaluated == 0
    _same(r, search(no_valid, prune=False))


@settings(max_examples=12, deadline=None)
@given(chips=st.sampled_from([8, 16, 24, 40, 64]), gbs=st.sampled_from([32, 60, 64, 96, 128]),
       hbm=st.sampled_from([12e9, 24e9, 80e9]), out=st.sampled_from([3e9, 25e9, 100e9]),
       moe=st.booleans(), tol=st.sampled_from([0.0, 0.05]))
def test_pruned_search_equals_exhaustive_property(chips, gbs, hbm, out, moe, tol):
    run = run_of(MOE if moe else DENSE, make_system(hbm=hbm, out=out, size=8), chips, gbs, tol=tol)
    _same(search(run, top=3, with_pareto=False), search(run, top=3, with_pareto=False, prune=False))


def test_front_rows_keeps_only_rows_that_may_reach_the_front():
    # evaluated plans (time per sequence, bytes): (1.0, 10) and (2.0, 5); the front is not reported beyond 3.0
    front_v, front_m = np.array([1.0, 2.0]), np.array([10.0, 5.0])
    # rows: (lower bound, least memory of the row's plans that fit; inf = none fits)
    lb = np.array([1.5, 2.5, 2.5, 1.2, 3.5, 1.0])
    mem = np.array([8.0, 8.0, 4.0, np.inf, 4.0, 12.0])
    keep = _front_rows(lb, mem, front_v, front_m, 3.0)
    # A: the fastest plan within 8 bytes takes 2.0 > 1.5: kept; B: (2.0, 5) is faster and lighter than any of its
    # plans: dropped; C: lighter than every evaluated plan: kept; D: nothing fits: dropped; E: beyond the reported
    # span: dropped; F: as fast as (1.0, 10) at best, not strictly slower: kept
    assert keep.tolist() == [True, False, True, False, False, True]
