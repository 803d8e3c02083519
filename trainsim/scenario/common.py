"""Shared helpers of the scenario modules: a memoised plan search, run variants, batch fitting, formatting.

Scenarios ask the engine the same question many times (sizing probes, sensitivity variations, the S2 run reused
by S3, S5 and S8), so :func:`best` memoises :func:`trainsim.search` on the content of the run (model, the
numbers of the system the engine reads, chips, training) and of the fixed plan fields.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..catalog.types import System
from ..search import SearchResult, search
from ..spec import PlanSpec, Run, chips_as_stated, parse_run
from ..units import GIB

_CACHE: dict[tuple, SearchResult] = {}
STATS = {"searches": 0, "hits": 0}


def system_key(s: System) -> tuple:
    """A hashable key of everything of ``s`` a search's result depends on (chip rates and sizes, levels)."""
    c = s.chip
    return (c.id, c.family, tuple(sorted((k, float(v or 0.0)) for k, v in c.peak_flops.items())), c.hbm_bytes,
            c.hbm_bw, c.scale_up_bw, c.scale_out_bw, s.levels, c.host_link_bw, c.scale_up_topology, c.host_cpu)


def run_key(run: Run, fixed: PlanSpec | None) -> tuple:
    """What a plan search depends on: not ``training.tokens`` (only days do; see :func:`_rebased`)."""
    fixed = fixed if fixed is not None else run.plan
    tr = run.training.model_dump()
    tr.pop("tokens", None)
    return (hash(run.arch), run.arch.name, system_key(run.system), run.chips, run.use_all,
            tuple(sorted(tr.items())), fixed.model_dump_json(), run.framework,   # the stack limits the search
            run.optimizer.model_dump_json())   # the optimizer's state precisions set memory, hence the plans


# the engine's data files: a cached result is valid only for the catalog, calibration, constants and assumptions
# it was computed with (the package's YAML data; a calibration run rewrites calibration.yaml in place)
DATA_PACKAGES = ("catalog", "perf", "scenario", "inference", "posttrain")


@lru_cache(maxsize=1)
def _data_files() -> tuple[Path, ...]:
    """The engine's data files, listed once per process (a directory listing per cache key cost 0.2 ms, hundreds
    of times per scenario); their content is still checked on every key (:func:`engine_data_key`)."""
    root = Path(__file__).resolve().parents[1]
    return tuple(sorted(p for pkg in DATA_PACKAGES for p in (root / pkg / "data").glob("*.yaml")))


def engine_data_key() -> str:
    """A digest of the content of every engine data file (catalog, calibration, constants, assumptions), re-read
    only when a file's size or modification time changes: part of every cache key of a scenario result."""
    stats = tuple((str(p), st.st_mtime_ns, st.st_size) for p in _data_files() for st in (p.stat(),))
    return _digest(stats)


@lru_cache(maxsize=4)
def _digest(stats: tuple) -> str:
    h = hashlib.sha256()
    for path, _, _ in stats:
        h.update(path.encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def cache_key(run: Run, fixed: PlanSpec | None = None, *extra) -> tuple:
    """The key of a cached scenario result: the run's content (:func:`run_key`), the engine's data files
    (:func:`engine_data_key`) and anything else the caller's answer depends on (``extra``)."""
    return run_key(run, fixed) + (engine_data_key(),) + tuple(extra)


def _rebased(res: SearchResult, run: Run) -> SearchResult:
    """A cached search result re-expressed for the asking ``run``: its ``training.tokens`` (only days depend on
    them) and what the search key leaves out because no plan depends on it -- the system's price, power, name and
    sources, the run's name, path and reported figures -- are the asker's. Each estimate keeps its own batch (the
    one its plan uses, which may differ from the stated one within ``batch_tolerance``). Handing back the cached
    runs costed a question at the price of the one asked before it (qa21: the explorer answered a request with
    the previous request's edited price)."""
    tokens = run.training.tokens

    def rebase(r: Run) -> Run:
        return replace(r, name=run.name, system=run.system, path=run.path, reported=run.reported,
                       training=r.training.model_copy(update={"tokens": tokens}))

    swap = lambda e: None if e is None else replace(e, run=rebase(e.run))  # noqa: E731
    return replace(res, run=rebase(res.run), best=swap(res.best), runners_up=[swap(e) for e in res.runners_up],
                   least_memory=swap(res.least_memory))


def clear_cache() -> None:
    """Empties the search cache and zeroes its statistics."""
    _CACHE.clear()
    STATS.update(searches=0, hits=0)


def with_batch(run: Run, batch_seqs: int) -> Run:
    """``run`` with a global batch of ``batch_seqs`` sequences."""
    tr = run.training.model_copy(update={"global_batch_seqs": int(batch_seqs), "global_batch_tokens": None})
    return replace(run, training=tr)


def _odd_part(n: int) -> int:
    while n % 2 == 0 and n:
        n //= 2
    return n


def fitted_batch(batch_seqs: int, chips: int, max_pp: int = 128, tol: float = 0.08,
                 max_pp_odd: int | None = None) -> int:
    """A global batch near ``batch_seqs`` that the plans of this chip count can split.

    A plan needs batch % (dp x micro_batch) == 0 with dp = chips / (tp pp cp). tp and cp are powers of two, so
    the odd part o of the chip count must go into pp (at most ``max_pp`` = the layer count) or into dp; in the
    latter case the batch must contain it. For each odd q | o that pp can take (q <= max_pp), the batch is
    r x 2^k x j with r = o / q; a batch that already qualifies is kept, else the closest one within ``tol`` with at
    least min(v2(chips), 10) factors of two (enough dp choices), else the one with the most factors of two.
    ``max_pp_odd`` caps the odd factor left to pp (3: the batch carries the rest, so short pipelines stay possible).
    """
    o = _odd_part(chips)
    qmax = min(o, max_pp, max_pp_odd or max_pp)
    qs = [q for q in range(1, qmax + 1, 2) if o % q == 0]
    keep_q = [1] if max_pp_odd else qs      # with max_pp_odd, keep the batch only if dp can take every odd factor
    if any(batch_seqs % (o // q) == 0 for q in keep_q):
        return int(batch_seqs)
    v2 = (chips & -chips).bit_length() - 1
    want_k = min(v2, 10)
    best_c = None
    for q in qs:
        r = o // q
        for k in range(14, -1, -1):
            unit = r * 2**k
            if unit > batch_seqs * (1 + tol):
                continue
            b = unit * max(1, round(batch_seqs / unit))
            dev = abs(b / batch_seqs - 1.0)
            if dev <= tol:
                pp_pen = (q > 1) if max_pp_odd else False
                cand = (pp_pen, k < want_k, -k if k < want_k else 0, dev, r, b)
                if best_c is None or cand < best_c:
                    best_c = cand
    if best_c is None:           # nothing within tol: the closest multiple of the odd part
        return int(o * max(1, round(batch_seqs / o)))
    return int(best_c[5])


def best(run: Run, fixed: PlanSpec | None = None, *, top: int = 1, adjust_batch: bool = True) -> SearchResult:
    """Memoised plan search. Where no plan is valid for the run's batch on this chip count (a divisibility
    problem, not memory), the batch is moved to the nearest one this chip count can split (:func:`fitted_batch`)
    and the result's ``run`` says so (``SearchResult.run.training``)."""
    key = cache_key(run, fixed, top)
    if key in _CACHE:
        STATS["hits"] += 1
        return _rebased(_CACHE[key], run)
    STATS["searches"] += 1
    res = search(run, fixed, top=top, with_pareto=False)
    if res.best is None and res.plans_evaluated == 0 and adjust_batch:   # (best first: counts are lazy)
        b = fitted_batch(run.training.batch_seqs, run.chips, max_pp=min(128, run.arch.n_layers))
        if b != run.training.batch_seqs:
            res2 = search(with_batch(run, b), fixed, top=top, with_pareto=False)
            if res2.best is not None or res2.plans_evaluated:
                res = res2
    _CACHE[key] = res
    return res


def days_of(res: SearchResult) -> float:
    """Days of the best plan, ``inf`` when nothing fits."""
    if res.best is None or res.best.days is None:
        return math.inf
    return float(res.best.days)


def make_run(model: Any, system: Any, chips: int, training: dict, base_dir: Path | None = None,
             name: str = "scenario", plan: dict | None = None, framework: str | None = None,
             optimizer: dict | None = None) -> Run:
    """A resolved run; ``system`` may be a catalog id, an inline mapping or a :class:`System` object;
    ``framework`` and ``optimizer`` are the run spec's keys of the same names (the software stack)."""
    obj = system if isinstance(system, System) else None
    chips = chips_as_stated(chips, system, base_dir, name)   # "24 pods" of this system, "25K": the run spec's parser
    doc = {"name": name, "model": model, "system": "dgx-h100" if obj is not None else system, "chips": int(chips),
           "training": dict(training)}
    if plan:
        plan = dict(plan)
        if plan.get("zero_shard_group"):      # a searched sharding group (plan_estimate.plan_row): a training key
            doc["training"]["zero_shard_group"] = int(plan.pop("zero_shard_group"))
        plan.pop("zero_shard_group", None)
        doc["plan"] = plan
    if framework:
        doc["framework"] = framework
    if optimizer:
        doc["optimizer"] = dict(optimizer)
    run = parse_run(doc, base_dir=base_dir, where=name)
    return replace(run, system=obj) if obj is not None else run


def at_chips(run: Run, chips: int) -> Run:
    """``run`` on ``chips`` chips."""
    return replace(run, chips=int(chips))


def plan_summary(est) -> dict | None:
    """The parts of a best plan a scenario prints: plan fields, MFU, memory, breakdown, batch."""
    if est is None:
        return None
    return {
        "plan": {k: v for k, v in est.plan.items()},
        "chips": est.run.chips,
        "system": est.run.system.id,
        "precision": est.run.training.precision,
        "global_batch_seqs": est.run.training.batch_seqs,
        "step_time_s": est.step_time_s,
        "tokens_per_s_per_chip": est.tokens_per_s_per_chip,
        "mfu": est.mfu,
        "memory_per_chip_gib": est.memory_per_chip_bytes / GIB,
        "hbm_gib": est.run.system.chip.hbm_bytes / GIB,
        "fits": est.fits,
        "breakdown_s": est.breakdown,
    }


def where_time_goes(est, top: int = 4) -> list[tuple[str, float]]:
    """The largest parts of the step time as (cause, fraction)."""
    if est is None:
        return []
    tot = sum(v for v in est.breakdown.values() if v > 0) or 1.0
    items = sorted(((k, v / tot) for k, v in est.breakdown.items() if v > 0), key=lambda kv: -kv[1])
    return items[:top]


COMM_KEYS = ("tp_comm", "ep_alltoall", "cp_comm", "pp_p2p", "dp_comm")


def comm_fraction(est) -> float:
    """The share of a plan's step time in communication: the communication parts of its breakdown over the
    sum of its positive parts (NaN without a plan)."""
    if est is None:
        return math.nan
    tot = sum(v for v in est.breakdown.values() if v > 0) or 1.0
    return sum(est.breakdown.get(k, 0.0) for k in COMM_KEYS) / tot


def lnh(low, nominal, high) -> dict:
    """A low/nominal/high triple as a dict (low <= high)."""
    vals = [v for v in (low, high) if v is not None]
    lo = min(vals) if vals else None
    hi = max(vals) if vals else None
    return {"low": lo, "nominal": nominal, "high": hi}


def sig(x: float | None, n: int = 3) -> str:
    """A number with n significant digits for verdict sentences."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{n - 1}e}"
    digits = max(0, n - 1 - int(math.floor(math.log10(abs(x)))))
    s = f"{x:,.{digits}f}"
    return s
