"""Rendering: the terminal tables (:mod:`.terminal`; per command :mod:`.inference`, :mod:`.posttrain`,
:mod:`.validation`, :mod:`.sweep`) and the HTML/PNG reports, all formatting numbers, plans and units through
:mod:`.fmt` (the one formatting layer).

HTML reports: :func:`build_report` (a run spec or scenario YAML -> :class:`~.page.Report` with ``html``,
``charts`` as PNG bytes, ``data``), :mod:`.collect` (the numbers), :mod:`.charts` (matplotlib figures, Agg),
:mod:`.run_report` / :mod:`.scenario_report` (the pages), :mod:`.site` (a folder of scenario reports + index),
:mod:`.progress` (progress bars on stderr). matplotlib is imported only when a report is built.
"""
from __future__ import annotations

from .build import build_report  # noqa: E402
from .run_report import build_run_report  # noqa: E402

__all__ = ["build_report", "build_run_report"]
