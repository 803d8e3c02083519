"""How a level's wiring slows collectives at scale (the topology of :mod:`trainsim.catalog.topology`).

Each function returns a multiplier (>= 1) on the bytes / bandwidth time of a collective at one level, for a group
with ``members`` members inside one domain of that level, placed every ``stride`` ranks. The bandwidth ``B`` of a
level is the chip's whole injection bandwidth (all its links, one direction).

* ``switch`` (non-blocking switch or fat tree): 1 for every pattern.
* ``clos R:1 above N``: ring collectives (reduce-scatter, all-gather, ring steps) cross a block boundary only
  twice per ring, so oversubscribed uplinks do not bind them (NCCL's rings follow the rank order): 1. In an
  all-to-all a fraction ``f_out = 1 - m_in / members`` of each chip's bytes leaves its block, where ``m_in`` =
  members in one block = clip(N / stride, 1, members); uplinks carry 1/R of the block's injection bandwidth, so
  the all-to-all takes max(1, f_out x R) times as long (Dally & Towles, *Principles and Practices of
  Interconnection Networks*, 2004, ch. 3: throughput under uniform traffic is bounded by the most loaded channel).
* ``torus`` with dimensions d_1..d_D: the chip's bandwidth is split over its 2 D links. The members span a box of
  ``members x stride`` chips filled dimension by dimension; a dimension is active when the box extends along it
  (extent a_i > 1). Uniform all-to-all traffic crosses on average h = sum_i h(a_i) hops, h(a) = a / 4 on a whole
  ring (wrap-around) and (a^2 - 1) / (3 a) on a segment, and only the active dimensions' links carry it: the
  all-to-all takes h x D / D_active times the switch time (channel-load bound, Dally & Towles ch. 3). A
  reduce-scatter / all-gather runs as one ring per active dimension at once (the multi-dimensional ring of TPU
  all-reduces; Jouppi et al., "TPU v4", ISCA 2023, sec. 3): D / D_active. A ring step or a pipeline send goes to
  one neighbour along one axis over 2 of the 2 D links: D.
* ``fullmesh N``: each chip's bandwidth ``B`` is split over N - 1 direct links, one per peer. A group of ``m``
  members inside the mesh (m = members within one domain, at most N) reaches only its m - 1 peers' links. An
  all-to-all sends S / m to each peer over its own link at B / (N - 1): S (N - 1) / (m B), against the switch's
  S (m - 1) / (m B): (N - 1) / (m - 1). A reduce-scatter / all-gather runs the same way (HCCL's in-server mesh
  algorithm: every member exchanges its 1 / m share directly with every other, all links at once), so
  (N - 1) / (m - 1) as well; a ring over the mesh would use one link per step and get slower as m grows, which the
  910B measurements rule out: limulidae (gameofdimension/limulidae README, CANN 8.0.0.beta1) measured all-gather
  algorithm bandwidths of 38, 64 and 149 GB/s on 2, 4 and 8 NPUs, rising with m as m x 28 GB/s x 0.57-0.68 does
  (56, 112, 224 GB/s at line rate), where a switch gives m / (m - 1) x 196 GB/s (392, 261, 224) and a ring 56, 37,
  32 (tests/test_fullmesh.py). A ring step or a pipeline send goes to one peer over one link: N - 1.
"""
from __future__ import annotations

import numpy as np

from ..catalog.topology import Topology
from .arrays import Num


def _box(members: Num, stride: Num, dims: tuple[int, ...]) -> list[np.ndarray]:
    """Extent along each dimension of the box the group spans (``members`` x ``stride`` chips, filled
    dimension by dimension, capped at the level's chips)."""
    total = float(np.prod(dims))
    rem = np.minimum(np.asarray(members, dtype=np.float64) * np.maximum(np.asarray(stride, dtype=np.float64), 1.0),
                     total)
    out = []
    for d in dims:
        a = np.clip(rem, 1.0, float(d))
        out.append(a)
        rem = rem / a
    return out


def _active(box: list[np.ndarray]) -> np.ndarray:
    return np.maximum(sum((a > 1.0).astype(np.float64) for a in box), 1.0)


def a2a_factor(topo: Topology, members: Num, stride: Num) -> Num:
    """Multiplier on an all-to-all's bytes / bandwidth time at one level (module docstring)."""
    m = np.maximum(np.asarray(members, dtype=np.float64), 1.0)
    if topo.kind == "clos":
        m_in = np.clip(topo.block_chips / np.maximum(np.asarray(stride, dtype=np.float64), 1.0), 1.0, m)
        return np.maximum(1.0, (1.0 - m_in / m) * topo.oversubscription)
    if topo.kind == "torus":
        box = _box(m, stride, topo.dims)
        hops = sum(np.where(a >= d, a / 4.0, (a * a - 1.0) / (3.0 * a)) for a, d in zip(box, topo.dims))
        return np.maximum(1.0, hops * len(topo.dims) / _active(box))
    if topo.kind == "fullmesh":
        return _mesh_factor(topo, m)
    return np.ones_like(m)


def _mesh_factor(topo: Topology, members: np.ndarray) -> np.ndarray:
    """(N - 1) / (m - 1) for a group of m <= N members of an N-chip full mesh (module docstring); 1 for m <= 1."""
    n = float(topo.dims[0])
    m = np.minimum(members, n)
    return np.where(m > 1.0, (n - 1.0) / np.maximum(m - 1.0, 1.0), 1.0)


def ring_factor(topo: Topology, members: Num, stride: Num) -> Num:
    """Multiplier on a reduce-scatter / all-gather's bytes / bandwidth time at one level (module docstring)."""
    m = np.asarray(members, dtype=np.float64)
    if topo.kind == "torus":
        return len(topo.dims) / _active(_box(m, stride, topo.dims))
    if topo.kind == "fullmesh":
        return _mesh_factor(topo, m)
    return np.ones_like(m)


def neighbour_factor(topo: Topology) -> float:
    """Multiplier on one send to a neighbour (a ring step, a pipeline send) at one level (module docstring)."""
    if topo.kind == "fullmesh":
        return float(topo.dims[0] - 1)
    return float(len(topo.dims)) if topo.kind == "torus" else 1.0
