"""Pydantic (v2) models of the catalog files under ``catalog/data``; they validate each file when it is loaded.

* ``hardware.yaml`` -- the sourced research file (kept verbatim). Every number is a *sourced value*
  ``{value, source, confidence, note}``; source ids are defined under its ``sources:`` (or are ``derived``).
* ``systems.yaml`` -- numeric systems (chip, scale-up / scale-out / inter-site levels, power and price per chip).
* ``ranges.yaml``  -- low / nominal / high for inputs where sources disagree.

The schemas check structure and provenance only; unit parsing and the conversion to the runtime dataclasses of
:mod:`trainsim.catalog.types` happen in :mod:`trainsim.catalog.load`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Confidence = Literal["high", "medium", "low"]

#: pseudo source ids accepted everywhere besides the ids defined under a file's ``sources:``
DERIVED = "derived"


# every model defers building its pydantic validator to its first use (defer_build): the files are validated
# only when the catalog cache misses, so importing the schema costs class creation only


class SourcedValue(BaseModel):
    """One sourced datum: ``value`` (number, text or null), ``source`` ids, ``confidence`` and a ``note``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    value: Any = None
    source: list[str] = Field(default_factory=list)
    confidence: Confidence
    note: str = ""


class SourcedNumber(SourcedValue):
    """A sourced number (or null when no source gives one)."""

    value: float | None = None


class StrictSourced(SourcedValue):
    """A sourced value in the files trainsim writes itself (systems.yaml, ranges.yaml): stricter provenance.

    A non-null value needs at least one source id, and ``derived`` needs the formula in ``note``; a null value
    needs a ``note`` saying why it is missing.
    """

    value: float | int | str | None = None

    @model_validator(mode="after")
    def _provenance(self):
        if self.value is not None and not self.source:
            raise ValueError("a value needs a source (a source id, 'derived' or 'assumption')")
        if self.value is None and not self.note:
            raise ValueError("a null value needs a note saying why it is missing")
        if DERIVED in self.source and not self.note:
            raise ValueError("'derived' needs the formula in note")
        return self


# ---------------------------------------------------------------- hardware.yaml

def _collect_extra(data: Any, known: set[str]) -> Any:
    """Move keys a model does not name into ``extra`` (each must itself be a sourced value)."""
    if not isinstance(data, dict):
        return data
    out = {k: v for k, v in data.items() if k in known}
    extra = {k: v for k, v in data.items() if k not in known}
    if extra:
        out["extra"] = extra
    return out


class _WithExtra(BaseModel):
    """A hardware.yaml entry whose keys the subclass does not name go to its ``extra`` field
    (:func:`_collect_extra`), so the research file may carry more than the model reads."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _extras(cls, data):
        return _collect_extra(data, set(cls.model_fields) - {"extra"})


class ChipEntry(_WithExtra):
    """One chip of hardware.yaml. Numbers keep the research file's units (TFLOPS, GB, TB/s, GB/s, Gb/s, W, USD)."""

    id: str
    vendor: str
    name: str
    status: str | None = None
    year: SourcedValue | None = None
    bf16_dense_tflops: SourcedNumber | None = None
    fp8_dense_tflops: SourcedNumber | None = None
    fp4_dense_tflops: SourcedNumber | None = None
    # FP32 on the CUDA cores (no Tensor Cores, no TF32): the rate of a PyTorch FP32 matmul since 1.12
    fp32_dense_tflops: SourcedNumber | None = None
    hbm_capacity_gb: SourcedNumber | None = None
    hbm_bandwidth_TBps: SourcedNumber | None = None
    scale_up_unidirectional_GBps: SourcedNumber | None = None
    scale_up_bidirectional_GBps: SourcedNumber | None = None
    scale_out_Gbps: SourcedNumber | None = None
    tdp_w: SourcedNumber | None = None
    price_usd: SourcedNumber | None = None
    tpp: SourcedNumber | None = None
    #: the catalog chip this one shares its die and clocks with (the H800 SXM5: the H100 SXM5's GH100 at the same
    #: clocks, NVLink cut): calibration pools and looks up both as one silicon (catalog/load.py silicon_of)
    same_silicon_as: SourcedValue | None = None
    extra: dict[str, SourcedValue] = Field(default_factory=dict)  # export_control, measured, notes, ...


class HardwareSystemEntry(_WithExtra):
    """One (descriptive) system of hardware.yaml; the numeric view lives in systems.yaml."""

    id: str
    name: str
    chip: str
    status: str | None = None
    chips_per_scaleup_domain: SourcedNumber
    extra: dict[str, SourcedValue] = Field(default_factory=dict)  # scale_up / scale_out text, totals, power...


def _source_ids(obj: BaseModel):
    """Every source id used by the sourced values inside ``obj`` (recursively)."""
    if isinstance(obj, SourcedValue):
        yield from obj.source
        return
    for name in type(obj).model_fields:
        val = getattr(obj, name)
        items = val.values() if isinstance(val, dict) else val if isinstance(val, list) else [val]
        for item in items:
            if isinstance(item, BaseModel):
                yield from _source_ids(item)


def _check_sources(objs, known: set[str], where: str) -> None:
    for obj in objs:
        bad = sorted(set(_source_ids(obj)) - known - {DERIVED})
        if bad:
            raise ValueError(f"{where} {getattr(obj, 'id', '')}: unknown source id(s) {', '.join(bad)}")


def _check_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} id {i!r}")
        seen.add(i)


#: the fields two chips of one silicon (ChipEntry.same_silicon_as) must state alike: the die at the same clocks has
#: the same dense peaks, and the calibration fitted on one is the other's only if its HBM is the same too
SAME_SILICON_FIELDS = ("bf16_dense_tflops", "fp8_dense_tflops", "fp4_dense_tflops", "hbm_capacity_gb",
                       "hbm_bandwidth_TBps")


def _check_same_silicon(chips: list[ChipEntry]) -> None:
    """Each ``same_silicon_as`` names another catalog chip that names none itself (one silicon, one key), and the
    two state the same :data:`SAME_SILICON_FIELDS`."""
    by_id = {c.id: c for c in chips}
    for c in chips:
        if c.same_silicon_as is None:
            continue
        other = c.same_silicon_as.value
        if not isinstance(other, str) or other not in by_id or other == c.id:
            raise ValueError(f"chip {c.id}: same_silicon_as {other!r:.80} is not another catalog chip id")
        if by_id[other].same_silicon_as is not None:
            raise ValueError(f"chip {c.id}: same_silicon_as {other!r} names a chip that itself names "
                             f"{by_id[other].same_silicon_as.value!r}; expected the silicon's own chip")
        for f in SAME_SILICON_FIELDS:
            a, b = getattr(c, f), getattr(by_id[other], f)
            va, vb = (None if a is None else a.value), (None if b is None else b.value)
            if va != vb:
                raise ValueError(f"chip {c.id}: {f} {va!r} differs from same_silicon_as {other}'s {vb!r}; expected "
                                 f"the same die and clocks to state the same value")


class HardwareFile(BaseModel):
    """hardware.yaml: ``meta``, ``sources`` (id -> citation), ``chips``, ``systems`` and research-only sections."""

    # production_and_fleet, export_control_rules: narrative data
    model_config = ConfigDict(extra="allow", defer_build=True)

    meta: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, str]
    chips: list[ChipEntry]
    systems: list[HardwareSystemEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self):
        _check_unique([c.id for c in self.chips], "chip")
        _check_unique([s.id for s in self.systems], "system")
        _check_sources(self.chips, set(self.sources), "chip")
        _check_sources(self.systems, set(self.sources), "system")
        _check_same_silicon(self.chips)
        return self


# ---------------------------------------------------------------- systems.yaml

class LevelEntry(BaseModel):
    """One network level: chips per domain (scale-up, inter-site), bandwidth per chip per direction, latency."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    size: StrictSourced | None = None
    bandwidth: StrictSourced
    latency: StrictSourced
    topology: StrictSourced | None = None   # catalog/topology.py text; absent = a non-blocking switch


class SystemEntry(BaseModel):
    """One numeric system of systems.yaml. Bandwidths and latencies are strings with units ("450 GB/s", "2 us")."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    name: str
    chip: str
    hardware_ref: str | None = None   # id of the descriptive entry in hardware.yaml, when there is one
    note: str = ""
    scale_up: LevelEntry
    scale_out: LevelEntry
    inter_site: LevelEntry | None = None
    power_per_chip_w: StrictSourced
    price_per_chip_usd: StrictSourced

    @model_validator(mode="after")
    def _sizes(self):
        if self.scale_up.size is None or self.scale_up.size.value is None:
            raise ValueError(f"system {self.id}: scale_up.size is required")
        if self.scale_out.size is not None:
            raise ValueError(f"system {self.id}: scale_out has no size (it spans the job, or a site)")
        if self.inter_site is not None and (self.inter_site.size is None or self.inter_site.size.value is None):
            raise ValueError(f"system {self.id}: inter_site.size (chips per site) is required")
        return self


class SystemsFile(BaseModel):
    """systems.yaml: ``meta``, extra ``sources`` not in hardware.yaml, and ``systems``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    meta: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)
    systems: list[SystemEntry]

    @model_validator(mode="after")
    def _unique(self):
        _check_unique([s.id for s in self.systems], "system")
        return self


# ---------------------------------------------------------------- ranges.yaml

#: range field -> unit dimension (see :func:`trainsim.units.parse_quantity`); 'count' and 'usd' are plain numbers
RANGE_FIELDS: dict[str, str] = {
    "bf16_flops": "flops", "fp8_flops": "flops", "fp4_flops": "flops",
    "hbm_bytes": "bytes", "hbm_bw": "bytes_per_s", "scale_up_bw": "bytes_per_s", "scale_out_bw": "bytes_per_s",
    "tdp_w": "watts", "price_usd": "usd",
    "scale_up_size": "count", "scale_up_latency": "seconds", "scale_out_latency": "seconds",
    "power_per_chip_w": "watts", "price_per_chip_usd": "usd", "scale_up_oversubscription": "ratio",
}
CHIP_RANGE_FIELDS = ("bf16_flops", "fp8_flops", "fp4_flops", "hbm_bytes", "hbm_bw", "scale_up_bw", "scale_out_bw",
                     "tdp_w", "price_usd")
SYSTEM_RANGE_FIELDS = ("scale_up_size", "scale_up_bw", "scale_up_latency", "scale_out_bw", "scale_out_latency",
                       "power_per_chip_w", "price_per_chip_usd", "scale_up_oversubscription")


class RangeEntry(BaseModel):
    """low / nominal / high (numbers in the base unit, or strings with units), why they differ, and from where."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    low: float | str
    nominal: float | str
    high: float | str
    source: list[str] = Field(min_length=1)
    confidence: Confidence
    reason: str = Field(min_length=1)


class RangesFile(BaseModel):
    """ranges.yaml: ``chips`` and ``systems`` map an id to {field: RangeEntry}."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    meta: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)
    chips: dict[str, dict[str, RangeEntry]] = Field(default_factory=dict)
    systems: dict[str, dict[str, RangeEntry]] = Field(default_factory=dict)

    @field_validator("chips")
    @classmethod
    def _chip_fields(cls, v):
        return _known_range_fields(v, "chip", CHIP_RANGE_FIELDS)

    @field_validator("systems")
    @classmethod
    def _system_fields(cls, v):
        return _known_range_fields(v, "system", SYSTEM_RANGE_FIELDS)


def _known_range_fields(entries: dict[str, dict[str, RangeEntry]], kind: str, allowed: tuple[str, ...]) -> dict:
    """``entries`` (id -> {field: RangeEntry}) when each field is one of ``allowed``; else a ValueError naming the
    ``kind`` (chip, system), its id, the unknown fields and the expected ones."""
    for eid, fields in entries.items():
        bad = sorted(set(fields) - set(allowed))
        if bad:
            raise ValueError(f"{kind} {eid}: unknown range field(s) {bad}; expected {list(allowed)}")
    return entries


# ---------------------------------------------------------------- inline (run-spec) systems and chips

class InlineChip(BaseModel):
    """An inline chip in a run spec: ``{name, bf16_tflops, fp8_tflops, hbm, hbm_bandwidth, ...}``.

    ``*_tflops`` are numbers in TFLOPS (or strings with a unit); ``hbm`` is bytes or "80 GiB"; bandwidths are
    bytes/s or strings such as "3.35 TB/s" / "400 Gb/s". Values are parsed with units in the loader.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str
    bf16_tflops: float | str
    fp8_tflops: float | str | None = None
    fp4_tflops: float | str | None = None
    hbm: float | str
    hbm_bandwidth: float | str
    scale_up_bandwidth: float | str | None = None
    scale_out_bandwidth: float | str | None = None
    tdp_w: float | str | None = None
    price_usd: float | None = None
    vendor: str = "inline"
    family: str = "other"


class InlineLevel(BaseModel):
    """An inline network level: ``{size?, bandwidth?, latency?}`` (values parsed with units in the loader)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    size: int | str | None = None
    bandwidth: float | str | None = None
    latency: float | str | None = None


class InlineSystem(BaseModel):
    """An inline system: ``{chip, scale_up, scale_out, inter_site?}`` or ``{base: SYSTEM_ID, ...overrides}``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    base: str | None = None
    id: str | None = None
    name: str | None = None
    chip: str | dict[str, Any] | None = None
    scale_up: dict[str, Any] | None = None
    scale_out: dict[str, Any] | None = None
    inter_site: dict[str, Any] | None = None
    power_per_chip_w: float | str | None = None
    price_per_chip_usd: float | None = None
