"""Turn the ``system:`` / ``chip:`` value of a run spec into a :class:`System` / :class:`Chip`.

A system value is a catalog id (``hgx-h800``), a path to a YAML file holding the mapping (relative to
``base_dir``, the run spec's folder), or an inline mapping (run-spec.md)::

    {chip: ID | {name, bf16_tflops, fp8_tflops?, fp4_tflops?, fp32_tflops?, hbm, hbm_bandwidth,
                 scale_up_bandwidth?, scale_out_bandwidth?, tdp_w?, price_usd?, vendor?, family?},
     scale_up: {size, bandwidth?, latency?}, scale_out: {bandwidth?, latency?},
     inter_site?: {size, bandwidth, latency?}, name?, id?, power_per_chip_w?, price_per_chip_usd?}
    {base: SYSTEM_ID, ...any of the keys above as overrides}

Bandwidths are per chip, one direction ("200 GB/s", "400 Gb/s" -- bits and bytes differ). Defaults:

* scale-up / scale-out bandwidth: the chip's catalog value (for ``base:`` without a new chip: the base's value);
* latency: the chip vendor's collective library's per-step latency (NVIDIA / NCCL: scale-up 0.6 us, scale-out
  5 us; AMD / RCCL: 0.9 us, 10.5 us; :data:`LIBRARY_LATENCY_S`), else scale-up 2 us, scale-out 5 us; inter-site
  1 ms (assumptions; see :data:`DEFAULT_LATENCY_S`); an inline chip's vendor is the one it states, else its
  family's (:func:`inline_vendor`: ``family: nvidia-hopper`` is NVIDIA);
* power per chip: chip TDP x the systems.yaml overhead factor (1.4); price per chip: the chip price.

``inter_site.size`` is the number of chips per site: the scale-out level then spans one site
(``NetLevel.size`` = chips per site) and the inter-site level spans the job. Unknown keys and bad values raise a
one-line :class:`TrainsimError` naming the field, the value and what was expected.
"""
from __future__ import annotations

import math
import re

from collections.abc import Mapping
from pathlib import Path


from ..errors import TrainsimError, short, unknown
from ..units import TERA, parse_count, parse_quantity, plain_number
from . import load
from .topology import SWITCH, check_fabric, parse_topology
from .types import Chip, NetLevel, Sourced, System
from ..io import read_yaml

#: default latency per message hop when a level gives none (assumptions: NVLink/UB/ICI 1-3 us, CM384 paper
#: 1.2-1.9 us, Atlas 950 2.1 us; InfiniBand/RoCE 5-10 us; inter-site ~100-200 km of fibre)
DEFAULT_LATENCY_S = {"scale_up": 2e-6, "scale_out": 5e-6, "inter_site": 1e-3}
#: the latency per step a level that states none takes on a chip whose vendor's collective library publishes one:
#: that library's tuner's step latency for small messages (its tree LL step), as the NVIDIA catalog systems carry it
#: (systems.yaml ``nccl-tuning``; perf/collectives.py scales the library's other protocols' steps from it).
#: NVIDIA (NCCL, NVIDIA/nccl src/graph/tuning.cc at 5067397c, ``hwLatencies`` tree LL): NVLink 0.6 us, network
#: 5.0 us. AMD (RCCL, ROCm/rccl src/graph/tuning.cc at 0cbce2a7, ``tuning_model_5``, the table of the 8-GPU
#: xGMI full-mesh MI300X platforms, src/graph/rome_models.cc models 79 / 81 / 84 ``tuning=5``): xGMI 0.9 us
#: (ring LL 0.8), network 10.5 us (ring LL 9.5). Measured (validation/collectives/nccl_tests.yaml): 8 x MI300X
#: all-reduce of 16 B 16.3 us, 2 x 8 MI355X 40.1 us, which these steps and NCCL's per-call base price at 19.2 and
#: 40.4 us (the assumed 2 us / 5 us gave 34.6 and 44.8)
LIBRARY_LATENCY_S = {"NVIDIA": {"scale_up": 0.6e-6, "scale_out": 5.0e-6},
                     "AMD": {"scale_up": 0.9e-6, "scale_out": 10.5e-6}}
LIBRARY_LATENCY_SOURCE = {"NVIDIA": "NVIDIA/nccl src/graph/tuning.cc at 5067397c hwLatencies (tree LL step)",
                          "AMD": "ROCm/rccl src/graph/tuning.cc at 0cbce2a7 tuning_model_5 hwLatencies (tree LL step)"}

CHIP_KEYS = ("name", "bf16_tflops", "fp8_tflops", "fp4_tflops", "fp32_tflops", "hbm", "hbm_bandwidth",
             "scale_up_bandwidth", "scale_out_bandwidth", "tdp_w", "price_usd", "vendor", "family")
CHIP_REQUIRED = ("name", "bf16_tflops", "hbm", "hbm_bandwidth")
SYSTEM_KEYS = ("base", "id", "name", "chip", "scale_up", "scale_out", "inter_site", "power_per_chip_w",
               "price_per_chip_usd")
LEVEL_KEYS = {"scale_up": ("size", "bandwidth", "latency", "topology", "fabric"),
              "scale_out": ("bandwidth", "latency", "topology", "fabric"),
              "inter_site": ("size", "bandwidth", "latency", "topology", "fabric")}
LEVEL_NAMES = {"scale_up": "scale-up", "scale_out": "scale-out", "inter_site": "inter-site"}

_INLINE = Sourced(("inline",), "user", "given in the run spec")


def _check_keys(d: Mapping, allowed, field: str, where: str | None) -> None:
    for key in d:
        if key not in allowed:
            raise unknown("key", str(key), allowed, field=field, where=where)


def _mapping(value, field: str, where: str | None, example: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise TrainsimError(f"expected a mapping such as {example}, got {value!r}", field=field, where=where)
    return value


def _positive(x: float, value, field: str, where: str | None, what: str, *, allow_zero: bool = False) -> float:
    if x < 0 or (x == 0 and not allow_zero) or x != x:
        raise TrainsimError(f"expected {what}, got {value!r}", field=field, where=where)
    return x


def _quantity(value, dim: str, field: str, where: str | None, what: str, *, allow_zero: bool = False) -> float:
    return _positive(load.tidy(parse_quantity(value, dim, field, where=where)), value, field, where, what,
                     allow_zero=allow_zero)


#: the physical range of a stated link or HBM bandwidth and of a link's latency per hop. A bare number is read
#: in the base unit (bytes/s, seconds: docs/run-spec.md), so ``bandwidth: 400`` meant as 400 Gb/s is 400 B/s and
#: ``latency: 5`` meant as 5 us is 5 s; both are refused. The bounds sit far outside every catalog level: the
#: slowest bandwidth is TPU v4's 25 Gb/s DCN (3.1e9 B/s, a thousand times the floor), the slowest hop 10 us and
#: the inter-site default 1 ms (a thousand times below the ceiling; a hop across the globe is ~0.1 s).
MIN_BANDWIDTH_BYTES_PER_S = 1e6
MAX_LATENCY_S = 1.0


def link_bandwidth(value, field: str, where: str | None, what: str) -> float:
    """A bandwidth (bytes/s, or a string with its unit) of at least :data:`MIN_BANDWIDTH_BYTES_PER_S`: the one
    reader of a stated link bandwidth (a system's levels, an inline chip's HBM, a post-training spec's links)."""
    x = _quantity(value, "bytes_per_s", field, where, what)
    if x < MIN_BANDWIDTH_BYTES_PER_S:
        raise TrainsimError(f"expected {what.replace('a positive ', 'a ')} (a bare number is bytes per second; "
                            f"at least {MIN_BANDWIDTH_BYTES_PER_S / 1e6:g} MB/s), got {short(value)}", field=field,
                            where=where)
    return x


def link_latency(value, field: str, where: str | None) -> float:
    """A latency per message hop (seconds, or a string with its unit), 0 to :data:`MAX_LATENCY_S`: the one
    reader of a stated link latency (a system's levels, a post-training spec's links)."""
    x = _quantity(value, "seconds", field, where, "a latency >= 0 such as '2 us'", allow_zero=True)
    if x > MAX_LATENCY_S:
        raise TrainsimError(f"expected a latency per hop such as '2 us' or '1 ms' (a bare number is seconds; at "
                            f"most {MAX_LATENCY_S:g} s), got {short(value)}", field=field, where=where)
    return x


_VENDOR_GB = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*GB\s*$")
#: a size in bits (units.py reads a lower-case b as a bit): '80 Gb', '640 Gbit'
_BITS = re.compile(r"^\s*[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?\s*(?:Ki|Mi|Gi|Ti|Pi|[kKMGTP])?(?:b|bits?)\s*$")


def hbm_capacity(value, field: str, where: str | None) -> float:
    """HBM capacity: "80 GB" as vendors write it means 80 GiB (:func:`load.hbm_capacity_bytes`); other units as
    written. The one reader of a stated HBM capacity (inline chips, sweep axes). A bare number is refused, not
    read as bytes: beside ``bf16_tflops: 989`` (a number in TFLOPS) ``hbm: 80`` means 80 GB to a person and 80
    bytes to the unit parser, so the unit must be written (``"80 GB"``, ``"85899345920 B"``); a sweep axis
    ``system.chip.hbm_bytes`` names its unit and takes numbers in bytes without coming here."""
    if (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and plain_number(value.strip()) is not None):
        raise TrainsimError("expected a size with its unit such as '80 GB' (read as GiB, as vendors quote HBM) or "
                            f"'96 GiB', not a bare number (it would be bytes), got {short(value)}",
                            field=field, where=where)
    if isinstance(value, str) and _BITS.match(value):
        # vendors quote a chip's HBM in bytes (80 GB, 192 GB); bits are a DRAM die's unit (a 24 Gb die): '80 Gb'
        # is a typo for 80 GB, not 10 GB
        raise TrainsimError(f"expected a size in bytes such as '80 GB' (read as GiB) or '96 GiB'; a chip's HBM is "
                            f"never quoted in bits, got {short(value)}", field=field, where=where)
    m = _VENDOR_GB.match(value) if isinstance(value, str) else None
    if m:
        return _positive(load.hbm_capacity_bytes(float(m.group(1))), value, field, where,
                         "a positive size such as '80 GB'")
    return _quantity(value, "bytes", field, where, "a positive size such as '80 GB'")


def _tflops(value, field: str, where: str | None) -> float:
    """A peak in TFLOPS (a plain number) or a string with a unit ("989 TFLOP/s")."""
    if isinstance(value, str) and plain_number(value.strip()) is not None:   # "9.89e2" as YAML 1.1 leaves it
        value = plain_number(value.strip())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value) * TERA):     # .inf or 1e308 TFLOPS overflowed the plan search (exit 3)
            raise TrainsimError(f"expected a number of TFLOPS such as 989 (finite in FLOP/s), got {value!r}",
                                field=field, where=where)
        return _positive(float(value) * TERA, value, field, where, "a positive number of TFLOPS such as 989")
    return _quantity(value, "flops", field, where, "a positive rate such as '989 TFLOP/s'")


def _size(value, field: str, where: str | None) -> int:
    x = parse_count(value, field, where=where)
    if x < 1 or x != int(x):
        raise TrainsimError(f"expected a positive whole number of chips, got {value!r}", field=field, where=where)
    return int(x)


def inline_vendor(stated, family: str, field: str, where: str | None) -> str:
    """An inline chip's vendor. Not stated: the vendor of its stated ``family`` (nvidia-* -> NVIDIA, amd-* -> AMD,
    ascend-* -> Huawei (HiSilicon), google-* -> Google; :func:`trainsim.catalog.load.family_vendor`), else
    ``inline``. A family names a vendor's generation (catalog/load.py FAMILY_PREFIXES), and the vendor picks the
    collective library and its latencies (perf/collectives.py collective_library, :data:`LIBRARY_LATENCY_S`):
    ``family: nvidia-hopper`` alone would otherwise price its collectives with the plain ring at the assumed 2 us
    per step instead of NCCL's tuner. Stated: a catalog vendor in any case, or by its first word (``nvidia``,
    ``Huawei``), is spelt as the catalog spells it (the library tables key on that spelling); one that contradicts
    the family's vendor is an input error. A vendor the catalog does not know is kept as stated (the user's own
    chip borrowing a family's calibration)."""
    implied = load.family_vendor(family)
    if stated is None:
        return implied or "inline"
    text = str(stated).strip()
    known = sorted(load.vendor_names())
    canon = next((v for v in known if v.lower() == text.lower()), None) or \
        next((v for v in known if v.split()[0].lower() == text.lower()), None)
    if canon is not None and implied is not None and canon != implied:
        raise TrainsimError(f"vendor {text!r} contradicts family {family!r} ({implied}'s); state the chip's "
                            f"own vendor and family", field=field, where=where)
    return canon or text


def resolve_chip(value, *, field: str = "chip", where: str | None = None) -> Chip:
    """A catalog chip id, a :class:`Chip`, or an inline chip mapping -> :class:`Chip`.

    Catalog chips are returned even when unusable (no BF16 peak); :func:`resolve_system` and the engine call
    :func:`trainsim.catalog.load.require_usable`.
    """
    if isinstance(value, Chip):
        return value
    if isinstance(value, str):
        return load.get_chip(value, field=field, where=where)
    d = _mapping(value, field, where, "{name: x, bf16_tflops: 989, hbm: '80 GB', hbm_bandwidth: '3.35 TB/s'} "
                                      "or a catalog chip id")
    _check_keys(d, CHIP_KEYS, field, where)
    for key in CHIP_REQUIRED:
        if d.get(key) is None:
            raise TrainsimError(f"missing required key '{key}'", field=field, where=where)
    f = lambda k: f"{field}.{k}"  # noqa: E731
    peak = {"bf16": _tflops(d["bf16_tflops"], f("bf16_tflops"), where)}
    for prec in ("fp8", "fp4"):
        if d.get(f"{prec}_tflops") is not None:
            peak[prec] = _tflops(d[f"{prec}_tflops"], f(f"{prec}_tflops"), where)
            below = "fp8" if prec == "fp4" and "fp8" in peak else "bf16"
            if not peak[below] <= peak[prec] <= 4.0 * peak[below]:  # catalog: FP8 1-2x BF16, FP4 1-3.3x FP8
                raise TrainsimError(f"expected 1 to 4 times the {below} peak ({peak[below] / TERA:g} TFLOPS), "
                                    f"got {d[f'{prec}_tflops']!r}", field=f(f"{prec}_tflops"), where=where)
    if d.get("fp32_tflops") is not None:   # FP32 on the CUDA cores (non-Tensor): at most the BF16 Tensor peak
        peak["fp32"] = _tflops(d["fp32_tflops"], f("fp32_tflops"), where)
        if not peak["fp32"] <= peak["bf16"]:
            raise TrainsimError(f"expected at most the bf16 peak ({peak['bf16'] / TERA:g} TFLOPS), got "
                                f"{d['fp32_tflops']!r}", field=f("fp32_tflops"), where=where)
    bw = lambda k: (link_bandwidth(d[k], f(k), where, "a positive bandwidth such as '400 Gb/s'")  # noqa
                    if d.get(k) is not None else 0.0)
    tdp = (_quantity(d["tdp_w"], "watts", f("tdp_w"), where, "a positive power such as 700 or '700 W'")
           if d.get("tdp_w") is not None else None)
    price = None
    if d.get("price_usd") is not None:
        price = _positive(parse_count(d["price_usd"], f("price_usd"), where=where), d["price_usd"], f("price_usd"),
                          where, "a non-negative price in USD", allow_zero=True)
    name = str(d["name"])
    runtime_name = {"bf16_tflops": "bf16_flops", "fp8_tflops": "fp8_flops", "fp4_tflops": "fp4_flops",
                    "fp32_tflops": "fp32_flops",
                    "hbm": "hbm_bytes", "hbm_bandwidth": "hbm_bw", "scale_up_bandwidth": "scale_up_bw",
                    "scale_out_bandwidth": "scale_out_bw", "tdp_w": "tdp_w", "price_usd": "price_usd"}
    given = {runtime_name[k]: _INLINE for k in runtime_name if d.get(k) is not None}
    family = str(d.get("family", "other"))
    return Chip(id=name, name=name, vendor=inline_vendor(d.get("vendor"), family, f("vendor"), where), family=family,
                peak_flops=peak,
                hbm_bytes=hbm_capacity(d["hbm"], f("hbm"), where),
                hbm_bw=link_bandwidth(d["hbm_bandwidth"], f("hbm_bandwidth"), where,
                                  "a positive bandwidth such as '3.35 TB/s'"),
                scale_up_bw=bw("scale_up_bandwidth"), scale_out_bw=bw("scale_out_bandwidth"),
                tdp_w=tdp, price_usd=price, sources=given)


def _load_file(value: str, base_dir, field: str) -> tuple[object, str]:
    path = Path(base_dir) / value if base_dir is not None else Path(value)
    if not path.is_file():
        raise TrainsimError(f"no system file {str(path)!r}", field=field)
    data = read_yaml(path, what="system file")
    if isinstance(data, Mapping) and set(data) == {"system"}:
        data = data["system"]
    return data, str(path)


def resolve_system(value, base_dir=None, *, field: str = "system", where: str | None = None,
                   check: bool = True) -> System:
    """A catalog system id, a :class:`System`, a YAML path or an inline mapping -> :class:`System`.

    With ``check`` (default) the chip must be usable (:func:`~trainsim.catalog.load.require_usable`) and
    every level must have a bandwidth.
    """
    if isinstance(value, System):
        return value
    if isinstance(value, str):
        table = load.systems()
        if value in table:
            return table[value]
        if value.endswith((".yaml", ".yml")):
            data, where = _load_file(value, base_dir, field)
            return resolve_system(data, base_dir, field=field, where=where, check=check)
        raise load.unknown_system(value, table, field=field, where=where)
    d = _mapping(value, field, where, "{chip: nvidia-h800-sxm5, scale_up: {size: 8, bandwidth: '200 GB/s'}} "
                                      "or a catalog system id")
    return _inline_system(d, field, where, check)


def _level_override(d: Mapping, key: str, field: str, where: str | None) -> Mapping:
    if key not in d or d[key] is None:
        return {}
    sub = _mapping(d[key], f"{field}.{key}", where, "{size: 8, bandwidth: '200 GB/s'}" if key != "scale_out"
                   else "{bandwidth: '400 Gb/s'}")
    _check_keys(sub, LEVEL_KEYS[key], f"{field}.{key}", where)
    return sub


def _stated_or_base(sub, b, key, name, parse, base_value, default, *, lf, where, src, inherit, default_src=None):
    """A network level's field ``name``: stated in ``sub`` (``parse``d, sourced inline), else the base level
    ``b``'s (``base_value(b)``, its source inherited), else ``default`` (sourced ``default_src`` when given)."""
    if sub.get(name) is not None:
        src[f"{key}_{name}"] = _INLINE
        return parse(sub[name], f"{lf}.{name}", where)
    if b is not None:
        inherit(f"{key}_{name}")
        return base_value(b)
    if default_src is not None:
        src[f"{key}_{name}"] = default_src
    return default


def _inline_system(d: Mapping, field: str, where: str | None, check: bool) -> System:
    _check_keys(d, SYSTEM_KEYS, field, where)
    base = load.get_system(d["base"], field=f"{field}.base", where=where) if d.get("base") is not None else None
    if base is None:
        for key in ("chip", "scale_up"):
            if d.get(key) is None:
                raise TrainsimError(f"missing required key '{key}' (or give 'base: SYSTEM_ID')",
                                    field=field, where=where)
    new_chip = d.get("chip") is not None
    if new_chip and base is not None and isinstance(d["chip"], Mapping) and d["chip"].get("name") is None:
        # {base: dgx-h100, chip: {hbm_bandwidth: ...}}: an inline chip is a whole chip, never a patch of the base's
        raise TrainsimError(f"an inline chip is a whole chip (name, bf16_tflops, hbm, hbm_bandwidth), not a change "
                            f"to {base.chip.id}'s; to vary one of its values use `trainsim sensitivity --vary "
                            f"hbm_bandwidth` or a sweep axis such as system.chip.hbm_bw", field=f"{field}.chip",
                            where=where)
    chip = resolve_chip(d["chip"], field=f"{field}.chip", where=where) if new_chip else base.chip
    if check:
        load.require_usable(chip, field=f"{field}.chip", where=where)

    src: dict[str, Sourced] = {}
    keep_base: set[str] = set()  # base fields whose value (and range) carry over unchanged
    base_levels = {}
    if base is not None:
        base_levels = {"scale_up": base.levels[0], "scale_out": base.levels[1]}
        if len(base.levels) > 2:
            base_levels["inter_site"] = base.levels[2]
            base_levels["scale_out_site_size"] = base.levels[1].size

    def inherit(name: str):
        keep_base.add(name)
        if name in base.sources:
            src[name] = base.sources[name]

    levels = {}
    for key in ("scale_up", "scale_out", "inter_site"):
        sub = _level_override(d, key, field, where)
        lf = f"{field}.{key}"
        b = base_levels.get(key)
        if key == "inter_site":
            if "inter_site" in d and d["inter_site"] is None:
                continue  # explicit null removes a base's inter-site level
            if not sub and b is None:
                continue
        # size
        size = None
        if key != "scale_out":
            if sub.get("size") is not None:
                size = _size(sub["size"], f"{lf}.size", where)
                src[f"{key}_size"] = _INLINE
            elif b is not None:
                size = b.size if key == "scale_up" else base_levels["scale_out_site_size"]
                inherit(f"{key}_size")
            else:
                raise TrainsimError("missing required key 'size'", field=lf, where=where)
        # bandwidth
        if sub.get("bandwidth") is not None:
            bw = link_bandwidth(sub["bandwidth"], f"{lf}.bandwidth", where,
                            "a positive bandwidth such as '200 GB/s' or '400 Gb/s'")
            src[f"{key}_bw"] = _INLINE
        elif b is not None and not (new_chip and key != "inter_site"):
            bw = b.bw
            inherit(f"{key}_bw")
        elif key == "inter_site":
            raise TrainsimError("missing required key 'bandwidth'", field=lf, where=where)
        else:
            chip_bw = chip.scale_up_bw if key == "scale_up" else chip.scale_out_bw
            if not chip_bw > 0:
                raise TrainsimError(f"missing 'bandwidth' and chip {chip.id} has no sourced {LEVEL_NAMES[key]} "
                                    f"bandwidth; give one such as '400 Gb/s'", field=lf, where=where)
            bw = chip_bw
            csrc = chip.sources.get(f"{key}_bw")
            src[f"{key}_bw"] = Sourced(csrc.source if csrc else ("inline",), csrc.confidence if csrc else "user",
                                       f"chip {chip.id} value" + (f"; {csrc.note}" if csrc and csrc.note else ""))
        lib_lat = LIBRARY_LATENCY_S.get(chip.vendor, {}).get(key)
        lat = _stated_or_base(sub, b, key, "latency", link_latency, lambda lv: lv.latency_s,
                              DEFAULT_LATENCY_S[key] if lib_lat is None else lib_lat,
                              lf=lf, where=where, src=src, inherit=inherit,
                              default_src=Sourced(("assumption",), "low",
                                                  f"trainsim default {LEVEL_NAMES[key]} latency") if lib_lat is None
                              else Sourced(("derived",), "medium", f"{chip.vendor} collective library's step latency: "
                                           f"{LIBRARY_LATENCY_SOURCE[chip.vendor]}"))
        # topology: stated, else the base level's where its size is kept, else the chip's own scale-up wiring
        # (a board with no switch: MI300X / MI350 / 910B, hardware.yaml scale_up_topology) cut to the size, else a
        # non-blocking switch
        if sub.get("topology") is not None:
            topo = parse_topology(sub["topology"], f"{lf}.topology", where,
                                  size=size if key != "scale_out" else None)
            src[f"{key}_topology"] = _INLINE
        elif b is not None and (key == "scale_out" or size == b.size):
            topo = b.topology
            inherit(f"{key}_topology")
        elif b is not None and key == "scale_up":
            topo = b.topology.resized(size)
        elif key == "scale_up" and chip.scale_up_topology is not None:
            topo = chip.scale_up_topology.resized(size)
            csrc = chip.sources.get("scale_up_topology")
            note = f"chip {chip.id} wiring" + (f"; {csrc.note}" if csrc and csrc.note else "")
            src[f"{key}_topology"] = Sourced(csrc.source if csrc else ("inline",),
                                             csrc.confidence if csrc else "user", note)
        else:
            topo = SWITCH
        # fabric (catalog/topology.py fabric_coll_eff): stated, else the base level's, else none
        fabric = _stated_or_base(sub, b, key, "fabric", check_fabric, lambda lv: lv.fabric, "",
                                 lf=lf, where=where, src=src, inherit=inherit)
        levels[key] = (size, bw, lat, topo, fabric)

    up_size = levels["scale_up"][0]
    net = [NetLevel("scale-up", up_size, *levels["scale_up"][1:])]
    if "inter_site" in levels:
        site, bw, lat, topo, fabric = levels["inter_site"]
        if site < up_size or site % up_size:
            raise TrainsimError(f"expected chips per site as a multiple of the scale-up size {up_size}, got {site}",
                                field=f"{field}.inter_site.size", where=where)
        net.append(NetLevel("scale-out", site, *levels["scale_out"][1:]))
        net.append(NetLevel("inter-site", None, bw, lat, topo, fabric))
    else:
        net.append(NetLevel("scale-out", None, *levels["scale_out"][1:]))

    power, price = _power_price(d, base, chip, new_chip, field, where, src, inherit)
    name = d.get("name") or (f"{base.name} (modified)" if base is not None else f"{up_size} x {chip.name}")
    sid = d.get("id") or (f"{base.id}+overrides" if base is not None else f"inline-{chip.id}")
    ranges = {k: v for k, v in base.ranges.items() if k in keep_base} if base is not None else {}
    if base is not None:  # provenance of the ranges that still apply
        src.update({k: v for k, v in base.sources.items() if k.endswith(".range") and k[:-6] in keep_base})
    return System(id=str(sid), name=str(name), chip=chip, levels=tuple(net), power_per_chip_w=power,
                  price_per_chip_usd=price, sources=src, ranges=ranges)


def _power_price(d, base, chip, new_chip, field, where, src, inherit):
    """Power and price per chip: given, else the base's (same chip), else chip TDP x overhead / chip price."""
    if d.get("power_per_chip_w") is not None:
        power = _quantity(d["power_per_chip_w"], "watts", f"{field}.power_per_chip_w", where,
                          "a positive power such as 1275 or '1.3 kW'")
        src["power_per_chip_w"] = _INLINE
    elif base is not None and not new_chip:
        power = base.power_per_chip_w
        inherit("power_per_chip_w")
    elif chip.tdp_w:
        factor = load.power_overhead_factor()
        power = load.tidy(chip.tdp_w * factor)
        src["power_per_chip_w"] = Sourced(("assumption",), "low", f"chip TDP {chip.tdp_w:g} W x {factor:g}")
    else:
        power = None
        src["power_per_chip_w"] = Sourced((), "low", f"chip {chip.id} has no TDP; give power_per_chip_w")

    if d.get("price_per_chip_usd") is not None:
        value = d["price_per_chip_usd"]
        price = _positive(parse_count(value, f"{field}.price_per_chip_usd", where=where), value,
                          f"{field}.price_per_chip_usd", where, "a non-negative price in USD", allow_zero=True)
        src["price_per_chip_usd"] = _INLINE
    elif base is not None and not new_chip:
        price = base.price_per_chip_usd
        inherit("price_per_chip_usd")
    else:
        price = chip.price_usd
        csrc = chip.sources.get("price_usd")
        src["price_per_chip_usd"] = Sourced(csrc.source if csrc else (), csrc.confidence if csrc else "low",
                                            f"chip price of {chip.id}" + (f"; {csrc.note}" if csrc and csrc.note
                                                                          else ""))
    return power, price
