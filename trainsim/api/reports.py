"""The report door: ``trainsim report`` (HTML and PNG; matplotlib is imported when a chart is drawn)."""
from __future__ import annotations

from typing import Mapping
from ..spec import Run
from ..report.build import build_report
from ..report.run_report import build_run_report
from . import as_run


def report(spec, *, progress=None, **kw):
    """``trainsim report``: the HTML report of a run spec or a scenario file (a path), or of a :class:`Run`
    (:func:`trainsim.report.build.build_report`); a :class:`~trainsim.report.page.Report` (``html``, ``charts``,
    ``data``, ``write``, ``to_json``). Keywords: ``top``, ``with_scaling``, ``with_sensitivity``,
    ``cost_inputs``, ``spec_source``."""
    if isinstance(spec, Run) or isinstance(spec, Mapping):
        return build_run_report(as_run(spec), progress=progress, **kw)

    return build_report(spec, progress=progress, **kw)
