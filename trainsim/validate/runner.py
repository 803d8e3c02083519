"""``validate``: predict every published run and compare with what it reported.

For each run spec: load, estimate (its partial plan is completed by the plan search), and compare the predicted
tokens/s per chip with the reported reference (:mod:`trainsim.validate.reference`). A run that cannot be loaded or
estimated becomes an error row; validation never stops at one bad file. The summary (median |error|, max |error|,
bias = median signed error) covers steady-state rows only, overall and per chip family; whole-run averages
(chip-hours) are listed apart.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import TrainsimError
from ..perf.calibration import Calib, calib_for, load_calibration
from .reference import (CONVENTIONS, WHOLE_RUN_NOTE, flops_per_token, peak_bf16, steady_reference,
                        tokens_from_mfu, whole_run_tokens_per_s_per_chip)
from ..numfmt import gib, pct_cell, plan as _plan, rate_cell
from ..estimate import estimate, is_complete
from ..search import search
from ..spec import load_run

NOFIT_LEGEND = ("\u2020 no plan fits the catalog chip's HBM in trainsim's memory model (the run did fit on its "
                "hardware); predicted with the most memory-frugal plan.")
PLAN_KEYS = ("tp", "pp", "vpp", "dp", "ep", "etp", "cp", "zero", "recompute", "micro_batch", "schedule")


def default_runs_dir() -> Path:
    """``validation/runs`` of the repository this package lives in (repo root = parent of the package)."""
    d = Path(__file__).resolve().parents[2] / "validation" / "runs"
    if not d.is_dir():
        raise TrainsimError(f"no validation runs at {d} (trainsim is not running from its repository); "
                            "pass run-spec files or directories to validate")
    return d


def expand_paths(paths: Iterable[str | Path] | None) -> list[Path]:
    """Files as given, directories as their ``*.yaml`` / ``*.yml`` files (sorted); a missing path is an error."""
    if paths is None:
        paths = [default_runs_dir()]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not files:
                raise TrainsimError(f"no run-spec files (*.yaml) in directory {p}")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            raise TrainsimError(f"no such file or directory: {p}")
    if not out:
        raise TrainsimError("no run-spec files to validate")
    return out


def resolve_calib(calib: Calib | dict | str | Path | None, family: str, chip: str | None = None) -> Calib | None:
    """``calib`` may be one :class:`Calib` (every family), a family table (``load_calibration``), a calibration
    YAML path, or None (the packaged calibration, per family)."""
    if calib is None or isinstance(calib, Calib):
        return calib
    if isinstance(calib, (str, Path)):
        calib = load_calibration(str(calib))
    return calib_for(family, calib, chip=chip)


def plan_text(plan: dict | None) -> str:
    """A plan as the validation table prints it (:func:`trainsim.report.fmt.plan`; empty for no plan)."""
    return _plan(plan, empty="", keys=PLAN_KEYS)


@dataclass
class Row:
    """One comparison. ``error`` = (predicted - reported) / reported (a fraction); None for error rows."""

    run: str                                 # file stem
    name: str
    path: str
    kind: str = "steady"                     # 'steady' | 'whole-run' | 'error'
    chip: str | None = None
    family: str | None = None
    chips: int | None = None
    reported: float | None = None            # tokens/s per chip
    how: str = ""                            # how the reported value was obtained
    predicted: float | None = None           # tokens/s per chip
    error: float | None = None
    reported_mfu: float | None = None
    mfu_convention: str | None = None
    predicted_mfu: float | None = None       # trainsim convention (BF16 dense peak: above 1 is possible in FP8)
    predicted_mfu_at_precision: float | None = None  # over the dense peak of the run's precision, in (0, 1]
    predicted_mfu_source_convention: float | None = None  # the prediction restated in the source's convention
    plan: dict | None = None
    fits: bool | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether the row has a finite error (not an error row)."""
        return self.kind != "error" and self.error is not None and math.isfinite(self.error)

    def to_dict(self) -> dict:
        """The row as JSON-ready data, with its plan as text."""
        d = asdict(self)
        d["plan_text"] = plan_text(self.plan)
        return d


def summarize(rows: Iterable[Row]) -> dict:
    """count, median |error|, max |error|, bias (median signed error) of rows with an error (fractions)."""
    errs = [r.error for r in rows if r.ok]
    if not errs:
        return {"count": 0, "median_abs_error": None, "max_abs_error": None, "bias": None}
    return {"count": len(errs), "median_abs_error": statistics.median(abs(e) for e in errs),
            "max_abs_error": max(abs(e) for e in errs), "bias": statistics.median(errs)}


@dataclass
class ValidationResult:
    """The rows of a validation: steady-state, whole-run and error rows, with their summaries."""

    rows: list[Row] = field(default_factory=list)

    @property
    def steady(self) -> list[Row]:
        """Rows compared against a steady-state throughput."""
        return [r for r in self.rows if r.kind == "steady"]

    @property
    def whole_run(self) -> list[Row]:
        """Rows compared against a whole-run average throughput."""
        return [r for r in self.rows if r.kind == "whole-run"]

    @property
    def errors(self) -> list[Row]:
        """Runs that could not be estimated."""
        return [r for r in self.rows if r.kind == "error"]

    @property
    def summary(self) -> dict:
        """Count, median and max |error| and bias over the steady-state rows."""
        return summarize(self.steady)

    @property
    def by_family(self) -> dict[str, dict]:
        """The steady-state summary per chip family."""
        fams = sorted({r.family for r in self.steady if r.family})
        return {f: summarize(r for r in self.steady if r.family == f) for f in fams}

    @property
    def median_abs_error(self) -> float | None:
        """Median |predicted / reported - 1| over the steady-state rows."""
        return self.summary["median_abs_error"]

    @property
    def max_abs_error(self) -> float | None:
        """Largest |predicted / reported - 1| over the steady-state rows."""
        return self.summary["max_abs_error"]

    @property
    def bias(self) -> float | None:
        """Median signed error over the steady-state rows."""
        return self.summary["bias"]

    def to_dict(self) -> dict:
        """The validation as JSON-ready data (``trainsim validate --json``)."""
        s = self.summary
        return {
            "runs": [r.to_dict() for r in self.rows],
            "count": s["count"],
            "median_abs_error": s["median_abs_error"],
            "max_abs_error": s["max_abs_error"],
            "bias": s["bias"],
            "by_family": self.by_family,
            "whole_run": summarize(self.whole_run),
            "errors": len(self.errors),
            "error_definition": "(predicted - reported) / reported tokens/s per chip; summaries over steady-state "
                                "rows only (whole-run averages and error rows excluded)",
        }

    def to_frame(self):
        """The rows as a pandas DataFrame (pandas is imported here, not at package import)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise TrainsimError("to_frame() needs pandas (pip install pandas)") from exc
        return pd.DataFrame([r.to_dict() for r in self.rows])

    def to_markdown(self) -> str:
        """The validation table for the README (regenerate with ``trainsim validate --markdown``)."""
        out = ["| run | chip | chips | reported tokens/s/chip | reported as | predicted tokens/s/chip | error |",
               "|---|---|---:|---:|---|---:|---:|"]
        for r in self.steady:
            mark = " \u2020" if r.fits is False else ""
            out.append(f"| `{r.run}` | {r.chip} | {r.chips:,} | {rate_cell(r.reported)} | {r.how} "
                       f"| {rate_cell(r.predicted)}{mark} | {pct_cell(r.error)} |")
        out.append("")
        out.append("Error = (predicted - reported) / reported. MFU-only runs are converted with the FLOP convention "
                   "of their source (`reported.mfu_convention`).")
        if any(r.fits is False for r in self.steady):
            out.append(NOFIT_LEGEND)
        out.append("")
        out.append("| chip family | runs | median abs error | max abs error | bias (median error) |")
        out.append("|---|---:|---:|---:|---:|")
        for fam, s in self.by_family.items():
            out.append(f"| {fam} | {s['count']} | {pct_cell(s['median_abs_error'], signed=False)} "
                       f"| {pct_cell(s['max_abs_error'], signed=False)} | {pct_cell(s['bias'])} |")
        s = self.summary
        out.append(f"| **all** | {s['count']} | {pct_cell(s['median_abs_error'], signed=False)} "
                   f"| {pct_cell(s['max_abs_error'], signed=False)} | {pct_cell(s['bias'])} |")
        if self.whole_run:
            out.append("")
            out.append("Whole-run averages (tokens / reported chip-hours; not in the summary: they include restarts, "
                       "failures, evaluation and idle time, which a step model does not predict):")
            out.append("")
            out.append("| run | chip | chips | whole-run tokens/s/chip | predicted steady tokens/s/chip | "
                       "whole-run / predicted |")
            out.append("|---|---|---:|---:|---:|---:|")
            for r in self.whole_run:
                ratio = "-" if not r.predicted or r.reported is None else f"{r.reported / r.predicted:.0%}"
                out.append(f"| `{r.run}` | {r.chip} | {r.chips:,} | {rate_cell(r.reported)} | {rate_cell(r.predicted)} "
                           f"| {ratio} |")
        if self.errors:
            out.append("")
            out.append("Runs that could not be estimated:")
            out.append("")
            for r in self.errors:
                out.append(f"- `{r.run}`: {r.note}")
        return "\n".join(out) + "\n"


def _mfu_fields(run, row: Row, predicted: float | None) -> list[str]:
    """Fill the reported/predicted MFU fields; return note fragments (MFU consistency when tokens/s is given)."""
    notes: list[str] = []
    rep = run.reported
    if rep is None or rep.mfu is None:
        return notes
    row.reported_mfu = rep.mfu
    row.mfu_convention = rep.mfu_convention
    if rep.mfu_convention is None or rep.mfu_convention not in CONVENTIONS:
        return notes
    try:
        if predicted is not None:
            f = flops_per_token(run.arch, run.training.seq_len, rep.mfu_convention)
            row.predicted_mfu_source_convention = predicted * f / peak_bf16(run)
        if row.how in ("reported", "from step time"):
            implied, _ = tokens_from_mfu(run, rep.mfu, rep.mfu_convention)
            notes.append(f"reported MFU implies {implied:,.1f} tokens/s/chip ({implied / row.reported - 1:+.1%}) "
                         f"under the {rep.mfu_convention} convention")
    except TrainsimError:
        pass
    return notes


def _estimate(run, calib: Calib | None):
    """(estimate, note). The run was measured, so it fit on its hardware: when no plan fits the catalog chip's
    HBM (an approximate chip variant or the memory model's error), throughput is still predicted, with the most
    memory-frugal valid plan (the fastest plan among those needing the least memory), and the note says so."""
    from dataclasses import replace


    # a published run used all its chips and exactly its stated batch: no idle chips, no batch tolerance
    tr = run.training
    run = replace(run, use_all=True, training=tr if tr.batch_tolerance is not None
                  else tr.model_copy(update={"batch_tolerance": 0.0}))
    try:
        return estimate(run, calib=calib), ""
    except TrainsimError:
        if is_complete(run.plan):
            raise
        res = search(run, fixed=run.plan, calib=calib, top=1, with_pareto=False)
        if res.best is not None or not res.plans_evaluated or not res.smallest_memory_bytes:
            raise
    chip = run.system.chip
    need = res.smallest_memory_bytes
    roomy = replace(run, system=run.system.with_(chip=chip.with_(hbm_bytes=need * (1.0 + 1e-9))))
    est = estimate(roomy, calib=calib)
    est.fits = False
    est.run = run
    return est, (f"no plan fits the {gib(chip.hbm_bytes)} HBM of {chip.id} (least memory needed "
                 f"{gib(need)}); predicted with the most memory-frugal plan")


def validate_run(path: Path, calib: Calib | dict | str | Path | None = None) -> list[Row]:
    """Rows for one run file: a steady-state row (or an error row), plus a whole-run row when chip-hours and
    training tokens are both reported."""
    row = Row(run=path.stem, name=path.stem, path=str(path))
    try:
        run = load_run(path)
    except TrainsimError as exc:
        row.kind, row.note = "error", f"load: {exc}"
        return [row]
    except Exception as exc:  # noqa: BLE001 - a bug elsewhere must not stop the whole validation
        row.kind, row.note = "error", f"load: {type(exc).__name__}: {exc}"
        return [row]
    chip = run.system.chip
    row.name, row.chip, row.family, row.chips = run.name, chip.id, chip.family, run.chips

    notes: list[str] = []
    try:
        ref = steady_reference(run)
    except TrainsimError as exc:
        ref = None
        notes.append(f"reported: {exc}")
    whole = whole_run_tokens_per_s_per_chip(run)
    if ref is not None:
        row.reported, row.how = ref.value, ref.how
        if ref.note:
            notes.append(ref.note)

    est, relaxed = None, ""
    try:
        est, relaxed = _estimate(run, resolve_calib(calib, chip.family, chip.id))
        if relaxed:
            notes.append(relaxed)
    except TrainsimError as exc:
        row.kind = "error"
        notes.append(f"estimate: {exc}")
    except Exception as exc:  # noqa: BLE001
        row.kind = "error"
        notes.append(f"estimate: {type(exc).__name__}: {exc}")

    predicted = None
    if est is not None:
        predicted = float(est.tokens_per_s_per_chip)
        row.predicted, row.predicted_mfu, row.fits = predicted, float(est.mfu), bool(est.fits)
        row.predicted_mfu_at_precision = float(est.mfu_at_precision)
        row.plan = {k: v for k, v in est.plan.items() if k in PLAN_KEYS or k == "node_limit"}
        if not est.fits and not relaxed:
            notes.append("the predicted plan does not fit in memory")
    notes.extend(_mfu_fields(run, row, predicted))

    rows = [row]
    if row.kind != "error":
        if row.reported is None:
            if whole is None:
                row.kind = "error"
                notes.append("nothing to compare with: no tokens/s, step time, MFU or chip-hours reported")
            else:
                row.kind = "whole-run"
                row.reported, row.how = whole, "from chip-hours (whole-run average)"
                notes.append(WHOLE_RUN_NOTE)
                whole = None  # this row already is the whole-run comparison
        if row.reported and predicted is not None and row.kind != "error":
            row.error = (predicted - row.reported) / row.reported
    row.note = "; ".join(notes)

    if whole is not None and row.kind != "error":
        w = Row(run=row.run, name=row.name, path=row.path, kind="whole-run", chip=row.chip, family=row.family,
                chips=row.chips, reported=whole, how="from chip-hours (whole-run average)", predicted=predicted,
                plan=row.plan, fits=row.fits, predicted_mfu=row.predicted_mfu,
                predicted_mfu_at_precision=row.predicted_mfu_at_precision,
                note=WHOLE_RUN_NOTE + f"; {run.training.tokens:.4g} tokens / {run.reported.chip_hours:.4g} "
                                      "chip-hours")
        if predicted is not None:
            w.error = (predicted - whole) / whole
        rows.append(w)
    return rows


def validate(paths: list[Path] | None = None, calib: Calib | dict | str | Path | None = None) -> ValidationResult:
    """Compare predictions with every run in ``paths`` (files or directories; default: the repository's
    ``validation/runs``). ``calib``: a :class:`Calib` for every run, a family table, a calibration YAML path,
    or None for the packaged calibration."""
    files = expand_paths(paths)
    if isinstance(calib, (str, Path)):
        if not Path(calib).is_file():
            raise TrainsimError(f"no such calibration file: {calib}", field="--calibration")
        calib = load_calibration(str(calib))
    result = ValidationResult()
    for f in files:
        result.rows.extend(validate_run(f, calib))
    return result

