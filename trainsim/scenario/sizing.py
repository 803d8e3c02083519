"""Sizing: the fewest units (scale-up domains: 8-GPU servers, CloudMatrix 384 pods, Atlas SuperPoDs) or chips
that finish a run in D days with their best plan.

Each probe is a full plan search (memoised, :func:`trainsim.scenario.common.best`). The search is a galloping
bisection: start from the count the run's own chip-days suggest, double (or halve) until the deadline is met
(missed), then bisect. Days are wall-clock: ideal days / goodput when ``assumptions`` are given (failures grow
with the chip count, :mod:`trainsim.scenario.goodput`). Because a plan must factor the chips
(tp x pp x cp x dp) and split the global batch, days are not perfectly monotone in the count; the answer is
therefore searched over plan-friendly counts (:func:`plan_friendly_counts`), each with the global batch moved by
less than 8% to a size its chips split (:func:`trainsim.scenario.common.fitted_batch`), and checked downwards
until the next smaller count misses the deadline.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from ..spec import Run
from .common import at_chips, best, days_of, fitted_batch, plan_summary, with_batch
from ..errors import TrainsimError
from ..numfmt import days as days_fmt, days_text, fraction
from .goodput import goodput


@dataclass
class SizingResult:
    """The smallest count of units (systems or chips) that finishes a run by a deadline: units, chips, ideal
    and effective days, goodput, best plan, feasibility and the probes searched."""

    deadline_days: float
    unit: str
    unit_chips: int
    units: int | None
    chips: int | None
    days: float | None                 # ideal (no failures)
    effective_days: float | None       # with goodput
    goodput: float | None
    estimate: object | None
    feasible: bool
    probes: list[dict] = field(default_factory=list)
    message: str = ""
    previous_units: int | None = None  # the next smaller count searched (it misses the deadline)
    batch_requested_seqs: int | None = None   # the run's stated batch (each probe's own is its batch_seqs)

    def to_dict(self) -> dict:
        """The result as a JSON-able dict, with the best plan."""
        return {
            "deadline_days": self.deadline_days, "unit": self.unit, "unit_chips": self.unit_chips,
            "units": self.units, "chips": self.chips, "days": self.days, "effective_days": self.effective_days,
            "goodput": self.goodput, "feasible": self.feasible, "message": self.message,
            "previous_units": self.previous_units, "global_batch_requested_seqs": self.batch_requested_seqs,
            "best_plan": plan_summary(self.estimate), "probes": self.probes,
        }


def days_over(days: float, deadline_days: float) -> str:
    """``days`` (more than ``deadline_days``) with one decimal, or more (up to 4) where one would print it at or
    under the deadline: '29 take 0.5 days' beside a 0.5-day deadline read as meeting it (it took 0.504)."""
    d = 1
    while d < 4 and round(days, d) <= deadline_days:
        d += 1
    return f"{days:.{d}f}"


def unit_size(run: Run, unit: str) -> int:
    """Chips per sizing unit: one scale-up domain for ``system`` (or pod, superpod, domain), 1 for ``chip``, or
    the number given."""
    if unit in ("system", "pod", "superpod", "domain"):
        return max(1, run.system.scale_up_size)
    if unit == "chip":
        return 1
    if unit.isdigit():
        return int(unit)

    raise TrainsimError(f"expected system or chip, got {unit!r}", field="--unit")


def run_at(run: Run, chips: int) -> Run:
    """``run`` on ``chips`` chips, its global batch moved (< 8%) to a size those chips split with short pipelines,
    as a job owner would (:func:`trainsim.scenario.common.fitted_batch` with at most 3 left to pp). A run whose
    batch has a tolerance (stated in tokens, or ``batch_tolerance`` > 0) keeps its batch and tolerance: the plan
    search already picks the batch within it that each plan splits (:mod:`trainsim.parallel.batch`), and moving
    it first would drop the tolerance (a batch in sequences is exact)."""
    if run.training.batch_tol > 0:
        return at_chips(run, chips)
    b = fitted_batch(run.training.batch_seqs, chips, max_pp=min(128, run.arch.n_layers), max_pp_odd=3)
    return with_batch(at_chips(run, chips), b)


class _Prober:
    def __init__(self, run: Run, unit_chips: int, assumptions=None, goodput_end: str = "nominal"):
        self.run, self.unit_chips, self.a, self.end = run, unit_chips, assumptions, goodput_end
        self.seen: dict[int, dict] = {}
        self.no_valid: set[int] = set()   # counts with no valid plan at all (too many chips for the batch)

    def __call__(self, units: int) -> dict:
        if units in self.seen:
            return self.seen[units]
        chips = units * self.unit_chips
        res = best(run_at(self.run, chips))
        if res.best is None and res.plans_evaluated == 0:
            self.no_valid.add(units)
        days = days_of(res)
        gp = 1.0 if math.isfinite(days) else None      # None: no plan at this count, so no goodput either
        if self.a is not None and math.isfinite(days):
            gp = goodput(self.run.arch, chips, days, self.a, which=self.end).fraction
        eff = days / gp if gp else math.inf
        # the batch the probe's best plan uses (within a tolerance, the nearest its dp x micro-batch divides:
        # parallel/batch.py), not the run's stated one; the stated one where no plan fits
        used = (res.best.run if res.best is not None else res.run).training.batch_seqs
        out = {"units": units, "chips": chips, "days": days, "effective_days": eff, "goodput": gp,
               "fits": res.best is not None, "batch_seqs": used, "estimate": res.best}
        self.seen[units] = out
        return out

    def probes(self) -> list[dict]:
        return [{k: v for k, v in p.items() if k != "estimate"} for _, p in sorted(self.seen.items())]


MAX_ODD = 31


def plan_friendly_counts(cap: int, max_odd: int = MAX_ODD) -> list[int]:
    """Unit counts m x 2^k with odd m <= ``max_odd`` up to ``cap`` (every count up to 32, then steps of at most
    ~6%). A plan factors the chips as tp x pp x cp x dp with tp, cp powers of two, so a count with a large odd
    factor (8 x 67 servers) leaves only awkward plans; a job given such a count would run on a friendlier one."""
    out = set()
    for m in range(1, max_odd + 1, 2):
        v = m
        while v <= cap:
            out.add(v)
            v *= 2
    return sorted(out)


MAX_NEGATIVE_SCAN = 48


def _fastest(probe) -> dict | None:
    """The probed count with the fewest effective days (the first probed of equals), None when no probed count
    has a plan."""
    finite = [p for p in probe.seen.values() if math.isfinite(p["effective_days"])]
    return min(finite, key=lambda p: p["effective_days"]) if finite else None


def _probe_doublings(counts: list[int], probe) -> None:
    """Probe every power-of-two count up to the cap (1, 2, 4, ... units; about 17 searches up to 10^5 units), so
    that the fastest count :func:`_scan_skipped` and the "none finishes" answer start from is the valley of the
    whole range, not of the counts the galloping search happened to visit. A deadline far below any count's days
    makes the first guess (chip-days / deadline) the cap itself, so the search had probed only the run's own count
    and the largest ones: Llama 3.1 8B (1T tokens, 512 x 8,192-token sequences) on DGX H100 servers was answered
    "fastest: 1.2 days on 61,440 servers (goodput 20%)" for a 1e-9-day deadline, while 672 servers finish in 0.5
    days (goodput 98%): the job MTBF falls as 1 / chips, so effective days are U-shaped in the count
    (:func:`size`)."""
    for u in counts:
        if u & (u - 1) == 0:
            probe(u)


def _scan_skipped(counts: list[int], probe, ok) -> int | None:
    """Index of the smallest count that meets the deadline among the counts the galloping search stepped over,
    or None. Before :func:`size` answers that no count finishes, it probes the unsearched plan-friendly counts
    from half the fastest searched count up to the cap (at most :data:`MAX_NEGATIVE_SCAN`, nearest the fastest
    first), because days are not monotone in the count: a 9.9T MoE on Atlas 950 SuperPoDs takes 119.5 days on 20,
    74.3 on 30 and 90.1 on 40, so a gallop 20 -> 40 that misses 30 would wrongly say none up to 40 finishes."""
    best_probe = _fastest(probe)
    if best_probe is None:
        return None
    fastest = best_probe["units"]
    skipped = [i for i, u in enumerate(counts) if u >= fastest // 2 and u not in probe.seen]
    skipped.sort(key=lambda i: abs(counts[i] - fastest))
    passing = [i for i in skipped[:MAX_NEGATIVE_SCAN] if ok(i)]
    return min(passing) if passing else None


def size(run: Run, deadline_days: float, *, unit: str = "system", assumptions=None, max_units: int | None = None,
         max_chips: int = 1_000_000, goodput_end: str = "nominal", scan_upto: int | None = None,
         scan_skip=None) -> SizingResult:
    """Fewest units of ``unit`` ('system' = one scale-up domain, 'chip' = one chip) whose best plan finishes
    ``run`` (``training.tokens``) within ``deadline_days`` of wall-clock time (ideal days / goodput when
    ``assumptions`` are given; ``goodput_end`` picks the nominal, pessimistic 'low' or optimistic 'high' end).

    Counts are searched over :func:`plan_friendly_counts` (all counts up to 32). Wall-clock days are U-shaped in
    the count once failures are included (the job MTBF falls as 1 / chips), so the galloping phase stops when
    doubling makes the run slower and looks for the fastest count in between.

    ``scan_upto``: every plan-friendly count up to this one is probed too, and the smallest that meets the deadline
    wins. Days are not monotone in the count when the global batch caps data parallelism: past
    batch x tp x cp chips the extra chips go into pipeline stages fed by one or two micro-batches, whose bubble
    makes a larger count slower (a 10T MoE with a 16,384-sequence batch: 70 days on 16 Atlas 950 SuperPoDs, 96 on
    20), so a search that starts above the answer can miss it. A claim's own counts are scanned this way;
    ``scan_skip(units)`` may name counts a lower bound already proves too slow (they are not searched); where it
    names every count up to the cap, no count can meet the deadline and the answer is "none finishes" without a
    search (its ``probes`` empty, its message saying so: only a count that meets the deadline is ever answered)."""
    uc = unit_size(run, unit)
    cap = max_units or max(1, max_chips // uc)
    counts = plan_friendly_counts(cap)
    if scan_skip is not None and all(scan_skip(u) for u in counts):
        # every count the search below could probe is proven too slow, and it answers only with a count that
        # meets the deadline: none finishes, without a search (S6's FP8-efficiency and FP4 ends with whole-job
        # restarts: 4 x 32 searches, every one of them at a count the bound rules out)
        return SizingResult(deadline_days, unit, uc, None, None, None, None, None, None, False, [],
                            f"no count up to {cap:,} {unit}s finishes in {days_text(deadline_days)}: a lower bound "
                            f"on the days rules out every count (not searched)")
    probe = _Prober(run, uc, assumptions, goodput_end)
    eff = lambda i: probe(counts[i])["effective_days"]  # noqa: E731
    ok = lambda i: eff(i) <= deadline_days  # noqa: E731
    index = lambda u: max(0, bisect_right(counts, u) - 1)  # noqa: E731
    top = len(counts) - 1

    # first guess from the chip-days of the run as given
    i0 = index(max(1, round(run.chips / uc)))
    p0 = probe(counts[i0])
    while counts[i0] in probe.no_valid and i0 > 0:
        # no valid plan at all there (not memory: too many chips for the batch): the run's chip-days come from a
        # count below, halving (a batch of one sequence on 16,384 GPUs was sized upwards from there, to 2,176
        # systems, where the same run stated on 8 chips is sized at one)
        i0 = min(i0 - 1, index(counts[i0] // 2))
        p0 = probe(counts[i0])
    if math.isfinite(p0["effective_days"]):
        guess = math.ceil(p0["effective_days"] * p0["chips"] / (deadline_days * uc))
    else:
        guess = counts[i0] * 2
    ig = min(top, bisect_left(counts, max(1, guess)))
    lo, hi = -1, None                   # indices: lo fails (or -1), hi passes
    for i in sorted({i0, ig}):
        if ok(i):
            hi = i if hi is None else min(hi, i)
        else:
            lo = max(lo, i)
    # gallop upwards; stop in the valley when more units make the run slower
    while hi is None and lo < top:
        nxt = min(top, max(lo + 1, bisect_left(counts, 2 * counts[lo]) if lo >= 0 else 0))
        if ok(nxt):
            hi = nxt
            break
        if lo >= 0 and eff(nxt) >= eff(lo):
            a, b = max(0, index(counts[lo] // 2)), nxt     # the fastest count lies in [a, b]: ternary search
            for _ in range(3):          # a coarse look: the count only says how close the valley comes
                if b - a <= 2:
                    break
                m1, m2 = a + (b - a) // 3, b - (b - a) // 3
                if eff(m1) <= eff(m2):
                    b = m2
                else:
                    a = m1
            m = min((i for i in range(a, b + 1) if counts[i] in probe.seen), key=eff)
            if ok(m):
                hi = m
                lo = max([i for i in range(m) if counts[i] in probe.seen and not ok(i)], default=-1)
                break
            if math.isfinite(eff(m)):   # a valley that misses the deadline
                break
            # no count up to here has a plan (too few chips for the memory): not a valley, gallop on
        lo = nxt
    if hi is not None:
        while lo == -1 and hi > 0:      # make sure a failing lower bound is known
            cand = index(counts[hi] // 2)
            cand = min(cand, hi - 1)
            if ok(cand):
                hi = cand
            else:
                lo = cand
        while hi - lo > 1:              # bisect (lo fails, hi passes)
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        steps = 0                       # days are not perfectly monotone: walk down while the next count passes
        while hi > 0 and ok(hi - 1) and steps < 16:
            hi -= 1
            steps += 1
    if scan_upto:                       # the counts a claim names: probed one by one (see the docstring)
        below = [i for i in range(min(top, index(scan_upto)) + 1)
                 if (hi is None or i < hi) and not (scan_skip and scan_skip(counts[i]))]
        passing = [i for i in below if ok(i)]
        if passing:
            hi = passing[0]
            lo = hi - 1
    if hi is None:                      # "none finishes" is a claim about every count: check the skipped ones
        _probe_doublings(counts, probe)
        hi = _scan_skipped(counts, probe, ok)
    if hi is None:
        fastest = _fastest(probe)
        cap_chips = "" if uc == 1 else f" ({cap * uc:,} chips)"      # --unit chip: the count is the chips
        n = fastest["units"] if fastest else 0      # the unit named, as the answer's '672 systems (5,376 chips)'
        on = (f"{n:,} chip{'s' if n != 1 else ''} (" if uc == 1
              else f"{n:,} {unit}{'s' if n != 1 else ''} ({fastest['chips']:,} chips, ") if fastest else ""
        msg = (f"no count up to {cap:,} {unit}s{cap_chips} finishes in {days_text(deadline_days)}"
               + (f"; fastest: {days_fmt(fastest['effective_days'])} on {on}goodput {fastest['goodput']:.0%})"
                  if fastest else "; nothing fits in memory"))
        return SizingResult(deadline_days, unit, uc, None, None, None, None, None,
                            fastest["estimate"] if fastest else None, False, probe.probes(), msg)
    u = counts[hi]
    p = probe(u)
    in_chips = "" if uc == 1 else f" ({p['chips']:,} chips)"     # --unit chip: not '124 chips (124 chips)'
    msg = (f"{u:,} {unit}{'s' if u != 1 else ''}{in_chips} finish{'es' if u == 1 else ''} in "
           f"{days_fmt(p['effective_days'])} (ideal {days_fmt(p['days'])}, goodput {fraction(p['goodput'])}); ")
    if hi > 0:
        prev = counts[hi - 1]
        prev_days = probe(prev)["effective_days"]
        msg += (f"{prev:,} take{'s' if prev == 1 else ''} {days_over(prev_days, deadline_days)} days"
                if math.isfinite(prev_days)
                else f"{prev:,} {'has' if prev == 1 else 'have'} no plan")
        if prev != u - 1:
            msg += f" (counts searched: m x 2^k with odd m <= {MAX_ODD})"
    else:
        msg += "one unit is the minimum"
    res = SizingResult(deadline_days, unit, uc, u, p["chips"], p["days"], p["effective_days"], p["goodput"],
                       p["estimate"], True, probe.probes(), msg)
    res.previous_units = counts[hi - 1] if hi > 0 else None
    res.batch_requested_seqs = run.training.batch_seqs
    return res
