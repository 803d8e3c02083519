"""Rendering: the terminal tables (:mod:`.terminal`; per command :mod:`.inference`, :mod:`.posttrain`,
:mod:`.validation`, :mod:`.sweep`) and the HTML/PNG reports, all formatting numbers, plans and units through
:mod:`.fmt` (the one formatting layer).

HTML reports: :func:`.build.build_report` (a run spec or scenario YAML -> :class:`~.page.Report` with ``html``,
``charts`` as PNG bytes, ``data``), :mod:`.collect` (the numbers), :mod:`.charts` (matplotlib figures, Agg),
:mod:`.run_report` / :mod:`.scenario_report` (the pages), :mod:`.site` (a folder of scenario reports + index),
:mod:`.progress` (progress bars on stderr). matplotlib is imported only when a chart is drawn. This package
imports none of its modules, so that a command that only formats numbers (:mod:`.fmt`) loads nothing else.
"""
from __future__ import annotations
