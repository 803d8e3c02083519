"""Runtime view of catalog entries: what the engine reads. SI units inside (FLOP/s, bytes, bytes/s, s, W, USD).

Loaded and validated from the YAML files under ``catalog/data`` by :mod:`trainsim.catalog.load`; every number
keeps its provenance in ``sources`` (field -> Sourced) and, where sources disagree, ``ranges``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .topology import SWITCH, Topology, fabric_coll_eff


@dataclass(frozen=True)
class Sourced:
    """Where a number came from: source ids (or 'derived'/'assumption'), confidence, and a note."""

    source: tuple[str, ...] = ()
    confidence: str = "low"
    note: str = ""


@dataclass(frozen=True)
class Range:
    """An uncertain input: low / nominal / high in the field's SI unit."""

    low: float
    nominal: float
    high: float


@dataclass(frozen=True)
class Chip:
    """One accelerator in SI units: dense peak FLOP/s per precision, HBM bytes and bytes/s, scale-up and
    scale-out bytes/s per chip and direction, TDP (W) and price (USD), with the source and range of each value."""

    id: str
    name: str
    vendor: str
    family: str                      # calibration family, e.g. 'nvidia-ampere', 'nvidia-hopper', 'ascend'
    peak_flops: dict[str, float]     # precision ('bf16', 'fp8', 'fp4') -> dense FLOP/s
    hbm_bytes: float
    hbm_bw: float                    # bytes/s
    scale_up_bw: float               # bytes/s per chip, one direction
    scale_out_bw: float              # bytes/s per chip, one direction
    tdp_w: float | None = None
    price_usd: float | None = None
    sources: dict[str, Sourced] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)
    host_link_bw: float | None = None  # bytes/s per chip, one direction, to host memory, where the chip states it
    #: how the chip's scale-up links are wired where the chip fixes it (``fullmesh 8``: the MI300X / MI350 / 910B
    #: boards have no switch, one link per peer); an inline system without a base takes it (catalog/resolve.py)
    scale_up_topology: Topology | None = None
    #: the host CPU family where the chip fixes it: 'grace' for the Grace-Blackwell superchips (one Grace CPU per two
    #: GPUs on the module); None where the board is paired with whatever host the system has (x86 in DGX / HGX)
    host_cpu: str | None = None
    #: the catalog chip whose die and clocks this one has (hardware.yaml ``same_silicon_as``), None for its own
    same_silicon_as: str | None = None

    def flops(self, precision: str) -> float:
        """Dense peak for matmul inputs of ``precision``; a chip without FP8 runs FP8 recipes at its BF16 rate."""
        if precision in self.peak_flops and self.peak_flops[precision]:
            return self.peak_flops[precision]
        return self.peak_flops["bf16"]

    @property
    def usable(self) -> bool:
        """True when the chip has the inputs every estimate needs: a BF16 peak, HBM capacity and bandwidth.

        Catalog chips without a sourced value (e.g. Cambricon) load with 0.0 there; see
        :func:`trainsim.catalog.load.require_usable` for the error an estimate raises.
        """
        return self.peak_flops.get("bf16", 0.0) > 0 and self.hbm_bytes > 0 and self.hbm_bw > 0

    def with_(self, **kw) -> "Chip":
        """A copy with the fields in ``kw`` replaced."""
        return replace(self, **kw)


@dataclass(frozen=True)
class NetLevel:
    """One level of the network hierarchy.

    ``size``: chips per domain at this level (scale-up: 8, 72, 384, 8192; scale-out: None = the whole job;
    inter-site: None). ``bw``: bytes/s per chip per direction at this level; ``latency_s``: per message hop;
    ``topology``: how the level's chips are wired (:mod:`trainsim.catalog.topology`; a non-blocking switch unless
    the catalog or the run spec says otherwise), which sets the all-to-all and ring bandwidth at scale
    (:mod:`trainsim.perf.topology`) and, where its kind has one measured, the fraction of line rate collectives
    reach (:meth:`coll_eff`); ``fabric``: the network technology where its collectives are measured below line
    rate whatever the wiring (``efa-v1``: AWS's first-generation EFA; :func:`trainsim.catalog.topology.
    fabric_coll_eff`), "" for none.
    """

    name: str
    size: int | None
    bw: float
    latency_s: float
    topology: Topology = SWITCH
    fabric: str = ""

    def coll_eff(self, calibrated: float) -> float:
        """The achievable fraction of line rate on this level: its fabric's measured one
        (:func:`~trainsim.catalog.topology.fabric_coll_eff`, first-generation EFA 0.6), else its wiring's
        (:attr:`Topology.coll_eff`, HCCL on a full mesh 0.65), else ``calibrated`` (the calibration's
        ``coll_eff`` for the level)."""
        if self.fabric:
            return fabric_coll_eff()[self.fabric]
        eff = self.topology.coll_eff
        return calibrated if eff is None else eff

    def resized(self, size: int) -> "NetLevel":
        """This level cut (or grown) to ``size`` chips per domain, its wiring cut with it
        (:meth:`Topology.resized`), as a run spec's ``scale_up.size`` cuts its base system's
        (:mod:`trainsim.catalog.resolve`): the one place a level changes size (sweep and scenario ranges of the
        scale-up size, a job's hosts as NeMo RL places them in :mod:`trainsim.posttrain.placement`)."""
        return replace(self, size=int(size), topology=self.topology.resized(int(size)))


@dataclass(frozen=True)
class System:
    """A cluster design: its chip and its network levels (innermost first, the last unbounded), with all-in
    power and price per chip where known, and the sources and ranges of its values."""

    id: str
    name: str
    chip: Chip
    levels: tuple[NetLevel, ...]     # innermost first; the last level has size None
    power_per_chip_w: float | None = None   # all-in (chip + host + network + cooling share) where known
    price_per_chip_usd: float | None = None  # system price / chips where known
    sources: dict[str, Sourced] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)

    @property
    def scale_up_size(self) -> int:
        """Chips in one scale-up domain: the size of the innermost network level (1 when unbounded)."""
        return int(self.levels[0].size or 1)

    def with_(self, **kw) -> "System":
        """A copy with the fields in ``kw`` replaced."""
        return replace(self, **kw)
