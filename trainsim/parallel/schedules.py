"""Pipeline schedules: the one registry of every schedule trainsim knows.

Each :class:`Schedule` states its name (the run spec's ``plan.schedule``), its code (the ``schedule`` column of
:class:`~trainsim.parallel.plan.Plans`, its index in :data:`SCHEDULES`), its validity rule, its bubble formula,
its parameter copies, its micro-batches in flight and how the flag emitters spell it. Which training frameworks
offer it is data with sources (``catalog/data/framework_schedules.yaml``, read by
:func:`trainsim.frameworks.offering`, which checks every name there against this registry). Nothing else in the
package spells a schedule name or compares a schedule code to an integer: callers use :func:`code`,
:func:`is_` and the vectorised masks below.

With m micro-batches per step, p stages, v virtual stages per rank and t = forward + backward time of one
micro-batch on the slowest stage:

* 1F1B (PipeDream-Flush; Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
  Using Megatron-LM", sec. 2.2.1): bubble (p - 1) t, i.e. a fraction (p - 1) / (m + p - 1) of the step; the
  first stage holds p micro-batches of activations.
* Interleaved 1F1B with v virtual stages (same paper, sec. 2.2.2): bubble (p - 1) t / v, fraction
  (p - 1) / (v m + p - 1); activations of rank 0 x (1 + (p - 1) / (p v)) (Korthikanti et al. 2022, sec. 4.2.3).
  Megatron-LM before Megatron-Core 0.10 needs the micro-batches to be a multiple of p; since then the forwards run
  in groups of N micro-batches per model chunk (:func:`microbatch_group`), which needs only p <= N <= m.
* Zero-bubble ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism", sec. 3): splitting backward into input
  and weight gradients (F = B = W) leaves (p - 1)(F + B - 2W) = (p - 1) t / 3; memory as 1F1B.
* DualPipe (DeepSeek-V3 technical report, sec. 3.2.1, Table 2): bubble (p/2 - 1)(F&B + B - 3W). Table 2 uses
  one B for every schedule, the full backward (1F1B's bubble there is (p - 1)(F + B)), so with F = W = t/3,
  B = 2t/3 and an overlapped forward-and-backward chunk F&B = F + B = t: (p/2 - 1)(t + 2t/3 - t) = (p/2 - 1) 2t/3;
  the same reading gives ZB-H1's (p - 1)(F + B - 2W) = (p - 1) t/3 above. Rank i holds stages i and p - 1 - i
  (two copies of the parameters), p + 1 micro-batches of activations; it needs an even p and at least p
  micro-batches, and it overlaps the expert all-to-all of one chunk with the computation of the other.
* All-forward-all-backward (AFAB; GPipe's schedule, Huang et al. 2019, "GPipe", arXiv 1811.06965, sec. 2.3): every
  micro-batch's forward, then every backward; the same bubble as 1F1B, (p - 1) t, but each rank holds the
  activations of all m micro-batches of the step, with or without a pipeline (huggingface/nanotron
  src/nanotron/parallel/pipeline_parallel/engine.py AllForwardAllBackwardPipelineEngine.train_batch_iter at
  7bc99232, Jun 2025: the "All forward" loop over the step's micro-batches, then the "All backward" loop; the
  trainer runs every step through the pipeline engine, pp 1 included, trainer.py training_step).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..errors import TrainsimError

Array = np.ndarray


def _bubble_1f1b(p: Array, v: Array, t: Array) -> Array:
    """(p - 1) t (Narayanan et al. 2021, sec. 2.2.1)."""
    return (p - 1.0) * t


def _bubble_interleaved(p: Array, v: Array, t: Array) -> Array:
    """(p - 1) t / v (Narayanan et al. 2021, sec. 2.2.2)."""
    return (p - 1.0) * t / v


def _bubble_zb_h1(p: Array, v: Array, t: Array) -> Array:
    """(p - 1)(F + B - 2W) = (p - 1) t / 3 with F = B = W (Qi et al. 2023, sec. 3)."""
    return (p - 1.0) * t / 3.0


def _bubble_dualpipe(p: Array, v: Array, t: Array) -> Array:
    """(p/2 - 1)(F&B + B - 3W) = (p/2 - 1) 2t/3 (DeepSeek-V3 report, Table 2; see the module docstring)."""
    return np.maximum(p / 2.0 - 1.0, 0.0) * 2.0 * t / 3.0


def _in_flight_1f1b(p: Array, v: Array, m: Array, r: Array) -> Array:
    """min(m, p - r): p - r - 1 warm-up forwards before rank r's first backward (Megatron-Core
    ``pipeline_parallel/schedules.py``, forward_backward_pipelining_without_interleaving); ZB-H1 the same."""
    return np.minimum(m, np.maximum(p - r, 1.0))


def _in_flight_interleaved(p: Array, v: Array, m: Array, r: Array) -> Array:
    """min(m v, 2 (p - r - 1) + (v - 1) N + 1) / v, N = :func:`microbatch_group`: rank r's warm-up forwards plus
    the one the steady state runs before each backward, each a chunk of 1/v of the rank's layers (Megatron-Core
    ``pipeline_parallel/schedules.py`` get_pp_rank_microbatches: ``num_warmup_microbatches = (pipeline_parallel_size
    - pipeline_parallel_rank - 1) * 2 + (num_model_chunks - 1) * microbatch_group_size_per_vp_stage``, capped at
    the m v chunk-forwards of the step; NVIDIA/Megatron-LM 4295be1a6c, 1 Nov 2024, and unchanged at d98e8a6). With
    N = p (the default, and the only group before 4295be1a6c), rank 0: p + (p - 1) / v (Korthikanti et al. 2022
    sec. 4.2.3)."""
    return np.minimum(m * v, interleaved_warmup(p, v, m, r) + 1.0) / v


def interleaved_warmup(p: Array, v: Array, m: Array, r: Array | float = 0.0) -> Array:
    """Rank r's warm-up chunk-forwards under the interleaved schedule, min(m v, 2 (p - r - 1) + (v - 1) N),
    N = :func:`microbatch_group` (Megatron-Core ``num_warmup_microbatches``, see :func:`_in_flight_interleaved`)."""
    return np.minimum(m * v, 2.0 * np.maximum(p - r - 1.0, 0.0) + (v - 1.0) * microbatch_group(p, m))


def _in_flight_afab(p: Array, v: Array, m: Array, r: Array) -> Array:
    """m: every forward of the step runs before the first backward, on every rank (nanotron engine.py
    AllForwardAllBackwardPipelineEngine at 7bc99232)."""
    return np.broadcast_to(np.asarray(m, dtype=np.float64), np.broadcast(p, v, m, r).shape).copy()


def _in_flight_dualpipe(p: Array, v: Array, m: Array, r: Array) -> Array:
    """p + 1 micro-batches on every rank (DeepSeek-V3 report, Table 2), scaled down when m < p."""
    return np.minimum(m, p) * (p + 1.0) / p


BubbleFn = Callable[[Array, Array, Array], Array]
InFlightFn = Callable[[Array, Array, Array, Array], Array]


@dataclass(frozen=True)
class Schedule:
    """One pipeline schedule and every rule trainsim applies to it.

    ``virtual_stages``: needs vpp > 1 (and pp > 1); every other schedule needs vpp = 1. ``needs_pp``: needs
    pp > 1 (1F1B and interleaved with pp = 1 mean no pipeline). ``holds_all_microbatches``: every forward of the
    step runs before the first backward, so a rank holds all m micro-batches even without a pipeline (AFAB).
    ``batch_multiple_of_pp``: the micro-batches per
    step must be a multiple of pp. ``even_pp_min_m``: needs an even pp and at least pp micro-batches.
    ``param_copies``: copies of a stage's parameters per rank. ``mirrored_stages``: rank i holds stages i and
    p - 1 - i (so rank 0 holds the first and the last stage). ``overlaps_ep_comm``: the schedule overlaps the
    expert all-to-all with computation (the calibration's ``ep_overlap_dualpipe``). ``mindspeed_dualpipev``: MindSpeed
    runs it as ``--schedules-method dualpipev`` with ``--moe-fb-overlap``, whose rules a stack with the profile flag
    ``dualpipev_fb_overlap`` applies (parallel/validity.py dualpipev_fb_overlap_ok, perf/step.py). ``megatron`` /
    ``mindspeed`` / ``torchtitan``: the emitter's spelling (extra arguments or class name), None where that
    stack has no such schedule; ``emit_note``: a note the emitter adds."""

    name: str
    title: str
    bubble: BubbleFn
    in_flight: InFlightFn
    source: str
    virtual_stages: bool = False
    needs_pp: bool = False
    holds_all_microbatches: bool = False
    batch_multiple_of_pp: bool = False
    even_pp_min_m: bool = False
    param_copies: float = 1.0
    mirrored_stages: bool = False
    overlaps_ep_comm: bool = False
    mindspeed_dualpipev: bool = False
    megatron: tuple[str, ...] | None = ()
    mindspeed: tuple[str, ...] | None = ()
    torchtitan: str | None = None
    emit_note: str | None = None


REGISTRY: tuple[Schedule, ...] = (
    Schedule("1f1b", "1F1B", _bubble_1f1b, _in_flight_1f1b,
             "Narayanan et al. 2021 (arXiv 2104.04473), sec. 2.2.1", torchtitan="1F1B"),
    Schedule("interleaved", "interleaved 1F1B", _bubble_interleaved, _in_flight_interleaved,
             "Narayanan et al. 2021 (arXiv 2104.04473), sec. 2.2.2; Korthikanti et al. 2022, sec. 4.2.3",
             virtual_stages=True, batch_multiple_of_pp=True, torchtitan="Interleaved1F1B"),
    Schedule("zero-bubble", "zero-bubble ZB-H1", _bubble_zb_h1, _in_flight_1f1b,
             "Qi et al. 2023, 'Zero Bubble Pipeline Parallelism' (arXiv 2401.10241), sec. 3",
             needs_pp=True, megatron=None, mindspeed=None, torchtitan="InterleavedZeroBubble"),
    Schedule("dualpipe", "DualPipe", _bubble_dualpipe, _in_flight_dualpipe,
             "DeepSeek-V3 technical report (arXiv 2412.19437), sec. 3.2.1, Table 2",
             needs_pp=True, even_pp_min_m=True, param_copies=2.0, mirrored_stages=True, overlaps_ep_comm=True,
             mindspeed_dualpipev=True, megatron=None, mindspeed=("--schedules-method dualpipev",),
             emit_note="DualPipeV (one weight copy) stands in for DualPipe"),
    Schedule("afab", "all-forward-all-backward (GPipe)", _bubble_1f1b, _in_flight_afab,
             "Huang et al. 2019, 'GPipe' (arXiv 1811.06965), sec. 2.3; huggingface/nanotron "
             "src/nanotron/parallel/pipeline_parallel/engine.py AllForwardAllBackwardPipelineEngine (7bc99232)",
             holds_all_microbatches=True, megatron=None, mindspeed=None),
)

#: schedule names in code order: ``SCHEDULES[code]`` is the name of the schedule with that code
SCHEDULES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
_BY_NAME = {s.name: s for s in REGISTRY}


def get(name: str) -> Schedule:
    """The registry entry of schedule ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in _BY_NAME:
        raise TrainsimError(f"expected one of {', '.join(SCHEDULES)}, got {name!r}", field="plan.schedule")
    return _BY_NAME[name]


def code(name: str) -> int:
    """The ``Plans.schedule`` code of schedule ``name``."""
    get(name)
    return SCHEDULES.index(name)


def name_of(schedule_code: int) -> str:
    """The schedule name of a numeric schedule code."""
    return SCHEDULES[int(schedule_code)]


def default_name(vpp: int) -> str:
    """Megatron-Core's schedule for an unnamed one: interleaved when vpp > 1, else 1F1B."""
    return next(s.name for s in REGISTRY if s.virtual_stages == (vpp > 1) and not s.needs_pp)


def names_where(flag: str) -> tuple[str, ...]:
    """Names of the schedules whose boolean attribute ``flag`` is true (for rule texts and candidate lists)."""
    return tuple(s.name for s in REGISTRY if getattr(s, flag))


def _column(attr: str, dtype: type) -> Array:
    return np.asarray([getattr(s, attr) for s in REGISTRY], dtype=dtype)


def _present(schedule: ArrayLike) -> list[tuple[int, Schedule]]:
    """(code, schedule) of the schedules that occur in the codes ``schedule``: a per-schedule rule chosen with
    ``np.where(schedule == code, ...)`` is evaluated only for those (a schedule absent from every plan selects
    nothing; the search's plans hold two or three of the registry's schedules)."""
    seen = np.zeros(len(REGISTRY), dtype=bool)
    seen[np.asarray(schedule, dtype=np.int64)] = True
    return [(c, s) for c, s in enumerate(REGISTRY) if seen[c]]


def _mask(attr: str, schedule: ArrayLike) -> Array:
    return _column(attr, bool)[np.asarray(schedule, dtype=np.int64)]


def is_(schedule: ArrayLike, name: str) -> Array:
    """True where the codes ``schedule`` are schedule ``name``."""
    return np.asarray(schedule) == code(name)


def virtual_stages(schedule: ArrayLike) -> Array:
    """True where the schedule needs vpp > 1 (interleaved)."""
    return _mask("virtual_stages", schedule)


def needs_pp(schedule: ArrayLike) -> Array:
    """True where the schedule needs pp > 1 (zero-bubble, DualPipe)."""
    return _mask("needs_pp", schedule)


def batch_multiple_of_pp(schedule: ArrayLike) -> Array:
    """True where the micro-batches per step must be a multiple of pp (interleaved)."""
    return _mask("batch_multiple_of_pp", schedule)


def even_pp_min_m(schedule: ArrayLike) -> Array:
    """True where the schedule needs an even pp and at least pp micro-batches (DualPipe)."""
    return _mask("even_pp_min_m", schedule)


def mirrored_stages(schedule: ArrayLike) -> Array:
    """True where rank i holds stages i and p - 1 - i (DualPipe)."""
    return _mask("mirrored_stages", schedule)


def mindspeed_dualpipev(schedule: ArrayLike) -> Array:
    """True where MindSpeed runs the schedule as dualpipev with fb-overlap (DualPipe)."""
    return _mask("mindspeed_dualpipev", schedule)


def overlaps_ep_comm(schedule: ArrayLike) -> Array:
    """True where the schedule overlaps the expert all-to-all with computation (DualPipe)."""
    return _mask("overlaps_ep_comm", schedule)


def bubble_time(schedule: Array, pp: Array, vpp: Array, t_mb: Array) -> Array:
    """Idle time per step of the slowest stage, given t_mb = forward + backward of one micro-batch: each
    schedule's ``bubble`` formula (module docstring), 0 where pp = 1."""
    p = pp.astype(np.float64)
    v = np.maximum(vpp, 1).astype(np.float64)
    b = np.zeros(np.broadcast(schedule, p, v, t_mb).shape)
    for c, s in _present(schedule):
        b = np.where(schedule == c, s.bubble(p, v, t_mb), b)
    return np.where(pp > 1, b, 0.0)


def pipeline_calls(global_batch_seqs: float, dp: Array, local_batch_seqs: int | None) -> Array:
    """Calls of the pipeline schedule per step, each a full fill and drain: one where the framework runs all of the
    step's micro-batches in one schedule (Megatron-Core's forward_backward_func; ``local_batch_seqs`` None), else
    global batch / (dp x local batch), at least 1. NeMo AutoModel's gradient-accumulation loop calls
    ``schedule.step`` once per local batch of ``step_scheduler.local_batch_size`` sequences (NVIDIA-NeMo/Automodel
    809f1993, nemo_automodel/recipes/llm/benchmark.py ``for ga_step_idx in range(ga_steps)`` ->
    train_ft.py ``_forward_backward_step`` -> ``self.pp.info.schedule.step``), and torch.distributed.pipelining
    schedules drain every call, so the bubble (:func:`bubble_time`) recurs once per call."""
    dp_f = np.asarray(dp, dtype=np.float64)
    if local_batch_seqs is None:
        return np.ones_like(dp_f)
    return np.maximum(global_batch_seqs / (dp_f * float(local_batch_seqs)), 1.0)


def microbatch_group(pp: ArrayLike, m: ArrayLike) -> Array:
    """N, the micro-batches the interleaved schedule runs per model chunk before moving to the next chunk
    (``--microbatch-group-size-per-virtual-pipeline-stage``), for p = ``pp`` stages and m = ``m`` micro-batches per
    step: the smallest N that Megatron-Core accepts,

        p <= N <= m  and  (m mod N = 0  or  m mod N >= p),

    NVIDIA/Megatron-LM megatron/core/pipeline_parallel/schedules.py, forward_backward_pipelining_with_interleaving
    (4295be1a6c 'tunable schedule with overlapping', 1 Nov 2024; first released in core_v0.10.0; unchanged at
    d98e8a6): ``microbatch_group_size_per_vp_stage > num_microbatches or ... < pipeline_parallel_size`` raises
    ValueError, and a last group ``num_microbatches % microbatch_group_size_per_vp_stage`` of 1 .. p - 1
    micro-batches raises RuntimeError ('dependency bubbles'); get_schedule_table runs the micro-batches in groups
    of N, the last group holding the rest. The default N is p (model_parallel_config.py __post_init__), which is
    valid exactly when p divides m, so a plan whose m is a multiple of p keeps N = p; otherwise the run must have
    set N, and the smallest valid N holds the fewest chunk-forwards in flight (:func:`_in_flight_interleaved`) at
    the same bubble (p - 1) t / v (no dependency stall once every group has at least p micro-batches: each
    chunk-forward of rank 0 waits for the previous chunk of the same micro-batch, which left rank 0 N >= p
    chunk-forwards earlier). The Llama 3 report (arXiv 2407.21783 sec. 3.3.2, Figure 6) describes the same
    flexible N. m < p has no valid N: p is returned (the in-flight counts cap at m v). Vectorised over the
    distinct (p, m) pairs whose m p does not divide; the loop runs over candidate N, not over plans."""
    p = np.asarray(pp, dtype=np.float64)
    mm = np.rint(np.asarray(m, dtype=np.float64))
    p, mm = np.broadcast_arrays(p, mm)
    n = p.copy()
    odd = (mm > p) & (np.mod(mm, np.maximum(p, 1.0)) != 0)
    if np.any(odd):
        # one scalar key per (p, m) pair (exact in float64: p <= 2^11, m < 2^40), unique in 1-D (np.unique with
        # axis=1 sorts structured rows, ~5x slower on the search's chunks)
        keys, inv = np.unique(p[odd] * 2.0 ** 40 + mm[odd], return_inverse=True)
        P = np.floor(keys / 2.0 ** 40)
        M = keys - P * 2.0 ** 40
        N = P.copy()
        todo = np.ones(P.shape, dtype=bool)
        while np.any(todo):
            r = np.mod(M, N)
            todo &= ~((r == 0) | (r >= P))
            N = np.where(todo, N + 1.0, N)
        n = n.copy()
        n[odd] = N[np.asarray(inv).reshape(-1)]
    return n


def microbatches_in_flight(schedule: Array, pp: Array, vpp: Array, m: Array, rank: Array | float = 0) -> Array:
    """Micro-batches of activations pipeline rank ``rank`` holds at its peak, in units of that rank's layers:
    each schedule's ``in_flight`` rule (module docstring), 1 where pp = 1 except for a schedule that holds all
    the step's micro-batches without a pipeline too (``holds_all_microbatches``, AFAB: m)."""
    p = pp.astype(np.float64)
    v = np.maximum(vpp, 1).astype(np.float64)
    r = np.asarray(rank, dtype=np.float64)
    f = np.zeros(np.broadcast(schedule, p, v, m, r).shape)
    for c, s in _present(schedule):
        f = np.where(schedule == c, s.in_flight(p, v, m, r), f)
    return np.where((pp > 1) | _mask("holds_all_microbatches", schedule), f, 1.0)


def dp_sync_window(schedule: Array, pp: Array, vpp: Array, m: Array) -> Array:
    """Span, in units of one micro-batch's backward (or forward) of the stage, that the data-parallel gradient
    reduce (or next step's parameter gather) can hide behind.

    Without virtual stages every layer of the stage finishes its last backward in the last micro-batch: the
    buckets reduce behind that one backward, span 1. Under the interleaved schedule Megatron-Core launches each
    model chunk's gradient sync when that chunk's last micro-batch's backward is done and its parameter sync before
    that chunk's first forward (megatron/core/pipeline_parallel/schedules.py,
    forward_backward_pipelining_with_interleaving: ``grad_sync_func[chunk]`` after
    ``is_last_microbatch_for_model_chunk``, ``param_sync_func[chunk]`` at ``is_first_microbatch_for_model_chunk``).
    The cool-down runs the chunks' backwards in groups of min(N, m) micro-batches (N = :func:`microbatch_group`,
    p by default), so consecutive chunks finish min(N, m) chunk-backwards apart, each 1/v of the stage's: the first
    chunk's sync can start (v - 1) min(N, m) chunk-backwards before the end, span (1 + (v - 1) min(N, m)) / v (the
    same by symmetry for the warm-up's forwards), never more than the m micro-batches of the step. 1 where
    pp = 1."""
    p = pp.astype(np.float64)
    v = np.maximum(vpp, 1).astype(np.float64)
    mm = np.asarray(m, dtype=np.float64)
    span = np.minimum((1.0 + (v - 1.0) * np.minimum(microbatch_group(p, mm), mm)) / v, np.maximum(mm, 1.0))
    return np.where(virtual_stages(schedule) & (pp > 1) & (vpp > 1), span, 1.0)


def fill_drain_transfers(schedule: Array, pp: Array, vpp: Array, m: Array) -> Array:
    """Stage-boundary transfers per schedule call that Megatron-Core's interleaved schedule waits for, one after
    another, on its first pipeline rank: 2 W, W = :func:`interleaved_warmup` of rank 0, min(m v, 2 (p - 1) +
    (v - 1) N) (N = :func:`microbatch_group`); 0 for the other schedules and where pp = 1 or vpp = 1.

    W is rank 0's warm-up chunk-forwards (``num_warmup_microbatches``, :func:`_in_flight_interleaved`); its cool-down
    runs as many chunk-backwards. Neither phase overlaps its transfers: NVIDIA/Megatron-LM d98e8a6
    megatron/core/pipeline_parallel/schedules.py forward_backward_pipelining_with_interleaving calls
    ``send_forward_recv_forward(output_tensor, recv_prev=...)`` after each warm-up forward and
    ``send_backward_recv_backward(input_tensor_grad, recv_next=...)`` after each cool-down backward without
    ``overlap_p2p_comm=True``, so each waits for its send and for the receive of the next chunk's input before the
    next chunk starts, unless ``--overlap-p2p-communication-warmup-flush`` (model_parallel_config.py
    ``overlap_p2p_comm_warmup_flush``, default False; added in 4295be1a6c, 1 Nov 2024). Before that commit
    (core_r0.8.0) the warm-up posted the same transfers with ``overlap_p2p_comm=True`` and waited on them at the top of
    the next iteration, before its forward, with nothing in between. Only the 1F1B steady state between them
    overlaps its transfers with compute (``pp_overlap_interleaved``, perf/step.py). Without virtual stages every
    transfer already waits (``pp_overlap``), inside the per-micro-batch time the bubble formula multiplies."""
    p = pp.astype(np.float64)
    v = np.maximum(vpp, 1).astype(np.float64)
    w = interleaved_warmup(p, v, np.asarray(m, dtype=np.float64))
    return np.where(virtual_stages(schedule) & (pp > 1) & (vpp > 1), 2.0 * w, 0.0)


def interleaved_chunk_in_flight(W: ArrayLike, pp: ArrayLike, v: ArrayLike, chunk: ArrayLike, m: ArrayLike) -> Array:
    """Micro-batches of model chunk ``chunk`` (0 .. v - 1) a rank holds when it holds ``W`` chunk-forwards under the
    interleaved schedule with ``m`` micro-batches per step. Megatron-Core runs the forwards in groups of N
    micro-batches per chunk (chunk 0 of group 0, chunk 1 of group 0, ..., then chunk 0 of group 1;
    ``get_schedule_table``), N = :func:`microbatch_group` (p by default, at least p), so chunk k holds
    clip(W - k N, 0, N) of the first group and chunk 0 also clip(W - v N, 0, N) of the second (which holds at
    least p micro-batches); the counts sum to W (W <= 2 p - 1 + (v - 1) N <= (v + 1) N - 1). The same grouping
    sets :func:`dp_sync_window`."""
    w, p, vv, k = (np.asarray(x, dtype=np.float64) for x in (W, pp, v, chunk))
    n = microbatch_group(p, m)
    first = np.clip(w - k * n, 0.0, n)
    return first + np.where(k == 0, np.clip(w - vv * n, 0.0, n), 0.0)


def param_copies(schedule: ArrayLike) -> Array:
    """Copies of a stage's parameters per rank: 2 for DualPipe (DeepSeek-V3 report, Table 2), else 1."""
    return _column("param_copies", np.float64)[np.asarray(schedule, dtype=np.int64)]
