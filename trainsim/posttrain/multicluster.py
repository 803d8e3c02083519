"""K domain teachers RL-trained on K separate clusters, then distilled on-policy into one student (MOPD), versus
the same post-training on one cluster with the summed chips, and versus one of the clusters alone.

Plans compared (same work in each: K teacher RL jobs of ``rl`` steps, then ``opd`` steps of multi-teacher OPD):

* **multi-cluster** (K clusters joined by WAN links of ``bandwidth``): phase 1 runs the K RL jobs in parallel, one
  per cluster, with no cross-cluster traffic (teachers are forked from one SFT checkpoint, which is shipped once).
  Phase 2 keeps each teacher where it was trained; the student trains on cluster 0. Two placements of the student's
  rollouts, the faster taken at each bandwidth: ``student`` (all on cluster 0; token ids out to the teachers and
  one log-prob per token back over the WAN) and ``teacher_clusters`` (each domain's rollouts on its teacher's
  cluster, scored locally; the student's weights go out over the WAN every step and samples + log-probs come back).
* **one cluster, summed chips** (K x chips on one scale-out network): phase 1 either runs the K RL jobs side by
  side on K partitions or one after another on all chips (faster taken); phase 2 is the same MOPD with the
  partitions joined by the cluster's own network (no WAN), or with everything time-shared on all K x chips
  (student rollouts and training on all chips) -- the faster taken.
* **one cluster alone** (chips of cluster 0): the K RL jobs one after another, then MOPD with every teacher
  time-sharing that cluster.

The multi-cluster plan "pays off" while it beats one cluster alone; :func:`break_even_bandwidth` bisects (in log
space) for the WAN bandwidth where the two are equal, and :func:`near_single_bandwidth` for the bandwidth where
multi-cluster comes within ``tolerance`` of the single summed-chip cluster. Wall time never increases with
bandwidth (every link time is ``bytes / bandwidth + latency`` and the composition is a max/sum of them), which makes
the bisection well defined.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..catalog.types import System
from ..errors import TrainsimError
from ..model.arch import Arch
from ..units import bytes_per_s_to_gbit
from .spec import Cluster, Link, PostTrain, StepPart, StudentPart, Teacher
from .timeline import evaluate
from .phases import weight_bytes


@dataclass(frozen=True)
class MultiClusterCase:
    """The inputs of the comparison (all SI units)."""

    student: Arch
    teacher: Arch
    domains: int
    system: System
    chips_per_cluster: int
    wan_bandwidth: float          # bytes/s per direction between two clusters
    wan_latency: float            # s
    rl_step: StepPart
    opd_step: StepPart
    precision: str = "bf16"
    rollout_precision: str = "bf16"
    tolerance: float = 0.10
    extra: dict = field(default_factory=dict)


def _names(k: int) -> list[str]:
    return [f"domain{i}" for i in range(k)]


def _rl_spec(case: MultiClusterCase, system: System, chips: int, name: str) -> PostTrain:
    return PostTrain(
        name=name, kind="rl", clusters={"c": Cluster("c", system, chips)}, links={}, default_link=None,
        student_arch=case.teacher,
        student=StudentPart(model="-", cluster="c", precision=case.precision,
                            rollout_precision=case.rollout_precision),
        teachers=(), step=case.rl_step)


def _opd_spec(case: MultiClusterCase, clusters: dict[str, Cluster], link: Link | None, teacher_cluster: list[str],
              rollouts: str, name: str) -> PostTrain:
    links = {}
    names = list(clusters)
    if link is not None:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                links[frozenset((a, b))] = Link(a, b, link.bandwidth, link.latency)
    k = case.domains
    teachers = tuple(Teacher(f"teacher{i}", case.teacher, teacher_cluster[i], 1.0 / k, case.rollout_precision)
                     for i in range(k))
    return PostTrain(
        name=name, kind="opd", clusters=clusters, links=links, default_link=None, student_arch=case.student,
        student=StudentPart(model="-", cluster=names[0], rollouts=rollouts, precision=case.precision,
                            rollout_precision=case.rollout_precision),
        teachers=teachers, step=case.opd_step)


def _intra_link(system: System, chips: int) -> Link:
    """Two partitions of one cluster: their chips' scale-out links in parallel (the cluster's own network)."""
    lv = system.levels[1] if len(system.levels) > 1 else system.levels[0]
    return Link("a", "b", lv.bw * chips, lv.latency_s)


def rl_job(case: MultiClusterCase, chips: int) -> dict:
    """RL of the teacher model of ``case`` as the student, on ``chips`` chips of the case's system, evaluated."""
    return evaluate(_rl_spec(case, case.system, chips, f"teacher RL on {chips} chips"))


def multi_cluster(case: MultiClusterCase, bandwidth: float | None = None) -> dict[str, Any]:
    """Wall time, traffic and utilisation of the multi-cluster plan at ``bandwidth`` (default: the case's)."""
    bw = case.wan_bandwidth if bandwidth is None else bandwidth
    names = _names(case.domains)
    clusters = {n: Cluster(n, case.system, case.chips_per_cluster) for n in names}
    rl = rl_job(case, case.chips_per_cluster)
    # phase 1: the SFT checkpoint to every other cluster, then K RL jobs in parallel (identical clusters)
    ship_bytes = _bf16_bytes(case.teacher)
    ship_s = (ship_bytes / bw + case.wan_latency) if case.domains > 1 else 0.0
    link = Link("a", "b", bw, case.wan_latency)
    alts = {}
    for placement in ("student", "teacher_clusters"):
        alts[placement] = evaluate(_opd_spec(case, clusters, link, names, placement,
                                             f"MOPD over {case.domains} clusters"))
    opd = min(alts.values(), key=lambda r: r["wall_time_s"])
    wall = ship_s + rl["wall_time_s"] + opd["wall_time_s"]
    # utilisation over the whole run: phase 1 every cluster as busy as its RL job; phase 2 from the OPD timeline
    rl_busy = rl["utilisation"]["c"] * rl["wall_time_s"]
    util = {n: (rl_busy + opd["utilisation"][n] * opd["wall_time_s"]) / wall for n in names}
    wan_total = opd["wan_bytes_total"] + ship_bytes * (case.domains - 1)
    return {"plan": "multi-cluster", "wall_time_s": wall, "wall_time_h": wall / 3600.0,
            "checkpoint_shipping_s": ship_s, "teacher_rl": _brief(rl), "mopd": _brief(opd),
            "mopd_rollouts": _placement(opd), "utilisation": util, "wan_bytes_total": wan_total,
            "wan_bytes_per_opd_step": opd["wan_bytes_per_step_total"],
            "wan_bytes_per_distilled_token": opd["wan_bytes_per_generated_token"],
            "wan_bandwidth_bytes_per_s": bw,
            "mopd_placements": {("rollouts on the student's cluster" if k_ == "student" else
                                 "rollouts on each teacher's cluster"): {
                "mopd_wall_h": r["wall_time_h"], "step_s": r["step_time_s"],
                "wan_bytes_per_distilled_token": r["wan_bytes_per_generated_token"]} for k_, r in alts.items()}}


def single_summed(case: MultiClusterCase) -> dict[str, Any]:
    """The same post-training on one cluster with K x chips (partitions joined by the cluster's network)."""
    k, n = case.domains, case.chips_per_cluster
    names = _names(k)
    rl_part = rl_job(case, n)
    rl_all = rl_job(case, n * k)
    if rl_all["wall_time_s"] * k < rl_part["wall_time_s"]:
        phase1, how = rl_all["wall_time_s"] * k, f"one after another on all {n * k} chips"
        rl = rl_all
    else:
        phase1, how = rl_part["wall_time_s"], f"side by side on {k} partitions of {n} chips"
        rl = rl_part
    clusters = {nm: Cluster(nm, case.system, n) for nm in names}
    link = _intra_link(case.system, n)
    options = [evaluate(_opd_spec(case, clusters, link, names, placement, "MOPD on one cluster (partitions)"))
               for placement in ("student", "teacher_clusters")]
    whole = {"all": Cluster("all", case.system, n * k)}
    options.append(evaluate(_opd_spec(case, whole, None, ["all"] * k, "student",
                                      f"MOPD on one cluster (all {n * k} chips time-shared)")))
    best = min(options, key=lambda r: r["wall_time_s"])
    wall = phase1 + best["wall_time_s"]
    return {"plan": "one cluster, summed chips", "chips": n * k, "wall_time_s": wall, "wall_time_h": wall / 3600.0,
            "teacher_rl": {**_brief(rl), "schedule": how}, "mopd": {**_brief(best), "layout": best["name"]},
            "mopd_rollouts": _placement(best),
            "wan_bytes_total": 0.0}


def single_alone(case: MultiClusterCase) -> dict[str, Any]:
    """Everything on cluster 0 alone: K RL jobs one after another, then MOPD with co-located teachers."""
    k, n = case.domains, case.chips_per_cluster
    rl = rl_job(case, n)
    clusters = {"domain0": Cluster("domain0", case.system, n)}
    opd = evaluate(_opd_spec(case, clusters, None, ["domain0"] * k, "student", "MOPD on one cluster alone"))
    wall = k * rl["wall_time_s"] + opd["wall_time_s"]
    return {"plan": "one cluster alone", "chips": n, "wall_time_s": wall, "wall_time_h": wall / 3600.0,
            "teacher_rl": {**_brief(rl), "schedule": f"{k} jobs one after another"}, "mopd": _brief(opd),
            "wan_bytes_total": 0.0}


def _bf16_bytes(arch: Arch) -> float:
    return weight_bytes(arch, "bf16")


def _placement(r: dict) -> str:
    names = [p["name"] for p in r["phases"] if p["stage"] == "rollout"]
    return "on each teacher's cluster" if len(names) > 1 else "on the student's cluster"


def _brief(r: dict) -> dict:
    return {k: r[k] for k in ("step_time_s", "steps", "wall_time_s", "wall_time_h", "bound_by", "utilisation",
                              "wan_bytes_per_step_total", "busy_s_per_step") if k in r} | {
        "phases_s": {p["name"]: p["seconds"] for p in r["phases"]}}


def _bisect(f, lo: float, hi: float, iters: int = 60) -> float:
    """Smallest bandwidth in [lo, hi] (log space) with f(bw) true, f monotone (false below, true above)."""
    if not f(hi):
        return math.inf
    if f(lo):
        return lo
    a, b = math.log(lo), math.log(hi)
    for _ in range(iters):
        m = 0.5 * (a + b)
        if f(math.exp(m)):
            b = m
        else:
            a = m
    return math.exp(b)


def break_even_bandwidth(case: MultiClusterCase, lo: float = 1e3, hi: float = 1e13) -> float:
    """WAN bandwidth (bytes/s) below which the multi-cluster plan is slower than one cluster alone."""
    target = single_alone(case)["wall_time_s"]
    return _bisect(lambda bw: multi_cluster(case, bw)["wall_time_s"] <= target, lo, hi)


def near_single_bandwidth(case: MultiClusterCase, lo: float = 1e3, hi: float = 1e13) -> float:
    """WAN bandwidth (bytes/s) above which multi-cluster is within ``tolerance`` of one summed-chip cluster."""
    target = single_summed(case)["wall_time_s"] * (1.0 + case.tolerance)
    return _bisect(lambda bw: multi_cluster(case, bw)["wall_time_s"] <= target, lo, hi)


def compare(case: MultiClusterCase) -> dict[str, Any]:
    """Multi-cluster vs single-cluster post-training of ``case``: the three wall times and their ratios, and the
    WAN bandwidths (bytes/s and Gbit/s) at break-even and near single-cluster time."""
    if case.domains < 1:
        raise TrainsimError("domains must be >= 1", field="inputs.domains")
    multi = multi_cluster(case)
    summed = single_summed(case)
    alone = single_alone(case)
    be = break_even_bandwidth(case)
    near = near_single_bandwidth(case)
    return {"multi_cluster": multi, "single_summed": summed, "single_alone": alone,
            "multi_over_summed": multi["wall_time_s"] / summed["wall_time_s"],
            "alone_over_multi": alone["wall_time_s"] / multi["wall_time_s"],
            "break_even_bandwidth_bytes_per_s": be, "break_even_bandwidth_gbit_s": bytes_per_s_to_gbit(be),
            "near_single_bandwidth_bytes_per_s": near, "near_single_bandwidth_gbit_s": bytes_per_s_to_gbit(near),
            "tolerance": case.tolerance}
