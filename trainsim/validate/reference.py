"""What a published run reported, as tokens/s per chip: the one number trainsim's prediction is compared with.

Sources report throughput in different forms. In order of preference (``reported:`` block of the run spec):

1. ``tokens_per_s_per_chip``: used as given.
2. ``step_time_s``: global batch tokens / step time / chips.
3. ``mfu`` with ``mfu_convention``: tokens/s/chip = mfu x dense BF16 peak of the chip / FLOPs per token, where
   FLOPs per token is the formula the *source* used (:data:`CONVENTIONS`). An MFU is only as comparable as its
   FLOP count: the Megatron form counts non-causal attention and the logits, the SC21 form adds a recompute
   pass, PaLM's leaves out the output layer. Without a stated convention there is no conversion (an error, not
   a guess).
4. ``chip_hours`` with ``training.tokens``: a whole-run average, tokens / (chip-hours x 3600). It includes
   restarts, failures, evaluation, checkpointing, batch ramp-up and idle allocation, none of which a steady-state
   step model predicts, so such references are ``kind == "whole-run"`` and kept out of the error summary.

Every formula below is written once, with its citation, in terms of the run's :class:`~trainsim.model.arch.Arch`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import TrainsimError
from ..model.arch import Arch
from ..model.counts import count
from ..errors import unknown

# --------------------------------------------------------------------------------------------------------------
# FLOPs per trained token under each published convention (forward + backward, per token of the global batch)
# --------------------------------------------------------------------------------------------------------------


def _attention_shape(arch: Arch) -> tuple[int, float]:
    """(heads H, head dim Q) of the model's attention: the largest full attention core of any layer kind.

    Q is the mean of the query-key and value head dims (PaLM's Q is one head dim; for MLA the two differ).
    """
    cores = [c for lk in arch.layers for c in lk.attention]
    if not cores:
        return 0, 0.0
    core = max(cores, key=lambda c: c.heads * (c.qk_head_dim + c.v_head_dim))
    return core.heads, (core.qk_head_dim + core.v_head_dim) / 2.0


def megatron_flops_per_token(arch: Arch, seq_len: int) -> float:
    """Megatron model FLOPs: 72 B s l h^2 (1 + s/6h + V/12lh) per iteration of B sequences of s tokens, i.e.
    72 l h^2 (1 + s/(6h) + V/(12 l h)) per token.

    Korthikanti et al. 2022, 'Reducing Activation Recomputation in Large Transformer Models', appendix A (model
    FLOPs, no recompute); the same expression is what Megatron-LM's ``num_floating_point_operations`` gives for a
    GPT with a 4h GeLU MLP and multi-head attention. Attention scores cover the full s x s matrix (not halved for
    causality) and the logits layer (2 s h V forward) is counted. Exact only for that GPT shape (the sources
    using it trained GPT-shaped models).
    """
    l, h, v, s = arch.n_layers, float(arch.hidden), float(arch.vocab), float(seq_len)
    return 72.0 * l * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * l * h))


def megatron_recompute_flops_per_token(arch: Arch, seq_len: int) -> float:
    """Megatron SC21 (hardware) FLOPs with full activation recomputation: 96 B s l h^2 (1 + s/6h + V/16lh) per
    iteration, i.e. 96 l h^2 (1 + s/(6h) + V/(16 l h)) per token.

    Narayanan et al. 2021, 'Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM'
    (SC21), equation 3: the forward pass of every transformer layer is run twice (4 passes instead of 3), the
    logits layer is not recomputed. Also GPT-NeoX's ``get_flops`` with ``checkpoint-activations``.
    """
    l, h, v, s = arch.n_layers, float(arch.hidden), float(arch.vocab), float(seq_len)
    return 96.0 * l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * l * h))


def palm_flops_per_token(arch: Arch, seq_len: int) -> float:
    """PaLM model FLOPs: 6N + 12 L H Q T per token.

    Chowdhery et al. 2022, 'PaLM: Scaling Language Modeling with Pathways', appendix B: N = non-embedding
    parameters (here: the active ones, so MoE counts top-k experts; input embedding and untied output head
    excluded, as in Nemotron-4's '331.6B non-embedding parameters'), L layers, H heads, Q head dim, T sequence
    length; attention over the full sequence (not halved for causality), no recompute.
    """
    c = count(arch, seq_len)
    n = c.active_params - arch.head_params
    heads, q = _attention_shape(arch)
    return 6.0 * n + 12.0 * arch.n_layers * heads * q * seq_len


def six_n_flops_per_token(arch: Arch, seq_len: int) -> float:
    """The '6N' rule: 6 x parameters per token (Kaplan et al. 2020, 'Scaling Laws for Neural Language Models',
    sec. 2.1, as used with a model's headline parameter count). N = all parameters, embeddings included; for MoE
    the parameters one token uses plus the input embedding. No attention term."""
    c = count(arch, seq_len)
    n = c.total_params if not arch.is_moe else c.active_params + arch.embedding_params
    return 6.0 * n


def gpt_neox_2022_flops_per_token(arch: Arch, seq_len: int) -> float:
    """GPT-NeoX's TFLOP/s logging as it was in 2021-2023: 6 N + 60 s h l per token, N = all parameters (embedding
    and untied output layer included), s sequence length, h hidden size, l layers; no recompute factor.

    EleutherAI/gpt-neox megatron/logging.py ``get_flops`` from da0a017b (2021-05-06) until 5f364017 (2023-09-27,
    'Improve FLOPS Calculation', which brought the SC21-style recompute factor): ``ff = model.total_params * 6``,
    ``attn = seq_length * hidden_size * num_layers * 60``, TFLOP/s = ``train_batch_size * seq_length * (ff + attn)
    / (iter_time_s * world_size)``; ``model.total_params`` is megatron/utils.py ``get_total_params``, every model-
    parallel rank's parameter count summed (the whole model). The code that trained and logged GPT-NeoX-20B
    (configs/20B.yml from c560814b, 2022-02-10)."""
    n = count(arch, seq_len).total_params
    return 6.0 * n + 60.0 * seq_len * arch.hidden * arch.n_layers


def trainsim_flops_per_token(arch: Arch, seq_len: int) -> float:
    """trainsim's own MFU numerator: 6 x active matmul params (logits included) + causal attention
    (:func:`trainsim.model.counts.count`)."""
    return count(arch, seq_len).flops_per_token


CONVENTIONS: dict[str, Callable[[Arch, int], float]] = {
    "trainsim": trainsim_flops_per_token,
    "megatron": megatron_flops_per_token,
    "megatron-recompute": megatron_recompute_flops_per_token,
    "palm": palm_flops_per_token,
    "6n": six_n_flops_per_token,
    "gpt-neox-2022": gpt_neox_2022_flops_per_token,
}


def flops_per_token(arch: Arch, seq_len: int, convention: str) -> float:
    """FLOPs per trained token of ``arch`` at ``seq_len`` under a published MFU convention."""
    try:
        fn = CONVENTIONS[convention]
    except KeyError:
        raise unknown("MFU convention", convention, CONVENTIONS, field="reported.mfu_convention") from None
    return fn(arch, seq_len)


# --------------------------------------------------------------------------------------------------------------
# The reported reference
# --------------------------------------------------------------------------------------------------------------

WHOLE_RUN_NOTE = ("whole-run average (tokens / chip-hours): includes restarts, failures, evaluation, "
                  "checkpointing, batch ramp-up and idle allocation, which a steady-state step model does not "
                  "predict; shown apart and excluded from the error summary")


@dataclass(frozen=True)
class Reference:
    """A reported throughput: ``value`` tokens/s per chip, ``how`` it was obtained, ``kind`` steady/whole-run."""

    value: float
    how: str
    kind: str = "steady"          # 'steady' (a step-time measurement) or 'whole-run' (chip-hours average)
    note: str = ""


def peak_bf16(run) -> float:
    """Dense BF16 peak of the run's chip (FLOP/s): every MFU in the calibration set is quoted against it."""
    peak = run.system.chip.peak_flops.get("bf16") or 0.0
    if peak <= 0:
        raise TrainsimError(f"chip {run.system.chip.id} has no BF16 peak; cannot convert an MFU",
                            field="reported.mfu")
    return float(peak)


def tokens_from_mfu(run, mfu: float, convention: str) -> tuple[float, float]:
    """(tokens/s per chip, FLOPs per token) implied by ``mfu`` under ``convention`` on the run's chip."""
    f = flops_per_token(run.arch, run.training.seq_len, convention)
    return mfu * peak_bf16(run) / f, f


def whole_run_tokens_per_s_per_chip(run) -> float | None:
    """training.tokens / (reported chip_hours x 3600), or None when either is missing."""
    rep = run.reported
    if rep is None or not rep.chip_hours or not run.training.tokens:
        return None
    return float(run.training.tokens) / (float(rep.chip_hours) * 3600.0)


def steady_reference(run) -> Reference | None:
    """The steady-state reference (reported tokens/s, else from step time, else from MFU), or None."""
    rep = run.reported
    if rep is None:
        return None
    if rep.tokens_per_s_per_chip is not None:
        return Reference(float(rep.tokens_per_s_per_chip), "reported")
    if rep.step_time_s is not None:
        if rep.step_time_s <= 0:
            raise TrainsimError(f"must be positive; got {rep.step_time_s}", field="reported.step_time_s")
        tokens = run.training.batch_seqs * run.training.seq_len
        return Reference(tokens / rep.step_time_s / run.chips, "from step time",
                         note=f"{run.training.batch_seqs} x {run.training.seq_len} tokens / "
                              f"{rep.step_time_s:g} s / {run.chips} chips")
    if rep.mfu is not None:
        conv = rep.mfu_convention
        if conv is None:
            raise TrainsimError("an MFU without its FLOP convention cannot be converted to tokens/s; add "
                                f"mfu_convention ({' | '.join(CONVENTIONS)})", field="reported.mfu_convention")
        value, f = tokens_from_mfu(run, rep.mfu, conv)
        return Reference(value, f"from MFU ({conv} convention)",
                         note=f"MFU {rep.mfu:g} x {peak_bf16(run) / 1e12:g} TFLOP/s / {f:.4g} FLOP/token")
    return None


def reference(run) -> Reference:
    """The reference a prediction of ``run`` is compared with (steady state preferred, else whole-run)."""
    ref = steady_reference(run)
    if ref is not None:
        return ref
    whole = whole_run_tokens_per_s_per_chip(run)
    if whole is not None:
        return Reference(whole, "from chip-hours (whole-run average)", kind="whole-run", note=WHOLE_RUN_NOTE)
    raise TrainsimError("nothing to compare with: give tokens_per_s_per_chip, step_time_s, mfu (with "
                        "mfu_convention) or chip_hours (with training.tokens)", field="reported")


def reported_tokens_per_s_per_chip(run) -> tuple[float, str]:
    """(tokens/s per chip, how): 'reported', 'from step time', 'from MFU (<convention> convention)' or
    'from chip-hours (whole-run average)'. Raises :class:`TrainsimError` when the run reports none of these."""
    ref = reference(run)
    return ref.value, ref.how
