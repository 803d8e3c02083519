"""Capacity: the largest pretraining run a fleet finishes in D days, and what limits it.

The fleet's compute is not a number until a model is chosen (MFU depends on the model's shape and the plan),
so capacity searches over model size: for a size N, a stated rule gives the shape and the token budget
(tokens = ratio x N); the best plan on the fleet gives the tokens it trains in D days (x goodput); the sizes
whose budget fits are searched up to the largest (a secant step from a compute guess, then bisection on log N),
and the answer is the one of them whose run has the most training compute, 6 N_active x the tokens it trains in
D days (:data:`OBJECTIVE`: the model size follows from the compute). Shape rules (all ratios in
``assumptions.yaml``):

* ``dense``: compute-optimal by Chinchilla (Hoffmann et al. 2022, arXiv 2203.15556): D = 20 N, C = 6 N D, so
  N = sqrt(C / 120). Llama-3-like shape (GQA with 8 KV heads, head 128, SwiGLU FFN 3.25 h, depth ~ h / 128),
  which reproduces Llama 3.1 405B (h 16384, 126 layers) at N = 405B.
* ``deepseek-v3``: a DeepSeek-V3-like MoE scaled up (arXiv 2412.19437: MLA, 1 shared + top-8 routed experts,
  3 dense layers) with total/active = ``moe_sparsity`` (18.1 for DeepSeek-V3) and tokens = ``tokens_per_active_param``
  x active (400 for DeepSeek-V3). Depth grows as active^(1/4) (within 4 layers, so that neighbouring sizes
  differ); width (a multiple of 128) and the expert count are solved for the active and total counts.

Limits reported with each result (``limits``): memory (best plan's bytes vs HBM), network (exposed
communication share of the step, the levels each parallel group crosses), batch (global batch vs the critical
batch B_opt = 0.292 C^0.3271 tokens of DeepSeek LLM, arXiv 2401.02954 sec. 3.1), failures (goodput), and the
data-movement / latency limits of Erdil & Schneider-Joseph (arXiv 2411.01137):

* serial-step (latency) bound: a step cannot take less than t_min = 3 L t_layer (forward + backward through L
  layers in sequence, t_layer the minimum latency of one layer), so at most S = D x 86400 / t_min optimizer steps
  fit in D days and at most S x B tokens at batch B; the run must satisfy tokens <= S x B;
* the paper's thresholds for a 3-month run: utilisation falls beyond ~2e28 FLOP (data movement) and runs beyond
  ~2e31 FLOP are infeasible (latency wall).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from ..model.counts import compute_optimal_params, count, training_flops_6nd
from ..assumptions import Assumptions
from ..types_checked import MAX_DIM
from .common import best, make_run, plan_summary, comm_fraction, where_time_goes
from .goodput import goodput
from ..model.inline import InlineModel, build_inline
from ..errors import TrainsimError
from ..numfmt import count as count_fmt, days_text, fraction
from ..catalog.resolve import resolve_system
from ..units import GIB

SEC_PER_DAY = 86400.0

# DeepSeek-V3 reference shape (arXiv 2412.19437 sec. 4.2; catalog deepseek-v3 config)
DSV3 = dict(hidden=7168, heads=128, ffn=18432, expert_ffn=2048, q_lora_rank=1536, kv_lora_rank=512,
            qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, vocab=129280, active=37e9)


def _round(x: float, m: int) -> int:
    return max(m, int(round(x / m)) * m)


# ---------------------------------------------------------------- shapes
def dense_shape(params: float, name: str | None = None) -> dict:
    """A Llama-3-like dense model with about ``params`` parameters (inline model mapping)."""
    # per layer ~ 2 h^2 (q, o) + 2 h 1024 (k, v with 8 KV heads of 128) + 3 x 3.25 h^2 (SwiGLU) = 11.75 h^2 + 2048 h
    h = _round((128.0 * params / 11.75) ** (1.0 / 3.0), 1024)
    ffn = _round(3.25 * h, 256)
    vocab = 128256
    per_layer = 2 * h * h + 2 * h * 1024 + 3 * h * ffn + 2 * h
    L = max(2, int(round((params - 2 * vocab * h) / per_layer)))
    return {"name": name or f"dense-{params / 1e9:.0f}b", "layers": L, "hidden": h, "heads": h // 128, "kv_heads": 8,
            "head_dim": 128, "ffn": ffn, "ffn_act": "swiglu", "vocab": vocab}


def _moe_doc(h: int, L: int, experts: int, name: str, expert_ffn: int | None = None) -> dict:
    """The inline model of a DeepSeek-V3-like MoE ``h`` wide and ``L`` deep with ``experts`` routed experts of
    ``expert_ffn`` (None: DeepSeek-V3's 2,048 scaled with the width); the rest scales with the width."""
    s = h / DSV3["hidden"]
    return {
        "name": name, "layers": L, "hidden": h, "heads": _round(DSV3["heads"] * s, MOE_HEADS_STEP),
        "ffn": _round(DSV3["ffn"] * s, 256), "ffn_act": "swiglu", "vocab": DSV3["vocab"],
        "moe": {"experts": experts, "top_k": 8, "shared_experts": 1, "expert_ffn": expert_ffn or _round(DSV3["expert_ffn"] * s, 128),
                "dense_layers": 3},
        "mla": {"q_lora_rank": _round(DSV3["q_lora_rank"] * s, 128), "kv_lora_rank": DSV3["kv_lora_rank"],
                "qk_nope_head_dim": DSV3["qk_nope_head_dim"], "qk_rope_head_dim": DSV3["qk_rope_head_dim"],
                "v_head_dim": DSV3["v_head_dim"]},
        "mtp_layers": 1,
    }


def _counts(doc: dict) -> tuple[float, float]:
    """(total, active) parameters of the inline model ``doc``. The counts read the shape alone, not the name, so
    they are kept per shape (:func:`_shape_counts`): the shape rules try the same widths, depths and expert counts
    for neighbouring sizes under different names (S4 and S6: 1,062 shapes tried, 403 distinct)."""
    return _shape_counts(json.dumps({k: v for k, v in doc.items() if k != "name"}, sort_keys=True))


@lru_cache(maxsize=4096)
def _shape_counts(shape_json: str) -> tuple[float, float]:
    c = count(build_inline(InlineModel.model_validate({**json.loads(shape_json), "name": "shape"})))
    return float(c.total_params), float(c.active_params)


#: width step of the MoE shape rule: hidden sizes are multiples of 128, as DeepSeek-V3's FP8 recipe needs (arXiv
#: 2412.19437 sec. 3.3.2: activations quantised in 1 x 128 tiles, weights in 128 x 128 blocks, so every GEMM
#: dimension is a multiple of 128; DeepSeek-V3's own 7,168 = 56 x 128), and any tensor-parallel size up to 128
#: divides them
MOE_WIDTH_STEP = 128
#: attention heads of the MoE shape rule are multiples of 16 (DeepSeek-V2-Lite has 16 MLA heads, DeepSeek-V3 128:
#: arXiv 2405.04434 appendix B.1 and 2412.19437 sec. 4.2), so tensor parallelism up to 16 divides them; steps of 32
#: made the active count jump by a fifth between neighbouring widths of a 3-4B-active model
MOE_HEADS_STEP = 16
#: routed experts of the MoE shape rule at DeepSeek-V3's sparsity (arXiv 2412.19437 sec. 4.2: 256 routed experts at
#: 671B / 37B = 18.1); other sparsities scale it (:func:`moe_experts`)
MOE_EXPERTS_AT_DSV3 = 256
#: the expert count is a multiple of this, so expert parallelism up to 64 divides it (DeepSeek-V3 trains with EP 64,
#: arXiv 2412.19437 sec. 3.2; released MoEs: Qwen3 and GPT-OSS-120B 128, DeepSeek-V3 256, Kimi K2 384, LongCat-Flash
#: 512 routed experts)
MOE_EXPERTS_STEP = 64
#: the expert FFN width (moe_intermediate_size) is a multiple of this, as DeepSeek-V3's FP8 recipe needs (128 x 128
#: weight blocks, see :data:`MOE_WIDTH_STEP`; DeepSeek-V3 2,048, DeepSeek-V2-Lite 1,408 = 11 x 128, Qwen3-235B 1,536)
MOE_EXPERT_FFN_STEP = 128
#: most layers the MoE shape rule moves away from its depth rule to meet the active count (in steps of 2: the
#: MoE stack after the 3 dense layers stays even)
MOE_DEPTH_SLACK = 4


def moe_experts(sparsity: float) -> int:
    """Routed experts of the MoE shape rule at total/active ``sparsity``: DeepSeek-V3's 256 at its 18.1, scaled with
    the sparsity and rounded up to a multiple of 64 (:data:`MOE_EXPERTS_STEP`): E = 64 ceil(256 s / 18.1 / 64).

    With 1 shared + top-8 routed experts, active = R + 9 X and total = R + (E + 1) X (X one expert's parameters over
    all MoE layers, R the rest), so total / active = s needs E + 1 > 9 s (E > 162 at 18.1, > 299 at 33.3); scaling
    E with s keeps one expert's share of the active parameters near DeepSeek-V3's (s 33.3: 512 experts, as
    LongCat-Flash's 512 routed experts). The count depends on the sparsity alone, so it is the same for every size
    and expert parallelism always has the multiples of 64."""
    return int(MOE_EXPERTS_STEP * math.ceil(MOE_EXPERTS_AT_DSV3 * sparsity / 18.1 / MOE_EXPERTS_STEP - 1e-9))


def _depth_counts(h: int, L: int, experts: int, expert_ffn: int, name: str) -> tuple[float, float]:
    """(total, active) parameters of the MoE shape (:func:`_moe_doc`) ``h`` wide and ``L`` deep: the counts are linear
    in the depth (3 dense layers, then L - 3 identical MoE layers, each adding the same parameters), so an odd depth
    L >= 5, as the shape rule takes, is read off the counts at 5 and 7 layers: c(L) = c(5) + (L - 5) / 2 (c(7) -
    c(5)), exact (integer counts below 2^53). The rule tries five depths of every width (:func:`moe_shape`), which
    then cost two counts instead of five."""
    if L < 5 or (L - 5) % 2:
        return _counts(_moe_doc(h, L, experts, name, expert_ffn))
    t5, a5 = _counts(_moe_doc(h, 5, experts, name, expert_ffn))
    t7, a7 = _counts(_moe_doc(h, 7, experts, name, expert_ffn))
    k = (L - 5) // 2
    return t5 + k * (t7 - t5), a5 + k * (a7 - a5)


def _expert_ffn_for(h: int, L: int, experts: int, sparsity: float, name: str) -> tuple[int, float]:
    """(expert FFN width, active parameters) of the (``h``, ``L``, ``experts``) shape whose total / active is nearest
    ``sparsity``: both counts are linear in the expert width f (total = T0 + f T1, active = A0 + f A1, read off two
    widths), so f = (s A0 - T0) / (T1 - s A1), rounded to :data:`MOE_EXPERT_FFN_STEP` (at least one step)."""
    w1, w2 = MOE_EXPERT_FFN_STEP, 2 * MOE_EXPERT_FFN_STEP
    t1, a1 = _depth_counts(h, L, experts, w1, name)
    t2, a2 = _depth_counts(h, L, experts, w2, name)
    tf, af = (t2 - t1) / (w2 - w1), (a2 - a1) / (w2 - w1)
    t0, a0 = t1 - w1 * tf, a1 - w1 * af
    f = _round((sparsity * a0 - t0) / (tf - sparsity * af), MOE_EXPERT_FFN_STEP)
    return f, a0 + f * af


def _experts_for(h: int, L: int, sparsity: float, name: str) -> tuple[int, int, float]:
    """(routed experts, expert FFN width, active parameters) of an ``h``-wide, ``L``-deep shape at ``sparsity``: the
    sparsity's expert count (:func:`moe_experts`) with the expert width solved for the total
    (:func:`_expert_ffn_for`), unless that width exceeds DeepSeek-V3's share of the model width (2,048 / 7,168,
    rounded to 128): small models, whose embeddings (129,280 x h, twice) are a large part of the active count,
    then take more experts (the count that reaches the total at that width, up to the next multiple of 64) and the
    width is solved again, as the shape rule's small MoEs had (0.5B active: 384 experts of 384)."""
    experts = _most_experts(moe_experts(sparsity), sparsity, h, L)
    f, a = _expert_ffn_for(h, L, experts, sparsity, name)
    cap = _round(DSV3["expert_ffn"] * h / DSV3["hidden"], MOE_EXPERT_FFN_STEP)
    if f > cap:
        t1, a1 = _depth_counts(h, L, 64, cap, name)
        t2, _ = _depth_counts(h, L, 128, cap, name)
        need = 64 + (sparsity * a1 - t1) / ((t2 - t1) / 64.0)
        experts = max(experts, MOE_EXPERTS_STEP * math.ceil(need / MOE_EXPERTS_STEP))
        f, a = _expert_ffn_for(h, L, _most_experts(experts, sparsity, h, L), sparsity, name)
    return experts, f, a


def _most_experts(experts: int, sparsity: float, h: int, L: int) -> int:
    """``experts``, or :class:`SparsityError` where it is more than a model may have (:data:`MAX_DIM`)."""
    if experts > MAX_DIM:
        raise SparsityError(f"expected a MoE total/active parameter ratio whose shape has at most {MAX_DIM:,} "
                            f"routed experts (types_checked.MAX_DIM), got {sparsity:g}: a {h:,}-wide, {L}-layer "
                            f"shape needs {experts:,}")
    return experts


class SparsityError(TrainsimError):
    """A total/active ratio whose MoE shape needs more routed experts than a model may have (:func:`_experts_for`;
    the count grows as the size probed shrinks, so no bound on the ratio alone holds): ``capacity --sparsity 1e9``
    asked for 1.4e10 experts and ended in a pydantic ValidationError of moe.experts, exit 3 (qa32a). ``detail``
    is the message without a field, for the caller that knows which option set the ratio."""

    def __init__(self, detail: str, field: str = "assumptions.moe_sparsity"):
        super().__init__(detail, field=field)
        self.detail = detail


def moe_shape(active: float, sparsity: float = 18.1, name: str | None = None) -> dict:
    """A DeepSeek-V3-like MoE with about ``active`` active and ``sparsity x active`` total parameters.

    Depth grows slowly (L = 61 (active / 37B)^(1/4): frontier MoEs keep 60-80 layers); the routed-expert count is
    set by the sparsity (:func:`moe_experts`: 256 at DeepSeek-V3's 18.1; more for small models, :func:`_experts_for`); heads, q-LoRA rank and dense FFN
    scale with the width as in DeepSeek-V3, and the expert FFN width of each (width, depth) is solved for the total
    / active ratio (:func:`_expert_ffn_for`, steps of 128), as released MoEs set moe_intermediate_size (DeepSeek-V3
    2,048, Qwen3-235B 1,536, Kimi K2 2,048) with their expert count fixed for expert parallelism. The width moves
    in steps of :data:`MOE_WIDTH_STEP` (128) and the depth up to :data:`MOE_DEPTH_SLACK` layers (in steps of 2)
    from its rule; the (width, depth) whose active count (with its expert width) is closest to ``active`` is kept
    (within 1%, the one nearer the depth rule). Steps of 512 in width alone gave one 3.08B-active model for every
    target from 3.6B to 3.9B; an expert count in steps of 64 with the expert width tied to the width put the total
    +-12% off (half of 64 of ~235 experts) and not monotone (3.9B active 77.2B total, 4.3B active 71.4B); counts in
    steps of 16 were monotone but gave 240 experts, which caps expert parallelism at 16 (S4's best plan: MFU 25%
    instead of 40% with EP 128 on 256 experts)."""
    total = sparsity * active
    name = name or f"dsv3-like-{total / 1e12:.2f}t-a{active / 1e9:.0f}b"
    h, L, experts, f = _moe_dims(active, sparsity)
    return _moe_doc(h, L, experts, name, f)


@lru_cache(maxsize=256)
def _moe_dims(active: float, sparsity: float) -> tuple[int, int, int, int]:
    """(width, depth, routed experts, expert FFN width) of :func:`moe_shape`'s rule for ``active`` at
    ``sparsity``: the name does not enter the counts (:func:`_counts`), so a size is solved once per process (the
    capacity searches of a scenario probe the same grid sizes for every fleet and failure option: S4 solved 22
    shapes, 9 of them distinct, each ~0.1 s of counts)."""
    name = "shape"
    L0 = max(8, _round(61 * (active / DSV3["active"]) ** 0.25, 4) + 1)   # 3 dense + a multiple-of-2 MoE stack
    lo_l = max(5, L0 - MOE_DEPTH_SLACK)
    hi_l = L0 + MOE_DEPTH_SLACK
    h0 = DSV3["hidden"] * math.sqrt(active / DSV3["active"] * 61 / L0)
    step = MOE_WIDTH_STEP
    lo_h = max(1024, _round(h0 * 0.6, step))   # 1,024 wide at least; below that the scan is that one width
    best_key: tuple = (math.inf,)
    h, L, experts, f = DSV3["hidden"], L0, MOE_EXPERTS_AT_DSV3, DSV3["expert_ffn"]
    for hh in range(lo_h, max(lo_h, _round(h0 * 1.5, step)) + 1, step):
        for ll in range(lo_l, hi_l + 1, 2):
            ee, ff, a = _experts_for(hh, ll, sparsity, name)
            err = abs(a - active)
            # errors under 1% tie (then the depth rule's depth wins), else the nearest
            key = (max(err / active, 0.01), abs(ll - L0), err)
            if key < best_key:
                best_key, h, L, experts, f = key, hh, ll, ee, ff
    return h, L, experts, f


def shape_for(family: str, params_or_active: float, a: Assumptions, name: str | None = None) -> dict:
    """A model shape of ``family`` (``dense``, or ``deepseek-v3`` / ``moe`` at the assumed total/active ratio)
    with ``params_or_active`` (active) parameters."""
    if family == "dense":
        return dense_shape(params_or_active, name)
    if family in ("deepseek-v3", "moe"):
        return moe_shape(params_or_active, float(a["moe_sparsity"]), name)

    raise TrainsimError(f"expected dense or deepseek-v3, got {family!r}", field="family")


def tokens_ratio(family: str, a: Assumptions) -> float:
    """The assumed compute-optimal tokens per (active) parameter for ``family``."""
    return float(a["tokens_per_param"] if family == "dense" else a["tokens_per_active_param"])


def critical_batch_tokens(flops: float, a: Assumptions) -> float:
    """The compute-optimal global batch in tokens, B_opt = coef x C^exponent for training
    compute C in FLOP (DeepSeek LLM, arXiv 2401.02954 sec. 3.1: 0.2920 C^0.3271; the assumption
    ``critical_batch_tokens``)."""
    cb = a["critical_batch_tokens"]
    return float(cb["coef"]) * flops ** float(cb["exponent"])


def round_batch_seqs(seqs: float) -> int:
    """The round global batch a practitioner states near ``seqs`` sequences: of 2^k and 3 x 2^k (8,192, 12,288,
    16,384, 24,576, 32,768, ...: every plan with power-of-two data parallelism and micro-batch up to 2^(k-1)
    divides it) the one nearest in ratio (the geometric mean of two neighbours is the boundary: 20,066 between
    16,384 and 24,576), so within a factor sqrt(1.5) = 1.22 of ``seqs``; ties go to the smaller."""
    x = max(float(seqs), 1.0)
    k = math.floor(math.log2(x))
    cands = {1 << k, 1 << (k + 1)} | ({3 << (k - 1)} if k >= 1 else set())
    return min(cands, key=lambda c: (abs(math.log(c / x)), c))


def batch_target(flops: float, seq_len: int, a: Assumptions) -> dict:
    """How capacity states a run's global batch: the critical batch B_opt (:func:`critical_batch_tokens`) in
    sequences, the round batch nearest it (:func:`round_batch_seqs`) and the tolerance each plan may move it by to a
    multiple of its dp x micro-batch (the assumption ``critical_batch_tolerance``; the plan search's batch rule,
    :mod:`trainsim.parallel.batch`), and the band of batches that allows, in sequences."""
    crit = critical_batch_tokens(flops, a) / seq_len
    target = round_batch_seqs(crit)
    tol = float(a["critical_batch_tolerance"])
    return {"critical_seqs": crit, "target_seqs": target, "tolerance": tol,
            "band_seqs": (target * (1.0 - tol), target * (1.0 + tol))}


# ---------------------------------------------------------------- limits
def limits(res, days: float, a: Assumptions, gp, plan_counts: bool = True) -> list[dict]:
    """The binding limits of a run's best plan (see the module docstring for the formulas). ``plan_counts=False``
    leaves the count of plans that fit out of the memory limit's detail (counting them costs a pass over every
    plan of the search's space, for callers that read only which limits bind)."""
    est = res.best
    out = []
    run = res.run
    if est is None:
        out.append({"limit": "memory", "binding": True,
                    "value": (res.smallest_memory_bytes or 0) / GIB, "bound": run.system.chip.hbm_bytes / GIB,
                    "detail": res.no_plan_message()})
        return out
    arch = run.arch
    c = count(arch, run.training.seq_len)
    tokens = run.training.tokens or 0.0
    flops = training_flops_6nd(c.active_params, tokens)
    mem = est.memory_per_chip_bytes / run.system.chip.hbm_bytes
    out.append({"limit": "memory", "binding": mem > 0.95, "value": mem, "bound": 1.0,
                "detail": f"best plan uses {mem:.0%} of HBM ({est.memory_per_chip_bytes / GIB:.0f} of "
                          f"{run.system.chip.hbm_bytes / GIB:.0f} GiB)"
                          + (f"; {res.plans_feasible:,} of {res.plans_evaluated:,} plans fit" if plan_counts else "")})
    cf = comm_fraction(est)
    crossed = {g: v["levels"] for g, v in est.placement.items() if v.get("size", 1) > 1}
    out.append({"limit": "network", "binding": cf > 0.25, "value": cf, "bound": 0.25,
                "detail": f"exposed communication is {cf:.0%} of the step; groups cross: "
                          + ", ".join(f"{g}->{'/'.join(l)}" for g, l in crossed.items())})
    used_seqs = est.run.training.batch_seqs
    b_tok = used_seqs * run.training.seq_len          # the batch the plan uses
    b_crit = critical_batch_tokens(flops, a)
    stated, tol = run.training.batch_seqs, run.training.batch_tol
    out.append({"limit": "batch", "binding": b_tok > 2.0 * b_crit, "value": b_tok, "bound": b_crit,
                "stated_seqs": stated, "used_seqs": used_seqs, "tolerance": tol,
                "detail": f"global batch {used_seqs:,} sequences ({b_tok / 1e6:.1f}M tokens) vs critical batch "
                          f"B_opt = {float(a['critical_batch_tokens']['coef']):g} "
                          f"C^{float(a['critical_batch_tokens']['exponent']):g} = {b_crit / 1e6:.1f}M tokens "
                          f"(DeepSeek LLM, arXiv 2401.02954); "
                          f"stated as the round batch nearest B_opt of the rule's token budget, {stated:,} "
                          f"sequences, and moved to the multiple of the plan's dp x micro-batch = "
                          f"{est.plan['dp'] * est.plan['micro_batch']:,} nearest it within {tol:.0%} (the batch is "
                          f"searched with the plan: this is the fastest plan's)"})
    out.append({"limit": "failures", "binding": gp.fraction < 0.8, "value": gp.fraction, "bound": 0.8,
                "detail": f"goodput {fraction(gp.fraction)}: job MTBF {gp.mtbf_hours:.2f} h on {gp.chips:,} chips, "
                          f"checkpoint {gp.checkpoint_s:.3g} s every {gp.interval_s / 60:.1f} min, "
                          f"restart {gp.restart_s / 60:.3g} min"})
    t_layer = float(a["min_layer_latency_s"])
    t_min = 3.0 * arch.n_layers * t_layer
    steps_max = days * SEC_PER_DAY / t_min
    tok_max = steps_max * b_tok
    out.append({"limit": "latency (Erdil & Schneider-Joseph)", "binding": tokens > tok_max,
                "value": tokens, "bound": tok_max,
                "detail": f"t_step >= 3 x {arch.n_layers} layers x {t_layer * 1e6:.0f} us = {t_min * 1e3:.1f} ms "
                          f"(actual step {est.step_time_s:.2f} s): at most {steps_max:.3g} steps x "
                          f"{b_tok / 1e6:.1f}M tokens = {tok_max:.3g} tokens in {days_text(days)} (arXiv 2411.01137)"})
    dm = float(a["data_movement_flop_threshold"])
    lw = float(a["latency_wall_flop"])
    out.append({"limit": "data movement (Erdil & Schneider-Joseph)", "binding": flops > dm, "value": flops,
                "bound": dm, "detail": f"{flops:.2e} FLOP vs ~{dm:.0e} FLOP where utilisation starts to fall for a "
                                       f"3-month run; latency wall ~{lw:.0e} FLOP (arXiv 2411.01137)"})
    return out


# ---------------------------------------------------------------- capacity
@dataclass
class CapacityResult:
    """The largest run of a family a system's chips finish in a number of days: its model, parameters,
    tokens, training FLOPs (6 x active x tokens), goodput, best plan, the limits met and the search's iterations."""

    system: str
    chips: int
    days: float
    family: str
    model: dict | None
    total_params: float | None
    active_params: float | None
    tokens: float | None
    training_flops: float | None          # 6 x active x tokens
    compute_optimal_tokens: float | None
    goodput: float | None
    estimate: object | None
    limits: list[dict] = field(default_factory=list)
    iterations: list[dict] = field(default_factory=list)
    message: str = ""
    grid_index: int | None = None         # the answer's model on the size grid: 2^(grid_index / GRID_STEPS) active
    chips_used: int | None = None         # the chip count the job runs on (fleet_counts: may be below ``chips``)
    objective: str = ""

    def to_dict(self) -> dict:
        """The result as a JSON-able dict, with the best plan and where its time goes."""
        return {
            "system": self.system, "chips": self.chips, "days": self.days, "family": self.family,
            "model": self.model, "total_params": self.total_params, "active_params": self.active_params,
            "tokens": self.tokens, "training_flops": self.training_flops,
            "compute_optimal_tokens": self.compute_optimal_tokens, "goodput": self.goodput,
            "best_plan": plan_summary(self.estimate), "limits": self.limits, "iterations": self.iterations,
            "where_time_goes": where_time_goes(self.estimate), "message": self.message,
            "objective": self.objective, "chips_used": self.chips_used,
        }


def _run_for(doc: dict, system, chips: int, tokens: float, flops: float, a: Assumptions, seq_len: int,
             precision: str, batch: dict | None = None, framework: str | None = None):
    """The run of a capacity probe: its global batch is the round batch nearest the critical batch of ``flops``,
    which each plan may move within the stated tolerance to a multiple of its dp x micro-batch
    (:func:`batch_target`: the batch is searched with the plan), or ``batch`` (a :func:`batch_target` dict) as a
    probe already stated it; ``framework`` the software stack (None: the default profile)."""
    bt = batch or batch_target(flops, seq_len, a)
    return make_run(doc, system, chips, {"tokens": tokens, "seq_len": seq_len, "global_batch_seqs": bt["target_seqs"],
                                         "batch_tolerance": bt["tolerance"], "precision": precision},
                    name=doc["name"], framework=framework)


#: what :func:`capacity` maximises (its results state it)
OBJECTIVE = ("the most training compute (6 N_active D FLOP) finished in the days, over the family's model sizes "
             "that reach their token budget (tokens >= the rule's tokens per active parameter x N_active); the "
             "model size follows from it")

GRID_STEPS = 8        # model sizes probed on a fixed grid: 2^(i/8) active parameters (9% apart)


def fleet_counts(chips: int, domain: int) -> list[int]:
    """Chip counts a fleet of ``chips`` may run one job on, largest first: all of them, then whole scale-up
    domains in counts 2^k and 3 x 2^k below (a fleet can always leave domains idle: fewer chips fail less often,
    so with failures the best count can be well below the fleet)."""
    domain = max(1, int(domain))
    units = chips // domain
    grid = sorted({c for k in range(0, 40) for c in (1 << k, 3 << k) if c < units}, reverse=True)
    return [int(chips)] + [u * domain for u in grid if u * domain < chips]


def tokens_bound(chips: int, peak_flops: float, days: float, active_params: float) -> float:
    """The most tokens ``chips`` chips could train in ``days``: every chip at its dense peak ``peak_flops`` (MFU 1,
    :mod:`trainsim.sanity` keeps MFU at the run's precision <= 1), no failures (goodput 1), and each token costing
    at least 6 x ``active_params`` FLOPs (Kaplan et al. 2020, arXiv 2001.08361, eq. 2.1: C ~ 6 N per token;
    the model FLOPs MFU counts add the output head and attention, so they are more):
    tokens <= chips x peak x days x 86,400 / (6 N_active)."""
    return chips * peak_flops * days * SEC_PER_DAY / training_flops_6nd(active_params, 1.0)


def most_tokens(counts: list[int], train: Callable[[int], dict], bound: Callable[[int], float]) -> dict:
    """The outcome of ``train`` (a dict with ``tokens``, None where no plan fits) at the chip count of ``counts``
    (largest first, :func:`fleet_counts`) that trains the most tokens. Tokens need not fall steadily as chips are
    taken away (a count whose batch splits badly can train fewer tokens than both its neighbours), so the walk
    does not stop at the first count that trains fewer; it stops where ``bound(c)`` (:func:`tokens_bound`), the
    most any count c or smaller could train, is no more than the best so far. A fleet that holds another's counts
    therefore never trains fewer tokens (S4: 1,000,000 chips trained a 425B-active MoE on fewer tokens than
    750,000 chips, its walk having stopped at 786,432 chips, above the 589,824 that both fleets hold)."""
    top: dict | None = None
    for c in counts:
        if top is not None and bound(c) <= (top["tokens"] or 0.0):
            break
        o = train(c)
        if top is None or (o["tokens"] or 0.0) > (top["tokens"] or 0.0):
            top = o
    assert top is not None, "fleet_counts gives at least the whole fleet"
    return top


def capacity(system, chips: int, days: float, a: Assumptions, *, family: str = "deepseek-v3",
             precision: str = "bf16", seq_len: int = 4096, mfu_guess: float = 0.3, tol: float = 0.08,
             max_evals: int = 7, use_goodput: bool = True, plan_counts: bool = True,
             framework: str | None = None, at_least: CapacityResult | None = None) -> CapacityResult:
    """The largest training run (most 6 N_active D FLOP, :data:`OBJECTIVE`) ``chips`` chips of ``system`` finish
    within ``days`` of wall-clock time, with a model of ``family`` (by its shape rule) that reaches its rule token
    budget (tokens >= ratio x active params: compute-optimal, or trained on more tokens than that).

    f(N) = tokens trainable in ``days`` / (ratio x N) falls as N grows; the answer is the largest N on a fixed grid
    (2^(i/8) active parameters) with f(N) >= 1, found by a secant step from the compute guess (tokens ~ 1/N at
    constant MFU), galloping, then bisection until the bracket is two neighbouring grid points (or ``max_evals``).
    For each N the fleet may run the job on fewer chips (:func:`fleet_counts`, walked down while that trains more
    tokens), each plan may leave domains idle and meets the batch within 5% (the plan search's rules), so adding
    chips never lowers f(N). Of the sizes probed that reach their budget, the answer is the one whose run has the
    most training FLOP (6 N_active x the tokens it reaches in ``days``): the model size is a consequence of the
    compute, as the sizes near the largest that fits differ in MFU and in the chip count they run best on (S6: on
    20 Atlas 950 SuperPoDs the largest size that reaches its budget, 203B active, had 1.03e26 FLOP, less than the
    1.11e26 of a 184B-active model on 10). ``at_least``: the answer for a smaller fleet of the same system,
    family, days and assumptions (one whose chips this fleet holds): its size is probed too, on its chip count
    among this fleet's counts, so this answer has at least its FLOP -- more chips never give less (a fleet can
    leave chips idle).
    ``plan_counts``: as :func:`limits` (False for callers that do not print the memory limit's detail);
    ``framework``: the software stack every probe runs (None: the default profile)."""
    sys_obj = resolve_system(system) if not hasattr(system, "levels") else system
    ratio = tokens_ratio(family, a)
    peak = sys_obj.chip.flops("bf16")
    peak_max = max(peak, sys_obj.chip.flops(precision))
    flops0 = chips * peak * mfu_guess * days * SEC_PER_DAY * 0.8
    counts = fleet_counts(chips, sys_obj.scale_up_size)
    if at_least is not None and at_least.chips_used and at_least.chips_used < chips:
        counts = sorted(set(counts) | {int(at_least.chips_used)}, reverse=True)
    iters: list[dict] = []
    seen: dict[int, dict] = {}

    def on(doc: dict, n_chips: int, want: float, active: float) -> dict:
        bt = batch_target(training_flops_6nd(active, want), seq_len, a)
        run = _run_for(doc, sys_obj, n_chips, want, 0.0, a, seq_len, precision, batch=bt, framework=framework)
        res = best(run)
        out = {"res": res, "tokens": None, "gp": None, "chips": n_chips, "batch": bt}
        if res.best is not None:
            e = res.best
            gp = goodput(res.run.arch, e.used, e.days, a) if use_goodput else None
            g = gp.fraction if gp else 1.0
            out.update(tokens=e.tokens_per_s * days * SEC_PER_DAY * g, gp=gp)
        return out

    def probe(i: int) -> dict:
        if i in seen:
            return seen[i]
        doc = shape_for(family, 2.0 ** (i / GRID_STEPS), a)
        total, active = _counts(doc)
        want = ratio * active
        # the count that trains the most tokens, walking down the fleet until no smaller count can train more
        top = most_tokens(counts, lambda c: on(doc, c, want, active),
                          lambda c: tokens_bound(c, peak_max, days, active))
        out = {"doc": doc, "total": total, "active": active, "f": (top["tokens"] or 0.0) / want, **top}
        res = top["res"]
        iters.append({"active_params": active, "total_params": total, "tokens_rule": want,
                      "tokens_in_days": out["tokens"], "ratio_f": out["f"], "chips_used": top["chips"],
                      "mfu": res.best.mfu if res.best else None, "fits": res.best is not None,
                      "no_valid_plan": res.best is None and res.plans_evaluated == 0})
        seen[i] = out
        return out

    def index(n: float) -> int:
        return int(round(math.log2(max(n, 1.0)) * GRID_STEPS))

    i0 = index(compute_optimal_params(flops0, ratio))
    p0 = probe(i0)
    n1 = math.sqrt(p0["tokens"] * p0["active"] / ratio) if p0["tokens"] else p0["active"] / 2.0
    i1 = index(n1)
    if i1 == i0:
        i1 = i0 + (1 if p0["f"] >= 1.0 else -1)
    probe(i1)
    n_eval = 2
    while True:
        good = [i for i, p in seen.items() if p["f"] >= 1.0]
        bad = [i for i, p in seen.items() if p["f"] < 1.0]
        lo_i = max(good) if good else None
        hi_i = min((i for i in bad if lo_i is None or i > lo_i), default=None)
        if n_eval >= max_evals or (lo_i is not None and hi_i is not None and hi_i - lo_i <= 1):
            break
        if lo_i is None:
            nxt = hi_i - GRID_STEPS // 2
        elif hi_i is None:
            nxt = lo_i + GRID_STEPS // 2
        else:
            nxt = (lo_i + hi_i) // 2
        probe(nxt)
        n_eval += 1
    if at_least is not None and at_least.grid_index is not None and at_least.tokens:
        probe(at_least.grid_index)     # the smaller fleet's answer, on a count this fleet holds (f >= 1 again)
    good = {i: p for i, p in seen.items() if p["f"] >= 1.0}
    # the most training FLOP of the sizes that reach their budget (ties: the larger model)
    best_i = max(good, key=lambda i: (training_flops_6nd(good[i]["active"], good[i]["tokens"]), i), default=None)
    lo = seen[best_i] if best_i is not None else None
    if lo is None:   # no size reaches its budget: report the one that came closest (the smallest, as a rule)
        last = max(seen.values(), key=lambda p: p["f"]) if any(p["f"] > 0 for p in seen.values()) else seen[hi_i]
        msg = (last["res"].no_plan_message() if last["res"].best is None else
               f"no model of the family reaches its token budget: even a {last['active'] / 1e9:.3g}B-active model "
               f"trains only {100 * last['f']:.2g}% of its {last['active'] * ratio:.3g} tokens in "
               f"{days_text(days)}")
        # the goodput its best plan was counted with (the limits table states it; None only with --no-failures)
        return CapacityResult(sys_obj.id, chips, days, family, last["doc"], last["total"], last["active"], None,
                              None, None, last["gp"].fraction if last["gp"] else None, last["res"].best, limits(last["res"], days, a, last["gp"], plan_counts)
                              if last["gp"] is not None else [], iters, msg, objective=OBJECTIVE)
    doc, total, active, res, tokens, gp = (lo[k] for k in ("doc", "total", "active", "res", "tokens", "gp"))
    final = _run_for(doc, sys_obj, lo["chips"], tokens, training_flops_6nd(active, tokens), a, seq_len, precision,
                     batch=lo["batch"], framework=framework)
    fres = best(final)
    lim = limits(fres, days, a, gp, plan_counts) if gp is not None else []
    fl = training_flops_6nd(active, tokens)
    used = (fres.best or res.best).used
    # why chips sit idle: the job was put on fewer chips (fewer fail), or its plan leaves part of a domain or whole
    # domains idle (a plan uses whole scale-up domains and a batch its dp divides: parallel/batch.py)
    why = "fewer chips fail less often" if lo["chips"] < chips else "the best plan leaves the rest idle"
    idle = f" (using {used:,}: {why})" if used < chips else ""
    # sizes as the 'model sizes probed' table prints them (numfmt.count: 1.1T, 60.1B), not '1,101B'
    msg = (f"{chips:,} chips of {sys_obj.id}{idle} train a {count_fmt(total)}-total / {count_fmt(active)}-active "
           f"{family} model on {count_fmt(tokens)} tokens in {days_text(days)}: {fl:.2e} FLOP (6 N_active D), the most "
           f"of the sizes tried that reach {ratio:g} tokens per {'active ' if family != 'dense' else ''}parameter")
    return CapacityResult(sys_obj.id, chips, days, family, doc, total, active, tokens, fl, ratio * active,
                          gp.fraction if gp else None, fres.best or res.best, lim, iters, msg, grid_index=best_i,
                          chips_used=int(lo["chips"]), objective=OBJECTIVE)


def _counts_doc(doc: dict) -> tuple[float, float]:
    return _counts(doc)


def tokens_in_days(run, days: float, a: Assumptions | None = None) -> dict:
    """For a fixed model: the tokens (and 6 N_active D FLOPs) its best plan trains in ``days`` on run.chips."""
    res = best(run)
    if res.best is None:
        return {"tokens": None, "message": res.no_plan_message()}
    gp = goodput(run.arch, res.best.used, res.best.days, a) if a is not None else None
    g = gp.fraction if gp else 1.0
    tok = res.best.tokens_per_s * days * SEC_PER_DAY * g
    c = count(run.arch, run.training.seq_len)
    return {"tokens": tok, "training_flops": training_flops_6nd(c.active_params, tok), "goodput": g, "estimate": res.best}
