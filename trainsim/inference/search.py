"""Best serving plan: every candidate (instance size, tp, pp, ep, batch) evaluated at once with numpy.

Candidates: chips per instance (given, or powers of two and multiples of the scale-up domain up to the cluster),
tp a power of two inside one scale-up domain that divides the attention heads (:func:`tp_divides_heads`), pp a power of two (at most 16, never more than the layers), ep a
divisor of the chips per stage (dense models: 1), and a batch grid (decode: sequences per chip, fractions for wide
tensor-parallel instances that hold fewer sequences than chips; prefill: prompt tokens per chip). A candidate is kept when its weights + KV cache (+ buffers, + prefill activations) fit in HBM
and it meets the latency bound (decode: time per output token; prefill: time to first token). The best is the one
with the most tokens/s per chip; ties go to the lower latency, then to the smaller instance. Aggregated serving
(prefill and decode on the same chips) picks one plan for both phases by the output rate of the whole request
(:func:`join_phases`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import TrainsimError
from .setup import ServeSetup
from .step import (ServePlans, kv_bytes_per_chip, pipeline_fill_rounds, prefill_activation_bytes,
                   prefill_round_chunks, step_time, weight_bytes_per_chip)

DECODE_BATCH_GRID = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 512,
                     768, 1024)
PREFILL_TOKENS_GRID = (1024, 2048, 4096, 8192, 16384, 32768, 65536)


def _pow2_upto(n: int) -> list[int]:
    out, x = [], 1
    while x <= n:
        out.append(x)
        x *= 2
    return out


def tp_divides_heads(arch, tp: int) -> bool:
    """Whether a serving engine can shard ``arch``'s attention over ``tp`` chips: the attention heads split evenly.
    vLLM refuses any other tp at start-up (``ModelConfig.verify_with_parallel_config``: "Total number of attention
    heads (32) must be divisible by tensor parallel size (3)"); fewer KV heads than tp are replicated
    (``ModelConfig.get_num_kv_heads``: max(1, kv_heads // tp)), so only the attention heads constrain tp."""
    return tp >= 1 and arch.n_heads % tp == 0


def check_tp(arch, tp: int | None, field: str) -> None:
    """A stated serving tp the engine would refuse (:func:`tp_divides_heads`) as a one-line input error."""
    if tp is not None and not tp_divides_heads(arch, int(tp)):
        raise TrainsimError(f"expected a tensor-parallel size that divides the model's {arch.n_heads} attention "
                            f"heads (vLLM refuses others), got {tp}", field=field)


def instance_sizes(max_chips: int, scale_up: int) -> list[int]:
    """Candidate chips per instance: powers of two, multiples of the scale-up domain, up to ``max_chips``."""
    c = set(_pow2_upto(max_chips))
    c |= {scale_up * m for m in range(1, max_chips // max(scale_up, 1) + 1) if scale_up * m <= max_chips}
    c = {x for x in c if x <= max_chips}
    if max_chips <= 1024:
        c.add(max_chips)
    return sorted(c)


def plan_grid(s: ServeSetup, chips_options, fixed: dict | None = None) -> ServePlans:
    """All (chips, tp, pp, ep) candidates, honouring fixed fields."""
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    su = s.system.scale_up_size
    n_layers = s.arch.n_layers
    rows = []
    for n in chips_options:
        tps = [fixed["tp"]] if "tp" in fixed else [t for t in _pow2_upto(min(su, n))
                                                   if n % t == 0 and tp_divides_heads(s.arch, t)]
        pps = [fixed["pp"]] if "pp" in fixed else [q for q in _pow2_upto(min(16, n, n_layers)) if n % q == 0]
        for tp in tps:
            for pp in pps:
                if n % (tp * pp):
                    continue
                stage = n // pp
                if s.arch.is_moe:
                    if "ep" in fixed:
                        eps = [fixed["ep"]]
                    else:
                        eps = sorted({e for e in _pow2_upto(stage) if stage % e == 0} | {stage})
                else:
                    eps = [1]
                for ep in eps:
                    if stage % ep:
                        continue
                    rows.append((n, tp, pp, ep))
    if not rows:
        return ServePlans(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    arr = np.array(rows, dtype=np.float64)
    return ServePlans(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


def running_cap(p: ServePlans, max_batch_per_instance=None, max_seqs_per_replica=None):
    """The most sequences (decode) or prompts (a prefill round) one instance of plan ``p`` runs at once: the stated
    ``max_batch_per_instance`` (the spec's ``serving.max_batch``), else ``max_seqs_per_replica`` per data-parallel
    replica (one scheduler each: ``max_seqs x dp``; the serving stack's default where the batch is searched,
    :func:`trainsim.inference.stacks.default_max_running`), else
    no cap (inf). Example: 8 H100 as tp 2 x dp 4 with the default: 4 x 1,024 = 4,096 per instance."""
    if max_batch_per_instance is not None:
        return np.broadcast_to(np.asarray(float(max_batch_per_instance)), np.shape(p.dp))
    if max_seqs_per_replica is not None:
        return float(max_seqs_per_replica) * p.dp
    return np.full(np.shape(p.dp), np.inf)


def token_budget_cap(p: ServePlans, budget, tokens_per_seq):
    """The most sequences one instance of plan ``p`` keeps running when each step of a scheduler (one per
    data-parallel replica, one step per pipeline micro-batch) holds at most ``budget`` tokens and every running
    sequence brings ``tokens_per_seq`` of them per step: ``budget x pp x dp / tokens_per_seq``; inf without a
    budget (None).

    A stack whose running decodes count against the step's budget first (vLLM V1 ``Scheduler.schedule``:
    'First, schedule the RUNNING requests', then the waiting ones with the ``token_budget`` left, vllm-project/vllm
    00024d3 vllm/v1/core/sched/scheduler.py; TensorRT-LLM's ``max_num_tokens``: serving_stacks.yaml
    ``counts_decode``) gives a decoding sequence ``1 + draft`` tokens a step. Where prompts are prefilled on the same
    chips (aggregated serving) each running sequence also needs its share of the prompts that replace the finished
    ones: ``input_len x tokens gained per step / output_len`` prefill tokens a step, so ``tokens_per_seq = 1 + draft
    + input_len x tokens_per_step / output_len``. A batch above the cap cannot hold in steady state: the prompts
    wait for the budget the decodes leave, slots stay empty, and the running count falls until every step is full.
    Example (hand): vLLM V1 on one H100 (budget 8,192), 1,024 outputs, no draft: 4,096-token prompts -> 8,192 /
    (1 + 4) = 1,638.4 sequences (above its 1,024 max_num_seqs: not binding); 16,384-token prompts -> 8,192 / 17 =
    481.9 (binding)."""
    if budget is None:
        return np.full(np.shape(p.dp), np.inf)
    return float(budget) * p.pp * p.dp / np.asarray(tokens_per_seq, dtype=np.float64)


@dataclass
class Evaluated:
    """Every candidate with its numbers (flattened plan x batch), and the index of the best one (or None).

    Constants given as arrays over a grid (an :class:`~trainsim.inference.calib.InferCalib` whose fitted fields are
    ``(G, 1)`` columns, as ``scripts/calibrate_inference.py`` evaluates them) make the timed quantities ``(G, N)``
    arrays, one row per grid point: ``best`` is then None and ``best_rows`` holds each row's best candidate (-1
    where none is feasible)."""

    plans: ServePlans
    batch: np.ndarray            # sequences per instance
    latency_s: np.ndarray        # TPOT (decode) or TTFT (prefill)
    tokens_per_s_per_chip: np.ndarray
    round_s: np.ndarray
    breakdown: dict
    memory: dict
    fits: np.ndarray
    ok: np.ndarray
    best: int | None
    best_rows: np.ndarray | None = None
    #: the candidates that fit and give each data-parallel replica and pipeline stage work, before the latency
    #: bound (``ok`` is these that also meet it): what a missed bound is told among (serve._no_plan)
    busy: np.ndarray | None = None
    #: the candidates that give each data-parallel replica and pipeline stage work, fitting or not (``busy`` is
    #: these that fit): what "no plan fits in HBM" is said of (serve._no_plan, qa32b: a 1/32-sequence candidate
    #: fitted, so a 122K-token Llama 3.1 70B decode was told 'smallest need 136.3 GiB' and 'chips: 2 -> fits')
    work: np.ndarray | None = None
    #: candidates per plan: the candidates are plan-major, each plan's batch grid (or its one given batch) in turn
    per_plan: int = 1

    def runners_up(self, n: int = 5, exclude: int | None = None) -> list[int]:
        """Indices of up to ``n`` feasible candidates, highest tokens/s per chip first (ties keep plan order), each
        data-parallel replica shape (tp, pp, ep, batch per replica) once and none the same as candidate ``exclude``
        (the best): a stack's running cap clips several per-chip batches of the grid to one batch, and the same
        plan at the same batch was listed three times (qa30b); an instance of more replicas of the same shape is
        the same deployment, the same numbers to the last bits, and Llama 3.1 8B's best 2-chip tp-2 instance had
        as its four runners-up 20, 28, 40 and 56 copies of itself (qa32b). Each shape is shown as its smallest
        instance."""
        idx = np.flatnonzero(self.ok)
        order = idx[np.argsort(-self.tokens_per_s_per_chip[idx], kind="stable")]
        p = self.plans
        cols = [np.broadcast_to(a, self.batch.shape) for a in (p.tp, p.pp, p.ep, self.batch / p.dp)]
        if exclude is not None:
            order = np.concatenate(([exclude], order[order != exclude]))
        keys = np.stack([c[order] for c in cols], axis=1)
        _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        # per shape, the position of its smallest instance (the earliest among equals)
        by = np.lexsort((np.arange(order.size), np.broadcast_to(p.chips, self.batch.shape)[order], group))
        smallest = by[np.r_[True, group[by][1:] != group[by][:-1]]]
        kept = order[smallest[group[np.sort(first)]]]
        if exclude is not None:
            kept = kept[1:]
        return [int(i) for i in kept[:n]]

    def at_best(self, a):
        """``a`` (a per-candidate array, or anything that broadcasts to the candidates) at the best candidate: a
        float, or over a grid of constants an array with one value per grid row (NaN where a row has none)."""
        if self.best_rows is None:
            if self.best is None:
                raise TrainsimError("no feasible candidate to read a value at")
            return float(np.broadcast_to(a, self.batch.shape)[self.best])
        rows = self.best_rows
        full = np.broadcast_to(a, (rows.size, self.batch.size))
        return np.where(rows >= 0, full[np.arange(rows.size), np.maximum(rows, 0)], np.nan)


def _expand(plans: ServePlans, per_chip):
    """Cartesian product of plans and a per-chip batch grid, flattened."""
    per_chip = np.asarray(per_chip, dtype=np.float64)
    n_p, n_b = plans.chips.size, per_chip.size
    rep = lambda a: np.repeat(np.broadcast_to(a, (n_p,)), n_b)  # noqa: E731
    p = ServePlans(rep(plans.chips), rep(plans.tp), rep(plans.pp), rep(plans.ep))
    b = np.tile(per_chip, n_p)
    return p, b


def pick_rows(tps, lat, ok) -> np.ndarray:
    """Index of the best candidate in each row of ``(G, N)`` arrays (-1 where a row has no feasible one): the most
    tokens/s per chip among the feasible (``ok``) candidates, those within a relative 1e-9 of it counted as tied,
    among the tied the lowest latency (again within a relative 1e-9), and among those the first in candidate order
    -- the smallest instance (:func:`plan_grid` walks the instance sizes upwards): a dense model's 440-chip instance
    of 55 tp-8 replicas is 55 copies of the 8-chip one, the same numbers to the last bits, and was shown as the
    plan when rounding made its latency 1e-17 s lower (qa22)."""
    tps, lat, ok = np.broadcast_arrays(np.atleast_2d(tps), np.atleast_2d(lat), np.atleast_2d(ok))
    if tps.shape[-1] == 0:                         # no candidate at all
        return np.full(tps.shape[:-1], -1)
    score = np.where(ok, tps, -np.inf)
    top = np.max(score, axis=-1, keepdims=True)
    near = ok & (score >= top * (1.0 - 1e-9))
    lat_near = np.where(near, lat, np.inf)
    fastest = np.min(lat_near, axis=-1, keepdims=True)
    # a tied set whose latencies are all infinite keeps its first (inf <= inf)
    tied = near & (lat_near <= fastest * (1.0 + 1e-9))
    idx = np.argmax(tied, axis=-1)
    return np.where(np.any(ok, axis=-1), idx, -1)


def _pick(tps, lat, ok) -> tuple[int | None, np.ndarray | None]:
    """(best, best_rows) of :class:`Evaluated`: one candidate index (None: no feasible one) for 1-D numbers, or
    one per grid row (:func:`pick_rows`) when the constants came as arrays over a grid."""
    rows = pick_rows(tps, lat, ok)
    if np.ndim(tps) <= 1 and np.ndim(lat) <= 1:
        return (None if rows[0] < 0 else int(rows[0])), None
    return None, rows


def best_per_plan(ev: Evaluated) -> tuple[np.ndarray, np.ndarray]:
    """Each plan's best candidate of ``ev`` among its own batches (:func:`pick_rows` over the ``per_plan``
    candidates of each plan): its index into ``ev``'s candidates (-1 where none of the plan's batches is
    feasible) and its tokens/s per chip (NaN there), each shaped ``(plans,)``, or ``(G, plans)`` over a grid of
    constants. What aggregated serving prices a layout's prefill at (:func:`join_phases`)."""
    tps, lat, ok = np.broadcast_arrays(np.asarray(ev.tokens_per_s_per_chip, dtype=np.float64),
                                       np.asarray(ev.latency_s, dtype=np.float64), np.asarray(ev.ok))
    lead, n_p = tps.shape[:-1], tps.shape[-1] // ev.per_plan
    blocks = [a.reshape(lead + (n_p, ev.per_plan)) for a in (tps, lat, ok)]
    at = pick_rows(*blocks).reshape(lead + (n_p,))
    rate = np.take_along_axis(blocks[0], np.maximum(at, 0)[..., None], axis=-1)[..., 0]
    return np.where(at >= 0, np.arange(n_p) * ev.per_plan + at, -1), np.where(at >= 0, rate, np.nan)


def join_phases(pre: Evaluated, pre_at: np.ndarray, dec: Evaluated, score) -> tuple[Evaluated, Evaluated]:
    """Aggregated serving (``phase: both``): one layout for both phases, as one server runs one parallel layout
    (vLLM and SGLang take one ``--tensor-parallel-size`` per server, and chunked prefill runs the prompts in the
    same forward steps as the decodes). ``pre`` and ``dec`` are the prefill and decode candidates over the same
    plans (:func:`plan_grid`, same order); ``pre_at`` each plan's prefill candidate (:func:`best_per_plan`: its
    most prefill tokens/s per chip under the TTFT bound, -1 where none meets it); ``score`` the objective of
    each decode candidate with its plan's prefill (the output tokens/s per chip of the whole request,
    ``serve.aggregate_output_rate``). A decode candidate is feasible where it is and its plan's prefill is; the
    best is the feasible one of the highest ``score`` (ties: :func:`pick_rows`), and the prefill's best is its
    plan's prefill candidate, so both phases report one plan. (Picked apart, Llama 3.1 8B on 8 H800 was told
    prefill at tp 1 and decode at tp 2 on the same chips, 2,913 tokens/s per chip; one layout runs 2,790, qa32.)
    Returns ``(pre, dec)`` with ``best`` / ``best_rows`` set so; ``dec``'s ``ok`` and ``busy`` keep the plans
    that run the prefill too."""
    n_p = np.shape(pre_at)[-1]
    if n_p == 0:
        return pre, dec
    plan_ok = np.repeat(pre_at >= 0, dec.per_plan, axis=-1)
    ok = dec.ok & plan_ok
    busy = None if dec.busy is None else dec.busy & plan_ok
    rows = pick_rows(score, dec.latency_s, ok)
    plan = np.maximum(rows, 0) // dec.per_plan
    pre_rows = np.where(rows >= 0, np.broadcast_to(np.atleast_2d(pre_at), (rows.size, n_p))[np.arange(rows.size),
                                                                                                plan], -1)
    if np.ndim(score) <= 1 and np.ndim(dec.latency_s) <= 1:
        one = lambda r: None if r[0] < 0 else int(r[0])  # noqa: E731
        return (replace(pre, best=one(pre_rows), best_rows=None),
                replace(dec, ok=ok, busy=busy, best=one(rows), best_rows=None))
    return (replace(pre, best=None, best_rows=pre_rows),
            replace(dec, ok=ok, busy=busy, best=None, best_rows=rows))


def evaluate_decode(s: ServeSetup, plans: ServePlans, context, *, batch_per_chip=None, batch_per_instance=None,
                    tpot_bound_s=None, max_batch_per_instance=None, max_batch_per_chip=None,
                    memory_context=None, hbm_fraction: float = 1.0, prefill_s_per_seq_chip=None,
                    sequences=None, max_seqs_per_replica=None, budget_tokens_per_seq=None) -> Evaluated:
    """Decode candidates: plans x batch grid (or the given batch: ``batch_per_chip``, or ``batch_per_instance``,
    one number or an array with one per plan).

    ``context`` is the KV length at which the step is timed; ``memory_context`` (default: ``context``) the
    longest KV length the cache must hold. ``max_batch_per_chip`` caps the batch (e.g. the sequences available);
    ``max_batch_per_instance`` / ``max_seqs_per_replica`` the sequences the server runs (:func:`running_cap`).
    ``sequences``: with ``max_batch_per_chip``, the sequences the whole cluster has (a fixed job, e.g. one RL
    step's samples): where the even share ``max_batch_per_chip x chips`` of an instance is below the ``pp x dp``
    sequences its replicas need, the job runs on fewer instances (:func:`idle_share_batch`), so the instance is
    timed at ``min(pp x dp, sequences)`` and its tokens/s per chip counts the idle chips.
    ``hbm_fraction``: share of HBM the server may use (vLLM ``gpu_memory_utilization``; colocated RL leaves the
    rest to the trainer), so the KV cache -- and the batch -- is capped by what is left after the weights.
    ``prefill_s_per_seq_chip``: aggregated serving (prefill and decode on the same chips, chunked prefill):
    ``input_len / (output_len x prefill tokens/s/chip)``, one number or one per plan (the last axis; each plan's
    own prefill rate, :func:`best_per_plan`). In steady state ``B / output_len`` requests finish -- and
    as many prompts are prefilled -- per decode step, so the time between a sequence's tokens becomes
    ``TPOT + B x input_len / (output_len x prefill rate x chips)`` (Sarathi-Serve, OSDI'24: prefill chunks
    stall decodes); the latency bound applies to that.
    ``budget_tokens_per_seq``: where the batch is searched, the tokens a running sequence brings to each step,
    which the stack's token budget caps where its decodes count against it (:func:`token_budget_cap`,
    :attr:`~trainsim.inference.setup.ServeSetup.budget_counts_decode`).
    """
    if batch_per_instance is not None:            # one number, or one per plan
        p, b = _expand(plans, [1.0])
        b = np.broadcast_to(np.asarray(batch_per_instance, dtype=np.float64), b.shape).copy()
        n_b = 1
    else:
        grid = [batch_per_chip] if batch_per_chip is not None else DECODE_BATCH_GRID
        p, bpc = _expand(plans, grid)
        b = bpc * p.chips
        n_b = len(grid)
    if max_batch_per_instance is not None or max_seqs_per_replica is not None:
        b = np.minimum(b, running_cap(p, max_batch_per_instance, max_seqs_per_replica))
    if budget_tokens_per_seq is not None and s.budget_counts_decode:
        b = np.minimum(b, token_budget_cap(p, s.token_budget, budget_tokens_per_seq))
    if max_batch_per_chip is not None:
        b = np.minimum(b, float(max_batch_per_chip) * p.chips)
    b_share = b                                    # sequences per instance averaged over the cluster
    if max_batch_per_chip is not None and sequences is not None:
        b = idle_share_batch(b, p.pp * p.dp, sequences)
    rnd, br = step_time(s, p, b, context, "decode")
    tpot = rnd / s.tokens_per_step
    tps = b_share / tpot / p.chips
    if prefill_s_per_seq_chip is not None:        # one number, or one per plan (last axis)
        x = np.asarray(prefill_s_per_seq_chip, dtype=np.float64)
        tpot = tpot + b * (np.repeat(x, n_b, axis=-1) if x.ndim else x) / p.chips
    w = weight_bytes_per_chip(s, p, include_mtp=bool(s.mtp_draft))
    kv = kv_bytes_per_chip(s, p, b, context if memory_context is None else memory_context)
    tot = w + kv + s.calib.buffer_bytes
    fits = tot <= s.chip.hbm_bytes * hbm_fraction
    work = b >= p.pp * p.dp - 1e-9
    busy = fits & work
    ok = busy & (tpot <= tpot_bound_s * (1 + 1e-9)) if tpot_bound_s is not None else busy
    mem = {"weights": w, "kv_cache": kv, "buffers": np.full_like(w, s.calib.buffer_bytes), "total": tot}
    return Evaluated(p, b, tpot, tps, rnd, br, mem, fits, ok, *_pick(tps, tpot, ok), busy=busy, work=work,
                     per_plan=n_b)


def idle_share_batch(share, replicas, sequences):
    """Sequences one serving instance runs when a fixed job of ``sequences`` spreads over the cluster's instances
    with ``share`` each on average, and each instance needs ``replicas`` (its ``pp x dp`` micro-batches) to keep
    every replica busy: ``max(share, min(replicas, sequences))``. A share below ``replicas`` means fewer
    sequences than replicas: the job fills ``sequences / replicas`` instances and the rest sit idle (a vLLM
    server with no request waits), instead of the job being refused; a job with fewer sequences than one
    instance's replicas leaves replicas idle inside it (``ok`` refuses that plan, a smaller one fits).
    Example: 4 samples on 64 chips, one chip per instance (pp = dp = 1): share 1/16 -> 1 sequence each on 4
    instances, 60 chips idle."""
    return np.maximum(share, np.minimum(replicas, float(sequences)))


def evaluate_prefill(s: ServeSetup, plans: ServePlans, input_len: int, *, tokens_per_chip=None,
                     ttft_bound_s=None, all_logits: bool = False, max_batch_per_instance=None,
                     max_seqs_per_replica=None, prompts_per_instance=None) -> Evaluated:
    """Prefill candidates: plans x prompt-tokens-per-chip grid (or the given amount; or ``prompts_per_instance``,
    one number or an array with one per plan: a round of exactly that many prompts, one candidate per plan).

    A round of fewer prompt tokens than a prompt has (``b`` below one prompt per data-parallel replica, ``dp``)
    is a chunk of each prompt (chunked prefill: vLLM's ``max_num_batched_tokens``, SGLang's
    ``--chunked-prefill-size``, Sarathi-Serve, OSDI'24): the prompt's first token comes after ``dp / b`` rounds,
    so the time to first token is ``round x max(1, dp / b)``, and the replica holds the KV cache of its whole
    prompt by then, ``max(b, dp)`` prompts of ``input_len`` tokens per instance. (A 1M-token prompt of Llama 3.1
    8B on one H100 in rounds of 65,536 tokens was shown a TTFT of one round, 1/16 of the prompt, and 8 GiB of its
    128 GiB of KV cache.) Throughput is unchanged: a chunk's attention over the prompt so far averages to the
    prompt's ``b``-weighted share.

    With ``pp`` stages a round of ``c`` budget steps (:func:`~trainsim.inference.step.prefill_round_chunks`) is
    ``c x pp`` stage slots of the pipeline in its steady state, one micro-batch chunk entering per slot. A prompt
    cut into ``k = c x max(1, pp x dp / b)`` pieces (chunks, and micro-batches where a replica has fewer prompts
    than stages) is done when its last piece leaves the last stage, ``k + pp - 1`` slots after its first piece
    entered (the fill a pipeline schedule pays, :func:`~trainsim.inference.step.pipeline_fill_rounds`), so
    ``TTFT = round x (max(1, pp x dp / b) + (pp - 1) / c) / pp``: one round for whole prompts at ``c = 1``, and
    ``round x max(1, dp / b)`` at ``pp = 1``. (Llama 3.1 70B in FP8, one 32,768-token prompt on 16 H800 at tp 1 x
    pp 16: 16 pieces of 2,048 tokens, 31 slots, was shown a TTFT of one round, 0.39 s, the time of 16 slots, and
    met a 0.5 s bound, qa32b.)

    A round holds at most the prompts the server runs (:func:`running_cap`: the stated ``max_batch_per_instance``,
    else ``max_seqs_per_replica`` per data-parallel replica): every prompt of a round is a running request, so
    vLLM's ``max_num_seqs`` (SGLang's ``--max-running-requests``) caps it as it caps decode. (``trainsim infer`` of
    1-token prompts on 8 H100 batched 65,536 prompts per chip in one round.)"""
    if prompts_per_instance is not None:           # one number, or one per plan
        p, _ = _expand(plans, [1.0])
        b = np.broadcast_to(np.asarray(prompts_per_instance, dtype=np.float64), p.chips.shape).copy()
        n_b = 1
    else:
        grid = [tokens_per_chip] if tokens_per_chip is not None else PREFILL_TOKENS_GRID
        p, tpc = _expand(plans, grid)
        b = tpc * p.chips / float(input_len)        # prompts per instance
        n_b = len(grid)
    if max_batch_per_instance is not None or max_seqs_per_replica is not None:
        b = np.minimum(b, running_cap(p, max_batch_per_instance, max_seqs_per_replica))
    rnd, br = step_time(s, p, b, input_len, "prefill", input_len=input_len, all_logits=all_logits)
    tps = b * input_len / rnd / p.chips
    chunks = prefill_round_chunks(s, p, b, input_len)
    ttft = rnd * (np.maximum(1.0, p.pp * p.dp / b) / p.pp + pipeline_fill_rounds(p.pp, chunks))
    w = weight_bytes_per_chip(s, p)
    kv = kv_bytes_per_chip(s, p, np.maximum(b, p.dp), input_len)
    # activations are held for one step's tokens: a round chunked under the stack's budget holds one chunk's
    act = prefill_activation_bytes(s, p, b / chunks, input_len)
    tot = w + kv + act + s.calib.buffer_bytes
    fits = tot <= s.chip.hbm_bytes
    work = b >= p.pp * p.dp * (1.0 - 1e-9) / max(input_len, 1)
    busy = fits & work
    ok = busy & (ttft <= ttft_bound_s * (1 + 1e-9)) if ttft_bound_s is not None else busy
    mem = {"weights": w, "kv_cache": kv, "activations": act, "buffers": np.full_like(w, s.calib.buffer_bytes),
           "total": tot}
    return Evaluated(p, b, ttft, tps, rnd, br, mem, fits, ok, *_pick(tps, ttft, ok), busy=busy, work=work,
                     per_plan=n_b)
