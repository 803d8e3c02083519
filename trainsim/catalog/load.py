"""Load the packaged catalog (hardware.yaml, systems.yaml, ranges.yaml) into runtime :mod:`~trainsim.catalog.types`.

Files are read with :mod:`importlib.resources` and ``yaml.safe_load`` only, validated by
:mod:`trainsim.catalog.schema`, converted to SI units and cached. Public API::

    chips() -> dict[str, Chip]          get_chip(id)        require_usable(chip)
    systems() -> dict[str, System]      get_system(id)      source_text(id)

(Run-spec values, ids or inline mappings: :func:`trainsim.catalog.resolve.resolve_chip` and ``resolve_system``.)

Conversions from the research file (its ``meta.units``): TFLOPS x 1e12 -> FLOP/s (dense); GB x 1e9 -> bytes
(GiB x 2**30 where the entry's note says Google printed GiB); TB/s x 1e12 -> bytes/s; scale-up GB/s (one
direction; bidirectional / 2 where only that is given) x 1e9 -> bytes/s; scale-out Gb/s / 8 x 1e9 -> bytes/s.
Missing numbers load as 0.0 (FLOPs, bytes, bandwidths) or None (TDP, price); :attr:`Chip.usable` and
:func:`require_usable` tell the engine whether a chip can be estimated.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import TrainsimError, unknown
from ..units import GB, GIB, TERA, gbit_to_bytes_per_s, parse_count, parse_quantity
from ..yamlload import load_data
from . import tables_cache
from .topology import parse_topology
from .types import Chip, NetLevel, Range, Sourced, System
from .schema import (RANGE_FIELDS, ChipEntry, HardwareFile, HardwareSystemEntry, RangeEntry, RangesFile,
                     SourcedValue, SystemEntry, SystemsFile)

#: pseudo source id of arithmetic on other sourced values (the same string as :data:`.schema.DERIVED`)
DERIVED = "derived"

#: pseudo source ids that are not citations
PSEUDO_SOURCES = {
    DERIVED: "derived: arithmetic on other sourced values; the formula is in the note",
    "inline": "given inline in the run spec",
}

# ---------------------------------------------------------------- files


def _read_yaml(name: str) -> Any:
    text = resources.files("trainsim.catalog").joinpath("data", name).read_text(encoding="utf-8")
    return load_data(text)


def _validate(model, name: str):
    from pydantic import ValidationError

    try:
        return model.model_validate(_read_yaml(name))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise TrainsimError(f"invalid catalog file at {loc}: {err['msg']}", where=name) from None


@lru_cache(maxsize=1)
def hardware_file() -> HardwareFile:
    """hardware.yaml, validated (the verbatim research file)."""
    return _validate(HardwareFile, "hardware.yaml")


@lru_cache(maxsize=1)
def systems_file() -> SystemsFile:
    """systems.yaml, validated (numeric systems)."""
    return _validate(SystemsFile, "systems.yaml")


@lru_cache(maxsize=1)
def ranges_file() -> RangesFile:
    """ranges.yaml, validated (low / nominal / high)."""
    return _validate(RangesFile, "ranges.yaml")


@lru_cache(maxsize=1)
def _tables() -> dict:
    """Chips, systems, source texts and the power overhead factor, built from the validated files; kept in the
    user's cache dir as plain JSON keyed by the SHA-256 of the catalog files and of the code that builds them
    (:mod:`trainsim.catalog.tables_cache`), so a command that needs one system skips pydantic and the YAML."""
    names = ("hardware.yaml", "systems.yaml", "ranges.yaml")
    texts = [resources.files("trainsim.catalog").joinpath("data", n).read_bytes() for n in names]
    return tables_cache.cached(texts, _build_tables)


def _build_tables() -> dict:
    chip_table = _build_chips()
    return {"chips": chip_table, "systems": _build_systems(chip_table), "sources": _build_sources(),
            "power_overhead_factor": float(systems_file().meta["power_overhead_factor"]["value"])}


def _sources() -> dict[str, str]:
    return _tables()["sources"]


@lru_cache(maxsize=1)
def _build_sources() -> dict[str, str]:
    merged = dict(hardware_file().sources)
    for name, extra in (("systems.yaml", systems_file().sources), ("ranges.yaml", ranges_file().sources)):
        for sid, text in extra.items():
            if sid in merged and merged[sid] != text:
                raise TrainsimError(f"source id {sid!r} redefined differently from hardware.yaml", where=name)
            merged[sid] = text
    for sid, text in PSEUDO_SOURCES.items():
        merged.setdefault(sid, text)
    return merged


def sources() -> dict[str, str]:
    """Every source id -> its citation (hardware.yaml ``sources:`` plus the extras of systems/ranges.yaml)."""
    return dict(_sources())


def source_text(source_id: str) -> str:
    """The citation text of a source id (``derived`` and ``inline`` explain themselves)."""
    table = _sources()
    if source_id not in table:
        raise unknown("source", source_id, table)
    return table[source_id]


def to_sourced(sv: SourcedValue, note: str | None = None) -> Sourced:
    """The runtime provenance of a sourced value (its note, or ``note`` when given)."""
    return Sourced(tuple(sv.source), sv.confidence, sv.note if note is None else note)


# ---------------------------------------------------------------- chips

#: calibration family by chip-id prefix (first match wins); anything else is 'other'
FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("nvidia-a100", "nvidia-ampere"), ("nvidia-a800", "nvidia-ampere"),
    ("nvidia-h100", "nvidia-hopper"), ("nvidia-h800", "nvidia-hopper"), ("nvidia-h20", "nvidia-hopper"),
    ("nvidia-b", "nvidia-blackwell"), ("nvidia-gb", "nvidia-blackwell"),
    ("amd-mi300", "amd-cdna3"), ("amd-mi325", "amd-cdna3"), ("amd-mi35", "amd-cdna4"),
    ("google-tpu", "google-tpu"),
    ("ascend-910", "ascend-910"),
    ("ascend-950", "ascend-950"), ("ascend-960", "ascend-950"), ("ascend-970", "ascend-950"),
)


def family_of(chip_id: str) -> str:
    """Calibration family of a chip id: vendor + generation (``nvidia-hopper``, ``ascend-910``, ... or ``other``)."""
    for prefix, family in FAMILY_PREFIXES:
        if chip_id.startswith(prefix):
            return family
    return "other"


def vendor_key(family: str | None) -> str | None:
    """The vendor part of a calibration family: families are named vendor-generation (:data:`FAMILY_PREFIXES`:
    ``nvidia``-hopper, ``amd``-cdna4, ``ascend``-910, ``google``-tpu), so the text before the first ``-`` when it
    is that of a catalog family (a user's ``nvidia-rubin`` is ``nvidia``); None for ``other`` and anything else.
    Calibration's per-vendor pool (perf/calibration.py) and an inline chip's implied vendor key on it."""
    head = str(family or "").split("-")[0]
    return head if head and any(f.split("-")[0] == head for _, f in FAMILY_PREFIXES) else None


def family_vendor(family: str | None) -> str | None:
    """The vendor (hardware.yaml ``vendor``, as the catalog writes it: ``NVIDIA``, ``AMD``, ``Google``, ``Huawei
    (HiSilicon)``) of the catalog chips whose family has ``family``'s vendor key; None for a family of no catalog
    vendor. An inline chip that states a family but no vendor takes this one (catalog/resolve.py), so that its
    collectives are priced by its vendor's library (perf/collectives.py collective_library)."""
    key = vendor_key(family)
    if key is None:
        return None
    names = {c.vendor for c in _chips().values() if vendor_key(c.family) == key}
    return names.pop() if len(names) == 1 else None


def vendor_names() -> set[str]:
    """Every chip vendor of the catalog, as hardware.yaml writes it."""
    return {c.vendor for c in _chips().values()}


_GIB_NOTE = re.compile(r"\bGiB\b")


def hbm_capacity_bytes(vendor_gb: float) -> float:
    """An HBM capacity as vendors quote it ("80 GB") in bytes: binary units, 80 GiB. HBM is built from stacks of
    2^n-Gbit dies; an "80 GB" H100 reports 81,559 MiB in nvidia-smi (80 GiB less a 361 MiB driver/ECC reserve), an
    "80 GB" A100 81,920 MiB, a "64 GB" Ascend 910B 65,536 MB in npu-smi; Google prints GiB outright."""
    return float(vendor_gb) * GIB


def tidy(x: float) -> float:
    """Drop float noise of unit conversions (5 us -> 5e-06, not 4.9999999999999996e-06): 12 significant digits."""
    return float(f"{x:.12g}")


def _num(sv: SourcedValue | None) -> float | None:
    return None if sv is None or sv.value is None else float(sv.value)


def _chip_from_entry(e: ChipEntry) -> Chip:
    """Convert one hardware.yaml chip to SI units, keeping provenance per runtime field name."""
    src: dict[str, Sourced] = {}
    peak: dict[str, float] = {}
    for prec in ("bf16", "fp8", "fp4", "fp32"):
        sv = getattr(e, f"{prec}_dense_tflops")
        if sv is not None:
            src[f"{prec}_flops"] = to_sourced(sv)
            if sv.value is not None:
                peak[prec] = float(sv.value) * TERA
    peak.setdefault("bf16", 0.0)  # no sourced BF16 peak: unusable for estimates (Chip.usable)

    hbm = 0.0
    if e.hbm_capacity_gb is not None:
        gib = bool(_GIB_NOTE.search(e.hbm_capacity_gb.note))
        hbm = hbm_capacity_bytes(_num(e.hbm_capacity_gb) or 0.0)
        how = "read as GiB (Google prints GiB)" if gib else "read as GiB (vendors quote HBM capacity in binary units)"
        note = "; ".join(n for n in (e.hbm_capacity_gb.note, how) if n)   # no leading '; ' after an empty note
        src["hbm_bytes"] = to_sourced(e.hbm_capacity_gb, note)

    hbm_bw = 0.0
    if e.hbm_bandwidth_TBps is not None:
        hbm_bw = (_num(e.hbm_bandwidth_TBps) or 0.0) * TERA
        src["hbm_bw"] = to_sourced(e.hbm_bandwidth_TBps)

    up = 0.0
    if e.scale_up_unidirectional_GBps is not None and e.scale_up_unidirectional_GBps.value is not None:
        up = float(e.scale_up_unidirectional_GBps.value) * GB
        src["scale_up_bw"] = to_sourced(e.scale_up_unidirectional_GBps)
    elif e.scale_up_bidirectional_GBps is not None and e.scale_up_bidirectional_GBps.value is not None:
        bidi = e.scale_up_bidirectional_GBps
        up = float(bidi.value) * GB / 2
        src["scale_up_bw"] = Sourced(tuple(bidi.source) + (DERIVED,), bidi.confidence,
                                     f"bidirectional {bidi.value:g} GB/s / 2" + (f"; {bidi.note}" if bidi.note else ""))

    out = 0.0
    if e.scale_out_Gbps is not None:
        out = gbit_to_bytes_per_s(_num(e.scale_out_Gbps) or 0.0)
        src["scale_out_bw"] = to_sourced(e.scale_out_Gbps)

    for name in ("tdp_w", "price_usd", "year", "tpp", "scale_up_bidirectional_GBps"):
        sv = getattr(e, name)
        if sv is not None:
            src[name] = to_sourced(sv)
    for name, sv in e.extra.items():
        src[name] = to_sourced(sv)

    host = e.extra.get("host_link_unidirectional_GBps")
    host_bw = float(host.value) * GB if host is not None and host.value is not None else None
    cpu = e.extra.get("host_cpu")
    host_cpu = str(cpu.value) if cpu is not None and cpu.value is not None else None
    wiring = e.extra.get("scale_up_topology")
    topo = parse_topology(wiring.value, f"chips.{e.id}.scale_up_topology", "hardware.yaml") if wiring else None
    silicon = None
    if e.same_silicon_as is not None:
        silicon = str(e.same_silicon_as.value)
        src["same_silicon_as"] = to_sourced(e.same_silicon_as)
    return Chip(id=e.id, name=e.name, vendor=e.vendor, family=family_of(e.id), peak_flops=peak, hbm_bytes=hbm,
                hbm_bw=hbm_bw, scale_up_bw=up, scale_out_bw=out, tdp_w=_num(e.tdp_w), price_usd=_num(e.price_usd),
                sources=src, host_link_bw=host_bw, scale_up_topology=topo, host_cpu=host_cpu,
                same_silicon_as=silicon)


def _range_value(value, dim: str, field: str, where: str) -> float:
    if dim == "usd":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TrainsimError(f"expected a number of US dollars, got {value!r}", field=field, where=where)
    if dim == "count":
        return parse_count(value, field, where=where)
    if dim == "ratio":   # a plain number >= 1 (an R:1 oversubscription)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
            return float(value)
        raise TrainsimError(f"expected a ratio >= 1 (R of R:1), got {value!r}", field=field, where=where)
    return tidy(parse_quantity(value, dim, field, where=where))


def _ranges(owner: str, entries: dict[str, RangeEntry], current: dict[str, float | None], known: dict[str, str]
            ) -> tuple[dict[str, Range], dict[str, Sourced]]:
    """Parse the ranges of one chip/system; ``nominal`` must equal the catalog value ``current[field]``."""
    out: dict[str, Range] = {}
    src: dict[str, Sourced] = {}
    for field, r in entries.items():
        where = f"ranges.yaml {owner}"
        bad = sorted(set(r.source) - set(known))
        if bad:
            raise TrainsimError(f"unknown source id(s) {', '.join(bad)}", field=field, where=where)
        dim = RANGE_FIELDS[field]
        low, nom, high = (_range_value(v, dim, f"{field}.{k}", where)
                          for k, v in (("low", r.low), ("nominal", r.nominal), ("high", r.high)))
        if not (low <= nom <= high and low < high):
            raise TrainsimError(f"need low <= nominal <= high and low < high, got {low:g}, {nom:g}, {high:g}",
                                field=field, where=where)
        cur = current.get(field)
        if cur is None or not math.isclose(nom, cur, rel_tol=1e-9):
            raise TrainsimError(f"nominal {nom:g} differs from the catalog value {cur!r}", field=field, where=where)
        out[field] = Range(low, nom, high)
        src[f"{field}.range"] = Sourced(tuple(r.source), r.confidence, r.reason)
    return out, src


def _chip_values(c: Chip) -> dict[str, float | None]:
    """Current value of each chip range field (SI)."""
    return {"bf16_flops": c.peak_flops.get("bf16"), "fp8_flops": c.peak_flops.get("fp8"),
            "fp4_flops": c.peak_flops.get("fp4"), "hbm_bytes": c.hbm_bytes, "hbm_bw": c.hbm_bw,
            "scale_up_bw": c.scale_up_bw, "scale_out_bw": c.scale_out_bw, "tdp_w": c.tdp_w,
            "price_usd": c.price_usd}


def _chips() -> dict[str, Chip]:
    return _tables()["chips"]


def _build_chips() -> dict[str, Chip]:
    table = {e.id: _chip_from_entry(e) for e in hardware_file().chips}
    for cid, entries in ranges_file().chips.items():
        if cid not in table:
            raise unknown("chip", cid, table, where="ranges.yaml")
        chip = table[cid]
        rng, src = _ranges(cid, entries, _chip_values(chip), _build_sources())
        table[cid] = chip.with_(ranges=rng, sources={**chip.sources, **src})
    return table


def chips() -> dict[str, Chip]:
    """Every catalog chip by id (ids exactly as in hardware.yaml)."""
    return dict(_chips())


def silicon_of(chip_id: str) -> str:
    """The id a chip model's fitted calibration is keyed by: the catalog chip whose die and clocks it has
    (hardware.yaml ``same_silicon_as``: the H800 SXM5 is the H100 SXM5's GH100 at the same clocks with NVLink cut
    to 400 GB/s, so ``nvidia-h100-sxm5``), else its own id (also for an inline chip, not in the catalog).

    The one rule both sides use: scripts/calibrate.py pools the runs of one silicon into one chip-model fit
    (validate/calibrate.py CalRun.chip) and perf/calibration.py calib_key resolves a chip through it, so two chips
    of one silicon never get different GEMM efficiencies and differ only where their datasheets do."""
    c = _chips().get(chip_id)
    return c.same_silicon_as if c is not None and c.same_silicon_as else chip_id


def same_silicon(chip_id: str) -> list[str]:
    """The catalog chips of ``chip_id``'s silicon (:func:`silicon_of`), itself included, sorted."""
    key = silicon_of(chip_id)
    return sorted({chip_id, key} | {c for c in _chips() if silicon_of(c) == key})


def get_chip(chip_id: str, *, field: str | None = None, where: str | None = None) -> Chip:
    """One catalog chip; an unknown id raises with close matches (``did you mean nvidia-h100-sxm5?``)."""
    table = _chips()
    if chip_id not in table:
        raise unknown("chip", chip_id, table, field=field, where=where)
    return table[chip_id]


def chip_entry(chip_id: str) -> ChipEntry:
    """The raw (validated) hardware.yaml entry of a chip, in the research file's units."""
    for e in hardware_file().chips:
        if e.id == chip_id:
            return e
    raise unknown("chip", chip_id, _chips())


def missing_inputs(chip: Chip) -> list[str]:
    """What an estimate needs and the chip lacks: 'BF16 peak', 'HBM capacity', 'HBM bandwidth'."""
    missing = []
    if not chip.peak_flops.get("bf16", 0.0) > 0:
        missing.append("BF16 peak")
    if not chip.hbm_bytes > 0:
        missing.append("HBM capacity")
    if not chip.hbm_bw > 0:
        missing.append("HBM bandwidth")
    return missing


def require_usable(chip: Chip, *, field: str | None = None, where: str | None = None) -> Chip:
    """Return ``chip`` if it can be estimated, else raise ``chip X has no sourced BF16 peak`` (one line)."""
    missing = missing_inputs(chip)
    if missing:
        raise TrainsimError(f"chip {chip.id} has no sourced {' or '.join(missing)}; give an inline chip "
                            f"(bf16_tflops, hbm, hbm_bandwidth) instead", field=field, where=where)
    return chip


# ---------------------------------------------------------------- systems


def power_overhead_factor() -> float:
    """All-in power / chip TDP used where no system power figure exists (systems.yaml ``meta``)."""
    return _tables()["power_overhead_factor"]


def _level_value(sv: SourcedValue, dim: str, field: str, where: str) -> float:
    if dim == "count":
        return parse_count(sv.value, field, where=where)
    return tidy(parse_quantity(sv.value, dim, field, where=where))


def _system_from_entry(e: SystemEntry, chip_table: dict[str, Chip], known_sources: set[str]) -> System:
    where = f"systems.yaml {e.id}"
    if e.chip not in chip_table:
        raise unknown("chip", e.chip, chip_table, field="chip", where=where)
    if e.hardware_ref is not None and e.hardware_ref not in {s.id for s in hardware_file().systems}:
        raise unknown("system", e.hardware_ref, [s.id for s in hardware_file().systems], field="hardware_ref",
                      where=where)
    src: dict[str, Sourced] = {}
    levels: list[NetLevel] = []
    spec = [("scale_up", "scale-up", e.scale_up), ("scale_out", "scale-out", e.scale_out)]
    if e.inter_site is not None:
        spec.append(("inter_site", "inter-site", e.inter_site))
    sizes: dict[str, int | None] = {}
    for key, name, lvl in spec:
        for attr, sv in (("size", lvl.size), ("bandwidth", lvl.bandwidth), ("latency", lvl.latency),
                         ("topology", lvl.topology)):
            if sv is not None:
                bad = sorted(set(sv.source) - known_sources)
                if bad:
                    raise TrainsimError(f"unknown source id(s) {', '.join(bad)}", field=f"{key}.{attr}", where=where)
        size = int(_level_value(lvl.size, "count", f"{key}.size", where)) if lvl.size is not None else None
        bw = _level_value(lvl.bandwidth, "bytes_per_s", f"{key}.bandwidth", where)
        lat = _level_value(lvl.latency, "seconds", f"{key}.latency", where)
        sizes[key] = size
        topo = parse_topology(lvl.topology.value if lvl.topology is not None else None, f"{key}.topology",
                              where=where, size=size)
        levels.append(NetLevel(name, size, bw, lat, topo))
        if lvl.topology is not None:
            src[f"{key}_topology"] = to_sourced(lvl.topology)
        if lvl.size is not None:
            src[f"{key}_size"] = to_sourced(lvl.size)
        src[f"{key}_bw"] = to_sourced(lvl.bandwidth)
        src[f"{key}_latency"] = to_sourced(lvl.latency)
    if e.inter_site is not None:
        # chips per site bound the scale-out level; the inter-site level spans the job
        levels[1] = NetLevel("scale-out", sizes["inter_site"], levels[1].bw, levels[1].latency_s, levels[1].topology)
        levels[2] = NetLevel("inter-site", None, levels[2].bw, levels[2].latency_s, levels[2].topology)
    for name in ("power_per_chip_w", "price_per_chip_usd"):
        sv = getattr(e, name)
        bad = sorted(set(sv.source) - known_sources)
        if bad:
            raise TrainsimError(f"unknown source id(s) {', '.join(bad)}", field=name, where=where)
        src[name] = to_sourced(sv)
    return System(id=e.id, name=e.name, chip=chip_table[e.chip], levels=tuple(levels),
                  power_per_chip_w=_num(e.power_per_chip_w), price_per_chip_usd=_num(e.price_per_chip_usd),
                  sources=src)


def system_values(s: System) -> dict[str, float | None]:
    """Current value of each system range field (SI)."""
    up, out = s.levels[0], s.levels[1]
    return {"scale_up_size": up.size, "scale_up_bw": up.bw, "scale_up_latency": up.latency_s,
            "scale_out_bw": out.bw, "scale_out_latency": out.latency_s,
            "power_per_chip_w": s.power_per_chip_w, "price_per_chip_usd": s.price_per_chip_usd,
            "scale_up_oversubscription": up.topology.oversubscription if up.topology.kind == "clos" else None}


def _systems() -> dict[str, System]:
    return _tables()["systems"]


def _build_systems(chip_table: dict[str, Chip]) -> dict[str, System]:
    sources_ = _build_sources()
    known = set(sources_)
    table = {e.id: _system_from_entry(e, chip_table, known) for e in systems_file().systems}
    for sid, entries in ranges_file().systems.items():
        if sid not in table:
            raise unknown("system", sid, table, where="ranges.yaml")
        system = table[sid]
        rng, src = _ranges(sid, entries, system_values(system), sources_)
        table[sid] = system.with_(ranges=rng, sources={**system.sources, **src})
    return table


def systems() -> dict[str, System]:
    """Every catalog system by id."""
    return dict(_systems())


def unknown_system(system_id: str, table, *, field: str | None = None, where: str | None = None) -> TrainsimError:
    """The error for a system id the catalog lacks: close matches, or, for a catalog chip id (``amd-mi300x``: a
    chip without a catalog system), that it is a chip, the catalog systems built of it and the inline system
    that uses it (``{chip: ID, scale_up: {size: N}}``, docs/run-spec.md)."""
    if system_id in chips():
        of = [s.id for s in table.values() if s.chip.id == system_id] if isinstance(table, dict) else []
        return TrainsimError(
            f"'{system_id}' is a chip, not a system" + (f" (catalog systems of it: {', '.join(of)})" if of else "")
            + f"; write a system of it as {{chip: {system_id}, scale_up: {{size: N}}}} (N chips per scale-up domain; "
            "bandwidths default to the chip's)", field=field, where=where)
    return unknown("system", system_id, table, field=field, where=where)


def get_system(system_id: str, *, field: str | None = None, where: str | None = None) -> System:
    """One catalog system; an unknown id raises with close matches (:func:`unknown_system`)."""
    table = _systems()
    if system_id not in table:
        raise unknown_system(system_id, table, field=field, where=where)
    return table[system_id]


def system_entry(system_id: str) -> SystemEntry:
    """The raw (validated) systems.yaml entry of a system."""
    for e in systems_file().systems:
        if e.id == system_id:
            return e
    raise unknown("system", system_id, _systems())


def hardware_system_entry(system_id: str) -> HardwareSystemEntry | None:
    """The descriptive hardware.yaml entry a catalog system refers to (None for systems only in systems.yaml)."""
    ref = system_entry(system_id).hardware_ref
    for e in hardware_file().systems:
        if e.id == ref:
            return e
    return None
