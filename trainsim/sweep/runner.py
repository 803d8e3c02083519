"""Run a sweep: skip finished points (``resume``), batch the rest, evaluate them on an executor, stream the rows
to part files, show progress, and merge the parts into the result file when every point is done."""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainsimError
from .executors import make_executor
from .resume import check_output, complete_output, finished_points
from .writer import PartWriter, finalize, parts_dir
from ..io.files import stderr_ok
from .writer import pa


@dataclass
class SweepRun:
    """What one call of :func:`run_sweep` did."""

    output: Path
    points: int              # points in the sweep
    resumed: int             # points found finished at the start
    evaluated: int           # points evaluated by this call
    errors: int              # of those, rows with an error
    seconds: float
    complete: bool           # the result file is written
    mode: str
    batch: int
    workers: int

    @property
    def points_per_s(self) -> float:
        """Points evaluated per second of wall time (NaN for zero time)."""
        return self.evaluated / self.seconds if self.seconds > 0 else math.nan


def auto_batch(n: int, workers: int) -> int:
    """Points per task: about 8 tasks per worker, at most 32 points, so scheduling stays small against the
    numpy work and every worker stays busy to the end."""
    return max(1, min(32, math.ceil(n / (8 * max(1, workers)))))


def run_sweep(spec, output, *, workers: int = 0, scheduler: str | None = None, executor=None,
              resume: bool = False, overwrite: bool = False, batch: int = 0, quiet: bool = False,
              flush_rows: int = 1024, flush_seconds: float = 5.0, stop_after_batches: int | None = None,
              progress=None) -> SweepRun:
    """Evaluate every point of ``spec`` (a :class:`~trainsim.sweep.spec.SweepSpec`) into ``output`` (Parquet).

    ``workers`` starts a local Dask cluster, ``scheduler`` joins a running one, ``executor`` is any object with
    ``map(spec, batches)`` / ``workers`` / ``close()`` (not closed here when given); otherwise in-process.
    ``stop_after_batches`` stops early as an interruption would (the parts stay for ``resume``). ``progress``:
    ``progress(total, done)`` returns a live display with ``update(points, evaluated, errors, seconds)`` and
    ``stop()`` (:func:`trainsim.report.progress.sweep_bar`), used unless ``quiet`` or standard error is no
    terminal."""
    pa()   # pyarrow is needed before anything runs
    out = Path(output)
    check_output(out)
    parts = parts_dir(out)
    t0 = time.perf_counter()
    done: set[int] = set()
    if parts.exists():
        if resume:
            done = finished_points(spec, parts)
        elif overwrite:
            shutil.rmtree(parts)
        else:
            raise TrainsimError(f"{parts} holds results of an earlier, unfinished run; pass --resume to continue it "
                                f"or --overwrite to start over")
    elif resume and complete_output(spec, out):
        return SweepRun(out, spec.n_points, spec.n_points, 0, 0, 0.0, True, "none (already complete)", 0, 0)
    todo = [i for i in range(spec.n_points) if i not in done]
    own = executor is None
    ex = make_executor(workers, scheduler) if own else executor
    evaluated = errors = 0
    k = batch or 1
    n_workers = 0
    bar = None
    try:
        n_workers = ex.workers
        k = batch if batch and batch > 0 else auto_batch(len(todo), n_workers)
        batches = (todo[s:s + k] for s in range(0, len(todo), k))
        writer = PartWriter(spec, parts, flush_rows=flush_rows, flush_seconds=flush_seconds)
        # a bar only on a terminal; a file or pipe gets the summary line alone
        if progress is not None and not quiet and stderr_ok(None):
            bar = progress(spec.n_points, len(done))
        t_eval = time.perf_counter()
        try:
            for n_batches, (_, rows) in enumerate(ex.map(spec, batches), start=1):
                writer.add(rows)
                evaluated += len(rows)
                errors += sum(1 for r in rows if r.get("error_kind"))
                if bar is not None:
                    bar.update(len(rows), evaluated, errors, time.perf_counter() - t_eval)
                if stop_after_batches is not None and n_batches >= stop_after_batches:
                    break
        finally:
            writer.close()
    finally:
        if bar is not None:
            bar.stop()
        if own:
            ex.close()
    complete = len(done) + evaluated >= spec.n_points
    if complete:
        finalize(spec, parts, out)
    return SweepRun(out, spec.n_points, len(done), evaluated, errors, time.perf_counter() - t0, complete,
                    ex.mode, k, n_workers)
