"""One post-training step as phases on clusters and links, composed synchronously or asynchronously.

Phases (seconds per step, :mod:`.phases`): weight sync (refit) -> rollout generation -> token ids to the teachers
-> teacher scoring -> log-probs (and, for remote rollouts, the samples) to the trainer -> the student's own
log-prob forward passes (old policy, reference) -> student update.

What crosses a link per step (bytes, one direction each):

* trainer -> remote rollout cluster: the student's weights, ``params x bytes`` every ``weight_sync_every`` steps;
* rollout cluster -> teacher cluster: token ids of prompt + response, 4 B per token;
* teacher cluster -> trainer: per generated token, the sampled token's log-probability (4 B, FP32), or top-k
  (``k x (4 B id + 2 B value)``), or the full distribution (``vocab x 2 B``, only if asked);
* remote rollout cluster -> trainer: token ids (4 B per token) + sampling log-probs (4 B per generated token).

Inside one cluster these move over the scale-out network and are not counted as WAN traffic (weights still take
:func:`.phases.colocated_refit_s` on chips shared by trainer and rollouts, :func:`.phases.noncolocated_refit_s`
to separate rollout chips). A link moves ``bytes / bandwidth + latency``.

Composition:

* ``sync`` (on-policy): the stages run one after another; inside a stage, phases on different clusters or links
  run in parallel and phases on the same cluster or link add up. The rollout stage waits for the longest sample
  (``tail_factor``).
* ``async`` (one-step off-policy, as NeMo RL / slime / AReaL / LongCat DORA): the rollout of step i+1 overlaps
  scoring and training of step i, so the step time is the busiest resource -- per cluster the chip-seconds of every
  phase on it divided by its chips, per link direction its transfer time, every single phase -- but at least
  ``1 / (1 + age)`` of the dependency chain (``age + 1`` steps in flight; ``step.max_trajectory_age_steps``, 1 for
  one-step-off). The rollout of each step still runs its longest sample: NeMo RL
  v0.6.0's collector starts a step's last prompt group when the previous step's last one finishes and the trainer
  waits for it (:func:`.phases.overlapped_decode_steps`); with partial rollouts (``step.partial_rollouts``) unfinished
  samples carry over and the tail goes. The first step fills the pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..perf.calibration import calib_for
from .phases import (TrainTime, colocated_refit_s, host_offload_s, noncolocated_refit_s, optimizer_copy_bw,
                     optimizer_round_trip_s, refit_buckets, refit_pack_bytes, reference_swap_s, rollout_time,
                     scoring_time, train_time, vllm_load_scan_s, weight_bytes)
from .placement import slower_on_placed
from .spec import PostTrain

STAGES = ("weights", "offload", "rollout", "to_teachers", "scoring", "to_trainer", "logprobs", "train")
ID_BYTES = 4.0
LOGPROB_BYTES = 4.0
TOPK_ENTRY_BYTES = 6.0     # 4 B token id + 2 B (BF16) value
FULL_ENTRY_BYTES = 2.0     # BF16 probability per vocabulary entry
#: what ``utilisation`` in a post-training result measures (:func:`chip_utilisation`), stated with the number
UTILISATION_DEFINITION = ("chip-time working over chip-time available: chip-seconds of each cluster's phases "
                          "(idle rollout servers excluded) / (cluster chips x step time)")


@dataclass
class Phase:
    """One phase of a post-training step: a compute phase on a cluster's chips or a transfer of ``bytes`` over
    a link, with its duration (s)."""

    name: str
    stage: str
    seconds: float
    cluster: str | None = None       # compute phase: the cluster it runs on
    chips: int = 0
    link: tuple[str, str] | None = None   # transfer phase: (from, to)
    bytes: float = 0.0
    bytes_per_chip: float = 0.0      # compute phase that moves data on each chip (host offload): bytes per chip
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The phase as a JSON-able dict (cluster and chips, with bytes_per_chip where the phase moves data on
        each chip, or link and bytes, only where they apply)."""
        d = {"name": self.name, "stage": self.stage, "seconds": self.seconds}
        if self.cluster is not None:
            d.update(cluster=self.cluster, chips=self.chips)
            if self.bytes_per_chip:
                d["bytes_per_chip"] = self.bytes_per_chip
        if self.link is not None:
            d.update(link=f"{self.link[0]}->{self.link[1]}", bytes=self.bytes)
        if self.detail:
            d["detail"] = self.detail
        return d


def logprob_bytes_per_token(pt: PostTrain, vocab: int) -> float:
    """What a teacher returns per generated token (sampled log-prob, top-k or the full distribution)."""
    st = pt.step
    if st.logprobs == "sampled":
        return LOGPROB_BYTES
    if st.logprobs == "topk":
        return st.topk * TOPK_ENTRY_BYTES
    return vocab * FULL_ENTRY_BYTES


def _transfer(pt: PostTrain, name: str, stage: str, a: str, b: str, size: float) -> Phase | None:
    ln = pt.link(a, b)
    if ln is None or size <= 0:
        return None
    return Phase(name, stage, size / ln.bandwidth + ln.latency, link=(a, b), bytes=size)


def _train_chips(pt: PostTrain) -> int:
    c = pt.clusters[pt.student.cluster].chips
    if pt.student.rollouts == "student" and pt.rollout_cluster == pt.student.cluster and pt.student.rollout_chips:
        return c - pt.student.rollout_chips
    return c


def _colocated(pt: PostTrain) -> bool:
    """The student's rollouts time-share its training chips (same cluster, no dedicated rollout chips)."""
    return pt.rollout_cluster == pt.student.cluster and pt.student.rollouts == "student" \
        and not pt.student.rollout_chips


def _rollout_jobs(pt: PostTrain) -> list[tuple[str, int, float, str | None]]:
    """(cluster, chips, share of the samples, teacher name or None) of each rollout job."""
    if pt.student.rollouts == "teacher_clusters" and pt.teachers:
        return [(t.cluster, pt.clusters[t.cluster].chips, t.share, t.name) for t in pt.teachers]
    rc = pt.rollout_cluster
    return [(rc, pt.student.rollout_chips or pt.clusters[rc].chips, 1.0, None)]


def trainer_time(pt: PostTrain) -> TrainTime:
    """The student's training side of one step (:func:`.phases.train_time`) on its training chips, with the
    trainer as the spec states it: ``student.train_plan``, ``train_framework``, ``train_optimizer`` and
    ``train_options`` (:func:`.phases.trainer_run`), and the RL framework's ``train_loop``
    (:func:`.loops.train_loop_cost`)."""
    st, s = pt.step, pt.student
    opt = s.train_optimizer.model_dump(exclude_none=True, exclude_defaults=True) if s.train_optimizer else None
    return _on_job_network(pt, s.cluster, lambda system: train_time(
        pt.student_arch, system, _train_chips(pt), st.sequences, st.seq_len, s.precision, st.extra_forward_passes,
        s.train_plan, st.pack_tokens, st.pad_multiple, pt.longest_run_len, st.optimizer_steps,
        st.logprob_pack_tokens, s.train_framework, opt, s.train_options, s.train_loop),
        key=lambda t: t.step_s + t.forward_s + t.export_s)


def _on_job_network(pt: PostTrain, cl: str, fn, key):
    """``fn(system)`` on the network cluster ``cl``'s job sees with the stack's rank order
    (:func:`.placement.slower_on_placed`: NeMo RL v0.6.0's where the spec gives the cluster's ``gpus_per_node``)."""
    c = pt.clusters[cl]
    return slower_on_placed(fn, c.system, c.chips, c.gpus_per_node, key)


def phases(pt: PostTrain, *, tail: bool = True) -> list[Phase]:
    """Every phase of one step (``tail``: the rollout waits for the longest sample, :func:`rollout_tail`)."""
    st = pt.step
    a = pt.student_arch
    tc = pt.student.cluster
    t_chips = _train_chips(pt)
    out: list[Phase] = []
    wbytes = weight_bytes(a, pt.student.rollout_precision) / st.weight_sync_every
    tail_f = pt.rollout_tail_factor if tail else 1.0
    src_of_teacher: dict[str, str] = {}
    tr = trainer_time(pt)
    for cl, chips, share, tname in _rollout_jobs(pt):
        r = _on_job_network(pt, cl, lambda system, chips=chips, share=share: rollout_time(
            a, system, chips, st.sequences * share, st.prompts * share, st.prompt_len, st.rollout_len,
            pt.student.rollout_precision, tail_f, pt.student.rollout_tp, pt.student.rollout_memory_fraction,
            continuous=st.mode == "async", max_seqs=pt.student.rollout_max_seqs, age=st.max_trajectory_age_steps,
            host_overlap=pt.student.rollout_host_overlap, numa_bound=pt.student.rollout_numa_bound),
            key=lambda r: r.total_s)
        # weights to the rollout workers (every rollout server needs a full copy)
        if cl == tc:
            colocated = not (pt.student.rollout_chips and pt.student.rollouts == "student")
            w_detail: dict = {}
            if colocated:
                # every trainer chip exports the full weights and hands them to its own vLLM worker
                sysc = pt.clusters[cl].system
                shard = weight_bytes(a, pt.student.rollout_precision) / max(int(r.plan.get("chips") or 1), 1)
                full = weight_bytes(a, "bf16")
                w_detail = colocated_refit_s(tr.export_s, full, shard, sysc.chip.hbm_bw, tr.host_link_bw,
                                             refit_buckets(full, sysc.chip.hbm_bytes, shard,
                                                           tr.weights_bytes_per_chip),
                                             1.0 / st.weight_sync_every, load_scan_s=vllm_load_scan_s(a))
                w_s = sum(w_detail.values())
            else:
                # separate rollout chips: the trainer's BF16 export goes in full to every generation rank, which
                # quantises on load when it generates in FP8 (NeMo RL docs/fp8.md: "on-the-fly quantization of
                # model weights from higher-precision formats to FP8")
                sysc = pt.clusters[cl].system
                coll_eff = calib_for(sysc.chip.family, chip=sysc.chip.id).coll_eff
                w_detail = _on_job_network(pt, cl, lambda system, chips=chips, coll_eff=coll_eff: noncolocated_refit_s(
                    tr.export_s, weight_bytes(a, "bf16"), system, t_chips + chips, coll_eff,
                    refit_pack_bytes(system.chip.hbm_bytes), 1.0 / st.weight_sync_every,
                    load_scan_s=vllm_load_scan_s(a)), key=lambda d: sum(d.values()))
                w_s = sum(w_detail.values())
            out.append(Phase(f"weight sync -> {cl}{' (colocated)' if colocated else ''}", "weights", w_s,
                             cluster=cl, chips=chips, bytes=wbytes, detail=w_detail))
        else:
            ph = _transfer(pt, f"weights {tc} -> {cl}", "weights", tc, cl, wbytes)
            if ph:
                out.append(ph)
        out.append(Phase(f"rollout on {cl}" + (f" ({tname})" if tname else ""), "rollout", r.total_s, cluster=cl,
                         chips=chips, detail={"prefill_s": r.prefill_s, "decode_s": r.decode_s,
                                              "decode_tokens_per_s_per_chip": r.decode_tokens_per_s_per_chip,
                                              "prefill_tokens_per_s_per_chip": r.prefill_tokens_per_s_per_chip,
                                              "plan": r.plan, "batch_per_chip": r.batch_per_chip,
                                              "tpot_s": r.tpot_s, "tail_factor": tail_f,
                                              "step_fixed_s": r.step_fixed_s, "step_per_seq_s": r.step_per_seq_s,
                                              "idle_chips": r.idle_chips, "gemm_peak_flops": r.gemm_peak_flops,
                                              "gemm_peak_basis": r.gemm_peak_basis}))
        if tname is not None:
            src_of_teacher[tname] = cl
        if cl != tc:
            n = st.sequences * share
            data = n * st.seq_len * ID_BYTES + n * st.rollout_len * LOGPROB_BYTES
            ph = _transfer(pt, f"samples {cl} -> {tc}", "to_trainer", cl, tc, data)
            if ph:
                out.append(ph)
    lp = logprob_bytes_per_token(pt, a.vocab)
    for t in pt.teachers:
        n = st.sequences * t.share
        src = src_of_teacher.get(t.name, pt.rollout_cluster)
        ph = _transfer(pt, f"token ids {src} -> {t.cluster} ({t.name})", "to_teachers", src, t.cluster,
                       n * st.seq_len * ID_BYTES)
        if ph:
            out.append(ph)
        chips = pt.clusters[t.cluster].chips
        s, tps, plan, rate = scoring_time(t.arch, pt.clusters[t.cluster].system, chips, n, st.seq_len,
                                          t.precision)
        out.append(Phase(f"scoring by {t.name} on {t.cluster}", "scoring", s, cluster=t.cluster, chips=chips,
                         detail={"prefill_tokens_per_s_per_chip": tps, "plan": plan, **rate}))
        ph = _transfer(pt, f"log-probs {t.cluster} -> {tc} ({t.name})", "to_trainer", t.cluster, tc,
                       n * st.rollout_len * lp)
        if ph:
            out.append(ph)
    if pt.student.host_offload and _colocated(pt):
        opt_bw = optimizer_copy_bw(pt.clusters[tc].system)
        off = host_offload_s(tr.weights_bytes_per_chip, tr.optimizer_bytes_per_chip, tr.host_link_bw, opt_bw)
        out.append(Phase(f"host offload and reload of the trainer's state on {tc}", "offload", off, cluster=tc,
                         chips=t_chips, bytes_per_chip=2.0 * (tr.weights_bytes_per_chip + tr.optimizer_bytes_per_chip),
                         detail={"weights_bytes_per_chip": tr.weights_bytes_per_chip,
                                 "optimizer_bytes_per_chip": tr.optimizer_bytes_per_chip,
                                 "host_link_bytes_per_s": tr.host_link_bw,
                                 "optimizer_copy_bytes_per_s": opt_bw or tr.host_link_bw}))
    elif pt.student.offload_optimizer_for_logprob and not _colocated(pt):
        opt_bw = optimizer_copy_bw(pt.clusters[tc].system)
        off = optimizer_round_trip_s(tr.optimizer_bytes_per_chip, tr.host_link_bw, opt_bw)
        out.append(Phase(f"optimizer state to the host for the log-probs and back on {tc}", "offload", off,
                         cluster=tc, chips=t_chips, bytes_per_chip=2.0 * tr.optimizer_bytes_per_chip,
                         detail={"optimizer_bytes_per_chip": tr.optimizer_bytes_per_chip,
                                 "host_link_bytes_per_s": tr.host_link_bw,
                                 "optimizer_copy_bytes_per_s": opt_bw or tr.host_link_bw}))
    swap = reference_swap_s(tr.weights_bytes_per_chip, tr.host_link_bw) if pt.student.reference_swap else 0.0
    if tr.forward_s > 0 or swap > 0:
        out.append(Phase(f"log-probs ({st.extra_forward_passes:g} forward) on {tc}", "logprobs", tr.forward_s + swap,
                         cluster=tc, chips=t_chips, detail={"forward_passes": st.extra_forward_passes,
                                                            "forward_s": tr.forward_s, "reference_swap_s": swap,
                                                            "train_loop_s": tr.loop_forward_s}))
    out.append(Phase(f"student update on {tc}", "train", tr.update_s, cluster=tc, chips=t_chips,
                     detail={"update_s": tr.update_s, "extra_forward_s": tr.forward_s,
                             "train_loop_s": tr.loop_update_s,
                             "tokens_per_s_per_chip": tr.tokens_per_s_per_chip, "mfu": tr.mfu, "plan": tr.plan,
                             "memory_per_chip_bytes": tr.memory_per_chip_bytes, "fits": tr.fits}))
    return out


def _resource(ph: Phase):
    return ("link", ph.link) if ph.link is not None else ("cluster", ph.cluster)


def sync_step(phs: list[Phase], pt: PostTrain) -> float:
    """Stages in series; inside a stage the busiest cluster or link direction."""
    total = 0.0
    for stage in STAGES:
        busy: dict = {}
        for ph in phs:
            if ph.stage != stage:
                continue
            busy[_resource(ph)] = busy.get(_resource(ph), 0.0) + ph.seconds
        total += max(busy.values(), default=0.0)
    return total


def resource_busy(phs: list[Phase], pt: PostTrain) -> dict:
    """Seconds each cluster (chip-seconds / its chips) and each link direction is busy per step.

    When the student's rollouts run on dedicated chips of its own cluster (``rollout_chips``, NeMo RL's
    non-colocated generation), the two chip groups are not interchangeable, so each is also a resource of its own:
    the rollout chips busy with generation and receiving the weights, the training chips with log-probs, the update
    and sending the weights. Generation stops while the weights arrive: NeMo RL's collector pauses new generations
    for the refit (``AsyncTrajectoryCollector.prepare_for_refit``, ``nemo_rl/algorithms/async_utils.py`` tag v0.6.0;
    docs/guides/async-grpo.md, "Collector pauses, waits for weight refit, then resumes"), and the in-flight update
    reaches the vLLM workers as a ``collective_rpc`` utility call, which vLLM V1's engine core runs inline between
    engine steps (``EngineCoreProc._handle_client_request``, vllm/v1/engine/core.py), so the running sequences do
    not advance either."""
    tc = pt.student.cluster
    split = bool(pt.student.rollout_chips) and pt.student.rollouts == "student" and pt.rollout_cluster == tc
    busy: dict = {}
    for ph in phs:
        if ph.link is not None:
            key = f"link {ph.link[0]}->{ph.link[1]}"
            busy[key] = busy.get(key, 0.0) + ph.seconds
        else:
            key = f"cluster {ph.cluster}"
            busy[key] = busy.get(key, 0.0) + ph.seconds * ph.chips / pt.clusters[ph.cluster].chips
            if split and ph.cluster == tc and ph.stage in ("rollout", "weights", "offload", "logprobs", "train"):
                groups = {"rollout": ("rollout",), "weights": ("rollout", "training")}.get(ph.stage, ("training",))
                for g in groups:
                    gk = f"cluster {tc} {g} chips"
                    busy[gk] = busy.get(gk, 0.0) + ph.seconds
    return busy


def chip_utilisation(phs: list[Phase], pt: PostTrain, step_s: float) -> dict[str, float]:
    """Per cluster, the share of its chip-time spent working: chip-seconds of its compute phases, less the
    rollout servers left without a sample (``idle_chips``, :func:`.phases.idle_rollout_chips`), over
    ``chips x step_s``: ``sum(seconds x (chips - idle_chips)) / (cluster chips x step_s)``, in [0, 1].

    This is what a user reads as utilisation (qa21b: the busy time over the step, :func:`resource_busy`, showed
    100% with 997,952 of 1,000,000 chips idle). A phase holds its chips for its whole duration, so
    :func:`resource_busy` (the step's bound) counts idle servers as occupied; this counts them as idle."""
    used: dict[str, float] = {c: 0.0 for c in pt.clusters}
    for ph in phs:
        if ph.link is None and ph.cluster is not None:
            idle = int((ph.detail or {}).get("idle_chips") or 0)
            used[ph.cluster] += ph.seconds * max(ph.chips - idle, 0)
    return {c: used[c] / (pt.clusters[c].chips * step_s) if step_s > 0 else 0.0 for c in pt.clusters}


def rollout_tail(pt: PostTrain) -> bool:
    """Whether a step's rollout runs until its longest sample (``step.tail_factor``): always in sync mode; in async
    mode unless unfinished samples carry over to the next step (``step.partial_rollouts``). NeMo RL v0.6.0 has no
    partial rollouts, so its one-step-off generation keeps the tail, overlapped with the next step's batch
    (:func:`.phases.overlapped_decode_steps`)."""
    return pt.step.mode == "sync" or not pt.step.partial_rollouts


def step_time(pt: PostTrain) -> dict:
    """Step time and its parts for the spec's mode."""
    if pt.step.mode == "sync":
        phs = phases(pt, tail=True)
        t = sync_step(phs, pt)
        return {"step_s": t, "chain_s": t, "fill_s": 0.0, "phases": phs, "bound": "dependency chain (sync)"}
    phs = phases(pt, tail=rollout_tail(pt))
    chain = sync_step(phs, pt)
    busy = resource_busy(phs, pt)
    longest = max(phs, key=lambda p: p.seconds)
    k = pt.step.max_trajectory_age_steps
    cands = {**busy, f"phase {longest.name}": longest.seconds, f"chain / {1 + k}": chain / (1 + k)}
    bound = max(cands, key=cands.get)
    t = cands[bound]
    return {"step_s": t, "chain_s": chain, "fill_s": max(chain - t, 0.0), "phases": phs, "bound": bound}


def checkpoint_shipping_s(pt: PostTrain) -> tuple[float, float]:
    """One-off: the starting checkpoint (BF16) from the student's cluster to every other cluster (parallel links)."""
    if not pt.step.checkpoint_shipping:
        return 0.0, 0.0
    size = weight_bytes(pt.student_arch, "bf16")
    tc = pt.student.cluster
    times, total = [], 0.0
    for c in pt.clusters:
        ln = pt.link(tc, c)
        if ln is not None:
            times.append(size / ln.bandwidth + ln.latency)
            total += size
    return max(times, default=0.0), total


def evaluate(pt: PostTrain) -> dict:
    """Per-step phases, traffic per link, timeline and whole-run totals of a post-training spec."""
    st = step_time(pt)
    phs: list[Phase] = st["phases"]
    T = st["step_s"]
    ship_s, ship_b = checkpoint_shipping_s(pt)
    wall = pt.step.steps * T + st["fill_s"] + ship_s
    traffic: dict[str, float] = {}
    for ph in phs:
        if ph.link is not None:
            k = f"{ph.link[0]}->{ph.link[1]}"
            traffic[k] = traffic.get(k, 0.0) + ph.bytes
    busy = resource_busy(phs, pt)
    util = chip_utilisation(phs, pt, T)
    wan_step = sum(traffic.values())
    seqs = pt.step.sequences
    gen_tokens = seqs * pt.step.rollout_len
    return {
        "name": pt.name, "kind": pt.kind, "mode": pt.step.mode, "warnings": pt.warnings,
        "step_time_s": T, "dependency_chain_s": st["chain_s"], "bound_by": st["bound"],
        "steps": pt.step.steps, "wall_time_s": wall, "wall_time_h": wall / 3600.0,
        "pipeline_fill_s": st["fill_s"], "checkpoint_shipping_s": ship_s,
        "phases": [p.to_dict() for p in phs],
        "wan_bytes_per_step": traffic, "wan_bytes_per_step_total": wan_step,
        "wan_bytes_total": wan_step * pt.step.steps + ship_b,
        "wan_bytes_per_generated_token": wan_step / gen_tokens if gen_tokens else 0.0,
        "busy_s_per_step": busy, "utilisation": util, "utilisation_definition": UTILISATION_DEFINITION,
        "chip_hours": {c: pt.clusters[c].chips * wall / 3600.0 for c in pt.clusters},
        "generated_tokens_per_step": gen_tokens,
        "logprob_bytes_per_token": logprob_bytes_per_token(pt, pt.student_arch.vocab),
    }
