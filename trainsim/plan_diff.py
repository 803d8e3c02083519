"""``plan --against``: the search's best plan beside a named reference plan (an expert's recipe), cause by cause.

A search that beats a tuned recipe needs a named reason (project brief). This module estimates the reference plan
exactly as ``trainsim estimate`` would (a partial reference is completed by the search with its fields fixed; when no
completion fits, by the one that needs the least memory, flagged as not fitting) and lists, per cause of the step time
(:data:`trainsim.perf.step.BREAKDOWN_KEYS`) and per part of the memory, the seconds and bytes that differ. Both plans
are compared per token on the run's chips, the cluster paid for: step seconds are divided by the tokens each step
trains, because the two plans may use different batches (batch tolerance), and a plan that leaves chips idle pays for
them all the same; the table shows wall-clock seconds per step of the reference's batch on the run's chips. The
per-used-chip ratio (tokens/s per busy chip) is given beside it where the two plans use different chip counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import NoPlanError, TrainsimError, short
from .estimate import Estimate, estimate
from .plan_estimate import PLAN_FIELDS as _SPEC_FIELDS

#: the plan fields compared: the run spec's plan fields and the data-parallel size they leave
PLAN_FIELDS = (*_SPEC_FIELDS, "dp")


@dataclass
class PlanDiff:
    """The best plan and a reference plan, cause by cause (seconds per reference step) and part by part (bytes)."""

    best: Estimate
    reference: Estimate
    causes: list[tuple[str, float, float]] = field(default_factory=list)   # (cause, best_s, reference_s)
    memory: list[tuple[str, float, float]] = field(default_factory=list)   # (part, best_bytes, reference_bytes)

    @property
    def speedup(self) -> float:
        """Tokens/s of the whole run (per chip paid for: both plans run on the run's chips) of the best plan over
        the reference's (> 1: the best finishes sooner): tokens/s per used chip x chips used, each. A best plan on
        100 H100 against ``tp=8`` on 80 of them (20 idle) at 4.16 vs 6.64 s per 1,000-sequence step is 1.60x,
        not the 1.28x per used chip the headline said (qa31)."""
        return ((self.best.tokens_per_s_per_chip * self.best.used)
                / (self.reference.tokens_per_s_per_chip * self.reference.used))

    @property
    def speedup_per_used_chip(self) -> float:
        """Tokens/s per used chip of the best plan over the reference's: :attr:`speedup` where both use as many
        chips."""
        return self.best.tokens_per_s_per_chip / self.reference.tokens_per_s_per_chip

    @property
    def plan_changes(self) -> dict[str, tuple]:
        """Plan fields whose values differ: field -> (best, reference)."""
        b, r = self.best.plan, self.reference.plan
        return {k: (b.get(k), r.get(k)) for k in PLAN_FIELDS if b.get(k) != r.get(k)}

    def idle_note(self) -> str | None:
        """One line when the reference plan leaves chips of the run idle (its degrees divide fewer chips than the
        run has: :func:`trainsim.parallel.batch.chip_counts`), None when it uses them all."""
        r = self.reference
        if not r.idle_chips:
            return None
        return (f"the reference plan uses {r.used:,} of the run's {r.run.chips:,} chips "
                f"({r.idle_chips:,} idle, paid for)")

    def largest(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` causes that differ most: (cause, best - reference seconds), largest magnitude first."""
        d = [(c, b - r) for c, b, r in self.causes if c != "step" and abs(b - r) > 0.0]
        return sorted(d, key=lambda x: -abs(x[1]))[:n]

    def headline(self) -> str:
        """One sentence: how much faster per chip the best plan is than the reference, and the largest
        step-time differences by cause (s)."""
        if not self.plan_changes:
            return "the best plan is the reference plan"
        def rel(x: float) -> str:
            return f"{abs(x - 1.0):.1%} {'faster' if x >= 1.0 else 'slower'}"

        parts = ", ".join(f"{c} {d:+.3g} s" for c, d in self.largest())
        b, r = self.best.used, self.reference.used
        used = "" if b == r else (f" ({rel(self.speedup_per_used_chip)} per used chip: it uses {b:,} chips, the "
                                  f"reference {r:,})")
        return (f"the best plan is {rel(self.speedup)} than the reference on the run's {self.best.run.chips:,} "
                f"chips{used}; per reference step the largest differences are {parts}")

    def to_dict(self) -> dict:
        """The comparison as JSON-ready data: reference plan, speed-up on the run's chips (``best_over_reference``)
        and per used chip, plan changes, step time by cause (s per reference step on the run's chips) and memory by
        part (bytes)."""
        return {
            "reference_plan": self.reference.plan,
            "reference_tokens_per_s_per_chip": self.reference.tokens_per_s_per_chip,
            "reference_fits": self.reference.fits,
            "reference_memory_per_chip_bytes": self.reference.memory_per_chip_bytes,
            "reference_chips_used": self.reference.used,
            "reference_idle_chips": self.reference.idle_chips,
            "reference_idle_note": self.idle_note(),
            "best_over_reference": self.speedup,
            "best_over_reference_per_used_chip": self.speedup_per_used_chip,
            "plan_changes": {k: list(v) for k, v in self.plan_changes.items()},
            "step_time_by_cause_s": [{"cause": c, "best": b, "reference": r, "difference": b - r}
                                     for c, b, r in self.causes],
            "memory_by_part_bytes": [{"part": p, "best": b, "reference": r, "difference": b - r}
                                     for p, b, r in self.memory],
            "headline": self.headline(),
        }


def _tokens_per_step(e: Estimate) -> float:
    return float(e.run.training.batch_seqs * e.run.training.seq_len)


def plan_diff(best: Estimate, reference_plan, stated: str | None = None) -> PlanDiff:
    """Estimate ``reference_plan`` (a PlanSpec, partial or whole) on ``best``'s run and compare it with ``best``.

    Step-time causes are scaled to the reference's step: best seconds x (reference tokens per step / best tokens
    per step), so that the two columns are the wall-clock time each plan spends per cause on the same tokens on the
    run's chips (the cluster paid for, idle chips included; the per-used-chip ratio is
    :attr:`PlanDiff.speedup_per_used_chip`). ``stated``: the reference as the person wrote it (``"tp=3"``), named
    in the error when no completion of it is valid."""
    run = best.run
    try:
        # the reference's own options (recompute_modules, stage sizes, ...): the engine reads them from the run's
        # plan (plan_estimate.context); reference_plan is the run's plan with the reference's fields over it
        ref = estimate(replace(run, plan=reference_plan), reference_plan, advise=False)
    except NoPlanError as exc:
        res = exc.result
        if res is None or res.least_memory is None:   # no valid plan at all: the reference is not a plan here
            why = res.no_plan_message() if res is not None else str(exc)
            named = f" {short(stated)}" if stated else ""
            raise TrainsimError(f"the reference plan{named} has no valid completion: {why}",
                                field="--against") from None
        # valid completions exist but none fits: compare with the one that needs the least memory, as a whole
        # reference plan that does not fit is compared (the comparison says it does not fit)
        ref = res.least_memory
    scale = _tokens_per_step(ref) / _tokens_per_step(best)
    causes = [(k, best.breakdown.get(k, 0.0) * scale, ref.breakdown.get(k, 0.0))
              for k in dict.fromkeys([*best.breakdown, *ref.breakdown])
              if best.breakdown.get(k, 0.0) > 0.0 or ref.breakdown.get(k, 0.0) > 0.0]
    causes.append(("step", best.step_time_s * scale, ref.step_time_s))
    memory = [(k, best.memory.get(k, 0.0), ref.memory.get(k, 0.0))
              for k in dict.fromkeys([*best.memory, *ref.memory])]
    return PlanDiff(best, ref, causes, memory)
