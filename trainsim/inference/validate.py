"""Predicted vs published serving throughput: the inference model's error table.

:func:`error_table` evaluates every serving spec with a ``reported:`` block (default: the repository's
``validation/inference/*.yaml``) and returns one row per reported metric with the signed relative error
``predicted / reported - 1``. No constant is fitted to these points (see ``inference/data/inference.yaml``).
"""
from __future__ import annotations

from pathlib import Path
from statistics import median

from .serve import infer
from .spec import load_serving

METRICS = (("decode", "decode_tokens_per_s_per_chip", "tokens_per_s_per_chip"),
           ("prefill", "prefill_tokens_per_s_per_chip", "tokens_per_s_per_chip"))


def default_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "validation" / "inference"


def error_table(paths=None, calib=None) -> list[dict]:
    """One row per (spec, metric): name, phase, reported, predicted, error, source."""
    if paths is None:
        paths = sorted(default_dir().glob("*.yaml"))
    rows = []
    for path in paths:
        sv = load_serving(path)
        if sv.reported is None:
            continue
        res = infer(sv, calib)
        for phase, rep_key, pred_key in METRICS:
            rep = getattr(sv.reported, rep_key)
            if rep and phase in res:
                pred = res[phase][pred_key]
                rows.append({"name": sv.name, "file": Path(path).name, "phase": phase, "metric": rep_key,
                             "reported": rep, "predicted": pred, "error": pred / rep - 1.0,
                             "predicted_latency_s": res[phase].get("tpot_s", res[phase].get("ttft_s")),
                             "reported_tpot_ms": sv.reported.tpot_ms, "source": sv.reported.source})
    return rows


def summary(rows: list[dict]) -> dict:
    errs = [abs(r["error"]) for r in rows]
    if not errs:
        return {"points": 0}
    return {"points": len(errs), "median_abs_error": median(errs), "max_abs_error": max(errs),
            "mean_signed_error": sum(r["error"] for r in rows) / len(rows)}
