"""What every cost function needs besides the plans: model, system, run shape, calibration, and the run-level
options a source states (recompute modules, uneven pipeline stages, optimizer precision and offload)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..catalog.types import Chip, System
from ..parallel.placement import members_within
from ..parallel.plan import Plans
from ..model.arch import Arch
from .calibration import Calib

# Megatron-Core TransformerConfig.recompute_modules default when --recompute-granularity selective is given
# without modules (megatron/core/transformer/transformer_config.py: "If not set, ... ['core_attn']").
DEFAULT_SELECTIVE_MODULES: tuple[str, ...] = ("core_attn",)

#: Bytes per BF16 element (2 bytes = 16 bits): the operand and payload size wherever a tensor stays in BF16 (GEMM
#: inputs without FP8, the MoE dispatch of stacks that do not quantise it, the output head of an FP8 run).
BF16_BYTES = 2.0
#: Bytes per FP32 element: the operands and output of an FP32 output head (compute.head_gemm_fwd)
FP32_BYTES = 4.0


@dataclass(frozen=True)
class Recompute:
    """Run-level recompute options (Megatron-Core names). The plan's ``recompute`` code (0 none, 1 selective,
    2 full) chooses the granularity; these say what selective recomputes and how full recomputes."""

    modules: tuple[str, ...] = DEFAULT_SELECTIVE_MODULES
    method: str = "uniform"       # full: 'uniform' (groups of num_layers) | 'block' (num_layers per stage)
    num_layers: int = 1


#: bytes per parameter of the master weights kept beside the BF16 model weights, by the run spec's
#: ``optimizer.master_weights``: an fp32 copy (Megatron-Core mixed precision, Micikevicius et al. 2018); the
#: BF16 weights as their own master copy (0); or ``fp32_remainder``, Apex DistributedFusedAdam's
#: ``store_param_remainders=True``: the fp32 master is rebuilt from the BF16 parameter (its high 16 bits) and a
#: stored int16 remainder (its low 16 bits), so the optimizer keeps 2 bytes, not 4 (NVIDIA/apex
#: apex/contrib/optimizers/distributed_fused_adam.py at 23c1f865, 2024-07-02: ``StateBucket.param_remainders_shard
#: = torch.zeros([shard_size], dtype=torch.int16)`` beside the ``dtype`` moments ``exp_avg_shard`` /
#: ``exp_avg_sq_shard``; "if model is BF16 and optimizer is FP32, store bits required to reconstruct FP32 params").
#: FP8 scaling recipes (run spec ``training.fp8_recipe``; Megatron-Core TransformerConfig.fp8_recipe names
#: 'delayed', 'tensorwise' = current, 'mxfp8', 'blockwise'): per-tensor delayed (amax history), per-tensor current
#: scaling, MXFP8 (1 x 32 blocks, E8M0 scales), DeepSeek-V3 blockwise (1 x 128 activations, 128 x 128 weights)
FP8_RECIPES = ("delayed", "current", "mxfp8", "blockwise")
#: the recipes whose scales cover blocks of a row or column, not the whole tensor: block-scaled GEMMs
BLOCK_SCALED_RECIPES = ("mxfp8", "blockwise")

MASTER_WEIGHT_BYTES = {"fp32": 4.0, "fp32_remainder": 2.0, "bf16": 0.0}
#: bytes per element of the Adam moments and of the main-gradient buffer, by their stated precision
STATE_DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0}


@dataclass(frozen=True)
class OptimizerStates:
    """Bytes per parameter of the training states (Megatron-Core mixed precision by default)."""

    moments_bytes: float = 8.0        # Adam m and v: 2 x 4 (fp32) or 2 x 2 (bf16: DeepSeek-V3 sec. 3.3.3)
    master_bytes: float = 4.0         # master weights: MASTER_WEIGHT_BYTES (fp32 4, Apex remainders 2, bf16 0)
    grad_bytes: float = 4.0           # main-gradient accumulation buffer: fp32 (Megatron default) or bf16
    offload_optimizer: bool = False   # master weights and moments in host memory (Megatron --optimizer-cpu-offload)
    offload_ema: bool = False         # an EMA of the weights kept in host memory (DeepSeek-V3 sec. 3.3.1)
    dense_reduce: float | None = None  # bytes per dense gradient in the data-parallel reduction (None: grad_bytes)

    @property
    def dense_reduce_bytes(self) -> float:
        """Bytes per dense (non-expert) parameter that the data-parallel gradient reduction (reduce-scatter, or
        all-reduce at zero 0) moves: ``grad_bytes`` unless the run reduces in another dtype than it stores.

        PyTorch FSDP2 casts each gradient to ``MixedPrecisionPolicy.reduce_dtype`` before the reduce-scatter and
        the reduced shard back to the parameter's dtype after it (pytorch/pytorch
        torch/distributed/fsdp/_fully_shard/_fsdp_collectives.py ``foreach_reduce``: the reduce-scatter input is
        allocated in ``reduce_dtype``, the output goes through ``_to_dtype_if_needed(reduce_output, orig_dtype)``),
        so BF16 weights with ``reduce_dtype=float32`` hold BF16 gradients (``grad_bytes`` 2) but move 4 bytes per
        gradient. NeMo AutoModel's MoE parallelizer
        wraps every transformer block so when its config names no policy (Automodel 89e3a9fdd and 8d9bfb90e
        nemo_automodel/components/moe/parallelizer.py ``apply_fsdp``: ``MixedPrecisionPolicy(param_dtype=bfloat16,
        reduce_dtype=float32, output_dtype=bfloat16)``) while its expert modules' own ``fully_shard`` takes no
        policy (reduce in the parameters' BF16): hence dense only (run spec ``optimizer.dense_grad_reduce``)."""
        return self.grad_bytes if self.dense_reduce is None else self.dense_reduce

    @property
    def optimizer_bytes(self) -> float:
        """Optimizer-state bytes per parameter: master weights + moments."""
        return self.master_bytes + self.moments_bytes

    @classmethod
    def from_precisions(cls, prec: dict[str, str], offload: tuple[str, ...] | list[str] = (),
                        dense_grad_reduce: str | None = None) -> "OptimizerStates":
        """The states of a run from its ``moments``, ``master_weights`` and ``grads`` precisions
        (:func:`trainsim.frameworks.optimizer_precisions`) and its ``offload`` list: Adam's two moments at
        :data:`STATE_DTYPE_BYTES` each, the master at :data:`MASTER_WEIGHT_BYTES`, the gradient buffer at
        :data:`STATE_DTYPE_BYTES` (Megatron-Core ``--main-grads-dtype``; Apex DistributedFusedAdam's contiguous
        ``grad_sync_dtype`` buffer, which defaults to the optimizer dtype); ``dense_grad_reduce`` (None: as the
        gradients) the dtype of the dense gradients' reduction (:attr:`dense_reduce_bytes`)."""
        return cls(moments_bytes=2.0 * STATE_DTYPE_BYTES[prec["moments"]],
                   master_bytes=MASTER_WEIGHT_BYTES[prec["master_weights"]],
                   grad_bytes=STATE_DTYPE_BYTES[prec["grads"]],
                   offload_optimizer="optimizer" in offload, offload_ema="ema" in offload,
                   dense_reduce=None if dense_grad_reduce is None else STATE_DTYPE_BYTES[dense_grad_reduce])


def shard_group_ranks(p: Plans, system: System, stated: int = 0) -> np.ndarray:
    """The ranks plans ``p`` shard their dense ZeRO states over (:meth:`StepContext.shard_ranks`): with ``zgroup``
    0 the dp x cp group, or gcd(dp x cp, ``stated``) for a stated group; with ``zgroup`` l >= 1 gcd(dp x cp, the
    dp x cp ranks, stride tp, inside one level-(l-1) domain of ``system``)."""
    dpc = p.dp * p.cp
    base = dpc if not stated else np.gcd(dpc, stated)
    lvl = np.asarray(p.zgroup)
    if not lvl.any():
        return base
    within = members_within(dpc, p.tp, system)
    dom = np.select([lvl == i + 1 for i in range(len(within))], within, dpc)
    return np.where(lvl > 0, np.gcd(dpc, dom), base)


@dataclass(frozen=True)
class StepContext:
    """Everything a training step's cost depends on besides the plan: model, system, chips, sequence length,
    global batch, matmul precision, calibration, attention kernel, recompute, optimizer states and pipeline
    layout."""

    arch: Arch
    system: System
    chips: int
    seq_len: int
    global_batch_seqs: int
    precision: str                   # 'bf16' | 'fp8' (matmul inputs)
    calib: Calib
    attention_kernel: str = "flash"  # 'flash' (fused, no s^2 in HBM) | 'unfused' (scores materialised)
    attention_dropout: float = 0.1   # dropout probability on the attention probabilities (unfused core only:
                                     # no dropout pass at 0, compute.unfused_score_bytes_per_token)
    hidden_dropout: float = 0.0      # dropout probability on each sublayer's output before the residual add: its
                                     # 1-byte masks kept (activations.py) and written / applied in the fused
                                     # bias-dropout-add (compute.residual_bytes_per_token); nothing at 0. A run
                                     # always states it or takes its stack's (frameworks.runtime_settings, whose
                                     # fallback is Megatron-LM's 0.1); 0 here is for contexts built by hand
    recompute: Recompute = field(default_factory=Recompute)
    optimizer: OptimizerStates = field(default_factory=OptimizerStates)
    first_stage_layers: int | None = None   # uneven pipeline: decoder layers on the first / last stage
    last_stage_layers: int | None = None
    pipeline_split: str = "even"            # 'even' | 'balanced' (embedding and loss/MTP count as layers)
    stage_layout: str = "any"               # 'even' | 'first_last' | 'any' (memory.rank_layers)
    local_batch_seqs: int | None = None     # sequences per dp rank per pipeline-schedule call (None: one call)
    offload_activation_layers: int = 0      # layers per rank whose activations live in host memory
    swap_optimizer_times: int = 1           # chunks a swapped optimizer (Plans.swap) brings its states back in
                                            # per step: MindSpeed --swap-optimizer-times, the profile's
                                            # swap_optimizer.times (frameworks.swap_optimizer_times)
    fp8_activations: str = "gemm_inputs"    # 'gemm_inputs' | 'all' | 'none' (only with FP8 GEMM inputs)
    tp_comm_overlap: bool = False           # TE userbuffers TP overlap (--tp-comm-overlap)
    moe_a2a_overlap: bool = False           # Megatron-Core EP all-to-all overlap across micro-batches
    grad_sync_overlap: bool = True          # DP gradient sync overlaps the backward (False: after it, perf/step.py)
    grad_accumulation_fusion: bool = True   # wgrad GEMMs add into main_grad (False: comm_dp.grad_accumulation_bytes)
    rope_fusion: bool = True                # fused rotary kernels (False: compute.unfused_rope_extra_bytes_per_token)
    activation_fusion: bool = True          # fused gated activation (False: two eager ops, compute.act_fn_bytes_per_f)
    moe_dispatcher: str = "alltoall"        # 'alltoall' | 'deepep' | 'hybridep' | 'allgather' (perf/comm_ep.py)
    moe_hybridep_num_sms: int = 16          # SMs of HybridEP's dispatch / combine kernels (comm_ep.dispatcher_sms)
    cuda_graphs: str = "none"               # 'none' | 'partial' | 'full' (perf/step.py moe_host_sync_time)
    moe_token_drop: bool = False            # MoE drop-and-pad to capacity: no host sync (moe_host_sync_time)
    fp8_param_gather: bool = False          # weights held and all-gathered in FP8 (--fp8-param-gather)
    fp8_recipe: str = "delayed"             # 'delayed' | 'current' | 'mxfp8' | 'blockwise' (FP8 scaling recipe)
    cross_entropy_fusion: str = "none"      # 'none' | 'native' | 'te' | 'fp32_upcast' | 'torch_bf16' (loss kernel)
    head_precision: str = "bf16"           # 'bf16' | 'fp32' (output head GEMMs; compute.head_gemm_fwd)
    elementwise_kernels: str = "fused"      # 'fused' | 'eager' (one kernel per PyTorch op; perf/compute.py)
    compiled: bool = False                  # layers under torch.compile: a traced CP ring (perf/comm_cp.py)
    moe_fused_grouped_mlp: bool = False     # TE fused grouped MLP (compute.fused_grouped_mlp_cast_elems_per_token)
    moe_router_padding_for_quantization: bool = False  # routing map padded to the FP8 alignment: no TEGroupedMLP
                                            # padding copies (compute.fp8_padding_fwd_bwd)
    moe_fake_balanced_gate: bool = False    # AutoModel FakeBalancedGate routing (perf/routing.py fake_balanced_blocks)
    zero_shard_group: int = 0               # ZeRO sharding group (MiCS); 0: the whole dp x cp group (shard_ranks)
    zero3_hierarchical_gather: bool = False  # the stack's ZeRO-3 gathers run across nodes, then inside each node
                                            # (MiCS; collectives.hierarchical_all_gather_time, comm_dp.dp_sync_times)
    moe_grouped_gemm: bool = True           # experts as one grouped GEMM; False: SequentialMLP (perf/compute.py)
    sequential_mlp_slices: bool = False     # the stack's SequentialMLP slices per expert (Megatron-Core <= 0.8)
    moe_allgather_index_put: bool = False   # MindSpeed's all-gather dispatcher (compute.allgather_permute_fwd_bwd)
    fsdp_pp_unsharded: bool = False         # the stack's FSDP under pipeline parallelism keeps the stage unsharded
    fsdp_sharded_master: bool = False       # the stack's FSDP2 shards the fp32 master weights and frees grads per step
    cp_allgather: bool = False              # the stack's CP all-gathers K/V before attention (exposed; perf/step.py)
    cp_torch_ring: bool = False             # PyTorch experimental CP (perf/comm_cp.py torch_ring_exposed)
    cp_eager_merge: bool = False            # MindSpeed's ring merges in eager ops (comm_cp.mindspeed_ring_merge_bytes)
    dsa_indexer_loss: str = "none"          # 'none' | 'sparse' | 'dense' (perf/compute.py dsa_indexer_loss_fwd)
    cp_kv_repeated: bool = False            # the stack repeats K/V to the query heads before SDPA (comm_cp.ring_heads;
                                            # SDPA then keeps the repeated K/V: perf/activations.py)
    tp_gathered_gemm_inputs: bool = False   # DTensor TP: GEMMs keep the all-gathered ln_out whole (perf/activations.py)
    pointwise_recompute: bool = False       # the stack's layers keep no norm output or SwiGLU product, rerunning them
                                            # in backward (perf/activations.py; perf/recompute.pointwise_recompute_fwd)
    tp_allreduce: bool = False              # TP without sequence parallelism: no backward re-gather (comm_tp.py)
    mcore_ddp_buckets: bool = False         # Megatron-Core DDP buckets: only the last one exposed (comm_dp.ddp_overlap)
    moe_fp8_dispatch: bool = False          # the stack quantises MoE dispatch to FP8 (dispatch_bytes; perf/comm_ep.py)
    moe_node_limited_routing: bool = False  # the stack routes each token to at most topk_group nodes, sent once per
                                            # node (DeepSeek-V3 sec. 2.1.2 / 3.2.2; perf/comm_ep.py node_cap)
    pp_torch_stage: bool = False            # PP by torch.distributed.pipelining: per-micro-batch receive buffers and
                                            # cached stage outputs (perf/memory.py pipeline_stage_buffers)
    pp_own_schedule: bool = False           # the stack's pipeline schedules are not Megatron-Core's: no fill / drain
                                            # transfer waits (parallel/schedules.py fill_drain_transfers)
    pp_p2p_blocking: bool = False           # the interleaved schedule waits for each p2p transfer between compute
                                            # steps (Megatron-LM before --overlap-p2p-communication; perf/step.py)
    pp_p2p_device_sync: bool = False        # a batched (not overlapped) p2p exchange ends in torch.cuda.synchronize
                                            # (Megatron-Core batch_p2p_sync): forward and backward steps do not
                                            # share the host's launch work (perf/step.py launch_floor_extra)
    relu2_unfused: bool = False             # squared ReLU as two eager ops (compute.act_fn_bytes_per_f)
    separate_gemms: tuple[str, ...] = ()    # GEMMs the stack runs apart that Megatron-Core fuses
                                            # (frameworks.separate_gemms; compute.gemm_matrices): matrix groups
                                            # whose gated FFN runs gate and up as two (the profile's
                                            # gated_ffn_separate), and "qkv" where q, k, v run as three
    dualpipev_fb_overlap: bool = False      # the stack's DualPipe is MindSpeed's dualpipev + --moe-fb-overlap: etp 1,
                                            # cp 1 (parallel/validity.py) and no overlapped gradient sync (perf/step.py)
    grad_buffer_zeroed: bool = False        # the stack's DDP zeroes its whole local gradient buffer every step
    grad_nan_check: bool = False            # ... and takes its norm before the DP collective (NaN check)
    grad_prescaled: bool = False            # ... and multiplies it by 1/dp in place before a SUM collective (dp > 1)
    grad_prescaled_dp1: bool = False        # ... also at dp 1 (scale by 1.0; comm_dp.grad_buffer_pass_bytes)
    vocab_divisible_by: int = 128           # the stack pads the vocabulary to a multiple of this x tp (vocab_per_tp)

    @property
    def chip(self) -> Chip:
        """The system's chip."""
        return self.system.chip

    @property
    def gemm_peak(self) -> float:
        """Dense peak for the run's GEMMs; FP8 only where the chip has an FP8 rate."""
        return self.chip.flops(self.precision)

    @property
    def gemm_eff(self) -> float:
        """The GEMM efficiency that applies: with FP8 on a chip with an FP8 rate, the per-tensor FP8 one
        (``gemm_eff_fp8``), times ``gemm_eff_fp8_block_ratio`` under an MXFP8 or blockwise recipe; otherwise the
        BF16 one. Block-scaled GEMMs load and apply a scale per 32 (MXFP8) or 128 (blockwise) elements of K:
        Transformer Engine's GEMM profiling on B300 (docs/examples/gemm_profiling/gemm_profiling.rst at
        TransformerEngine 1609c890, pre-quantized kernels, hidden 4096, intermediate 16384, 15,872 tokens)
        measures 7.161 ms per layer for MXFP8 against 6.812 ms for per-tensor current scaling (0.951 of its
        rate). The ratio is one pooled constant fitted by scripts/calibrate.py; the chip's own share of the FP8
        peak stays ``gemm_eff_fp8``."""
        if not self.fp8_gemm:
            return self.calib.gemm_eff
        ratio = self.calib.gemm_eff_fp8_block_ratio if self.fp8_block_scaled else 1.0
        return self.calib.gemm_eff_fp8 * ratio

    @property
    def fp8_block_scaled(self) -> bool:
        """Whether the run's FP8 GEMMs are block-scaled (recipe in :data:`BLOCK_SCALED_RECIPES`)."""
        return self.fp8_gemm and self.fp8_recipe in BLOCK_SCALED_RECIPES

    @property
    def fp8_transposed_copy(self) -> bool:
        """Whether a per-tensor FP8 tensor needs a second, transposed copy for the backward GEMMs: on Hopper,
        whose FP8 GEMMs take only the TN layout (Transformer Engine docs, features/low_precision_training/
        performance_considerations, 'Handling transposes': 'Hopper: ... columnwise tensors need to be
        physically transposed in memory'; 'Blackwell: supports columnwise access natively')."""
        return self.chip.family == "nvidia-hopper"

    @property
    def fp8_gemm(self) -> bool:
        """Whether GEMMs run at the chip's FP8 rate (FP8 precision and the chip has one)."""
        return bool(self.precision == "fp8" and self.chip.peak_flops.get("fp8"))

    @property
    def act_bytes(self) -> float:
        """Bytes per GEMM input element: 1 with FP8 inputs, else :data:`BF16_BYTES`."""
        return 1.0 if self.fp8_gemm else BF16_BYTES

    @property
    def dispatch_bytes(self) -> float:
        """Bytes per element of the MoE dispatch payload (the tokens sent to the experts; the combine is BF16).

        1 where the stack quantises the activations to FP8 before the dispatch and the GEMMs run in FP8 (the
        stack's ``moe_fp8_dispatch`` profile flag; DeepSeek-V3 report, arXiv 2412.19437, sec. 3.3.2: "we quantize
        the activation before MoE up-projections into FP8 and then apply dispatch components"), else 2: Megatron-Core
        sends the BF16 hidden states and Transformer Engine quantises them inside the expert GEMM. Its alltoall
        dispatcher all-to-alls the permuted BF16 tokens (token_dispatcher.py ``token_dispatch``, core_v0.14.0);
        the DeepEP flex path passes the BF16 ``hidden_states`` tensor (not an (FP8, scales) pair) to DeepEP's
        ``buffer.dispatch`` (fused_a2a.py ``FusedDispatch.forward``, core_v0.14.0 and Megatron-LM d98e8a64); the
        HybridEP path sets ``fp8_dispatch = False  # Currently, we do not support fp8 dispatch`` before building its
        buffer (d98e8a64 fused_a2a.py ``HybridEPDispatch.forward``, line 402) and ``init_hybrid_ep_buffer`` asserts
        "HybridEP dispatcher does not support fp8 dispatch now" (line 327). An FP8 (MXFP8) wire format exists only
        for the 'ncclep' flex backend (``moe_dispatch_fwd_dtype``, default 'bf16', added 2026-08-20, Megatron-LM
        7afe0319)."""
        return self.act_bytes if self.moe_fp8_dispatch else BF16_BYTES

    def pp_defers_sync(self, p: Plans) -> np.ndarray:
        """Plans whose FSDP (ZeRO >= 2) under pipeline parallelism keeps the stage's weights gathered and its
        gradients unsharded until the last backward: the stack's ``fsdp_pp_unsharded`` profile flag (PyTorch
        ``torch.distributed.pipelining`` with FSDP2: ``PipelineStage.backward_maybe_with_nosync`` sets
        ``set_reshard_after_backward(False)`` and ``set_requires_gradient_sync(False)`` for every micro-batch but
        the last; torchtitan and NeMo AutoModel also build the stage with ``reshard_after_forward=False``).
        Such a plan holds the stage's weights and gradients whole and gathers / reduce-scatters once per call of the
        pipeline schedule (perf/step.py ``dp_syncs_per_step``)."""
        if not self.fsdp_pp_unsharded:
            return np.zeros(np.shape(p.pp), dtype=bool)
        return (p.pp > 1) & (p.zero >= 2)

    def shard_ranks(self, p: Plans) -> np.ndarray:
        """Ranks the dense parameters' ZeRO states are sharded over: the dp x cp group (Megatron-Core's distributed
        optimizer), or a smaller sharding group with the states replicated across the groups (``zero_shard_group``:
        MiCS partition groups, arXiv 2205.00119 sec. 3; the SageMaker model parallelism library's
        sharded_data_parallel_degree), gcd(dp x cp, group) when the group does not divide dp x cp. A plan the search
        gave a group (``p.zgroup`` l >= 1: HSDP / MiCS, where the stack's profile offers it, ``zero_shard_groups``)
        shards over the dp x cp ranks inside one level-(l-1) network domain, gcd(dp x cp, those ranks)."""
        return shard_group_ranks(p, self.system, self.zero_shard_group)

    @property
    def host_link_bw(self) -> float:
        """Bytes/s per chip, one direction, that host-memory copies (offload) reach: the chip's own host link
        (e.g. GB200's NVLink-C2C to Grace) x ``host_link_eff`` where the catalog states one, else the family's
        PCIe figure (``calib.host_link_bw``)."""
        own = self.chip.host_link_bw
        return own * self.calib.host_link_eff if own else self.calib.host_link_bw

    @property
    def param_gather_bytes(self) -> float:
        """Bytes per parameter of a ZeRO / distributed-optimizer parameter all-gather: 1 with FP8 weights
        (``fp8_param_gather`` in an FP8 run: Megatron-Core gathers the Transformer Engine FP8 tensors), else 2."""
        return 1.0 if (self.fp8_gemm and self.fp8_param_gather) else 2.0

    @property
    def weight_bytes(self) -> float:
        """HBM bytes per parameter of the weights the model computes with: BF16 (2), or with FP8 weights 1 byte,
        plus a second byte on Hopper, whose FP8 GEMMs take only the TN layout, so Transformer Engine keeps each FP8
        weight's transpose for the backward GEMM (TE Float8Tensor transpose cache; Blackwell GEMMs take either
        layout: NVIDIA Transformer Engine docs, 'FP8 on Blackwell')."""
        if self.param_gather_bytes == 1.0:
            return 2.0 if self.fp8_transposed_copy else 1.0
        return 2.0

    def vocab_per_tp(self, p: Plans) -> np.ndarray:
        """Rows of the embedding and output-layer matrices on one chip of a tp group: the vocabulary padded to a
        multiple of d x tp, split over tp, d = ``vocab_divisible_by``:

            V_rank = ceil(V / (d tp)) x d

        Megatron-LM pads the vocabulary with dummy tokens to a multiple of ``--make-vocab-size-divisible-by``
        (default 128) x tp (NVIDIA/Megatron-LM megatron/tokenizer/tokenizer.py ``_vocab_size_with_padding`` at v2.5
        e269e20064 and 23.08 375395c187; megatron/training/tokenizer/tokenizer.py at core_r0.6.0 cac60ce4c8;
        megatron/core/tokenizers/utils/build_tokenizer.py ``vocab_size_with_padding`` at d98e8a64dd), NeMo 2 does
        the same (nemo/lightning/base.py ``get_vocab_size`` at v2.3.0), Megatron-Bridge only where the recipe sets
        ``should_pad_vocab`` (src/megatron/bridge/models/gpt_provider.py at 067f987d). d = 1 is no padding beyond
        what the split needs: ceil(V / tp) rows, the largest shard of an uneven split (PyTorch DTensor Shard(0)), V / tp
        where tp divides V. Example: Llama 3's 128,256 at d 128, tp 8: ceil(128,256 / 1,024) x 128 = 16,128 rows
        per chip (129,024 in all, +0.6%); at tp 1: 128,256. Every per-chip cost of the embedding and the output
        layer (head GEMM, loss, logits, parameters) reads it; model FLOPs (MFU) count the real vocabulary
        (:mod:`trainsim.model.counts`)."""
        d = float(self.vocab_divisible_by)
        return np.ceil(self.arch.vocab / (d * np.asarray(p.tp, dtype=np.float64))) * d

    @property
    def logit_bytes(self) -> float:
        """Bytes kept per logit (token x vocab entry) until the backward: 2 with Transformer Engine's parallel cross
        entropy, which writes the gradient into the BF16 logits in the forward (transformer_engine/pytorch/
        cross_entropy.py; Megatron-Core ``cross_entropy_fusion_impl='te'``), else 6 (BF16 logits + fp32 softmax)."""
        return 2.0 if self.cross_entropy_fusion == "te" else 6.0

    @property
    def stored_gemm_input_bytes(self) -> float:
        """Bytes per element of a GEMM input kept for the weight gradient: the FP8 cast with FP8 GEMMs
        (Transformer Engine keeps it; DeepSeek-V3 sec. 3.3.2), BF16 otherwise or with ``fp8_activations: none``."""
        return 1.0 if (self.fp8_gemm and self.fp8_activations != "none") else 2.0

    @property
    def stored_act_fn_input_bytes(self) -> float:
        """Bytes per element of an activation-function input kept for backward: FP8 only when the run caches
        them in FP8 (DeepSeek-V3 sec. 3.3.3, 'Inputs of the SwiGLU operator in MoE')."""
        return 1.0 if (self.fp8_gemm and self.fp8_activations == "all") else 2.0
