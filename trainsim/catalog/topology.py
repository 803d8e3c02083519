"""A network level's topology as data: the compact text systems.yaml and run specs give, parsed once.

Accepted texts (one per level; absent = ``switch``):

* ``switch``: one non-blocking switch or a non-blocking fat tree (every chip reaches every other at its full
  injection bandwidth): NVSwitch domains, rail-optimised non-blocking InfiniBand fabrics.
* ``clos R:1 above N``: a Clos whose blocks of ``N`` chips are non-blocking inside and oversubscribed ``R:1`` on
  their uplinks (Meta's Llama 3 RoCE cluster: 1:7 above 3,072-GPU pods, Llama 3 paper sec. 3.3.1).
* ``torus AxBxC`` (any number of dimensions): a torus with wrap-around links, the chip's bandwidth split over its
  2 x D links (Google TPU pods).
* ``fullmesh N``: ``N`` chips wired pairwise, each chip's bandwidth split evenly over its N - 1 direct links, with
  no switch between them: one peer gets 1 / (N - 1) of it (Huawei Atlas 800T A2 / Atlas 900 A2 servers: 8 Ascend
  910B in an HCCS full mesh, 7 links of 28 GB/s per direction; hardware.yaml atlas-900-a2-pod).

A kind may also have a measured collective efficiency of its own (``data/topologies.yaml``, :func:`kind_coll_eff`):
the fraction of line rate collectives reach on a level so wired, in place of the calibration's per-level
``coll_eff`` (HCCL on the 910B's full mesh: 0.65). A level may also name its ``fabric`` where the fabric's
collectives are measured below line rate whatever the wiring (:func:`fabric_coll_eff`: AWS's first-generation EFA,
0.6).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import TrainsimError
from ..yamlload import load_data, sourced_values

KINDS = ("switch", "clos", "torus", "fullmesh")


@dataclass(frozen=True)
class Topology:
    """The wiring of one network level: ``switch`` (non-blocking), ``clos`` (``oversubscription``:1 above
    blocks of ``block_chips``), ``torus`` (``dims``: chips per dimension, wrap-around links) or ``fullmesh``
    (``dims``: the one mesh of ``dims[0]`` chips, each linked to every other)."""

    kind: str = "switch"
    oversubscription: float = 1.0     # clos: uplink oversubscription R of R:1
    block_chips: int = 0              # clos: chips per non-blocking block
    dims: tuple[int, ...] = ()        # torus / fullmesh: chips per dimension

    @property
    def coll_eff(self) -> float | None:
        """The fraction of line rate collectives reach on this wiring where its kind has one measured
        (:func:`kind_coll_eff`), else None: the level takes the calibration's ``coll_eff``."""
        return kind_coll_eff().get(self.kind)

    def resized(self, chips: int) -> "Topology":
        """The same wiring for a level cut to ``chips`` (a smaller configuration of the same pod): a grid keeps
        its leading dimensions whole while they divide what is left (16x20x28 at 1,280 chips -> 16x20x4); a grid
        that cannot be cut that way falls back to a switch; a Clos keeps its blocks; a full mesh cut to at most its N
        chips keeps its N (each chip still has its N - 1 links, however few of its peers a configuration uses), and
        grown past N has no known wiring, so it falls back to a switch as a grid does."""
        if self.kind == "fullmesh":
            return self if chips <= self.dims[0] else SWITCH
        if not self.dims:
            return self
        out, rem = [], chips
        for d in self.dims:
            if rem == 1:
                break
            if rem % d == 0:
                out.append(d)
                rem //= d
            else:
                out.append(rem)
                rem = 1
        return Topology(self.kind, 1.0, 0, tuple(out)) if rem == 1 and out else SWITCH

    def text(self) -> str:
        """A short label, e.g. ``clos 2:1 above 1024``, ``torus 16x20x28``, ``fullmesh 8`` or ``switch``."""
        if self.kind == "clos":
            return f"clos {self.oversubscription:g}:1 above {self.block_chips}"
        if self.dims:
            return f"{self.kind} {'x'.join(map(str, self.dims))}"
        return self.kind


SWITCH = Topology()


@lru_cache(maxsize=1)
def kind_coll_eff() -> dict[str, float]:
    """Kind -> the measured fraction of line rate collectives reach on a level wired so (``data/topologies.yaml``,
    each with its source): ``{'fullmesh': 0.65}`` (HCCL all-gather 149 / 224 GB/s and all-reduce 72 / 112 GB/s
    on the 910B's 8-NPU HCCS mesh, gameofdimension/limulidae). A kind not listed has none."""
    return parse_kind_coll_eff(load_data(resources.files("trainsim.catalog").joinpath("data", "topologies.yaml")
                                         .read_text()) or {})


def parse_kind_coll_eff(doc: dict) -> dict[str, float]:
    """:func:`kind_coll_eff` of a parsed ``topologies.yaml``: every entry a known kind with a sourced ``coll_eff``
    in (0, 1]; anything else is a one-line data error."""
    out = {}
    for kind, entry in (doc.get("kinds") or {}).items():
        where = f"topologies.yaml: kinds.{kind}"
        if kind not in KINDS:
            raise TrainsimError(f"expected one of {', '.join(KINDS)}, got kind {kind!r}", where=where)
        vals = sourced_values(entry, "topology constant", where)
        eff = float(vals["coll_eff"])
        if not 0.0 < eff <= 1.0:
            raise TrainsimError(f"expected a fraction of line rate in (0, 1], got coll_eff {eff}", where=where)
        out[kind] = eff
    return out
@lru_cache(maxsize=1)
def fabric_coll_eff() -> dict[str, float]:
    """Fabric name -> the measured fraction of line rate collectives reach on a network level built of that fabric
    (``data/topologies.yaml`` ``fabrics``, each with its source), which a level names with ``fabric``
    (:class:`trainsim.catalog.types.NetLevel`): ``{'efa-v1': 0.6}`` (AWS's first Elastic Fabric Adapter, p3dn /
    p4d, nccl-tests ring busbw 0.59-0.64 of line rate at 3-4 p4d nodes, NVIDIA/nccl issue #527). A fabric not
    listed is a one-line input error where a level names it (:func:`check_fabric`)."""
    doc = load_data(resources.files("trainsim.catalog").joinpath("data", "topologies.yaml").read_text()) or {}
    out = {}
    for name, entry in (doc.get("fabrics") or {}).items():
        where = f"topologies.yaml: fabrics.{name}"
        eff = float(sourced_values(entry, "fabric constant", where)["coll_eff"])
        if not 0.0 < eff <= 1.0:
            raise TrainsimError(f"expected a fraction of line rate in (0, 1], got coll_eff {eff}", where=where)
        out[str(name)] = eff
    return out


def check_fabric(name, field: str, where: str | None = None) -> str:
    """``name`` as a known fabric of :func:`fabric_coll_eff` (lower case), else a one-line input error."""
    s = str(name).strip().lower()
    known = fabric_coll_eff()
    if s not in known:
        raise TrainsimError(f"expected a fabric of {', '.join(sorted(known))}, got {name!r}", field=field,
                            where=where)
    return s


_CLOS = re.compile(r"^clos\s+([0-9.]+)\s*:\s*1\s+above\s+([0-9_,]+)$")
_GRID = re.compile(r"^(torus)\s+([0-9]+(?:\s*x\s*[0-9]+)*)$")
_MESH = re.compile(r"^fullmesh\s+([0-9]+)$")


def parse_topology(text, field: str, where: str | None = None, size: int | None = None) -> Topology:
    """``text`` (see the module docstring) as a :class:`Topology`; a grid's product must equal the level's
    ``size`` where one is given. A malformed text is a one-line input error."""
    expected = "'switch', 'clos R:1 above N', 'torus AxBxC' or 'fullmesh N'"
    if text is None:
        return SWITCH
    s = str(text).strip().lower()
    if s == "switch":
        return SWITCH
    m = _CLOS.match(s)
    if m:
        r, n = float(m.group(1)), int(m.group(2).replace("_", "").replace(",", ""))
        if r < 1.0 or n < 1:
            raise TrainsimError(f"expected an oversubscription >= 1 and a block of >= 1 chips, got {text!r}",
                                field=field, where=where)
        return Topology("clos", r, n)
    m = _MESH.match(s)
    if m:
        n = int(m.group(1))
        if n < 2 or (size is not None and n != size):
            raise TrainsimError(f"expected a full mesh of the level's {size if size is not None else '>= 2'} "
                                f"chips, got {text!r}", field=field, where=where)
        return Topology("fullmesh", 1.0, 0, (n,))
    m = _GRID.match(s)
    if m:
        dims = tuple(int(x) for x in re.split(r"\s*x\s*", m.group(2)))
        if any(d < 1 for d in dims):
            raise TrainsimError(f"expected positive dimensions, got {text!r}", field=field, where=where)
        prod = 1
        for d in dims:
            prod *= d
        if size is not None and prod != size:
            raise TrainsimError(f"expected dimensions whose product is the level's {size} chips, got {text!r} "
                                f"({prod})", field=field, where=where)
        return Topology(m.group(1), 1.0, 0, dims)
    raise TrainsimError(f"expected {expected}, got {text!r}", field=field, where=where)
