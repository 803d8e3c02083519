"""A cache of the catalog's runtime tables (chips, systems, source texts) as plain JSON in the user's cache dir.

Validating ``hardware.yaml``, ``systems.yaml`` and ``ranges.yaml`` with pydantic and converting them to SI costs
more start-up time than most commands spend computing, and the result depends only on those files and on the code
that builds it. :func:`cached` therefore keeps the built tables in ``<cache dir>/catalog-<key>.json`` (the cache
dir of :func:`trainsim.yamlload.cache_dir`), ``key`` = SHA-256 of the three files and of the source of every
module that shapes the result (this one, ``load.py``, ``schema.py``, ``types.py``, ``units.py``). An edited file
or an upgraded trainsim has a new key and is built (and validated) again; a cache that cannot be read, written or
decoded is simply not used. JSON holds only plain data (no pickle), so reading it runs no code; the runtime
dataclasses are rebuilt field by field, floats round-trip exactly (``repr``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .topology import Topology
from .types import Chip, NetLevel, Range, Sourced, System
from ..yamlload import _cache_dir

#: modules whose code decides what the tables hold (their source is part of the key)
_CODE = ("catalog/tables_cache.py", "catalog/load.py", "catalog/schema.py", "catalog/types.py", "catalog/topology.py",
         "units.py")


def _key(texts: list[bytes]) -> str:
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for t in texts:
        h.update(hashlib.sha256(t).digest())
    for rel in _CODE:
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def _sourced(d: dict) -> Sourced:
    return Sourced(tuple(d["source"]), d["confidence"], d["note"])


def _enc_sourced(s: Sourced) -> dict:
    return {"source": list(s.source), "confidence": s.confidence, "note": s.note}


def _enc_ranges(r: dict[str, Range]) -> dict:
    return {k: [v.low, v.nominal, v.high] for k, v in r.items()}


def _dec_ranges(d: dict) -> dict[str, Range]:
    return {k: Range(*v) for k, v in d.items()}


def _enc_topo(t: Topology | None) -> list | None:
    return None if t is None else [t.kind, t.oversubscription, t.block_chips, list(t.dims)]


def _dec_topo(t: list | None) -> Topology | None:
    return None if t is None else Topology(t[0], t[1], t[2], tuple(t[3]))


def _enc_chip(c: Chip) -> dict:
    return {"id": c.id, "name": c.name, "vendor": c.vendor, "family": c.family, "peak_flops": c.peak_flops,
            "hbm_bytes": c.hbm_bytes, "hbm_bw": c.hbm_bw, "scale_up_bw": c.scale_up_bw,
            "scale_out_bw": c.scale_out_bw, "tdp_w": c.tdp_w, "price_usd": c.price_usd, "host_link_bw": c.host_link_bw,
            "scale_up_topology": _enc_topo(c.scale_up_topology), "host_cpu": c.host_cpu,
            "same_silicon_as": c.same_silicon_as,
            "sources": {k: _enc_sourced(v) for k, v in c.sources.items()}, "ranges": _enc_ranges(c.ranges)}


def _dec_chip(d: dict) -> Chip:
    return Chip(**{**d, "scale_up_topology": _dec_topo(d.get("scale_up_topology")),
                   "sources": {k: _sourced(v) for k, v in d["sources"].items()},
                   "ranges": _dec_ranges(d["ranges"])})


def _enc_system(s: System) -> dict:
    return {"id": s.id, "name": s.name, "chip": s.chip.id,
            "levels": [[lv.name, lv.size, lv.bw, lv.latency_s, _enc_topo(lv.topology)] for lv in s.levels],
            "power_per_chip_w": s.power_per_chip_w, "price_per_chip_usd": s.price_per_chip_usd,
            "sources": {k: _enc_sourced(v) for k, v in s.sources.items()}, "ranges": _enc_ranges(s.ranges)}


def _dec_system(d: dict, chips: dict[str, Chip]) -> System:
    levels = tuple(NetLevel(*lv[:4], _dec_topo(lv[4])) for lv in d["levels"])
    return System(**{**d, "chip": chips[d["chip"]], "levels": levels,
                     "sources": {k: _sourced(v) for k, v in d["sources"].items()},
                     "ranges": _dec_ranges(d["ranges"])})


def encode(t: dict) -> dict:
    """The runtime tables ``t`` (chips, systems, sources, power overhead factor) as plain JSON-able data."""
    return {"chips": {k: _enc_chip(c) for k, c in t["chips"].items()},
            "systems": {k: _enc_system(s) for k, s in t["systems"].items()},
            "sources": t["sources"], "power_overhead_factor": t["power_overhead_factor"]}


def decode(d: dict) -> dict:
    """The inverse of :func:`encode`: runtime chips and systems rebuilt field by field (systems share the
    decoded chips)."""
    chips = {k: _dec_chip(c) for k, c in d["chips"].items()}
    return {"chips": chips, "systems": {k: _dec_system(s, chips) for k, s in d["systems"].items()},
            "sources": d["sources"], "power_overhead_factor": d["power_overhead_factor"]}


def cached(texts: list[bytes], build) -> dict:
    """The tables ``build()`` returns for catalog files ``texts``, from the cache when it holds them."""
    try:
        path = _cache_dir() / f"catalog-{_key(texts)}.json"
    except OSError:
        return build()
    try:
        return decode(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    tables = build()
    try:
        text = json.dumps(encode(tables), allow_nan=False)
        if decode(json.loads(text)) == tables:       # round-trips exactly, or is not kept
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass
    return tables
