"""Evaluate a serving spec: prefill and decode throughput per chip, latency, KV cache and the best plan.

:func:`infer` is what ``trainsim infer SPEC.yaml`` prints (as JSON with ``--json``). :func:`best_decode` and
:func:`best_prefill` are the building blocks the post-training model uses for rollouts and teacher scoring.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..catalog.types import System
from ..errors import NoPlanError, TrainsimError
from ..model.arch import Arch
from .experts import idle_expert_ranks
from .calib import InferCalib, constant_sources, default_calib, engine_host_calib, mean_tpot_bound_s
from .kv import kv_bytes_per_sequence, kv_bytes_per_token
from .search import (Evaluated, best_per_plan, check_tp, evaluate_decode, evaluate_prefill, instance_sizes,
                     join_phases, plan_grid)
from .setup import BYTES, ServeSetup
from .spec import Serving
from .stacks import default_max_running, stack_of
from ..catalog.load import require_usable
from ..numfmt import gib


def _fixed(plan, chips: int | None) -> dict:
    f = {"tp": plan.tp, "pp": plan.pp, "ep": plan.ep}
    if plan.dp is not None and chips is not None:
        pp = plan.pp or 1
        tp = chips // (plan.dp * pp)
        if tp < 1 or tp * plan.dp * pp != chips:
            raise TrainsimError(f"dp {plan.dp} does not divide chips {chips} / pp {pp}", field="plan.dp")
        f["tp"] = tp
    return f


def _row(ev: Evaluated, i: int, kind: str, *, per_token_bytes: float) -> dict[str, Any]:
    g = lambda a: float(np.broadcast_to(a, ev.batch.shape)[i])  # noqa: E731
    plan = ev.plans.row(i)
    chips = plan["chips"]
    out: dict[str, Any] = {"plan": plan}
    if kind == "decode":
        out.update({
            "batch_per_instance": g(ev.batch), "batch_per_chip": g(ev.batch) / chips,
            "tpot_s": g(ev.latency_s), "step_time_s": g(ev.round_s),
            "tokens_per_s_per_chip": g(ev.tokens_per_s_per_chip),
            "tokens_per_s_per_user": 1.0 / g(ev.latency_s),
        })
    else:
        out.update({
            "prompts_per_instance": g(ev.batch), "ttft_s": g(ev.latency_s),
            "rounds_to_first_token": g(ev.latency_s) / g(ev.round_s),
            "tokens_per_s_per_chip": g(ev.tokens_per_s_per_chip),
        })
    out["breakdown_s"] = {k: g(v) for k, v in ev.breakdown.items()}
    out["memory_per_chip_bytes"] = {k: g(v) for k, v in ev.memory.items()}
    out["fits"] = bool(np.broadcast_to(ev.fits, ev.batch.shape)[i])
    return out


def _work(ev: Evaluated) -> np.ndarray:
    """The candidates of ``ev`` that give each data-parallel replica and pipeline stage work, fitting or not."""
    return np.broadcast_to(True if ev.work is None else ev.work, ev.batch.shape)


def _nothing_fits(ev: Evaluated) -> bool:
    """Whether no candidate of ``ev`` fits in HBM with work for each replica and stage (where any candidate has
    work; else whether none fits at all): a decode candidate of 1/32 sequence per chip holds 1/32 of a sequence's
    KV cache, so its fitting says nothing of a plan that runs one sequence."""
    fits = np.broadcast_to(ev.fits, ev.batch.shape)
    work = _work(ev)
    return not np.any(fits & work) if np.any(work) else not np.any(fits)


def _no_plan(kind: str, ev: Evaluated, bound) -> str:
    """Why ``ev`` has no feasible candidate, one line: no plan at all, none fits in HBM, none that fits gives each
    data-parallel replica and pipeline stage work (whatever the latency bound: the batch the spec and the stack's
    running-request cap and token budget allow is too small; a decode message gives the most sequences per replica
    and stage any plan gets), else the latency bound missed, with the fastest of the plans that fit and have work
    (qa30b: a budget of one token a step said 'no decode plan meets the latency bound of 30 ms (fastest fitting:
    4.009 ms)', the fastest of plans whose replicas had no sequence)."""
    if ev.batch.size == 0:
        return f"no {kind} plan: no (tp, pp, ep) candidate divides the chips per instance"
    if _nothing_fits(ev):
        work = _work(ev)
        need = np.where(work if np.any(work) else True, np.broadcast_to(ev.memory["total"], ev.batch.shape), np.inf)
        i = int(np.argmin(need))
        per = float(ev.batch[i] / np.broadcast_to(ev.plans.pp * ev.plans.dp, ev.batch.shape)[i])
        return f"no {kind} plan fits in HBM (smallest need {gib(float(need[i]))} per chip" + (
            f", at {per:,.3g} sequence{'' if per == 1 else 's'} per data-parallel replica and pipeline stage)"
            if kind == "decode" and np.any(work) else ")")
    busy = np.broadcast_to(ev.fits if ev.busy is None else ev.busy, ev.batch.shape)
    if bound is None or not np.any(busy):
        if kind == "decode":
            per = float(np.max(np.where(ev.fits, ev.batch / (ev.plans.pp * ev.plans.dp), 0.0)))
            return (f"no decode plan that fits has work for each data-parallel replica and pipeline stage: the "
                    f"spec allows at most {per:.3g} sequences per replica and stage (serving.batch or batch_per_chip, "
                    f"serving.max_batch, serving.max_batched_tokens, else the stack's defaults); state a larger "
                    f"batch or budget, or fix dp x pp lower")
        return ("no prefill plan that fits has work for each data-parallel replica and pipeline stage at the stated "
                "prompt tokens per chip; state a larger batch or fix dp x pp lower")
    lat = np.broadcast_to(ev.latency_s, ev.batch.shape)
    return f"no {kind} plan meets the latency bound of {bound * 1e3:g} ms (fastest fitting: " \
           f"{float(np.min(np.where(busy, lat, np.inf))) * 1e3:.3f} ms)"


def draft_note(model: str) -> str:
    """What a stated ``mtp`` prices on a model without MTP modules (config ``num_nextn_predict_layers`` 0, no
    :attr:`Arch.mtp`): the target's verification of ``1 + draft_tokens`` tokens a sequence (inference/step.py
    step_time) and nothing for drafting them, as n-gram / prompt-lookup drafting costs (vLLM speculative method
    ``ngram``, matched on the host); an EAGLE head or a draft model runs its own forward passes per draft token,
    which are not priced. Said in the answer, not silently (qa30b: Llama 3.1 8B at 3 drafts, 80% acceptance went
    from 18.7 to 6.6 ms per output token with a 19.4 ms step and no draft weights)."""
    return (f"{model} has no MTP modules: the draft tokens are priced free, as n-gram (prompt-lookup) drafting is; "
            "an EAGLE head or a draft model adds forward passes and weights not priced here")


def setup_for(arch: Arch, system: System, precision: str = "bf16", kv_precision: str = "bf16",
              mtp=None, calib: InferCalib | None = None, expert_precision: str | None = None,
              stack: dict | None = None, max_batched_tokens: int | None = None) -> ServeSetup:
    """The :class:`ServeSetup` of ``arch`` served on ``system`` at the given weight, KV and expert precisions,
    with multi-token prediction ``mtp`` (draft tokens, acceptance), the calibration for the system's chip, the
    serving ``stack``'s profile (None: the chip vendor's usual stack) and the stated per-step token budget
    ``max_batched_tokens`` (None: the stack's)."""
    c = (calib or default_calib()).for_chip(system.chip)
    return ServeSetup(arch, system, precision, kv_precision, mtp.draft_tokens if mtp else 0,
                      mtp.acceptance if mtp else 0.0, c, expert_precision, stack, max_batched_tokens)


def aggregate_output_rate(input_len: float, output_len: float, prefill_tps, decode_tps=None):
    """Generated tokens/s per chip when prefill and decode share the chips (aggregated serving, MLPerf Offline).

    One request costs ``input_len / prefill_tps + output_len / decode_tps`` chip-seconds (prefill and decode
    interleave on the same chips: vLLM/SGLang continuous batching, chunked prefill), so the output rate per chip is
    ``output_len`` over that. Orca (OSDI'22) iteration-level scheduling; Sarathi-Serve (OSDI'24) chunked prefill.
    ``decode_tps`` None: no decode step (:func:`has_decode`: one output token, which the prefill's last position
    samples), so a request costs its prefill alone and the rate is ``prefill_tps / input_len``.
    """
    decode_s = 0.0 if decode_tps is None else output_len / decode_tps
    return output_len / (input_len / prefill_tps + decode_s)


def has_decode(output_len: float) -> bool:
    """Whether a request runs decode steps: the prefill's forward pass samples the first output token from the
    last prompt position (vLLM, SGLang and TensorRT-LLM all return it with the prefill: that is the time to first
    token), so a request of ``output_len`` 1 needs no decode step and has no time per output token."""
    return output_len > 1


def best_decode(s: ServeSetup, context, *, chips=None, max_chips=None, fixed=None, batch_per_chip=None,
                batch_per_instance=None, tpot_bound_s=None, max_batch_per_instance=None, max_batch_per_chip=None,
                memory_context=None, hbm_fraction: float = 1.0, prefill_s_per_seq_chip=None,
                sequences=None, max_seqs_per_replica=None, budget_tokens_per_seq=None) -> Evaluated:
    """Decode candidates for ``chips`` per instance (or every instance size up to ``max_chips``); ``sequences``:
    the whole job's (:func:`~trainsim.inference.search.evaluate_decode`)."""
    sizes = [chips] if chips else instance_sizes(max_chips or s.system.scale_up_size, s.system.scale_up_size)
    plans = plan_grid(s, sizes, fixed)
    return evaluate_decode(s, plans, context, batch_per_chip=batch_per_chip, batch_per_instance=batch_per_instance,
                           tpot_bound_s=tpot_bound_s, max_batch_per_instance=max_batch_per_instance,
                           max_batch_per_chip=max_batch_per_chip, memory_context=memory_context,
                           hbm_fraction=hbm_fraction, prefill_s_per_seq_chip=prefill_s_per_seq_chip,
                           sequences=sequences, max_seqs_per_replica=max_seqs_per_replica,
                           budget_tokens_per_seq=budget_tokens_per_seq)


def best_prefill(s: ServeSetup, input_len: int, *, chips=None, max_chips=None, fixed=None, tokens_per_chip=None,
                 ttft_bound_s=None, all_logits: bool = False, max_batch_per_instance=None,
                 max_seqs_per_replica=None) -> Evaluated:
    """Prefill of ``input_len`` tokens evaluated over the plan grid of ``chips`` (or every instance size up
    to ``max_chips``, by default one scale-up domain), under the optional throughput and TTFT bounds and the
    server's running-request cap (:func:`~trainsim.inference.search.running_cap`)."""
    sizes = [chips] if chips else instance_sizes(max_chips or s.system.scale_up_size, s.system.scale_up_size)
    plans = plan_grid(s, sizes, fixed)
    return evaluate_prefill(s, plans, input_len, tokens_per_chip=tokens_per_chip, ttft_bound_s=ttft_bound_s,
                            all_logits=all_logits, max_batch_per_instance=max_batch_per_instance,
                            max_seqs_per_replica=max_seqs_per_replica)


def _serving_calib(sv: Serving, calib: InferCalib | None) -> InferCalib:
    """The constants one spec is evaluated with: ``calib`` (default: the shipped ones) with the deployment's own
    expert imbalance, no communication overlap without two-batch overlap, and the synchronous engine loop's
    per-sequence host time where the stack does not overlap its host work."""
    sp = sv.serving
    if sp.expert_imbalance is not None:
        calib = (calib or default_calib()).with_(expert_imbalance=sp.expert_imbalance)
    if not sp.two_batch_overlap:   # the deployment runs one batch per step: nothing hides its communication
        calib = (calib or default_calib()).with_(comm_overlap=0.0)
    # a synchronous engine loop: stated (host_overlap: false, vLLM V0's loop: the serving points that state one
    # run it), else the stack's default (serving_stacks.yaml host_overlap / host_loop: vLLM before 0.8.0)
    prof = serving_stack(sv)
    if sp.host_overlap is not None:
        overlap, loop = sp.host_overlap, "vllm-v0"
    else:
        overlap = True if prof["host_overlap"] is None else prof["host_overlap"]
        loop = prof["host_loop"]
    return engine_host_calib(calib or default_calib(), sv.system.chip, host_overlap=overlap, loop=loop)


def serving_stack(sv: Serving) -> dict:
    """The profile of the serving stack a spec runs (``serving.stack`` at ``serving.stack_version``, else its chip
    vendor's usual stack: :func:`trainsim.inference.stacks.stack_of`)."""
    return stack_of(sv.serving.stack, sv.serving.stack_version, sv.system.chip)


#: the next narrower numerics a spec that does not fit may take, for weights and for the KV cache
NARROWER = {"bf16": "fp8", "fp8": "fp4", "int8": "fp4"}
NARROWER_KV = {"bf16": "fp8"}


def _fit_alternatives(sv: Serving, s: ServeSetup, run) -> str:
    """The nearest changes under which a phase that fits no plan in HBM does fit, each evaluated the same way
    (``run(setup, chips, max_chips)`` -> :class:`Evaluated`): the smallest instance that fits where the spec fixes
    ``chips`` (the instance sizes the search offers up to 512 chips), the next narrower weights (bf16 -> fp8 ->
    fp4; routed experts kept where already narrower) and an FP8 KV cache for a BF16 one. Each as ``field: value``
    with the fastest fitting plan's tokens/s per chip; "" where none fits. Only changes the spec can state are
    offered (a stated batch per chip fixes the KV per chip, so more chips alone cannot help: then none is named)."""
    sp = sv.serving
    out = []

    def rate(ev: Evaluated) -> str:
        return f"{float(ev.tokens_per_s_per_chip[ev.best]):,.0f} tok/s/chip" if ev.best is not None else \
            "fits, but no plan meets the other bounds"

    def fitting(ev: Evaluated) -> np.ndarray:   # fits with work for each replica and stage (_nothing_fits)
        return np.broadcast_to(ev.fits, ev.batch.shape) & _work(ev)

    if sv.chips:
        ev = run(s, None, max(512, sv.system.scale_up_size))
        fit = np.flatnonzero(fitting(ev) & (ev.plans.chips * np.ones_like(ev.batch) > sv.chips))
        if fit.size:
            n = int(np.min((ev.plans.chips * np.ones_like(ev.batch))[fit]))
            at = run(s, n, None)
            out.append(f"chips: {n} -> {rate(at)}")
    w = NARROWER.get(sp.precision)
    if w is not None:
        xp = sp.expert_precision if sp.expert_precision and BYTES[sp.expert_precision] <= BYTES[w] else None
        ev = run(setup_for(sv.arch, sv.system, w, sp.kv_precision, sp.mtp, s.calib, xp, s.stack,
                           s.max_batched_tokens), sv.chips, None)
        if np.any(fitting(ev)):
            out.append(f"serving.precision: {w} -> {rate(ev)}")
    k = NARROWER_KV.get(sp.kv_precision)
    if k is not None:
        ev = run(setup_for(sv.arch, sv.system, sp.precision, k, sp.mtp, s.calib, sp.expert_precision, s.stack,
                           s.max_batched_tokens), sv.chips, None)
        if np.any(fitting(ev)):
            out.append(f"serving.kv_precision: {k} -> {rate(ev)}")
    return "; ".join(out)


def _phases(sv: Serving, calib: InferCalib | None,
            partial_ok: bool = False) -> tuple[ServeSetup, Evaluated | None, Evaluated | None]:
    """The setup and the evaluated prefill and decode candidates of one spec (None for a phase it does not run;
    :class:`NoPlanError` where a phase has no feasible candidate). With constants given as ``(G, 1)`` arrays over a grid
    (:func:`predicted_grid`) every number is per grid row and so is the best candidate of each phase; any grid row
    without a feasible candidate raises too, unless ``partial_ok`` (then only a grid where no row has one does)."""
    sp = sv.serving
    s = setup_for(sv.arch, sv.system, sp.precision, sp.kv_precision, sp.mtp, _serving_calib(sv, calib),
                  sp.expert_precision, serving_stack(sv), sp.max_batched_tokens)
    require_usable(sv.system.chip)
    fixed = _fixed(sv.plan, sv.chips)
    check_tp(sv.arch, fixed["tp"], "plan.tp" if sv.plan.tp is not None else "plan.dp")
    max_chips = None if sv.chips else max(512, sv.system.scale_up_size)
    # the running requests a server admits where the spec states no serving.max_batch and the batch is searched:
    # the stack's default (stacks.default_max_running: vLLM's max_num_seqs, TensorRT-LLM's max_batch_size, ...),
    # per data-parallel replica; None where the stack has no cap but the KV cache's
    default_seqs = default_max_running(s.stack_profile, sv.system.chip) if sp.max_batch is None else None
    pre = dec = None
    if sp.phase in ("prefill", "both"):
        ttft = sv.latency.ttft_ms / 1e3 if sv.latency.ttft_ms else None

        def run_prefill(setup: ServeSetup, chips, most) -> Evaluated:
            return best_prefill(setup, sp.input_len, chips=chips, max_chips=most, fixed=fixed,
                                tokens_per_chip=sp.prefill_tokens_per_chip, ttft_bound_s=ttft,
                                max_batch_per_instance=sp.max_batch,
                                max_seqs_per_replica=default_seqs if sp.prefill_tokens_per_chip is None else None)
        pre = run_prefill(s, sv.chips, max_chips)
        _require_plan("prefill", pre, ttft, lambda: _fit_alternatives(sv, s, run_prefill), partial_ok)
    # aggregated serving of one-token outputs: every token comes from prefill (has_decode), no decode phase
    if sp.phase == "decode" or (sp.phase == "both" and has_decode(sp.output_len)):
        tpot = mean_tpot_bound_s(sv.latency.tpot_ms, sv.latency.tpot_stat, sv.system.chip)
        # the tokens a running sequence brings to each step, which a stack whose decodes count against the step's
        # token budget caps where the batch is searched (search.token_budget_cap): its 1 + draft decode tokens and,
        # aggregated, its share of the prompts that replace finished requests
        per_seq = 1.0 + s.mtp_draft + (sp.input_len * s.tokens_per_step / sp.output_len if sp.phase == "both"
                                       else 0.0)
        searched = sp.batch_per_chip is None and sp.batch is None

        def run_phases(setup: ServeSetup, chips, most, pre_ev: Evaluated | None = None):
            """(prefill, decode) candidates; aggregated (phase both), prompts are prefilled between decode steps
            on the same chips by the same layout: each plan's decode is timed with its own prefill rate and the
            answer is one plan for both (search.join_phases)."""
            inter = pre_at = pre_tps = None
            if sp.phase == "both":
                pre_ev = pre_ev if pre_ev is not None else run_prefill(setup, chips, most)
                pre_at, pre_tps = best_per_plan(pre_ev)
                inter = np.where(pre_at >= 0, sp.input_len / (sp.output_len * pre_tps), np.inf)
            d = best_decode(setup, sp.decode_context, chips=chips, max_chips=most, fixed=fixed,
                            batch_per_chip=sp.batch_per_chip, batch_per_instance=sp.batch, tpot_bound_s=tpot,
                            max_batch_per_instance=sp.max_batch, memory_context=sp.kv_reserved_context,
                            prefill_s_per_seq_chip=inter,
                            max_seqs_per_replica=default_seqs if searched else None,
                            budget_tokens_per_seq=per_seq if searched else None)
            if pre_ev is None or pre_at is None:
                return pre_ev, d
            score = aggregate_output_rate(sp.input_len, sp.output_len, np.repeat(pre_tps, d.per_plan, axis=-1),
                                          d.tokens_per_s_per_chip)
            return join_phases(pre_ev, pre_at, d, score)
        joined, dec = run_phases(s, sv.chips, max_chips, pre)
        _require_plan("decode", dec, tpot, lambda: _fit_alternatives(sv, s, lambda *a: run_phases(*a)[1]),
                      partial_ok)
        pre = joined if sp.phase == "both" else pre
    return s, pre, dec


def _require_plan(kind: str, ev: Evaluated, bound, alternatives=None, partial_ok: bool = False) -> None:
    """:class:`NoPlanError` (with :func:`_no_plan`'s reason) where no candidate is feasible, over a grid of
    constants where any grid row has none (``partial_ok``: where every grid row has none); where nothing fits in
    HBM, with ``alternatives()`` (:func:`_fit_alternatives`) when they are found, else the advice to state them."""
    if ev.best_rows is None:
        if ev.best is None:
            msg = _no_plan(kind, ev, bound)
            if ev.batch.size and _nothing_fits(ev):
                alt = alternatives() if alternatives is not None else ""
                msg += (f"; nearest alternatives: {alt}" if alt else
                        "; more chips per instance, narrower weights or KV cache, or a smaller stated batch")
            raise NoPlanError(msg, field="serving")
        return
    bad = np.flatnonzero(ev.best_rows < 0)
    if bad.size and (not partial_ok or bad.size == ev.best_rows.size):
        g = int(bad[0])
        row = Evaluated(ev.plans, ev.batch, np.broadcast_to(ev.latency_s, ev.ok.shape)[g], ev.tokens_per_s_per_chip,
                        ev.round_s, ev.breakdown, ev.memory, np.broadcast_to(ev.fits, ev.ok.shape)[g], ev.ok[g], None,
                        busy=None if ev.busy is None else np.broadcast_to(ev.busy, ev.ok.shape)[g], work=ev.work)
        raise NoPlanError(f"at grid row {g} of the constants: " + _no_plan(kind, row, bound), field="serving")


def predicted_grid(sv: Serving, calib: InferCalib) -> dict[str, np.ndarray]:
    """Per phase the metric a serving point reports (prefill / decode tokens/s per chip, aggregated output
    tokens/s per chip), predicted at every point of a grid of constants: ``calib``'s fields as ``(G, 1)`` arrays
    (any may stay scalars), the best plan and batch searched per grid row exactly as :func:`infer` searches them
    for one set of constants. What ``scripts/calibrate_inference.py`` fits on: one evaluation per spec instead of
    one per grid point (tests/test_calibrate_inference_grid.py checks it against :func:`infer` point by point).
    A grid row at which no candidate meets the spec's bounds (where :func:`infer` raises :class:`NoPlanError`)
    gets NaN: those constants cannot reproduce the published deployment at all; a grid without any feasible row
    raises."""
    sp = sv.serving
    _, pre, dec = _phases(sv, calib, partial_ok=True)
    out: dict[str, np.ndarray] = {}
    if pre is not None:
        out["prefill"] = np.atleast_1d(pre.at_best(pre.tokens_per_s_per_chip))
    if dec is not None:
        out["decode"] = np.atleast_1d(dec.at_best(dec.tokens_per_s_per_chip))
    if sp.phase == "both":
        out["aggregate"] = aggregate_output_rate(sp.input_len, sp.output_len, out["prefill"], out.get("decode"))
    return out


def infer(sv: Serving, calib: InferCalib | None = None) -> dict[str, Any]:
    """Everything ``trainsim infer`` reports for one serving spec."""
    sp = sv.serving
    s, pre, dec = _phases(sv, calib)
    per_tok = kv_bytes_per_token(sv.arch, s.kv_bytes)
    ctx = sp.decode_context
    out: dict[str, Any] = {
        "name": sv.name, "model": sv.arch.name, "system": sv.system.id, "chip": sv.system.chip.id,
        "chips_per_instance": sv.chips, "moe": sv.arch.is_moe, "precision": sp.precision, "kv_precision": sp.kv_precision,
        "gemm_peak_flops": s.gemm_peak, "gemm_peak_basis": s.peak_note(),
        "hbm_bandwidth_bytes_per_s": sv.system.chip.hbm_bw, "hbm_bytes": sv.system.chip.hbm_bytes,
        "kv_cache_bytes_per_token": per_tok,
        "kv_cache_bytes_per_sequence": float(kv_bytes_per_sequence(sv.arch, ctx, s.kv_bytes)),
        "expert_precision": s.expert_prec,
        "input_len": sp.input_len, "output_len": sp.output_len, "decode_context_len": ctx,
        "mtp": sp.mtp.model_dump() if sp.mtp else None,
        # the per-step token budget of one scheduler the prefill is chunked to (stated, else the stack's)
        "max_batched_tokens": s.token_budget,
    }
    if pre is not None:
        assert pre.best is not None
        d = _row(pre, pre.best, "prefill", per_token_bytes=per_tok)
        d["prompt_tokens_per_chip"] = d["prompts_per_instance"] * sp.input_len / d["plan"]["chips"]
        d["ttft_bound_s"] = sv.latency.ttft_ms / 1e3 if sv.latency.ttft_ms else None
        out["prefill"] = d
    if dec is not None:
        ev = dec
        assert ev.best is not None
        d = _row(ev, ev.best, "decode", per_token_bytes=per_tok)
        d["kv_cache_bytes_per_chip"] = d["memory_per_chip_bytes"]["kv_cache"]
        d["tpot_bound_s"] = sv.latency.tpot_ms / 1e3 if sv.latency.tpot_ms else None
        d["tpot_bound_stat"] = sv.latency.tpot_stat
        d["mean_tpot_bound_s"] = mean_tpot_bound_s(sv.latency.tpot_ms, sv.latency.tpot_stat, sv.system.chip)
        # aggregated serving: the part of the time per output token that is prompts prefilled between decode steps
        # (inference/search.py best_decode: TPOT = step / tokens per step + B x input_len / (output_len x prefill
        # rate x chips)), so that batch / TPOT -- the output rate -- and the decode steps' own rate both add up
        d["prefill_in_tpot_s"] = (max(d["tpot_s"] - d["step_time_s"] / s.tokens_per_step, 0.0)
                                  if sp.phase == "both" else 0.0)
        d["runners_up"] = [{**ev.plans.row(i), "batch_per_chip": float(ev.batch[i] / ev.plans.chips[i]),
                            "tokens_per_s_per_chip": float(ev.tokens_per_s_per_chip[i]),
                            "tpot_s": float(ev.latency_s[i])} for i in ev.runners_up(4, exclude=ev.best)]
        out["decode"] = d
    experts = max((lk.moe.experts for lk in sv.arch.layers if lk.moe is not None), default=0)
    for d in (out[k] for k in ("prefill", "decode") if k in out):
        idle = idle_expert_ranks(d["plan"].get("ep", 1), experts) if experts else 0
        if idle:   # ep above the expert count: vLLM leaves ep - E ranks without an expert (inference/experts.py)
            d["idle_expert_ranks"] = idle
            d["expert_note"] = (f"ep {d['plan']['ep']} > {experts} routed experts: {idle} of the "
                                f"{d['plan']['ep']} expert-parallel ranks hold no expert, the others one each "
                                "(vLLM determine_expert_map without EPLB)")
    if sp.mtp is not None and sp.mtp.draft_tokens and not sv.arch.mtp and "decode" in out:
        out["draft_note"] = draft_note(sv.arch.name)
    if sp.phase == "both":
        out["aggregate"] = {"output_tokens_per_s_per_chip": aggregate_output_rate(
            sp.input_len, sp.output_len, out["prefill"]["tokens_per_s_per_chip"],
            out["decode"]["tokens_per_s_per_chip"] if "decode" in out else None)}
        if "decode" not in out:   # one output token: sampled by the prefill, no decode step (has_decode)
            out["aggregate"]["tpot_s"] = None
            out["aggregate"]["note"] = (f"output_len {sp.output_len}: the one output token comes from the prefill; "
                                        "no decode step, so no decode batch and no time per output token")
    if sv.reported is not None:
        r = sv.reported
        rep = r.model_dump()
        err = {}
        if r.decode_tokens_per_s_per_chip and "decode" in out:
            err["decode_tokens_per_s_per_chip"] = out["decode"]["tokens_per_s_per_chip"] / r.decode_tokens_per_s_per_chip - 1
        if r.prefill_tokens_per_s_per_chip and "prefill" in out:
            err["prefill_tokens_per_s_per_chip"] = (out["prefill"]["tokens_per_s_per_chip"]
                                                    / r.prefill_tokens_per_s_per_chip - 1)
        if r.output_tokens_per_s_per_chip and "aggregate" in out:
            err["output_tokens_per_s_per_chip"] = (out["aggregate"]["output_tokens_per_s_per_chip"]
                                                   / r.output_tokens_per_s_per_chip - 1)
        if r.tpot_ms and "decode" in out:
            err["tpot"] = out["decode"]["tpot_s"] * 1e3 / r.tpot_ms - 1
        out["reported"] = rep
        out["error"] = err
    out["constants"] = {k: v for k, v in s.calib.__dict__.items()}
    out["constants"]["expert_mem_eff"] = s.expert_mem_eff   # the rate this deployment's routed experts stream at
    out["constant_sources"] = constant_sources()
    if not sv.arch.is_moe:
        _drop_expert_fields(out)
    return out


#: the plan fields that only mean something with routed experts (ep; etp = chips of a stage / ep, ServePlans.etp)
EXPERT_PLAN_KEYS = ("ep", "etp")
#: the step-time causes (inference/step.py) and constants (inference/calib.py) that only routed experts have
EXPERT_BREAKDOWN_KEYS = ("experts", "ep_comm")
EXPERT_CONSTANTS = ("expert_imbalance", "a2a_eff", "expert_stream_eff", "expert_mem_eff")


def _drop_expert_fields(out: dict[str, Any]) -> None:
    """A dense model's answer without expert fields: the plans' ep / etp (etp = stage chips / ep is derived, so a
    dense tp=1 plan on 2 chips read 'etp 2'), ``expert_precision``, the breakdown's always-zero ``experts`` and
    ``ep_comm`` and the expert-only constants; the terminal table omits them alike (report/inference.py)."""
    out.pop("expert_precision", None)
    phases = [out[k] for k in ("prefill", "decode") if k in out]
    plans = [d["plan"] for d in phases] + out.get("decode", {}).get("runners_up", [])
    for p in plans:
        for k in EXPERT_PLAN_KEYS:
            p.pop(k, None)
    for d in phases:
        for k in EXPERT_BREAKDOWN_KEYS:
            d["breakdown_s"].pop(k, None)
    for k in EXPERT_CONSTANTS:
        out["constants"].pop(k, None)
        out["constant_sources"].pop(k, None)
