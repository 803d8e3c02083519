"""Plan search: evaluate every valid plan at once (in chunks) and keep the fastest ones that fit.

The search is exhaustive over the candidate grid of :mod:`trainsim.parallel.enumerate` (nothing is pruned as
"dominated"), and evaluates plans with exactly the engine's vectorised functions (:func:`perf.step.evaluate`).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from .frameworks import framework_of, restrict_plan
from .parallel.enumerate import enumerate_space
from .parallel.plan import RECOMPUTE
from .parallel.schedules import SCHEDULES
from .parallel.validity import REASONS
from .perf.calibration import Calib
from .perf.step import evaluate, shared_costs
from .plan_estimate import Estimate, context, result_row
from .spec import PlanSpec, Run
from .errors import TrainsimError

CHUNK = 131072  # plans per evaluation chunk (base rows x zero x recompute)
PARETO_SPAN = 3.0  # the Pareto front lists plans up to this multiple of the best step time
#: threads evaluating chunks at once (numpy releases the GIL in its array loops): TRAINSIM_THREADS=N, default 1
#: (on a shared, loaded machine a second thread measured slower; benchmarks/bench_planner.py measures both)
SEARCH_THREADS = max(1, int(os.environ.get("TRAINSIM_THREADS") or 1))


@dataclass
class SearchResult:
    """A plan search's outcome: the best plan and runners-up, the Pareto front, counts of plans evaluated
    and feasible, rejection reasons, and when nothing fits the least-memory plan and the nearest alternatives."""

    run: Run
    best: Estimate | None
    runners_up: list[Estimate]
    pareto: list[dict]
    plans_evaluated: int
    plans_feasible: int
    search_seconds: float
    rejected: dict = field(default_factory=dict)
    smallest_memory_bytes: float | None = None
    least_memory: Estimate | None = field(default=None, repr=False)   # nothing fits: the plan needing least memory
    use_all: bool = False
    alternatives: list[dict] = field(default_factory=list)   # filled by :func:`trainsim.alternatives` on no plan
    feasible_columns: dict | None = field(default=None, repr=False)   # search(keep_all=True): every feasible plan
    fixed: PlanSpec | None = field(default=None, repr=False)
    calib: Calib | None = field(default=None, repr=False)

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
        cols["node_limit"] = fp.node_limit
        cols["global_batch_seqs"] = batch
        cols["chips_used"] = a["used"]
        cols["step_time_s"] = a["per_seq"] * batch
        cols["memory_gib"] = a["mem"] / 2**30
        # tokens per step / (step time x chips), as perf.step.evaluate defines it
        cols["tokens_per_s_per_chip"] = batch * self.run.training.seq_len / (cols["step_time_s"] * a["used"])
        return cols

    def no_plan_message(self) -> str:
        """Why no plan was found: no valid plan (the top rejection reasons) or none fits in
        memory (the smallest need vs HBM), with the alternatives."""
        if self.plans_evaluated == 0:
            tr = self.run.training
            top = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items(), key=lambda kv: -kv[1])[:3])
            msg = (f"no valid plan for {self.run.chips} chips and a batch of {tr.batch_seqs:,} sequences "
                   f"(batch_tolerance {tr.batch_tol:.0%}{', all chips used' if self.use_all else ''}) ({top})")
            return msg + self._alternatives_text()
        gib = (self.smallest_memory_bytes or 0) / 2**30
        hbm = self.run.system.chip.hbm_bytes / 2**30
        return (f"no plan fits in memory: the smallest of {self.plans_evaluated} plans needs {gib:.1f} GiB per chip "
                f"vs {hbm:.1f} GiB HBM" + self._alternatives_text())

    def _alternatives_text(self) -> str:
        if not self.alternatives:
            return ""
        return "; nearest alternatives: " + "; ".join(
            f"{a['text']} -> step {a['step_time_s']:.3g} s, MFU {a['mfu']:.1%}"
            + (f", {a['days']:.1f} days" if a.get("days") is not None else "") for a in self.alternatives)

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
                              "memory_gib": r.memory_per_chip_bytes / 2**30} for r in rows])


def _pareto(step: np.ndarray, mem: np.ndarray) -> np.ndarray:
    """Indices of the plans no other plan beats on both step time and memory (sorted by step time)."""
    order = np.lexsort((mem, step))
    m = mem[order]
    prev_min = np.concatenate(([np.inf], np.minimum.accumulate(m)[:-1]))
    return order[m < prev_min]


def search(run: Run, fixed: PlanSpec | None = None, *, calib: Calib | None = None, top: int = 5,
           progress=None, use_all: bool | None = None, with_pareto: bool = True,
           keep_all: bool = False) -> SearchResult:
    """The fastest plans of ``run`` that fit in memory; ``fixed`` pins the fields it names.

    Fastest = most tokens per second for the whole job (plans may use different batches within the run's
    ``batch_tolerance`` and leave chips idle unless ``use_all``); ties go to the plan with fewer idle chips.
    ``with_pareto=False`` skips the Pareto front for callers that need only the best plans; ``keep_all`` keeps
    every feasible plan for :meth:`SearchResult.to_frame` (``all=True``)."""
    t0 = time.perf_counter()
    fixed = fixed if fixed is not None else run.plan
    # the search offers only what the run's software stack has (trainsim/frameworks.py profiles)
    fixed = restrict_plan(fixed, framework_of(run))
    ctx = context(run, calib)
    tr = run.training
    use_all = run.use_all if use_all is None else use_all
    space, rejected = enumerate_space(run.arch, run.chips, tr.seq_len, tr.batch_seqs, fixed,
                                      batch_tol=tr.batch_tol, domain=run.system.scale_up_size, use_all=use_all)
    shape3 = (len(space.zero), len(space.recompute))
    n, K = len(space), space.k
    base = space.base
    used_b = base.tp * base.pp * base.cp * base.dp
    hbm = run.system.chip.hbm_bytes
    want = max(top, 1)
    n_fit, smallest, smallest_i = 0, np.inf, -1
    cand_v, cand_i, front_v, front_m, front_i = [], [], [], [], []
    all_i, all_v, all_m, all_u = [], [], [], []
    rows = max(1, CHUNK // max(K, 1))
    # the chunks are evaluated as (zero, recompute, base rows) grids, base rows along the last (long) axis
    shared = shared_costs(ctx, space.grid_last(slice(None))) if n else None   # once for all plans, not per chunk
    running_best = [np.inf]      # the fastest fitting plan found so far, for the Pareto pre-filter

    def chunk(s: int):
        """One chunk of base rows: its plan count that fits, least memory, fastest plans and Pareto front."""
        sl = slice(s, min(len(base), s + rows))
        res = evaluate(replace(ctx, global_batch_seqs=space.batch[None, None, sl], chips=used_b[None, None, sl]),
                       space.grid_last(sl), detail=False, shared=shared, rows=(Ellipsis, sl), rate=False)
        # rank by the whole job's speed: seconds per sequence (= step time when every plan has the same batch);
        # flat in the plan index's order (base row, zero, recompute)
        shape = shape3 + (sl.stop - s,)
        per_seq = np.moveaxis(np.broadcast_to(res.step_time_s / space.batch[None, None, sl], shape), 2, 0).reshape(-1)
        mem = np.moveaxis(np.broadcast_to(res.memory["total"], shape), 2, 0).reshape(-1)
        fits = mem <= hbm
        j = int(np.argmin(mem))
        out = {"stop": sl.stop, "n_fit": int(np.count_nonzero(fits)), "least": (float(mem[j]), j + s * K)}
        if keep_all and out["n_fit"]:
            f_idx = np.nonzero(fits)[0]
            out["all"] = (f_idx + s * K, per_seq[f_idx], mem[f_idx], used_b[(f_idx + s * K) // K])
        if out["n_fit"]:         # this chunk's fastest plans and Pareto front; merged below
            ps = np.where(fits, per_seq, np.inf)
            loc = np.argpartition(ps, want - 1)[:want] if len(ps) > want else np.arange(len(ps))
            loc = loc[np.isfinite(ps[loc])]
            out["cand"] = (ps[loc], loc + s * K)
            running_best[0] = min(running_best[0], float(ps[loc].min()))
            if with_pareto:
                # only plans within PARETO_SPAN of the best so far can be on the reported front (the global best
                # is no slower), and a plan on the front of all plans is on the front of its chunk
                f_idx = np.nonzero(ps <= PARETO_SPAN * running_best[0])[0]
                pf = f_idx[_pareto(per_seq[f_idx], mem[f_idx])]
                out["front"] = (per_seq[pf], mem[pf], pf + s * K)
        return out

    starts = range(0, len(base), rows)
    workers = min(SEARCH_THREADS, len(starts))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        # chunks merged in order, so the answer does not depend on the number of threads
        for out in (pool.map(chunk, starts) if pool is not None else map(chunk, starts)):
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
            if progress is not None:
                progress(min(n, out["stop"] * K), n)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    rej = Counter({f"{REASONS[c][0]}: {REASONS[c][1]}": v for c, v in rejected.items()})
    rej["memory: does not fit in HBM"] = n - n_fit
    best, runners, pareto = None, [], []
    if n_fit:
        cv, ci = np.concatenate(cand_v), np.concatenate(cand_i)
        idle = run.chips - used_b[ci // K]
        order = ci[np.lexsort((idle, cv))][:want]       # fastest first; ties: fewer idle chips
        sub = space.plans(order)
        res = evaluate(replace(ctx, global_batch_seqs=space.batch_of(order), chips=used_b[order // K]), sub)
        rows = [result_row(run, sub, res, i) for i in range(len(order))]
        best, runners = rows[0], rows[1:]
        if with_pareto:
            # the front of all plans = the front of the chunks' fronts; plans up to PARETO_SPAN x the best kept
            fv, fm, fi = np.concatenate(front_v), np.concatenate(front_m), np.concatenate(front_i)
            keep = _pareto(fv, fm)
            keep = keep[fv[keep] <= PARETO_SPAN * fv[keep].min()][:20]
            pf_plans, pf_batch = space.plans(fi[keep]), space.batch_of(fi[keep])
            pareto = [{"plan": pf_plans.row(j), "step_time_s": float(fv[i] * pf_batch[j]),
                       "global_batch_seqs": int(pf_batch[j]), "chips_used": int(used_b[fi[i] // K]),
                       "memory_per_chip_bytes": float(fm[i])} for j, i in enumerate(keep)]
    smallest = smallest if n else None
    least = None
    if not n_fit and smallest_i >= 0:
        # nothing fits: the plan that needs the least memory, costed in full, so answers can show by how much
        # and what to change (trainsim.fit_advice)
        idx = np.array([smallest_i])
        sub = space.plans(idx)
        res = evaluate(replace(ctx, global_batch_seqs=space.batch_of(idx), chips=used_b[idx // K]), sub)
        least = result_row(run, sub, res, 0)
    return SearchResult(least_memory=least, run=run, best=best, runners_up=runners, pareto=pareto, plans_evaluated=n,
                        plans_feasible=n_fit, search_seconds=time.perf_counter() - t0,
                        rejected={c: v for c, v in rej.items() if v}, smallest_memory_bytes=smallest,
                        use_all=use_all, fixed=fixed, calib=calib,
                        feasible_columns=None if not keep_all else {
                            "space": space, "idx": np.concatenate(all_i) if all_i else np.zeros(0, np.int64),
                            "per_seq": np.concatenate(all_v) if all_v else np.zeros(0),
                            "mem": np.concatenate(all_m) if all_m else np.zeros(0),
                            "used": np.concatenate(all_u) if all_u else np.zeros(0)})
