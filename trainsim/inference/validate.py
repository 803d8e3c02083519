"""Predicted vs published serving throughput: the inference model's error table.

:func:`error_table` evaluates every serving spec with a ``reported:`` block (default: the repository's
``validation/inference/*.yaml``) and returns one row per reported metric with the signed relative error
``predicted / reported - 1``. No constant is fitted to these points (see ``inference/data/inference.yaml``).
"""
from __future__ import annotations

from pathlib import Path
from statistics import median

from ..errors import TrainsimError
from .calib import held_out_accuracy
from .serve import infer
from .spec import load_serving, uncertain_serving

METRICS = (("decode", "decode_tokens_per_s_per_chip", "tokens_per_s_per_chip"),
           ("prefill", "prefill_tokens_per_s_per_chip", "tokens_per_s_per_chip"),
           ("aggregate", "output_tokens_per_s_per_chip", "output_tokens_per_s_per_chip"))


def default_dir() -> Path:
    """The repository's ``validation/inference`` folder of published serving points."""
    return Path(__file__).resolve().parents[2] / "validation" / "inference"


def predicted_range(sv, calib, pred_key: tuple[str, str], nominal: float | None = None) -> tuple[float, float] | None:
    """Lowest and highest prediction of one metric as each ``uncertain`` input moves to its low and high end, and
    the ``nominal`` prediction (the stated inputs, inside every range: spec.py refuses a range without its stated
    value), so the range always holds the prediction shown beside it even where an end has no plan (an end
    whose 1e300-token output fitted nowhere left a one-sided 5,744-5,744 beside a nominal 5,288)."""
    from dataclasses import replace

    if not sv.uncertain:
        return None
    vals = []
    for k, ends in sv.uncertain.items():
        for v in ends:
            alt = replace(sv, serving=uncertain_serving(sv.serving, k, v))
            try:
                res = infer(alt, calib)
            except Exception:  # noqa: BLE001 - an end of the range with no plan just widens nothing
                continue
            if pred_key[0] in res:
                vals.append(res[pred_key[0]][pred_key[1]])
    if vals and nominal is not None:
        vals.append(nominal)
    return (min(vals), max(vals)) if vals else None


def error_table(paths=None, calib=None, ranges: bool = False, loaded: dict | None = None) -> list[dict]:
    """One row per (spec, metric): name, phase, reported, predicted, error, source (``ranges``: also the
    predicted range over the spec's ``uncertain`` inputs). ``loaded`` maps a path to its already loaded spec
    (the calibration evaluates the same files thousands of times)."""
    if paths is None:
        paths = sorted(default_dir().glob("*.yaml"))
    rows = []
    for path in paths:
        sv = loaded[path] if loaded is not None and path in loaded else load_serving(path)
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
                             "reported_tpot_ms": sv.reported.tpot_ms, "source": sv.reported.source,
                             "stack": sv.reported.stack, "model": sv.arch.name, "chip": sv.system.chip.id,
                             "moe": sv.arch.is_moe, "counted": sv.reported.measurement == "saturated",
                             "measurement": sv.reported.measurement,
                             "predicted_range": (predicted_range(sv, calib, (phase, pred_key), pred) if ranges
                                                 else None)})
    return rows


def summary(rows: list[dict]) -> dict:
    """Points, median and maximum absolute relative error and mean signed error (predicted / reported - 1)
    of the counted ``rows`` (saturated measurements; production averages are listed, not counted: see
    :class:`trainsim.inference.spec.ServeReported`), and how many rows were left out."""
    counted = [r for r in rows if r.get("counted", True)]
    errs = [abs(r["error"]) for r in counted]
    if not errs:
        return {"points": 0, "not_counted": len(rows)}
    return {"points": len(errs), "median_abs_error": median(errs), "max_abs_error": max(errs),
            "mean_signed_error": sum(r["error"] for r in counted) / len(counted),
            "not_counted": len(rows) - len(counted)}


#: CloudMatrix384 decode under TPOT service-level objectives (arXiv 2506.12708 v3 Tables 3-4): SLO ms -> spec file
LATENCY_ROWS = ((50.0, "cloudmatrix-decode-b96-kv4k.yaml"), (30.0, "cloudmatrix-decode-b24-tpot30.yaml"),
                (15.0, "cloudmatrix-decode-b8-tpot15.yaml"))


def latency_bound_table(folder=None, calib=None) -> list[dict]:
    """The decode-vs-latency check: the batch is *searched* under each published TPOT bound (plan as published),
    and the best throughput is compared with the published one (which the paper reports at that bound)."""
    from dataclasses import replace

    folder = Path(folder) if folder else default_dir()
    rows = []
    for slo_ms, fname in LATENCY_ROWS:
        path = folder / fname
        if not path.exists():
            continue
        sv = load_serving(path)
        pub_batch = sv.serving.batch_per_chip
        sv = replace(sv, serving=sv.serving.model_copy(update={"batch_per_chip": None, "batch": None}),
                     latency=sv.latency.model_copy(update={"tpot_ms": slo_ms}))
        rep = sv.reported.decode_tokens_per_s_per_chip
        try:
            d = infer(sv, calib)["decode"]
        except TrainsimError as exc:   # the model cannot meet the bound at all: a row saying so, not a crash
            rows.append({"tpot_bound_ms": slo_ms, "reported": rep, "reported_batch_per_chip": pub_batch,
                         "predicted": None, "predicted_batch_per_chip": None, "predicted_tpot_ms": None,
                         "error": None, "why": str(exc)})
            continue
        rows.append({"tpot_bound_ms": slo_ms, "reported": rep, "reported_batch_per_chip": pub_batch,
                     "predicted": d["tokens_per_s_per_chip"], "predicted_batch_per_chip": d["batch_per_chip"],
                     "predicted_tpot_ms": d["tpot_s"] * 1e3, "error": d["tokens_per_s_per_chip"] / rep - 1.0})
    return rows


def held_out_summary() -> dict | None:
    """The serving model's held-out error as an answer quotes it: points, median and maximum absolute error and
    mean signed error, leave-one-out (each point predicted from constants fitted without it; inference.yaml
    ``accuracy``, written by scripts/calibrate_inference.py), with its basis; None where none is recorded."""
    acc = held_out_accuracy()
    if not acc or "loo_median_abs" not in acc:
        return None
    return {"points": acc.get("points"), "median_abs_error": acc["loo_median_abs"],
            "max_abs_error": acc.get("loo_max_abs"), "mean_signed_error": acc.get("loo_mean_signed"),
            "basis": f"leave-one-out over {acc.get('points')} published serving points (scripts/calibrate_inference.py;"
                     f" in-sample median {acc.get('fit_median_abs')})"}

