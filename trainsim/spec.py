"""The run spec (format v1, docs/run-spec.md): pydantic models, loading and resolution.

``load_run(path)`` validates the YAML (unknown keys are errors), resolves the model and system (catalog ids,
files relative to the spec, or inline mappings) and returns a :class:`Run`. Every validation problem becomes a
one-line :class:`~trainsim.errors.TrainsimError` naming the file, the field, the value and what was expected.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from .catalog.types import System
from .errors import TrainsimError, from_validation
from .model.arch import Arch
from .parallel.batch import DEFAULT_TOKENS_TOLERANCE
from .parallel.schedules import REGISTRY as SCHEDULE_REGISTRY, SCHEDULES
from .parallel.validity import (REASONS as VALIDITY_REASONS, SHAPE_RULES, shape_refusal, sharding_zeros,
                                middle_ranks, stage_layers_ok)
from .types_checked import MAX_TOKENS, Chips, lower_case, IdStr, Int, PosFloat, PosInt, SeqLen, positive_count
from .units import batch_tokens_as_stated, parse_count, parse_int_count, percent_value, ungrouped
from .catalog.resolve import resolve_system
from .model.load import resolve_model
from .frameworks import (PRECISIONS, attention_unfused, check_precision, frameworks,
                         local_batch_calls, profile, restrict_plan, stack_of)
from .errors import unknown
from .io import load_spec_file, yaml_shape


class TrainingSpec(BaseModel):
    """The run spec's ``training:`` section: tokens, sequence length, global batch, precision and kernels."""

    model_config = ConfigDict(extra="forbid")
    tokens: float | None = None
    seq_len: SeqLen = 4096
    global_batch_tokens: float | None = None
    global_batch_seqs: PosInt | None = None
    # sequences each data-parallel rank runs per call of the pipeline schedule (NeMo AutoModel
    # step_scheduler.local_batch_size): the step makes global / (dp x local) such calls, each with its own pipeline
    # fill and drain (parallel/schedules.py pipeline_calls). Unset: one call per step (Megatron-Core runs all the
    # step's micro-batches in one schedule).
    local_batch_seqs: PosInt | None = None
    # ZeRO sharding over groups smaller than the data-parallel group, the states replicated across the groups
    # (MiCS, Zhang et al. VLDB 2023 / arXiv 2205.00119: the SageMaker model parallelism library's
    # sharded_data_parallel_degree; BloombergGPT: 'We shard a model across 128 GPUs, and we have 4 copies'):
    # parameters gathered and gradients reduce-scattered inside a group, the gradient shards all-reduced across
    # the groups once per step (perf/comm_dp.py replica_sync_time). Unset: the whole dp x cp group.
    zero_shard_group: PosInt | None = None
    batch_tolerance: float | None = None   # fraction (0.05 or "5%"); default 5% for a batch in tokens, else 0
    # the stacks' offer: frameworks.PRECISIONS, in any case ("BF16")
    precision: Annotated[Literal[PRECISIONS], BeforeValidator(lower_case)] = "bf16"
    # attention kernel: 'flash' (the chip generation's native fused kernel: FlashAttention-3 / cuDNN fused attention
    # on Hopper and newer, FlashAttention-2 on Ampere, FlashAttentionScore on Ascend), 'flash2' (FlashAttention-2, e.g.
    # PyTorch SDPA's flash backend, also on Hopper and newer), 'unfused' (scores in HBM). Unset: the stack's default.
    attention: Literal["flash", "flash2", "unfused"] | None = None
    # activations cached in FP8 for the backward pass: 'gemm_inputs' (Transformer Engine: the FP8 casts of GEMM
    # inputs), 'all' (DeepSeek-V3 sec. 3.3.3: also the SwiGLU inputs and attention outputs), 'none'. Only with fp8.
    fp8_activations: Literal["gemm_inputs", "all", "none"] = "gemm_inputs"
    # communication overlap switches of Megatron-Core / Transformer Engine; unset: the software stack's default
    # (frameworks.runtime_settings). tp_comm_overlap: --tp-comm-overlap (TE userbuffers: the sequence-parallel
    # all-gather / reduce-scatter pipelined with the GEMMs); moe_a2a_overlap: --overlap-moe-expert-parallel-comm
    # (Megatron-Bridge moe_a2a_overlap: the expert all-to-all of one micro-batch hidden behind another's compute)
    tp_comm_overlap: bool | None = None
    moe_a2a_overlap: bool | None = None
    # data-parallel gradient sync overlapping the backward: true for bucketed DDP (torch DDP, Megatron-Core
    # --overlap-grad-reduce); false where the gradients are reduced after the whole forward-backward (Megatron-LM's
    # 'local' DDP, 2019-2022: megatron/training.py train_step). Unset: the software stack's default.
    grad_sync_overlap: bool | None = None
    # weight-gradient GEMMs accumulate straight into the fp32 main-grad buffer (Megatron-LM
    # --gradient-accumulation-fusion, on unless --no-gradient-accumulation-fusion); false: each micro-batch's BF16
    # weight gradient is added to it by a separate kernel (perf/comm_dp.py grad_accumulation_bytes). Unset: the
    # software stack's default.
    grad_accumulation_fusion: bool | None = None
    # rotary embeddings as fused kernels (Megatron-LM's default; --no-rope-fusion, Primus apply_rope_fusion: false
    # turn it off); false: Megatron-Core's unfused PyTorch ops (perf/compute.py unfused_rope_extra_bytes_per_token).
    # Unset: the software stack's default.
    rope_fusion: bool | None = None
    # a gated FFN's activation (SwiGLU / GeGLU: act(x1) * x2) as one fused kernel (Megatron-Core's
    # bias_activation_fusion; MindSpeed's npu_swiglu); false: the two PyTorch ops of Megatron-Core's MLP.forward glu
    # (perf/compute.py act_fn_bytes_per_f: 10 bytes per intermediate element against 6). Unset: the stack's default.
    activation_fusion: bool | None = None
    # MoE token dispatcher: 'alltoall' (one NCCL all-to-all, a copy per routed expert: Megatron-Core
    # moe_token_dispatcher_type=alltoall) or 'deepep' / 'hybridep' (Megatron-Core flex dispatcher: a token crosses
    # the scale-out network once per destination node and is fanned out over NVLink; DeepEP, NVIDIA HybridEP) or
    # 'allgather' (Megatron-Core core_r0.6.0's default MoEAllGatherTokenDispatcher: every token of the tp x ep group
    # all-gathered once, the expert outputs reduce-scattered back; perf/comm_ep.py etp_comm_fwd).
    # Unset: the software stack's default.
    moe_dispatcher: Literal["alltoall", "deepep", "hybridep", "allgather"] | None = None
    # SMs HybridEP's dispatch and combine kernels occupy (Megatron-Core moe_hybridep_num_sms, since 2026 routed to
    # moe_flex_dispatcher_num_sms): the compute they take from the GEMMs they overlap (perf/comm_ep.py
    # dispatcher_sms). Only with moe_dispatcher hybridep. Unset: the software stack's default.
    moe_hybridep_num_sms: Int | None = Field(None, ge=1)
    # CUDA graphs: 'full' (the whole iteration captured, sync-free MoE: Megatron-Core cuda_graph_impl=full_iteration),
    # 'partial' (some scopes: attention, router, preprocessing), 'none'. Unset: the stack's default.
    cuda_graphs: Literal["none", "partial", "full"] | None = None
    # MoE token drop with padding to capacity (Megatron-Core --moe-expert-capacity-factor with
    # --moe-pad-expert-input-to-capacity; NeMo 2.0 MegatronTokenDropCallback, Megatron-Bridge use_tokendrop): every
    # expert receives exactly its capacity, so the split sizes are known on the host and the dispatcher never
    # synchronises the device (all-to-all and HybridEP dispatchers; Megatron-Core rejects it with DeepEP).
    # False: dropless. Unset: the software stack's default (dropless).
    moe_token_drop: bool | None = None
    # FP8 weights (Megatron-Core --fp8-param-gather, Transformer Engine fp8_model_init): the model's weights held and
    # all-gathered in FP8, the master copy in the optimizer. Only with fp8. Unset: the stack's default.
    fp8_param_gather: bool | None = None
    # FP8 scaling recipe (Megatron-Core --fp8-recipe; Megatron-Bridge --compute_dtype fp8_cs / fp8_mx / fp8_sc):
    # 'delayed' (per-tensor, scale from an amax history: TE DelayedScaling), 'current' (per-tensor, scale from this
    # tensor's amax: TE Float8CurrentScaling, Megatron-Core 'tensorwise'), 'mxfp8' (1 x 32 blocks, E8M0 scales:
    # TE MXFP8BlockScaling; Blackwell), 'blockwise' (DeepSeek-V3 1 x 128 activations / 128 x 128 weights: TE
    # Float8BlockScaling). Only with fp8. Unset: the stack's default (frameworks.runtime_settings).
    fp8_recipe: Literal["delayed", "current", "mxfp8", "blockwise"] | None = None
    # loss kernel: 'te' (Transformer Engine's parallel cross entropy, the gradient written in place into the BF16
    # logits), 'native' (Megatron-Core's fused vocab-parallel kernel), 'none' (unfused), 'fp32_upcast' (PyTorch's
    # cross entropy on logits upcast to fp32, torchtitan's loss) or 'torch_bf16' (PyTorch's cross entropy on the BF16
    # logits: NeMo AutoModel's MaskedCrossEntropy with fp32_upcast: false). Unset: the stack's default.
    cross_entropy_fusion: Literal["none", "native", "te", "fp32_upcast", "torch_bf16"] | None = None
    # precision of the output head's GEMMs (the logits W^T h and its two backward GEMMs): 'bf16' (the run's mixed
    # precision) or 'fp32' (operands upcast and multiplied in FP32: BloombergGPT's 'FP32 precision for LM-head
    # computation (prior to softmax)', arXiv 2303.17564 App. C.1-C.2), which PyTorch from 1.12 runs on the CUDA cores,
    # not TF32 (torch.backends.cuda.matmul.allow_tf32 default False): perf/compute.py head_gemm_fwd. Unset: 'bf16'.
    head_precision: Literal["bf16", "fp32"] | None = None
    # dropout probability on the attention probabilities, in [0, 1): priced only by the unfused core, whose dropout
    # pass (and its stored mask and output) PyTorch skips at 0 (perf/compute.py unfused_score_bytes_per_token,
    # perf/activations.py); a fused flash kernel is unaffected. Unset: the stack's launcher default
    # (frameworks.runtime_settings: Megatron-LM's --attention-dropout 0.1).
    attention_dropout: float | None = Field(None, ge=0.0, lt=1.0)
    # dropout probability on each sublayer's (attention, MLP) output before its residual add (Megatron-LM
    # --hidden-dropout, HF resid_pdrop, metaseq --dropout), in [0, 1): above 0 the layer keeps two 1-byte masks
    # (Korthikanti et al. 2022 sec. 4.1's 2 s b h of 34 s b h; perf/activations.py) and the fused bias-dropout-add
    # writes and applies them (perf/compute.py residual_bytes_per_token); at 0 nothing. Unset: the stack's
    # (frameworks.runtime_settings: the profile's default, else Megatron-LM's --hidden-dropout 0.1).
    hidden_dropout: float | None = Field(None, ge=0.0, lt=1.0)
    # vocabulary padding: the stack pads the vocabulary to a multiple of this x tp (Megatron-LM
    # --make-vocab-size-divisible-by, Megatron-Bridge should_pad_vocab with make_vocab_size_divisible_by); 1 = no
    # padding beyond the tp split. Unset: the stack's (the profile's vocab_divisible_by, with its source).
    vocab_divisible_by: Int | None = Field(None, ge=1)
    # memory-bound kernels (norms, rotary, activation): 'fused' (Transformer Engine / Apex fused kernels, or
    # torch.compile) or 'eager' (one kernel per PyTorch op, each reading and writing HBM: torchtitan without
    # --training.compile). Unset: the stack's default.
    elementwise_kernels: Literal["fused", "eager"] | None = None
    # the stack's layers run under torch.compile (torchtitan --training.compile, NeMo AutoModel
    # distributed.enable_compile): PyTorch's experimental CP ring is then traced and its collectives waited at
    # once (perf/comm_cp.py torch_ring_exposed); stated true, elementwise_kernels defaults to 'fused'. Unset: the
    # stack's default (frameworks.runtime_settings; off in every profile).
    compiled: bool | None = None
    # MoE router replaced by NeMo AutoModel's FakeBalancedGate (backend fake_balanced_gate: true, noise 0): token t
    # takes the k consecutive experts from (t k) mod E, so it reaches few EP ranks and nodes (perf/routing.py
    # fake_balanced_blocks); every expert gets the same load. Primus's moe_router_force_load_balancing does the same
    # (PrimusTopKRouter.routing at AMD-AGI/Primus b3699abf: experts (t k + j) mod E). Unset: the stack's default
    # (a learned router).
    moe_fake_balanced_gate: bool | None = None
    # MoE experts as one grouped GEMM (Megatron-Core --moe-grouped-gemm: GroupedMLP / TEGroupedMLP) or, false, one
    # expert after another (SequentialMLP: per-expert slices of the permuted tokens, whose autograd moves whole
    # buffers per expert; perf/compute.py sequential_experts_fwd_bwd). Unset: the software stack's default.
    moe_grouped_gemm: bool | None = None
    # the routed experts as Transformer Engine's fused grouped MLP (NVTE_CUTEDSL_FUSED_GROUPED_MLP=1 with Megatron-Core
    # use_transformer_engine_op_fuser; Megatron-Bridge cutedsl_fused_grouped_mlp): fc1's epilogue applies SwiGLU and
    # writes fc2's input in MXFP8, fc2's dgrad epilogue applies the SwiGLU backward and writes fc1's output gradient
    # in MXFP8, so neither the activation nor those two casts run as kernels of their own (perf/compute.py
    # fused_grouped_mlp_cast_elems_per_token). Only with fp8_recipe mxfp8. Unset: the software stack's default (off).
    moe_fused_grouped_mlp: bool | None = None
    # MoE routing map padded so that every local expert's rows are a multiple of the FP8 alignment (Megatron-Core
    # --moe-router-padding-for-quantization, alias --moe-router-padding-for-fp8): TEGroupedMLP's Fp8Padding then
    # copies nothing (perf/compute.py fp8_padding_fwd_bwd). Only with fp8 and not with the all-gather dispatcher
    # (Megatron-Core transformer_config.py at 0d8e0714cd refuses both). Unset: the stack's default (off).
    moe_router_padding_for_quantization: bool | None = None

    @field_validator("tokens", "global_batch_tokens", mode="before")
    @classmethod
    def _count(cls, v, info):
        if v is None:
            return None
        x = parse_count(v, f"training.{info.field_name}")
        seq_len = info.data.get("seq_len")      # declared before global_batch_tokens; absent when it failed
        if info.field_name == "global_batch_tokens" and isinstance(seq_len, int) and seq_len > 0:
            x = batch_tokens_as_stated(v, x, seq_len)     # "4M" of 4,096-token sequences: 1,024 of them
        return positive_count(x, info.field_name, upper=MAX_TOKENS)

    @field_validator("global_batch_seqs", mode="before")
    @classmethod
    def _seqs(cls, v, info):
        """A batch in sequences as people state it ("1K", "2k", "1,024"): :func:`trainsim.units.parse_int_count`,
        the grammar of ``chips`` and ``tokens``; non-strings are left to the integer type check."""
        return parse_int_count(v, f"training.{info.field_name}") if isinstance(v, str) else v

    @field_validator("batch_tolerance", mode="before")
    @classmethod
    def _tolerance(cls, v):
        if isinstance(v, str):
            x = percent_value(v)
            if x is None:
                raise ValueError(f"expected a fraction such as 0.05 or '5%', got {v!r}")
            v = x
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0):
            raise ValueError(f"expected a fraction from 0 (exact, Megatron-style) to below 1, got {v!r}")
        return v

    @model_validator(mode="after")
    def _token_drop_dispatcher(self):
        # Megatron-Core transformer_config.py: "Flex token dispatcher with deepep backend does not support
        # moe_pad_expert_input_to_capacity"
        if self.moe_token_drop and self.moe_dispatcher == "deepep":
            raise ValueError("moe_token_drop (padding to capacity) is not supported with moe_dispatcher deepep "
                             "(Megatron-Core); use alltoall or hybridep")
        if self.moe_hybridep_num_sms is not None and self.moe_dispatcher not in (None, "hybridep"):
            raise ValueError(f"moe_hybridep_num_sms applies only to moe_dispatcher hybridep, not "
                             f"{self.moe_dispatcher} (leave it out)")
        return self

    @field_validator("fp8_activations")
    @classmethod
    def _fp8_activations_need_fp8(cls, v, info: ValidationInfo):   # runs only when stated (the default is not)
        precision = info.data.get("precision", "fp8")
        if v != "none" and precision != "fp8":
            raise ValueError(f"fp8_activations {v} applies only to precision fp8, not {precision} (a {precision} run "
                             f"caches no FP8 activations: leave it out or say none)")
        return v

    @field_validator("fp8_param_gather")
    @classmethod
    def _fp8_param_gather_needs_fp8(cls, v, info: ValidationInfo):   # true only: false is what a BF16 run does
        precision = info.data.get("precision", "fp8")
        if v and precision != "fp8":
            raise ValueError(f"fp8_param_gather true applies only to precision fp8, not {precision} (a {precision} "
                             f"run holds no FP8 weights: leave it out or say false)")
        return v

    @field_validator("fp8_recipe")
    @classmethod
    def _fp8_recipe_needs_fp8(cls, v, info: ValidationInfo):   # a field check, so the error names fp8_recipe
        precision = info.data.get("precision", "fp8")           # absent: precision itself failed, reported there
        if v is not None and precision != "fp8":
            raise ValueError(f"fp8_recipe {v} applies only to precision fp8, not {precision}")
        return v

    @model_validator(mode="after")
    def _router_padding_needs_fp8(self):   # Megatron-Core transformer_config.py __post_init__ at 0d8e0714cd
        if self.moe_router_padding_for_quantization:
            if self.precision != "fp8":
                raise ValueError(f"moe_router_padding_for_quantization true applies only to precision fp8, not "
                                 f"{self.precision} (Megatron-Core: 'fp8/fp4 must be specified'): leave it out")
            if self.moe_dispatcher == "allgather":
                raise ValueError("moe_router_padding_for_quantization true is not supported with moe_dispatcher "
                                 "allgather (Megatron-Core); use alltoall or deepep, or leave it out")
        return self

    @model_validator(mode="after")
    def _fused_grouped_mlp_needs_mxfp8(self):   # true only: false is what every other run does
        if self.moe_fused_grouped_mlp and (self.precision != "fp8" or self.fp8_recipe != "mxfp8"):
            stated = self.precision if self.precision != "fp8" else f"fp8 with fp8_recipe {self.fp8_recipe or 'unset'}"
            raise ValueError(f"moe_fused_grouped_mlp true applies only to fp8_recipe mxfp8 (Transformer Engine's fused "
                             f"grouped MLP writes MXFP8), not {stated}: state fp8_recipe mxfp8, or leave it out")
        return self

    @model_validator(mode="after")
    def _batch(self):
        if (self.global_batch_tokens is None) == (self.global_batch_seqs is None):
            got = ("neither" if self.global_batch_tokens is None else
                   f"both (global_batch_tokens {self.global_batch_tokens:,.0f}, "
                   f"global_batch_seqs {self.global_batch_seqs:,})")
            raise ValueError(f"expected exactly one of global_batch_tokens or global_batch_seqs, got {got}")
        if self.global_batch_tokens is not None and self.global_batch_tokens < self.seq_len:
            raise ValueError(f"global_batch_tokens {self.global_batch_tokens:g} is less than one "
                             f"{self.seq_len:,}-token sequence")
        return self


    @property
    def batch_seqs(self) -> int:
        """Global batch in sequences: ``global_batch_seqs``, else ``round(global_batch_tokens / seq_len)``."""
        if self.global_batch_seqs is not None:
            return int(self.global_batch_seqs)
        # a batch quoted in tokens is rounded to whole sequences (3,200,000 / 2,048 -> 1,562); a suffixed one was
        # read as its source means it first ("4M" of 4,096 -> 1,024 sequences: units.batch_tokens_as_stated)
        return int(round(self.global_batch_tokens / self.seq_len))

    @property
    def batch_tol(self) -> float:
        """``batch_tolerance``, else the default of :mod:`trainsim.parallel.batch` (5% for a batch stated in tokens,
        exact for one stated in sequences); plans meet ``batch_seqs`` within it."""
        if self.batch_tolerance is not None:
            return float(self.batch_tolerance)
        return DEFAULT_TOKENS_TOLERANCE if self.global_batch_tokens is not None else 0.0


Sched = Literal[SCHEDULES]  # type: ignore[valid-type]  # the names of trainsim.parallel.schedules
Recomp = Literal["none", "selective", "full"]
RecompModule = Literal["core_attn", "mlp", "moe_act", "layernorm", "mla_up_proj", "shared_experts", "moe", "op_sac"]


class PlanSpec(BaseModel):
    """A (possibly partial) plan: what it names is fixed, the rest is searched (or defaulted by estimate).

    A field may also hold a list of allowed values (e.g. ``schedule: [1f1b, interleaved]`` for a framework
    that offers only those): the search then tries exactly those.
    """

    model_config = ConfigDict(extra="forbid")
    tp: Int | list[Int] | None = None
    pp: Int | list[Int] | None = None
    vpp: Int | list[Int] | None = None
    schedule: Sched | list[Sched] | None = None
    ep: Int | list[Int] | None = None
    etp: Int | list[Int] | None = None
    cp: Int | list[Int] | None = None
    dp: PosInt | None = None
    zero: Int | list[Int] | None = None
    recompute: Recomp | list[Recomp] | None = None
    micro_batch: Int | list[Int] | None = None
    node_limit: Int | list[Int] | None = None
    # Megatron-Core recompute options (TransformerConfig): the modules of selective recompute (default
    # ['core_attn']), and full recompute's method and number of layers per group / block
    recompute_modules: list[RecompModule] | None = None
    recompute_method: Literal["uniform", "block"] | None = None
    recompute_num_layers: PosInt | None = None
    # uneven pipeline stages: decoder layers on the first / last stage (Megatron-Core
    # --decoder-first-pipeline-num-layers / --decoder-last-pipeline-num-layers; Llama 3 sec. 3.3.2)
    first_stage_layers: Int | None = Field(None, ge=0)
    last_stage_layers: Int | None = Field(None, ge=0)
    # 'balanced': the input embedding counts as one layer on the first stage and the output head (loss) and each
    # MTP module as one layer each on the last (Megatron-Core --account-for-embedding-in-pipeline-split and
    # --account-for-loss-in-pipeline-split); 'even' (default): decoder layers split evenly
    pipeline_split: Literal["even", "balanced"] | None = None
    # activations of this many layers per rank moved to host memory during forward and back for backward
    # (Megatron-Core --cpu-offloading-num-layers with --cpu-offloading-activations)
    offload_activation_layers: Int | None = Field(None, ge=0)
    # the distributed optimizer's fp32 master weights and Adam moments kept in host memory between steps, brought
    # back for the update (MindSpeed --swap-optimizer; perf/step.py swap_optimizer_time). Unset: the stack's
    # default (off in every profile), searched by plan where the profile offers it (swap_optimizer)
    swap_optimizer: bool | list[bool] | None = None

    @field_validator("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch")
    @classmethod
    def _positive(cls, v, info):
        for x in (v if isinstance(v, list) else [v]):
            if x is not None and x <= 0:
                raise ValueError(f"must be a positive integer, got {x}")
        if isinstance(v, list) and not v:
            raise ValueError("an empty list allows nothing")
        return v

    @field_validator("zero")
    @classmethod
    def _zero(cls, v):
        for x in (v if isinstance(v, list) else [v]):
            if x is not None and not 0 <= x <= 3:
                raise ValueError(f"must be 0, 1, 2 or 3, got {x}")
        return v

    @field_validator("node_limit")
    @classmethod
    def _nl(cls, v):
        for x in (v if isinstance(v, list) else [v]):
            if x is not None and x < 0:
                raise ValueError(f"must be >= 0, got {x}")
        return v

    def values(self, name: str) -> list | None:
        """The allowed values of a field: None when free, else a list (one element when fixed)."""
        v = getattr(self, name)
        if v is None:
            return None
        return list(v) if isinstance(v, list) else [v]

    def scalar(self, name: str):
        """The fixed value of a field (None when free or a list of several)."""
        v = self.values(name)
        return v[0] if v is not None and len(v) == 1 else None


class OptimizerSpec(BaseModel):
    """Precision and placement of the optimizer states, as a source states them. An unstated precision (None) takes
    what the run's software stack does (:func:`trainsim.frameworks.optimizer_precisions`: the profile's
    ``defaults.optimizer``, else Megatron-Core mixed precision: fp32 master weights, fp32 Adam moments, fp32 main
    gradients); everything stays in HBM unless ``offload`` names it."""

    model_config = ConfigDict(extra="forbid")
    moments: Literal["fp32", "bf16"] | None = None
    master_weights: Literal["fp32", "fp32_remainder", "bf16"] | None = None
    grads: Literal["fp32", "bf16"] | None = None
    # the dtype the dense (non-expert) gradients are reduce-scattered / all-reduced in over the data-parallel group
    # where it differs from the stored gradients: PyTorch FSDP2 MixedPrecisionPolicy.reduce_dtype (perf/context.py
    # OptimizerStates.dense_reduce_bytes). Unset: as ``grads``.
    dense_grad_reduce: Literal["fp32", "bf16"] | None = None
    offload: list[Literal["ema", "optimizer"]] = Field(default_factory=list)


class ReportedSpec(BaseModel):
    """The run spec's ``reported:`` section: published throughput, MFU, step time or chip-hours and their
    source."""

    model_config = ConfigDict(extra="forbid")
    tokens_per_s_per_chip: PosFloat | None = None
    mfu: Annotated[PosFloat, Field(le=1.0)] | None = None     # a fraction of the peak (0.375), at most 1
    mfu_convention: Literal["trainsim", "megatron", "palm", "megatron-recompute", "6n", "gpt-neox-2022"] | None = None
    step_time_s: PosFloat | None = None
    chip_hours: PosFloat | None = None
    source: str = ""
    notes: str = ""


class SpecHead(BaseModel):
    """The keys every trainsim spec file starts with (run, serving): a name, a model and a system."""

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    model: IdStr | dict[str, Any]
    system: IdStr | dict[str, Any]


class RunSpecFile(SpecHead):
    """A run-spec file: model, system, chips, framework, training, plan, optimizer and reported figures."""

    chips: Chips
    framework: IdStr | None = None          # software-stack profile id (trainsim/frameworks)
    framework_version: str | None = Field(None, max_length=200)  # free text, as the source states it
    training: TrainingSpec
    plan: PlanSpec | None = None
    optimizer: OptimizerSpec | None = None
    reported: ReportedSpec | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Run:
    """A resolved run: model and system objects, batch, partial plan, and what was reported (if anything)."""

    name: str
    arch: Arch
    system: System
    chips: int
    training: TrainingSpec
    plan: PlanSpec
    reported: ReportedSpec | None
    path: Path | None = None
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    framework: str | None = None
    use_all: bool = False          # plans must use every chip (no idle scale-up domains)


def _in_spec(exc: TrainsimError, where: str) -> TrainsimError:
    """A resolver's error ``exc`` naming the spec file ``where`` (unless it names a file already)."""
    if exc.where is None:
        err = TrainsimError(str(exc), where=where)
        err.field = exc.field          # kept for the line number (trainsim.io.specfile.with_line)
        return err
    return exc


def resolve_model_and_system(model, system, base_dir: Path | None, where: str):
    """Resolve a spec's ``model`` and ``system`` values; errors name the spec file."""
    try:
        return resolve_model(model, base_dir), resolve_system(system, base_dir)
    except TrainsimError as exc:
        raise _in_spec(exc, where) from None


#: ``chips: "65 pods"``: whole scale-up domains of the run's system (pods, SuperPoDs, systems, domains)
#: (a count grouped in thousands, as units.ungrouped reads it: "1,0 pods" is no count)
_DOMAINS_RE = re.compile(r"^\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?:_[0-9]{3})+|[0-9]+)\s*"
                         r"(pods?|superpods?|systems?|domains?)\s*$", re.IGNORECASE)


def is_domain_count(value: Any) -> bool:
    """Whether ``value`` states chips as whole scale-up domains ("65 pods", "2 systems"): its chip count depends
    on the system it is read with (:func:`chips_as_stated`)."""
    return isinstance(value, str) and _DOMAINS_RE.match(value) is not None


def chips_as_stated(value: Any, system_value: Any, base_dir: Path | None, where: str, field: str = "chips") -> Any:
    """A spec's ``chips`` as people state a cluster: an integer; a count ("1,000", "25K", the grammar of
    :func:`trainsim.units.parse_int_count`); or whole scale-up domains of the run's system ("65 pods" of
    ``cloudmatrix-384`` = 65 x 384 = 24,960 chips; "2 superpods" of ``atlas-950-superpod`` = 16,384; "2 systems"
    of ``dgx-b200`` = 16), the unit of ``trainsim size --unit system`` and the explorer's pods. "superpods" only
    where the system's id or name says SuperPoD (Huawei's, whose UB domain is the SuperPoD): an NVIDIA DGX
    SuperPOD is 32 DGX H100 systems (or 8 GB200 NVL72 racks) per scalable unit (NVIDIA DGX SuperPOD reference
    architectures RA-11333-001 and GB200), not one 8-GPU NVLink domain, so "4 superpods" of ``dgx-h100`` is one
    error line instead of 32 chips. Any other string is one error line that says what a domain of this system
    holds; non-strings are left to the type check."""
    if not isinstance(value, str):
        return value
    m = _DOMAINS_RE.match(value)
    if m is None:
        try:
            return parse_int_count(value, "chips")
        except TrainsimError:
            pass
    if m is not None:              # an unknown system is reported as such (field system)
        try:
            system = resolve_system(system_value, base_dir)
        except TrainsimError as exc:
            raise _in_spec(exc, where) from None
        domain = system.scale_up_size
        if m.group(2).lower().startswith("superpod") and "superpod" not in f"{system.id} {system.name}".lower():
            raise TrainsimError(
                f"{value[:80]!r}: {system.id} is not a SuperPoD (an NVIDIA DGX SuperPOD is units of 32 DGX "
                f"H100 or 8 NVL72 racks, not one domain); state chips or systems ('2 systems' = "
                f"{2 * domain:,} chips)", field=field, where=where)
        return int(ungrouped(m.group(1))) * domain
    try:
        per = f"; one domain of this system = {resolve_system(system_value, base_dir).scale_up_size:,} chips"
    except TrainsimError:
        per = ""
    raise TrainsimError(f"expected a number of chips (64, '1,000', '25K') or whole scale-up domains of the system "
                        f"('65 pods', '2 systems'{per}), got {value[:80]!r}", field=field, where=where)


#: chip families without MXFP8 (block-scaled) tensor cores: Megatron-Core TransformerConfig.fp8_recipe "'mxfp8' for
#: Blackwell architecture only" (megatron/core/transformer/transformer_config.py at d98e8a6); Transformer Engine
#: docs/examples/gemm_profiling: "MXFP8 and NVFP4 require Blackwell (SM100+/SM120+)"
NO_MXFP8_FAMILIES = ("nvidia-ampere", "nvidia-hopper")


def check_fp8_recipe(recipe: str | None, system, field: str, where: str) -> None:
    """Refuse an FP8 recipe the system's chip cannot run: ``mxfp8`` on a family in :data:`NO_MXFP8_FAMILIES`.
    The one place this rule lives (run specs and the post-training trainer's ``train_options``)."""
    if recipe == "mxfp8" and system.chip.family in NO_MXFP8_FAMILIES:
        raise TrainsimError(f"fp8_recipe mxfp8 needs block-scaled FP8 tensor cores (NVIDIA Blackwell or later); "
                            f"{system.chip.id} is {system.chip.family}: use delayed, current or blockwise",
                            field=field, where=where)


#: expert-parallel plan fields and the one value a dense model has for each (the search gives a dense model
#: ep = etp = 1 and no node-limited routing: parallel/enumerate.py)
EXPERT_FIELDS = {"ep": 1, "etp": 1, "node_limit": 0}


def check_expert_fields(plan: "PlanSpec", arch, field: str | None, where: str | None = None) -> None:
    """Refuse expert-parallel plan fields (``ep``, ``etp``, ``node_limit``) other than a dense model's one value
    on a dense model: the search would drop them without a word. ``field``: the prefix of the error's field
    (``plan.`` in a run spec) or the option (``--fix``, ``--against``)."""
    if arch.is_moe:
        return
    for name, only in EXPERT_FIELDS.items():
        vals = plan.values(name)
        bad = [v for v in vals or [] if v != only]
        if bad:
            raise TrainsimError(f"{name} {bad[0]} applies only to a MoE model; {arch.name} is dense (leave {name} "
                                f"out or say {only})", field=f"plan.{name}" if field == "plan." else field,
                                where=where)


def run_warnings(run: "Run") -> list[str]:
    """One ``warning:`` line per stated training field that is legal but likely a mistake: a ``training.seq_len``
    above the model's context (:attr:`Arch.max_context`, the config's ``max_position_embeddings``,
    :func:`~trainsim.model.hf.max_context_of`). Serving refuses such a request
    (:func:`trainsim.inference.spec._check_context`); training is not refused, since long-context extension trains
    past the base context on purpose with RoPE scaling (Llama 3.1 went from 8K to 128K in six stages, arXiv
    2407.21783 section 3.4.2), but seq_len 1,048,576 on Llama 3.1 8B (131,072) was priced without a word (qa29)."""
    ctx, seq = run.arch.max_context, run.training.seq_len
    if not ctx or seq <= ctx:
        return []
    where = f"{run.path}: " if run.path is not None else ""
    return [f"warning: {where}training.seq_len: {seq:,} is more than {run.arch.name}'s context of {ctx:,} "
            f"(max_position_embeddings); priced as stated, as long-context extension training with scaled RoPE"]


def check_tokens_cover_one_step(training: "TrainingSpec", where: str | None = None) -> None:
    """Refuse a run of fewer tokens than one global batch: it ends before its first step ('tokens: 100' meant as
    100B answered 'whole run 0.0 days')."""
    per_step = training.global_batch_tokens or training.batch_seqs * training.seq_len
    if training.tokens is not None and training.tokens < per_step:
        raise TrainsimError(f"expected at least one global batch of tokens ({per_step:,.0f}; a run ends after whole "
                            f"steps: '100B', not 100), got {training.tokens:g}", field="training.tokens",
                            where=where)


def check_plan_shape(plan: "PlanSpec", arch, seq_len: int, where: str | None = None,
                     field: str | None = "plan.") -> None:
    """Refuse a plan field whose stated values the model's shape rules out for every chip count and batch
    (:func:`trainsim.parallel.validity.shape_refusal`: tp 3 on 32 attention heads): the search would reject every
    plan and answer 'no valid plan' as if the cluster or batch were at fault. ``field`` as in
    :func:`check_expert_fields` (``plan.`` in a run spec; ``--fix`` / ``--against`` name the option)."""
    for name in SHAPE_RULES:
        why = shape_refusal(name, plan.values(name) or [], arch, seq_len)
        if why:
            raise TrainsimError(why if field == "plan." else f"{name}: {why}",
                                field=f"plan.{name}" if field == "plan." else field, where=where)


def check_local_batch(training: "TrainingSpec", fw: str, where: str | None = None) -> None:
    """Refuse ``training.local_batch_seqs`` under a stack that runs the step's micro-batches in one pipeline
    schedule call (no ``local_batch_calls`` in its profile, :func:`trainsim.frameworks.local_batch_calls`): the
    engine took it as given and priced a fill and drain per local batch that stack never runs (qa23: DeepSeek-V3 on
    512 H100 under megatron-bridge-2026 with local_batch_seqs 8, pp 16: 46% of the step pipeline bubble)."""
    n = training.local_batch_seqs
    if n is None or local_batch_calls(fw):
        return
    owners = ", ".join(f for f in frameworks() if local_batch_calls(f))
    raise TrainsimError(f"local_batch_seqs {n} sets the sequences per call of the pipeline schedule, one call per "
                        f"local batch ({owners}); {fw} runs the step's micro-batches in one call (as Megatron-LM's "
                        f"train_step does): leave local_batch_seqs out, or say framework: {owners.split(', ')[0]}",
                        field="training.local_batch_seqs", where=where)


def check_cp_attention(plan: "PlanSpec", training: "TrainingSpec", fw: str, where: str | None = None,
                       field: str | None = "plan.") -> None:
    """Refuse a stated cp whose every value is above 1 when the run's attention kernel is the unfused core
    (``training.attention: unfused``, or the stack's default, :func:`trainsim.frameworks.runtime_settings`): no stack
    runs context parallelism on it (rule 20 of :func:`trainsim.parallel.validity.check`), so without this the
    search would answer 'no valid plan' as if the cluster were at fault; before rule 20 such a plan was priced
    (qa23: Llama 3.1 8B at 32K, cp 4, 102 s per step at MFU 9%). ``field`` as in :func:`check_plan_shape`."""
    cps = plan.values("cp") or []
    if not cps or min(cps) <= 1 or not attention_unfused(training, fw):
        return
    if not profile(fw).get("context_parallel", True):   # a stack with no context parallelism says that instead
        return
    how = ("training.attention unfused" if training.attention == "unfused"
           else f"the {fw} stack's default attention, the unfused core,")
    msg = (f"cp {'|'.join(str(v) for v in cps)} needs a fused attention kernel; {how} runs only at cp 1 "
           "(Megatron-Core's DotProductAttention: 'Context parallelism is only supported by TEDotProductAttention!'): "
           "say attention flash or flash2, or cp 1")
    raise TrainsimError(msg if field == "plan." else f"cp: {msg}", field="plan.cp" if field == "plan." else field,
                        where=where)


#: MoE training switches and the value that is a no-op, which a dense model may state (a copied recipe's defaults)
MOE_TRAINING = {"moe_dispatcher": "alltoall", "moe_token_drop": False, "moe_a2a_overlap": False,
                "moe_grouped_gemm": True, "moe_fake_balanced_gate": False, "moe_fused_grouped_mlp": False,
                "moe_router_padding_for_quantization": False}


def check_moe_training(training: "TrainingSpec", arch, where: str | None = None) -> None:
    """Refuse a MoE training switch (:data:`MOE_TRAINING`) set to anything but its no-op value on a dense model:
    it would be accepted and change nothing (moe_dispatcher deepep on Llama 3.1 8B). On a MoE model,
    ``moe_fused_grouped_mlp`` true needs experts whose activation Transformer Engine's fused grouped MLP runs: a
    GLU (SwiGLU) or squared ReLU (TransformerEngine d0067d0 pytorch/ops/fused/grouped_mlp.py
    ``validate_grouped_mlp_dims``: any other activation is a TypeError there)."""
    if arch.is_moe:
        acts = sorted({lk.ffn_act for lk in arch.layers if lk.moe is not None} - {"swiglu", "relu2"})
        if training.moe_fused_grouped_mlp and acts:
            raise TrainsimError(f"moe_fused_grouped_mlp true needs SwiGLU or squared-ReLU experts (Transformer "
                                f"Engine's fused grouped MLP runs no other activation); {arch.name}'s experts use "
                                f"{', '.join(acts)} (leave moe_fused_grouped_mlp out)",
                                field="training.moe_fused_grouped_mlp", where=where)
        return
    for name, neutral in MOE_TRAINING.items():
        v = getattr(training, name)
        if v is not None and v != neutral:
            raise TrainsimError(f"{name} {str(v).lower()} applies only to a MoE model; {arch.name} is dense "
                                f"(leave {name} out)", field=f"training.{name}", where=where)


def check_shard_group(plan: "PlanSpec", training: "TrainingSpec", where: str | None = None,
                      field: str | None = None, stack: str | None = None) -> None:
    """Refuse ``training.zero_shard_group`` beside a plan whose every stated zero stage is 0: the group shards the
    ZeRO states (MiCS, Megatron-Core's --num-distributed-optimizer-instances), and zero 0 shards nothing, so the
    group was accepted and changed nothing. The one rule for a spec's plan and for ``plan --fix`` /
    ``--against`` (``field``: the option that set the zero stage), so that ``plan --fix zero=0`` refuses what
    ``estimate`` of the same plan refuses; the rule and its message live in
    :func:`trainsim.parallel.validity.sharding_zeros`, which the plan search applies to its zero axis (it offers
    only zero >= 1 beside a group, trainsim/parallel/enumerate.py enumerate_parents). ``stack``: the plan is the
    run's unstated zero limited to what software stack ``stack`` offers (:func:`trainsim.frameworks.restrict_plan`),
    zero 0 alone on a stack without a sharded optimizer (megatron-lm-2021)."""
    zeros = plan.values("zero")
    if training.zero_shard_group and zeros is not None:
        how = (f"{stack} offers zero 0 only" if stack else f"{field} says zero 0" if field
               else "the plan says zero 0")
        sharding_zeros(training.zero_shard_group, zeros, how, where=where,
                       advice="pick a stack with a sharded optimizer" if stack else "state zero 1, 2 or 3")


#: plan options and the recompute mode they belong to (Megatron-Core TransformerConfig: recompute_modules is read
#: only with recompute_granularity 'selective', recompute_method and recompute_num_layers only with 'full')
RECOMPUTE_OPTIONS = {"recompute_modules": "selective", "recompute_method": "full", "recompute_num_layers": "full"}


def check_plan_options(plan: "PlanSpec", field: str | None, where: str | None = None, arch: Any = None) -> None:
    """Refuse a stated plan option that the stated plan leaves without effect: a recompute option beside a
    ``recompute`` that excludes its mode (``recompute: none`` with ``recompute_modules``), uneven stage sizes
    (``first_stage_layers``, ``last_stage_layers``) with ``pp: 1``, or (given the model's ``arch``) stage sizes
    that no stated pp can hold (:func:`trainsim.parallel.validity.stage_layers_ok`: 1 + 1 layers of a 32-layer
    model at pp 2), or activation offload of as many layers as the model has or more (Megatron-Core's range).
    ``field`` as in :func:`check_expert_fields`."""
    def name(f: str) -> str:
        return f"plan.{f}" if field == "plan." else (field or f)

    modes = plan.values("recompute")
    for opt, mode in RECOMPUTE_OPTIONS.items():
        if getattr(plan, opt) is not None and modes is not None and mode not in modes:
            raise TrainsimError(f"{opt} applies only to recompute {mode}, and the plan says recompute "
                                f"{'|'.join(modes)} (state recompute: {mode}, or leave {opt} out)",
                                field=name(opt), where=where)
    pps = plan.values("pp")
    for opt in ("first_stage_layers", "last_stage_layers"):
        if getattr(plan, opt) is not None and pps is not None and max(pps) == 1:
            raise TrainsimError(f"{opt} sets the layers of an uneven pipeline stage, and the plan says pp 1 "
                                f"(one stage: state pp > 1, or leave {opt} out)", field=name(opt), where=where)
    vpps, scheds = plan.values("vpp"), plan.values("schedule")
    if vpps is not None or scheds is not None:
        # the vpp rule of parallel/validity.py (REASONS 9) over every stated combination, an unstated field taking
        # any value (vpp 1 or more, pp 1 or more, any schedule): none valid is no plan for any chip count or batch
        virt = {s.name: s.virtual_stages for s in SCHEDULE_REGISTRY}
        ok = any((v > 1 and virt[sc] and pp > 1) or (v == 1 and not virt[sc])
                 for v in vpps or [1, 2] for sc in scheds or list(virt) for pp in pps or [1, 2])
        if not ok:
            stated = ", ".join(f"{k} {'|'.join(map(str, vs))}" for k, vs in
                               (("vpp", vpps), ("schedule", scheds), ("pp", pps)) if vs is not None)
            raise TrainsimError(f"{stated}: {VALIDITY_REASONS[9][1]}",
                                field=name("vpp" if vpps is not None else "schedule"), where=where)
    # Megatron-Core TransformerConfig.__post_init__ (core_r0.8.0 and d98e8a64dd): 'CPU offloading can be done only
    # for layers less than {num_layers}' (cpu_offloading_num_layers >= num_layers is a ValueError)
    off = plan.offload_activation_layers
    if arch is not None and off is not None and off >= arch.n_layers:
        raise TrainsimError(f"offload_activation_layers {off} must be below the {arch.n_layers} layers of {arch.name} "
                            f"(Megatron-Core: CPU offloading only for layers less than num_layers)",
                            field=name("offload_activation_layers"), where=where)
    first, last = plan.first_stage_layers, plan.last_stage_layers
    if arch is not None and pps is not None and (first is not None or last is not None):
        if not stage_layers_ok(arch.n_layers, np.asarray(pps), first, last).any():
            opt = "first_stage_layers" if first is not None else "last_stage_layers"
            stated = " + ".join(f"{k} {v}" for k, v in (("first_stage_layers", first), ("last_stage_layers", last))
                                if v is not None)
            others, rest = middle_ranks(arch.n_layers, np.asarray(pps), first, last)
            raise TrainsimError(f"{stated} leave {rest} of the "
                                f"{arch.n_layers} layers of {arch.name} to the other "
                                f"{'|'.join(str(max(int(k), 0)) for k in others)}"
                                f" pipeline ranks of pp {'|'.join(map(str, pps))}; expected layers left over exactly "
                                f"when there are other ranks, and no more than the model has",
                                field=name(opt), where=where)


def parse_run(doc: Any, *, base_dir: Path | None = None, where: str = "run spec") -> Run:
    """Validate a run-spec mapping and resolve its model and system; ``chips`` may be stated in pods
    (:func:`chips_as_stated`)."""
    if not isinstance(doc, dict):
        raise TrainsimError(f"expected a mapping of run-spec keys, got {yaml_shape(doc)}", where=where)
    if isinstance(doc.get("chips"), str):
        doc = {**doc, "chips": chips_as_stated(doc["chips"], doc.get("system"), base_dir, where)}
    try:
        spec = RunSpecFile.model_validate(doc)
    except ValidationError as exc:
        raise from_validation(exc, where, RunSpecFile) from None
    if spec.framework is not None:
        if spec.framework not in frameworks():
            raise unknown("framework", spec.framework, frameworks(), field="framework", where=where)
    arch, system = resolve_model_and_system(spec.model, spec.system, base_dir, where)
    fw = stack_of(spec.framework, system)    # an unstated stack is the chip vendor's (frameworks.py)
    check_fp8_recipe(spec.training.fp8_recipe, system, "training.fp8_recipe", where)
    check_moe_training(spec.training, arch, where)
    # FP8 on a stack from before its FP8 training (megatron-lm-2021): read with the spec, as a schedule it lacks
    check_precision(spec.training.precision, fw, "training.precision", where)
    check_tokens_cover_one_step(spec.training, where)
    check_local_batch(spec.training, fw, where)
    if spec.plan is not None:
        check_expert_fields(spec.plan, arch, "plan.", where)
        check_plan_shape(spec.plan, arch, spec.training.seq_len, where)
        check_plan_options(spec.plan, "plan.", where, arch)
        check_shard_group(spec.plan, spec.training, where)
    if spec.plan is not None:   # a plan field the run's stack lacks (zero 3 on megatron-core-2024): read with the spec
        try:
            restrict_plan(spec.plan, fw)
        except TrainsimError as exc:
            raise _in_spec(exc, where) from None
        check_cp_attention(spec.plan, spec.training, fw, where)
    if spec.training.zero_shard_group and (spec.plan is None or spec.plan.values("zero") is None):
        # an unstated zero takes the stack's offer: a group beside a stack that shards nothing is refused here
        check_shard_group(restrict_plan(PlanSpec(), fw), spec.training, where,
                          stack=fw)
    return Run(name=spec.name or where, arch=arch, system=system, chips=spec.chips, training=spec.training,
               plan=spec.plan or PlanSpec(), reported=spec.reported, path=None,
               optimizer=spec.optimizer or OptimizerSpec(), framework=spec.framework)


def load_run(path: str | Path) -> Run:
    """Load and resolve a run-spec YAML file (safe loader only)."""
    path = Path(path)
    run = load_spec_file(path, parse_run, what="run spec")
    return Run(**{**run.__dict__, "path": path})
