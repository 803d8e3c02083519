"""Parameter counts and model FLOPs of an :class:`~trainsim.model.arch.Arch`.

Conventions (the ones ../shared/data/models.md documents and trainsim reports):

* ``total_params``: every parameter of the main model, input embedding and (untied) output head included,
  multi-token-prediction (MTP) modules excluded.
* ``active_params``: parameters that touch one token, output head counted, input embedding not (a lookup),
  MTP excluded; routed experts count ``top_k`` (or the expected number with zero-computation experts).
* ``flops_per_token`` (training, forward + backward = 3 x forward; Kaplan et al. 2020 sec. 2.1, Narayanan et
  al. 2021 eq. 3): matmuls ``6 x active matmul params`` (the logits GEMM counted even when tied) plus causal
  attention ``3 x 2 x heads x (d_qk + d_v) x mean attended context`` per layer (PaLM, Chowdhery et al. 2022,
  appendix B, counts 12 L H Q T for full attention; causal masking halves it).
"""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass
from functools import lru_cache

from .arch import Arch, AttentionCore, LayerKind


def training_flops_6nd(active_params: float, tokens: float) -> float:
    """Training compute in the ``C = 6 N D`` convention: 6 x ``active_params`` (N, parameters one token uses) x
    ``tokens`` (D) FLOPs -- forward 2 N and backward 4 N FLOPs per token (Kaplan et al. 2020, arXiv 2001.08361,
    sec. 2.1, eq. 2.1; Hoffmann et al. 2022, arXiv 2203.15556, sec. 3: C ~ 6 N D). The seed claims' and the
    scenarios' unit of training compute (no attention term, no output-head term beyond N): the one place the
    product is formed; :attr:`Counts.flops_per_token` is the engine's finer count used for MFU."""
    return 6.0 * active_params * tokens


def compute_optimal_params(flops: float, tokens_per_param: float) -> float:
    """The model size N a compute budget C trains at ``tokens_per_param`` (r) tokens per parameter: C = 6 N D and
    D = r N give N = sqrt(C / (6 r)) (Hoffmann et al. 2022, arXiv 2203.15556, with r = 20 for Chinchilla;
    :func:`training_flops_6nd` is the inverse at D = r N)."""
    return (flops / training_flops_6nd(tokens_per_param, 1.0)) ** 0.5


def mean_context(core: AttentionCore, seq_len: int) -> float:
    """Mean number of keys one query attends to (causal).

    full: (s + 1) / 2; sliding window w < s: w - w (w - 1) / (2 s) (the first w tokens see fewer);
    sparse top-w: like sliding (at most w keys); linear: 0 (its per-token cost is ``state_flops``).
    """
    s = float(seq_len)
    if core.kind == "linear":
        return 0.0
    if core.kind in ("sliding", "sparse") and core.window is not None and core.window < s:
        w = float(core.window)
        return w - w * (w - 1.0) / (2.0 * s)
    return (s + 1.0) / 2.0


def attention_fwd_flops_per_token(core: AttentionCore, seq_len: int) -> float:
    """Forward FLOPs of one attention core for one token: QK^T and AV, 2 x heads x (d_qk + d_v) x context."""
    return 2.0 * core.heads * (core.qk_head_dim + core.v_head_dim) * mean_context(core, seq_len) + core.state_flops


def layer_attention_fwd_flops_per_token(lk: LayerKind, seq_len: int) -> float:
    """Forward attention-core FLOPs per token of one layer of ``lk`` at ``seq_len``: the sum of
    :func:`attention_fwd_flops_per_token` over its attention cores."""
    return sum(attention_fwd_flops_per_token(c, seq_len) for c in lk.attention)


def head_matmul_params(arch: Arch) -> int:
    """The logits GEMM multiplies vocab x hidden whether or not it shares the embedding's storage."""
    return arch.vocab * arch.hidden


@dataclass(frozen=True)
class Counts:
    """Parameter and per-token FLOP counts of a model at one sequence length (see :func:`count`)."""

    total_params: int
    active_params: float
    active_params_range: tuple[float, float]
    embedding_params: int
    output_head_params: int
    mtp_params: int
    non_embedding_params: int
    layers: list[dict[str, Any]]
    matmul_flops_per_token: float
    attention_flops_per_token: float
    mtp_flops_per_token: float

    @property
    def flops_per_token(self) -> float:
        """Model FLOPs per trained token (main model: matmuls + causal attention; MTP reported apart)."""
        return self.matmul_flops_per_token + self.attention_flops_per_token


def _layer_active_range(lk: LayerKind) -> tuple[float, float]:
    """Active parameters of a layer at the least and most real experts a token can use."""
    base = lk.active_params
    if lk.moe is None or lk.moe.active_range is None:
        return base, base
    per_expert = sum(m.k * m.n + (m.n if m.bias else 0) for m in lk.matrices if m.group == "expert")
    lo, hi = lk.moe.active_range
    act = lk.moe.active_experts
    return base + (lo - act) * per_expert, base + (hi - act) * per_expert


def count(arch: Arch, seq_len: int = 4096) -> Counts:
    """All counts of a model at one training sequence length (memoised: an :class:`Arch` is frozen, and the
    scenarios ask for the same model's counts thousands of times)."""
    try:
        return _count(arch, seq_len)
    except TypeError:        # an unhashable field: counted afresh
        return _count.__wrapped__(arch, seq_len)


@lru_cache(maxsize=512)
def _count(arch: Arch, seq_len: int) -> Counts:
    layer_params = sum(lk.params * lk.n_layers for lk in arch.layers)
    total = arch.embedding_params + arch.extra_embedding_params + arch.head_params + arch.final_params + layer_params
    # the output head touches every token also when tied (the embedding matrix is multiplied there): counted once,
    # as the logits GEMM is in the FLOPs below (a tied model's active count left it out: 6 N_active understated
    # its matmul FLOPs by 6 x vocab x hidden)
    head = arch.head_params or (head_matmul_params(arch) if arch.tied_embeddings else 0)
    active = head + arch.final_params + sum(lk.active_params * lk.n_layers for lk in arch.layers)
    lo = head + arch.final_params + sum(_layer_active_range(lk)[0] * lk.n_layers for lk in arch.layers)
    hi = head + arch.final_params + sum(_layer_active_range(lk)[1] * lk.n_layers for lk in arch.layers)
    mtp_params = sum(lk.params * lk.n_layers for lk in arch.mtp) + arch.mtp_extra_params
    matmul = 6.0 * (sum(lk.active_matmul_params * lk.n_layers for lk in arch.layers) + head_matmul_params(arch))
    attn = 3.0 * sum(layer_attention_fwd_flops_per_token(lk, seq_len) * lk.n_layers for lk in arch.layers)
    mtp_fl = sum(6.0 * lk.active_matmul_params * lk.n_layers
                 + 3.0 * layer_attention_fwd_flops_per_token(lk, seq_len) * lk.n_layers for lk in arch.mtp)
    # each MTP module also runs the shared output head (DeepSeek-V3 report sec. 2.2)
    mtp_fl += 6.0 * head_matmul_params(arch) * sum(lk.n_layers for lk in arch.mtp)
    layers = [
        {
            "name": lk.name,
            "count": lk.n_layers,
            "params_per_layer": lk.params,
            "active_params_per_layer": lk.active_params,
            "attention": [c.kind for c in lk.attention],
            "moe": None if lk.moe is None else {
                "experts": lk.moe.experts, "top_k": lk.moe.top_k, "shared_experts": lk.moe.shared_experts,
                "expert_ffn": lk.moe.expert_ffn, "zero_experts": lk.moe.zero_experts,
            },
        }
        for lk in arch.layers
    ]
    return Counts(
        total_params=int(total),
        active_params=float(active),
        active_params_range=(float(lo), float(hi)),
        embedding_params=int(arch.embedding_params),
        output_head_params=int(arch.head_params),
        mtp_params=int(mtp_params),
        non_embedding_params=int(total - arch.embedding_params - arch.extra_embedding_params - arch.head_params),
        layers=layers,
        matmul_flops_per_token=matmul,
        attention_flops_per_token=attn,
        mtp_flops_per_token=mtp_fl,
    )
