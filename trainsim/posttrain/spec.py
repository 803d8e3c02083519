"""The post-training spec (format v1): RL or on-policy distillation (OPD / multi-teacher OPD) over clusters.

One YAML file, run-spec style (unknown keys are errors; quantities may carry units)::

    name: mopd-4-domains
    kind: opd                          # rl: the student learns from a verifier reward (no teachers)
                                       # opd: from teachers' log-probabilities of its own samples
    clusters:                          # name -> a system (catalog id or inline mapping) and its chips
      main: {system: cloudmatrix-384, chips: 384}   # gpus_per_node: 4 -> NeMo RL v0.6.0's rank order (placement.py)
      math: {system: cloudmatrix-384, chips: 384}
    links:                             # between two clusters; each direction runs at `bandwidth`
      - {between: [main, math], bandwidth: "10 Gb/s", latency: "30 ms"}
    default_link: {bandwidth: "10 Gb/s", latency: "30 ms"}   # optional: any pair not listed
    student:
      model: qwen3-30b-a3b             # catalog id | config path | inline mapping
      cluster: main                    # where the student is trained
      rollout_cluster: main            # where its rollouts are generated (default: its cluster)
      rollout_chips: null              # chips of rollout_cluster for rollouts; default all (on the training cluster:
                                       #   time-shared with training, "colocated"); fewer: a disaggregated split
      rollouts: student                # student: all rollouts on rollout_cluster; teacher_clusters: each domain's
                                       #   rollouts are generated where its teacher lives (weights broadcast there)
      precision: bf16                  # training precision (bf16 | fp8)
      rollout_precision: bf16          # rollout weights (bf16 | fp8 | int8 | fp4)
      rollout_tp: null                 # chips per rollout instance (vLLM tensor parallel); absent -> searched
      rollout_memory_fraction: 1.0     # HBM share the rollout server may use (vLLM gpu_memory_utilization)
      rollout_max_seqs: null           # sequences a rollout server runs at once (vLLM max_num_seqs); absent -> KV cap
      rollout_host_overlap: true       # the rollout engine overlaps its host work with the GPU step (false: vLLM V1
                                       #   without async scheduling, e.g. NeMo RL v0.5.0 / v0.6.0)
      rollout_numa_bound: true         # rollout processes bound to their GPU's NUMA node (false: NeMo RL < v0.7.0)
      reference_swap: false            # reference log-probs swap weights through host memory (NeMo RL Megatron)
      offload_optimizer_for_logprob: false  # non-colocated trainer: optimizer state to the host for the
                                       #   log-probs and back, every step (NeMo RL v0.4.0)
      train_plan: {tp: 1, pp: 16, ep: 16, micro_batch: 1}   # optional, partial: the trainer's plan (run-spec
                                       #   `plan:` keys: zero, recompute, first/last_stage_layers, ...); absent ->
                                       #   the train_framework's defaults, then searched
      train_framework: megatron-bridge-2026  # the trainer's software-stack profile (run-spec `framework`); absent ->
                                       #   the default profile of the chip vendor (frameworks.default_framework)
      train_framework_version: "..."   # free text, as the source states it (run-spec `framework_version`)
      train_optimizer: {grads: bf16}   # the trainer's optimizer-state precisions (run-spec `optimizer:` keys);
                                       #   unstated ones take the train_framework's
      train_options: {tp_comm_overlap: false}   # the trainer's runtime settings (run-spec `training:` keys other
                                       #   than the batch, lengths and precision, which the step sets)
      train_loop: nemo-rl-megatron     # the RL framework's loop around the Megatron passes: its measured cost per
                                       #   MoE layer and micro-batch (posttrain/data/train_loops.yaml); absent: none
    teachers:                          # opd only; `share` = fraction of prompts (domain) it scores
      - {name: math, model: qwen3-30b-a3b, cluster: math, share: 0.5, precision: bf16}
      - {name: code, model: qwen3-30b-a3b, cluster: main, share: 0.5}
    step:
      prompts: 512                     # prompts per step
      samples_per_prompt: 16
      prompt_len: 1024
      rollout_len: 16384               # mean generated tokens per sample
      tail_factor: 1.0                 # longest / mean rollout length: a synchronous step waits for the longest
      steps: 150
      mode: async                      # sync (on-policy) | async (one-step off-policy: rollout of step i+1
                                       #   overlaps scoring and training of step i)
      partial_rollouts: false          # async only: unfinished samples carry over to the next step (slime
                                       #   --partial-rollout, Kimi k1.5), so no step waits for its longest sample;
                                       #   false as NeMo RL v0.6.0 (its collector waits for whole prompt groups)
      max_trajectory_age_steps: 1      # async only: steps of prompt groups in flight (NeMo RL grpo.async_grpo.
                                       #   max_trajectory_age_steps: 1 one-step-off, 8 eight-step-off)
      logprobs: sampled                # what a teacher returns per generated token: sampled (one log-prob),
                                       #   topk (k ids + values) or full (the whole vocabulary; rarely sensible)
      # topk: 20                       # k of logprobs: topk (default 20); refused with any other logprobs
      weight_sync_every: 1             # steps between weight broadcasts to the rollout workers
      extra_forward_passes: 1          # student forward passes besides the update (old-policy log-probs)
      pack_tokens: null                # sequence packing: tokens per training micro-batch (NeMo RL train_mb_tokens);
                                       #   at least the longest sample, prompt_len + ceil(rollout_len x tail_factor)
                                       #   stopped at the student's context (longest_run_len)
      logprob_pack_tokens: null        # tokens per log-prob micro-batch (NeMo RL logprob_mb_tokens); absent ->
                                       #   pack_tokens
      pad_multiple: 1                  # each packed sequence padded to a multiple of this (NeMo RL
                                       #   make_sequence_length_divisible_by)
      train_global_batch: null         # sequences per optimizer step (NeMo RL train_global_batch_size), a divisor
                                       #   of prompts x samples_per_prompt; absent -> one optimizer step on all
      checkpoint_shipping: false       # ship the starting checkpoint to every remote cluster first
    reported:                          # only for published runs (validation/rl/): the measured step time
      step_time_s: 134
      source: "..."
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from ..catalog.types import System
from ..errors import TrainsimError, from_validation
from ..model.arch import Arch
from .loops import train_loops
from ..types_checked import MAX_DIM, MAX_SEQ_LEN, Chips, FiniteFloat, PosInt, SeqLen, as_field_error
from ..catalog.resolve import link_bandwidth, link_latency, resolve_system
from ..model.load import resolve_model
from ..io import load_spec_file, yaml_shape
from ..frameworks import PRECISIONS, check_precision, frameworks
from ..parallel.validity import shape_refusal
from ..spec import OptimizerSpec, PlanSpec, TrainingSpec, check_fp8_recipe, chips_as_stated

#: run-spec ``training:`` keys a post-training step sets itself (from its step and the student's precision), so
#: ``student.train_options`` may not
STEP_TRAINING_KEYS = ("tokens", "seq_len", "global_batch_tokens", "global_batch_seqs", "local_batch_seqs",
                      "batch_tolerance", "precision")


class ClusterPart(BaseModel):
    """A named cluster of a post-training file: its system (catalog id or inline) and chips."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    system: str | dict[str, Any]
    chips: Chips
    #: GPUs per host as the recipe states it (NeMo RL ``cluster.gpus_per_node``); given, the job's ranks are
    #: placed as NeMo RL v0.6.0 places them (hosts in random Ray node-id order, :mod:`.placement`); absent: the
    #: engine's aligned layout
    gpus_per_node: PositiveInt | None = None

    @model_validator(mode="after")
    def _whole_hosts(self):
        # NeMo RL v0.6.0 builds a job's cluster as num_nodes hosts of gpus_per_node GPUs each
        # (nemo_rl/algorithms/grpo.py RayVirtualCluster(bundle_ct_per_node_list=[gpus_per_node] * nodes),
        # world size the sum, nemo_rl/distributed/virtual_cluster.py): its chips are whole hosts
        if self.gpus_per_node is not None and self.chips % self.gpus_per_node:
            raise ValueError(f"chips {self.chips} is not a whole number of hosts of gpus_per_node "
                             f"{self.gpus_per_node} (NeMo RL runs num_nodes x gpus_per_node GPUs)")
        return self


class LinkPart(BaseModel):
    """A link between two clusters: bandwidth (bytes/s each direction) and latency (s), with units accepted.

    Read by the catalog's link rule (:func:`trainsim.catalog.resolve.link_bandwidth` / ``link_latency``), as a
    system's levels are: a bare number is bytes/s or seconds, so ``bandwidth: 10`` (meant as 10 Gb/s) is 10 B/s
    and ``latency: 30`` (meant as 30 ms) is 30 s; both are refused (bandwidth below 1 MB/s, latency over 1 s per
    hop). They were evaluated: ``bandwidth: 10`` answered a 28.5-million-second step, exit 0 (qa28)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    between: tuple[str, str] | None = None
    bandwidth: float | str
    latency: float | str = 0.0

    @field_validator("bandwidth", mode="before")    # before: the value as written is echoed (10, not 10.0)
    @classmethod
    def _bw(cls, v):
        return as_field_error(link_bandwidth, v, "", None, "a bandwidth > 0 such as '10 Gb/s'")

    @field_validator("latency", mode="before")
    @classmethod
    def _lat(cls, v):
        return as_field_error(link_latency, v, "", None)


#: the serving precisions a rollout engine runs (inference/spec.py's weights precisions)
ROLLOUT_PRECISIONS = ("bf16", "fp8", "int8", "fp4")


class StudentPart(BaseModel):
    """The student model: its training cluster, where and how its rollouts run (cluster, chips, precision,
    tp, memory share) and an optional fixed training plan."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    model: str | dict[str, Any]
    cluster: str
    rollout_cluster: str | None = None
    rollout_chips: Chips | None = None
    rollouts: Literal["student", "teacher_clusters"] = "student"
    precision: Literal[PRECISIONS] = "bf16"   # the trainer's: frameworks.PRECISIONS
    rollout_precision: Literal[ROLLOUT_PRECISIONS] = "bf16"
    rollout_tp: int | None = Field(None, gt=0)
    rollout_memory_fraction: float = Field(1.0, gt=0.0, le=1.0)
    #: sequences one rollout server runs at once (vLLM ``max_num_seqs``); absent: no limit besides the KV cache.
    #: :func:`.phases.rollout_time`
    rollout_max_seqs: int | None = Field(None, gt=0)
    #: whether the rollout engine overlaps its per-step host work with the GPU step (vLLM V1 async scheduling,
    #: SGLang's overlap scheduler); false: the GPU waits for it every decode step.
    #: :func:`trainsim.inference.calib.engine_host_calib`
    rollout_host_overlap: bool = True
    #: whether the rollout processes are bound to their GPU's NUMA node (matters on a Grace host only).
    #: :func:`trainsim.inference.calib.engine_host_calib`
    rollout_numa_bound: bool = True
    train_plan: dict[str, Any] | None = None
    #: the trainer's software stack, as a run spec's ``framework`` / ``framework_version``: which profile
    #: (trainsim/catalog/data/framework_schedules.yaml) fills the plan fields, runtime settings and optimizer
    #: precisions its recipe leaves out. :func:`.phases.trainer_run`
    train_framework: str | None = None
    train_framework_version: str | None = Field(None, max_length=200)
    #: the trainer's optimizer-state precisions and offload (a run spec's ``optimizer:``)
    train_optimizer: OptimizerSpec | None = None
    #: the trainer's runtime settings (a run spec's ``training:`` keys but :data:`STEP_TRAINING_KEYS`)
    train_options: dict[str, Any] | None = None
    #: colocated runs move the trainer's weights and optimizer state to host memory for generation and back
    #: every step (NeMo RL's default, ``offload_optimizer_for_refit: true``): :func:`.phases.host_offload_s`
    host_offload: bool = True
    #: a non-colocated trainer moves its optimizer state to host memory for the log-prob passes and back for the
    #: update, every step (NeMo RL ``policy.offload_optimizer_for_logprob``: unconditional in v0.4.0, a key
    #: defaulting to false from v0.5.0): :func:`.phases.optimizer_round_trip_s`. A colocated step already has
    #: its optimizer on the host after the refit's offload, so it adds nothing there.
    offload_optimizer_for_logprob: bool = False
    #: the reference policy's log-probs swap its weights in from host memory and the policy's out and back every
    #: step (NeMo RL Megatron backend, KL penalty on): :func:`.phases.reference_swap_s`
    reference_swap: bool = False
    #: the RL framework's training loop around the Megatron passes (posttrain/data/train_loops.yaml): its measured
    #: per-MoE-layer, per-micro-batch cost is added to a MoE student's update and log-prob passes
    #: (``nemo-rl-megatron``: NeMo RL's MegatronPolicyWorker); absent: the engine's own loop, no such cost.
    #: :func:`.loops.train_loop_cost`
    train_loop: str | None = None

    @field_validator("train_plan")
    @classmethod
    def _plan(cls, v):
        if v is not None:
            PlanSpec.model_validate(v)
        return v

    @field_validator("train_framework")
    @classmethod
    def _framework(cls, v):
        if v is not None and v not in frameworks():
            raise ValueError(f"unknown framework profile; expected one of {', '.join(sorted(frameworks()))}")
        return v

    @field_validator("train_loop")
    @classmethod
    def _loop(cls, v):
        if v is not None and v not in train_loops():
            raise ValueError(f"unknown training loop; expected one of {', '.join(train_loops())}")
        return v

    @field_validator("train_options")
    @classmethod
    def _options(cls, v, info: ValidationInfo):
        if v is not None:
            step_set = sorted(set(v) & set(STEP_TRAINING_KEYS))
            if step_set:
                raise ValueError(f"{', '.join(step_set)} set by the post-training step, not by train_options")
            # checked at the student's precision, which the step gives the trainer (phases.trainer_run)
            TrainingSpec.model_validate({**v, "seq_len": 1, "global_batch_seqs": 1,
                                         "precision": info.data.get("precision", "bf16")})
        return v


class RLReported(BaseModel):
    """A published step time (validation/rl/): seconds per step, where from, on which stack."""
    model_config = ConfigDict(extra="forbid", defer_build=True)
    step_time_s: float = Field(gt=0)
    source: str = ""
    stack: str = ""
    notes: str = ""


class TeacherPart(BaseModel):
    """A teacher model: its cluster, the share of prompts (its domain) it scores and its precision."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = ""
    model: str | dict[str, Any]
    cluster: str
    share: FiniteFloat = Field(1.0, gt=0.0, le=1.0)
    precision: Literal["bf16", "fp8", "int8"] = "bf16"


def longest_sample_len(prompt_len: int, rollout_len: int, tail_factor: float) -> int:
    """Tokens of a step's longest sample: ``prompt_len + ceil(rollout_len x tail_factor)`` (the longest rollout is
    ``tail_factor`` times the mean one). The one place the packing-budget check and the step read it."""
    return int(prompt_len) + int(-(-rollout_len * tail_factor // 1))


def longest_run_len(step: StepPart, student: Arch) -> int:
    """Tokens of the longest sample the rollout actually runs: :attr:`StepPart.longest_seq_len` stopped at the
    student's context (vLLM ``check_stop`` at ``max_model_len``: :func:`check_context`, :func:`context_capped_tail`),
    ``min(prompt_len + ceil(rollout_len x tail_factor), context)``; uncapped for a model stating no context. What
    the packing budgets must hold (:func:`check_pack_budgets`) and what a pipeline-parallel trainer pads to
    (:func:`.phases.pipeline_packed_len`). Example: Llama 3.1 8B (131,072), prompt 128, mean 40,000, tail 3.894:
    155,888 -> 131,072."""
    limit = student.max_context
    return min(step.longest_seq_len, limit) if limit else step.longest_seq_len


def check_pack_budgets(step: StepPart, student: Arch, where: str) -> None:
    """A packing budget (``pack_tokens``, ``logprob_pack_tokens``) must hold the longest sample the step runs
    (:func:`longest_run_len`): NeMo RL's packers raise 'Sequence length L exceeds bin capacity C' for any longer
    sequence (``FirstFitPacker._pack_implementation``, ``nemo_rl/data/packing/algorithms.py``, NVIDIA-NeMo/RL
    02508a40), and its recipes set the budget to ``max_total_sequence_length x micro-batch``, never below a sample.
    A smaller budget was read as one sample per micro-batch, as if the stack packed what it refuses. Checked against
    the sample cut at the student's context, not the stated tail: a budget of the context (NeMo RL's
    ``max_total_sequence_length`` = vLLM ``max_model_len``) holds every sample vLLM returns (qa30b: 131,072 on
    Llama 3.1 8B was refused for a tail of 155,888 tokens the rollout itself prices cut at 131,072)."""
    longest = longest_run_len(step, student)
    capped = " stopped at the student's context" if longest < step.longest_seq_len else ""
    for name in ("pack_tokens", "logprob_pack_tokens"):
        v = getattr(step, name)
        if v is not None and v < longest:
            raise TrainsimError(f"{name} {v:,} tokens is less than the step's longest sample, prompt_len + "
                                f"ceil(rollout_len x tail_factor){capped} = {longest:,} tokens (NeMo RL's packer "
                                f"refuses a sequence longer than its budget); expected at least that; got {v}",
                                field=f"step.{name}", where=where)


class StepPart(BaseModel):
    """One post-training step: prompts, samples per prompt, prompt and rollout lengths (tokens), tail factor,
    steps, sync or async mode, logprobs sent, weight-sync interval, extra forward passes, checkpoint shipping."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    prompts: PosInt
    samples_per_prompt: PosInt = 1
    prompt_len: SeqLen          # lengths as training.seq_len and serving.input_len take them ("16K" = 16,384)
    rollout_len: SeqLen
    tail_factor: FiniteFloat = Field(1.0, ge=1.0, le=100.0)
    steps: PosInt = 1
    mode: Literal["sync", "async"] = "sync"
    #: async only: samples unfinished when a step's batch is due carry over to the next step (slime's
    #: ``--partial-rollout``, THUDM/slime ``slime/utils/arguments.py``: unfinished samples are recycled to the data
    #: buffer; after Kimi k1.5's partial rollouts, arXiv 2501.12599), so the step does not wait for its longest
    #: sample. False: NeMo RL v0.6.0, whose collector pushes a prompt group only when all its samples are done
    #: (:func:`.phases.overlapped_decode_steps`).
    partial_rollouts: bool = False
    #: async only: how many steps ahead of the trainer generation may run (NeMo RL
    #: ``grpo.async_grpo.max_trajectory_age_steps``; the collector keeps ``num_prompts_per_step x
    #: max_trajectory_age_steps`` prompt groups in flight and generates from weight version v for targets v + 1 ...
    #: v + age, ``AsyncTrajectoryCollector._inflight_sema`` / ``_calculate_target_weights``,
    #: ``nemo_rl/algorithms/async_utils.py`` tag v0.6.0). 1: one-step off-policy. :func:`.phases.overlapped_decode_steps`
    max_trajectory_age_steps: PosInt = 1
    logprobs: Literal["sampled", "topk", "full"] = "sampled"
    topk: PosInt = 20
    weight_sync_every: PosInt = 1
    extra_forward_passes: FiniteFloat = Field(1.0, ge=0.0, le=100.0)
    #: sequence packing: token budget of one training micro-batch (NeMo RL ``sequence_packing.train_mb_tokens`` =
    #: ``max_total_sequence_length x train_micro_batch_size``); absent: one sequence per micro-batch.
    #: :func:`.phases.packed_sequences`
    pack_tokens: int | None = Field(None, gt=0)
    #: sequence packing of the log-prob (forward-only) passes: token budget of one micro-batch (NeMo RL
    #: ``sequence_packing.logprob_mb_tokens`` = ``max_total_sequence_length x logprob_batch_size``,
    #: examples/configs/grpo_math_1B.yaml tag v0.6.0); absent: ``pack_tokens``. :func:`.phases.train_time`
    logprob_pack_tokens: int | None = Field(None, gt=0)
    #: each sequence is padded to a multiple of this before packing (NeMo RL ``policy.make_sequence_length_divisible_by``,
    #: ``nemo_rl/models/policy/lm_policy.py`` tag v0.6.0: ``sequence_length_pad_multiple``; default 1 in
    #: ``examples/configs/grpo_math_1B.yaml``, the DTensor TP size)
    pad_multiple: PosInt = 1
    #: sequences per optimizer step (NeMo RL ``policy.train_global_batch_size``, the performance summary's T-GBS);
    #: a step of more sequences takes ``sequences / train_global_batch`` optimizer steps. Absent: one.
    train_global_batch: PosInt | None = None
    checkpoint_shipping: bool = False

    @field_validator("topk")
    @classmethod
    def _topk_only_with_topk(cls, v: int, info: ValidationInfo) -> int:
        """A stated ``topk`` with ``logprobs`` other than ``topk`` was dropped without a word (a teacher returning one
        sampled log-prob, or the whole vocabulary, sends no top-k)."""
        lp = info.data.get("logprobs")
        if lp is not None and lp != "topk":
            raise ValueError(f"topk {v} applies to logprobs: topk only; logprobs is {lp} (leave topk out or say "
                             "logprobs: topk)")
        return v

    @field_validator("train_global_batch")
    @classmethod
    def _whole_global_batches(cls, v: int | None, info: ValidationInfo) -> int | None:
        """``train_global_batch`` must divide the step's sequences (prompts x samples_per_prompt): NeMo RL asserts
        'Total batch size (N) is not a multiple of batch_size (gbs)' (``BatchedDataDict.shard_by_batch_size``,
        ``nemo_rl/distributed/batched_data_dict.py``, tag v0.6.0 = 5fb58893). 2,048 sequences with 600 were 3
        optimizer steps (248 sequences dropped) and with 5,000 one step, each without a word."""
        d = info.data
        if v is None or not {"prompts", "samples_per_prompt"} <= set(d):
            return v
        seqs = d["prompts"] * d["samples_per_prompt"]
        if seqs % v:
            raise ValueError(f"train_global_batch {v:,} does not divide the step's {seqs:,} sequences (prompts x "
                             "samples_per_prompt; NeMo RL asserts the step is whole global batches); expected a "
                             "divisor of it")
        return v

    @model_validator(mode="after")
    def _sizes(self):
        if self.partial_rollouts and self.mode != "async":
            raise ValueError("partial_rollouts applies to mode async only (a synchronous step waits for every "
                             "sample it trains on)")
        if self.weight_sync_every > 1 and self.mode != "async":   # was timed as a refit every n-th step (qa21)
            raise ValueError(f"weight_sync_every {self.weight_sync_every} applies to mode async only (a synchronous, "
                             "on-policy step generates with the weights it trains, so it syncs them every step); "
                             "expected 1 or mode async")
        if self.max_trajectory_age_steps > 1 and self.mode != "async":
            raise ValueError(f"max_trajectory_age_steps {self.max_trajectory_age_steps} applies to mode async only "
                             "(a synchronous step generates with the weights it trains); expected 1 or mode async")
        if self.prompts * self.samples_per_prompt > MAX_DIM:
            raise ValueError(f"prompts x samples_per_prompt = {self.prompts * self.samples_per_prompt:,} sequences "
                             f"per step; expected at most {MAX_DIM:,}")
        if self.prompt_len + self.rollout_len > MAX_SEQ_LEN:
            raise ValueError(f"prompt_len + rollout_len = {self.prompt_len + self.rollout_len:,} tokens; expected "
                             f"at most {MAX_SEQ_LEN:,}")
        return self

    @property
    def sequences(self) -> int:
        """Sequences per step: prompts x samples per prompt."""
        return self.prompts * self.samples_per_prompt

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps per RL step: ``sequences // train_global_batch``, at least 1 (NeMo RL's
        ``MegatronPolicyWorker.train``, ``nemo_rl/models/policy/workers/megatron_policy_worker.py`` tag v0.6.0,
        loops over ``total_dataset_size // gbs`` global batches with one optimizer step each). Example: 64 prompts
        x 32 samples, T-GBS 512 -> 4."""
        if not self.train_global_batch:
            return 1
        return max(self.sequences // self.train_global_batch, 1)

    @property
    def longest_seq_len(self) -> int:
        """Tokens of the step's longest sample (:func:`longest_sample_len`)."""
        return longest_sample_len(self.prompt_len, self.rollout_len, self.tail_factor)

    @property
    def seq_len(self) -> int:
        """Tokens per sequence: prompt length + rollout length."""
        return self.prompt_len + self.rollout_len


class PostTrainFile(BaseModel):
    """A post-training (RL or on-policy distillation) spec file: clusters, links, student, teachers, step,
    and for validation points the reported figures."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = ""
    kind: Literal["rl", "opd"] = "opd"
    clusters: dict[str, ClusterPart]
    links: list[LinkPart] = []
    default_link: LinkPart | None = None
    student: StudentPart
    teachers: list[TeacherPart] = []
    step: StepPart
    notes: str | None = None
    reported: RLReported | None = None

    @model_validator(mode="after")
    def _refs(self):
        names = set(self.clusters)
        refs = [("student.cluster", self.student.cluster)]
        if self.student.rollout_cluster:
            refs.append(("student.rollout_cluster", self.student.rollout_cluster))
        refs += [(f"teachers.{i}.cluster", t.cluster) for i, t in enumerate(self.teachers)]
        for i, ln in enumerate(self.links):
            if ln.between is None:
                raise ValueError(f"links.{i}: give `between: [A, B]`")
            refs += [(f"links.{i}.between", c) for c in ln.between]
        for where, c in refs:
            if c not in names:
                raise ValueError(f"{where}: unknown cluster '{c}'; clusters are {sorted(names)}")
        pairs: dict[frozenset, int] = {}   # one link per pair: a second one was kept over the first without a word
        for i, ln in enumerate(self.links):
            a, b = ln.between or ("", "")
            if a == b:
                raise ValueError(f"links.{i}.between: a link from cluster '{a}' to itself; traffic inside a cluster "
                                 "runs on its own network, expected two different clusters")
            j = pairs.setdefault(frozenset((a, b)), i)
            if j != i:
                raise ValueError(f"links.{i}.between: clusters '{a}' and '{b}' already have links.{j}; give each "
                                 "pair of clusters one link")
        if self.kind == "opd" and not self.teachers:
            raise ValueError("teachers: kind opd needs at least one teacher, got none; expected a list of "
                             "{name, model, cluster, share} (or kind rl)")
        if self.kind == "rl" and self.teachers:
            raise ValueError(f"teachers: kind rl takes no teachers, got {len(self.teachers)}; expected none "
                             "(leave teachers out, or use kind opd)")
        if self.kind == "rl" and self.student.rollouts == "teacher_clusters":   # was ignored (qa21)
            raise ValueError("student.rollouts: teacher_clusters generates each domain's rollouts where its teacher "
                             "lives; kind rl has no teachers (leave rollouts out, or say student)")
        if self.teachers and abs(sum(t.share for t in self.teachers) - 1.0) > 1e-6:
            raise ValueError(f"teachers.*.share: the teachers' shares must sum to 1, got "
                             f"{' + '.join(f'{t.share:g}' for t in self.teachers)} = "
                             f"{sum(t.share for t in self.teachers):g}")
        seen: dict[str, int] = {}   # a teacher's phases and traffic are labelled by its name (teacher{i} unnamed)
        for j, t in enumerate(self.teachers):
            n = t.name or f"teacher{j}"
            if n in seen:
                raise ValueError(f"teachers.{j}.name: {n!r} is also teachers.{seen[n]}'s name; give each teacher "
                                 "its own name")
            seen[n] = j
        rc = self.student.rollout_cluster or self.student.cluster
        if self.student.rollout_chips and self.student.rollout_chips > self.clusters[rc].chips:
            raise ValueError(f"student.rollout_chips: {self.student.rollout_chips:,} chips, more than cluster "
                             f"'{rc}' has; expected at most {self.clusters[rc].chips:,}")
        if (self.student.rollout_chips and rc == self.student.cluster
                and self.student.rollout_chips >= self.clusters[rc].chips):
            self.student.rollout_chips = None  # all chips: colocated
        return self


@dataclass(frozen=True)
class Cluster:
    """A resolved cluster: name, system and chips."""

    name: str
    system: System
    chips: int
    gpus_per_node: int | None = None


@dataclass(frozen=True)
class Link:
    """A resolved link between clusters ``a`` and ``b``: bandwidth (bytes/s each direction), latency (s)."""

    a: str
    b: str
    bandwidth: float      # bytes/s, each direction
    latency: float        # s


@dataclass(frozen=True)
class Teacher:
    """A resolved teacher: name, architecture, cluster, share of prompts it scores and precision."""

    name: str
    arch: Arch
    cluster: str
    share: float
    precision: str


@dataclass(frozen=True)
class PostTrain:
    """A resolved post-training spec."""

    name: str
    kind: str
    clusters: dict[str, Cluster]
    links: dict[frozenset, Link]
    default_link: Link | None
    student_arch: Arch
    student: StudentPart
    teachers: tuple[Teacher, ...]
    step: StepPart
    path: Path | None = None
    meta: dict = field(default_factory=dict)
    reported: RLReported | None = None

    @property
    def rollout_cluster(self) -> str:
        """The cluster the student's rollouts run on (its training cluster unless set)."""
        return self.student.rollout_cluster or self.student.cluster

    def link(self, a: str, b: str) -> Link | None:
        """The link between two clusters (None inside one cluster)."""
        if a == b:
            return None
        ln = self.links.get(frozenset((a, b)))
        if ln is not None:
            return ln
        if self.default_link is not None:
            return Link(a, b, self.default_link.bandwidth, self.default_link.latency)
        raise TrainsimError(f"no link between clusters '{a}' and '{b}' (add it to `links` or give `default_link`)",
                            field="links")

    @property
    def longest_run_len(self) -> int:
        """Tokens of the longest sample the step runs, stopped at the student's context (:func:`longest_run_len`)."""
        return longest_run_len(self.step, self.student_arch)

    @property
    def rollout_tail_factor(self) -> float:
        """``step.tail_factor`` as the rollouts run it: the longest sample stops at the student's context
        (:func:`context_capped_tail`)."""
        return context_capped_tail(self.step, self.student_arch)[0]

    @property
    def warnings(self) -> list[str]:
        """What the step's pricing changed from the spec as stated, one line each (``trainsim posttrain`` prints
        them; ``--json``: ``warnings``)."""
        note = context_capped_tail(self.step, self.student_arch)[1]
        return [note] if note else []

    def with_wan(self, bandwidth: float, latency: float | None = None) -> "PostTrain":
        """The same spec with every inter-cluster link (and the default link) at ``bandwidth`` bytes/s."""
        links = {k: Link(v.a, v.b, bandwidth, v.latency if latency is None else latency)
                 for k, v in self.links.items()}
        dl = self.default_link
        if dl is not None:
            dl = Link(dl.a, dl.b, bandwidth, dl.latency if latency is None else latency)
        return PostTrain(**{**self.__dict__, "links": links, "default_link": dl})


def check_context(step: StepPart, student: Arch, teachers: tuple[Teacher, ...], where: str) -> None:
    """Refuse a step whose own stated lengths a model's context rules out (one line, exit 2).

    A rollout server (vLLM v0.17.1, the version NeMo RL v0.6.0 pins: ``vllm==0.17.1`` in its pyproject.toml) runs
    with ``max_model_len`` at most the model's context (:attr:`Arch.max_context`, config.json
    ``max_position_embeddings``; :func:`~trainsim.model.hf.max_context_of`): it refuses a prompt longer than that
    ("The decoder prompt (length N) is longer than the maximum model length of M", ``vllm/v1/engine/processor.py``)
    and stops a sample once prompt + generated tokens reach it (``check_stop``, ``vllm/v1/core/sched/utils.py``:
    ``num_tokens >= max_model_len`` -> ``FINISHED_LENGTH_CAPPED``; NeMo RL v0.6.0 asserts ``response_length <=
    max_model_len`` and marks ``finish_reason == "length"`` samples truncated,
    ``nemo_rl/models/generation/vllm/vllm_worker.py``, and ``tools/model_diagnostics/1.max_model_len_respected.py``
    checks the cap with ``max_tokens`` above it). So no sample is longer than the context, nor is the mean: a
    ``prompt_len`` above the student's context, or a mean ``prompt_len + rollout_len`` above it, states lengths the
    stack cannot produce, and is refused; a longest sample above it (``tail_factor``) is what the stack truncates,
    priced truncated (:func:`context_capped_tail`). A teacher scores prompt + response as one prefill on its own
    server, which refuses a sequence longer than its context: a mean ``prompt_len + rollout_len`` above a
    teacher's context is refused too. A model whose config states no context is not checked."""
    def refuse(arch: Arch, who: str, fld: str) -> None:
        limit = arch.max_context
        if not limit:
            return
        if step.prompt_len > limit:
            raise TrainsimError(f"prompt_len {step.prompt_len:,} tokens is more than the {who} {arch.name}'s "
                                f"context of {limit:,} (max_position_embeddings; vLLM refuses a prompt longer than "
                                f"max_model_len); expected at most {limit:,}", field="step.prompt_len", where=where)
        if step.seq_len > limit:
            raise TrainsimError(f"prompt_len {step.prompt_len:,} + rollout_len {step.rollout_len:,} = "
                                f"{step.seq_len:,} tokens is more than the {who} {arch.name}'s context of {limit:,} "
                                f"(max_position_embeddings): vLLM stops every sample at max_model_len, so no mean "
                                f"sample is longer; expected rollout_len at most {limit - step.prompt_len:,}",
                                field=fld, where=where)

    refuse(student, "student", "step.rollout_len")
    for i, t in enumerate(teachers):
        refuse(t.arch, f"teacher '{t.name}'", f"teachers.{i}.model")


def check_topk(step: StepPart, teachers: tuple[Teacher, ...], where: str) -> None:
    """Refuse ``logprobs: topk`` with a ``topk`` above a teacher's vocabulary (:attr:`Arch.vocab`): a teacher
    returns at most its whole distribution (``torch.topk`` raises 'selected index k out of range' past the
    dimension; vLLM refuses logprobs above ``max_logprobs``), so the most it can send is ``logprobs: full``.
    ``topk: 100000000`` with Qwen3-30B-A3B teachers (151,936) was priced at 600 MB per generated token (qa30b)."""
    if step.logprobs != "topk":
        return
    for t in teachers:
        if t.arch.vocab and step.topk > t.arch.vocab:
            raise TrainsimError(f"topk {step.topk:,} is more than the teacher '{t.name}' {t.arch.name}'s vocabulary "
                                f"of {t.arch.vocab:,} (a teacher returns at most its whole distribution); expected at "
                                f"most {t.arch.vocab:,}, or logprobs: full", field="step.topk", where=where)


def context_capped_tail(step: StepPart, student: Arch) -> tuple[float, str]:
    """(tail factor, note) of the step's rollouts: the longest sample, ``rollout_len x tail_factor`` generated
    tokens, stops where prompt + generated reach the student's context (vLLM ``check_stop``, :func:`check_context`),
    so the tail factor priced is ``min(tail_factor, (context - prompt_len) / rollout_len)``; the note says so where
    that cut it ('' where not). Example: Qwen3-30B-A3B (40,960), prompt 1,024, mean 16,384, tail 3: the longest
    would be 1,024 + 49,152 = 50,176 tokens; it stops at 40,960, 39,936 generated: tail 2.4375."""
    limit = longest_run_len(step, student)      # the one cap rule: min(longest sample, context)
    if limit >= step.longest_seq_len or step.rollout_len <= 0:
        return float(step.tail_factor), ""
    cap = (limit - step.prompt_len) / step.rollout_len
    return cap, (f"the longest sample, prompt_len {step.prompt_len:,} + rollout_len {step.rollout_len:,} x "
                 f"tail_factor {step.tail_factor:g} = {step.longest_seq_len:,} tokens, is more than the student "
                 f"{student.name}'s context of {limit:,}: vLLM stops it there (max_model_len), so it is priced at "
                 f"{limit - step.prompt_len:,} generated tokens (tail_factor {cap:.4g})")


def parse_posttrain(doc: Any, *, base_dir: Path | None = None, where: str = "post-training spec") -> PostTrain:
    """Validate a post-training mapping and resolve its models and systems."""
    if not isinstance(doc, dict):
        raise TrainsimError(f"expected a mapping of post-training keys, got {yaml_shape(doc)}", where=where)
    if isinstance(doc.get("clusters"), dict):   # a cluster's chips as "1 pod", "2 systems" (spec.chips_as_stated)
        doc = {**doc, "clusters": {n: ({**c, "chips": chips_as_stated(c["chips"], c.get("system"), base_dir, where,
                                                                       f"clusters.{n}.chips")}
                                       if isinstance(c, dict) and isinstance(c.get("chips"), str) else c)
                                   for n, c in doc["clusters"].items()}}
    try:
        spec = PostTrainFile.model_validate(doc)
    except ValidationError as exc:
        raise from_validation(exc, where, PostTrainFile) from None
    clusters = {n: Cluster(n, resolve_system(c.system, base_dir, field=f"clusters.{n}.system", where=where), c.chips,
                           c.gpus_per_node)
                for n, c in spec.clusters.items()}
    if spec.student.train_options:   # the trainer runs on the student's cluster (checked to exist above)
        check_fp8_recipe(spec.student.train_options.get("fp8_recipe"), clusters[spec.student.cluster].system,
                         "student.train_options.fp8_recipe", where)
    if spec.student.train_framework is not None:   # FP8 training on a stack from before its FP8 (as run specs)
        check_precision(spec.student.precision, spec.student.train_framework, "student.precision", where)
    links = {}
    for ln in spec.links:
        a, b = ln.between
        links[frozenset((a, b))] = Link(a, b, float(ln.bandwidth), float(ln.latency))
    dl = spec.default_link
    default = Link("*", "*", float(dl.bandwidth), float(dl.latency)) if dl is not None else None
    arch_cache: dict[str, Arch] = {}

    def arch_of(value, fld):
        key = repr(value)
        if key not in arch_cache:
            arch_cache[key] = resolve_model(value, base_dir, field=fld, where=where)
        return arch_cache[key]

    student = arch_of(spec.student.model, "student.model")
    if spec.student.train_plan:   # a trainer plan the model's shape rules out for any cluster: bad input, as in a
        # run spec (spec.check_plan_shape), not 'no valid plan' blaming the chips (cp: its length is the packed one)
        tplan = PlanSpec.model_validate(spec.student.train_plan)
        for name in ("tp", "pp", "ep", "etp"):
            why = shape_refusal(name, tplan.values(name) or [], student, 1)
            if why:
                raise TrainsimError(why, field=f"student.train_plan.{name}", where=where)
    teachers = tuple(Teacher(t.name or f"teacher{i}", arch_of(t.model, f"teachers.{i}.model"), t.cluster, t.share,
                             t.precision) for i, t in enumerate(spec.teachers))
    check_context(spec.step, student, teachers, where)
    check_pack_budgets(spec.step, student, where)
    check_topk(spec.step, teachers, where)
    return PostTrain(name=spec.name or where, kind=spec.kind, clusters=clusters, links=links, default_link=default,
                     student_arch=student, student=spec.student, teachers=teachers, step=spec.step,
                     reported=spec.reported)


def load_posttrain(path: str | Path) -> PostTrain:
    """Load and resolve a post-training spec YAML file (:func:`trainsim.io.load_spec_file`: safe loader, line
    numbers in errors)."""
    path = Path(path)
    pt = load_spec_file(path, parse_posttrain, what="post-training spec")
    return PostTrain(**{**pt.__dict__, "path": path})
