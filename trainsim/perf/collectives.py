"""Collective communication on a hierarchical network, alpha-beta model, vectorised over plans.

Each level l has a per-chip, per-direction bandwidth B_l (line rate x an achievable-fraction ``eff_l`` from the
calibration file) and a per-step latency alpha_l. A group of ``n`` members at rank ``stride`` spans f_l domains
of level l-1 inside one domain of level l (see :mod:`trainsim.parallel.placement`).

* Reduce-scatter / all-gather of ``S`` bytes (the full, unsharded buffer): NCCL's flat ring over the members in
  rank order, pipelined in chunks, so every link of the ring carries its bytes at once and the slowest bounds the
  pass (Patarasuk & Yuan 2009; NCCL has no hierarchical ring). Bytes: each ring channel carries (n-1)/n x S / nCh
  over every hop; a domain of level l-1 is entered and left once per channel, so its egress (n-1)/n x S leaves
  through the links of its w_{l-1} members (NCCL spreads its channels over every NIC of a node): each chip's
  level-l link carries (n-1)/n x S / w_{l-1}, and T_bytes = (n-1)/n x S x max_l [f_l > 1] 1 / (w_{l-1} B_l)
  (w_{-1} = 1): with one level the ring bound (n-1)/n x S / B; on 8-rail H100 nodes busbw = min(NVLink,
  8 x NIC). GB200 NVL partitions joined by InfiniBand measure it (NVIDIA/nccl issue 1801, NCCL 2.27.3, 16 GiB
  ring all-reduce): 3 x NVL8 busbw 393.7 GB/s = 0.98 x 8 x 50 GB/s, 3 x NVL4 196.7 = 0.98 x 4 x 50
  (tests/test_nccl_tests.py), where a sum of per-level phases (hierarchical reduce-scatter) would give 0.8x and
  0.9x of that. Latency
  (:func:`ring_latency_s`): a ring of n members takes n - 1 steps, each one hop; in rank order (the domains hold
  consecutive ranks) the hop of a step crosses level l's boundary n / w_{l-1} - n / w_l times (w_l members
  inside one level-l domain, w_{-1} = 1, w_top = n): NCCL's ring latency model, ``nInterSteps = nNodes - 1``
  hops at the network latency and the other ``nRanks - nNodes`` at the NVLink one (NVIDIA/nccl
  src/graph/tuning.cc ``ncclTopoTuneModel`` at 5067397c). A flat ring of 72 inside one NVLink domain pays 71
  NVLink hops; split over 18 hosts of 4 it pays 54 NVLink and 17 network hops, never fewer.
* All-reduce (:func:`all_reduce_time`): the faster of NCCL's two all-reduce algorithms, as its tuner picks per
  call (``ncclTopoGetAlgoTime``: time = latency + bytes / bandwidth for each, the least wins):
  ring = reduce-scatter + all-gather, 2 (n-1)/n x S / B on one level (Patarasuk & Yuan 2009), 2 x the ring
  latency; double binary tree (Sanders, Speck & Traeff 2009; NCCL 2.4): a chain inside the innermost domain and
  a binary tree over the domains of each level above, latency 2 [(w_0 - 1) alpha_0 + sum_{l>=1} ceil(log2 f_l)
  alpha_l] (tuning.cc: ``2 * ((nRanks/nNodes - 1) * intraLat + log2i(nNodes) * interLat)``); bandwidth: NCCL
  rates the tree at 0.92 of the ring's bus bandwidth and its algorithm bandwidth at half of that (tuning.cc
  ``busBw * .92`` and ``ratio *= .5``), so its bytes take n / (0.92 (n - 1)) x the ring's.
* NCCL's protocols: NCCL runs each call under one of three protocols, LL (low latency, half the rate or less),
  LL128 and Simple (full rate, slower steps), and its tuner takes the least of base + steps x step latency + bytes /
  (bus bandwidth x share) over ring / tree x protocol (tuning.cc ``ncclTopoTuneModel``; ``NCCL_*`` tables below, the
  one place they live): one base latency per call (6.6-14 us), per-step latencies per protocol whose LL row is the
  catalog's per-level latency of an NVIDIA system (NVLink 0.6 us, network 5.0 us), and LL's bandwidth ceiling.
  Measured nccl-tests all-reduces on 8-32 H100 at 16 B - 1 MiB: the engine at 0.77-1.15x of each
  (validation/collectives/nccl_tests.yaml). HCCL and the plain ring keep one latency per step and no base: no
  measurement of theirs was read.
* All-to-all of ``S`` bytes per chip spread evenly over the n members (1/n stays local): the bytes bound for
  level l are S (w_l - w_{l-1}) / n, with w_l the members inside one level-l domain; levels are separate
  links and run concurrently: T = max_l bytes_l / B_l + sum_l alpha_l [f_l > 1].
* Point-to-point send of ``S`` bytes crossing level l: S / B_l + alpha_l.
* One step of a ring over a group (context-parallel K/V exchange): every member sends ``S`` to its neighbour at
  once and the step ends when the slowest link is done, so it runs at the outermost level the group crosses:
  S / B_outer + alpha_outer.
* Topology (:mod:`trainsim.perf.topology`): every bytes / bandwidth term above is multiplied by its level's
  wiring factor (1 on a non-blocking switch; oversubscribed Clos uplinks for all-to-all traffic leaving a block;
  hop counts and the links in use on a torus).
* All-to-all latency grows with the peers: besides one alpha per level crossed, every peer costs a message set-up
  ``a2a_peer_s`` (NCCL's grouped send/recv and DeepEP/HCCL all post one message per peer).
"""
from __future__ import annotations

import numpy as np

from ..catalog.types import System
from ..parallel.placement import level_factors, members_within, outermost_level
from .topology import a2a_factor, neighbour_factor, ring_factor
from .arrays import Num


def exposed(comm: Num, work: Num, f: Num) -> Num:
    """Communication left on the critical path when a fraction ``f`` of it can hide behind ``work``:
    comm - f min(comm, work), the one overlap rule of the engine (perf/step.py, perf/comm_cp.py)."""
    return comm - f * np.minimum(comm, work)


def _bw(system: System, eff: tuple[float, ...]) -> list[float]:
    """Each level's achievable bandwidth: line rate x its fraction of line rate, the level's own where its wiring
    has one measured (:meth:`trainsim.catalog.types.NetLevel.coll_eff`: HCCL on the 910B's HCCS full mesh reaches
    0.64-0.67 of its links at 8 NPUs, catalog/data/topologies.yaml), else ``eff`` for the level (the last entry
    for any level beyond it)."""
    return [lvl.bw * lvl.coll_eff(eff[min(i, len(eff) - 1)]) for i, lvl in enumerate(system.levels)]


#: NCCL's tree all-reduce bus bandwidth as a share of the ring's (NVIDIA/nccl src/graph/tuning.cc at 5067397c,
#: ``ncclTopoTuneModel``: ``if (a == NCCL_ALGO_TREE && coll == ncclFuncAllReduce) busBw = min(busBw * .92, ...)``)
TREE_BUSBW_SHARE = 0.92


def _ring_bytes_time(size_bytes: Num, n: Num, stride: Num, system: System, eff: tuple[float, ...]) -> np.ndarray:
    """The bytes term of a ring reduce-scatter (or all-gather) of ``size_bytes`` over ``n`` members (module
    docstring): (n-1)/n x S x max over the levels the group spans of (the level's ring wiring factor) /
    (w_{l-1} B_l)."""
    f = level_factors(n, stride, system)
    within = members_within(n, stride, system)
    bw = _bw(system, eff)
    s = np.asarray(size_bytes, dtype=np.float64)
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    worst = np.zeros(np.broadcast(s, nn).shape)          # seconds per byte of the slowest link the ring uses
    below = np.ones_like(nn)                             # w_{l-1}: members sharing one level-l domain's egress
    for fl, w, b, lvl in zip(f, within, bw, system.levels):
        per_byte = ring_factor(lvl.topology, w, stride) / (below * b)
        worst = np.maximum(worst, np.where(fl > 1, per_byte, 0.0))
        below = w.astype(np.float64)
    return (nn - 1.0) / nn * s * worst


def ring_latency_s(n: Num, stride: Num, system: System) -> np.ndarray:
    """Latency of one ring pass (n - 1 steps) over ``n`` members at ``stride``: sum_l (n / w_{l-1} - n / w_l)
    alpha_l, the hops that cross level l's boundary at its latency (module docstring; NCCL tuning.cc's
    ``nInterSteps``)."""
    within = members_within(n, stride, system)
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    lat = np.zeros(nn.shape)
    prev = nn                                  # domains of "level -1": every member its own
    for w, lvl in zip(within, system.levels):
        here = nn / np.maximum(w.astype(np.float64), 1.0)   # level-l domains the group spans
        lat = lat + (prev - here) * lvl.latency_s
        prev = here
    return lat


def _ring_hops(n: Num, stride: Num, system: System) -> list[np.ndarray]:
    """Hops of one ring pass at each level: n / w_{l-1} - n / w_l (:func:`ring_latency_s`)."""
    within = members_within(n, stride, system)
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    out, prev = [], nn
    for w in within:
        here = nn / np.maximum(w.astype(np.float64), 1.0)
        out.append(prev - here)
        prev = here
    return out


def _tree_hops(n: Num, stride: Num, system: System) -> list[np.ndarray]:
    """Steps of one tree pass (up or down) at each level: w_0 - 1 on the innermost, ceil(log2 f_l) above
    (:func:`tree_latency_s`)."""
    f = level_factors(n, stride, system)
    return [f[0].astype(np.float64) - 1.0] + [np.ceil(np.log2(np.maximum(fl.astype(np.float64), 1.0))) for fl in f[1:]]


def _nccl_step_s(lvl_latency_s: float, kind: int, algo: str, proto: int) -> float:
    """NCCL's step latency of ``algo`` under protocol ``proto`` on a level of ``kind`` (0 NVLink, 1 network), scaled
    by the level's latency over the LL step it states (``NCCL_STEP_US``, ``NCCL_LL_REF_US``)."""
    return lvl_latency_s * NCCL_STEP_US[algo][kind][proto] / NCCL_LL_REF_US[kind]


def _nccl_steps_s(hops: list[np.ndarray], nodes: np.ndarray, ppn1: np.ndarray, system: System, algo: str,
                  proto: int) -> np.ndarray:
    """Sum over levels of hops x NCCL's step latency of ``algo`` under protocol ``proto``. As tuning.cc charges
    them: a ring that crosses nodes pays at least the proxy's ``NCCL_NET_OVERHEAD_S`` (x 3 under Simple) for every
    step inside a node, and with one member per node (``ppn1``) its network steps at the tree's latency ("with
    ppn=1 latencies are fully exposed")."""
    lat = np.zeros(np.shape(hops[0]))
    for i, (h, lvl) in enumerate(zip(hops, system.levels)):
        kind = min(i, 1)
        step: Num = _nccl_step_s(lvl.latency_s, kind, algo, proto)
        if algo == "ring" and kind == 0:
            floor = NCCL_NET_OVERHEAD_S * (3.0 if NCCL_PROTOCOLS[proto] == "Simple" else 1.0)
            step = np.where(nodes > 1.0, max(float(step), floor), step)
        elif algo == "ring":
            step = np.where(ppn1, _nccl_step_s(lvl.latency_s, kind, "tree", proto), step)
        lat = lat + h * step
    return lat


def _nccl_nodes(n: Num, stride: Num, system: System) -> np.ndarray:
    """NCCL's nNodes: the scale-up domains the group spans."""
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    return nn / np.maximum(members_within(n, stride, system)[0].astype(np.float64), 1.0)


def _nccl_ll_max_busbw(nodes: np.ndarray, system: System) -> np.ndarray:
    """LL's bus-bandwidth ceiling for a group spanning ``nodes`` scale-up domains (``NCCL_LL_MAX_BUSBW_*``; an
    unlisted family takes Hopper's)."""
    one = NCCL_LL_MAX_BUSBW_ONE_NODE.get(system.chip.family, NCCL_LL_MAX_BUSBW_ONE_NODE["nvidia-hopper"])
    return np.where(nodes <= 1.0, one, np.where(nodes <= 2.0, NCCL_LL_MAX_BUSBW_NODES[0], NCCL_LL_MAX_BUSBW_NODES[1]))


def _nccl_ring_time(bytes_pass: np.ndarray, bus_bytes: np.ndarray, passes: float, n: Num, stride: Num,
                    system: System) -> np.ndarray:
    """NCCL's ring of ``passes`` passes (1: reduce-scatter or all-gather, 2: all-reduce) at the least of its three
    protocols: base + passes x sum_l hops_l x step_l + passes x bytes of a pass / share, LL's bytes no faster than
    ``bus_bytes`` / its ceiling (``NCCL_*`` tables above)."""
    hops = _ring_hops(n, stride, system)
    nodes = _nccl_nodes(n, stride, system)
    ppn1 = members_within(n, stride, system)[0] <= 1
    cap = _nccl_ll_max_busbw(nodes, system)
    best = np.full(np.broadcast(bytes_pass, np.asarray(n)).shape, np.inf)
    for p in range(len(NCCL_PROTOCOLS)):
        byt = passes * bytes_pass / NCCL_RING_SHARE[p]
        if p == 0:
            byt = np.maximum(byt, bus_bytes / cap)
        steps = _nccl_steps_s(hops, nodes, ppn1, system, "ring", p)
        best = np.minimum(best, NCCL_BASE_S["ring"][p] + passes * steps + byt)
    return best


def _nccl_tree_time(size_bytes: np.ndarray, tree_bytes: np.ndarray, n: Num, stride: Num, system: System) -> np.ndarray:
    """NCCL's double-binary-tree all-reduce at the least of its three protocols: base + 2 x sum_l steps_l x step_l +
    the tree's Simple bytes time / share, LL's no faster than 2 S / its ceiling (the tree's algorithm bandwidth is
    half its bus bandwidth, tuning.cc ``ratio *= .5``)."""
    hops = _tree_hops(n, stride, system)
    nodes = _nccl_nodes(n, stride, system)
    cap = _nccl_ll_max_busbw(nodes, system)
    best = np.full(np.broadcast(tree_bytes, np.asarray(n)).shape, np.inf)
    for p in range(len(NCCL_PROTOCOLS)):
        share = np.where(nodes <= 1.0, NCCL_TREE_SHARE_ONE_NODE[p], NCCL_TREE_SHARE_NODES[p])
        byt = tree_bytes / share
        if p == 0:
            byt = np.maximum(byt, 2.0 * size_bytes / cap)
        steps = _nccl_steps_s(hops, nodes, nodes < 0.0, system, "tree", p)
        best = np.minimum(best, NCCL_BASE_S["tree"][p] + 2.0 * steps + byt)
    return best


def tree_latency_s(n: Num, stride: Num, system: System) -> np.ndarray:
    """Latency of NCCL's double-binary-tree all-reduce (reduce up, broadcast down) over ``n`` members at ``stride``:
    2 [(w_0 - 1) alpha_0 + sum_{l>=1} ceil(log2 f_l) alpha_l] (module docstring; tuning.cc)."""
    f = level_factors(n, stride, system)
    lat = (f[0].astype(np.float64) - 1.0) * system.levels[0].latency_s
    for fl, lvl in zip(f[1:], system.levels[1:]):
        lat = lat + np.ceil(np.log2(np.maximum(fl.astype(np.float64), 1.0))) * lvl.latency_s
    return 2.0 * lat


#: NCCL's three protocols and what its tuner charges for each (NVIDIA/nccl src/graph/tuning.cc at 5067397c,
#: ``ncclTunerConstantsDefaults`` and ``ncclTopoTuneModel``), the one place the engine holds them. NCCL prices every
#: (algorithm, protocol) pair as base + steps x step latency + bytes / (bus bandwidth x share) and runs the least:
#: LL (8-byte flag lines, low latency, low rate) for small messages, LL128 and Simple (full rate, slower steps)
#: for larger ones.
NCCL_PROTOCOLS = ("LL", "LL128", "Simple")
#: per-call base latency (s), ``baseLatencies``: ring LL 6.6, LL128 14, Simple 8.4 us; tree 6.8, 14, 8.4 us
NCCL_BASE_S = {"ring": (6.6e-6, 14.0e-6, 8.4e-6), "tree": (6.8e-6, 14.0e-6, 8.4e-6)}
#: per-step latency (us), ``hwLatencies``, as (NVLink, network) x (LL, LL128, Simple): ring NVLink 0.6 / 1.9 / 3.4,
#: network 2.7 / 4.0 / 14; tree NVLink 0.6 / 1.25 / 4.0, network 5.0 / 8.5 / 14. The catalog's per-level latency of
#: an NVIDIA system is the tree LL step (NVLink 0.6, network 5.0 us, ``NCCL_LL_REF_US``); a level with another
#: latency scales its row by the ratio.
NCCL_STEP_US = {"ring": ((0.6, 1.9, 3.4), (2.7, 4.0, 14.0)), "tree": ((0.6, 1.25, 4.0), (5.0, 8.5, 14.0))}
NCCL_LL_REF_US = tuple(row[0] for row in NCCL_STEP_US["tree"])      # the tree LL steps, read from the table above
#: share of the bus bandwidth each protocol reaches: ring LL 0.5, LL128 0.92 (``busBw * .5``, ``* 0.92``); tree
#: (after the tree's own 0.92, ``TREE_BUSBW_SHARE``) LL 1 / 3.8, LL128 7 / 9 on one node and 120 / 128 across nodes
NCCL_RING_SHARE = (0.5, 0.92, 1.0)
NCCL_TREE_SHARE_ONE_NODE = (1.0 / 3.8, 7.0 / 9.0, 1.0)
NCCL_TREE_SHARE_NODES = (1.0 / 3.8, 120.0 / 128.0, 1.0)
#: LL's bus-bandwidth ceiling (bytes/s), ``llMaxBws``: on one node by GPU generation (Ampere 87.7, Hopper 141,
#: Blackwell 282 GB/s); across 2 nodes 39.0, more 20.4 GB/s (the x86-Intel / Arm host row; AMD hosts 22.5 / 19.0)
NCCL_LL_MAX_BUSBW_ONE_NODE = {"nvidia-ampere": 87.7e9, "nvidia-hopper": 141.0e9, "nvidia-blackwell": 282.0e9}
NCCL_LL_MAX_BUSBW_NODES = (39.0e9, 20.4e9)
#: the proxy's cost of a network step, a floor under every step of a ring that crosses nodes (``getNetOverhead``:
#: 1 us on Intel and Arm hosts, 2 on AMD; tripled under Simple): ``intraLat = max(intraLat, netOverhead)``
NCCL_NET_OVERHEAD_S = 1.0e-6
#: PAT's base latency (``baseLatencies`` PAT, Simple only)
NCCL_PAT_BASE_S = 8.0e-6


#: NCCL's PAT all-gather / reduce-scatter (NCCL 2.23.4, NVIDIA/nccl 68b54236; src/graph/tuning.cc at 5067397c):
#: ``busBw *= .75`` against the ring's, and a latency of ``log2i(nNodes) * (interLat / 3.5) + nRanks * 2.8`` us,
#: enabled only with one GPU per node (``ncclPatEnable``: ``if (comm->nNodes != comm->nRanks) return 0``)
PAT_BUSBW_SHARE = 0.75
PAT_LOG_LATENCY_SHARE = 1.0 / 3.5
PAT_RANK_LATENCY_S = 2.8e-6


def collective_library(system: System) -> str:
    """The collective library the system's stack runs: 'hccl' on Ascend NPUs (Huawei's HCCL), 'nccl' on NVIDIA and
    AMD GPUs (NCCL and its fork RCCL, which keeps NCCL's ring / tree / PAT algorithms), else 'ring' (the ring model
    of the module docstring, no library-specific algorithm)."""
    if system.chip.family.startswith("ascend"):
        return "hccl"
    return "nccl" if system.chip.vendor in ("NVIDIA", "AMD") else "ring"


def log_latency_s(n: Num, stride: Num, system: System) -> np.ndarray:
    """Latency of a logarithmic all-gather (or reduce-scatter) over ``n`` members at ``stride``, run level by
    level: sum_l ceil(log2 f_l) alpha_l (f_l: the level-(l-1) domains the group spans inside one level-l domain).
    HCCL's NB (Nonuniform Bruck) and NHR (Nonuniform Hierarchical Ring) take ceil(log2 N) steps for any N without
    extra bytes (Huawei CANN HCCL user guide, 'NB' hcclug_000122 and the HCCL_ALGO environment variable,
    envref_07_0079: ring 'linear complexity', NHR / NB 'logarithmic complexity ... suited to communicators with
    many servers'), and HCCL runs its algorithm per level (intra-server, inter-server, inter-SuperPoD:
    HCCL_ALGO 'level0 / level1 / level2')."""
    f = level_factors(n, stride, system)
    lat = np.zeros(np.shape(np.asarray(n)))
    for fl, lvl in zip(f, system.levels):
        lat = lat + np.ceil(np.log2(np.maximum(fl.astype(np.float64), 1.0))) * lvl.latency_s
    return lat


def pat_latency_s(n: Num, stride: Num, system: System) -> np.ndarray:
    """Latency of NCCL's PAT all-gather / reduce-scatter over ``n`` members, each on its own node:
    floor(log2 n) alpha_net / 3.5 + 2.8 us x n (``PAT_*``; alpha_net: the outermost level the group crosses)."""
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    alpha = np.array([lv.latency_s for lv in system.levels])[outermost_level(n, stride, system)]
    return np.floor(np.log2(nn)) * alpha * PAT_LOG_LATENCY_SHARE + PAT_RANK_LATENCY_S * nn


def reduce_scatter_time(size_bytes: Num, n: Num, stride: Num, system: System, eff: tuple[float, ...]) -> Num:
    """Reduce-scatter (or all-gather) of a buffer of ``size_bytes`` over ``n`` members by the algorithm the
    collective library picks for that size and group (:func:`collective_library`), the one place this choice is
    made:

    * NCCL: the ring (its bytes term plus one ring pass of latency, module docstring), or PAT where every member
      sits on its own node (w_0 = 1, ``ncclPatEnable``) and PAT is faster: ring bytes / 0.75 + :func:`pat_latency_s`
      (NCCL's tuner takes the least of latency + bytes / bandwidth, ``ncclTopoGetAlgoTime``);
    * HCCL: the ring's bytes term (NB / NHR move the same (n-1)/n S) plus :func:`log_latency_s`: HCCL adapts its
      algorithm to the data size and server count, and a logarithmic one with the ring's bytes is never slower."""
    b = _ring_bytes_time(size_bytes, n, stride, system, eff)
    if collective_library(system) == "hccl":
        return b + log_latency_s(n, stride, system)
    if collective_library(system) != "nccl":
        return b + ring_latency_s(n, stride, system)
    many = np.asarray(n) > 1                   # a group of one makes no call
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    bus = (nn - 1.0) / nn * np.asarray(size_bytes, dtype=np.float64)
    ring = _nccl_ring_time(b, bus, 1.0, n, stride, system)
    one_per_node = (members_within(n, stride, system)[0] <= 1) & many
    pat = b / PAT_BUSBW_SHARE + pat_latency_s(n, stride, system) + NCCL_PAT_BASE_S
    return np.where(many, np.where(one_per_node, np.minimum(ring, pat), ring), 0.0)


all_gather_time = reduce_scatter_time


def hierarchical_all_gather_time(size_bytes: Num, n: Num, stride: Num, system: System,
                                 eff: tuple[float, ...]) -> Num:
    """MiCS's hierarchical all-gather of a buffer of ``size_bytes`` over ``n`` members: two collectives, one after
    the other, each priced by :func:`all_gather_time`:

        T = AG(S / w_0, n / w_0 members at stride x w_0) + AG(S, w_0 members at stride)

    w_0 being the members inside one innermost (scale-up) domain. First every member gathers, across the domains,
    the shards of the members at its own position in theirs (S / w_0 bytes out, one member per domain: each runs on
    its own share of the domain's NICs), then each domain gathers the whole buffer inside itself. The inter-domain
    bytes are those of a flat ring, (n / w_0 - 1) / (n / w_0) x S / w_0 per member against (n - 1) / n x S / w_0,
    but the intra-domain pass no longer runs under them (a flat ring's levels carry their bytes at once, the
    slowest bounding it): the two passes add. Source: Amazon's MiCS port to DeepSpeed (microsoft/DeepSpeed
    2e99f6edf, PR 2964, 2023-04, 'ported hierarchical all gather part', co-authored by MiCS's first author),
    deepspeed/runtime/zero/mics.py ``_hierarchical_all_gather_params``: ``dist.all_gather_coalesced(...,
    group=inter_node_comm_group, async_op=False)`` ('sync enqueue'), then the intra-node ``all_gather_coalesced``
    into the same buffer; Zhang et al., arXiv 2205.00119 (MiCS) sec. 3.3. A group inside one domain (w_0 = n) or
    with one member per domain (w_0 = 1) makes one call: :func:`all_gather_time` itself. So does a group that the
    domains do not split evenly (n not a multiple of w_0, e.g. 12 GPUs as 8 + 4): MiCS builds its two groups only
    for an even split (deepspeed/runtime/zero/mics_utils.py at 38327e07 ``assert len(ranks_of_shard_group[0]) %
    n_span_nodes == 0``), and the two-pass sum would leave the members past the last full domain unpriced."""
    nn = np.maximum(np.asarray(n, dtype=np.int64), 1)
    w0 = np.minimum(members_within(nn, stride, system)[0], nn)
    even = nn % np.maximum(w0, 1) == 0
    w0 = np.where(even, w0, 1)                      # uneven: one flat call (the w_0 = 1 form below)
    outer = nn // np.maximum(w0, 1)
    s = np.asarray(size_bytes, dtype=np.float64)
    return (all_gather_time(s / w0, outer, np.asarray(stride) * w0, system, eff)
            + all_gather_time(s, w0, stride, system, eff))


def all_reduce_time(size_bytes: Num, n: Num, stride: Num, system: System, eff: tuple[float, ...]) -> Num:
    """All-reduce: the faster of NCCL's ring (reduce-scatter + all-gather) and double binary tree (module
    docstring); on HCCL a logarithmic reduce-scatter + all-gather (:func:`reduce_scatter_time`)."""
    bytes_rs = _ring_bytes_time(size_bytes, n, stride, system, eff)
    if collective_library(system) == "hccl":
        # HCCL's NB / NHR all-reduce is a reduce-scatter and an all-gather (hcclug_000122, 'AllReduce')
        return 2.0 * (bytes_rs + log_latency_s(n, stride, system))
    nn = np.maximum(np.asarray(n, dtype=np.float64), 2.0)
    tree_bytes = 2.0 * bytes_rs * nn / (TREE_BUSBW_SHARE * (nn - 1.0))
    if collective_library(system) == "nccl":
        s = np.asarray(size_bytes, dtype=np.float64)
        n1 = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
        ring = _nccl_ring_time(bytes_rs, 2.0 * (n1 - 1.0) / n1 * s, 2.0, n, stride, system)
        tree = _nccl_tree_time(s, tree_bytes, n, stride, system)
        return np.where(np.asarray(n) > 1, np.minimum(ring, tree), 0.0)   # a group of one makes no call
    ring = 2.0 * (bytes_rs + ring_latency_s(n, stride, system))
    tree = tree_bytes + tree_latency_s(n, stride, system)
    return np.minimum(ring, tree)


def ring_step_time(size_bytes: Num, n: Num, stride: Num, system: System, eff: tuple[float, ...]) -> Num:
    """One step of a ring over ``n`` members at ``stride``: at the bandwidth and latency of the outermost level."""
    lvl = outermost_level(n, stride, system)
    bw = np.array([b / neighbour_factor(lv.topology) for b, lv in zip(_bw(system, eff), system.levels)])[lvl]
    lat = np.array([lv.latency_s for lv in system.levels])[lvl]
    return np.asarray(size_bytes, dtype=np.float64) / bw + lat


def all_to_all_time(bytes_per_chip: Num, n: Num, stride: Num, system: System, eff: tuple[float, ...],
                    peer_s: float = 0.0) -> Num:
    """Uniform all-to-all: each chip sends ``bytes_per_chip`` in total, 1/n of it to each member (self incl.)."""
    within = members_within(n, stride, system)
    bw = _bw(system, eff)
    s = np.asarray(bytes_per_chip, dtype=np.float64)
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    t = np.zeros(np.broadcast(s, nn).shape)
    lat = np.zeros_like(t)
    prev = np.ones_like(nn)
    for w, b, lvl in zip(within, bw, system.levels):
        w = w.astype(np.float64)
        t = np.maximum(t, s * (w - prev) / nn / b * a2a_factor(lvl.topology, w, stride))
        lat = lat + np.where(w > prev, lvl.latency_s, 0.0)
        prev = w
    return t + lat + peer_s * np.maximum(nn - 1.0, 0.0)


def level_bytes_time(bytes_per_level: list[Num], system: System, eff: tuple[float, ...]) -> Num:
    """Time to move given bytes over each level concurrently: max_l bytes_l / B_l."""
    bw = _bw(system, eff)
    t: np.ndarray | float = 0.0
    for b_l, b in zip(bytes_per_level, bw):
        t = np.maximum(t, np.asarray(b_l, dtype=np.float64) / b)
    return t


def p2p_time(size_bytes: Num, n: Num, stride: Num, system: System, eff: tuple[float, ...]) -> Num:
    """Send ``size_bytes`` to the next of ``n`` pipeline stages, ``stride`` ranks apart, at the slowest level a hop
    crosses.

    The stages form a chain: in steady state every stage sends to the next at once, and the chain moves at its
    slowest hop. With stride s below a domain's size, the hops inside a domain stay on its links but the ones across
    a domain boundary do not, so the chain crosses the outermost level the whole group of n members spans
    (:func:`trainsim.parallel.placement.outermost_level`, the level the placement table shows for pp): e.g. tp 1,
    cp 2, dp 2 (stride 4) with 16 stages on 8-GPU servers crosses InfiniBand at every second hop."""
    lvl = np.minimum(outermost_level(n, stride, system), len(system.levels) - 1)
    bw = np.array([b / neighbour_factor(lv.topology) for b, lv in zip(_bw(system, eff), system.levels)])[lvl]
    lat = np.array([lv.latency_s for lv in system.levels])[lvl]
    return np.asarray(size_bytes, dtype=np.float64) / bw + lat
