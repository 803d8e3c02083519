"""Activation memory of one layer, tensor by tensor, and which recompute module drops each tensor.

What a layer keeps for its backward pass, per token (Korthikanti et al. 2022, "Reducing Activation Recomputation
in Large Transformer Models", sec. 4.1, written per tensor instead of per GPT-3 layer so that GQA, MLA, SwiGLU and
MoE layers are covered by the same rule). With tensor + sequence parallelism every tensor is split over tp
(their eq. 2); the caller divides by tp.

===================  ==============================================  =========================================
tensor               bytes per token                                 dropped by (Megatron-Core module)
===================  ==============================================  =========================================
norm inputs          2 h per pre-norm (BF16)                         full recompute only
attention ln_out     h x g (input of Q/K/V or MLA down-projections)  ``layernorm``
attention latents    k x g per internal GEMM (MLA q_b / kv_b input)  full recompute only
attention Q, K, V    (H d_qk + G (d_qk + d_v)) x 2                   ``mla_up_proj`` (MLA layers only)
attention output     H d_v x g (out-projection input)                full recompute only
flash O (FP8 runs)   H d_v x 2 (kept by the kernel besides the        ``core_attn``
                     FP8 copy; the same tensor in BF16 runs, and
                     one low-precision copy when the run caches
                     attention outputs in FP8, DeepSeek-V3 3.3.3)
unfused scores       5 a s bytes (Korthikanti eq. 1: softmax output,  ``core_attn``
                     dropout mask and output); 2 a s at attention
                     dropout 0 (the softmax output alone)
MLP ln_out           h x g (input of gate/up, router, dispatch)      ``layernorm``
dense MLP            act-fn input (1 or 2) f x a, down input f x g   ``mlp``
shared experts       act-fn input (1 or 2) f_s x a, down input f_s g ``shared_experts``, ``moe``
routed experts       dispatched copies k h g (x etp: see below),      ``moe`` (``moe_act`` drops the down
                     act-fn input (1 or 2) k f_e a, down input k f_e  input only)
                     g
router               (E + zero experts) x 4 (fp32 probabilities)     ``moe``
hidden dropout masks 2 h x 1 (one bool mask per sublayer output, at  full recompute only
                     hidden dropout p > 0)
all-gather dispatch  k h 2 (x etp): the unpermuted expert outputs     ``moe``
                     the probability scale keeps
===================  ==============================================  =========================================

The dispatched copies are the experts' fc1 input in full hidden width, saved by the first expert GEMM (each
expert's slice is a view of the permuted buffer, so the whole buffer stays: Megatron-Core core_r0.6.0
megatron/core/transformer/moe/experts.py SequentialMLP.forward, ``LinearWithGradAccumulationAndAsyncCommunication``
``ctx.save_for_backward(input, weight)``). A chip holds tokens x k x etp / tp of them, not tokens x k / tp: the
expert tensor-parallel group gathers its members' tokens (``ActTensor.etp_gathered``). The activation-function and
down-projection inputs are split over the expert FFN (f_e / etp per chip), so tokens x k x f_e / tp either way.
The all-gather dispatcher (``moe_dispatcher: allgather``) scales the unpermuted expert outputs by the routing
probabilities before the reduction, ``unpermuted_local_hidden * scores.view(-1, 1)`` on the [k tokens etp / tp, h]
BF16 rows (Megatron-LM core_r0.6.0 token_dispatcher.py MoEAllGatherTokenDispatcher.token_unpermutation; the same
line in Ascend/MindSpeed e6ea2117 mindspeed/core/transformer/moe/token_dispatcher.py
allgather_token_unpermutation), and autograd's multiply keeps that input for the probabilities' gradient.
Its other tensors are index vectors (a few bytes per row) or transients (MindSpeed's FP32 accumulate buffer is not
saved: NewIndePut keeps only the index).

Stacks whose tensor parallelism is PyTorch DTensor's (torchtitan): the sequence-parallel norm output is
all-gathered to the full sequence before the Q/K/V and gate/up GEMMs (``PrepareModuleInput(input_layouts=Shard(1),
desired_input_layouts=Replicate())``, pytorch/torchtitan parallelize_llama.py ``apply_tp`` at 9dec370), and those
GEMMs save the gathered tensor, so the two ln_out tensors are kept whole on every tp rank (``gathered_gemm_inputs``;
Megatron-Core and Transformer Engine save the sequence shard and all-gather it again in the backward:
megatron/core/tensor_parallel/layers.py ``LinearWithGradAccumulationAndAsyncCommunication``). A stack that repeats
K/V to the query heads before SDPA (torchtitan's ``repeat_kv``) has SDPA save the repeated copies
(``kv_repeated``: K and V at H heads, not G).

g = bytes of a stored GEMM input (1 for FP8 casts, 2 for BF16), a = bytes of a stored activation-function input
(1 when the run caches them in FP8, DeepSeek-V3 sec. 3.3.3; else 2); routed-expert terms are x ``expert_imbalance``
(the busiest chip). Flash attention stores no s^2 tensor (Dao et al. 2022); no dropout (modern pre-training).
The unfused core keeps the softmax output (2 bytes per head and key, for the softmax backward), and at attention
dropout p > 0 the 1-byte mask and the 2-byte dropout output the AV GEMM saves (:data:`UNFUSED_KEPT_BYTES`); at
p = 0 PyTorch's dropout returns its input (pytorch/pytorch aten/src/ATen/native/Dropout.cpp at 92426d68,
``_dropout_impl``), so the AV GEMM saves the softmax output itself and 2 bytes remain.
Hidden (residual) dropout at p > 0 keeps one 1-byte mask per sublayer output, 2 h bytes per token: Megatron's
fused bias-dropout-add runs ``torch.nn.functional.dropout`` on the attention and MLP outputs (Megatron-LM v2.5
e269e20064 megatron/model/transformer.py ``bias_dropout_add``; megatron/core/fusions/fused_bias_dropout.py at
d98e8a64dd), whose backward needs the mask; it sits in the sequence-parallel region (split over tp) and outside
every selective-recompute module (Megatron-Core TransformerLayer runs it between the attention / MLP submodules
the modules checkpoint), so only full recompute drops it. At p = 0 dropout returns its input and keeps nothing.
For GPT-3 in BF16 this is Korthikanti's 34 s b h per layer at hidden dropout 0.1 (32 s b h at 0), + 5 a s^2 b
for an unfused core with attention dropout.

Tensor parallelism without sequence parallelism (Megatron-LM before v3.0; the stack flag ``tp_allreduce``,
``sequence_parallel`` False here): the layer norms, the dropouts and the inputs of the column-parallel GEMMs run on
the whole sequence on every tp rank, so the two norm inputs, the two ln_out tensors and the two hidden-dropout masks
(10 s b h for GPT-3) are not split; Korthikanti et al. 2022 eq. 3, s b h (10 + 24 / t + 5 a s / (h t)), and the
layer input full recompute keeps is whole too (their Table 2: 2 s b h).

A stack whose layers save only what is costly to rebuild (``pointwise_recompute``: Meta's Llama 3 stack, its custom
autograd operators choosing the saved tensors, Chu et al. ISCA 2025 sec. 6.3, sized by their Figures 9 and 10 at
21 h bytes per token for the 405B layer; the profile's ``pointwise_recompute_source``) keeps the two norm inputs,
q / k / v, the attention output and the SwiGLU's two inputs, and reruns the pointwise kernels whose outputs it does
not keep in the backward: the two RMSNorm outputs (the ln_out tensors) and the dense MLP's activation-function output
(the down-projection input). For a Llama layer (GQA, SwiGLU, BF16) that is 4 h + 2 h + h / 4 + 2 h + 4 f bytes per
token, 21.25 h at f = 3.25 h, against 31.75 h with both ln_out tensors and the down input kept. The plan's recompute
stays ``none``: no GEMM and no attention runs twice. Expert tensors are left as listed (no source for MoE).

Full recompute (Megatron-Core ``--recompute-granularity full``): ``uniform`` keeps one layer input (2 h bytes per
token) per group of ``num_layers`` layers and rebuilds one group at a time; ``block`` recomputes the first
``num_layers`` layers of each (virtual) stage and keeps the rest in full.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.arch import AttentionCore, LayerKind

MODULES = ("core_attn", "mlp", "moe_act", "layernorm", "mla_up_proj", "shared_experts", "moe", "op_sac")

_MLP_GROUPS = ("mlp", "expert", "shared_expert", "router")

#: bytes per head, token and key the unfused attention core keeps for backward, (softmax output, dropout mask +
#: dropout output): Korthikanti et al. 2022 sec. 4.1, 2 a s^2 b + (a s^2 b + 2 a s^2 b); the second only at attention
#: dropout p > 0 (module docstring)
UNFUSED_KEPT_BYTES = (2.0, 3.0)
#: bytes per element of a hidden-dropout mask (torch ``native_dropout``'s bool mask; Korthikanti et al. 2022 sec. 4.1
#: count s b h for each of the two); module docstring
HIDDEN_DROPOUT_MASK_BYTES = 1.0


@dataclass(frozen=True)
class ActTensor:
    """One activation tensor a layer stores for backward: its bytes per token and the recompute options
    that drop it."""

    name: str
    bytes_per_token: float
    dropped_by: tuple[str, ...] = ()
    tp_split: bool = True     # split over the tp ranks (sequence or heads); False: kept whole on every tp rank
    etp_gathered: bool = False  # routed rows in full width, gathered over the expert-tp group: x etp / tp


#: weight matrices Megatron-Core's ``mla_up_proj`` checkpoint reruns in backward: MLA's q_b and kv_b
#: (multi_latent_attention.py ``qkv_up_proj_and_rope_apply``) and DeepSeek-V4's q_b and its single KV projection kv
#: (Megatron-LM 43e45e1307 experimental_attention_variant/deepseek_v4_hybrid_attention.py lines 691-721, wrapped in
#: ``CheckpointWithoutOutput`` at lines 866-868 when 'mla_up_proj' is in recompute_modules)
UP_PROJ_MATRICES = ("q_b", "kv_b", "kv")


def has_up_proj_checkpoint(lk: LayerKind) -> bool:
    """True when ``mla_up_proj`` acts on the layer: its attention is MLA (a ``kv_b`` up-projection) or DeepSeek-V4's
    hybrid attention (a single ``kv`` projection); other attention ignores the module."""
    return any(m.name in ("kv_b", "kv") for m in lk.matrices)


def gated(lk: LayerKind, prefix: str) -> bool:
    """True when the ``prefix`` MLP (mlp, shared, expert) of a layer has a gate (SwiGLU/GeGLU)."""
    return any(m.name == f"{prefix}.gate" for m in lk.matrices)


def down_k(lk: LayerKind, prefix: str) -> float:
    """Intermediate size of the ``prefix`` MLP of a layer: the input dimension of its down projection."""
    return float(sum(m.k for m in lk.matrices if m.name == f"{prefix}.down"))


def activation_tensors(lk: LayerKind, hidden: int, seq_len: int, *, gemm_bytes: float, act_fn_bytes: float,
                       imbalance: float = 1.0, unfused: bool = False, attention_dropout: float = 0.1,
                       hidden_dropout: float = 0.0, parallel_block: bool = False,
                       gathered_gemm_inputs: bool = False, kv_repeated: bool = False,
                       allgather_dispatch: bool = False, sequence_parallel: bool = True,
                       pointwise_recompute: bool = False) -> list[ActTensor]:
    """Every tensor one layer keeps for backward, per token (before the tp split), with its droppers.
    ``gathered_gemm_inputs``: the ln_out tensors are kept whole (not split over tp); ``kv_repeated``: SDPA keeps
    K and V at the query heads (module docstring); ``allgather_dispatch``: the all-gather dispatcher's
    probability scale keeps its input (module docstring); ``attention_dropout``: the unfused core's dropout
    probability (its mask and output kept only above 0, :data:`UNFUSED_KEPT_BYTES`); ``hidden_dropout``: the
    residual dropout probability (two 1-byte masks kept above 0, :data:`HIDDEN_DROPOUT_MASK_BYTES`);
    ``sequence_parallel`` False: tensor parallelism without sequence parallelism (module docstring), the norm
    inputs, both ln_out tensors and the hidden-dropout masks kept whole on every tp rank; ``pointwise_recompute``:
    the stack keeps neither ln_out tensor nor the dense MLP's down-projection input (module docstring)."""
    h, g, a = float(hidden), gemm_bytes, act_fn_bytes
    out: list[ActTensor] = []
    norms = 1 if parallel_block else 2
    sp = sequence_parallel
    out.append(ActTensor("norm inputs", norms * 2.0 * h, tp_split=sp))
    attn = [m for m in lk.matrices if m.group in ("attn", "other")]
    if any(m.k == hidden for m in attn) and not pointwise_recompute:
        out.append(ActTensor("attention ln_out", h * g, ("layernorm",), tp_split=sp and not gathered_gemm_inputs))
    latent = sum(m.k for m in attn if m.k != hidden and m.name != "o")
    if latent:
        out.append(ActTensor("attention latents", latent * g))
    mla = has_up_proj_checkpoint(lk)
    def qkv_elems(cores: list[AttentionCore]) -> float:
        return sum(c.heads * c.qk_head_dim + (c.heads if kv_repeated else c.kv_heads) * (c.qk_head_dim + c.v_head_dim)
                   for c in cores if c.kind != "linear")
    qkv = qkv_elems([c for c in lk.attention if not c.tp_replicated])
    if qkv:
        out.append(ActTensor("attention q/k/v", qkv * 2.0, ("mla_up_proj",) if mla else ()))
    rep_qk = qkv_elems([c for c in lk.attention if c.tp_replicated])
    if rep_qk:  # the DSA indexer's q / k, whole on every tp rank (AttentionCore.tp_replicated)
        out.append(ActTensor("replicated q/k (DSA indexer)", rep_qk * 2.0, tp_split=False))
    o_in = sum(m.k for m in attn if m.name == "o")
    if o_in:
        out.append(ActTensor("attention output", o_in * g))
        if g != 2.0 and a != 1.0:
            out.append(ActTensor("flash output (bf16)", o_in * 2.0, ("core_attn",)))
    if unfused:
        per_key = UNFUSED_KEPT_BYTES[0] + (UNFUSED_KEPT_BYTES[1] if attention_dropout > 0.0 else 0.0)
        out.append(ActTensor("unfused scores", sum(per_key * c.heads * seq_len for c in lk.attention
                                                   if c.kind != "linear"), ("core_attn",)))
    mlp_side = [m for m in lk.matrices if m.group in _MLP_GROUPS]
    if any(m.k == hidden for m in mlp_side) and not parallel_block and not pointwise_recompute:
        out.append(ActTensor("mlp ln_out", h * g, ("layernorm",), tp_split=sp and not gathered_gemm_inputs))
    f = down_k(lk, "mlp")
    if f:
        fn = (2.0 if gated(lk, "mlp") else 1.0) * f * a
        out.append(ActTensor("mlp act input", fn, ("mlp",)))
        if not pointwise_recompute:
            out.append(ActTensor("mlp down input", f * g, ("mlp",)))
    fs = down_k(lk, "shared")
    if fs:
        out.append(ActTensor("shared-expert act input", (2.0 if gated(lk, "shared") else 1.0) * fs * a,
                             ("shared_experts", "moe")))
        out.append(ActTensor("shared-expert down input", fs * g, ("shared_experts", "moe")))
    if lk.moe is not None:
        k = lk.moe.active_experts * imbalance
        fe = float(lk.moe.expert_ffn)
        out.append(ActTensor("dispatched tokens", k * h * g, ("moe",), etp_gathered=True))
        out.append(ActTensor("expert act input", k * (2.0 if gated(lk, "expert") else 1.0) * fe * a, ("moe",)))
        out.append(ActTensor("expert down input", k * fe * g, ("moe_act", "moe")))
        out.append(ActTensor("router probabilities", 4.0 * (lk.moe.experts + lk.moe.zero_experts), ("moe",)))
        if allgather_dispatch:
            out.append(ActTensor("unpermuted expert outputs (probability scale input)", k * h * 2.0, ("moe",),
                                 etp_gathered=True))
    if hidden_dropout > 0.0:
        out.append(ActTensor("hidden dropout masks", 2.0 * HIDDEN_DROPOUT_MASK_BYTES * h, tp_split=sp))
    return out


def kept_bytes_per_token(tensors: list[ActTensor], modules: tuple[str, ...] = (), tp: Any = 1.0,
                         etp: Any = 1.0) -> Any:
    """Bytes per token one tp rank keeps when the selective-recompute ``modules`` are recomputed (none:
    everything): each kept tensor / tp, or whole where it is not split (``ActTensor.tp_split``), and x etp / tp
    where it holds routed rows in full hidden width (``ActTensor.etp_gathered``): a chip's local experts receive
    tokens x k x etp / tp rows (perf/compute.py expert_rows_per_chip), since the expert tensor-parallel group
    gathers its etp shards' tokens before the experts (Megatron-Core core_r0.6.0 MoEAllGatherTokenDispatcher over
    the tensor (x expert) parallel group; the alltoall dispatcher's gather over the expert-tp group since
    core_r0.10.0)."""
    kept = [t for t in tensors if not set(t.dropped_by) & set(modules)]
    split = float(sum(t.bytes_per_token for t in kept if t.tp_split and not t.etp_gathered))
    gathered = float(sum(t.bytes_per_token for t in kept if t.etp_gathered))
    whole = float(sum(t.bytes_per_token for t in kept if not t.tp_split and not t.etp_gathered))
    return (split + gathered * etp) / tp + whole


def op_sac_bytes_per_token(lk: LayerKind, hidden: int) -> float:
    """torchtitan's op-level selective activation checkpointing (``activation_checkpoint.mode = "selective"``,
    ``selective_ac_option = "op"``; torchtitan/models/llama3/infra/parallelize.py ``_save_list``): a layer keeps its
    input (2 h), the attention kernel's output (H d_v x 2) and the output of every other matmul (the policy saves
    ``aten.mm`` results alternately); everything else is recomputed. Per token: 2 h + 2 H d_v + half the matmul
    outputs in BF16 (routed experts x active)."""
    mm_out = sum(m.n * (m.active if m.group == "expert" else 1.0) for m in lk.matrices if m.group != "router")
    o_in = sum(m.k for m in lk.matrices if m.name == "o")
    return 2.0 * hidden + 2.0 * o_in + 0.5 * 2.0 * mm_out


def layer_input_bytes_per_token(hidden: int) -> float:
    """What full recompute keeps of a layer: its BF16 input, 2 h bytes per token."""
    return 2.0 * hidden
