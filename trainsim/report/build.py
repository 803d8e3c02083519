"""``build_report(path)``: the report of a run-spec YAML or of a scenario YAML (a file with ``kind:``)."""
from __future__ import annotations

from pathlib import Path


from ..errors import TrainsimError
from .page import Report
from ..io import load_spec_file, require_file, spec_kind
from ..io.specfile import SPEC_COMMAND, SPEC_LABEL
from .progress import as_tick
from ..spec import load_run
from .run_report import build_run_report
from ..scenario.run import run_file
from .scenario_report import build_scenario_report


def is_scenario(path: str | Path) -> bool:
    """True for a scenario file (a mapping with ``kind``), False for a run spec."""
    path = Path(path)
    require_file(path, what="run spec or scenario")
    try:
        doc = load_spec_file(path, None, what="run spec or scenario")
    except TrainsimError as exc:
        if "expected a mapping" not in str(exc):
            raise
        return False             # not a mapping: not a scenario (the run-spec loader says what is wrong)
    kind = spec_kind(doc)        # a post-training spec has a ``kind`` too (rl, opd): name it, not a scenario kind
    if kind in ("posttrain", "serving", "sweep"):
        raise TrainsimError(f"expected a run spec or a scenario; this is a {SPEC_LABEL[kind]} spec "
                            f"({SPEC_COMMAND[kind]})", where=str(path))
    return "kind" in doc


def build_report(path: str | Path, *, progress=None, **kw) -> Report:
    """The report of ``path``: a run spec (estimate, best plans, scaling, sensitivity, ranges, validation error,
    inputs with sources) or a scenario (its result, plus its run's charts). Keyword arguments go to
    :func:`trainsim.report.collect.run_data` (``top``, ``with_scaling``, ``with_sensitivity``, ``with_ranges``)."""
    tick = as_tick(progress)
    if is_scenario(path):
        tick.advance("running the scenario", 0)
        result = run_file(path)
        return build_scenario_report(result, progress=tick, **kw)

    return build_run_report(load_run(path), progress=tick, **kw)
