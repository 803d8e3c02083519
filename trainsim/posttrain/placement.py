"""Where NeMo RL v0.6.0 puts a job's ranks, and the network its parallel groups then see.

The engine numbers ranks so that a scale-up domain holds consecutive ranks (:mod:`trainsim.parallel.placement`).
NeMo RL v0.6.0 does not: it numbers the ranks of a Ray placement group host by host in Ray node-id order.

* Megatron workers: ``RayVirtualCluster._get_sorted_bundle_indices`` sorts the unified placement group's bundles
  by ``(node_id, gpu_id)`` (nemo_rl/distributed/virtual_cluster.py, tag v0.6.0 = commit 5fb58893) and
  ``Policy`` gives worker rank ``i`` the ``i``-th of them (nemo_rl/models/policy/lm_policy.py,
  ``tied_groups`` from ``cluster._sorted_bundle_indices``).
* vLLM workers with tensor x pipeline parallel wider than a host: ``_get_tied_worker_bundle_indices`` flattens the
  bundles host by host over ``sorted(node_bundles)`` (node ids) and slices them into consecutive groups of
  ``tp x pp`` (nemo_rl/models/generation/vllm/vllm_generation.py, same tag).
* A Ray node id is random: ``ray.NodeID.from_random().hex()`` when the node starts (Ray python/ray/_private/node.py,
  ``Node.__init__``).
* A worker group without a unified placement group (the trainer of a one-step-off run, whose ``RayVirtualCluster``
  of its own nodes builds one ``PACK`` group per logical node, ``_create_placement_groups_internal``) takes ranks
  node group by node group, on whatever hosts Ray's scheduler gives each: as blind to NVLink domains.

So a host's GPUs stay consecutive, but the hosts come in a random order that knows nothing of NVLink domains: a
group that spans ``k`` hosts takes ``k`` hosts drawn at random from the job's. NVIDIA-NeMo/RL pull request 2612
("Topology aware placement", merged 2026-06-23, after v0.6.0) adds the NVLink-domain probe and the ordering by
domain; pull request 2986 (2026-06-29) found EP groups of a 4-node GB200 job spanning two NVL72 racks "when the
scheduler spreads a job across racks".

When the job has more chips than one scale-up domain it spans at least two domains, and a group across hosts then
crosses domains unless all its hosts are drawn from one. For two domains of ``N/2`` hosts each the chance that a
given 2-host group stays inside one is ``(N/2 - 1)/(N - 1)`` (15/31 = 0.48 for 32 GB200 trays), and the chance that
all ``N/2`` groups of a 2-host layout do is ``((N/2 - 1)!!)^2 / (N - 1)!!`` (2.1e-5 for 32 trays: the recipe's 16
vLLM TP8 servers on 128 GB200). A synchronous step waits for its slowest group (every rollout server's share, every
collective of the trainer), so such a job's groups are priced at the slowest level they can cross: every hop
between hosts at the scale-out level (:func:`placed_system`). A job within one domain's chips may or may not have
been allocated inside one domain (the sources do not say); it keeps the engine's layout.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from ..catalog.types import System

T = TypeVar("T")


def placed_system(system: System, job_chips: int, gpus_per_node: int | None) -> System | None:
    """The network NeMo RL v0.6.0's rank order leaves a job of ``job_chips`` chips on hosts of ``gpus_per_node``:
    ``system`` with its scale-up level cut to one host, its wiring cut with it (:meth:`~trainsim.catalog.types.
    NetLevel.resized`, as a run spec's ``scale_up.size`` cuts it), so a group across hosts is priced at the
    scale-out level, when the job spans more than one scale-up domain (``job_chips > scale_up_size``) and a host
    is smaller than the domain; else None (the engine's aligned layout stands). See the module docstring for the
    derivation."""
    if not gpus_per_node or gpus_per_node >= system.scale_up_size or job_chips <= system.scale_up_size:
        return None
    return system.with_(levels=(system.levels[0].resized(gpus_per_node), *system.levels[1:]))


def slower_on_placed(fn: Callable[[System], T], system: System, job_chips: int, gpus_per_node: int | None,
                     key: Callable[[T], float]) -> T:
    """``fn`` on the job's network: on :func:`placed_system` where the rank order sends groups across domains,
    never below ``fn`` on the aligned ``system`` (``key``: the seconds compared). Moving a group's hops from
    scale-up links to slower scale-out links cannot speed it up. NCCL's ring (:mod:`trainsim.perf.collectives`)
    is monotone in this (a hop moved to the network only gets slower), but its double binary tree is a chain
    inside one node and a binary tree across nodes: a 32-rank all-reduce pays 2 x 31 NVLink hops as a chain inside
    one NVL72 and 2 (3 NVLink + 3 network) hops over 8 hosts of 4, which would make a wide latency-bound group
    faster for crossing racks. Inside an NVL72 NCCL would run NVLink SHARP for it (25 us in NCCL's tuning model),
    which the engine does not model; until it does, the aligned time bounds the placed one."""
    aligned = fn(system)
    placed = placed_system(system, job_chips, gpus_per_node)
    if placed is None:
        return aligned
    other = fn(placed)
    return other if key(other) > key(aligned) else aligned
