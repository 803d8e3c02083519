"""Plan search: evaluate every valid plan at once (in chunks) and keep the fastest ones that fit.

The search is exhaustive over the candidate grid of :mod:`trainsim.parallel.enumerate` (nothing is pruned as
"dominated"), and evaluates plans with exactly the engine's vectorised functions (:func:`perf.step.evaluate`).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .estimate import Estimate, context, result_row
from .parallel.enumerate import enumerate_plans
from .parallel.plan import RECOMPUTE, SCHEDULES, Plans
from .parallel.validity import REASONS
from .perf.calibration import Calib
from .perf.step import evaluate
from .spec import PlanSpec, Run

CHUNK = 131072
PARETO_SPAN = 3.0  # the Pareto front lists plans up to this multiple of the best step time


@dataclass
class SearchResult:
    run: Run
    best: Estimate | None
    runners_up: list[Estimate]
    pareto: list[dict]
    plans_evaluated: int
    plans_feasible: int
    search_seconds: float
    rejected: dict = field(default_factory=dict)
    smallest_memory_bytes: float | None = None
    feasible_columns: dict | None = field(default=None, repr=False)   # all plans, step, memory, feasible indices

    def feasible_table(self) -> dict:
        """Every plan that fits as numpy columns (plan fields, step_time_s, memory_gib, tokens_per_s_per_chip)."""
        a = self.feasible_columns or {}
        if not a:
            return {}
        idx, run = a["idx"], self.run
        fp = a["plans"].take(idx)
        cols = {f: getattr(fp, f) for f in ("tp", "pp", "vpp", "dp", "ep", "etp", "cp", "zero")}
        cols["recompute"] = np.asarray(RECOMPUTE, dtype=object)[fp.recompute]
        cols["micro_batch"] = fp.mb
        cols["schedule"] = np.asarray(SCHEDULES, dtype=object)[fp.schedule]
        cols["node_limit"] = fp.node_limit
        cols["step_time_s"] = a["step"][idx]
        cols["memory_gib"] = a["mem"][idx] / 2**30
        # tokens per step / (step time x chips), as perf.step.evaluate defines it
        cols["tokens_per_s_per_chip"] = (run.training.batch_seqs * run.training.seq_len
                                         / (cols["step_time_s"] * run.chips))
        return cols

    def no_plan_message(self) -> str:
        if self.plans_evaluated == 0:
            top = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items(), key=lambda kv: -kv[1])[:3])
            return f"no valid plan for {self.run.chips} chips ({top})"
        gib = (self.smallest_memory_bytes or 0) / 2**30
        hbm = self.run.system.chip.hbm_bytes / 2**30
        return (f"no plan fits in memory: the smallest of {self.plans_evaluated} plans needs {gib:.1f} GiB per chip "
                f"vs {hbm:.1f} GiB HBM")

    def to_dict(self) -> dict:
        out = self.best.to_dict() if self.best else {"best": None}
        out.update(plans_evaluated=self.plans_evaluated, plans_feasible=self.plans_feasible,
                   search_seconds=self.search_seconds, rejected=self.rejected,
                   runners_up=[{"plan": r.plan, "step_time_s": r.step_time_s, "mfu": r.mfu,
                                "tokens_per_s_per_chip": r.tokens_per_s_per_chip,
                                "memory_per_chip_bytes": r.memory_per_chip_bytes} for r in self.runners_up],
                   pareto=self.pareto)
        return out

    def to_frame(self, all: bool = False):  # noqa: A002 - the documented keyword
        """Best plan and runners-up as a pandas DataFrame, or with ``all=True`` every feasible plan (one row per
        plan that fits: plan fields, step_time_s, memory_gib, tokens_per_s_per_chip), fastest first.
        pandas is optional: ``pip install 'trainsim[frames]'``."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            from .errors import TrainsimError

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
           progress=None) -> SearchResult:
    """The fastest plans of ``run`` that fit in memory; ``fixed`` pins the fields it names."""
    t0 = time.perf_counter()
    fixed = fixed if fixed is not None else run.plan
    ctx = context(run, calib)
    plans, rejected = enumerate_plans(run.arch, run.chips, run.training.seq_len, run.training.batch_seqs, fixed)
    n = len(plans)
    hbm = run.system.chip.hbm_bytes
    step = np.empty(n)
    mem = np.empty(n)
    for s in range(0, n, CHUNK):
        sl = slice(s, min(n, s + CHUNK))
        res = evaluate(ctx, plans.take(sl), detail=False)
        step[sl] = res.step_time_s
        mem[sl] = res.memory["total"]
        if progress is not None:
            progress(min(n, s + CHUNK), n)
    fits = mem <= hbm
    rej = Counter({f"{REASONS[k][0]}: {REASONS[k][1]}": v for k, v in rejected.items()})
    rej["memory: does not fit in HBM"] = int((~fits).sum())
    feasible = np.nonzero(fits)[0]
    best, runners, pareto = None, [], []
    if len(feasible):
        k = min(max(top, 1), len(feasible))
        part = feasible[np.argpartition(step[feasible], k - 1)[:k]] if k < len(feasible) else feasible
        order = part[np.argsort(step[part], kind="stable")]
        sub = plans.take(order)
        res = evaluate(ctx, sub)
        rows = [result_row(run, sub, res, i) for i in range(len(order))]
        best, runners = rows[0], rows[1:]
        near = feasible[step[feasible] <= PARETO_SPAN * step[order[0]]]
        pf = near[_pareto(step[near], mem[near])]
        pareto = [{"plan": plans.row(int(i)), "step_time_s": float(step[i]), "memory_per_chip_bytes": float(mem[i])}
                  for i in pf[:20]]
    return SearchResult(run=run, best=best, runners_up=runners, pareto=pareto, plans_evaluated=n, feasible_columns={"plans": plans, "step": step, "mem": mem, "idx": feasible},
                        plans_feasible=int(len(feasible)), search_seconds=time.perf_counter() - t0,
                        rejected={k: v for k, v in rej.items() if v},
                        smallest_memory_bytes=float(mem.min()) if n else None)
