"""Terminal rendering of ``trainsim validate`` (numbers come from :mod:`trainsim.validate.runner`)."""
from __future__ import annotations
from ..numfmt import pct_cell, rate_cell
from ..validate.runner import NOFIT_LEGEND
from .fmt import counted
from .terminal import console


def render_validation(res) -> None:
    """The validation tables of ``trainsim validate``: steady-state errors, whole-run averages, error rows, and
    the per-family and overall summaries of a :class:`~trainsim.validate.runner.ValidationResult`."""
    from rich.table import Table


    c = console()
    if not c.is_terminal:  # piped or captured: do not squeeze the run names into 80 columns
        from rich.console import Console

        c = Console(highlight=False, width=200)
    t = Table(title="predicted vs reported tokens/s per chip (steady state)")
    for col in ("run", "chip", "chips", "reported", "reported as", "predicted", "error %"):
        t.add_column(col, justify="right" if col in ("chips", "reported", "predicted", "error %") else "left")
    for r in res.steady:
        mark = " \u2020" if r.fits is False else ""
        t.add_row(r.run, r.chip or "-", f"{r.chips:,}" if r.chips else "-", rate_cell(r.reported), r.how,
                  rate_cell(r.predicted) + mark, pct_cell(r.error))
    c.print(t)
    if any(r.fits is False for r in res.steady):
        c.print(NOFIT_LEGEND)
    if res.whole_run:
        w = Table(title="whole-run averages (tokens / reported chip-hours; not in the summary)")
        for col in ("run", "chip", "chips", "whole-run tokens/s/chip", "predicted steady tokens/s/chip",
                    "whole-run / predicted"):
            w.add_column(col, justify="left" if col in ("run", "chip") else "right")
        for r in res.whole_run:
            ratio = "-" if not r.predicted or r.reported is None else f"{r.reported / r.predicted:.0%}"
            w.add_row(r.run, r.chip or "-", f"{r.chips:,}" if r.chips else "-", rate_cell(r.reported),
                      rate_cell(r.predicted), ratio)
        c.print(w)
    if res.errors:
        e = Table(title="runs that could not be estimated")
        e.add_column("run")
        e.add_column("error")
        for r in res.errors:
            e.add_row(r.run, r.note)
        c.print(e)
    for fam, s in res.by_family.items():
        c.print(f"{fam}: {counted(s['count'], 'run')}, median |error| {pct_cell(s['median_abs_error'], False)}, "
                f"max |error| {pct_cell(s['max_abs_error'], False)}, bias {pct_cell(s['bias'])}")
    s = res.summary
    c.print(f"overall: {counted(s['count'], 'run')}, median |error| {pct_cell(s['median_abs_error'], False)}, "
            f"max |error| {pct_cell(s['max_abs_error'], False)}, bias {pct_cell(s['bias'])}"
            + (f"; {counted(len(res.errors), 'error row')}" if res.errors else ""))
