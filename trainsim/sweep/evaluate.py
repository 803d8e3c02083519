"""Evaluate a batch of sweep points: the one function every execution mode runs (in-process, local Dask cluster,
remote Dask cluster). A point is built from the base run-spec mapping, resolved with :func:`trainsim.parse_run`,
its numeric system fields set with ``dataclasses.replace``, and answered by :func:`trainsim.search`. Nothing
here depends on time or on the process, so every mode gives the same rows."""
from __future__ import annotations

import copy
from dataclasses import replace

from ..errors import TrainsimError
from ..perf.step import BREAKDOWN_KEYS
from . import targets as T
from .points import point
from ..errors import unknown
from ..spec import parse_run
from ..cost import run_cost
from ..assumptions import defaults
from ..search import search

PLAN_COLUMNS = (("plan.tp", "int64"), ("plan.pp", "int64"), ("plan.vpp", "int64"), ("plan.schedule", "string"),
                ("plan.ep", "int64"), ("plan.etp", "int64"), ("plan.cp", "int64"), ("plan.dp", "int64"),
                ("plan.zero", "int64"), ("plan.recompute", "string"), ("plan.micro_batch", "int64"),
                ("plan.node_limit", "int64"))

#: record groups -> (column, type); types are Arrow type names (the writer maps them)
GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "inputs": (("model", "string"), ("system", "string"), ("chip", "string"), ("chips", "int64"),
               ("seq_len", "int64"), ("global_batch_seqs", "int64"), ("tokens", "float64"),
               ("hbm_bytes", "float64"), ("hbm_bw_bytes_per_s", "float64"), ("peak_bf16_flops_per_s", "float64"),
               ("scale_up_size", "int64"), ("scale_up_bw_bytes_per_s", "float64"),
               ("scale_out_bw_bytes_per_s", "float64")),
    "time": (("step_time_s", "float64"), ("tokens_per_s_per_chip", "float64"), ("mfu", "float64"),
             ("hfu", "float64"), ("precision", "string"), ("mfu_at_precision", "float64"),
             ("hfu_at_precision", "float64"), ("days", "float64"), ("chip_hours", "float64")),
    "memory": (("memory_per_chip_bytes", "float64"), ("fits", "bool")),
    "plan": PLAN_COLUMNS + (("plans_evaluated", "int64"), ("plans_feasible", "int64")),
    "cost": (("cost_rental_usd", "float64"), ("cost_capex_usd", "float64"), ("energy_mwh", "float64")),
    "binding": (("binding", "string"), ("binding_share", "float64")),
    "breakdown": tuple((f"breakdown.{k}", "float64") for k in BREAKDOWN_KEYS),
}
#: what the utilisation columns are measured against (stored in the result file's metadata as
#: ``trainsim.sweep.columns``, issue #16 item 3): ``mfu``/``hfu`` always against the BF16 dense peak, the
#: ``*_at_precision`` columns against the dense peak of the run's ``precision`` column
COLUMN_DEFINITIONS = {
    "mfu": "model FLOPs per second per chip / BF16 dense peak",
    "hfu": "hardware FLOPs (incl. recomputation) per second per chip / BF16 dense peak",
    "precision": "the training precision whose dense peak the *_at_precision columns use",
    "mfu_at_precision": "model FLOPs per second per chip / dense peak of the column 'precision'",
    "hfu_at_precision": "hardware FLOPs per second per chip / dense peak of the column 'precision'",
}
DEFAULT_RECORD = ("inputs", "time", "memory", "plan", "cost", "binding")
HEAD = (("point", "int64"), ("point_key", "string"))
TAIL = (("error_kind", "string"), ("error", "string"))
ERROR_KINDS = ("no-plan", "no-fit", "input", "exception")


def record_columns(record, where: str = "sweep spec") -> list[tuple[str, str]]:
    """``record:`` (group names and/or single column names) -> the recorded (column, type) pairs, in order."""
    by_name = {c: (c, t) for cols in GROUPS.values() for c, t in cols}
    out: list[tuple[str, str]] = []
    for item in (DEFAULT_RECORD if record is None else record):
        if not isinstance(item, str):
            raise TrainsimError(f"expected a group or column name, got {item!r}", field="record", where=where)
        if item in GROUPS:
            cols = GROUPS[item]
        elif item in by_name:
            cols = (by_name[item],)
        else:
            raise unknown("record group or column", item, list(GROUPS) + list(by_name), field="record", where=where)
        for c in cols:
            if c not in out:
                out.append(c)
    return out


def build_run(spec, pt):
    """The resolved :class:`~trainsim.spec.Run` of a point, and its cost-assumption overrides."""
    doc = copy.deepcopy(spec.base_doc)
    assumptions = dict(spec.assumptions)
    post = []
    for target, value, scale in pt.assignment:
        if T.is_system_field(target):
            post.append((target, value, scale))
        else:
            T.apply_mapping(doc, target, value, assumptions)
    doc["name"] = f"{doc.get('name') or spec.name} [point {pt.index}]"
    run = parse_run(doc, base_dir=spec.base_dir, where=f"point {pt.index}")
    if post:
        system = run.system
        for target, value, scale in post:
            system = T.apply_system(system, target, value, scale)
        run = replace(run, system=system)
    return run, assumptions


def _inputs(run) -> dict:
    s, c = run.system, run.system.chip
    return {"model": run.arch.name, "system": s.id, "chip": c.id, "chips": run.chips,
            "seq_len": run.training.seq_len, "global_batch_seqs": run.training.batch_seqs,
            "tokens": run.training.tokens, "hbm_bytes": c.hbm_bytes, "hbm_bw_bytes_per_s": c.hbm_bw,
            "peak_bf16_flops_per_s": c.peak_flops.get("bf16"), "scale_up_size": s.scale_up_size,
            "scale_up_bw_bytes_per_s": s.levels[0].bw,
            "scale_out_bw_bytes_per_s": s.levels[1].bw if len(s.levels) > 1 else None}


def _cost(est, overrides: dict, cost_overrides: dict | None = None) -> dict:
    """The ``cost`` columns of a point: :func:`trainsim.cost.run_cost` (chip-hours, energy, rental and capex cost
    at ideal days, i.e. without failures) with the sweep's ``assumptions:`` and the command line's cost
    overrides (``--price-per-chip-hour``, ``--pue``, ``--electricity``)."""
    if est.run.training.tokens is None:
        return {}
    a = defaults().with_overrides(overrides) if overrides else defaults()
    try:
        c = run_cost(est, assumptions=a, **(cost_overrides or {}))
    except TrainsimError:
        return {}
    if c is None:
        return {}
    return {"cost_rental_usd": c["cost_rental_usd"], "cost_capex_usd": c["cost_capex_usd"],
            "energy_mwh": c["energy_mwh"], "chip_hours": c["chip_hours"]}


def evaluate_point(spec, index: int) -> dict:
    """One row: the point's axis values, what ``record:`` asks for, and ``error_kind`` / ``error``."""
    pt = point(spec.axes, index)
    row: dict = {"point": index, "point_key": pt.key, "error_kind": None, "error": None}
    try:
        run, overrides = build_run(spec, pt)
        row.update(_inputs(run))
        res = search(run, top=1, with_pareto=False)   # the plan search's rules: batch target, idle chips
        row.update(plans_evaluated=res.plans_evaluated, plans_feasible=res.plans_feasible)
        if res.best is None:
            row.update(error_kind="no-plan" if res.plans_evaluated == 0 else "no-fit", error=res.no_plan_message(),
                       fits=False if res.plans_evaluated else None,
                       memory_per_chip_bytes=res.smallest_memory_bytes)
        else:
            est = res.best
            row.update(step_time_s=est.step_time_s, tokens_per_s_per_chip=est.tokens_per_s_per_chip, mfu=est.mfu,
                       hfu=est.hfu, precision=est.run.training.precision, mfu_at_precision=est.mfu_at_precision,
                       hfu_at_precision=est.hfu_at_precision, days=est.days, chip_hours=est.chip_hours,
                       memory_per_chip_bytes=est.memory_per_chip_bytes, fits=est.fits)
            row.update({f"plan.{k}": v for k, v in est.plan.items()})
            cause, secs = max(est.breakdown.items(), key=lambda kv: kv[1])
            row.update(binding=cause, binding_share=secs / est.step_time_s if est.step_time_s else None)
            row.update({f"breakdown.{k}": v for k, v in est.breakdown.items()})
            if "cost" in spec.groups or any(c in spec.column_names for c in ("cost_rental_usd", "cost_capex_usd",
                                                                              "energy_mwh")):
                row.update(_cost(est, overrides, getattr(spec, "cost_overrides", None)))
    except TrainsimError as exc:
        row.update(error_kind="input", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bad point is a row, not the end of the sweep
        row.update(error_kind="exception", error=f"{type(exc).__name__}: {exc}")
    row.update(pt.columns)   # the axis values as given win over the resolved inputs of the same name
    return {c: row.get(c) for c in spec.column_names}


_TUNED = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def tune_malloc() -> bool:
    """Keep freed heap memory for the next plan search (glibc only; once per process; ``TRAINSIM_SWEEP_MALLOC=0``
    turns it off).

    A search allocates and frees arrays of several MiB per chunk. Dask workers start with
    ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off glibc's adaptive mmap threshold: every such array is
    then a fresh mmap whose pages the kernel zeroes, and the search runs about 2.7x slower (measured on the
    CloudMatrix example: 0.33 s -> 0.89 s per point). Serving arrays below 64 MiB from the heap and trimming only
    above 256 MiB makes a search 1.5-2x faster than glibc's defaults in any process, at the same peak memory.
    In a thread other than the main one (a Dask task) this holds only with ``MALLOC_ARENA_MAX=1``: a thread
    arena's 64 MiB sub-heaps are unmapped whenever they empty, i.e. between tasks; the local cluster of
    ``--workers`` sets it, workers of a ``--scheduler`` cluster should be started with it."""
    global _TUNED
    if _TUNED:
        return True
    _TUNED = True
    import os
    import sys

    if os.environ.get("TRAINSIM_SWEEP_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 * 2**20) and libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20))
    except (OSError, AttributeError):   # not glibc
        return False


def evaluate_batch(spec, indices) -> list[dict]:
    """Evaluate the points ``indices`` of ``spec`` (a :class:`~trainsim.sweep.spec.SweepSpec`) in order.

    The unit of work of every executor: in-process it is called directly, on Dask it is submitted as one task."""
    tune_malloc()
    return [evaluate_point(spec, int(i)) for i in indices]
