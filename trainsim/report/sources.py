"""Every input of a run with where it came from: the run spec, the model's config source, the chip's and the
system's catalog entries (``Sourced`` provenance, citation text from ``catalog.load.source_text``), and the
calibration constants. Rows are plain dicts: ``group``, ``input``, ``value``, ``source``, ``citation``,
``confidence``, ``note``."""
from __future__ import annotations

from dataclasses import fields

from ..catalog.types import Sourced
from . import fmt
from ..catalog.load import source_text, chip_entry
from ..catalog.describe import FIELD_DIMS
from ..errors import TrainsimError
from .page import rel_path
from ..model.summary import model_summary
from ..frameworks import framework_of
from ..perf.calibration import Calib, calib_for, family_constants

# chip sourced field -> (value getter, unit for display)
_CHIP_FIELDS = {
    "bf16_flops": (lambda c: c.peak_flops.get("bf16"), "FLOP/s"),
    "fp8_flops": (lambda c: c.peak_flops.get("fp8"), "FLOP/s"),
    "fp4_flops": (lambda c: c.peak_flops.get("fp4"), "FLOP/s"),
    "hbm_bytes": (lambda c: c.hbm_bytes, "B"),
    "hbm_bw": (lambda c: c.hbm_bw, "B/s"),
    "scale_up_bw": (lambda c: c.scale_up_bw, "B/s"),
    "scale_out_bw": (lambda c: c.scale_out_bw, "B/s"),
    "tdp_w": (lambda c: c.tdp_w, "W"),
    "price_usd": (lambda c: c.price_usd, "USD"),
}


def citation(source_ids) -> str:
    """The citation texts of source ids, joined; unknown ids are shown as they are."""
    out = []
    for sid in source_ids:
        try:
            text = source_text(sid)
            out.append(text if text.startswith(f"{sid}:") else f"{sid}: {text}")
        except TrainsimError:
            out.append(str(sid))
    return " | ".join(out)


def _value(v, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "USD":
        return f"${v:,.0f}"
    if unit == "W":
        return f"{v:,.0f} W"
    if unit == "s":
        return fmt.si(v, "s")
    if unit == "":
        return f"{v:,}" if isinstance(v, int) else str(v)
    return fmt.si(v, unit)


def _shown(key: str, v, unit: str) -> str:
    """A chip or system input as the catalog prints it (``catalog show``: 80 GiB, 1,979 TFLOP/s, 400 Gb/s,
    :func:`fmt.catalog_value` with the field's dimension, ``catalog.describe.FIELD_DIMS``); a field the catalog has
    no dimension for as :func:`_value`."""
    if v is None or key not in FIELD_DIMS:
        return _value(v, unit)
    return fmt.catalog_value(v, FIELD_DIMS[key])


def _extra_chip_value(chip_id: str, key: str):
    """A descriptive chip field (year, tpp, export control ...) from the raw hardware.yaml entry, if any."""
    try:
        e = chip_entry(chip_id)
    except Exception:  # noqa: BLE001 - inline chips have no catalog entry
        return None
    v = getattr(e, key, None)
    if v is None:
        v = (getattr(e, "extra", None) or {}).get(key)
    return getattr(v, "value", v)


def _row(group: str, name: str, value: str, src: Sourced | None, default_source: str = "") -> dict:
    if src is None:
        return {"group": group, "input": name, "value": value, "source": default_source, "citation": "",
                "confidence": "", "note": ""}
    return {"group": group, "input": name, "value": value, "source": ", ".join(src.source),
            "citation": citation(src.source), "confidence": src.confidence, "note": src.note}


def run_inputs(run, spec_source: str | None = None) -> list[dict]:
    """The run spec's own inputs (model, system, chips, training, plan)."""
    where = spec_source or (rel_path(run.path) if run.path else "run spec")
    tr = run.training
    rows = [("model", run.arch.name), ("system", run.system.id), ("chip", run.system.chip.id),
            ("chips", f"{run.chips:,}"), ("training.tokens", fmt.count(tr.tokens) if tr.tokens else "-"),
            ("training.seq_len", f"{tr.seq_len:,}"), ("training.global_batch_seqs", f"{tr.batch_seqs:,}"),
            ("training.precision", tr.precision), ("training.attention", tr.attention or "the stack's default")]
    plan = run.plan.model_dump(exclude_none=True)
    rows.append(("plan (fixed fields)", ", ".join(f"{k}={v}" for k, v in plan.items()) or "none: searched"))
    return [{"group": "run spec", "input": k, "value": v, "source": where, "citation": "", "confidence": "input",
             "note": ""} for k, v in rows]


def model_inputs(run) -> list[dict]:
    """Rows of the model's inputs (parameters, layers, hidden size, vocabulary) with their source."""
    s = model_summary(run.arch, run.training.seq_len)
    src = s.get("source") or "inline model in the run spec"
    out = []
    for key, label in (("total_params", "total parameters"), ("active_params", "active parameters"),
                       ("n_layers", "layers"), ("hidden", "hidden size"), ("vocab", "vocabulary")):
        if s.get(key) is not None:
            v = s[key]
            out.append({"group": "model", "input": f"{run.arch.name}: {label}",
                        "value": fmt.count(v) if key.endswith("params") else f"{v:,}",
                        "source": src, "citation": "counted by trainsim.model from the config"
                        if key.endswith("params") else "", "confidence": "config", "note": ""})
    return out


def chip_inputs(chip) -> list[dict]:
    """Rows of the chip's catalog inputs, each with its value, range and source."""
    out = []
    for key, src in chip.sources.items():
        if key.endswith(".range"):
            continue
        if key in _CHIP_FIELDS:
            get, unit = _CHIP_FIELDS[key]
            val = _shown(key, get(chip), unit)
        else:
            v = _extra_chip_value(chip.id, key)
            val = "-" if v is None else str(v)
        rng = chip.ranges.get(key)
        if rng is not None and rng.low != rng.high:
            unit = _CHIP_FIELDS.get(key, (None, ""))[1]
            val += f" (range {_shown(key, rng.low, unit)} - {_shown(key, rng.high, unit)})"
        out.append(_row("chip", f"{chip.id}.{key}", val, src))
    if not chip.sources:
        for key, (get, unit) in _CHIP_FIELDS.items():
            if get(chip) is not None:
                out.append(_row("chip", f"{chip.id}.{key}", _shown(key, get(chip), unit), None,
                                "inline in the run spec"))
    return out


def system_inputs(system) -> list[dict]:
    """Rows of the system's catalog inputs (network levels, power, price), each with its value, range and
    source."""
    up = system.levels[0]
    vals = {"scale_up_size": (up.size, ""), "scale_up_bw": (up.bw, "B/s"), "scale_up_latency": (up.latency_s, "s"),
            "power_per_chip_w": (system.power_per_chip_w, "W"),
            "price_per_chip_usd": (system.price_per_chip_usd, "USD")}
    for i, lv in enumerate(system.levels[1:], 1):
        name = "scale_out" if i == 1 else lv.name.replace("-", "_")
        vals[f"{name}_bw"] = (lv.bw, "B/s")
        vals[f"{name}_latency"] = (lv.latency_s, "s")
    out = []
    keys = list(dict.fromkeys([k for k in system.sources if not k.endswith(".range")] + list(vals)))
    for key in keys:
        v, unit = vals.get(key, (None, ""))
        val = _shown(key, v, unit)
        rng = system.ranges.get(key)
        if rng is not None and rng.low != rng.high:
            val += f" (range {_shown(key, rng.low, unit)} - {_shown(key, rng.high, unit)})"
        src = system.sources.get(key)
        out.append(_row("system", f"{system.id}.{key}", val, src,
                        "" if src else "catalog systems.yaml" if system.sources else "inline in the run spec"))
    return out


def calibration_inputs(family: str, chip: str | None = None, framework: str | None = None) -> list[dict]:
    """The constants the estimate uses for this chip (its model and family) on this software stack, each with
    where it comes from: fitted (perf/data/calibration.yaml), the family's sourced constant or the default one
    (perf/data/constants.yaml)."""
    c, default, fam = calib_for(family, framework=framework, chip=chip), Calib.defaults(), family_constants(family)
    out = []
    for f in fields(Calib):
        v = getattr(c, f.name)
        if v != getattr(fam, f.name):
            src, conf = "perf/data/calibration.yaml (fitted by scripts/calibrate.py)", "fitted"
        elif v != getattr(default, f.name):
            src, conf = f"perf/data/constants.yaml families.{family} (with its source)", "constant"
        else:
            src, conf = "constants default (perf/data/constants.yaml, each with its source)", "default"
        out.append({"group": "calibration", "input": f.name, "value": str(v), "source": src,
                    "citation": "", "confidence": conf, "note": ""})
    return out


def all_inputs(run, spec_source: str | None = None) -> list[dict]:
    """Every input of ``run`` with its source, grouped: run spec, model, chip, system, calibration."""
    return (run_inputs(run, spec_source) + model_inputs(run) + chip_inputs(run.system.chip)
            + system_inputs(run.system)
            + calibration_inputs(run.system.chip.family, run.system.chip.id, framework_of(run)))
