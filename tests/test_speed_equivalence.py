"""The speed work of issue 15 changes no number: the search's fast paths against the plain definitions."""
from __future__ import annotations

import importlib
import threading
from dataclasses import replace

import numpy as np

from trainsim.estimate import context
from trainsim.model.inline import InlineModel, build_inline
from trainsim.parallel.enumerate import candidate_values, enumerate_space
from trainsim.parallel.plan import INT_FIELDS
from trainsim.parallel.validity import check
from trainsim.perf.memory import memory_breakdown, memory_total
from trainsim.search import search
from trainsim.spec import PlanSpec, Run, TrainingSpec

from conftest import make_system

S = importlib.import_module("trainsim.search")    # the module (the package re-exports the function)
enumerate_mod = importlib.import_module("trainsim.parallel.enumerate")
MID = build_inline(InlineModel(name="7b", layers=32, hidden=4096, heads=32, ffn=11008, vocab=32000,
                               ffn_act="swiglu"))


def _run(chips=64, hbm=40e9, **training):
    tr = dict(seq_len=2048, global_batch_seqs=250, batch_tolerance=0.05, **training)
    return Run(name="t", arch=MID, system=make_system(hbm=hbm), chips=chips, training=TrainingSpec(**tr),
               plan=PlanSpec(), reported=None, use_all=False)


def _answer(res):
    d = res.to_dict()
    d.pop("search_seconds")
    return d


def test_threads_and_chunks_give_the_same_answer(monkeypatch):
    run = _run()
    monkeypatch.setattr(S, "CHUNK", 10**9)
    monkeypatch.setattr(S, "SEARCH_THREADS", 1)
    one = search(run, keep_all=True)
    monkeypatch.setattr(S, "CHUNK", 97)
    monkeypatch.setattr(S, "SEARCH_THREADS", 3)
    many = search(run, keep_all=True)
    assert one.plans_evaluated > 97 * 20 and one.best is not None
    assert _answer(many) == _answer(one)
    a, b = one.feasible_table(), many.feasible_table()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_enumerated_space_is_exactly_the_valid_cross_product():
    # every plan kept passes every rule, and kept + rejected = the whole candidate cross product (each rejected
    # candidate counted once), so checking only the rules that read newly expanded fields loses nothing
    run = _run()
    tr = run.training
    space, rejected = enumerate_space(MID, run.chips, tr.seq_len, tr.batch_seqs, PlanSpec(), batch_tol=tr.batch_tol,
                                      domain=8, use_all=False)
    plans = space.plans()
    assert not check(plans, MID, run.chips, tr.seq_len, tr.batch_seqs, tr.batch_tol, False).any()
    cand = candidate_values(MID, run.chips, tr.seq_len, tr.batch_seqs, PlanSpec())
    from trainsim.parallel.batch import chip_counts
    from trainsim.parallel.divisors import divisors

    counts = chip_counts(run.chips, 8)
    pps = sorted({d for n in counts for d in divisors(n) if d <= MID.n_layers and d <= 128})
    later = (len(cand["mb"]) * len(cand["sched_vpp"]) * len(cand["ep_etp_nl"]) * len(cand["zero"])
             * len(cand["recompute"]))
    # a (tp, cp, pp) row becomes one row per chip count its product divides (dp = count / product); one that
    # divides none is rejected once per plan it would have expanded into
    rows = sum(max(1, sum(n % (tp * cp * pp) == 0 for n in counts))
               for tp in cand["tp"] for cp in cand["cp"] for pp in pps)
    assert len(space) + sum(rejected.values()) == rows * later

def test_memory_total_is_memory_breakdown_total_bit_for_bit():
    run = _run(hbm=80e9)
    tr = run.training
    space, _ = enumerate_space(MID, run.chips, tr.seq_len, tr.batch_seqs, PlanSpec(), batch_tol=tr.batch_tol,
                               domain=8, use_all=False)
    p = space.plans()
    ctx = replace(context(run), global_batch_seqs=space.batch_of(np.arange(len(space))))
    tokens = float(ctx.seq_len) * p.mb / p.cp
    m = ctx.global_batch_seqs / (p.dp * p.mb)
    assert (p.zero >= 2).any() and (p.recompute == 2).any()
    assert np.array_equal(memory_total(ctx, p, tokens, m), memory_breakdown(ctx, p, tokens, m)["total"])
    g = space.grid_last(slice(None))          # the search's layout: broadcast, the same values
    gm = ctx.global_batch_seqs.reshape(len(space.base), len(space.zero), len(space.recompute))
    gm = np.moveaxis(gm, 0, 2)
    t = float(ctx.seq_len) * g.mb / g.cp
    grid_total = np.broadcast_to(memory_total(ctx, g, t, gm / (g.dp * g.mb)), gm.shape)
    assert np.array_equal(np.moveaxis(grid_total, 2, 0).reshape(-1), memory_breakdown(ctx, p, tokens, m)["total"])


MOE = build_inline(InlineModel(name="moe", layers=8, hidden=1024, heads=16, ffn=4096, ffn_act="swiglu", vocab=32000,
                               moe=dict(experts=16, top_k=2, expert_ffn=512, shared_experts=1, dense_layers=1)))


def test_memory_pass_on_the_expert_grid_is_the_per_plan_memory(monkeypatch):
    # the memory-only pass costs plans on a (zero, recompute, parent row, expert choice) grid with the invalid
    # (ep, etp) cells masked; here every valid plan is costed one by one on flat columns by memory_breakdown (the
    # detailed path), and the counts, the least memory and each row's least fitting memory must agree
    run = Run(name="t", arch=MOE, system=make_system(hbm=6e9, size=8), chips=32,
              training=TrainingSpec(seq_len=2048, global_batch_seqs=128, batch_tolerance=0.05), plan=PlanSpec(),
              reported=None, use_all=False)
    tr = run.training
    par = S._parents((MOE, run.chips, tr.seq_len, tr.batch_seqs, PlanSpec()),
                     dict(batch_tol=tr.batch_tol, domain=8, use_all=False))
    whole, _ = par.expand(np.arange(len(par)))
    assert len(par.experts) > 1 and len(whole.base) < len(par) * len(par.experts)   # some cells masked
    ctx = context(run)
    hbm = run.system.chip.hbm_bytes
    _, shape = S.MemoryPass(ctx, par, hbm)._expert_axes()
    assert len(shape) == 3 and shape[0] > 1 and shape[1] > 1    # the expert choices as ep x etp x node_limit axes
    for threads, layout in ((1, "axes"), (3, "axes"), (1, "one axis")):
        if layout == "one axis":      # as for expert choices that are not a full product: one axis of them
            monkeypatch.setattr(S.MemoryPass, "_expert_axes", lambda self: (
                {"ep": par.experts[:, 0], "etp": par.experts[:, 1], "node_limit": par.experts[:, 2]},
                (len(par.experts),)))
        monkeypatch.setattr(S, "MEMORY_CHUNK", 61)        # many chunks
        monkeypatch.setattr(S, "MEMORY_BLOCK", 3 * 61)    # in many blocks of three chunks (the parts once a block)
        monkeypatch.setattr(enumerate_mod, "CELL_BLOCK", 7)   # the cells' rules a few parent rows at a time
        rank, _, (n, n_fit, least, row_mem) = S.MemoryPass(ctx, par, hbm).start(threads - 1).result()
        assert np.array_equal(rank, whole.rank)
        # the rows the search takes after the pass are those of the whole expansion
        some = whole.rank[::5]
        taken = par.take_cells(some)
        assert np.array_equal(taken.rank, some) and np.array_equal(taken.batch, whole.batch[::5])
        assert all(np.array_equal(getattr(taken.base, f), getattr(whole.base, f)[::5]) for f in INT_FIELDS)
        p = whole.plans()
        c = replace(ctx, global_batch_seqs=whole.batch_of(np.arange(len(whole))))
        tokens = float(c.seq_len) * p.mb / p.cp
        mem = memory_breakdown(c, p, tokens, c.global_batch_seqs / (p.dp * p.mb))["total"]
        fits = mem <= hbm
        assert n == len(whole) and n_fit == int(fits.sum()) and 0 < n_fit < n
        assert least == mem.min()
        per_row = np.where(fits, mem, np.inf).reshape(len(whole.base), whole.k).min(axis=1)
        assert np.array_equal(row_mem, per_row)


def test_background_memory_pass_gives_the_exhaustive_answer(monkeypatch):
    # with two threads a pruned search with the Pareto front runs its memory-only pass beside its rounds: the
    # answer (best, runners-up, Pareto front, counts) is still the exhaustive search's
    run = Run(name="t", arch=MOE, system=make_system(hbm=8e9, size=4), chips=64,
              training=TrainingSpec(seq_len=2048, global_batch_seqs=256, batch_tolerance=0.05), plan=PlanSpec(),
              reported=None, use_all=False)
    monkeypatch.setattr(S, "SEARCH_THREADS", 1)
    exhaustive = _answer(search(run, prune=False))
    assert exhaustive["best"] is not None and exhaustive["plans_feasible"] < exhaustive["plans_evaluated"]
    assert _answer(search(run)) == exhaustive
    monkeypatch.setattr(S, "SEARCH_THREADS", 2)
    threads = []
    prepare = S.MemoryPass._prepare

    def spy(self):
        threads.append(threading.current_thread() is not threading.main_thread())
        return prepare(self)

    monkeypatch.setattr(S.MemoryPass, "_prepare", spy)
    assert _answer(search(run)) == exhaustive
    assert threads == [True]           # the pass ran, started on a thread of its own
