"""What the explorer's requests carry, validated by pydantic like every trainsim file: a run spec (the very
:class:`trainsim.spec.RunSpecFile` schema, through :func:`trainsim.spec.parse_run`), the system edits of the page
(:class:`Edits`, SI units) and the per-question parameters. Also the catalog the page offers, with sources.

An edited system is written as the run spec's own inline form ``{base: ID, chip: {...}, scale_up: {...},
scale_out: {...}, price_per_chip_usd}`` (:func:`system_doc`), so the spec YAML the page downloads reproduces the
view with ``trainsim plan``."""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .. import api
from ..api import MAX_CHIPS, MAX_SWEEP_POINTS, too_many_chips, PlanSpec, TrainsimError, from_validation, parse_fix, parse_run
from ..api import scenarios
from ..report.fmt import GIB

#: editable system fields: key -> (label, display unit, SI per display unit)
EDIT_FIELDS: dict[str, tuple[str, str, float]] = {
    "scale_up_size": ("chips per scale-up domain", "chips", 1.0),
    "scale_up_bw": ("scale-up bandwidth per chip, one direction", "GB/s", 1e9),
    "scale_out_bw": ("scale-out bandwidth per chip, one direction", "GB/s", 1e9),
    "hbm_bytes": ("HBM capacity", "GiB", GIB),
    "hbm_bw": ("HBM bandwidth", "TB/s", 1e12),
    "bf16_flops": ("peak dense BF16", "TFLOP/s", 1e12),
    "fp8_flops": ("peak dense FP8", "TFLOP/s", 1e12),
    "price_per_chip_usd": ("system price per chip", "USD", 1.0),
}
CHIP_EDITS = ("hbm_bytes", "hbm_bw", "bf16_flops", "fp8_flops")
#: an edited value may be at most this many times the largest value of its field in the catalog (:func:`edit_limits`)
#: and at least the smallest over this factor (:func:`edit_floors`)
EDIT_MAX_CATALOG_FACTOR = 100.0
#: the price may be 0 (hardware already paid for); every other edit has a floor
FLOORLESS_EDITS = ("price_per_chip_usd",)


@lru_cache(maxsize=1)
def _catalog_extremes() -> tuple[dict[str, float], dict[str, float]]:
    """(smallest, largest) value of each numeric system edit over the catalog's usable systems and their chips
    (SI; each catalog value carries its source; FP8 and the price over the systems that state one)."""
    ss = [s for s in api.systems().values() if s.chip.usable]
    values = {
        "scale_up_bw": [s.levels[0].bw for s in ss], "scale_out_bw": [s.levels[1].bw for s in ss],
        "hbm_bytes": [s.chip.hbm_bytes for s in ss], "hbm_bw": [s.chip.hbm_bw for s in ss],
        "bf16_flops": [s.chip.flops("bf16") for s in ss],
        "fp8_flops": [s.chip.peak_flops.get("fp8") or 0.0 for s in ss],
        "price_per_chip_usd": [s.price_per_chip_usd or 0.0 for s in ss]}
    small = {k: min((x for x in v if x > 0), default=0.0) for k, v in values.items()}
    return small, {k: max(v) for k, v in values.items()}


@lru_cache(maxsize=1)
def edit_limits() -> dict[str, float]:
    """The largest value each numeric system edit accepts (SI): :data:`EDIT_MAX_CATALOG_FACTOR` x the largest
    value of that field over the catalog's usable systems and their chips (the scale-up size: :data:`MAX_CHIPS`,
    as everywhere). Wide enough for any what-if several generations ahead,
    narrow enough that a finite but absurd edit (``hbm_bw`` 1e300 B/s) is refused with the field's name rather
    than run into predictions no hardware can reach (qa21b)."""
    return {k: EDIT_MAX_CATALOG_FACTOR * v for k, v in _catalog_extremes()[1].items()}


@lru_cache(maxsize=1)
def edit_floors() -> dict[str, float]:
    """The smallest value each numeric system edit accepts (SI): the smallest value of that field over the
    catalog's usable systems and their chips over :data:`EDIT_MAX_CATALOG_FACTOR` -- the mirror of
    :func:`edit_limits` (32 GiB of HBM -> 0.32 GiB; the TPU v4 pod's 3.125 GB/s data-centre network per chip ->
    31.25 MB/s), so a 1-byte HBM or a 0.001 GB/s link is refused with the field's name rather than priced (qa22).
    The price (:data:`FLOORLESS_EDITS`) keeps 0 as its floor."""
    return {k: (0.0 if k in FLOORLESS_EDITS else v / EDIT_MAX_CATALOG_FACTOR)
            for k, v in _catalog_extremes()[0].items()}


class Edits(BaseModel):
    """Values the page changed (SI units: bytes, bytes/s, FLOP/s, USD); None = the catalog's."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    scale_up_size: int | None = Field(None, gt=0, le=MAX_CHIPS)
    scale_up_bw: float | None = Field(None, gt=0)
    scale_out_bw: float | None = Field(None, gt=0)
    hbm_bytes: float | None = Field(None, gt=0)
    hbm_bw: float | None = Field(None, gt=0)
    bf16_flops: float | None = Field(None, gt=0)
    fp8_flops: float | None = Field(None, gt=0)
    price_per_chip_usd: float | None = Field(None, ge=0)

    @field_validator(*(k for k in EDIT_FIELDS if k != "scale_up_size"))
    @classmethod
    def _at_most_limit(cls, v: float | None, info: ValidationInfo) -> float | None:
        """A finite value between :func:`edit_floors` and :func:`edit_limits` (the 400 answer names the field)."""
        if v is None:
            return v
        if not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v}")
        name = str(info.field_name)
        top, floor = edit_limits()[name], edit_floors()[name]
        unit, scale = EDIT_FIELDS[name][1:]
        if v > top:
            raise ValueError(f"expected at most {top / scale:.4g} {unit} ({EDIT_MAX_CATALOG_FACTOR:g} x the "
                             f"catalog's largest), got {v / scale:.4g} {unit}")
        if v < floor:
            raise ValueError(f"expected at least {floor / scale:.4g} {unit} (the catalog's smallest / "
                             f"{EDIT_MAX_CATALOG_FACTOR:g}), got {v / scale:.4g} {unit}")
        return v


class RunRequest(BaseModel):
    """The run of the page: a run-spec mapping whose ``system`` is a catalog id, plus the edits of that system."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    spec: dict[str, Any]
    edits: Edits = Edits()
    fix: str = Field("", max_length=400)
    # a software-stack profile id (trainsim/frameworks.py), written into the run spec's ``framework:`` key so the
    # plan search offers only what that stack has; "megatron" / "mindspeed" / "torchtitan" (older links) name
    # the default stack of that flag emitter. The flags shown are those of the profile's emitter.
    framework: str = Field("", max_length=64)
    top: int = Field(5, ge=1, le=20)
    failure_rate: float | None = Field(None, ge=0, le=1.0)   # interruptions per chip-hour (assumption override)


class WhatIfRequest(RunRequest):
    """A run request plus the nominal edits the what-if compares against."""

    nominal_edits: Edits = Edits()      # the plan view's edits: the nominal point of the what-if


class SizeRequest(RunRequest):
    """A run request plus the deadline in days and the unit (whole systems or chips) to size in."""

    days: float = Field(gt=0, le=36500)
    unit: Literal["system", "chip"] = "system"
    failures: bool = True


class CapacityRequest(BaseModel):
    """A capacity question: a system with edits, units or chips, days, model family and precision."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    system: str
    edits: Edits = Edits()
    units: int = Field(0, ge=0)
    chips: int = Field(0, ge=0, le=MAX_CHIPS)
    days: float = Field(gt=0, le=36500)
    family: Literal["dense", "deepseek-v3"] = "deepseek-v3"
    precision: Literal["bf16", "fp8"] = "bf16"
    failures: bool = True
    failure_rate: float | None = Field(None, ge=0, le=1.0)


class SensitivityRequest(RunRequest):
    """A run request plus the system parameters to vary and the factors to scale them by."""

    params: list[str] = Field(default_factory=lambda: ["hbm_bandwidth", "scale_up_bandwidth",
                                                       "scale_out_bandwidth", "peak_flops"])
    factors: list[float] = Field(default_factory=lambda: [0.5, 2.0], max_length=MAX_SWEEP_POINTS)


def validate(model: type[BaseModel], body: Any, where: str = "request") -> BaseModel:
    """``body`` as ``model``, or the one-line :class:`TrainsimError` a file would get."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc, where, model) from None


def _q(v: float, unit: str, scale: float) -> str:
    return f"{v / scale:.10g} {unit}"


def system_doc(system_id: str, edits: Edits | None = None) -> str | dict:
    """The run spec's ``system:`` value for catalog system ``system_id`` with ``edits``: the id itself when
    nothing changed, else the inline ``base:`` form with every changed number (levels, power and price given
    explicitly so that a replaced chip changes nothing else)."""
    s = api.system(system_id, field="system")
    e = {k: v for k, v in (edits or Edits()).model_dump().items() if v is not None}
    if not e:
        return system_id
    c = s.chip
    up, out = s.levels[0], s.levels[1]
    doc: dict[str, Any] = {"base": system_id}
    if any(k in e for k in CHIP_EDITS):
        fp8 = e.get("fp8_flops", c.peak_flops.get("fp8"))
        chip: dict[str, Any] = {
            "name": c.id, "vendor": c.vendor, "family": c.family,
            "bf16_tflops": float(f"{e.get('bf16_flops', c.flops('bf16')) / 1e12:.10g}"),
            "hbm": _q(e.get("hbm_bytes", c.hbm_bytes), "GiB", GIB),   # HBM capacity is binary
            "hbm_bandwidth": _q(e.get("hbm_bw", c.hbm_bw), "TB/s", 1e12)}
        if fp8:
            chip["fp8_tflops"] = float(f"{fp8 / 1e12:.10g}")
        if c.peak_flops.get("fp4"):
            chip["fp4_tflops"] = float(f"{c.peak_flops['fp4'] / 1e12:.10g}")
        if c.scale_up_bw:
            chip["scale_up_bandwidth"] = _q(c.scale_up_bw, "GB/s", 1e9)
        if c.scale_out_bw:
            chip["scale_out_bandwidth"] = _q(c.scale_out_bw, "GB/s", 1e9)
        if c.tdp_w:
            chip["tdp_w"] = c.tdp_w
        if c.price_usd is not None:
            chip["price_usd"] = c.price_usd
        doc["chip"] = chip
        if s.power_per_chip_w is not None:
            doc["power_per_chip_w"] = s.power_per_chip_w
    doc["scale_up"] = {"size": int(e.get("scale_up_size", up.size or 1)),
                       "bandwidth": _q(e.get("scale_up_bw", up.bw), "GB/s", 1e9),
                       "latency": _q(up.latency_s, "us", 1e-6)}
    doc["scale_out"] = {"bandwidth": _q(e.get("scale_out_bw", out.bw), "GB/s", 1e9),
                        "latency": _q(out.latency_s, "us", 1e-6)}
    price = e.get("price_per_chip_usd", s.price_per_chip_usd)
    if price is not None:
        doc["price_per_chip_usd"] = price
    return doc


def spec_doc(req: RunRequest) -> dict:
    """The full run-spec mapping of a request (system edits applied, ``fix`` merged into ``plan``)."""
    spec = dict(req.spec)
    sysv = spec.get("system")
    if not isinstance(sysv, str):
        raise TrainsimError(f"expected a catalog system id, got {sysv!r}", field="system", where="request")
    spec["system"] = system_doc(sysv, req.edits)
    if req.framework:
        fw = api.stack(req.framework)
        if spec.get("framework") not in (None, fw):
            raise TrainsimError(f"the spec says framework {spec['framework']}, the framework input {fw}",
                                field="framework", where="request")
        spec["framework"] = fw
    if req.fix.strip():
        base = PlanSpec.model_validate(spec["plan"]) if isinstance(spec.get("plan"), dict) else None
        spec["plan"] = parse_fix(req.fix, base).model_dump(exclude_none=True)
    return spec


def parse_request_run(req: RunRequest):
    """The :class:`trainsim.Run` of a request, through the run spec's own validation."""
    doc = spec_doc(req)
    chips = doc.get("chips")
    if isinstance(chips, int) and chips > MAX_CHIPS:
        raise TrainsimError(too_many_chips(chips), field="chips", where="request")
    return parse_run(doc, where="request"), doc


def assumptions_for(failure_rate: float | None):
    """The scenario assumptions, with ``interruptions_per_chip_hour`` set to ``failure_rate`` when given."""
    return scenarios.assumptions(failure_rate)


def spec_yaml(doc: dict, comment: str = "") -> str:
    """The run spec as YAML (what ``trainsim plan FILE`` reads), with a header comment."""
    head = "# run spec written by trainsim serve; reproduce with: trainsim plan THIS.yaml --json\n"
    if comment:
        head += "".join(f"# {line}\n" for line in comment.splitlines())
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=110)


@lru_cache(maxsize=1)
def presets() -> dict:
    """The explorer's preset runs (``serve/presets.yaml``)."""
    return yaml.safe_load(resources.files("trainsim.serve").joinpath("presets.yaml").read_text())


def model_value(name: str) -> Any:
    """A preset's inline model mapping, else the name (a catalog id)."""
    p = presets()["models"].get(name)
    return p["model"] if p else name


@lru_cache(maxsize=1)
def catalog() -> dict:
    """What the page offers: models (catalog with a public config, and presets), systems with the editable
    values and each value's source, the failure-rate assumption, the request limits and the units the page
    converts with (``units.gib_bytes``: :data:`trainsim.units.GIB`)."""
    models = [{"id": k, "name": k, "source": v["source"], "preset": True, "model": v["model"]}
              for k, v in presets()["models"].items()]
    models += [{"id": m["id"], "name": m["name"], "source": "catalog models.yaml", "preset": False}
               for m in api.models() if m.get("family")]
    out_sys = []
    for sid, s in api.systems().items():
        if not s.chip.usable:
            continue
        fields = {f["field"]: f for f in api.describe_system(sid)["fields"]}
        cfields = {f["field"]: f for f in api.describe_chip(s.chip.id)["fields"]} if s.chip.id else {}
        vals = {"scale_up_size": s.scale_up_size, "scale_up_bw": s.levels[0].bw, "scale_out_bw": s.levels[1].bw,
                "hbm_bytes": s.chip.hbm_bytes, "hbm_bw": s.chip.hbm_bw, "bf16_flops": s.chip.flops("bf16"),
                "fp8_flops": s.chip.peak_flops.get("fp8"), "price_per_chip_usd": s.price_per_chip_usd}
        srcs = {}
        for k in vals:
            f = fields.get(k) or cfields.get(k)
            srcs[k] = {"source": ", ".join(f["source"]) if f and f.get("source") else "",
                       "confidence": f.get("confidence") if f else None, "note": f.get("note", "") if f else ""}
        out_sys.append({"id": sid, "name": s.name, "chip": s.chip.id, "family": s.chip.family,
                        "default_framework": api.default_stack(s), "values": vals, "sources": srcs})
    a = scenarios.assumptions().get("interruptions_per_chip_hour")

    fws = [{"id": k, "emitter": api.stack_emitter(k), "schedules": v["schedules"], "zero": v["zero"],
            "recompute": v["recompute"], "expert_parallel": v["expert_parallel"],
            "context_parallel": v["context_parallel"], "source": v.get("source", "")} for k, v in api.stacks().items()]
    return {"models": models, "systems": out_sys, "frameworks": fws, "default_framework": api.default_stack(),
            "fields": {k: {"label": v[0], "unit": v[1], "scale": v[2]} for k, v in EDIT_FIELDS.items()},
            "failure_rate": {"value": a.value, "low": a.low, "high": a.high, "source": a.source},
            "default": presets()["default"], "limits": {"max_chips": MAX_CHIPS, "max_sweep_points": MAX_SWEEP_POINTS,
                                                   "max_edits": edit_limits(),
                                                   "min_edits": edit_floors()},
            "units": {"gib_bytes": GIB}}   # the page divides by this (trainsim.units.GIB), never its own 2 ** 30
