"""JSON-ready descriptions of catalog entries for ``trainsim catalog ...`` (the CLI only renders these).

Rows (``chip_rows``, ``system_rows``, ``model_rows``) list one entry per catalog item; ``describe(id)`` gives one
chip, system or model with every field, its source ids, confidence and note, its ranges and the citation text of
every source it uses. Numbers are SI floats; ``display`` strings use the units people read.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any


from ..errors import unknown
from ..yamlload import load_data
from . import load
from .types import Chip, Sourced, System
from ..numfmt import DISPLAY_UNITS, in_unit

# ---------------------------------------------------------------- formatting

#: display scale and unit per dimension: numfmt's one table
_UNITS = DISPLAY_UNITS
#: field -> display dimension
FIELD_DIMS = {
    "bf16_flops": "flops", "fp8_flops": "flops", "fp4_flops": "flops", "hbm_bytes": "bytes", "hbm_bw": "bytes_per_s",
    "scale_up_bw": "bytes_per_s", "scale_out_bw": "bits_per_s", "tdp_w": "watts", "price_usd": "usd",
    "scale_up_size": "count", "scale_up_latency": "seconds", "scale_out_latency": "seconds",
    "inter_site_size": "count", "inter_site_bw": "bits_per_s", "inter_site_latency": "seconds",
    "power_per_chip_w": "watts", "price_per_chip_usd": "usd",
}


def display_unit(dim: str) -> tuple[str, float]:
    """``(unit, scale)`` in which :func:`fmt` prints a quantity of dimension ``dim`` (``bits_per_s``: ``("Gb/s",
    1.25e8)``), for tables that print a catalog quantity as the catalog does."""
    scale, unit = _UNITS[dim]
    return unit, scale


def fmt(value: float | None, dim: str) -> str:
    """``value`` (SI) as text in the unit people read (989 TFLOP/s, 80 GiB, 3,350 GB/s, 400 Gb/s, 2 us): the
    catalog's tables print through :func:`trainsim.numfmt.in_unit`, the one quantity format."""
    return in_unit(value, dim)


def _plain(value) -> str:
    """Research-file values as text: 384 rather than 384.0."""
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _prov(s: Sourced | None) -> dict[str, Any]:
    if s is None:
        return {"source": [], "confidence": None, "note": ""}
    return {"source": list(s.source), "confidence": s.confidence, "note": s.note}


def _field(name: str, value, sources: dict[str, Sourced]) -> dict[str, Any]:
    dim = FIELD_DIMS.get(name)
    return {"field": name, "value": value, "display": fmt(value, dim) if dim else str(value),
            **_prov(sources.get(name))}


def _research(name: str, value, provenance: Sourced | None, display: str | None = None) -> dict[str, Any]:
    """One research-file row of ``catalog show``: the field, its raw value, the value as text (``display``, else
    :func:`_plain`) and its source, confidence and note."""
    return {"field": name, "value": value, "display": _plain(value) if display is None else display,
            **_prov(provenance)}


def _ranges(obj: Chip | System) -> list[dict[str, Any]]:
    out = []
    for name, r in obj.ranges.items():
        dim = FIELD_DIMS.get(name, "count")
        prov = obj.sources.get(f"{name}.range")
        out.append({"field": name, "low": r.low, "nominal": r.nominal, "high": r.high,
                    "display": f"{fmt(r.low, dim)} / {fmt(r.nominal, dim)} / {fmt(r.high, dim)}",
                    "source": list(prov.source) if prov else [], "confidence": prov.confidence if prov else None,
                    "reason": prov.note if prov else ""})
    return out


def _source_texts(*groups) -> dict[str, str]:
    ids: list[str] = []
    for group in groups:
        for item in group:
            for sid in item.get("source", []):
                if sid not in ids:
                    ids.append(sid)
    texts = load.sources()
    return {sid: texts.get(sid, "(no citation text)") for sid in ids}


# ---------------------------------------------------------------- chips


def chip_row(c: Chip) -> dict[str, Any]:
    """One line of ``trainsim catalog chips``."""
    return {"id": c.id, "name": c.name, "vendor": c.vendor, "family": c.family,
            "bf16_flops": c.peak_flops.get("bf16", 0.0), "fp8_flops": c.peak_flops.get("fp8"),
            "fp4_flops": c.peak_flops.get("fp4"), "hbm_bytes": c.hbm_bytes, "hbm_bw": c.hbm_bw,
            "scale_up_bw": c.scale_up_bw, "scale_out_bw": c.scale_out_bw, "tdp_w": c.tdp_w,
            "price_usd": c.price_usd, "usable": c.usable}


def chip_rows() -> list[dict[str, Any]]:
    """One :func:`chip_row` per catalog chip, in catalog order."""
    return [chip_row(c) for c in load.chips().values()]


def describe_chip(chip_id: str) -> dict[str, Any]:
    """Every field of one catalog chip with provenance, the raw research fields, ranges and source texts."""
    c = load.get_chip(chip_id)
    src = c.sources
    values = {"bf16_flops": c.peak_flops.get("bf16") or None, "fp8_flops": c.peak_flops.get("fp8"),
              "fp4_flops": c.peak_flops.get("fp4"), "hbm_bytes": c.hbm_bytes or None, "hbm_bw": c.hbm_bw or None,
              "scale_up_bw": c.scale_up_bw or None, "scale_out_bw": c.scale_out_bw or None, "tdp_w": c.tdp_w,
              "price_usd": c.price_usd}
    fields = [_field(k, v, src) for k, v in values.items() if v is not None or k in src]
    entry = load.chip_entry(chip_id)
    research = []
    for name in ("year", "tpp", "scale_up_bidirectional_GBps", "same_silicon_as"):
        sv = getattr(entry, name)
        if sv is not None:
            research.append(_research(name, sv.value, src.get(name)))
    for name, sv in entry.extra.items():
        research.append(_research(name, sv.value, src.get(name)))
    ranges = _ranges(c)
    return {"kind": "chip", "id": c.id, "name": c.name, "vendor": c.vendor, "family": c.family,
            "status": entry.status, "usable": c.usable, "missing": load.missing_inputs(c), "fields": fields,
            "research": research, "ranges": ranges, "sources": _source_texts(fields, research, ranges)}


# ---------------------------------------------------------------- systems


def system_row(s: System) -> dict[str, Any]:
    """One line of ``trainsim catalog systems``."""
    up, out = s.levels[0], s.levels[1]
    return {"id": s.id, "name": s.name, "chip": s.chip.id, "scale_up_size": up.size, "scale_up_bw": up.bw,
            "scale_up_latency": up.latency_s, "scale_out_bw": out.bw, "scale_out_latency": out.latency_s,
            "power_per_chip_w": s.power_per_chip_w, "price_per_chip_usd": s.price_per_chip_usd}


def system_rows() -> list[dict[str, Any]]:
    """One :func:`system_row` per catalog system, in catalog order."""
    return [system_row(s) for s in load.systems().values()]


def describe_system(system_id: str) -> dict[str, Any]:
    """Every field of one catalog system with provenance, the hardware.yaml description, ranges, source texts."""
    s = load.get_system(system_id)
    src = s.sources
    values: dict[str, Any] = {}
    keys = {"scale-up": "scale_up", "scale-out": "scale_out", "inter-site": "inter_site"}
    for lvl in s.levels:
        key = keys[lvl.name]
        if f"{key}_size" in src or lvl.size is not None:
            values[f"{key}_size"] = lvl.size
        values[f"{key}_bw"] = lvl.bw
        values[f"{key}_latency"] = lvl.latency_s
        if f"{key}_topology" in src or lvl.topology.kind != "switch":
            values[f"{key}_topology"] = lvl.topology.text()      # how the level is wired (catalog/topology.py)
    values["power_per_chip_w"] = s.power_per_chip_w
    values["price_per_chip_usd"] = s.price_per_chip_usd
    fields = [_field(k, v, src) for k, v in values.items()]
    hw = load.hardware_system_entry(system_id)
    research = []
    if hw is not None:
        domain = hw.chips_per_scaleup_domain
        research.append(_research("chips_per_scaleup_domain", domain.value, load.to_sourced(domain),
                                  fmt(domain.value, "count")))
        for name, sv in hw.extra.items():
            research.append(_research(name, sv.value, load.to_sourced(sv)))
    ranges = _ranges(s)
    return {"kind": "system", "id": s.id, "name": s.name, "chip": s.chip.id, "chip_name": s.chip.name,
            "note": load.system_entry(system_id).note, "hardware_ref": hw.id if hw else None,
            "status": hw.status if hw else None,
            "levels": [{"name": lvl.name, "size": lvl.size, "bw": lvl.bw, "latency_s": lvl.latency_s,
                        "topology": lvl.topology.text()}
                       for lvl in s.levels],
            "fields": fields, "research": research, "ranges": ranges,
            "sources": _source_texts(fields, research, ranges)}


# ---------------------------------------------------------------- models (models.yaml, owned by trainsim.model)


@lru_cache(maxsize=1)
def _model_entries() -> tuple[dict[str, Any], ...]:
    text = resources.files("trainsim.catalog").joinpath("data", "models.yaml").read_text(encoding="utf-8")
    return tuple((load_data(text) or {}).get("models", []))


def model_rows() -> list[dict[str, Any]]:
    """id, name, model_type and official total / active parameters (billions) of every catalog model."""
    rows = []
    for m in _model_entries():
        official = m.get("official") or {}
        rows.append({"id": m["id"], "name": m.get("name", ""), "org": m.get("org", ""),
                     "model_type": (m.get("config") or {}).get("model_type"),
                     "total_b": official.get("total_b"), "active_b": official.get("active_b")})
    return rows


def describe_model(model_id: str) -> dict[str, Any]:
    """One models.yaml entry as stored (official counts with their sources, config, computed counts)."""
    for m in _model_entries():
        if m["id"] == model_id:
            return {"kind": "model", **m}
    raise unknown("model", model_id, [m["id"] for m in _model_entries()])


# ---------------------------------------------------------------- any id


def catalog_ids() -> dict[str, list[str]]:
    """The catalog's ids by kind: ``chip``, ``system`` and ``model``."""
    return {"chip": list(load.chips()), "system": list(load.systems()),
            "model": [m["id"] for m in _model_entries()]}


def describe(entry_id: str) -> dict[str, Any]:
    """A chip, system or model by id (looked up in that order); unknown ids raise with close matches."""
    ids = catalog_ids()
    if entry_id in ids["chip"]:
        return describe_chip(entry_id)
    if entry_id in ids["system"]:
        return describe_system(entry_id)
    if entry_id in ids["model"]:
        return describe_model(entry_id)
    raise unknown("catalog id", entry_id, [i for group in ids.values() for i in group])
