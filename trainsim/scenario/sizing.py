"""Sizing: the fewest units (scale-up domains: 8-GPU servers, CloudMatrix 384 pods, Atlas SuperPoDs) or chips
that finish a run in D days with their best plan.

Each probe is a full plan search (memoised, :func:`trainsim.scenario.common.best`). The search is a galloping
bisection: start from the count the run's own chip-days suggest, double (or halve) until the deadline is met
(missed), then bisect. Days are wall-clock: ideal days / goodput when ``assumptions`` are given (failures grow
with the chip count, :mod:`trainsim.scenario.goodput`). Because a plan must factor the chips
(tp x pp x cp x dp) and split the global batch, days are not perfectly monotone in the count; the answer is
therefore checked downwards until one unit fewer misses the deadline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..spec import Run
from .common import at_chips, best, days_of, plan_summary


@dataclass
class SizingResult:
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

    def to_dict(self) -> dict:
        return {
            "deadline_days": self.deadline_days, "unit": self.unit, "unit_chips": self.unit_chips,
            "units": self.units, "chips": self.chips, "days": self.days, "effective_days": self.effective_days,
            "goodput": self.goodput, "feasible": self.feasible, "message": self.message,
            "best_plan": plan_summary(self.estimate), "probes": self.probes,
        }


def unit_size(run: Run, unit: str) -> int:
    if unit in ("system", "pod", "superpod", "domain"):
        return max(1, run.system.scale_up_size)
    if unit == "chip":
        return 1
    if unit.isdigit():
        return int(unit)
    from ..errors import TrainsimError

    raise TrainsimError(f"expected system or chip, got {unit!r}", field="--unit")


class _Prober:
    def __init__(self, run: Run, unit_chips: int, assumptions=None, goodput_end: str = "nominal"):
        self.run, self.unit_chips, self.a, self.end = run, unit_chips, assumptions, goodput_end
        self.seen: dict[int, dict] = {}

    def __call__(self, units: int) -> dict:
        if units in self.seen:
            return self.seen[units]
        chips = units * self.unit_chips
        res = best(at_chips(self.run, chips))
        days = days_of(res)
        gp = 1.0
        if self.a is not None and math.isfinite(days):
            from .goodput import goodput

            gp = goodput(self.run.arch, chips, days, self.a, which=self.end).fraction
        eff = days / gp if gp > 0 else math.inf
        out = {"units": units, "chips": chips, "days": days, "effective_days": eff, "goodput": gp,
               "fits": res.best is not None, "estimate": res.best}
        self.seen[units] = out
        return out

    def probes(self) -> list[dict]:
        return [{k: v for k, v in p.items() if k != "estimate"} for _, p in sorted(self.seen.items())]


def size(run: Run, deadline_days: float, *, unit: str = "system", assumptions=None, max_units: int | None = None,
         max_chips: int = 1_000_000, goodput_end: str = "nominal") -> SizingResult:
    """Fewest units of ``unit`` ('system' = one scale-up domain, 'chip' = one chip) whose best plan finishes
    ``run`` (``training.tokens``) within ``deadline_days`` of wall-clock time (ideal days / goodput when
    ``assumptions`` are given; ``goodput_end`` picks the nominal, pessimistic 'low' or optimistic 'high' end).

    Wall-clock days are U-shaped in the count once failures are included (the job MTBF falls as 1 / chips), so
    the galloping phase stops when doubling makes the run slower and looks for the fastest count in between."""
    uc = unit_size(run, unit)
    cap = max_units or max(1, max_chips // uc)
    probe = _Prober(run, uc, assumptions, goodput_end)
    eff = lambda u: probe(u)["effective_days"]  # noqa: E731
    ok = lambda u: eff(u) <= deadline_days  # noqa: E731

    # first guess from the chip-days of the run as given
    g0 = probe(max(1, min(cap, round(run.chips / uc))))
    if math.isfinite(g0["effective_days"]):
        guess = math.ceil(g0["effective_days"] * g0["chips"] / (deadline_days * uc))
    else:
        guess = g0["units"] * 2
    guess = max(1, min(cap, guess))
    lo, hi = 0, None                    # lo: largest known failing count below hi, hi: smallest passing count
    for u in sorted({g0["units"], guess}):
        if ok(u):
            hi = u if hi is None else min(hi, u)
        else:
            lo = max(lo, u)
    # gallop upwards; stop in the valley when more units make the run slower
    while hi is None and lo < cap:
        nxt = min(cap, max(lo * 2, lo + 1))
        if ok(nxt):
            hi = nxt
            break
        if lo > 0 and eff(nxt) >= eff(lo):
            a, b = max(1, lo // 2), nxt          # the fastest count lies in [a, b]: ternary search
            for _ in range(12):
                if b - a <= 2:
                    break
                m1, m2 = a + (b - a) // 3, b - (b - a) // 3
                if eff(m1) <= eff(m2):
                    b = m2
                else:
                    a = m1
            m = min(range(a, b + 1), key=eff)
            if ok(m):
                hi = m
                lo = max([u for u in probe.seen if u < m and not ok(u)], default=0)
            break
        lo = nxt
    if hi is not None:
        while lo == 0 and hi > 1:       # make sure a failing lower bound is known
            cand = max(1, hi // 2)
            if ok(cand):
                hi = cand
                if cand == 1:
                    break
            else:
                lo = cand
        while hi - lo > 1:              # bisect (lo fails, hi passes)
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        steps = 0                       # days are not perfectly monotone: walk down while one fewer passes
        while hi > 1 and ok(hi - 1) and steps < 16:
            hi -= 1
            steps += 1
    if hi is None:
        finite = [p for p in probe.seen.values() if math.isfinite(p["effective_days"])]
        fastest = min(finite, key=lambda p: p["effective_days"]) if finite else None
        msg = (f"no count up to {cap:,} {unit}s ({cap * uc:,} chips) finishes in {deadline_days:g} days"
               + (f"; fastest: {fastest['effective_days']:.1f} days on {fastest['units']:,} ({fastest['chips']:,} "
                  f"chips, goodput {fastest['goodput']:.0%})" if fastest else "; nothing fits in memory"))
        return SizingResult(deadline_days, unit, uc, None, None, None, None, None,
                            fastest["estimate"] if fastest else None, False, probe.probes(), msg)
    p = probe(hi)
    msg = (f"{hi:,} {unit}{'s' if hi != 1 else ''} ({p['chips']:,} chips) finish in {p['effective_days']:.1f} days "
           f"(ideal {p['days']:.1f}, goodput {p['goodput']:.1%}); ")
    msg += (f"{hi - 1:,} take {probe(hi - 1)['effective_days']:.1f}" if hi > 1 else "one unit is the minimum")
    return SizingResult(deadline_days, unit, uc, hi, p["chips"], p["days"], p["effective_days"], p["goodput"],
                        p["estimate"], True, probe.probes(), msg)
