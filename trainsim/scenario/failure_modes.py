"""Failure handling as a choice (``scenario/data/failure_handling.yaml``): whole-job restart from a storage
checkpoint, in-memory checkpoints with hot spares, partial restart; each option, with its sources, overrides the
restart time and checkpoint bandwidth of the goodput model (:mod:`trainsim.scenario.goodput`; checkpoint interval
by Young/Daly, interruption rate per chip-hour from Llama 3 with its range)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from ..yamlload import load_data
from ..assumptions import Assumptions, _num
from ..errors import unknown


@lru_cache(maxsize=1)
def _doc() -> dict:
    text = resources.files("trainsim.scenario").joinpath("data/failure_handling.yaml").read_text(encoding="utf-8")
    return load_data(text) or {}


def options() -> dict[str, dict]:
    """Option id -> {label, restart_s, checkpoint_write_bw, source, note}."""
    return {k: _num(v) for k, v in (_doc().get("options") or {}).items()}


def default_option() -> str:
    """The failure-handling option used when a scenario names none (``whole_job_restart`` by default)."""
    return str(_doc().get("default", "whole_job_restart"))


def check_options(ids, field: str = "failure_handling") -> None:
    """Refuse, before any work, an option id that :func:`options` lacks (one line with close matches)."""
    opts = options()
    for i, option in enumerate(ids):
        if option not in opts:
            raise unknown("failure handling option", option, opts, field=f"{field}[{i}]")


def with_option(a: Assumptions, option: str) -> Assumptions:
    """``a`` with the restart time and checkpoint bandwidth of one failure-handling option (sourced)."""
    opts = options()
    if option not in opts:
        raise unknown("failure handling option", option, opts, field="failure_handling")
    o = opts[option]
    src = f"failure handling '{o['label']}': {o['source']}"
    return a.with_overrides({k: {**o[k], "source": src, "confidence": "low"}
                             for k in ("restart_s", "checkpoint_write_bw")}, source=src)
