"""Predicted vs published RL step times: the whole-step check of the post-training model.

:func:`error_table` evaluates every post-training spec with a ``reported:`` block (default: the repository's
``validation/rl/*.yaml``: NeMo RL's GRPO performance summary) and returns one row per spec with the predicted step,
its timeline (weight refit, generation, log-probs, training, WAN) and the signed error ``predicted / reported - 1``.
Nothing is fitted to these points: the serving constants come from ``validation/inference`` and the training
engine's from ``validation/runs``.
"""
from __future__ import annotations

from pathlib import Path
from statistics import median

from ..errors import TrainsimError
from .spec import load_posttrain
from .timeline import evaluate


def default_dir() -> Path:
    """The repository's ``validation/rl`` folder of published post-training points."""
    return Path(__file__).resolve().parents[2] / "validation" / "rl"


def stage_seconds(res: dict) -> dict[str, float]:
    """Seconds per stage of the step's timeline (phases of one stage on the same resource add up)."""
    out: dict[str, float] = {}
    for p in res["phases"]:
        out[p["stage"]] = out.get(p["stage"], 0.0) + p["seconds"]
    return out


def error_table(paths=None, ranges: bool = False) -> list[dict]:
    """One row per spec: predicted step, timeline stages and error (``ranges``: accepted like the serving table's;
    post-training specs carry no uncertain inputs, so there is no range to add)."""
    if paths is None:
        paths = sorted(default_dir().glob("*.yaml"))
    rows = []
    for path in paths:
        pt = load_posttrain(path)
        if pt.reported is None:
            continue
        try:
            res = evaluate(pt)
        except TrainsimError as exc:
            rows.append({"name": pt.name, "file": Path(path).name, "reported": pt.reported.step_time_s,
                         "predicted": None, "error": None, "why": str(exc), "source": pt.reported.source})
            continue
        pred = res["step_time_s"]
        rows.append({"name": pt.name, "file": Path(path).name, "mode": pt.step.mode,
                     "reported": pt.reported.step_time_s, "predicted": pred,
                     "error": pred / pt.reported.step_time_s - 1.0, "stages_s": stage_seconds(res),
                     "bound_by": res["bound_by"], "source": pt.reported.source, "stack": pt.reported.stack})
    return rows


def summary(rows: list[dict]) -> dict:
    """Points evaluated and failed, median and maximum absolute error, mean signed error and the count within
    20% of ``rows``."""
    errs = [r["error"] for r in rows if r["error"] is not None]
    if not errs:
        return {"points": 0, "failed": len(rows)}
    a = [abs(e) for e in errs]
    return {"points": len(errs), "failed": len(rows) - len(errs), "median_abs_error": median(a),
            "max_abs_error": max(a), "mean_signed_error": sum(errs) / len(errs),
            "within_20pct": sum(1 for e in a if e <= 0.20)}
