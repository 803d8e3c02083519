"""Plan search: the fastest plans that fit, over every valid plan, evaluated at once (in chunks).

The answer is that of an exhaustive search over the candidate grid of :mod:`trainsim.parallel.enumerate` (nothing
is dropped as "dominated" by a heuristic), with plans evaluated by exactly the engine's vectorised functions
(:func:`perf.step.evaluate`). Rows of the grid whose lower bound on the step time
(:mod:`trainsim.perf.bound`) is already slower than the plans found are not evaluated: a sound bound cannot drop
an answer (``search(..., prune=False)`` evaluates every plan; the tests compare the two).
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from .frameworks import check_swap, framework_of, restrict_plan, run_plan_rules, shard_group_search, swap_search
from .parallel.batch import chip_counts, lower_counts
from .parallel.enumerate import Space, enumerate_parents, enumerate_space, stated_unit, unit_rows
from .parallel.plan import INT_FIELDS, RECOMPUTE, Plans
from .parallel.schedules import SCHEDULES
from .parallel.validity import REASONS
from .perf.calibration import Calib
from .perf.bound import chip_seconds_per_seq_floor, layer_table, step_time_lower_bound
from .perf.memory import memory_total_parts, memory_total_sum
from .perf.step import evaluate, shared_costs
from .numfmt import days as days_fmt, plan as plan_text
from .plan_estimate import Estimate, context, effective_node_limit, plan_row, result_row
from .spec import PlanSpec, Run
from .errors import TrainsimError
from .units import GIB

CHUNK = 131072  # plans per evaluation chunk (base rows x zero x recompute)
#: plans per chunk of the memory-only pass's sums at the full shape (:class:`MemoryPass`): its temporaries (8 bytes a
#: plan) then stay within a core's L2 cache; measured on the benchmark case (2-core Xeon, 2 MiB L2 per core): 65,536
#: about 0.75x the CPU time of 131,072
MEMORY_CHUNK = 65536
#: plans per block of the memory-only pass: the parts of the memory (each at the shape of the fields it reads) are
#: costed once per block of parent rows, then summed a chunk at a time. The parts cost a few hundred small numpy
#: calls whatever the block's size: for the benchmark case (2.83M grid cells) 74 blocks of one chunk each took
#: 0.21 CPU-s, 5 blocks of 16 chunks 0.10 CPU-s (one process, interleaved)
MEMORY_BLOCK = 8 * MEMORY_CHUNK
PROBE_PARENTS = 32   # parent rows of the pruned search's first round (the lowest bounds): they set the first cutoff
PARETO_SPAN = 3.0  # the Pareto front lists plans up to this multiple of the best step time
PARETO_SHOWN = 20  # and at most this many of them


def idle_cpus() -> int:
    """CPUs this process may use that the system's load leaves idle: the CPUs of its affinity mask less the
    1-minute load average (rounded down), at least 1, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(4, cpus - int(load)))


#: threads of a search (numpy releases the GIL in its array loops): TRAINSIM_THREADS=N, else the idle CPUs when the
#: module is imported (:func:`idle_cpus`: on a shared, loaded machine a second thread measured slower;
#: benchmarks/bench_planner.py measures one and two). With two or more, chunks of the exhaustive search and of the
#: memory-only pass are evaluated at once, and a pruned search with the Pareto front runs its memory-only pass
#: beside its rounds. The answer does not depend on the number.
SEARCH_THREADS = max(1, int(os.environ.get("TRAINSIM_THREADS") or 0) or idle_cpus())


def set_threads(n: int) -> None:
    """Use ``n`` threads in this process's searches (the worker processes of ``scenario --all`` use one each: the
    processes already share the CPUs)."""
    global SEARCH_THREADS
    SEARCH_THREADS = max(1, int(n))


@dataclass
class SearchResult:
    """A plan search's outcome: the best plan and runners-up, the Pareto front, counts of plans evaluated
    and feasible, rejection reasons, and when nothing fits the least-memory plan and the nearest alternatives."""

    run: Run
    best: Estimate | None
    runners_up: list[Estimate]
    pareto: list[dict]
    search_seconds: float
    #: (valid plans, candidates rejected by the rule they break); None until asked for after a pruned search
    space_counts: tuple | None = field(default=None, repr=False)
    #: (plans that fit, least memory per chip of any plan); None until asked for after a pruned search
    fit_counts: tuple | None = field(default=None, repr=False)
    least_memory: Estimate | None = field(default=None, repr=False)   # nothing fits: the plan needing least memory
    use_all: bool = False
    alternatives: list[dict] = field(default_factory=list)   # filled by :func:`trainsim.alternatives` on no plan
    feasible_columns: dict | None = field(default=None, repr=False)   # search(keep_all=True): every feasible plan
    fixed: PlanSpec | None = field(default=None, repr=False)
    calib: Calib | None = field(default=None, repr=False)
    #: the chip counts included the stated degrees' whole-domain multiples (search's fallback, ``stated_counts``)
    stated_counts: bool = False
    #: the best plan came from the best-plan pass over fewer chips, outside the counted space (``search``)
    best_from_fewer_chips: bool = False

    @property
    def plans_evaluated(self) -> int:
        """Valid plans searched (the whole space: a pruned search's answer is the exhaustive one); counted on
        first use after a pruned search that found a plan."""
        return self._space_counts()[0]

    @property
    def rejected_by_rule(self) -> dict:
        """Candidates rejected by the validity rule they break (text of the rule: count)."""
        return self._space_counts()[1]

    @property
    def plans_feasible(self) -> int:
        """Plans that fit in memory (of ``plans_evaluated``); counted on first use after a pruned search."""
        return self._fit_counts()[0]

    @property
    def smallest_memory_bytes(self) -> float | None:
        """The least memory per chip of any plan (None without a valid plan)."""
        return self._fit_counts()[1]

    @property
    def rejected(self) -> dict:
        """Candidates rejected by reason: each validity rule, then memory (plans that do not fit)."""
        rej = dict(self.rejected_by_rule)
        rej["memory: does not fit in HBM"] = self.plans_evaluated - self.plans_feasible
        return {c: v for c, v in rej.items() if v}

    def _space_counts(self) -> tuple:
        if self.space_counts is None:
            par = _parents(*_enum_args(self.run, self.fixed, self.use_all, self.stated_counts))
            whole, rej = par.expand(np.arange(len(par)))
            self.space_counts = (len(whole), _rule_texts(_all_rejected(par, rej)))
        return self.space_counts

    def _fit_counts(self) -> tuple:
        if self.fit_counts is None:   # the pass also counts the whole space (plans, rejections)
            self.fit_counts, space_counts = _count_fits(self.run, self.fixed, self.calib, self.use_all,
                                                        self.stated_counts)
            if self.space_counts is None:
                self.space_counts = space_counts
        return self.fit_counts

    def feasible_table(self) -> dict:
        """Every plan that fits as numpy columns (plan fields, global_batch_seqs, chips_used, step_time_s,
        memory_gib, tokens_per_s_per_chip); searches again with ``keep_all`` when the result did not keep them."""
        a = self.feasible_columns
        if a is None:
            a = search(self.run, self.fixed, calib=self.calib, top=1, keep_all=True,
                       with_pareto=False).feasible_columns or {}
        if not a or not len(a["idx"]):
            return {}
        space, idx = a["space"], a["idx"]
        fp = space.plans(idx)
        batch = space.batch_of(idx)
        cols = {f: getattr(fp, f) for f in ("tp", "pp", "vpp", "dp", "ep", "etp", "cp", "zero")}
        cols["recompute"] = np.asarray(RECOMPUTE, dtype=object)[fp.recompute]
        cols["micro_batch"] = fp.mb
        cols["schedule"] = np.asarray(SCHEDULES, dtype=object)[fp.schedule]
        cols["node_limit"] = effective_node_limit(self.run, fp.node_limit, fp.ep)
        cols["global_batch_seqs"] = batch
        cols["chips_used"] = a["used"]
        cols["step_time_s"] = a["per_seq"] * batch
        cols["memory_gib"] = a["mem"] / GIB
        # tokens per step / (step time x chips), as perf.step.evaluate defines it
        cols["tokens_per_s_per_chip"] = batch * self.run.training.seq_len / (cols["step_time_s"] * a["used"])
        return cols

    def no_plan_message(self) -> str:
        """Why no plan was found: no valid plan (the top rejection reasons) or none fits in
        memory (the smallest need vs HBM), with the alternatives."""
        if self.plans_evaluated == 0:
            tr = self.run.training
            top = "; ".join(f"{v:,} plans rejected by {k}"
                            for k, v in sorted(self.rejected.items(), key=lambda kv: -kv[1])[:3])
            msg = (f"no valid plan for {self.run.chips:,} chips and a batch of {tr.batch_seqs:,} sequences "
                   f"(batch_tolerance {tr.batch_tol:.0%}{', all chips used' if self.use_all else ''}) ({top})")
            return msg + self._alternatives_text()
        gib = (self.smallest_memory_bytes or 0) / GIB
        hbm = self.run.system.chip.hbm_bytes / GIB
        least = f" ({plan_text(self.least_memory.plan)})" if self.least_memory is not None else ""
        which = ("the one plan evaluated" if self.plans_evaluated == 1
                 else f"the smallest of {self.plans_evaluated:,} plans")
        return (f"no plan fits in memory: {which}{least} needs {gib:,.1f} GiB "
                f"per chip vs {hbm:.1f} GiB HBM" + self._floor_text() + self._alternatives_text())

    def _floor_text(self) -> str:
        """Where the chip's HBM is not more than the fixed buffers every plan holds (calibration ``buffer_bytes``:
        the CUDA / CANN context and communication buffers, perf/memory.py memory_breakdown), that no plan fits at any
        chip count: a 1 GiB chip was told only the smallest need, with no alternative and no word that more chips
        cannot help (qa30b). '' otherwise."""
        floor = context(self.run, self.calib).calib.buffer_bytes
        if self.run.system.chip.hbm_bytes > floor:
            return ""
        return (f"; every plan holds {floor / GIB:.1f} GiB of context and communication buffers (buffer_bytes) "
                f"besides its weights, gradients, optimizer state and activations, more than the chip's HBM: no "
                f"plan fits at any chip count")

    def _alternatives_text(self) -> str:
        if not self.alternatives:
            return ""
        return "; nearest alternatives: " + "; ".join(
            f"{a['text']} -> step {a['step_time_s']:.3g} s, MFU {a['mfu']:.1%}"
            + (f", {days_fmt(a['days'])}" if a.get("days") is not None else "") for a in self.alternatives)

    def to_dict(self) -> dict:
        """One schema whether or not a plan is found (README, "plan --json"): ``best`` is an estimate or null,
        ``message`` null or why there is none, ``alternatives`` the nearest changes that have a plan."""
        tr = self.run.training
        return {
            "name": self.run.name, "model": self.run.arch.name, "system": self.run.system.id,
            "chip": self.run.system.chip.id, "chips": self.run.chips, "use_all": self.use_all,
            "global_batch_requested_seqs": tr.batch_seqs, "batch_tolerance": tr.batch_tol,
            "best": self.best.to_dict() if self.best else None,
            "runners_up": [{"plan": r.plan, "step_time_s": r.step_time_s, "mfu": r.mfu,
                            "tokens_per_s_per_chip": r.tokens_per_s_per_chip, "chips_used": r.used,
                            "global_batch_seqs": r.run.training.batch_seqs,
                            "memory_per_chip_bytes": r.memory_per_chip_bytes} for r in self.runners_up],
            "pareto": self.pareto,
            "plans_evaluated": self.plans_evaluated, "plans_feasible": self.plans_feasible,
            "search_seconds": self.search_seconds, "rejected": self.rejected,
            "message": None if self.best else self.no_plan_message(),
            "alternatives": self.alternatives,
        }

    def to_frame(self, all: bool = False):  # noqa: A002 - the documented keyword
        """Best plan and runners-up as a pandas DataFrame, or with ``all=True`` every feasible plan (one row per
        plan that fits: plan fields, step_time_s, memory_gib, tokens_per_s_per_chip), fastest first.
        pandas is optional: ``pip install 'trainsim[frames]'``."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise TrainsimError("to_frame() needs pandas: pip install 'trainsim[frames]'") from None
        if all:
            df = pd.DataFrame(self.feasible_table())
            return df.sort_values("step_time_s", kind="stable").reset_index(drop=True) if len(df) else df
        rows = [self.best] + self.runners_up if self.best else []
        return pd.DataFrame([{**r.plan, "step_time_s": r.step_time_s, "mfu": r.mfu,
                              "tokens_per_s_per_chip": r.tokens_per_s_per_chip,
                              "memory_gib": r.memory_per_chip_bytes / GIB} for r in rows])


def _pareto(step: np.ndarray, mem: np.ndarray) -> np.ndarray:
    """Indices of the plans no other plan beats on both step time and memory (sorted by step time)."""
    order = np.lexsort((mem, step))
    m = mem[order]
    prev_min = np.concatenate(([np.inf], np.minimum.accumulate(m)[:-1]))
    return order[m < prev_min]


def _reported_front(per_seq: np.ndarray, mem: np.ndarray) -> np.ndarray:
    """Indices of the front a search reports: :func:`_pareto` of (time per sequence, memory), the plans up to
    ``PARETO_SPAN`` x the fastest, ``PARETO_SHOWN`` at most (fastest first)."""
    keep = _pareto(per_seq, mem)
    return keep[per_seq[keep] <= PARETO_SPAN * per_seq[keep].min()][:PARETO_SHOWN]


def search(run: Run, fixed: PlanSpec | None = None, *, calib: Calib | None = None, top: int = 5,
           progress=None, use_all: bool | None = None, with_pareto: bool = True,
           keep_all: bool = False, prune: bool = True, stated_counts: bool = False, lower: int = 0,
           cutoff_s: float = np.inf) -> SearchResult:
    """The fastest plans of ``run`` that fit in memory; ``fixed`` pins the fields it names.

    Fastest = most tokens per second for the whole job (plans may use different batches within the run's
    ``batch_tolerance`` and leave chips idle unless ``use_all``); ties go to the plan with fewer idle chips, then
    to the first in the space's order. ``with_pareto=False`` skips the Pareto front for callers that need only the
    best plans; ``keep_all`` keeps every feasible plan for :meth:`SearchResult.to_frame` (``all=True``).

    ``prune`` (default; not with ``keep_all``): rows are evaluated in the order of a lower bound on their time per
    sequence (:func:`trainsim.perf.bound.step_time_lower_bound`), and a row whose bound is slower than the
    ``top``-th best plan found so far (``PARETO_SPAN`` x the best with the Pareto front) is never evaluated, nor
    expanded into its (ep, etp, node_limit) choices when the bound of all of them is: it cannot be among the
    answers, so they are those of the exhaustive search. The whole space's counts (plans, rejections, plans that
    fit, least memory) are then counted when first asked for (:attr:`SearchResult.plans_evaluated`,
    :attr:`SearchResult.plans_feasible`).

    A plan that states its degrees (tp, pp, cp or dp) and has no valid completion on the usual chip counts
    (:func:`trainsim.parallel.batch.chip_counts`: all chips, whole domains x 2^j, the counts the batch splits
    finer on) is searched again with
    ``stated_counts``: also the whole-domain multiples of the stated degrees' product down to 75% of the chips
    (``plan --against tp=8,pp=1`` on 100 H100 with 1,000 sequences: dp 10 on 80 chips, 20 idle), unless
    ``use_all``.

    Fewer chips. The space above (what ``plans_evaluated``, the rejections and the Pareto front's search cover)
    keeps the usual counts, at least 75% of the chips; a plan on any other whole number of domains still runs on
    this cluster, its idle chips paid for, so unless ``use_all`` or ``keep_all`` a second, best-plan pass
    (``lower``: the counts of :func:`trainsim.parallel.batch.lower_counts` from ``lower`` chips up, pruned by
    the same bound from a cutoff ``cutoff_s``, the ``top``-th best time per sequence found) adds any plan on fewer
    chips that is faster; ties keep the plan with fewer idle chips. No count below c / cutoff can hold such a
    plan (:func:`trainsim.perf.bound.chip_seconds_per_seq_floor`: c / n bounds the time per sequence of every
    plan on n chips), so the pass starts there, and it tries at most ``MAX_LOWER_COUNTS`` (32) domains below the
    chips. So the best answer on N chips is never slower than on M < N chips of the same system when M is within
    32 domains of N, or N holds at most 32 domains (112 H100 and 1,000 sequences: dp 40 x tp 2 on 80 chips, 1.51
    days, as on 104, where the usual counts 112 and 96 gave 1.57 days on 96). A faster plan found there joins the
    Pareto front. The pass also runs where the usual counts have no valid plan (12 H100 and a stated tp 8: tp 8 on
    8 chips), not where they have plans and none fits in memory: a gap left open (such a pass evaluates every plan
    of its counts, and fewer chips seldom hold what more do not; a plan on fewer chips that fits there would make
    that answer 'no plan fits' where a smaller cluster has one)."""
    t0 = time.perf_counter()
    fixed = fixed if fixed is not None else run.plan
    # the search offers only what the run's software stack has (trainsim/frameworks.py profiles)
    fixed = restrict_plan(fixed, framework_of(run))
    check_swap(run, fixed)
    ctx = context(run, calib)
    use_all = run.use_all if use_all is None else use_all
    hbm = run.system.chip.hbm_bytes
    want = max(top, 1)
    n_fit, smallest, smallest_i = 0, np.inf, -1
    cand_v, cand_i, front_v, front_m, front_i = [], [], [], [], []
    all_i, all_v, all_m, all_u = [], [], [], []
    running_best = [np.inf]      # the fastest fitting plan found so far, for the Pareto pre-filter
    rounds: list[Space] = []     # the base rows evaluated, in rounds; plan i of the search: row i // K of them all

    def chunk(view, s: int, rows: int):
        """One chunk of base rows of ``view`` = (space, shared costs, offset of its rows among the search's): its
        plan count that fits, least memory, fastest plans and Pareto front, with the search's plan indices."""
        sp, sh, off = view
        K = sp.k
        sl = slice(s, min(len(sp.base), s + rows))
        b = sp.base
        used = (b.tp * b.pp * b.cp * b.dp)[sl]
        res = evaluate(replace(ctx, global_batch_seqs=sp.batch[None, None, sl], chips=used[None, None, :]),
                       sp.grid_last(sl), detail=False, shared=sh, rows=(Ellipsis, sl), rate=False)
        # rank by the whole job's speed: seconds per sequence (= step time when every plan has the same batch);
        # flat in the plan index's order (base row, zero, recompute)
        shape = (len(sp.zero), len(sp.recompute), sl.stop - s)
        per_seq = np.moveaxis(np.broadcast_to(res.step_time_s / sp.batch[None, None, sl], shape), 2, 0).reshape(-1)
        mem = np.moveaxis(np.broadcast_to(res.memory["total"], shape), 2, 0).reshape(-1)
        o = (off + s) * K     # chunk-local flat index + o = the search's plan index
        ok = sp.ok(sl)        # the cells that are plans of the stack (None: all); the others are never read
        fits = mem <= hbm if ok is None else (mem <= hbm) & ok
        j = int(np.argmin(mem if ok is None else np.where(ok, mem, np.inf)))
        least = (float(mem[j]), j + o) if ok is None or ok[j] else (np.inf, -1)
        out = {"stop": sl.stop, "n_fit": int(np.count_nonzero(fits)), "least": least}
        if keep_all and out["n_fit"]:
            f_idx = np.nonzero(fits)[0]
            out["all"] = (f_idx + o, per_seq[f_idx], mem[f_idx], used[f_idx // K])
        if out["n_fit"]:         # this chunk's fastest plans and Pareto front; merged below
            ps = np.where(fits, per_seq, np.inf)
            if len(ps) > want:   # the `want` fastest, with every plan tied with the last of them
                loc = np.nonzero(ps <= np.partition(ps, want - 1)[want - 1])[0]
            else:
                loc = np.arange(len(ps))
            loc = loc[np.isfinite(ps[loc])]
            out["cand"] = (ps[loc], loc + o)
            running_best[0] = min(running_best[0], float(ps[loc].min()))
            if with_pareto:
                # only plans within PARETO_SPAN of the best so far can be on the reported front (the global best
                # is no slower), and a plan on the front of all plans is on the front of its chunk
                f_idx = np.nonzero(ps <= PARETO_SPAN * running_best[0])[0]
                pf = f_idx[_pareto(per_seq[f_idx], mem[f_idx])]
                out["front"] = (per_seq[pf], mem[pf], pf + o)
        return out

    def merge(out) -> None:
        nonlocal n_fit, smallest, smallest_i
        n_fit += out["n_fit"]
        if out["least"][0] < smallest:
            smallest, smallest_i = out["least"]
        if "all" in out:
            for lst, a in zip((all_i, all_v, all_m, all_u), out["all"]):
                lst.append(a)
        if "cand" in out:
            cand_v.append(out["cand"][0])
            cand_i.append(out["cand"][1])
        if "front" in out:
            for lst, a in zip((front_v, front_m, front_i), out["front"]):
                lst.append(a)

    def cutoff() -> float:
        """Time per sequence above which a plan can be neither among the ``want`` best nor on the front."""
        if not cand_v:
            return cutoff_s
        cv = np.concatenate(cand_v)
        kth = min(float(np.partition(cv, want - 1)[want - 1]) if len(cv) >= want else np.inf, cutoff_s)
        # the pruned search's rounds look for the `want` best alone; the Pareto front's other plans are found
        # after them (below), from the memory of every plan and the front found so far
        return max(kth, PARETO_SPAN * running_best[0]) if with_pareto and not pruned else kth

    def add_round(sp: Space, shared) -> tuple:
        off = sum(len(r.base) for r in rounds)
        rounds.append(sp)
        return sp, shared, off

    enum_args, enum_kw = _enum_args(run, fixed, use_all, stated_counts, lower)
    pruned = bool(prune and not keep_all)
    table = None                 # the pruned search's per-layer costs (perf.bound.LayerTable)
    exact = True                 # every valid plan expanded and evaluated
    if not pruned:
        space, rejected = enumerate_space(*enum_args, **enum_kw)
        n = len(space)
        rows = max(1, CHUNK // max(space.k, 1))
        # the chunks are evaluated as (zero, recompute, base rows) grids, base rows along the last (long) axis
        shared = shared_costs(ctx, space.grid_last(slice(None))) if n else None   # once for all plans
        view = add_round(space, shared)
        starts = range(0, len(space.base), rows)
        workers = min(SEARCH_THREADS, len(starts))
        pool = _thread_pool(workers) if workers > 1 else None
        try:
            # chunks merged in order, so the answer does not depend on the number of threads
            for out in (pool.map(lambda s: chunk(view, s, rows), starts) if pool is not None else
                        (chunk(view, s, rows) for s in starts)):
                merge(out)
                if progress is not None:
                    progress(min(n, out["stop"] * space.k), n)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    else:
        # parents (every field but the experts' ep, etp, node_limit) with the lowest bounds first: their plans set a
        # cutoff; then the parents whose bound is within it, expanded, and their rows whose bound is within it, in
        # the bound's order, chunk by chunk while the cutoff tightens. Each round has its own shared costs.
        par = _parents(enum_args, enum_kw)
        rejected = par.rejected.copy()
        last_rej: Counter = Counter()            # the experts' rules, over the parents expanded
        n = 0
        pb = par.batch()
        pp = par.plans()
        # the layer costs of every (tp, cp, micro-batch) x experts choice, for the bounds and the shared costs
        table = layer_table(ctx, pp, par.experts) if len(par) else None
        lbp = step_time_lower_bound(replace(ctx, global_batch_seqs=pb, chips=pp.tp * pp.pp * pp.cp * pp.dp),
                                    pp, par.experts, table) / pb if len(par) else np.zeros(0)
        left = np.ones(len(par), bool)           # parents not expanded yet
        # with a second thread, the memory-only pass over every plan (for the Pareto front and the counts, below)
        # runs beside the rounds (it reads only the parents); stopped when the rounds leave nothing for it to do
        bg = MemoryPass(ctx, par, hbm).start(1) if with_pareto and len(par) and SEARCH_THREADS > 1 else None
        k = min(len(par), max(1, PROBE_PARENTS))
        probe = np.argpartition(lbp, k - 1)[:k] if k < len(par) else np.arange(len(par))
        for rnd in range(2):
            cut = cutoff()
            pick = np.sort(probe) if rnd == 0 else np.nonzero(left & (lbp <= cut))[0]
            if rnd and np.any(left & ~(lbp <= cut)):
                exact = False
            if not len(pick):
                continue
            left[pick] = False
            sp, rej = par.expand(pick)
            for c, v in rej.items():
                last_rej[c] += v
            n += len(sp)
            if not len(sp.base):
                continue
            used = sp.base.tp * sp.base.pp * sp.base.cp * sp.base.dp
            lb = step_time_lower_bound(replace(ctx, global_batch_seqs=sp.batch, chips=used), sp.base,
                                       table=table) / sp.batch
            keep = np.nonzero(lb <= cut)[0]
            if len(keep) < len(lb):
                exact = False
            keep = keep[np.argsort(lb[keep], kind="stable")]
            sp = sp.take(keep)
            lb = lb[keep]
            view = add_round(sp, shared_costs(ctx, sp.grid_last(slice(None)), table) if len(keep) else None)
            rows = max(1, CHUNK // max(sp.k, 1))
            for s in range(0, len(keep), rows):
                if lb[s] > cutoff():
                    exact = False
                    break
                merge(chunk(view, s, rows))
        for c in sorted(last_rej):               # in code order, as one expansion of every parent counts them
            rejected[c] += last_rej[c]
        need_front = with_pareto and n_fit and not exact
        if bg is not None and not need_front:
            bg.stop()
        if need_front:
            # the Pareto front and the whole space's counts: every plan's memory (a memory-only pass), then the
            # rows that may still hold a plan of the front evaluated (:func:`_front_rows`)
            # (this thread takes the pass's chunks that are left; all of them without a second thread)
            rank, rej, (n_all, fit_all, least_all, row_mem) = (bg or MemoryPass(ctx, par, hbm)).result()
            rejected = _all_rejected(par, rej)
            if fit_all:
                fv_, fm_, span = np.concatenate(front_v), np.concatenate(front_m), PARETO_SPAN * running_best[0]
                done = np.zeros(len(par) * len(par.experts), bool)       # the cells the rounds evaluated
                for r in rounds:
                    if r.rank is not None:
                        done[r.rank] = True
                # the parents' bounds (no more than their rows') first, then the rows' own bounds on what is left
                keep = np.nonzero(_front_rows(lbp[rank // len(par.experts)], row_mem, fv_, fm_, span)
                                  & ~done[rank])[0]
                cand = par.take_cells(rank[keep])
                b_k = cand.base
                lb = step_time_lower_bound(replace(ctx, global_batch_seqs=cand.batch,
                                                   chips=b_k.tp * b_k.pp * b_k.cp * b_k.dp), b_k,
                                           table=table) / cand.batch
                sel = np.nonzero(_front_rows(lb, row_mem[keep], fv_, fm_, span))[0]
                if len(sel):
                    sp = cand.take(sel)
                    view = add_round(sp, shared_costs(ctx, sp.grid_last(slice(None)), table))
                    rows = max(1, CHUNK // max(sp.k, 1))
                    for s in range(0, len(sel), rows):
                        merge(chunk(view, s, rows))
            n, n_fit, smallest, exact = n_all, fit_all, least_all, True
        if not rounds:                           # no valid plan
            rounds.append(par.expand(np.zeros(0, np.int64))[0])
        if progress is not None:
            progress(n, n)
    space = rounds[0] if len(rounds) == 1 else Space.concat(rounds)
    K = space.k
    base = space.base
    used_b = base.tp * base.pp * base.cp * base.dp
    best, runners, pareto = None, [], []
    if n_fit:
        cv, ci = np.concatenate(cand_v), np.concatenate(cand_i)
        idle = run.chips - used_b[ci // K]
        # fastest first; ties: fewer idle chips, then the plan's position in the whole space
        pos = ci if space.rank is None else space.rank[ci // K] * K + ci % K
        order = ci[np.lexsort((pos, idle, cv))][:want]
        sub = space.plans(order)
        ctx_b = replace(ctx, global_batch_seqs=space.batch_of(order), chips=used_b[order // K])
        # the per-layer costs from the pruned search's table (the same layer_costs values), not computed again
        res = evaluate(ctx_b, sub, shared=shared_costs(ctx_b, sub, table) if table is not None else None)
        best_rows = [result_row(run, sub, res, i) for i in range(len(order))]
        best, runners = best_rows[0], best_rows[1:]
        if with_pareto:
            # the front of all plans = the front of the chunks' fronts; plans up to PARETO_SPAN x the best kept
            fv, fm, fi = np.concatenate(front_v), np.concatenate(front_m), np.concatenate(front_i)
            if space.rank is not None:       # in the whole space's order, as one pass over it gives them
                srt = np.argsort(space.rank[fi // K] * K + fi % K, kind="stable")
                fv, fm, fi = fv[srt], fm[srt], fi[srt]
            keep = _reported_front(fv, fm)
            pf_plans, pf_batch = space.plans(fi[keep]), space.batch_of(fi[keep])
            pareto = [{"plan": plan_row(run, pf_plans, j),
                       "step_time_s": float(fv[i] * pf_batch[j]),
                       "global_batch_seqs": int(pf_batch[j]), "chips_used": int(used_b[fi[i] // K]),
                       "memory_per_chip_bytes": float(fm[i])} for j, i in enumerate(keep)]
    least = None
    if not n_fit and smallest_i >= 0:
        # nothing fits (so every plan was evaluated): the plan that needs the least memory, costed in full, so
        # answers can show by how much and what to change (trainsim.fit_advice)
        idx = np.array([smallest_i])
        sub = space.plans(idx)
        res = evaluate(replace(ctx, global_batch_seqs=space.batch_of(idx), chips=used_b[idx // K]), sub)
        least = result_row(run, sub, res, 0)
    if best is None and least is None and not stated_counts and not use_all and not lower \
            and stated_unit(fixed) is not None:
        # no valid plan at all on the usual counts: the counts the stated degrees divide (docstring)
        return search(run, fixed, calib=calib, top=top, progress=progress, use_all=use_all,
                      with_pareto=with_pareto, keep_all=keep_all, prune=prune, stated_counts=True)
    from_fewer = False
    if not (lower or use_all or keep_all) and (best is not None or least is None):
        # the best-plan pass over fewer chips (docstring): its plans join the answer where they are faster (with
        # no valid plan here, any plan there is; nothing prunes that pass but the bound of the plans it finds)
        rows = [best, *runners] if best is not None else []
        cut = _per_seq(rows[-1]) if len(rows) >= want else np.inf
        fewest = _fewest_chips(ctx, enum_args, enum_kw, cut)
        below = search(run, fixed, calib=calib, top=want, use_all=False, with_pareto=False, prune=True,
                       stated_counts=stated_counts, lower=fewest, cutoff_s=cut) if fewest else None
        if below is not None and below.best is not None:
            first = best
            best, runners, pareto = _with_fewer_chips(run, rows, [below.best, *below.runners_up], pareto, want,
                                                      with_pareto)
            from_fewer, least = best is not first, None
    # a pruned search that found a plan counts the whole space (plans, rejections, fits) when asked for
    exact = exact or not n_fit
    return SearchResult(least_memory=least, run=run, best=best, runners_up=runners, pareto=pareto,
                        search_seconds=time.perf_counter() - t0, use_all=use_all, fixed=fixed, calib=calib,
                        stated_counts=stated_counts, best_from_fewer_chips=from_fewer,
                        space_counts=(n, _rule_texts(rejected)) if exact else None,
                        fit_counts=(n_fit, smallest if n else None) if exact else None,
                        feasible_columns=None if not keep_all else {
                            "space": space, "idx": np.concatenate(all_i) if all_i else np.zeros(0, np.int64),
                            "per_seq": np.concatenate(all_v) if all_v else np.zeros(0),
                            "mem": np.concatenate(all_m) if all_m else np.zeros(0),
                            "used": np.concatenate(all_u) if all_u else np.zeros(0)})


def _fewest_chips(ctx, enum_args: tuple, enum_kw: dict, cut: float) -> int:
    """The least chip count the best-plan pass over fewer chips needs to try (0: none to try): the smallest
    whole-domain count below the run's that the usual counts lack and on which a plan may take no more than
    ``cut`` seconds per sequence, c / n <= cut (:func:`trainsim.perf.bound.chip_seconds_per_seq_floor` over every
    (tp, cp, micro-batch, schedule, experts) the search may take, :func:`trainsim.parallel.enumerate.unit_rows`)."""
    arch, chips, _, batch_seqs, _ = enum_args
    kw = {k: v for k, v in enum_kw.items() if k != "lower"}
    least = 1
    if np.isfinite(cut):
        rows, experts = unit_rows(*enum_args, **kw)
        c = chip_seconds_per_seq_floor(ctx, rows, experts, None)
        least = max(1, int(c / cut))
    usual = chip_counts(chips, kw["domain"], False, kw["unit"], batch_seqs, kw["batch_tol"])
    below = lower_counts(chips, kw["domain"], usual, least)
    return below[-1] if below else 0


def _per_seq(e: Estimate) -> float:
    """Seconds per sequence of an answer (its step over the batch it uses): the search's ranking."""
    return e.step_time_s / e.run.training.batch_seqs


def _with_fewer_chips(run: Run, rows: list[Estimate], fewer: list[Estimate], pareto: list[dict],
                      want: int, with_pareto: bool = True) -> tuple:
    """(best, runners-up, Pareto front) once the plans ``fewer`` of the best-plan pass over fewer chips join the
    answers ``rows`` (fastest first; ties: fewer idle chips, then ``rows`` before ``fewer``, as found) and, where
    one is among the ``want`` fastest, the front (``with_pareto``: :func:`_pareto` of both, up to
    :func:`_reported_front`)."""
    both = rows + fewer
    order = sorted(range(len(both)), key=lambda i: (_per_seq(both[i]), run.chips - both[i].used, i))[:want]
    top = [both[i] for i in order]
    new = [both[i] for i in order if i >= len(rows)]
    if new and with_pareto:
        pts = pareto + [{"plan": e.plan, "step_time_s": e.step_time_s, "global_batch_seqs": e.run.training.batch_seqs,
                         "chips_used": e.used, "memory_per_chip_bytes": e.memory_per_chip_bytes} for e in new]
        ps = np.array([p["step_time_s"] / p["global_batch_seqs"] for p in pts])
        pareto = [pts[i] for i in _reported_front(ps, np.array([p["memory_per_chip_bytes"] for p in pts]))]
    return top[0], top[1:], pareto


_PARENTS: dict = {}   # the parent rows of the last few spaces searched (oldest first); they are never modified
PARENTS_KEPT = 8     # (a search keeps two: its usual counts and the counts below them)


def _parents(args: tuple, kw: dict):
    """:func:`enumerate_parents` of ``args``/``kw``, kept for the next searches of the same space (sensitivity and
    range variations search one model, chip count and batch on several systems)."""
    arch, chips, seq_len, batch_seqs, fixed = args
    try:
        key = (arch, chips, seq_len, batch_seqs, fixed.model_dump_json() if fixed is not None else None,
               tuple(sorted(kw.items())))
        par = _PARENTS.pop(key, None)
    except TypeError:       # an unhashable model: not kept
        return enumerate_parents(*args, **kw)
    if par is None:
        par = enumerate_parents(*args, **kw)
    _PARENTS[key] = par
    while len(_PARENTS) > PARENTS_KEPT:
        _PARENTS.pop(next(iter(_PARENTS)))
    return par


def _rule_texts(rejected: Counter) -> dict:
    """Rejections by reason code as {"field: rule text": count} (codes of :data:`parallel.validity.REASONS`)."""
    return {f"{REASONS[c][0]}: {REASONS[c][1]}": v for c, v in rejected.items()}


def _front_rows(lb: np.ndarray, row_mem: np.ndarray, front_v: np.ndarray, front_m: np.ndarray,
                span_v: float) -> np.ndarray:
    """Which base rows may hold a plan of the Pareto front (time per sequence, memory) of plans that fit, given
    each row's lower bound ``lb`` on the time per sequence of its plans, the least memory ``row_mem`` of its plans
    that fit (inf: none fits), some evaluated plans that fit (``front_v``, ``front_m``) and the time beyond which
    the front is not reported (``span_v``).

    A plan p is not on the front when a plan q is faster and needs no more memory (per_seq(q) < per_seq(p),
    mem(q) <= mem(p)); a row none of whose plans fits is on it nowhere. With F(m) = the least time per sequence of
    the evaluated plans needing at most m bytes (non-increasing in m), every plan p of a row with
    ``lb > F(row_mem)`` has per_seq(p) >= lb > F(row_mem) >= F(mem(p)): some evaluated plan beats it on both, so
    it is not on the front, and any plan it would beat is beaten by that plan too. The other rows are kept (with a
    relative margin of 1e-12 for rounding)."""
    order = np.argsort(front_m, kind="stable")
    m_sorted = front_m[order]
    v_min = np.minimum.accumulate(front_v[order])
    at = np.searchsorted(m_sorted, row_mem * (1.0 - 1e-12), side="right") - 1
    f = np.where(at >= 0, v_min[np.maximum(at, 0)], np.inf)
    lo = lb * (1.0 - 1e-12)
    return np.isfinite(row_mem) & (lo <= f) & (lo <= span_v)


def _thread_pool(workers: int):
    """A ``concurrent.futures.ThreadPoolExecutor`` of ``workers`` threads (the module, with logging, is imported
    only by a search that uses one)."""
    from concurrent.futures import ThreadPoolExecutor
    return ThreadPoolExecutor(workers)


class MemoryPass:
    """The memory-only pass over every plan of the parent rows ``par`` (their whole expansion, a :class:`Space`):
    plans, plans that fit in ``hbm``, least memory per chip and the least memory of each base row's plans that fit,
    with the memory arithmetic of the search's bulk pass (:func:`perf.memory.memory_total`, as
    :func:`perf.step.evaluate` calls it) alone, chunk by chunk.

    The plans are costed on a grid (zero, recompute, expert choice, parent row) whose parent fields lie along one
    axis and the (ep, etp, node_limit) candidates of the last expansion along another, so each part of the memory
    is computed at the shape of the fields it reads (activations once per parent row, not once per expert
    choice); the grid's cells that are not valid plans (rules on ep, etp, node_limit, and the stack's rule on zero,
    :meth:`trainsim.parallel.enumerate.Parents.zero_ok`) are masked out. Every valid
    plan's number is the one the search's evaluation gives (the same elementwise arithmetic).

    Chunks are taken by whichever thread is free (numpy releases the GIL in its array loops): :meth:`start` puts
    ``helpers`` threads on it at once (a search gives it one beside its rounds), :meth:`result` has the calling
    thread take the chunks that are left and then waits for the helpers; :meth:`stop` ends it early (its numbers
    are then not used). The answer does not depend on which thread took which chunk."""

    def __init__(self, ctx, par, hbm: float):
        self.ctx, self.par, self.hbm = ctx, par, hbm
        self._ready = threading.Event()       # the whole expansion and the chunk plan are set
        self._stop = threading.Event()
        self._next = itertools.count()        # the next chunk to take (next() is atomic under the GIL)
        self._helpers: list[threading.Thread] = []
        self._error: list[BaseException] = []

    def start(self, helpers: int) -> "MemoryPass":
        """Put ``helpers`` daemon threads (they never hold up the interpreter's exit) on the pass now."""
        for i in range(helpers):
            t = threading.Thread(target=self._help, args=(i == 0,), daemon=True)
            t.start()
            self._helpers.append(t)
        return self

    def stop(self) -> None:
        """End the pass early: no chunk is started after this; waits for the helpers."""
        self._stop.set()
        for t in self._helpers:
            t.join()

    def _help(self, prepare: bool) -> None:
        try:
            if prepare:
                self._prepare()
            self._ready.wait()
            self._work()
        except BaseException as exc:  # noqa: BLE001 - raised again by result()
            self._error.append(exc)
            self._ready.set()

    def _prepare(self) -> None:
        par = self.par
        # the whole expansion's cells, not its rows (Parents.valid_cells): the rows the search needs after the pass
        # are expanded then (Parents.take_cells)
        self.valid, self.rejected, self.n = par.valid_cells()
        cols, ex = par.cols, par.experts
        P, E = len(par), len(ex)
        self.rank = np.flatnonzero(self.valid)
        self.batch = par.batch()
        self.used = cols["tp"] * cols["pp"] * cols["cp"] * cols["dp"]
        self.row_mem = np.empty((P, E))
        self.sub = max(1, MEMORY_CHUNK // max(len(par.zero) * len(par.recompute) * E, 1))   # parent rows per chunk
        self.rows = self.sub * max(1, MEMORY_BLOCK // MEMORY_CHUNK)                          # parent rows per block
        self.starts = list(range(0, P, self.rows)) if self.n else []
        self.outs: list = [None] * len(self.starts)
        self._ready.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            i = next(self._next)
            if i >= len(self.starts):
                return
            self.outs[i] = self._one(self.starts[i])

    def _expert_axes(self) -> tuple[dict, tuple[int, ...]]:
        """The expert choices' columns laid out on the grid's expert axes, and those axes' shape: three axes (ep,
        etp, node_limit) when the choices are their full product in that order (then each part of the memory is
        computed at the fields it reads: activations, which read etp but not ep, once per etp), else one axis of
        the choices as listed."""
        ex = self.par.experts
        # each field's values, ascending (sorted(set()): a plain np.unique loads numpy.ma)
        vals = [np.array(sorted(set(ex[:, j].tolist())), dtype=np.int64) for j in range(3)]
        shape = tuple(len(v) for v in vals)
        if int(np.prod(shape)) == len(ex) and np.array_equal(
                ex, np.stack(np.meshgrid(*vals, indexing="ij"), axis=-1).reshape(-1, 3)):
            return ({f: v.reshape([-1 if j == k else 1 for k in range(3)])
                     for j, (f, v) in enumerate(zip(("ep", "etp", "node_limit"), vals))}, shape)
        return {"ep": ex[:, 0], "etp": ex[:, 1], "node_limit": ex[:, 2]}, (len(ex),)

    def _one(self, s: int) -> tuple[int, float]:
        par = self.par
        expert_col, es = self._expert_axes()
        sl = slice(s, min(len(par), s + self.rows))
        # axes (zero, recompute, expert choice axes, parent row): the parents along the last, long axis, where
        # numpy's inner loops run
        ne = len(es)

        def at(v: np.ndarray, axis: int) -> np.ndarray:      # v along grid axis `axis` (0 zero, 1 recompute)
            return v.reshape([-1 if k == axis else 1 for k in range(2)] + [1] * ne + [1])

        def along_experts(v: np.ndarray) -> np.ndarray:
            return v.reshape([1, 1] + list(np.shape(v)) + [1]) if ne > 1 else v.reshape(1, 1, -1, 1)

        def parent(v: np.ndarray) -> np.ndarray:
            return v[sl].reshape([1, 1] + [1] * ne + [-1])

        z = {"zero": at(par.zero, 0), "zgroup": at(par.zgroup, 0), "swap": at(par.swap, 0)}
        p = Plans(**{f: (z[f] if f in z else at(par.recompute, 1) if f == "recompute" else
                         along_experts(expert_col[f]) if f in expert_col else parent(par.cols[f]))
                     for f in INT_FIELDS})
        c = replace(self.ctx, global_batch_seqs=parent(self.batch), chips=parent(self.used))
        tokens = float(c.seq_len) * p.mb / p.cp
        parts = memory_total_parts(c, p, tokens, c.global_batch_seqs / (p.dp * p.mb))
        # the stack's rule on zero (None: none): which (zero, expert choice, parent) cells are plans
        zok_all = par.zero_ok(p.zero, p.pp, p.etp)
        if zok_all is not None:
            zok_all = self._flat_experts(zok_all, (len(par.zero), 1) + es + (sl.stop - s,))
        n_fit, least_all = 0, np.inf
        for a in range(0, sl.stop - s, self.sub):
            rows = slice(a, min(sl.stop - s, a + self.sub))
            n_fit_c, least_c = self._sum(c, parts, rows, s, zok_all, es)
            n_fit += n_fit_c
            least_all = min(least_all, least_c)
        return n_fit, least_all

    @staticmethod
    def _flat_experts(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """``x`` broadcast to the grid ``shape`` (zero, recompute, expert axes, rows) with its expert axes as one
        (the order of the expert choices)."""
        return np.broadcast_to(x, shape).reshape(shape[:2] + (-1,) + shape[-1:])

    def _sum(self, c, parts, rows: slice, s: int, zok_all, es: tuple[int, ...]) -> tuple[int, float]:
        """Plans that fit and least memory of the parent rows ``rows`` of the block that starts at ``s``; each
        row's least fitting memory into :attr:`row_mem`."""
        par = self.par
        mem = self._flat_experts(memory_total_sum(c, parts, rows),
                                 (len(par.zero), len(par.recompute)) + es + (rows.stop - rows.start,))
        sl = slice(s + rows.start, s + rows.stop)
        ok = self.valid[sl].T
        zok = None if zok_all is None else zok_all if np.shape(zok_all)[-1] == 1 else zok_all[..., rows]
        # a cell's least memory fits exactly when any of its plans does, and is then the least of those that fit
        least = np.where(ok, mem.min(axis=(0, 1)) if zok is None else
                         mem.min(axis=(0, 1), where=zok, initial=np.inf), np.inf)
        self.row_mem[sl] = np.where(least <= self.hbm, least, np.inf).T
        le = mem <= self.hbm if zok is None else (mem <= self.hbm) & zok
        n_fit = np.count_nonzero(le) - (np.count_nonzero(le[:, :, ~ok]) if not ok.all() else 0)
        return int(n_fit), float(least.min())

    def result(self) -> tuple:
        """(the rank of each base row of the whole expansion, i.e. its position in the whole space's order
        (:meth:`Parents.take_cells` gives the rows), its rejections by reason code, (plans, plans that fit, least
        memory per chip or None, least fitting memory of each base row (inf: none)))."""
        if not self._helpers:
            self._prepare()
        self._ready.wait()
        if not self._error:
            self._work()
        for t in self._helpers:
            t.join()
        if self._error:
            raise self._error[0]
        if not self.n:
            return self.rank, self.rejected, (0, 0, None, np.zeros(0))
        return self.rank, self.rejected, (self.n, sum(o[0] for o in self.outs), min(o[1] for o in self.outs),
                                          self.row_mem.reshape(-1)[self.rank])


def _enum_args(run: Run, fixed: PlanSpec | None, use_all: bool, stated_counts: bool = False,
               lower: int = 0) -> tuple:
    """The arguments of :func:`_parents` for the search of ``run`` with the (already restricted) ``fixed``;
    ``stated_counts``: the chip counts also include the whole-domain multiples of the stated degrees' product
    (:func:`trainsim.parallel.enumerate.stated_unit`); ``lower``: the counts below them from ``lower`` up instead
    (:func:`trainsim.parallel.batch.lower_counts`)."""
    tr = run.training
    # the uneven stages the engine sizes the ranks with (plan_estimate.context reads the run's plan)
    return ((run.arch, run.chips, tr.seq_len, tr.batch_seqs, fixed),
            dict(batch_tol=tr.batch_tol, domain=run.system.scale_up_size, use_all=use_all,
                 first_stage_layers=run.plan.first_stage_layers, last_stage_layers=run.plan.last_stage_layers,
                 unit=stated_unit(fixed) if stated_counts else None,
                 **run_plan_rules(run), **shard_group_search(run), **swap_search(run),
                 **({"lower": int(lower)} if lower else {})))


def _all_rejected(par, rej: Counter) -> Counter:
    """The rejections of the whole space by reason code: the parents' and those of their last expansion ``rej``
    (as :func:`enumerate_space` counts them)."""
    rejected = par.rejected.copy()
    for c, v in rej.items():
        rejected[c] += v
    return rejected


def _count_fits(run: Run, fixed: PlanSpec | None, calib: Calib | None, use_all: bool,
                stated_counts: bool = False) -> tuple:
    """((plans that fit in HBM, least memory per chip), (valid plans, rejections by rule)) over every valid plan of
    the search of ``run`` with the (already restricted) ``fixed`` fields: the space expanded again from its
    parents and the memory arithmetic of the search's bulk pass (:class:`MemoryPass`)."""
    ctx = context(run, calib)
    par = _parents(*_enum_args(run, fixed, use_all, stated_counts))
    _, rej, (n, n_fit, least, _) = MemoryPass(ctx, par, run.system.chip.hbm_bytes).start(
        SEARCH_THREADS - 1).result()
    return (n_fit, least if n else None), (n, _rule_texts(_all_rejected(par, rej)))
