"""``estimate``: predict one training step (and the whole run) for a run spec and one plan.

Architecture principle 1: estimate is a search over one plan. A plan that names every field is evaluated
as given; fields it leaves out are filled by the plan search (the fastest plan that fits, holding the named
fields fixed), so ``estimate`` and ``plan`` always share the same arithmetic.
"""
from __future__ import annotations

from dataclasses import replace

from .errors import NoPlanError
from .fit_advice import fit_advice, over_by
from .frameworks import default_stages, framework_of
from .perf.calibration import Calib
from .plan_estimate import (PLAN_FIELDS, Estimate, context, estimate_complete, estimate_plans, is_complete,
                            plans_from_spec, result_row)
from .search import search
from .spec import PlanSpec, Run

__all__ = ["PLAN_FIELDS", "Estimate", "context", "estimate", "estimate_complete", "estimate_plans", "is_complete",
           "plans_from_spec", "result_row"]


def defaults_note(framework: str, kept: dict, searched: list[str]) -> str:
    """One line naming the plan fields ``estimate`` took from the software stack's profile (``framework``, its
    ``defaults`` in trainsim/catalog/data/framework_schedules.yaml) rather than searched, and those it searched
    after no plan fit with their defaults: a partial plan's numbers are those of the stack as shipped, which
    ``trainsim plan`` / ``size`` (every unstated field searched) may beat."""
    parts = []
    if kept:
        fields = " ".join(f"{k}={v}" for k, v in kept.items())
        parts.append(f"{fields} from the {framework} profile's defaults (not searched; trainsim plan searches them)")
    if searched:
        parts.append(f"{', '.join(searched)} searched (no plan fits with the {framework} default)")
    return "; ".join(parts)


def estimate(run: Run, plan: PlanSpec | None = None, *, calib: Calib | None = None, advise: bool = True) -> Estimate:
    """Predict one training step of ``run`` under ``plan`` (default: the run's own plan).

    A partial plan is completed in two steps: the fields its source leaves out that the run's software stack has
    a default for (zero, recompute, micro-batch, schedule: :func:`trainsim.frameworks.with_defaults`) take that
    default, then the plan search fills the rest (fastest plan that fits with the named fields fixed); when no
    plan fits with the defaults, the ZeRO stage and recompute are searched too, then every unstated field
    (:func:`trainsim.frameworks.default_stages`), and ``extra['profile_defaults']`` says which defaults held. A
    plan that does not fit says by how much and, with ``advise``, which single changes make it fit
    (:mod:`trainsim.fit_advice`), under ``extra['does_not_fit']``.
    """
    plan = plan or run.plan
    if not is_complete(plan):
        fw = framework_of(run)
        stages = default_stages(plan, fw)
        for stage in stages:
            res = search(run, fixed=stage[0], calib=calib, top=1, with_pareto=False)
            if res.best is not None:
                break
        filled = stage[1]
        if res.best is None:
            raise NoPlanError(res.no_plan_message(), res, field="plan")
        if stages[0][1]:
            searched = sorted(set(stages[0][1]) - set(filled))
            res.best.extra["profile_defaults"] = {"framework": fw, "defaults": stages[0][1], "kept": filled,
                                                  "searched_instead": searched,
                                                  "note": defaults_note(fw, filled, searched)}
        return res.best

    est = estimate_complete(run, plan, calib)
    if not est.fits:
        info = over_by(est.memory_per_chip_bytes, run.system.chip.hbm_bytes)
        if advise:
            info["fixes"] = fit_advice(replace(run, plan=plan), est.plan)
        est.extra["does_not_fit"] = info
    return est
