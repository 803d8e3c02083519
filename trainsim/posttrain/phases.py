"""The phases of one RL / on-policy-distillation step, each on its own chips (seconds per step).

* Rollout generation (student, inference model): the prompts are prefilled once each (samples share the prompt's
  KV cache), then ``prompts x samples`` sequences decode ``rollout_len`` tokens on average. The server's plan is
  the stated one (``student.rollout_tp``), else of every serving plan on the rollout chips the one that finishes
  the step's prefill + decode first (:func:`rollout_servers`); decode is timed at the mean KV length
  ``prompt_len + rollout_len / 2``, the batch capped by the sequences available and by the KV cache at the *mean*
  final length ``prompt_len + rollout_len`` (paged KV blocks are allocated as tokens are generated, so a wave that
  starts together peaks at ``N x mean length``: Kwon et al., SOSP'23, PagedAttention / vLLM), or, when generation
  runs continuously (one-step-off), at the mean KV a running sequence holds (:func:`held_kv_len`), and by the
  server's ``max_num_seqs`` (:func:`server_batch`). The time of a wave is :func:`generation_s` (fixed per-step
  cost x the longest sample + per-sequence cost x all tokens); one-step-off, where each step's batch overlaps the
  next, the fixed cost is paid for :func:`overlapped_decode_steps`.
* Teacher scoring (per teacher): one prefill over prompt + response of its share of the samples, computing the
  output head for every token to return the sampled token's log-probability (Thinking Machines' OPD; Qwen3
  strong-to-weak distillation) -- no teacher decoding.
* Student update: the training engine for a step of ``prompts x samples`` sequences of ``prompt_len + rollout_len``
  tokens (:func:`trainer_run`: a :class:`trainsim.spec.Run` on the training chips with the trainer's stated plan,
  software stack, optimizer precisions and runtime settings; :func:`trainsim.estimate` fills what they leave out),
  plus ``extra_forward_passes`` forward-only passes (old-policy and reference log-probabilities) over all the
  step's sequences packed into micro-batches of the log-prob token budget, each timed by :func:`forward_only_s`.
* Weight synchronisation: the student's weights (at the rollout precision) to the rollout workers; on chips the
  trainer shares with its rollouts, NeMo RL's colocated refit (every trainer chip exports the full weights and
  hands them to its own vLLM worker, which also sleeps and wakes): :func:`colocated_refit_s`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..catalog.types import System
from ..alternatives import no_plan
from ..errors import NoPlanError, TrainsimError
from ..inference.calib import default_calib, engine_host_calib
from ..inference.serve import best_prefill, setup_for
from ..inference.search import (check_tp, evaluate_decode, evaluate_prefill, idle_share_batch, instance_sizes,
                                plan_grid)
from ..inference.setup import ServeSetup
from ..inference.step import ServePlans, pipeline_fill_rounds, prefill_round_chunks
from ..model.arch import Arch, Matrix
from ..model.counts import count
from ..parallel.divisors import divisors
from ..parallel.sharding import layer_params
from ..inference.setup import BYTES
from ..perf.collectives import all_gather_time
from ..perf.compute import attn_bwd_ratio
from ..perf.step import MOE_HOST_SYNC_FORWARD_SHARE
from .. import estimate
from ..estimate import PLAN_FIELDS, context
from ..spec import OptimizerSpec, PlanSpec, Run, TrainingSpec
from .loops import moe_layers_per_stage, train_loop_cost, train_loop_s

_CACHE: dict[tuple, object] = {}

#: Fraction of a rollout step's communication hidden behind compute: none. NeMo RL generates with vLLM, which runs
#: each engine step as one batch; dual-batch overlap (two micro-batches, one communicating while the other computes)
#: is off unless ``--enable-dbo`` is given (vLLM v0.17.1, the version NeMo RL v0.6.0 pins: ``vllm/config/parallel.py``
#: ``ParallelConfig.enable_dbo = False``), and NeMo RL v0.6.0 sets no such option (``nemo_rl/models/generation/vllm/``
#: passes ``vllm_kwargs`` from the recipe; no recipe sets it). vLLM's other overlap, sequence parallelism with
#: GEMM + collective fusion (async TP), is on at the default -O2 only for dense models (``vllm/config/vllm.py``
#: ``OPTIMIZATION_LEVEL_02``: ``enable_sp: IS_DENSE``, ``fuse_gemm_comms: IS_DENSE``), not for the MoE students of
#: validation/rl. So the serving model's two-micro-batch ``comm_overlap`` (SGLang's two-batch overlap) does not
#: apply to rollouts.
ROLLOUT_COMM_OVERLAP = 0.0


def rollout_setup(arch: Arch, system: System, precision: str, host_overlap: bool = True, numa_bound: bool = True):
    """The serving setup of a NeMo RL rollout server: the inference calibration with no communication overlap
    (:data:`ROLLOUT_COMM_OVERLAP`), BF16 KV cache (vLLM ``kv_cache_dtype: auto`` in grpo_math_1B.yaml) and the
    engine's host terms per step as its host loop pays them (``student.rollout_host_overlap`` /
    ``rollout_numa_bound``: :func:`trainsim.inference.calib.engine_host_calib`)."""
    calib = engine_host_calib(default_calib().with_(comm_overlap=ROLLOUT_COMM_OVERLAP), system.chip,
                              host_overlap=host_overlap, numa_bound=numa_bound)
    return setup_for(arch, system, precision, "bf16", calib=calib)


def _key(*parts) -> tuple:
    out = []
    for p in parts:
        if isinstance(p, Arch):
            out.append(("arch", p.name, p.hidden, p.vocab, p.n_layers, id(p)))
        elif isinstance(p, System):
            out.append(("system", p.id, p.chip.id, p.chip.hbm_bw, p.chip.hbm_bytes, tuple(p.chip.peak_flops.items()),
                        tuple((lv.size, lv.bw, lv.latency_s) for lv in p.levels)))
        else:
            out.append(p)
    return tuple(out)


def _cached(key, fn):
    if key not in _CACHE:
        _CACHE[key] = fn()
    return _CACHE[key]


@dataclass(frozen=True)
class RolloutTime:
    """Rollout generation on one cluster: prefill and decode seconds, tokens/s per chip of each, the serving
    plan, batch per chip, time per output token (s) and a rollout server's decode-step cost ``a + b n`` (s)."""

    prefill_s: float
    decode_s: float
    decode_tokens_per_s_per_chip: float
    prefill_tokens_per_s_per_chip: float
    plan: dict
    batch_per_chip: float
    tpot_s: float
    step_fixed_s: float = 0.0      # a of a decode step's a + b n (:func:`decode_step_cost`)
    step_per_seq_s: float = 0.0    # b
    idle_chips: int = 0            # chips without a sequence (:func:`idle_rollout_chips`)
    #: the dense GEMM rate the rollout numerics run at and why (``ServeSetup.gemm_peak`` / ``peak_note``, the
    #: ``gemm_peak_flops`` / ``gemm_peak_basis`` of ``trainsim infer``): FP4 on a chip without FP4 runs at its FP8
    #: or BF16 rate
    gemm_peak_flops: float = 0.0
    gemm_peak_basis: str = ""

    @property
    def total_s(self) -> float:
        """Prefill + decode seconds."""
        return self.prefill_s + self.decode_s


@dataclass(frozen=True)
class RolloutServers:
    """Every candidate rollout server (one serving plan each) with what it takes to generate one RL step's samples
    on the cluster's servers of that plan: numpy arrays, one value per plan (:func:`rollout_servers`)."""

    plans: ServePlans
    batch: np.ndarray              # sequences one server runs at once (:func:`server_batch`, idle replicas filled)
    tpot_s: np.ndarray             # decode step at ``batch``
    batch0: np.ndarray             # its smallest batch: one sequence per data-parallel micro-batch, pp x dp
    tpot0_s: np.ndarray            # decode step at ``batch0``
    decode_tokens_per_s_per_chip: np.ndarray    # the sequences it is given (idle replicas count) / step / chips
    prefill_tokens_per_s_per_chip: np.ndarray   # NaN where no prefill point of the plan fits
    decode_s: np.ndarray           # :func:`generation_s` of a server's share of the step's samples
    prefill_s: np.ndarray          # the step's prompts at the plan's best prefill rate on every chip
    ok: np.ndarray                 # the plan fits (weights + KV of ``batch``) and fills its replicas

    @property
    def total_s(self) -> np.ndarray:
        """Prefill + decode seconds per plan."""
        return self.prefill_s + self.decode_s

    @property
    def best(self) -> int | None:
        """The server that finishes the step's generation first: the feasible plan of least prefill + decode
        seconds (a plan with no feasible prefill point after any that has one; the first where they tie); None
        where no plan fits."""
        if not np.any(self.ok):
            return None
        t = np.where(self.ok, np.nan_to_num(self.total_s, nan=np.inf), np.inf)
        if not np.any(np.isfinite(t)):
            t = np.where(self.ok, self.decode_s, np.inf)
        return int(np.argmin(t))


def rollout_servers(s: ServeSetup, plans: ServePlans, chips: int, sequences: float, prompts: float, prompt_len: int,
                    rollout_len: float, max_len: float, hbm_fraction: float = 1.0, continuous: bool = False,
                    max_seqs: int | None = None, age: int = 1) -> RolloutServers:
    """Every plan in ``plans`` as the rollout server of a step of ``sequences`` samples (mean ``rollout_len``
    tokens, longest ``max_len``) from ``prompts`` prompts of ``prompt_len`` on ``chips``, timed the way the step
    runs it (vectorised over the plans, no loop per plan):

    * each server is given ``age x sequences / chips x`` its chips and runs :func:`server_batch` of them at once
      (what its KV pool at :func:`held_kv_len` and ``max_seqs`` allow, :func:`kv_batch_cap`), at least its ``pp x
      dp`` replicas' one each where the step has that many (:func:`~trainsim.inference.search.idle_share_batch`);
      decode timed at the mean KV length ``prompt_len + rollout_len / 2``;
    * its decode-step cost ``a + b n`` from the step at that batch and at ``pp x dp`` (:func:`decode_step_cost`),
      and the seconds its share of the samples takes, :func:`generation_s` (the tail: ``max_len``);
    * prefill: the step's prompts on every chip at the plan's best rate over the prefill grid (the same server
      prefills and decodes), at most ``max_seqs`` prompts a round (each is a running request,
      :func:`~trainsim.inference.search.running_cap`).

    :func:`rollout_time` takes :attr:`RolloutServers.best`, the plan of least prefill + decode seconds. The most
    decode tokens/s per chip at full batch is not that plan where the samples have a tail: the last ``max_len -
    rollout_len`` steps run almost alone at the fixed cost ``a``, which a server with the better full-batch rate
    may pay more of. Example (qa19): Qwen3-30B-A3B, 2,048 samples of 16,384 tokens, tail 3, on 64 H100: the best
    full-batch rate is an 8-chip server (tp 2, ep 8) at 603.5 s, and with 25% more scale-out bandwidth a 64-chip
    one (tp 2, ep 64) at 605.8 s; the least time is an 8-chip tp 4, ep 8 server at 582.0 s on both."""
    age = max(int(age), 1) if continuous else 1
    ctx = prompt_len + rollout_len / 2.0
    mem_ctx = held_kv_len(prompt_len, rollout_len, continuous)
    want = age * float(sequences) / chips * plans.chips
    one = evaluate_decode(s, plans, ctx, batch_per_instance=1.0, memory_context=mem_ctx, hbm_fraction=hbm_fraction)
    cap = kv_batch_cap(s.chip.hbm_bytes * hbm_fraction, one.memory["weights"], one.memory["buffers"],
                       one.memory["kv_cache"])
    b_star = server_batch(want, cap, max_seqs)
    b0 = plans.pp * plans.dp
    batch = idle_share_batch(b_star, b0, age * float(sequences))
    ev = evaluate_decode(s, plans, ctx, batch_per_instance=batch, memory_context=mem_ctx, hbm_fraction=hbm_fraction)
    tpot0 = evaluate_decode(s, plans, ctx, batch_per_instance=b0).latency_s
    tpot0 = np.where(batch > b0 * (1 + 1e-9), tpot0, ev.latency_s)
    pre = evaluate_prefill(s, plans, prompt_len, max_batch_per_instance=max_seqs)   # a round's prompts run too
    n_p = plans.chips.size
    pre_tps = np.max(np.where(pre.ok, pre.tokens_per_s_per_chip, -np.inf).reshape(n_p, -1), axis=1)
    pre_tps = np.where(np.isfinite(pre_tps), pre_tps, np.nan)
    per_server = float(sequences) / np.maximum(chips / plans.chips, 1.0)
    decode_s = generation_s(per_server, batch, ev.latency_s, b0, tpot0, rollout_len, max_len,
                            overlapped=continuous, age=age)
    with np.errstate(divide="ignore", invalid="ignore"):
        prefill_s = prompts * prompt_len / (pre_tps * chips)
    return RolloutServers(plans, batch, ev.latency_s, b0, tpot0, b_star / ev.latency_s / plans.chips, pre_tps,
                          np.asarray(decode_s, dtype=np.float64), prefill_s, ev.ok)


def rollout_time(arch: Arch, system: System, chips: int, sequences: float, prompts: float, prompt_len: int,
                 rollout_len: int, precision: str = "bf16", tail_factor: float = 1.0, instance_chips: int | None = None,
                 hbm_fraction: float = 1.0, continuous: bool = False, max_seqs: int | None = None,
                 age: int = 1, host_overlap: bool = True, numa_bound: bool = True) -> RolloutTime:
    """Generation of ``sequences`` samples of ``rollout_len`` tokens (from ``prompts`` prompts) on ``chips``.

    ``instance_chips``: chips per rollout server (vLLM tensor parallel across them, experts sharded the same way,
    as NeMo RL's generation ``[TP, PP]``): the server's layout as stated, nothing chosen; absent: every serving
    plan up to 512 chips is a candidate and the one that finishes the step's generation first is taken
    (:func:`rollout_servers`). ``hbm_fraction``: HBM share the server may use.
    ``continuous``: sequences enter as others finish (one-step-off generation), so the KV cache caps the batch at
    :func:`held_kv_len` per sequence instead of the final length, and one step's batch overlaps the next
    (:func:`overlapped_decode_steps`); ``tail_factor`` 1 there: partial rollouts, no sample outlasts its step.
    ``max_seqs``: the server's limit on running sequences (vLLM ``max_num_seqs``, :func:`server_batch`); absent:
    none besides the KV cache. ``age``: with ``continuous``, the steps of samples in flight (NeMo RL
    ``max_trajectory_age_steps``): a server holds up to ``age x`` its share of one step's samples, runs as many of
    them as its limits allow, and each step's period keeps ``max_len / age`` decode steps of the longest sample
    (:func:`overlapped_decode_steps`). ``host_overlap`` / ``numa_bound``: the rollout engine's host loop
    (:func:`rollout_setup`)."""
    age = max(int(age), 1) if continuous else 1
    max_len = rollout_len * tail_factor

    def compute():
        s = rollout_setup(arch, system, precision, host_overlap, numa_bound)
        max_inst = min(chips, 512)
        if instance_chips:
            check_tp(arch, instance_chips, "student.rollout_tp")
            sizes, fixed = [instance_chips], {"tp": instance_chips, "pp": 1, "ep": 1}
        else:
            sizes, fixed = instance_sizes(max_inst, system.scale_up_size), None

        def servers(sizes, fixed, frac):
            return rollout_servers(s, plan_grid(s, sizes, fixed), chips, sequences, prompts, prompt_len,
                                   rollout_len, max_len, frac, continuous, max_seqs, age)

        sv = servers(sizes, fixed, hbm_fraction)
        i = sv.best
        if i is None:   # nothing fits: no answer (exit 1), with the server size that would where one does
            where = f"a server of {instance_chips} chips (student.rollout_tp)" if instance_chips else f"{max_inst} chips"
            hint = ""
            if instance_chips:
                alt = servers(instance_sizes(max_inst, system.scale_up_size), None, hbm_fraction)
                if alt.best is not None:
                    hint = (f"; nearest alternatives: student.rollout_tp: {alt.plans.row(alt.best)['chips']} (the "
                            "fastest server that fits; leave rollout_tp out to search it)")
            if not hint and hbm_fraction < 1 and servers(sizes, fixed, 1.0).best is not None:   # the whole HBM
                hint = "; nearest alternatives: student.rollout_memory_fraction: 1 (the whole HBM)"
            raise NoPlanError(f"student {arch.name} cannot decode on {system.id}: no serving plan fits in {where}"
                              + (f" at rollout_memory_fraction {hbm_fraction:g}" if hbm_fraction < 1 else "")
                              + hint, field="student")
        return (float(sv.decode_tokens_per_s_per_chip[i]), float(sv.prefill_tokens_per_s_per_chip[i]),
                sv.plans.row(i), float(sv.batch[i]), float(sv.tpot_s[i]), float(sv.batch0[i]), float(sv.tpot0_s[i]),
                float(s.gemm_peak), s.peak_note())

    dec_tps, pre_tps, plan, batch, tpot, b0, tpot0, peak, basis = _cached(
        _key("rollout", arch, system, chips, sequences, prompts, prompt_len, rollout_len, precision, tail_factor,
             instance_chips, hbm_fraction, continuous, max_seqs, age, host_overlap, numa_bound), compute)
    bpc = batch / plan["chips"]
    per_instance = sequences / max(chips / plan["chips"], 1.0)
    # the chosen server's times by the same formulas that chose it (rollout_servers)
    decode_s = float(generation_s(per_instance, batch, tpot, b0, tpot0, rollout_len, max_len,
                                  overlapped=continuous, age=age))
    prefill_s = prompts * prompt_len / (pre_tps * chips)
    a, b = decode_step_cost(batch, tpot, b0, tpot0)
    return RolloutTime(prefill_s, decode_s, dec_tps, pre_tps, plan, bpc, tpot, float(a), float(b),
                       idle_rollout_chips(chips, plan["chips"], age * sequences, batch), peak, basis)


def busy_instances(chips, instance_chips, sequences, batch):
    """Instances of ``instance_chips`` chips that have work when ``sequences`` are dealt ``batch`` to an instance
    on ``chips`` chips: ``min(chips / instance_chips, ceil(sequences / batch))``, vectorised over plans. A sequence
    is not split across instances, so fewer sequences than instances leave the rest idle; a cluster whose chips do
    not divide into instances is counted as fractional instances. The one rule of :func:`idle_rollout_chips`
    (rollout servers, teacher instances) and :func:`prefill_job` (a fixed prefill job)."""
    servers = np.asarray(chips, dtype=np.float64) / np.maximum(np.asarray(instance_chips, dtype=np.float64), 1.0)
    return np.minimum(servers, np.ceil(np.asarray(sequences, dtype=np.float64)
                                       / np.maximum(np.asarray(batch, dtype=np.float64), 1e-9) - 1e-9))


def idle_rollout_chips(chips: int, instance_chips: int, sequences: float, batch: float) -> int:
    """Chips with no sequence to generate (or, for a teacher, to score: :func:`scoring_time`, ``batch`` 1):
    ``chips - instance_chips x min(chips / instance_chips, ceil(sequences / batch))`` rollout servers of
    ``instance_chips`` at ``batch`` sequences each: a sequence is not split across servers. Fewer samples
    than servers leave servers idle (:func:`~trainsim.inference.search.idle_share_batch`); a cluster whose chips
    do not divide into servers is timed as fractional servers, so its remainder is not counted idle. Example: 4
    samples, 64 chips, 1-chip servers at batch 1: 4 busy, 60 idle; 2,048 samples over 8 servers at 256: 0."""
    busy = float(busy_instances(chips, instance_chips, sequences, batch))
    return max(int(round(chips - busy * instance_chips)), 0)


def server_batch(want: float, kv_cap: float, max_seqs: int | None = None) -> float:
    """Sequences one rollout server runs at once: those it is given, at most what its KV pool holds
    (:func:`kv_batch_cap`) and at most its scheduler's ``max_num_seqs`` (vLLM v1 ``Scheduler.schedule`` admits a
    waiting request only while ``len(self.running) < max_num_seqs``).

    The limit is the stack's default where a recipe leaves it out. vLLM v0.17.1 (NeMo RL v0.6.0's pin) fills an
    unset ``max_num_seqs`` from ``EngineArgs.get_batch_defaults`` by usage context: ``LLM(...)`` declares
    ``UsageContext.LLM_CLASS`` (1,024 on GPUs of 70 GiB or more other than A100, else 256), but
    ``AsyncLLM.from_engine_args`` defaults to ``UsageContext.ENGINE_CONTEXT``, which is not in that table, so it
    falls through to ``SchedulerConfig.DEFAULT_MAX_NUM_SEQS`` = 128 (vllm-project/vllm pull request 37393,
    2026-03-18: "silently fell through to SchedulerConfig.DEFAULT_MAX_NUM_SEQS=128"; NVIDIA-NeMo/RL pull request
    4221: "The async generation worker takes the ENGINE_CONTEXT path"). NeMo RL v0.6.0 builds its
    ``async_engine: true`` workers with ``AsyncLLM.from_engine_args(AsyncEngineArgs(**llm_kwargs))`` and no
    usage context (``nemo_rl/models/generation/vllm/vllm_worker_async.py``), its synchronous ones with ``LLM``.
    Example: 256 samples per server, KV room for 300, AsyncLLM default -> 128."""
    b = np.minimum(want, kv_cap)
    return np.minimum(b, float(max_seqs)) if max_seqs else b


def held_kv_len(prompt_len: float, rollout_len: float, continuous: bool) -> float:
    """Tokens of KV cache one running sequence holds when the server's KV pool is full.

    Paged KV blocks are allocated as a sequence grows and freed when it finishes (Kwon et al., SOSP'23,
    PagedAttention). A wave that starts together (synchronous generation) fills the pool as its sequences near
    their end: ``prompt_len + rollout_len``. When sequences enter as others finish (continuous generation: NeMo RL's
    one-step-off collector keeps submitting prompts while the trainer works, ``AsyncTrajectoryCollector``,
    ``nemo_rl/algorithms/async_utils.py`` tag v0.6.0), the running ones sit at every point of their lives, so each
    holds on average its prompt plus half its response: ``prompt_len + rollout_len / 2`` (equal lengths; a spread
    of lengths raises it by ``1 + CV^2``: longer samples run longer, so more of them are in flight).
    Example: prompt 200, response 5,505: 5,705 tokens in a wave, 2,952.5 continuous."""
    return prompt_len + (rollout_len / 2.0 if continuous else rollout_len)


def kv_batch_cap(usable_bytes: float, weights_bytes: float, buffer_bytes: float, kv_bytes_per_seq: float) -> float:
    """Sequences a rollout server can hold at once: what its HBM share leaves after the weights and buffers,
    over one sequence's KV cache at its final length, ``(hbm x gpu_memory_utilization - weights - buffers) /
    kv_per_sequence`` (vLLM sizes its KV pool as ``gpu_memory_utilization x total - weights - peak activations``
    and admits requests while free blocks remain: Kwon et al., SOSP'23; vllm/worker/worker.py
    ``determine_num_available_blocks``). Continuous, not a point of the serving search's batch grid."""
    free = np.maximum(usable_bytes - np.asarray(weights_bytes, dtype=np.float64) - buffer_bytes, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(kv_bytes_per_seq) > 0, free / kv_bytes_per_seq, np.inf)


def generation_s(sequences, batch, tpot_s, batch0, tpot0_s, mean_len, max_len, overlapped: bool = False,
                 age: int = 1) -> float:
    """Seconds for one rollout server to generate ``sequences`` samples of mean length ``mean_len`` (longest
    ``max_len``) with continuous batching of up to ``batch`` sequences.

    A decode step costs ``a + b n`` for ``n`` running sequences (weights and launches once per step, KV reads and
    per-token compute per sequence), ``b = (tpot(batch) - tpot(batch0)) / (batch - batch0)``, ``a = tpot(batch0) -
    b batch0``. Busy at ``batch`` until the queue drains, the server produces ``sequences x mean_len`` tokens at
    ``batch / tpot(batch)`` tokens/s; the step then waits for the longest sample, whose last ``max_len - mean_len``
    tokens run almost alone (cost ``a`` each). With every sequence in one wave this is ``a max_len + b sequences
    mean_len``: the fixed cost paid for the longest sample, the per-sequence cost for the tokens actually generated
    (Orca, OSDI'22 iteration-level scheduling; vLLM continuous batching), at least the longest sample's own
    ``max_len`` (a server's share of fewer than ``max_len / mean_len`` samples still runs one whole longest sample,
    ``(a + b) max_len`` = ``tpot(batch0) max_len`` at ``batch0`` = 1). No step costs less than one at the
    server's smallest batch ``batch0`` (``pp x dp``: one sequence per pipeline micro-batch and replica): with ``n <
    batch0`` running, the busy replica's stages still take ``tpot(batch0)`` per token (``b`` is the instance's
    per-sequence cost, a replica's over ``dp``; and with experts across data-parallel ranks the idle ranks run
    dummy forward passes in step with it: vLLM docs/serving/data_parallel_deployment.md, "expert layers across all
    ranks are required to synchronize during every forward pass, even when there are fewer requests to be
    processed than DP ranks"), so such a step is charged ``a + b batch0`` -- the queue's steps where ``n`` is
    below it, and the synchronous tail's, where about one sequence runs (``a + b`` extrapolated the line below ``batch0``: on 32 H100 a 2-stage server's tail at 4.13 ms
    a step where its step is 4.23 ms, so 7 samples finished sooner than 4, qa18's property). Example (hand): one
    wave of 64 samples of mean 1,000, longest 3,000, a = 20 ms, b = 0.1 ms, batch0 = 2: 66.4 s + 0.1 ms x 2,000
    tail steps x 1 = 66.6 s.

    ``overlapped``: the time per step of NeMo RL's one-step-off generation, where each step's batch overlaps the
    previous one's (:func:`overlapped_decode_steps`): the same per-sequence cost for every token, the fixed cost
    for ``max(sequences x mean_len / batch, max_len / age)`` decode steps instead of the queue's steps plus the
    tail, with up to ``age x sequences`` samples in flight (``age``: steps generation may run ahead,
    NeMo RL ``max_trajectory_age_steps``), so ``min(age x sequences, batch)`` running.
    Example (hand): 64 samples of mean 3,000, longest 4,000, batch 128, a = 10 ms, b = 0.1 ms: one-step-off,
    64 run, max(3,000, 4,000) = 4,000 steps: 40 s + 0.1 ms x 192,000 = 59.2 s; eight steps ahead, 128 run,
    max(1,500, 500) = 1,500 steps: 15 s + 19.2 s = 34.2 s.
    """
    age = max(int(age), 1) if overlapped else 1
    sequences = np.asarray(sequences, dtype=np.float64)
    n = np.maximum(np.minimum(age * sequences, batch), 1e-9)
    a, b = decode_step_cost(batch, tpot_s, batch0, tpot0_s)
    queue_steps = sequences * mean_len / n
    if overlapped:
        steps = overlapped_decode_steps(queue_steps, max_len, age)
        below = np.maximum(batch0 - n, 0.0) * steps
    else:
        tail_steps = np.maximum(max_len - mean_len, 0.0)
        steps = queue_steps + tail_steps
        below = np.maximum(batch0 - n, 0.0) * queue_steps + np.maximum(batch0 - 1.0, 0.0) * tail_steps
    # the tokens a server generates, at least the longest sample's own: a server's share of fewer than
    # max_len / mean_len samples (few samples spread over many servers, timed as fractional ones) still runs one
    # whole longest sample, at a + b per step (qa18: 7 samples on four 8-chip servers took 0.4% less than 4);
    # and a step below the smallest batch costs what one at it does (``below``: sequences short of ``batch0``)
    return a * steps + b * (np.maximum(sequences * mean_len, max_len) + below)


def decode_step_cost(batch, tpot_s, batch0, tpot0_s) -> tuple[float, float]:
    """``(a, b)`` of a decode step costing ``a + b n`` seconds with ``n`` running sequences, through the server's
    time per step at ``batch`` and at its smallest batch ``batch0``: ``b = (tpot(batch) - tpot(batch0)) / (batch -
    batch0)``, ``a = tpot(batch) - b batch`` (:func:`generation_s`). Example: 26.4 ms at 64, 20.1 ms at 1: b = 0.1
    ms, a = 20 ms."""
    batch, batch0, tpot_s = (np.asarray(x, dtype=np.float64) for x in (batch, batch0, tpot_s))
    more = batch > batch0 * (1 + 1e-9)
    b = np.where(more, (tpot_s - tpot0_s) / np.where(more, batch - batch0, 1.0), 0.0)
    return np.maximum(tpot_s - b * batch, 0.0), b


def overlapped_decode_steps(queue_steps: float, max_len: float, age: int = 1) -> float:
    """Decode steps a rollout server runs per RL step under NeMo RL v0.6.0's one-step-off collector (no partial
    rollouts): ``max(queue_steps, max_len)``, where ``queue_steps = sequences x mean_len / batch`` are the steps its
    share of the batch needs at its running limit and ``max_len`` the longest sample.

    ``AsyncTrajectoryCollector`` (``nemo_rl/algorithms/async_utils.py``, tag v0.6.0, commit 5fb58893) keeps at most
    ``num_prompts_per_step x max_trajectory_age_steps`` prompt groups in flight (``_inflight_sema``: one step's
    batch at ``max_trajectory_age_steps`` 1), and from weight version v generates only for target v + 1
    (``_calculate_target_weights``), so the groups of step j + 1 start one by one as those of step j finish, the
    last of them when step j's last group is done -- which is when step j's training can start
    (``ReplayBuffer.sample`` returns nothing until every group of its target is in; a group is pushed when all its
    samples are done). Step j + 1 then waits for that last group, whose longest sample takes ``max_len`` decode
    steps, so each period holds at least ``max_len`` steps; the server runs all the period's tokens, at most
    ``batch`` at a time, so at least ``queue_steps``. The earlier groups of step j + 1 run beside step j's last
    ones, so the tail of one step overlaps the next and only the larger of the two counts (the synchronous queue
    adds them: :func:`generation_s`). Assumes the last-started groups reach the step's longest sample (the spec's
    ``tail_factor``). Example: 256 samples of mean 1,000 tokens through a batch of 64, longest 1,500: 4,000 steps
    (a queue and its tail: 4,500); 64 samples of mean 1,000, longest 3,000: 3,000 steps, as in one wave.

    ``age`` > 1 (``max_trajectory_age_steps``): the semaphore admits ``age x num_prompts_per_step`` groups and from
    weight version v the collector generates for targets v + 1 ... v + age, so the groups of up to ``age`` steps
    overlap. A group holds its slot until its longest sample is done (~``max_len`` steps for the step's last
    groups, as above); by Little's law, ``age x prompts`` slots held ``max_len`` steps each let ``prompts`` groups
    finish per period only if the period holds at least ``max_len / age`` steps: ``max(queue_steps, max_len /
    age)``. Example: the same 64 samples of mean 1,000, longest 3,000, eight steps ahead: max(1,000, 375) =
    1,000 steps: the tail is hidden and the queue decides. Checked against an event-by-event run of the collector
    with ``age`` > 1 (:func:`.protocol.simulate_one_step_off`, tests/test_rl_async.py): equal where the queue
    decides; where ``max_len / age`` decides, an upper bound within 5% (3.2 s against the run's 3.06 s in the
    test's case); on the eight-step-off Qwen3-30B point (queue-bound,
    scripts/rl_async_protocol.py) the run's period is -1.4% to +2.2% of the closed form's."""
    return np.maximum(queue_steps, max_len / max(int(age), 1))


def prefill_job(s: ServeSetup, plans: ServePlans, chips: int, prompts: float, prompt_len: int, *,
                all_logits: bool = False, max_seqs: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds, tokens/s per chip, busy chips) per plan of a fixed prefill job -- ``prompts`` prompts of
    ``prompt_len`` tokens on ``chips`` chips split into instances of each plan -- vectorised over the plans.

    A prompt is not split across instances, nor across an instance's ``r = pp x dp`` data-parallel replicas and
    pipeline micro-batches (each replica schedules its own requests; the engine's round splits its prompts
    evenly over them, :func:`~trainsim.inference.step.step_time`), so the prompts fill ``busy = min(chips / c,
    max(ceil(prompts / r), 1))`` instances of ``c`` chips (:func:`busy_instances`), ``m = prompts / busy`` each
    (fractional instances as :func:`idle_rollout_chips` has them; the rest idle, as
    :func:`~trainsim.inference.search.idle_share_batch`
    spreads a fixed decode job), and a plan with ``m < r`` -- replicas left without a prompt -- is not a
    candidate. An instance runs its prompts in rounds of ``b <= m`` (a point of the prefill grid whose round holds
    no more prompts than the instance has, or a round of exactly ``m``: one more candidate per plan; at most
    ``max_seqs`` a round, :func:`~trainsim.inference.search.running_cap`), and the job takes ``m / b`` rounds plus
    one pipeline fill and drain: ``round x (m / b + (pp - 1) / (pp x c))`` -- a round of ``c`` budget steps is
    ``c x pp`` stage slots of the pipeline in its steady state, and the job's first chunk crosses ``pp - 1``
    stages before the last stage starts (:func:`~trainsim.inference.step.pipeline_fill_rounds`; qa32b: the fill
    was ``round x (pp - 1) / pp``, ``c`` times too long for a round the stack's token budget cuts into ``c``
    steps).
    Each plan's time is its fastest feasible round; ``inf`` (tokens/s NaN) where none fits. Every busy instance
    works in parallel, so that is the job's time. Example: 8 prompts of 17,408 tokens (Qwen3-30B-A3B) on 256 H800,
    8-chip tp 4 x pp 2 instances (r = 2): 4 of the 32 busy with two prompts each, ``m = 2``; the engine's round of
    both is 0.221 s in 3 steps of vLLM's 8,192-token budget (17,408 tokens a micro-batch): 0.221 x (1 + 1/6) =
    0.258 s, the plan's time; rounds of chunks of each prompt (b = 0.47: 1,024 tokens per chip, one step, 0.055 s)
    take 0.055 x (2 / 0.47 + 1/2) = 0.261 s (tests/test_posttrain_phase_plan.py). With prompts enough for every replica of every instance and ``pp = 1``
    it is ``prompts x prompt_len / (tokens/s per chip x chips)``, the all-chips formula."""
    n_p = plans.chips.size
    r = plans.pp * plans.dp
    busy = np.maximum(busy_instances(chips, plans.chips, prompts, r), np.minimum(chips / plans.chips, 1.0))
    m = prompts / busy
    grid = evaluate_prefill(s, plans, prompt_len, all_logits=all_logits, max_batch_per_instance=max_seqs)
    whole = evaluate_prefill(s, plans, prompt_len, all_logits=all_logits,
                             prompts_per_instance=np.minimum(m, float(max_seqs)) if max_seqs else m)

    def cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.broadcast_to(a, grid.batch.shape).reshape(n_p, -1),
                               np.broadcast_to(b, whole.batch.shape).reshape(n_p, 1)], axis=1)

    b = cols(grid.batch, whole.batch)
    rnd = cols(grid.round_s, whole.round_s)
    tps = cols(grid.tokens_per_s_per_chip, whole.tokens_per_s_per_chip)
    ok = cols(grid.ok, whole.ok) & (b <= m[:, None] * (1 + 1e-9)) & (m >= r * (1 - 1e-9))[:, None]
    col = ServePlans(*(a[:, None] for a in (plans.chips, plans.tp, plans.pp, plans.ep)))   # one plan per row
    chunks = prefill_round_chunks(s, col, b, prompt_len)
    with np.errstate(divide="ignore", invalid="ignore"):
        job = np.where(ok, rnd * (m[:, None] / b + pipeline_fill_rounds(col.pp, chunks)), np.inf)
    j = np.argmin(job, axis=1)
    rows = np.arange(n_p)
    seconds = job[rows, j]
    return seconds, np.where(np.isfinite(seconds), tps[rows, j], np.nan), busy * plans.chips


def fastest_plan(seconds: np.ndarray, busy_chips: np.ndarray, tokens_per_s_per_chip: np.ndarray) -> int | None:
    """Index of the plan that finishes a fixed job first (:func:`prefill_job`): the least ``seconds``; among those
    within a relative 1e-9 of it the fewest busy chips, then the most tokens/s per chip, then the first (the
    smallest instance: :func:`~trainsim.inference.search.plan_grid` walks the sizes upwards). None where no plan
    fits (every time infinite)."""
    if seconds.size == 0 or not np.any(np.isfinite(seconds)):
        return None
    near = seconds <= np.min(seconds) * (1 + 1e-9)
    few = near & (busy_chips <= np.min(np.where(near, busy_chips, np.inf)) * (1 + 1e-9))
    score = np.where(few, np.nan_to_num(tokens_per_s_per_chip, nan=-np.inf), -np.inf)
    return int(np.argmax(score))


def scoring_time(arch: Arch, system: System, chips: int, sequences: float, seq_len: int,
                 precision: str = "bf16") -> tuple[float, float, dict, dict]:
    """Teacher prefill over ``sequences`` x ``seq_len`` tokens with log-probs of every token: (s, tok/s/chip, plan,
    the GEMM rate it runs at: ``{gemm_peak_flops, gemm_peak_basis, idle_chips}``, the first two as
    :class:`RolloutTime` states them).

    The phase is one fixed job per step, so of every prefill plan up to 512 chips per instance the one that
    finishes the step's sequences first is taken (:func:`prefill_job`, :func:`fastest_plan`), not the one of most
    tokens/s per chip: a sequence is not split across teacher instances, so with fewer sequences than instances
    only ``ceil(sequences)`` instances work (``idle_chips``, :func:`idle_rollout_chips` with one sequence per
    instance) and a larger instance (more tp / ep / pp per sequence) finishes sooner at a lower rate per chip.
    Example (phys28, QA's report): 8 sequences of 17,408 tokens on 256 H800: the plan of most tokens/s per chip is
    one chip (37,557 tok/s/chip), 8 instances busy, 17,408 / 37,557 = 0.46 s with 248 chips idle; 32-chip
    instances keep all 256 chips busy and take a fraction of that (tests/test_posttrain_phase_plan.py)."""
    if sequences <= 0:
        return 0.0, float("nan"), {}, {"idle_chips": 0}

    def compute():
        s = setup_for(arch, system, precision, "bf16")
        max_inst = min(chips, 512)
        plans = plan_grid(s, instance_sizes(max_inst, system.scale_up_size))
        sec, tps, busy = prefill_job(s, plans, chips, sequences, seq_len, all_logits=True)
        i = fastest_plan(sec, busy, tps)
        if i is None:   # nothing fits: no answer (exit 1), with the teacher cluster size that would
            more = next((n for n in (2 * chips, 4 * chips, 8 * chips, 16 * chips) if n <= 512
                         and best_prefill(s, seq_len, max_chips=n, all_logits=True).best is not None), None)
            raise NoPlanError(f"teacher {arch.name} cannot prefill on {system.id}: no plan fits in "
                              f"{max_inst} chips" + (f"; nearest alternatives: the teacher's cluster with "
                                                     f"{more} chips" if more else ""), field="teachers")
        return (float(sec[i]), float(tps[i]), plans.row(i),
                {"gemm_peak_flops": float(s.gemm_peak), "gemm_peak_basis": s.peak_note(),
                 "idle_chips": max(int(round(chips - busy[i])), 0)})

    sec, tps, plan, rate = _cached(_key("score", arch, system, chips, sequences, seq_len, precision), compute)
    return sec, tps, plan, rate


@dataclass(frozen=True)
class TrainTime:
    """Training on the rollouts: step, optimizer-update and forward-only seconds, tokens/s per chip, MFU and
    the training plan."""

    step_s: float
    update_s: float
    forward_s: float
    tokens_per_s_per_chip: float
    mfu: float
    plan: dict
    #: bytes per chip of the trainer's weights and optimizer state (the training engine's memory model)
    weights_bytes_per_chip: float = 0.0
    optimizer_bytes_per_chip: float = 0.0
    #: bytes/s per chip, one direction, that host-memory copies reach (the engine's host link)
    host_link_bw: float = 0.0
    #: seconds for every trainer chip to materialise the full weights in Hugging Face layout (the refit's export,
    #: colocated or not: :func:`megatron_export_s`)
    export_s: float = 0.0
    #: the training engine's memory per chip of the update's plan (bytes) and whether it fits in the chip's HBM
    memory_per_chip_bytes: float = 0.0
    fits: bool = True
    #: seconds of ``update_s`` / ``forward_s`` that are the RL framework's training-loop cost
    #: (:func:`.loops.train_loop_s`, ``train_loop`` of :func:`train_time`); 0 for the engine's own loop
    loop_update_s: float = 0.0
    loop_forward_s: float = 0.0


def packed_sequences(sequences: int, seq_len: int, pack_tokens: int | None, pad_multiple: int = 1) -> tuple[int, int]:
    """(micro-batch length, micro-batches) of ``sequences`` samples of mean length ``seq_len`` packed into
    micro-batches of at most ``pack_tokens`` tokens.

    NeMo RL pads every sequence to a multiple of ``pad_multiple`` (``policy.make_sequence_length_divisible_by``,
    passed as ``sequence_length_pad_multiple`` in ``nemo_rl/models/policy/lm_policy.py``, tag v0.6.0; the
    ``sequence_length_round`` of 64 applies to dynamic batching only) and packs them first-fit-decreasing into bins
    of ``train_mb_tokens`` (docs/design-docs/sequence-packing-and-dynamic-batching.md); taken at the mean length,
    ``k = floor(pack_tokens / padded)`` sequences share a micro-batch: ``(k x padded, ceil(sequences / k))``,
    ``k >= 1`` (a sequence longer than half the budget travels alone). Example: 512 samples of 697 tokens, budget
    1,536, no padding: k = 2 -> 256 micro-batches of 1,394 tokens."""
    pad = max(int(pad_multiple), 1)
    padded = -(-int(seq_len) // pad) * pad
    k = max(int(pack_tokens) // padded, 1) if pack_tokens else 1
    return padded * k, max(-(-int(sequences) // k), 1)


def bins_for_shards(bins: int, shards: int) -> int:
    """Packed micro-batches of one global batch once NeMo RL spreads them over ``shards`` data-parallel ranks: the
    packer's bin count rounded up to a multiple of the ranks, ``ceil(bins / shards) x shards``.

    ``BatchedDataDict.shard_by_batch_size(dp, batch_size=gbs, sequence_packing_args=...)`` builds its packer with
    ``min_bin_count=shards, bin_count_multiple=shards`` (``nemo_rl/distributed/batched_data_dict.py`` lines 433-434 at
    NVIDIA-NeMo/RL tag v0.5.0, the same at v0.6.0), and the packer raises its target bin count to the next multiple
    (``SequencePacker`` ``bin_count_multiple``, ``nemo_rl/data/packing/algorithms.py``), so every rank runs the same
    number of micro-batches (``Policy.train``, ``nemo_rl/models/policy/lm_policy.py``). Example: 512 samples of
    1,147 tokens, 3 to a 4,096-token bin -> 171 bins; over 8 ranks 176 (22 each)."""
    shards = max(int(shards), 1)
    return -(-max(int(bins), 1) // shards) * shards


def stated_dp(plan: dict | None, chips: int) -> int | None:
    """The data-parallel size a stated trainer plan fixes: ``plan['dp']``, else ``chips / (tp x cp x pp)`` when
    the plan states all three as single values (expert parallelism splits the experts inside that group and does
    not change it); None when the plan leaves any of them to the search."""
    plan = plan or {}
    if isinstance(plan.get("dp"), int):
        return int(plan["dp"])
    dims = [plan.get(k, 1 if k == "cp" else None) for k in ("tp", "cp", "pp")]
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in dims):
        return None
    group = dims[0] * dims[1] * dims[2]
    return chips // group if chips % group == 0 and chips >= group else None


def check_trainer_dp(dp: int | None, global_batch: int, plan: dict | None, chips: int) -> None:
    """Refuse a stated trainer plan whose data-parallel size does not divide its global batch (sequences per
    optimizer step): NeMo RL shards every global batch over the data-parallel ranks and asserts ``batch_size %
    shards == 0``, 'Batch size (B) is not a multiple of shards (dp)' (``BatchedDataDict.shard_by_batch_size``,
    ``nemo_rl/distributed/batched_data_dict.py``, called by ``Policy.train`` with ``batch_size=gbs``,
    ``nemo_rl/models/policy/lm_policy.py``, NVIDIA-NeMo/RL tag v0.6.0 = 5fb58893); a dp above the batch is the
    extreme case (most ranks would get no sequence). ``dp`` None (left to the search): nothing to refuse."""
    if dp is None or global_batch % dp == 0:
        return
    how = (f"plan dp {dp:,}" if isinstance((plan or {}).get("dp"), int)
           else f"data-parallel size {dp:,} = {chips:,} chips / (tp x cp x pp)")
    raise TrainsimError(f"the trainer's {how} does not divide its global batch of {global_batch:,} sequences "
                        f"(NeMo RL shards each global batch over the data-parallel ranks: 'Batch size "
                        f"({global_batch}) is not a multiple of shards ({dp})'); state a plan whose dp divides it",
                        field="student.train_plan")


def microbatches_per_rank(run: Run, est) -> int:
    """Micro-batches one data-parallel rank runs in the engine step of ``run`` under the plan ``est`` chose:
    ``ceil(micro-batches / (dp x micro_batch))``, what :func:`.loops.train_loop_s` charges the training loop per."""
    per_rank = max(int(est.plan.get("dp", 1) or 1) * max(int(est.plan.get("micro_batch", 1) or 1), 1), 1)
    return -(-int(run.training.global_batch_seqs) // per_rank)


def update_loop_s(cost, arch: Arch, run: Run, est) -> float:
    """Seconds the RL framework's training loop (``cost``, :func:`.loops.train_loop_cost`; None: none) adds to one
    optimizer step of ``run`` under the plan ``est`` chose: :func:`.loops.train_loop_s` of its per-MoE-layer
    training cost over the busiest stage's MoE layers (:func:`.loops.moe_layers_per_stage`) and the rank's
    micro-batches (:func:`microbatches_per_rank`), with the plan's pp. Read by :func:`_fastest_dp` (the dp choice)
    and :func:`train_time` (the update's time)."""
    if cost is None:
        return 0.0
    pp = max(int(est.plan.get("pp", 1) or 1), 1)
    return train_loop_s(cost.moe_layer_train_s, moe_layers_per_stage(arch, pp), microbatches_per_rank(run, est), pp)


def _fastest_dp(run_of, mb_len: int, plan: dict, global_batch: int, chips: int, loop_s=None):
    """(run, estimate) of the fastest trainer plan among those whose data-parallel size divides the global batch
    (:func:`check_trainer_dp`), each searched with its packed micro-batches spread over its ranks
    (:func:`bins_for_shards`): with sequence packing the micro-batch count depends on dp, so each candidate dp is
    one engine search (vectorised over the rest of the plan). The engine's own batch rule (dp x micro_batch
    divides the micro-batches) would instead keep a dp dividing the packed bins, which NeMo RL refuses unless it
    also divides the batch. Fastest is the least engine step plus ``loop_s(run, est)``, the RL framework's
    training-loop seconds on that step (:func:`update_loop_s`; None: none), which falls with the micro-batches
    per rank and so with dp. No candidate fits: the NoPlanError of the largest."""
    best = None
    best_s = math.inf
    err: NoPlanError | None = None
    for d in reversed([d for d in divisors(max(int(global_batch), 1)) if d <= chips]):
        run = run_of(mb_len, {**plan, "dp": d})
        try:
            est = estimate(run)
        except NoPlanError as exc:
            err = err or exc
            continue
        t = est.step_time_s + (loop_s(run, est) if loop_s is not None else 0.0)
        if best is None or t < best_s:
            best, best_s = (run, est), t
    if best is None:
        assert err is not None
        raise err
    return best


def logprob_microbatches(sequences: int, dp: int, seq_len: int, pack_tokens: int | None,
                         pad_multiple: int = 1) -> tuple[int, int]:
    """(micro-batch length, micro-batches over all data-parallel ranks) of a log-prob pass over ``sequences``.

    NeMo RL's ``Policy.get_logprobs`` first splits the batch into ``dp`` shards and packs each shard on its own
    (``data.shard_by_batch_size(dp_size, sequence_packing_args=...)`` with ``max_tokens_per_microbatch =
    logprob_mb_tokens``, ``nemo_rl/models/policy/lm_policy.py`` tag v0.6.0), so every rank runs
    :func:`packed_sequences` of ``ceil(sequences / dp)`` samples: ``dp x ceil(ceil(sequences / dp) / k)``
    micro-batches. Example: 2,048 samples of 3,203 tokens, dp 32, budget 16,384: 64 per rank, k = 5 -> 13 each,
    416 micro-batches of 16,015 tokens."""
    dp = max(int(dp), 1)
    length, per_rank = packed_sequences(-(-int(sequences) // dp), seq_len, pack_tokens, pad_multiple)
    return length, per_rank * dp


def pipeline_packed_len(mb_len: int, longest_len: int, pad_multiple: int = 1) -> int:
    """Tokens of every packed micro-batch when the trainer is pipeline-parallel.

    With PP > 1 all micro-batches must have one shape, so NeMo RL pads each packed micro-batch to the longest of
    the batch (``_get_pack_sequence_parameters_for_megatron``: ``pad_packed_seq_to = max_seq_len_in_batch`` when
    ``pipeline_model_parallel_size > 1``, ``nemo_rl/models/megatron/data.py`` tag v0.6.0). The longest bin holds
    at least the longest sample and at least the mean bin's ``mb_len``: ``max(mb_len, padded longest sample)``.
    Example: Qwen3-235B, mean 5,709 tokens one per 8,192-token bin, longest sample at the 8,192 cap -> 8,192."""
    pad = max(int(pad_multiple), 1)
    return max(int(mb_len), -(-int(longest_len) // pad) * pad)


def trainer_run(arch: Arch, system: System, chips: int, seq_len: int, micro_batches: int, precision: str,
                plan: dict | None = None, framework: str | None = None, optimizer: dict | None = None,
                options: dict | None = None, name: str = "update") -> Run:
    """The training engine's run for one step of a post-training trainer: ``micro_batches`` packed sequences of
    ``seq_len`` tokens on ``chips`` chips of ``system``, with what the trainer's recipe states as a run spec would
    state it: ``plan`` (run-spec ``plan:`` keys), ``framework`` (profile id; None: the chip vendor's default profile),
    ``optimizer`` (run-spec ``optimizer:`` keys) and ``options`` (run-spec ``training:`` runtime keys). The one
    place the post-training model builds a training run, so the update and the log-prob passes are priced with the
    same stack: what the recipe leaves out takes that stack's defaults (:func:`trainsim.frameworks.with_defaults`,
    :func:`~trainsim.frameworks.runtime_settings`, :func:`~trainsim.frameworks.optimizer_precisions`), as for a
    run spec. Example: NeMo RL's DeepSeek-V3 recipe -> ``plan {pp: 16, ep: 16, zero: 1, first_stage_layers: 3,
    last_stage_layers: 2, ...}``, ``optimizer {grads: bf16}`` (``grad_reduce_in_fp32: false``)."""
    return Run(name=f"{arch.name}-{name}", arch=arch, system=system, chips=chips,
               training=TrainingSpec(**(options or {}), seq_len=seq_len, global_batch_seqs=micro_batches,
                                     precision=precision),
               plan=PlanSpec(**(plan or {})), reported=None,
               optimizer=OptimizerSpec(**(optimizer or {})), framework=framework)


def logprob_plan(stated: dict | None, completed: dict) -> dict:
    """The run-spec plan of the log-prob passes: the trainer's plan as the engine completed it (``completed``, an
    ``Estimate.plan``) over what the recipe stated, evaluated as given: a forward-only pass keeps no activations for
    a backward, so the training memory check does not apply to it; with its data-parallel size (the log-probs run on
    the trainer's own workers) and ``swap_optimizer``, so that the plan round-trips: a swapped optimizer the search
    chose moves no time here (:func:`forward_only_s` leaves the optimizer out) but, dropped, the pass's plan kept
    the optimizer states in HBM, a plan other than the trainer's."""
    keys = (*PLAN_FIELDS, "dp", "swap_optimizer")
    return {**(stated or {}), **{k: completed[k] for k in keys if completed.get(k) is not None}}


def train_time(arch: Arch, system: System, chips: int, sequences: int, seq_len: int, precision: str = "bf16",
               extra_forward_passes: float = 1.0, plan: dict | None = None,
               pack_tokens: int | None = None, pad_multiple: int = 1, longest_len: int | None = None,
               optimizer_steps: int = 1, logprob_pack_tokens: int | None = None, framework: str | None = None,
               optimizer: dict | None = None, options: dict | None = None, train_loop: str | None = None
               ) -> TrainTime:
    """``optimizer_steps`` optimizer steps on ``sequences`` x ``seq_len`` tokens in all (training engine) + extra
    forward passes. ``plan``: run-spec plan keys fixing the trainer's parallelism (the rest is searched);
    ``framework``, ``optimizer``, ``options``: the trainer's software stack, optimizer precisions and runtime
    settings (:func:`trainer_run`);
    ``pack_tokens``: sequence packing's micro-batch token budget (:func:`packed_sequences`, each sequence padded to
    ``pad_multiple``); ``longest_len``: the longest sample, to which a pipeline-parallel trainer pads every packed
    micro-batch (:func:`pipeline_packed_len`); ``optimizer_steps``: the step's sequences split evenly into that
    many global batches, each one engine step (NeMo RL packs each global batch on its own:
    ``BatchedDataDict.shard_by_batch_size``, ``nemo_rl/distributed/batched_data_dict.py``);
    ``logprob_pack_tokens``: the log-prob passes' micro-batch token budget (NeMo RL
    ``sequence_packing.logprob_mb_tokens``; absent: ``pack_tokens``). Each of the ``extra_forward_passes`` is one
    forward-only pass over all ``sequences`` at once (``Policy.get_logprobs`` shards the whole batch over the
    data-parallel ranks and packs each shard into micro-batches of ``logprob_mb_tokens``,
    ``nemo_rl/models/policy/lm_policy.py``; ``MegatronPolicyWorker.get_logprobs`` runs them through
    ``megatron_forward_backward(..., forward_only=True)``, ``megatron_policy_worker.py``, tag v0.6.0), timed by
    :func:`forward_only_s` on the engine's step for those micro-batches with the trainer's plan.

    ``train_loop``: the RL framework's training loop around those passes (``student.train_loop``,
    :func:`.loops.train_loop_cost`); for a MoE student its measured per-MoE-layer, per-micro-batch cost is added to
    the update (training micro-batches per rank, every optimizer step) and to each forward-only pass (log-prob
    micro-batches per rank), :func:`.loops.train_loop_s` on the plan's pipeline stages."""
    cost = train_loop_cost(train_loop) if arch.is_moe else None

    def compute():
        n_opt = max(int(optimizer_steps), 1)
        per_step = -(-int(sequences) // n_opt)
        mb_len, n_bins = packed_sequences(per_step, seq_len, pack_tokens, pad_multiple)
        dp_stated = stated_dp(plan, chips)
        check_trainer_dp(dp_stated, per_step, plan, chips)

        def run_of(length, plan_keys):
            d = stated_dp(plan_keys, chips)
            n_mb = bins_for_shards(n_bins, d) if pack_tokens and d else n_bins
            return trainer_run(arch, system, chips, length, n_mb, precision, plan_keys, framework, optimizer,
                               options)

        run = run_of(mb_len, plan or {})
        try:
            if pack_tokens and dp_stated is None:   # the search takes only the dp NeMo RL can shard the batch over
                run, est = _fastest_dp(run_of, mb_len, plan or {}, per_step, chips,
                                       lambda r, e: update_loop_s(cost, arch, r, e))
            else:
                est = estimate(run)
        except NoPlanError as exc:   # no answer (exit 1) with the trainer's nearest alternatives
            if exc.result is None:
                raise
            # the trainer's chips said first: its alternatives ('chips: 384') are the trainer's, which a spec with
            # dedicated rollout chips sets below its cluster's (384 chips, 383 for rollouts: a 1-chip trainer)
            res = no_plan(exc.result, run, field="student.train_plan").result
            raise NoPlanError(f"the trainer on its {chips:,} chip{'s' if chips != 1 else ''}: "
                              f"{res.no_plan_message()}", res, field="student.train_plan") from None
        except TrainsimError as exc:   # a stated trainer plan its chips cannot take: the spec's field, not the
            # run spec's `plan.ep` the trainer's run was built with (qa21)
            if not (exc.field or "").startswith("plan."):
                raise
            said = str(exc).removeprefix(f"{exc.where}: " if exc.where else "").removeprefix(f"{exc.field}: ")
            raise TrainsimError(f"the trainer's plan on its {chips:,} chips: {said}",
                                field="student.train_plan." + exc.field.removeprefix("plan.")) from None
        if pack_tokens and longest_len and int(est.plan.get("pp", 1)) > 1:
            padded = pipeline_packed_len(mb_len, longest_len, pad_multiple)
            if padded > mb_len:
                run = run_of(padded, {**run.plan.model_dump(exclude_none=True), "pp": int(est.plan["pp"])})
                est = estimate(run)
        ctx = context(run)
        exp_s = megatron_export_s(arch, system, est.plan, ctx.calib.coll_eff)
        # the log-prob passes: all sequences at once, each data-parallel shard packed on its own, the trainer's plan
        dp = max(int(est.plan.get("dp", 1) or 1), 1)
        lp_tokens = logprob_pack_tokens or pack_tokens
        lp_len, lp_mbs = logprob_microbatches(sequences, dp, seq_len, lp_tokens, pad_multiple)
        lp_plan = logprob_plan(plan, est.plan)
        if lp_tokens and longest_len and int(est.plan.get("pp", 1)) > 1:
            lp_len = pipeline_packed_len(lp_len, longest_len, pad_multiple)
        if (lp_len, lp_mbs) == (run.training.seq_len, run.training.global_batch_seqs):
            est_lp, ctx_lp = est, ctx
        else:
            run_lp = trainer_run(arch, system, chips, lp_len, lp_mbs, precision, lp_plan, framework, optimizer,
                                 options, name="logprobs")
            est_lp, ctx_lp = estimate(run_lp), context(run_lp)
        fwd1 = forward_only_s({k: float(np.ravel(v)[0]) for k, v in est_lp.breakdown.items()},
                              attn_bwd_ratio(ctx_lp))
        # micro-batches each data-parallel rank runs in one log-prob pass, and the pp they cross
        per_rank = max(dp * max(int(est.plan.get("micro_batch", 1) or 1), 1), 1)
        mbs = (-(-int(lp_mbs) // per_rank), max(int(est.plan.get("pp", 1) or 1), 1))
        loop_step = update_loop_s(cost, arch, run, est)
        return (est.step_time_s * n_opt, est.tokens_per_s_per_chip, est.mfu, dict(est.plan), est.memory["weights"],
                est.memory["optimizer"], ctx.host_link_bw, exp_s, fwd1, est.memory_per_chip_bytes, bool(est.fits), mbs,
                loop_step * n_opt)

    step, tps, mfu, used, w_b, o_b, host_bw, exp_s, fwd1, mem_b, fits, mbs, loop_u = _cached(
        _key("train", arch, system, chips, int(sequences), seq_len, precision, repr(sorted((plan or {}).items())),
             pack_tokens, pad_multiple, longest_len, optimizer_steps, logprob_pack_tokens, framework,
             repr(sorted((optimizer or {}).items())), repr(sorted((options or {}).items())), train_loop),
        compute)
    loop_f = 0.0
    if cost is not None:
        lp_mb, pp = mbs
        loop_f = extra_forward_passes * train_loop_s(cost.moe_layer_logprob_s, moe_layers_per_stage(arch, pp), lp_mb,
                                                     pp)
    step += loop_u
    fwd = extra_forward_passes * fwd1 + loop_f
    return TrainTime(step + fwd, step, fwd, tps, mfu, used, w_b, o_b, host_bw, exp_s, mem_b, fits, loop_u, loop_f)


#: per part of the training engine's step breakdown (:data:`trainsim.perf.step.BREAKDOWN_KEYS`), how many times
#: its forward share the part is: GEMMs (with the loss) and memory-bound kernels 3 (``step.py``: ``3 x`` the
#: forward), tensor-, expert- and context-parallel communication and pipeline sends 2 (the backward mirrors the
#: forward's collectives: the all-to-all / all-reduce of the activations' gradients, the pipeline's gradient
#: sends); attention ``1 + attn_bwd_ratio`` (:func:`trainsim.perf.compute.attn_bwd_ratio`); the MoE host synchronisation
#: ``1 / MOE_HOST_SYNC_FORWARD_SHARE`` (:data:`trainsim.perf.step.MOE_HOST_SYNC_FORWARD_SHARE`: all of it is in the
#: forward pass); None: absent from a forward-only pass (with the activation offload: a pass without a backward
#: keeps no activations to offload)
_FWD_FACTOR = {"compute_gemm": 3.0, "memory_bound": 3.0, "tp_comm": 2.0, "ep_alltoall": 2.0, "cp_comm": 2.0,
               "pp_p2p": 2.0, "host": 1.0 / MOE_HOST_SYNC_FORWARD_SHARE, "recompute": None,
               "dp_comm": None, "optimizer": None, "activation_offload": None}


def forward_only_s(breakdown: dict[str, float], attn_bwd_ratio: float) -> float:
    """Seconds of a forward-only pass (no gradients) over the micro-batches of a training step whose engine
    breakdown (seconds by part, :data:`trainsim.perf.step.BREAKDOWN_KEYS`) is ``breakdown``.

    Each per-micro-batch part contributes its forward share (:data:`_FWD_FACTOR`): GEMMs and memory-bound kernels
    1/3 (forward 2 N FLOPs of forward + backward's 6 N), attention ``1 / (1 + attn_bwd_ratio)``, communication 1/2
    (context-parallel: the backward also moves dK/dV, so 1/2 is an upper bound). The MoE host synchronisation counts
    in full: the dropless dispatcher copies the per-expert token counts to the host in the forward pass
    (Megatron-Core ``MoEAlltoAllTokenDispatcher``: ``preprocess`` / ``token_permutation``,
    ``_maybe_dtoh_and_synchronize`` at its ``cuda_sync_point``, megatron/core/transformer/moe/token_dispatcher.py);
    the backward's all-to-all reuses the split sizes already on the host, so a forward-only pass pays the same
    synchronisation per micro-batch as a training one. Activation recompute, the data-parallel gradient reduction
    and the optimizer do not run. The pipeline fill and drain (``pipeline_bubble``: ``(pp - 1)`` micro-batch slots
    of forward + backward in 1F1B) shrink with the micro-batch to its forward share: Megatron-Core's schedule with
    ``forward_only=True`` runs ``(pp - 1)`` forward slots only. ``other`` (the fixed per-call overhead) stays.

    Example (hand): gemm 3.0, attention 1.5 with ``attn_bwd_ratio`` 2, memory-bound 0.6, EP all-to-all 0.8, host
    sync 0.4, recompute 1.0, bubble 2.0, dp 0.3, optimizer 0.1, other 0.05 s: forward work 1.0 + 0.5 + 0.2 + 0.4 +
    0.4 = 2.5 s of 7.3 s per-micro-batch work, bubble 2.0 x 2.5 / 7.3 = 0.685 s: 2.5 + 0.685 + 0.05 = 3.235 s."""
    work = fwd = 0.0
    for k, v in breakdown.items():
        if k in ("pipeline_bubble", "other", "dp_comm", "optimizer"):
            continue
        work += v
        f = (1.0 + attn_bwd_ratio) if k == "attention" else _FWD_FACTOR.get(k, 3.0)
        if f is not None:
            fwd += v / f
    bubble = breakdown.get("pipeline_bubble", 0.0) * (fwd / work if work > 0 else 0.0)
    return fwd + bubble + breakdown.get("other", 0.0)


def expert_params(arch: Arch) -> float:
    """Parameters of the routed experts (every layer's expert matrices, :func:`trainsim.parallel.sharding.layer_params`,
    the split the engine shards by); the rest is dense."""
    return float(sum(lk.n_layers * layer_params(lk).expert for lk in arch.layers))


@dataclass(frozen=True)
class ExportCalls:
    """What one Megatron-Bridge ``export_hf_weights`` pass iterates on every trainer rank (:func:`export_calls`).

    ``dense_tasks``: the non-expert Megatron parameters of every pipeline stage (each rank walks them all);
    ``split_tasks``: those of them split over tensor parallelism; ``expert_tasks``: the per-expert parameters of one
    expert-parallel rank (every stage's); ``hf_tensors``: the Hugging Face tensors they become, ``hf_expert_tensors``
    of them routed experts' (every expert's: what a vLLM rank loads, :func:`vllm_load_scan_s`)."""
    dense_tasks: int
    split_tasks: int
    expert_tasks: int
    hf_tensors: int
    hf_expert_tensors: int = 0


def _megatron_params(matrices: list[Matrix]) -> list[Matrix]:
    """The Megatron parameters a layer's matrices are stored as: column-split matrices of one group that read the
    same input are one fused parameter (Megatron-Core ``linear_qkv`` for q / k / v, ``linear_fc1`` for gate / up;
    Megatron-Bridge ``QKVMapping`` and ``GatedMLPMapping`` split them back into their Hugging Face tensors), every
    other matrix its own. Returns one representative matrix per parameter."""
    out, seen = [], set()
    for m in matrices:
        if m.split == "col":
            key = (m.group, m.k)
            if key in seen:
                continue
            seen.add(key)
        out.append(m)
    return out


def export_calls(arch: Arch, plan: dict) -> ExportCalls:
    """Count the parameter tasks of one ``export_hf_weights`` pass under ``plan`` (Megatron-Bridge 95e5f38, the
    commit NeMo RL v0.6.0 pins: ``model_bridge.py`` ``build_conversion_tasks`` /
    ``stream_weights_megatron_to_hf``).

    Every rank builds one task per name of ``_megatron_global_param_names_all_pp_ranks`` (the union of every
    pipeline stage's parameter names, ``all_gather_object`` over the pipeline group) and runs each task's
    ``megatron_to_hf`` in that order, the stages that do not own a parameter taking part in its broadcast. Expert
    weights are per-expert parameters (TransformerEngine grouped GEMM ``linear_fc1.weight<i>``,
    ``linear_fc2.weight<i>`` for each of the rank's ``experts / ep`` local experts), so an expert-parallel rank
    walks ``MoE layers x experts / ep x 2`` of them, each all-gathered over the EP group into ``ep`` experts
    (``gather_from_ep_ranks``). Dense tasks: one per Megatron parameter (:func:`_megatron_params`) of every layer,
    plus the embedding and the output head (both vocabulary-parallel). Norm weights and biases are not counted
    (the architecture records their parameters, not their tensors: DeepSeek-V3 has 303 of them).

    Example: DeepSeek-V3 at EP16: dense tasks 3 x 7 (q_a, q_b, kv_a, kv_b, o, fc1, fc2) + 58 x 8 (the same
    attention, shared fc1 / fc2, router) + 2 = 487, of which 3 x 5 + 58 x 5 + 2 = 307 split (q_a, kv_a and the
    router are replicated); expert tasks 58 x 16 x 2 = 1,856; Hugging Face tensors 3 x 8 + 58 x (5 + 768 + 3 + 1)
    + 2 = 45,092 (NeMo RL's checkpoint-engine guide counts 45,395 with the 303 norms and biases)."""
    ep = max(int(plan.get("ep", 1) or 1), 1)
    dense = split = expert = hf = hf_expert = 0
    for lk in arch.layers:
        mats = [m for m in lk.matrices if m.group != "expert"]
        emats = [m for m in lk.matrices if m.group == "expert"]
        params = _megatron_params(mats)
        dense += lk.n_layers * len(params)
        split += lk.n_layers * sum(1 for m in params if m.split in ("col", "row"))
        if emats and lk.moe is not None:
            expert += lk.n_layers * len(_megatron_params(emats)) * max(lk.moe.experts // ep, 1)
        hf += lk.n_layers * sum(m.count for m in lk.matrices)
        hf_expert += lk.n_layers * sum(m.count for m in emats)
    ends = int(arch.embedding_params > 0) + int(arch.head_params > 0)
    return ExportCalls(dense + ends, split + ends, expert, hf + ends, hf_expert)


def nccl_broadcast_s(size_bytes: float, n: int, stride: int, system: System, coll_eff: tuple[float, ...],
                     calls: int = 1) -> float:
    """Seconds of ``calls`` broadcasts, ``size_bytes`` in all split evenly between them, over ``n`` members
    ``stride`` ranks apart.

    NCCL broadcasts along its ring, pipelined: every member receives the buffer once and every hop carries it at
    once, so a broadcast moves per link what a ring all-gather of ``size x n / (n - 1)`` moves (NCCL tests
    PERFORMANCE.md: broadcast bus bandwidth = algorithm bandwidth, all-gather bus bandwidth = algorithm bandwidth
    x (n - 1) / n) and pays one ring pass of latency (NCCL's tuner, tuning.cc: a broadcast's ``nRanks`` steps
    against the all-gather's ``nRanks - 1``): :func:`trainsim.perf.collectives.all_gather_time` of that size, once
    per call. Each call pays its own base and steps (:data:`trainsim.perf.collectives.NCCL_BASE_S`,
    ``NCCL_STEP_US``), so ``calls`` of ``size / calls`` cost the bytes of one and ``calls`` latencies. Example
    (plain-ring test system: 8 per 300 GB/s domain at 2 us, 25 GB/s out at 5 us, efficiencies 0.8 / 0.85): 1 TB
    in 10 calls over 512 members: 1e12 / min(240, 8 x 21.25 GB/s) + 10 x (448 x 2 + 63 x 5 us) = 5.894 s."""
    n, calls = int(n), int(calls)
    if n <= 1 or calls <= 0 or size_bytes <= 0:
        return 0.0
    per = size_bytes / calls * n / (n - 1)
    return calls * float(np.ravel(all_gather_time(per, np.array([n]), np.array([stride]), system, coll_eff))[0])


def megatron_export_s(arch: Arch, system: System, plan: dict, coll_eff: tuple[float, ...],
                      bytes_per_param: float = 2.0) -> float:
    """Seconds for every trainer chip to hold, tensor by tensor, the full weights in Hugging Face layout: the
    export a NeMo RL refit streams to its vLLM workers (colocated and not).

    NeMo RL's refit (``refit_policy_generation`` -> ``MegatronPolicyWorker.stream_weights_via_ipc_zmq`` or
    ``broadcast_weights_for_collective``, tag v0.6.0) iterates Megatron-Bridge's ``export_hf_weights`` on every
    training rank; per parameter task (:func:`export_calls`; ``param_mapping.py`` at the pinned Megatron-Bridge
    95e5f38): ``broadcast_from_pp_rank`` "broadcasts to **all** PP ranks" (``torch.distributed.broadcast`` over
    the pipeline group; the tensor's spec is cached after the first refit), ``gather_from_tp_ranks`` all-gathers
    the tensor-parallel shards of a split parameter and ``gather_from_ep_ranks`` all-gathers an expert parameter
    over the expert-parallel group. One collective call per task and group, each at the mean size of its kind,
    so with W_d dense and W_e expert bytes, D dense tasks (S of them split) and E expert tasks:

    * the pipeline broadcasts: :func:`nccl_broadcast_s` of ``W_d / tp`` in D calls and of ``W_e / (ep etp)`` in E
      calls over the pipeline group (every shard of every stage passes every link of the chain);
    * the all-gathers ``all_gather(W_d / S, tp)`` x S, ``all_gather(W_e / ep / E, etp)`` x E and
      ``all_gather(W_e / E, ep)`` x E (:func:`trainsim.perf.collectives.all_gather_time`, its NCCL base and step
      latencies paid per call).

    The calls run one after the other, so the times add. Host-side work per task or tensor (name mapping, the
    tensors' allocation, NeMo RL's packing) is not priced: no measurement of it on this path was found, and NeMo
    RL's NIXL refit, whose sender runs this same export, bounds the whole export at 9.25 s for DeepSeek-V3 PP16 x
    EP16 (tests/test_rl_refit.py; the model: 6.98 s).
    Example (plain-ring test system, tests/test_rl_step.py): DeepSeek-V3, PP16 x EP16, dp 32: 487 dense and
    1,856 expert tasks; pipeline broadcast (W_d + W_e / 16) / 21.25 GB/s + 2,343 x 15 x 5 us, EP all-gather
    15/16 x W_e / 170 GB/s + 1,856 x (14 x 2 + 5) us."""
    tp, cp, ep, pp = (int(plan.get(k, 1) or 1) for k in ("tp", "cp", "ep", "pp"))
    etp = int(plan.get("etp", 1) or 1)
    dp = int(plan.get("dp", 1) or 1)
    w_e = expert_params(arch) * bytes_per_param
    w_d = count(arch).total_params * bytes_per_param - w_e
    calls = export_calls(arch, plan)
    d_n, s_n, e_n = calls.dense_tasks, max(calls.split_tasks, 1), max(calls.expert_tasks, 1)

    def one(x):
        return float(np.ravel(x)[0])

    t = 0.0
    if pp > 1:
        stride = tp * cp * dp
        t += nccl_broadcast_s(w_d / tp, pp, stride, system, coll_eff, d_n)
        if w_e > 0:
            t += nccl_broadcast_s(w_e / (ep * etp), pp, stride, system, coll_eff, e_n)
    if tp > 1:
        t += s_n * one(all_gather_time(w_d / s_n, np.array([tp]), np.array([1]), system, coll_eff))
    if w_e > 0 and etp > 1:
        t += e_n * one(all_gather_time(w_e / ep / e_n, np.array([etp]), np.array([1]), system, coll_eff))
    if w_e > 0 and ep > 1:
        t += e_n * one(all_gather_time(w_e / e_n, np.array([ep]), np.array([etp]), system, coll_eff))
    return t


#: Share of a trainer chip's free memory NeMo RL v0.6.0 gives the colocated refit's two CUDA-IPC buffers:
#: ``refit_policy_generation`` sizes the buffer at ``policy.get_free_memory_bytes() x NRL_REFIT_BUFFER_MEMORY_RATIO``
#: (default "0.3": "The remaining 70% is a necessary buffer reserved for the parameter all-gathering across the
#: expert-parallelism dimension"), the least free memory over the trainer ranks, read from NVML after
#: ``offload_before_refit`` and vLLM's ``wake_up(tags=["weights"])`` (``nemo_rl/algorithms/grpo.py``,
#: ``nemo_rl/utils/nvml.py``, tag v0.6.0); ``stream_weights_via_ipc_zmq_impl`` (``nemo_rl/models/policy/utils.py``)
#: halves it into ping-pong buffers.
REFIT_BUFFER_MEMORY_RATIO = 0.3

#: Seconds the vLLM receiver spends per packed CUDA-IPC bucket rebuilding the buffer from its handle
#: (``rebuild_cuda_tensor``) and unpacking the bucket's tensors as views. Measured: NeMo RL blog 'NeMo-RL: Journey
#: of Optimizing Weight Transfer in Large MoE Models by 10x' (NVIDIA-NeMo blog, 2025-08-12, Part 1, Figure 5):
#: packing "reduces the time required to recover a tensor from IPC handles from 120ms to 12ms" per bucket
#: (NVIDIA-NeMo/RL pull request 589). v0.6.0's receiver does the same per bucket and then drops its view before
#: the ACK (``update_weights_via_ipc_zmq``, ``nemo_rl/models/generation/vllm/vllm_backend.py``), so every bucket
#: opens its handle anew.
IPC_BUCKET_REBUILD_S = 0.012

#: Seconds per entry of the expert mapping a vLLM MoE ``load_weights`` walks for each tensor it is handed. vLLM's
#: MoE models (``deepseek_v2.py``, ``qwen3_moe.py`` ``load_weights``) test every tensor name against the entries of
#: ``fused_moe_make_expert_params_mapping`` (``vllm/model_executor/layers/fused_moe/layer.py``: one
#: ``(param, "experts.{e}.{proj}.", e, shard)`` entry per expert and gate / down / up projection) one by one with a
#: substring test, ``if weight_name not in name: continue``, until one matches (then the FusedMoE ``weight_loader``
#: copies that expert's slice). A refit hands every vLLM rank the whole model by name (NeMo RL v0.6.0
#: ``vllm_backend.py``: ``update_weights_via_ipc_zmq`` colocated and ``update_weights_from_collective`` not, both
#: ``self.model_runner.model.load_weights(weights=...)`` bucket by bucket), so every refit pays the scan.
#: Measured: sgl-project/sglang pull request 19299 (2026-02-25), the same linear scan in SGLang's DeepSeek loader
#: (771 entries, nvidia/DeepSeek-R1-NVFP4, 180,364 tensors): "Total matching time 6.67s", "String comparisons
#: ~179M", "Per-tensor latency 36.9 us" -> 6.67 / 179e6 = 37 ns per entry tested. The same 6.67 s over the entries
#: a first-match scan tests there (178,176 expert tensors x (768 + 1) / 2 + 2,188 others x 771 = 70.2M) would be
#: 95 ns; the PR's own count is kept, since at 95 ns DeepSeek-V3's matching alone (1.67 s) would exceed the whole
#: 1.5 s "parameter update" NeMo RL measured for it in vLLM (refit blog, NVIDIA-NeMo blog 2025-08-12, Table 1).
EXPERT_MAPPING_SCAN_S = 6.67 / 179e6


def vllm_load_scan_s(arch: Arch) -> float:
    """Seconds one vLLM rank spends matching names against the expert mapping while it loads one refit
    (:data:`EXPERT_MAPPING_SCAN_S` per entry tested); 0 for a dense model (no mapping).

    With ``M = 3 x experts`` entries, an expert tensor stops at its own entry, ``(M + 1) / 2`` tests on average
    over a layer's ``M`` expert tensors (each entry matches exactly one of them); every other tensor tests all ``M``
    (the upper bound: those the stacked-parameter mapping takes first, q/k/v and gate/up of dense and shared MLPs,
    skip the scan). Tensors are the Hugging Face weight matrices of the architecture (norm weights are not
    recorded: DeepSeek-V3's 303 would add 303 x 768 x 37 ns = 9 ms). The rollout runs without vLLM expert
    parallelism (NeMo RL's default ``expert_parallel_size`` 1), so every expert tensor matches on every rank.
    Not priced: the FusedMoE ``weight_loader`` call and its narrow / copy per matched tensor (no measurement).

    Example: DeepSeek-V3, M = 768, 58 x 768 = 44,544 expert tensors and 548 others: (44,544 x 384.5 + 548 x 768)
    x 37.26 ns = 0.654 s, inside the NeMo RL refit blog's measured 1.5 s "parameter update" for the whole model at
    vLLM TP64 (NVIDIA-NeMo blog 2025-08-12, Table 1)."""
    m = 3 * max([lk.moe.experts for lk in arch.layers if lk.moe is not None] or [0])
    if m == 0:
        return 0.0
    tensors = export_calls(arch, {})   # the Hugging Face tensors a refit hands over, as the export counts them
    expert = tensors.hf_expert_tensors
    other = tensors.hf_tensors - expert
    return (expert * (m + 1) / 2.0 + other * m) * EXPERT_MAPPING_SCAN_S


def pipelined_receiver_s(sender_s: float, receiver_s: float, buckets: int) -> float:
    """Seconds a receiver adds to a sender it works behind bucket by bucket: ``max(0, R - S) + R / n``.

    The sender hands bucket k + 1 over while the receiver loads bucket k, so with a sender time S and a receiver
    time R over n buckets the transfer takes ``sum_k max(S / n, R / n) + R / n = max(S, R) + R / n`` (the last
    bucket's load follows the sender's end). ``buckets`` 0: the tail is not resolved (many small buckets) and only
    ``max(0, R - S)`` is counted. Example: S = 7.0 s, R = 245 x 12.1 ms = 2.96 s, n = 245: 0.012 s."""
    exposed = max(0.0, receiver_s - sender_s)
    return exposed + (receiver_s / buckets if buckets > 0 else 0.0)


def refit_buckets(model_bytes: float, hbm_bytes: float, rollout_shard_bytes: float, trainer_weights_bytes: float,
                  ratio: float = REFIT_BUFFER_MEMORY_RATIO) -> int:
    """Packed CUDA-IPC buckets of one colocated NeMo RL refit: ``ceil(model bytes / (ratio x free / 2))``, free
    = HBM - the woken vLLM shard - the trainer's resident weights (the optimizer state is on the host and the
    gradient buffers freed by then: :func:`host_offload_s`); 0 when nothing is free (no bucket term is priced).

    NeMo RL v0.6.0 (:data:`REFIT_BUFFER_MEMORY_RATIO`): the buffer is ``ratio x free`` split into two ping-pong
    halves, and a bucket is sent when the next tensor would overflow the half. Example: DeepSeek-V3 BF16
    (1.342 TB) on an 80 GiB (85.9 GB) H100 with a 41.9 GB vLLM TP32 shard and 7.4 GB of trainer weights: free
    36.6 GB, halves of 5.5 GB, 245 buckets."""
    half = ratio * (hbm_bytes - rollout_shard_bytes - trainer_weights_bytes) / 2.0
    if half <= 0 or model_bytes <= 0:
        return 0
    return int(math.ceil(model_bytes / half))


def colocated_refit_s(export_s: float, model_bytes: float, rollout_shard_bytes: float, hbm_bw: float,
                      host_link_bw: float, buckets: int = 0, refits_per_step: float = 1.0, *,
                      load_scan_s: float = 0.0) -> dict[str, float]:
    """Seconds per step of a colocated NeMo RL refit, by part (their sum is the weight-sync phase).

    * ``export_s``: :func:`megatron_export_s`;
    * ``ipc_s``: each full tensor is copied into the CUDA-IPC buffer the colocated vLLM worker reads
      (``stream_weights_via_ipc_zmq_impl``, ``nemo_rl/models/policy/utils.py`` tag v0.6.0): ``2 x model bytes /
      HBM bandwidth`` (a read and a write of every byte);
    * ``bucket_s``: the receiver's share the ping-pong buffers do not hide. The sender packs bucket k + 1 while
      vLLM loads bucket k and waits for bucket k's ACK before sending k + 1 (``send_buffer_group_overlap``), so
      with ``n`` buckets, a sender time S = export + copy and a receiver time r per bucket
      (:data:`IPC_BUCKET_REBUILD_S` + the shard's share of vLLM's load, ``2 x shard / n / HBM bandwidth``, + the
      bucket's share of ``load_scan_s``, the receiver's name matching, :func:`vllm_load_scan_s`) the refit takes
      ``max(S, n r) + r``: ``bucket_s = max(0, n r - S) + r`` (:func:`pipelined_receiver_s`);
    * ``vllm_wake_s``: vLLM sleeps at level 1 after generation (``VllmGenerationWorker.sleep`` ->
      ``llm.sleep(level=1)``, ``nemo_rl/models/generation/vllm/vllm_worker.py`` tag v0.6.0), which offloads its
      weights to host memory, and ``wake_up(tags=["weights"])`` copies them back before the refit: ``2 x rollout
      shard / host-link bandwidth`` per chip, every step (vLLM ``LLM.sleep``, vllm/entrypoints/llm.py: level 1
      offloads the model weights, backed up in CPU memory, and discards the KV cache; the async engine's
      ``sleep_async`` uses level 1 too, ``vllm_worker_async.py``).
    ``export_s``, ``model_bytes`` and ``buckets`` are one refit's; the first three parts are scaled by
    ``refits_per_step`` (1 / ``weight_sync_every``). Example: DeepSeek-V3 BF16 (1.342 TB) on H100 at TP32, export
    6.2 s: copies 2 x 1.342e12 / 3.35e12 = 0.80 s; 245 buckets of r = 12 ms + 2 x 41.9 GB / 245 / 3.35 TB/s =
    12.1 ms, 3.0 s of receiving hidden behind the sender's 7.0 s, 0.012 s exposed (with the 0.654 s of name
    matching, 14.8 ms per bucket, 3.6 s, still hidden: 0.015 s exposed); a 41.9 GB shard over a 50 GB/s host link
    twice: 1.7 s."""
    ipc = 2.0 * model_bytes / hbm_bw if hbm_bw > 0 else 0.0
    wake = 2.0 * rollout_shard_bytes / host_link_bw if host_link_bw > 0 else 0.0
    bucket = 0.0
    if buckets > 0:
        r = (IPC_BUCKET_REBUILD_S + (2.0 * rollout_shard_bytes / buckets / hbm_bw if hbm_bw > 0 else 0.0)
             + load_scan_s / buckets)
        bucket = pipelined_receiver_s(export_s + ipc, buckets * r, buckets)
    f = float(refits_per_step)
    return {"export_s": export_s * f, "ipc_s": ipc * f, "bucket_s": bucket * f, "vllm_wake_s": wake}


#: Bytes/s per chip at which NeMo RL v0.6.0 moves the Megatron optimizer state between HBM and a PCIe-attached
#: host, each way. ``MegatronPolicyWorker.move_optimizer`` (``nemo_rl/models/policy/workers/megatron_policy_worker.py``
#: tag v0.6.0) walks the optimizer state tensor by tensor with ``state[k] = v.to("cpu")`` / ``v.to("cuda")``: a
#: fresh pageable host allocation and a synchronous copy per tensor, every step (nothing is pinned or cached, unlike
#: the parameter buffers: Megatron-Core ``_ParamAndGradBuffer.offload_to_cpu`` copies into a cached
#: ``pin_memory()`` buffer, d30c3ae). Measured: NVIDIA-NeMo/RL issue 3976 (Nsight Systems on one H100, colocated
#: GRPO, Megatron distributed optimizer): ``offload_before_refit`` made 510 device-to-pageable copies of 4.94 GB in
#: 2.75 s of copy time, "~1.8 GB/s effective D2H throughput", where the same host reached ~16.1 GB/s pageable and
#: ~55 GB/s pinned on a plain 1 GiB copy; NVIDIA-NeMo/RL pull request 2248 names the cause ("per-tensor pageable
#: allocations ... synchronous memcpy on every step"). Cross-check, both directions at this rate: NVIDIA-NeMo/RL pull
#: request 1404 removed the same round trip from ``logprob_inference_prep`` + ``training_prep`` and measured
#: 13 s -> ~1 s for Qwen3-30B-A3B (32 H100, ~11.4 GB of state per chip: 2 x 11.4 / 1.8 = 12.7 s).
PAGEABLE_OPTIMIZER_COPY_BW = 1.8e9


def optimizer_copy_bw(system: System) -> float | None:
    """Bytes/s per chip of the trainer's per-tensor pageable optimizer-state copies on ``system``:
    :data:`PAGEABLE_OPTIMIZER_COPY_BW` wherever the chip's host is not a Grace CPU on the same module; None (the host
    link's DMA rate) for a superchip whose GPU reaches its Grace CPU over NVLink-C2C (GB200, GB300: the catalog's
    ``host_cpu: grace``), where no measurement of this path exists and the measured x86 / PCIe rate is not carried
    over. The rate is the host side's (a fresh pageable allocation and a staged copy per tensor), so a chip with a
    faster host link of its own but a separate host CPU (the 910C's Kunpeng sockets over the Unified Bus) keeps it:
    the selection is by host CPU, not by whether the catalog states a host link."""
    return None if system.chip.host_cpu == "grace" else PAGEABLE_OPTIMIZER_COPY_BW


def host_offload_s(weights_bytes: float, optimizer_bytes: float, host_link_bw: float,
                   optimizer_bw: float | None = None) -> float:
    """Seconds per step a colocated trainer spends moving its state to host memory and back.

    NeMo RL (Megatron backend, ``nemo_rl/models/policy/workers/megatron_policy_worker.py``), every step with
    generation on the same chips: ``offload_before_refit`` frees the gradient buffers (Megatron-Core
    ``_ParamAndGradBuffer.offload_to_cpu`` only resizes their storage to 0: nothing is copied) and moves the
    optimizer state to the host (``move_optimizer("cpu")``, on by default: ``offload_optimizer_for_refit``);
    ``offload_after_refit`` copies the parameter buffers to pinned host memory; ``prepare_for_lp_inference`` and
    ``prepare_for_training`` bring the parameters and the optimizer state back. Each chip moves its own shard over
    its own host link: ``2 x weights / host_link_bw + 2 x optimizer / min(host_link_bw, optimizer_bw)`` per chip
    (``host_link_bw``: the training engine's DMA rate, :attr:`trainsim.perf.context.StepContext.host_link_bw`;
    ``optimizer_bw``: the per-tensor pageable copies of the optimizer state, :func:`optimizer_copy_bw`; None: the
    link's rate). Example: 7.4 GB of weights and 32.9 GB of optimizer state per chip (DeepSeek-V3 on 256 H100),
    50 GB/s link, 1.8 GB/s pageable: 2 x 7.4 / 50 + 2 x 32.9 / 1.8 = 0.30 + 36.56 = 36.86 s.
    """
    if host_link_bw <= 0:
        return 0.0
    return 2.0 * weights_bytes / host_link_bw + optimizer_round_trip_s(optimizer_bytes, host_link_bw, optimizer_bw)


def optimizer_round_trip_s(optimizer_bytes: float, host_link_bw: float, optimizer_bw: float | None = None) -> float:
    """Seconds per step a trainer spends moving its optimizer state to host memory and back, each chip its own
    shard over its own host link: ``2 x optimizer / min(host_link_bw, optimizer_bw)`` (``optimizer_bw``: the
    per-tensor pageable copies of NeMo RL's ``move_optimizer``, :func:`optimizer_copy_bw`; None: the link's rate).

    A colocated step pays it inside :func:`host_offload_s`. A non-colocated step pays it too where the stack
    offloads the optimizer for the log-prob passes (``student.offload_optimizer_for_logprob``): NeMo RL v0.4.0's
    ``MegatronPolicyWorker.prepare_for_lp_inference`` calls ``offload_before_refit`` (``move_optimizer`` to the
    host, ``nemo_rl/models/policy/megatron_policy_worker.py`` tag v0.4.0) and ``prepare_for_training`` brings the
    state back, every step of the one-step-off loop (``grpo.py`` async_grpo_train: ``logprob_inference_prep``,
    ``training_prep``); NVIDIA-NeMo/RL pull request 1404 (v0.5.0: ``offload_optimizer_for_logprob``, default
    false) removed it and measured ``logprob_inference_prep + training_prep`` 13 s -> ~1 s for Qwen3-30B-A3B and
    10 s -> 1 s for Qwen3-235B. Example: 11.4 GB of state per chip at 1.8 GB/s: 2 x 11.4 / 1.8 = 12.7 s."""
    if host_link_bw <= 0:
        return 0.0
    opt_bw = min(host_link_bw, optimizer_bw) if optimizer_bw else host_link_bw
    return 2.0 * optimizer_bytes / opt_bw


def reference_swap_s(weights_bytes: float, host_link_bw: float) -> float:
    """Seconds per step the reference policy's log-prob pass spends swapping weights through host memory.

    NeMo RL's Megatron worker keeps the reference model's state dict in host memory
    (``nemo_rl/models/megatron/setup.py`` ``setup_reference_model_state``) and, for the reference log-probs
    (KL penalty, ``loss_fn.reference_policy_kl_penalty`` 0.01 in ``examples/configs/grpo_math_1B.yaml``), enters
    ``MegatronPolicyWorker.use_reference_model`` (``nemo_rl/models/policy/workers/megatron_policy_worker.py``, tag
    v0.6.0): the policy's state dict is copied to the host, the reference state dict copied in, and on exit the
    policy's copied back -- three copies of each chip's weight shard over its own host link:
    ``3 x weights / host-link bandwidth``. Example: 10 GB per chip over a 40 GB/s link: 3 x 10 / 40 = 0.75 s."""
    if host_link_bw <= 0:
        return 0.0
    return 3.0 * weights_bytes / host_link_bw


def weight_bytes(arch: Arch, precision: str) -> float:
    """Bytes of the student's weights at ``precision`` (what a weight broadcast moves)."""
    return count(arch).total_params * BYTES[precision]


#: Share of a GPU's total memory each packed buffer of NeMo RL v0.6.0's non-colocated refit holds, and the cap on
#: it: ``get_target_packed_tensor_size`` (``nemo_rl/utils/packed_tensor.py``, tag v0.6.0) returns
#: ``min(total_memory x NRL_REFIT_BUFFER_MEMORY_RATIO, 5 GiB)`` with the ratio's default "0.02"; the producer packs
#: tensors until a buffer exceeds it and then broadcasts the buffer (``packed_broadcast_producer``).
REFIT_PACK_MEMORY_RATIO = 0.02
REFIT_PACK_MAX_BYTES = 5 * 2 ** 30


def refit_pack_bytes(hbm_bytes: float) -> float:
    """Bytes of one packed broadcast of NeMo RL's non-colocated refit on a chip of ``hbm_bytes``
    (:data:`REFIT_PACK_MEMORY_RATIO`): 0.02 x 80 GiB = 1.72 GB on H100, 0.02 x 186 GB = 3.72 GB on GB200."""
    return min(REFIT_PACK_MEMORY_RATIO * hbm_bytes, float(REFIT_PACK_MAX_BYTES))


def noncolocated_refit_s(export_s: float, size_bytes: float, system: System, group_chips: int,
                         coll_eff: tuple[float, ...], pack_bytes: float = 0.0,
                         refits_per_step: float = 1.0, *, load_scan_s: float = 0.0) -> dict[str, float]:
    """Seconds per step of a refit to separate (non-colocated) rollout chips of the same cluster by NeMo RL's
    default transport, by part (the phase is their sum).

    Every full parameter tensor is broadcast from the trainer to every generation rank
    (``broadcast_weights_for_collective`` -> ``packed_broadcast_producer(..., src=0)``, NVIDIA-NeMo/RL tag
    v0.6.0; docs/design-docs/nccl-reshard-refit.md: "The default non-colocated transport broadcasts every full
    parameter tensor from the training ranks to every generation rank") over one NCCL group holding every training
    and generation rank (``init_collective``: ``world_size = train_world_size + inference_world_size``,
    ``base_policy_worker.py``), fed tensor by tensor by the trainer's :func:`megatron_export_s`.

    ``broadcast_s``: the ``size_bytes`` of one refit go out in packed buffers of ``pack_bytes``
    (:func:`refit_pack_bytes`; 0: one call), ``ceil(size / pack)`` broadcasts over the ``group_chips`` members
    (:func:`nccl_broadcast_s`: the bytes of one pipelined ring broadcast at its slowest link, the data entering each
    scale-up domain once over its members' scale-out links, plus each call's latency: a ring pass over the whole
    group, the fill of the pipelined chain). The export's collectives and the broadcast use the same links of the
    training chips, so overlapping them (two packing buffers on their own streams, NVIDIA-NeMo/RL pull request
    1379) hides the host-side iteration but not the link time: the two add. Both parts are scaled by
    ``refits_per_step`` (1 / ``weight_sync_every``). Example: DeepSeek-V3 BF16 (1.342 TB), PP16 x EP16 on 256
    H100 + 256 rollout H100: 782 packs of 1.72 GB; bytes 1.34 TB at min(360 GB/s NVLink, 8 x 42.5 GB/s out of a
    node) = 3.95 s, and 782 ring passes of 512 members at NCCL's tuner prices (LL128 at these sizes: 14 us + 448
    NVLink steps x 1.9 us + 63 network steps x 4.0 us, its bytes at 0.92 of the bus bandwidth) = 1.56 ms each,
    1.2 s; export 6.98 s (:func:`megatron_export_s`, 0.64 s of it the 2,343 tasks' call latencies): 12.1 s against
    NeMo RL's 14.21 s for this trainer layout on the NCCL path (docs/guides/checkpoint-engine-refit.md at snapshot
    7ea279ab, the dedicated async refit timer; 9.25 s over NIXL, whose sender runs the same export) and 34 s ->
    14 s before / after pull request 1379 (Qwen3-235B 5.5 s there, layout not stated; 4.0 s here for the 256 +
    256 H100 row).

    ``load_s``: each generation rank loads bucket k (``packed_broadcast_consumer`` -> ``load_weights``, its name
    matching ``load_scan_s``: :func:`vllm_load_scan_s`) while bucket k + 1's broadcast is in flight (the
    broadcasts are enqueued on two CUDA streams, ``nemo_rl/utils/packed_tensor.py`` v0.6.0), so only what the
    matching takes beyond the export and broadcast shows (:func:`pipelined_receiver_s` over the packed
    broadcasts, the last one's share included). DeepSeek-V3: 0.65 s against 12.1 s: none. NeMo RL's measured
    14.21 s for this layout includes this receiver loading all 45,395 tensors, so a receiver hidden behind it takes
    at most 14.21 s / 45,395 = 0.31 ms per tensor."""
    n = max(int(group_chips), 1)
    calls = max(int(math.ceil(size_bytes / pack_bytes)), 1) if pack_bytes > 0 else 1
    bcast = nccl_broadcast_s(size_bytes, n, 1, system, coll_eff, calls)
    f = float(refits_per_step)
    return {"export_s": export_s * f, "broadcast_s": bcast * f,
            "load_s": pipelined_receiver_s((export_s + bcast) * f, load_scan_s * f, calls)}


def clear_cache() -> None:
    """Empties the cache of phase results."""
    _CACHE.clear()
