"""Plan search: evaluate every valid plan at once (in chunks) and keep the fastest ones that fit.

The search is exhaustive over the candidate grid of :mod:`trainsim.parallel.enumerate` (nothing is pruned as
"dominated"), and evaluates plans with exactly the engine's vectorised functions (:func:`perf.step.evaluate`).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from .estimate import Estimate, context, result_row
from .parallel.enumerate import enumerate_space
from .parallel.plan import Plans
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

    def to_frame(self):
        """Best plan and runners-up as a pandas DataFrame (pandas is optional)."""
        import pandas as pd

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
           progress=None, use_all: bool | None = None, with_pareto: bool = True) -> SearchResult:
    """The fastest plans of ``run`` that fit in memory; ``fixed`` pins the fields it names.

    Fastest = most tokens per second for the whole job (plans may use different batches within the run's
    ``batch_tolerance`` and leave chips idle unless ``use_all``); ties go to the plan with fewer idle chips.
    ``with_pareto=False`` skips the Pareto front for callers that need only the best plans."""
    t0 = time.perf_counter()
    fixed = fixed if fixed is not None else run.plan
    ctx = context(run, calib)
    tr = run.training
    use_all = run.use_all if use_all is None else use_all
    plans, batch, rejected = enumerate_space(run.arch, run.chips, tr.seq_len, tr.batch_seqs, fixed,
                                             batch_tol=tr.batch_tol, domain=run.system.scale_up_size,
                                             use_all=use_all)
    n = len(plans)
    hbm = run.system.chip.hbm_bytes
    used = plans.tp * plans.pp * plans.cp * plans.dp
    step = np.empty(n)
    mem = np.empty(n)
    for s in range(0, n, CHUNK):
        sl = slice(s, min(n, s + CHUNK))
        res = evaluate(replace(ctx, global_batch_seqs=batch[sl], chips=used[sl]), plans.take(sl), detail=False)
        step[sl] = res.step_time_s
        mem[sl] = res.memory["total"]
        if progress is not None:
            progress(min(n, s + CHUNK), n)
    # rank by the whole job's speed: seconds per sequence (= step time when every plan has the same batch)
    per_seq = step / batch
    fits = mem <= hbm
    rej = Counter({f"{REASONS[k][0]}: {REASONS[k][1]}": v for k, v in rejected.items()})
    rej["memory: does not fit in HBM"] = int((~fits).sum())
    feasible = np.nonzero(fits)[0]
    best, runners, pareto = None, [], []
    if len(feasible):
        k = min(max(top, 1), len(feasible))
        part = feasible[np.argpartition(per_seq[feasible], k - 1)[:k]] if k < len(feasible) else feasible
        order = part[np.lexsort((run.chips - used[part], per_seq[part]))]
        sub = plans.take(order)
        res = evaluate(replace(ctx, global_batch_seqs=batch[order], chips=used[order]), sub)
        rows = [result_row(run, sub, res, i) for i in range(len(order))]
        best, runners = rows[0], rows[1:]
        if with_pareto:
            near = feasible[per_seq[feasible] <= PARETO_SPAN * per_seq[order[0]]]
            pf = near[_pareto(per_seq[near], mem[near])]
            pareto = [{"plan": plans.row(int(i)), "step_time_s": float(step[i]), "global_batch_seqs": int(batch[i]),
                       "chips_used": int(used[i]), "memory_per_chip_bytes": float(mem[i])} for i in pf[:20]]
    return SearchResult(run=run, best=best, runners_up=runners, pareto=pareto, plans_evaluated=n,
                        plans_feasible=int(len(feasible)), search_seconds=time.perf_counter() - t0,
                        rejected={k: v for k, v in rej.items() if v},
                        smallest_memory_bytes=float(mem.min()) if n else None)
