"""The sweep doors: ``trainsim sweep`` and ``trainsim sweep --summary``."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping
from ..errors import TrainsimError
from ..io import check_output_dir
from ..sweep import load_sweep as _load_sweep
from ..sweep.executors import MAX_LOCAL_WORKERS
from ..sweep.runner import run_sweep
from ..sweep.writer import parts_dir
from ..sweep.summary import summarize
from ..report.progress import sweep_bar
from . import Answer, _check_days, _name


def load_sweep(path, *, cost: dict | None = None):
    """A sweep spec (:func:`trainsim.sweep.load_sweep`) with ``cost`` overrides (:func:`cost_inputs`)."""
    return _load_sweep(path).with_cost_overrides(dict(cost or {}))


def check_workers(workers: int, names: Mapping[str, str] | None = None, batch: int = 0) -> None:
    """A local Dask cluster has 0 (in-process) to :data:`trainsim.sweep.executors.MAX_LOCAL_WORKERS` workers;
    ``batch``, the points per task, is 0 (automatic) or more."""
    if not 0 <= workers <= MAX_LOCAL_WORKERS:
        raise TrainsimError(f"expected 0 to {MAX_LOCAL_WORKERS} local worker processes, got {workers}",
                            field=_name(names, "workers"))
    if batch < 0:
        raise TrainsimError(f"expected a number of points per task >= 0 (0: automatic), got {batch}",
                            field=_name(names, "batch"))


def sweep(spec, output, **kw):
    """``trainsim sweep``: every point of ``spec`` (a SweepSpec from :func:`load_sweep`, or a path) evaluated
    into the Parquet file ``output`` (:func:`trainsim.sweep.runner.run_sweep`; keywords ``workers``,
    ``scheduler``, ``resume``, ``overwrite``, ``batch``, ``quiet``); a ``SweepRun``."""
    if isinstance(spec, (str, Path)):
        spec = load_sweep(spec)
    kw.setdefault("progress", sweep_bar)
    return run_sweep(spec, output, **kw)


def sweep_parts_dir(output) -> Path:
    """Where an unfinished sweep into ``output`` keeps its finished points (``--resume`` reads them)."""
    return parts_dir(output)


def check_deadline(deadline_days: float | None, names: Mapping[str, str] | None = None) -> None:
    """``--deadline-days``, when given: a positive number of days (checked before a sweep runs, not after)."""
    if deadline_days is not None:
        _check_days(deadline_days, names, "deadline_days")


def sweep_summary(path, *, deadline_days: float | None = None, metric: str = "days", plots=None,
                  names: Mapping[str, str] | None = None) -> Answer:
    """``trainsim sweep --summary``: frontier, Pareto front and per-axis bests of a results file
    (:func:`trainsim.sweep.summary.summarize`); ``plots``: a folder for PNG plots."""
    check_deadline(deadline_days, names)
    if plots is not None:
        check_output_dir(plots, field=_name(names, "plots"), what="plots folder")
    return Answer(summarize(path, deadline_days=deadline_days, metric=metric, plots_dir=plots))
