"""The normalised architecture every importer produces and every later stage consumes.

A model is a list of *layer kinds* (e.g. 3 dense layers + 58 MoE layers); each layer kind is a list of weight
matrices (GEMMs, with the dimension each one multiplies), attention cores (the s^2 part), and vector parameters
(norms, biases). Parameter counts, FLOPs, memory and the parallel cost model are all derived from this one
description, so a formula for "how big is an expert GEMM" exists once: here, as data.

Conventions
-----------
* ``Matrix.k`` is the input (contracted) dimension, ``Matrix.n`` the output dimension of ``y = x W``.
* ``count`` copies exist in one layer; ``active`` of them multiply each token (routed experts: top-k, or the
  expected number when zero-computation experts exist). Dense matrices have ``count == active == 1``.
* ``group`` says how the matrix is sharded by the parallel plan:
  ``attn`` and ``mlp`` (column/row split by tp), ``expert`` (split over ep x etp), ``shared_expert`` (like mlp),
  ``router`` (replicated), ``other`` (replicated, e.g. DSA indexer, hash tables that are multiplied).
* ``split`` is ``col`` (n is split by tp: QKV, up/gate) or ``row`` (k is split by tp: out-proj, down).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Group = Literal["attn", "mlp", "expert", "shared_expert", "router", "other"]
Split = Literal["col", "row", "none"]
AttnKind = Literal["full", "sliding", "linear", "sparse"]
FfnAct = Literal["gelu", "swiglu", "relu2", "none"]


@dataclass(frozen=True)
class Matrix:
    """One weight matrix of a layer: ``count`` copies of a ``k x n`` matrix, ``active`` used per token.

    ``fp8`` False: the training stack runs this GEMM in BF16 even in an FP8 run (a weight outside Transformer
    Engine's FP8 context, e.g. DeepSeek-V4's grouped output projection, compressors and mHC mappings in
    Megatron-Core, :mod:`trainsim.model.families.deepseek_v4`): no FP8 cast, the BF16 rate
    (:func:`trainsim.perf.compute.layer_gemm_fwd`)."""

    name: str
    k: int
    n: int
    group: Group
    split: Split = "col"
    count: int = 1
    active: float = 1.0
    bias: bool = False
    fp8: bool = True

    @property
    def params(self) -> int:
        """Weights (and bias) of all copies: count x (k x n [+ n])."""
        return self.count * (self.k * self.n + (self.n if self.bias else 0))

    @property
    def active_params(self) -> float:
        """Weights used per token: active x (k x n [+ n])."""
        return self.active * (self.k * self.n + (self.n if self.bias else 0))


@dataclass(frozen=True)
class AttentionCore:
    """The score/value part of attention (no weights): FLOPs grow with the attended context.

    kind: ``full`` (causal over the whole sequence), ``sliding`` (causal over ``window`` tokens),
    ``linear`` (recurrent / state-space / linear attention: cost per token independent of context; ``state_flops``
    is its per-token forward FLOPs), ``sparse`` (a top-``window`` selection, as DSA: ``window`` = tokens kept).
    ``kv_elems_per_token`` is what one token adds to the KV cache of this core (MLA: latent + rope key).
    ``rope_q_elems`` / ``rope_k_elems``: query / key elements one token rotates by RoPE in this core; ``None``
    (a config that says nothing) is full rotation, ``heads x qk_head_dim`` / ``kv_heads x qk_head_dim``; 0 for a
    core without rotary (NoPE layers, learned or ALiBi positions, linear attention, a core sharing another's
    rotated query). See :attr:`rotated_qk_elems_per_token`. ``rope_copy_bytes`` are BF16 bytes per token the
    rotary kernel moves besides the rotation (MLA's KV split, see :func:`~trainsim.model.blocks.mla_attention`);
    ``unfused_rope_copy_bytes`` those Megatron-Core's unfused rotary path (``apply_rope_fusion`` false) copies on
    top of them (MLA's query concatenation; :func:`trainsim.perf.compute.unfused_rope_extra_bytes_per_token`).
    ``q_norm_elems``: query elements one token normalises with a weightless per-head RMSNorm after the
    up-projection (DeepSeek-V4's ``_q_rms_norm`` over all H x d query elements); ``out_copy_bytes``: BF16 bytes
    per token copied from the core's output on its way to the output projection (DeepSeek-V4's out-of-place
    inverse RoPE clones the whole H x d_v output). Both are priced in
    :func:`trainsim.perf.compute.elementwise_bytes_per_token`.
    ``dsa_keys`` / ``dsa_keys_per_token``: a core the framework runs inside one sparse-attention (DSA) kernel call
    together with the layer's other cores that set them, whose per-query index list holds ``dsa_keys +
    dsa_keys_per_token x seq_len`` KV entries (DeepSeek-V4: the sliding window plus the indexer's top-k, or plus
    every compressed entry); 0 for flash / unfused attention. Its backward is priced at the measured DSA
    backward rate for that list length (:func:`trainsim.perf.compute.dsa_bwd_rate`).
    ``tp_replicated``: every tensor-parallel rank runs the whole core on the whole sequence, its heads not split
    (the DSA lightning indexer, :func:`trainsim.model.blocks.dsa_indexer`); its FLOPs, bytes and kept activations
    are charged once per rank (:func:`trainsim.perf.compute.core_tp_ranks`) and its heads put no constraint on tp.
    ``tp_gather_elems``: elements per token the tp group all-gathers in the forward so that such a core sees the
    whole sequence under sequence parallelism (:func:`trainsim.perf.comm_tp.tp_comm_fwd`).
    ``score_bias``: a position bias added to every score (ALiBi, Press et al. 2022), which an unfused core adds
    through the score GEMM's C input (:func:`trainsim.perf.compute.unfused_score_bytes_per_token`).
    """

    heads: int
    qk_head_dim: int
    v_head_dim: int
    kv_heads: int
    kind: AttnKind = "full"
    window: int | None = None
    kv_elems_per_token: int = 0
    state_flops: float = 0.0
    rope_q_elems: float | None = None
    rope_k_elems: float | None = None
    rope_copy_bytes: float = 0.0
    unfused_rope_copy_bytes: float = 0.0
    q_norm_elems: float = 0.0
    out_copy_bytes: float = 0.0
    dsa_keys: float = 0.0
    dsa_keys_per_token: float = 0.0
    tp_replicated: bool = False
    tp_gather_elems: float = 0.0
    score_bias: bool = False

    @property
    def rotated_qk_elems_per_token(self) -> float:
        """Query plus key elements one token rotates: ``rope_q_elems + rope_k_elems``, each defaulting to full
        rotation (``heads x qk_head_dim``, ``kv_heads x qk_head_dim``) when the builder set none."""
        q = self.heads * self.qk_head_dim if self.rope_q_elems is None else self.rope_q_elems
        k = self.kv_heads * self.qk_head_dim if self.rope_k_elems is None else self.rope_k_elems
        return q + k


@dataclass(frozen=True)
class MoEInfo:
    """Routed-expert facts a parallel plan needs (the matrices themselves are in ``LayerKind.matrices``)."""

    experts: int
    top_k: int
    expert_ffn: int
    shared_experts: int = 0
    zero_experts: int = 0
    expected_active: float | None = None  # expected real experts per token when zero experts exist
    active_range: tuple[float, float] | None = None  # min/max real experts per token
    groups: int = 1           # routing groups (DeepSeek-V2 sec. 2.1.2 device-limited / V3 node-limited routing:
    top_groups: int = 1       # n_group groups of consecutive experts, a token routed inside its topk_group best)

    @property
    def active_experts(self) -> float:
        """Real experts per token: ``expected_active`` when zero experts exist, else ``top_k``."""
        return self.top_k if self.expected_active is None else self.expected_active


@dataclass(frozen=True)
class LayerKind:
    """``n_layers`` identical transformer layers."""

    name: str
    n_layers: int
    matrices: tuple[Matrix, ...]
    attention: tuple[AttentionCore, ...]
    vector_params: int = 0          # norms, biases not attached to a Matrix, gates, sinks ... (not multiplied)
    moe: MoEInfo | None = None
    ffn_act: FfnAct = "swiglu"
    ffn_dim: int = 0                 # dense MLP (or shared expert total) intermediate size, for activation memory
    residual_streams: int = 1        # hyper-connection streams of the residual (DeepSeek-V4 mHC hc_mult); 1: plain
    # small kernels the training stack's eager PyTorch regions issue per layer and micro-batch, forward and
    # backward (each direction counted from the framework's code, not backward = 2 x forward), besides the GEMM,
    # attention and fused kernels the byte model prices (perf/compute.py eager_kernels_fwd_bwd); 0 where the
    # builder has no such region counted
    eager_kernels_fwd: int = 0
    eager_kernels_bwd: int = 0

    @property
    def params(self) -> int:
        """Parameters of one layer: its matrices' parameters plus ``vector_params``."""
        return sum(m.params for m in self.matrices) + self.vector_params

    @property
    def active_params(self) -> float:
        """Parameters one token uses in one layer (routed experts weighted by the active fraction) plus
        ``vector_params``."""
        return sum(m.active_params for m in self.matrices) + self.vector_params

    @property
    def active_matmul_params(self) -> float:
        """Matrix parameters one token multiplies in one layer (the per-token matmul FLOPs are twice this)."""
        return sum(m.active_params for m in self.matrices)


@dataclass(frozen=True)
class Arch:
    """A model, normalised. ``layers`` run in order; ``mtp`` holds multi-token-prediction modules."""

    name: str
    family: str                      # Hugging Face model_type or 'inline'
    hidden: int
    vocab: int
    layers: tuple[LayerKind, ...]
    tied_embeddings: bool = False
    embedding_params: int = 0        # input token embedding (looked up, not multiplied)
    extra_embedding_params: int = 0  # other looked-up tables (learned positions, N-gram tables)
    head_params: int = 0             # output head (0 when tied: the embedding matrix is multiplied instead)
    final_params: int = 0            # final norm and similar
    mtp: tuple[LayerKind, ...] = ()  # multi-token prediction modules (trained; excluded from totals)
    mtp_extra_params: int = 0        # MTP projections/norms outside its LayerKinds
    parallel_block: bool = False
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: tokens a request may hold (prompt + output) when served: the config's ``max_position_embeddings``, vLLM's
    #: default ``max_model_len``; 0 where the config states none
    max_context: int = 0

    @property
    def n_layers(self) -> int:
        """Transformer layers in the model (sum over layer kinds)."""
        return sum(lk.n_layers for lk in self.layers)

    @property
    def n_heads(self) -> int:
        """The largest attention head count over the model's attention cores (0 with no layers)."""
        return max(a.heads for lk in self.layers for a in lk.attention) if self.layers else 0

    @property
    def n_moe_layers(self) -> int:
        """Decoder layers with routed experts (sum over the MoE layer kinds; MTP modules not counted)."""
        return sum(lk.n_layers for lk in self.layers if lk.moe is not None)

    @property
    def is_moe(self) -> bool:
        """Whether any layer kind has routed experts."""
        return any(lk.moe is not None for lk in self.layers)
