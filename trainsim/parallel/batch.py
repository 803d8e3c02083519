"""How a plan meets the cluster and the batch as people state them: a batch target with a tolerance, and chips
that may be left idle.

Batch. Megatron-LM needs the global batch B (sequences) to be a multiple of dp x micro_batch, and, for the
interleaved schedule, the number of micro-batches m = B / (dp x mb) to be a multiple of pp on a stack before
Megatron-Core 0.10 (megatron/core/num_microbatches_calculator.py; megatron/core/pipeline_parallel/schedules.py
before NVIDIA/Megatron-LM 4295be1a6c); a stack with micro-batch groups (the profile's ``vpp_microbatch_groups``,
:func:`trainsim.parallel.schedules.microbatch_group`) needs only m >= pp, checked by the validity rules. A stated
batch is a target: each plan uses the nearest batch its unit u = dp x mb (x pp when interleaved without micro-batch
groups) divides,

    B_used = u x max(k_min, round(B / u)),   valid when |B_used - B| <= tol x B,

k_min the fewest multiples that give the schedule the micro-batches it needs (pp for DualPipe and for the
interleaved schedule in micro-batch groups, else 1: :func:`plan_batch`),

so ``tol = 0`` is Megatron's exact divisibility. Default tolerance: 5% when the batch is stated in tokens
("4M", "64M": a round number, never an exact count of sequences), 0 when it is stated in sequences
(Megatron's ``--global-batch-size``).

Idle chips. A plan uses tp x pp x cp x dp chips; it may leave chips idle (they are still paid for). Counts tried
besides all the chips: for j = 0, 1, 2, ... the largest number of whole scale-up domains that is a multiple of 2^j
(65 CloudMatrix pods -> 65, 64; 2,600 -> 2,600, 2,592, 2,560, 2,048), keeping only counts that use at least ``1 -
MAX_IDLE_FRACTION`` of the chips. Each candidate has more factors of two than the last, so power-of-two tp, cp and
dp find a count they factor. Besides, every search tries the whole-domain counts above the same floor on which the
batch splits over more data-parallel replicas than on every larger count (:func:`split_counts`: 96 H100 and 1,000
sequences -> 80, dp 40, where 96 splits it by dp 8 at most), so that the free search reaches the idle counts a
plan's stated degrees would (``plan --fix tp=2,pp=1``). When a plan that states its degrees (a fixed tp, pp, cp or
dp: ``plan --against tp=8,pp=1``, ``--fix``, a partial plan to ``estimate``) has no valid completion on those
counts, the search (:func:`trainsim.search.search`) tries again with the largest counts of whole domains that their
product u divides too, multiples of lcm(u, domain) down to the same floor (at most ``MAX_UNIT_COUNTS`` of them): on
100 H100 (12 servers and 4 chips) tp 8 may use 96, 88 or 80 chips, so a batch of 1,000 sequences that dp 12 cannot
split runs at dp 10 on 80 chips with 20 idle, where the 2^j rule alone tried only 100 and 96.

These counts are the search's space: what it counts (plans evaluated, rejections) and searches for the Pareto
front. They are not a bound on the answer: a plan on fewer chips runs on a larger cluster too, the rest idle, so
the search's best-plan pass also tries the whole-domain counts below them (:func:`lower_counts`: up to 32 domains
down, and as far as a count could still hold a faster plan: :func:`trainsim.search.search`), so on a cluster of up
to 32 domains the best answer on N chips is never slower than on M < N (112 H100 and 1,000 sequences: dp 40 on 80
chips, 71% of them, as on 104; the usual counts 112 and 96 split the batch by dp 8 at most).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from .schedules import batch_multiple_of_pp, even_pp_min_m

DEFAULT_TOKENS_TOLERANCE = 0.05   # a batch stated in tokens is a round target
MAX_IDLE_FRACTION = 0.25          # the usual counts use at least 75% of the chips (lower_counts: the rest)
MAX_SPLIT_CELLS = 1 << 24        # counts x divisor candidates split_counts may test (memory: 16M cells)
MAX_UNIT_COUNTS = 16              # counts a stated plan's degrees divide, tried besides the 2^j ones (search size)
MAX_LOWER_COUNTS = 32             # whole-domain counts below the usual ones the search's best-plan pass may try


def fit_batch(target_seqs: ArrayLike, unit: ArrayLike, min_multiple: ArrayLike = 1) -> np.ndarray:
    """Nearest multiple of ``unit`` to ``target_seqs``, at least ``min_multiple`` (>= 1) of it (vectorised; ties
    round half to even)."""
    unit = np.asarray(unit, dtype=np.int64)
    k = np.maximum(np.maximum(1, np.asarray(min_multiple, dtype=np.int64)),
                   np.rint(np.asarray(target_seqs, dtype=np.float64) / unit)).astype(np.int64)
    return k * unit


def plan_batch(target_seqs: ArrayLike, dp: ArrayLike, mb: ArrayLike, pp: ArrayLike, schedule: ArrayLike,
               microbatch_groups: bool = False) -> np.ndarray:
    """The global batch (sequences) each plan uses for a stated target: the multiple of its :func:`batch_unit`
    nearest the target, but at least the fewest micro-batches its schedule runs -- pp micro-batches of dp x mb for
    DualPipe (``even_pp_min_m``) and for the interleaved schedule in micro-batch groups (m >= pp: validity rules 10
    and 11) -- so a plan whose nearest multiple falls short of pp micro-batches takes pp of them, which the
    tolerance then accepts or refuses as any batch (target 32,768 sequences, dp x mb = 4,608, pp 8: 7 micro-batches
    = 32,256 fall short of pp, 8 = 36,864 are 12.5% above the target; the nearest multiple alone refused the plan
    under any tolerance)."""
    u = batch_unit(dp, mb, pp, schedule, microbatch_groups)
    per = np.asarray(dp, dtype=np.int64) * np.asarray(mb, dtype=np.int64)
    pp = np.asarray(pp, dtype=np.int64)
    need = even_pp_min_m(schedule) | (bool(microbatch_groups) & batch_multiple_of_pp(schedule))
    k_min = np.where(need, -(-pp * per // np.maximum(u, 1)), 1)
    return fit_batch(target_seqs, u, k_min)


def batch_unit(dp: ArrayLike, mb: ArrayLike, pp: ArrayLike, schedule: ArrayLike,
               microbatch_groups: bool = False) -> np.ndarray:
    """Sequences a plan's global batch must be a multiple of: dp x mb, times pp for a schedule that needs the
    micro-batches to be a multiple of pp (interleaved; :mod:`trainsim.parallel.schedules`) on a stack without
    micro-batch groups (``microbatch_groups`` False: the profile's ``vpp_microbatch_groups``)."""
    u = np.asarray(dp, dtype=np.int64) * np.asarray(mb, dtype=np.int64)
    if microbatch_groups:
        return u
    return np.where(batch_multiple_of_pp(schedule), u * np.asarray(pp, dtype=np.int64), u)


def within(batch: ArrayLike, target_seqs: float, tol: float) -> np.ndarray:
    """True where ``batch`` is within ``tol`` (a fraction) of the target (exactly equal when tol = 0)."""
    return np.abs(np.asarray(batch, dtype=np.float64) - target_seqs) <= tol * target_seqs + 1e-9


def split_counts(chips: int, domain: int, target_seqs: float, tol: float) -> list[int]:
    """The whole-domain chip counts at or above the idle floor on which the batch splits over more data-parallel
    replicas than on every larger count (all ``chips`` included), largest first: a count n is kept when its largest
    dp that divides n and that a batch within ``tol`` of ``target_seqs`` is a multiple of,

        d(n) = max { dp : dp | n,  |dp x max(1, round(B / dp)) - B| <= tol x B },

    exceeds d(m) for every count m > n (``fit_batch`` with a unit of dp: a micro-batch of one sequence, the
    unit every plan's dp x mb (x pp) is a multiple of, so no dp a plan could use is missed). On 96 H100 (12
    servers) and 1,000 sequences (tol 0): d(96) = 8 (gcd(1,000, 96)), d(88) = 8, d(80) = 40: 80 is kept, and
    dp 40 x tp 2 runs on it, 16 chips idle; 72 (d = 8) is not. These are the counts a plan that states its
    degrees reaches through their product (:func:`chip_counts` ``unit``), where the batch divides better than on
    all chips; a count whose best split is no finer than a larger count's is not searched (its plans run the same
    or a smaller dp on fewer chips). Kept for the next calls with the same arguments (a search asks for them in
    its enumeration, again for its pass over fewer chips and in that pass's enumeration)."""
    try:
        return list(_split_counts(chips, domain, target_seqs, tol))
    except TypeError:           # an unhashable argument (an array): not kept
        return list(_split_counts.__wrapped__(chips, domain, target_seqs, tol))


@lru_cache(maxsize=256, typed=True)
def _split_counts(chips: int, domain: int, target_seqs: float, tol: float) -> tuple[int, ...]:
    """:func:`split_counts`, as a tuple (never modified)."""
    domain = max(1, int(domain))
    floor = max((1.0 - MAX_IDLE_FRACTION) * chips, 1.0)
    ns = np.arange((chips // domain) * domain, int(math.ceil(floor)) - 1, -domain, dtype=np.int64)
    ns = np.concatenate(([int(chips)], ns[(ns >= floor) & (ns != chips)]))
    # every divisor of every count: i and n / i for i <= sqrt(n) that divides n (counts x sqrt(chips) cells)
    i = np.arange(1, math.isqrt(int(chips)) + 1, dtype=np.int64)
    if len(ns) * len(i) > MAX_SPLIT_CELLS:      # (10M chips of 8-chip domains: 312,500 counts x 3,162) not tried
        return ()
    hit = ns[:, None] % i[None, :] == 0
    dp = np.concatenate((np.where(hit, i[None, :], 0), np.where(hit, ns[:, None] // i[None, :], 0)), axis=1)
    ok = (dp > 0) & within(fit_batch(target_seqs, np.maximum(dp, 1)), target_seqs, tol)
    best = np.where(ok, dp, 0).max(axis=1)
    prev = np.maximum.accumulate(best)     # the best split on this count or any larger one
    keep = np.zeros(len(ns), bool)
    keep[1:] = best[1:] > prev[:-1]
    return tuple(int(n) for n in ns[keep])


def lower_counts(chips: int, domain: int, counts: list[int], least: int = 1) -> list[int]:
    """The whole-domain chip counts below ``chips`` that ``counts`` (the usual ones, :func:`chip_counts`) lacks,
    largest first, down to one domain: the counts the search's best-plan pass tries
    (:func:`trainsim.search.search`), so that a plan on any whole number of domains is available to a run on more
    chips and the best answer never slows as chips are added. 112 H100 (14 servers), usual counts 112 and 96:
    104, 88, 80, ..., 8. ``least``: none below it (the search's count bound). Only the ``MAX_LOWER_COUNTS``
    domains below the run's chips are tried (32: 256 chips of 8, 12,288 of 384), a guard on the search's time (a
    capacity probe on 750,000 CloudMatrix chips took 5-8 s with 1,000 counts, 0.2-0.9 s with 64), so the guarantee
    holds for M >= N - 32 domains, and for every M on a cluster of up to 32 domains."""
    domain = max(1, int(domain))
    top = (int(chips) // domain) * domain
    ns = np.arange(top, max(0, top - MAX_LOWER_COUNTS * domain), -domain, dtype=np.int64)
    ns = ns[(ns < chips) & (ns >= least) & ~np.isin(ns, np.asarray(counts, dtype=np.int64))]
    return [int(n) for n in ns]


def chip_counts(chips: int, domain: int, use_all: bool = False, unit: int | None = None,
                target_seqs: float | None = None, tol: float = 0.0) -> list[int]:
    """Chip counts a plan may use on ``chips`` chips with scale-up domains of ``domain`` chips, all chips first
    (see the module docstring); ``use_all`` leaves only ``chips``. ``unit``: the product of the degrees a plan
    states (None: none stated), whose whole-domain multiples down to the floor are tried too, largest first.
    ``target_seqs`` (the batch, with its tolerance ``tol``): the counts on which it splits finer than on every
    larger count are tried too (:func:`split_counts`), so that the free search reaches the counts a stated plan's
    degrees would."""
    out = [int(chips)]
    if use_all:
        return out
    domain = max(1, int(domain))
    units = chips // domain
    floor = (1.0 - MAX_IDLE_FRACTION) * chips
    j = 0
    while units >> j:
        step = 1 << j
        n = (units // step) * step * domain
        if n < floor:
            break
        if n not in out:
            out.append(int(n))
        j += 1
    if target_seqs is not None:
        out += [n for n in split_counts(chips, domain, target_seqs, tol) if n not in out]
    if unit is not None and unit >= 1:
        step = domain * int(unit) // math.gcd(domain, int(unit))       # lcm(unit, domain)
        n, extra = (chips // step) * step, 0
        while n >= max(floor, 1) and extra < MAX_UNIT_COUNTS:
            if n not in out:
                out.append(int(n))
                extra += 1
            n -= step
    return out
