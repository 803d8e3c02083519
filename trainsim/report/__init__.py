"""Rendering: the terminal tables (:mod:`.terminal`; per command :mod:`.inference`, :mod:`.posttrain`,
:mod:`.validation`, :mod:`.sweep`) and the HTML/PNG reports, all formatting numbers, plans and units through
:mod:`.fmt` (the one formatting layer).

HTML reports: :func:`build_report` (a run spec or scenario YAML -> :class:`~.page.Report` with ``html``,
``charts`` as PNG bytes, ``data``), :mod:`.collect` (the numbers), :mod:`.charts` (matplotlib figures, Agg),
:mod:`.run_report` / :mod:`.scenario_report` (the pages), :mod:`.site` (a folder of scenario reports + index),
:mod:`.progress` (progress bars on stderr). matplotlib is imported only when a report is built.
"""
from __future__ import annotations


def build_report(path, **kw):
    """See :func:`trainsim.report.build.build_report`."""
    from .build import build_report as _build

    return _build(path, **kw)


def build_run_report(run, **kw):
    """See :func:`trainsim.report.run_report.build_run_report`."""
    from .run_report import build_run_report as _build

    return _build(run, **kw)
