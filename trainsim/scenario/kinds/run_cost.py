"""Scenario kind ``run-cost`` (S3): the cost of another scenario's job (capex amortised and rental-equivalent), the
cluster's price against the claim, and the same job on other clusters."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from ..common import plan_summary
from ...catalog.resolve import resolve_system
from ...units import parse_count
from .base import (KindInputs, KindResult, _chips, _input, _job_run, _model_inputs, _run_row, _sibling,
                   _stack_input, _system_id, family_validation, chip_name, register_kind, short_name)


class Inputs(KindInputs):
    """S3's inputs: the job (another scenario file), the claim's money figures, the clusters to compare."""

    job: str = Field(description="the scenario file whose job is costed")
    claimed: dict | None = Field(None, description="the claim's figures: pod_price_usd, cluster_usd, "
                                                   "cluster_all_in_usd, meituan_ai_capex_2026_usd, ...")
    #: keys an entry of a list field must hold (base.parse_inputs)
    ENTRY_KEYS: ClassVar[dict] = {"compare": (("system",),)}
    compare: list[dict] = Field(default_factory=list, description="entries {system, chips, precision, note, "
                                                                  "framework, framework_source}: the same job on "
                                                                  "these clusters (framework: the stack that "
                                                                  "cluster runs, else the job's)")
    capex_check: list[dict] = Field(default_factory=list, description="entries {figure, finding, source, "
                                                                      "confidence}: the claim's capex figures "
                                                                      "against what sources say")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S3 ``run-cost`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    a = inp.assumption_set()
    job = _sibling(doc, "job", base_dir)
    run = _job_run(job, base_dir)
    row = _run_row(run, a, with_ranges=False)
    if not row.get("fits"):
        return KindResult(numbers={}, best_plan=None, assumptions=a.report(),
                          validation_error=family_validation([run]),
                          facts={"fail": f"the job does not fit: {row.get('message')}"})
    eco = row["_eco"]
    # the claim's figures are numbers (8.2e6, '8.2M', '$533M'): one error line, not a TypeError in a ratio (exit 3)
    claimed = {k: parse_count(v.strip().lstrip("$") if isinstance(v, str) else v, f"claimed.{k}")
               for k, v in (inp.claimed or {}).items()}
    # whole pods are a count (65, not 65.0); a run on part of a pod keeps the fraction
    pods = (run.chips // run.system.scale_up_size if run.chips % run.system.scale_up_size == 0
            else run.chips / run.system.scale_up_size)
    pod_price = (run.system.price_per_chip_usd or 0.0) * run.system.scale_up_size
    cluster = eco["cluster_capex_usd"]
    numbers: dict[str, Any] = {
        "pods": pods, "chips": run.chips, "pod_price_usd": pod_price,
        "cluster_capex_usd": cluster,
        "cluster_capex_claimed_usd": claimed.get("cluster_usd"),
        "other_expenses_factor_implied": (claimed["cluster_all_in_usd"] / cluster["nominal"])
        if claimed.get("cluster_all_in_usd") and cluster["nominal"] else None,
        "framework": row["framework"],
        "days": row["days"]["nominal"], "effective_days": row["effective_days"]["nominal"],
        "chip_hours": eco["chip_hours"], "energy_mwh": eco["energy_mwh"],
        "cost_capex_amortised_usd": eco["cost_capex_usd"], "cost_rental_equivalent_usd": eco["cost_rental_usd"],
        "rental_rate_usd_per_chip_hour": eco["rental_usd_per_chip_hour"],
        "usd_per_1e24_flop_capex": eco["usd_per_1e24_flop_capex"],
        "usd_per_1e24_flop_rental": eco["usd_per_1e24_flop_rental"],
        "training_flops_6na": eco["training_flops_6na"],
        "share_of_cluster_life": eco["effective_days"] / (365.25 * a["life_years"]),
        "cluster_share_of_claimed_meituan_capex": (cluster["nominal"] / claimed["meituan_ai_capex_2026_usd"])
        if claimed.get("meituan_ai_capex_2026_usd") and cluster["nominal"] else None,
    }
    comp = []
    families = []
    for entry in inp.compare:
        n = (_chips({"id": doc.get("id", "?"), **entry}, resolve_system(entry["system"], base_dir),
                    f"compare[{len(families)}].") if "chips" in entry or "pods" in entry else run.chips)
        crun = _job_run(job, base_dir, system=entry["system"], chips=n, precision=entry.get("precision"),
                        framework=entry.get("framework"))
        crow = _run_row(crun, a, with_ranges=False)
        families.append(crun)
        if not crow.get("fits"):
            comp.append({"system": crow["system"], "framework": crow["framework"], "fits": False,
                         "message": crow.get("message")})
            continue
        ce = crow["_eco"]
        comp.append({"system": crow["system"], "chip": crow["chip"], "chips": crun.chips,
                     "precision": crun.training.precision, "framework": crow["framework"],
                     "note": entry.get("note", ""),
                     "days": crow["days"]["nominal"], "effective_days": crow["effective_days"]["nominal"],
                     "mfu": crow["mfu"], "cluster_capex_usd": ce["cluster_capex_usd"],
                     "cost_capex_amortised_usd": ce["cost_capex_usd"], "cost_rental_usd": ce["cost_rental_usd"],
                     "energy_mwh": ce["energy_mwh"], "usd_per_1e24_flop_rental": ce["usd_per_1e24_flop_rental"],
                     "usd_per_1e24_flop_capex": ce["usd_per_1e24_flop_capex"]})
    numbers["same_job_on"] = comp
    src = run.system.sources.get("price_per_chip_usd")
    return KindResult(
        numbers=numbers, best_plan=plan_summary(row["_est"]),
        assumptions=_model_inputs(job) + [_stack_input(f"software stack on {short_name(run.system)}", job,
                                                       system=run.system)]
        + [_stack_input(f"software stack on compare.{_system_id(e['system'])}", e, job, system=c.system)
           for e, c in zip(inp.compare, families)]
        + [_input("pod_price", pod_price, src.note if src else "catalog")]
        + [_input(f"compare.{c['system']}", c.get("note", ""), "scenario file") for c in comp if c.get("note")]
        + [_input(f"capex_check.{c.get('figure', i)}", c.get("finding", ""), c.get("source", "scenario file"))
           for i, c in enumerate(inp.capex_check)]
        + a.report(),
        validation_error=family_validation([run] + families),
        facts={"claimed_cluster_usd": claimed.get("cluster_usd", 0), "capex_check": inp.capex_check,
               "price_source": src.note if src else "catalog",
               "deciding": f"the pod price (${pod_price / 1e6:.1f}M, "
                           f"{_spread(cluster):s} over its catalog range)"})


def _spread(r: dict) -> str:
    """'+-50%' (or '-40%/+60%') of a low / nominal / high triple around its nominal."""
    lo, nom, hi = r.get("low"), r.get("nominal"), r.get("high")
    if not nom or lo is None or hi is None:
        return "no range"
    d_lo, d_hi = 1.0 - lo / nom, hi / nom - 1.0
    return f"+-{d_hi:.0%}" if abs(d_lo - d_hi) < 0.005 else f"-{d_lo:.0%}/+{d_hi:.0%}"


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S3 ``run-cost``'s (verdict class, headline, details) from its computed result."""
    if res.facts.get("fail"):
        return "not supported", "The job does not fit on the cluster.", res.facts["fail"]
    n = res.numbers
    cluster, cap, ren = n["cluster_capex_usd"], n["cost_capex_amortised_usd"], n["cost_rental_equivalent_usd"]
    text = (f"{n['pods']:.0f} pods x ${n['pod_price_usd'] / 1e6:.1f}M = ${cluster['nominal'] / 1e6:.0f}M "
            f"(claim ${res.facts['claimed_cluster_usd'] / 1e6:.0f}M; range ${cluster['low'] / 1e6:.0f}-"
            f"{cluster['high'] / 1e6:.0f}M from the price's {_spread(cluster)}). The S2 job{' (' + n['framework'] + ')' if n.get('framework') else ''} runs "
            f"{n['effective_days']:.0f} days: amortised capex + power ${cap['nominal'] / 1e6:.0f}M (${cap['low'] / 1e6:.0f}-"
            f"{cap['high'] / 1e6:.0f}M), rental-equivalent ${ren['nominal'] / 1e6:.0f}M "
            f"(${ren['low'] / 1e6:.0f}-{ren['high'] / 1e6:.0f}M), "
            f"${n['usd_per_1e24_flop_capex']['nominal'] / 1e6:.1f}M per 1e24 FLOP (capex basis)")
    for c in n["same_job_on"]:
        if c.get("fits", True) and c.get("cost_rental_usd"):
            capx = c["cost_capex_amortised_usd"]["nominal"]
            text += (f"; on {c['chips']:,} {chip_name(c['chip'])} ({c['precision']}{', ' + c['framework'] if c.get('framework') else ''}) "
                     f"{c['effective_days']:.0f} days, rental "
                     f"${c['cost_rental_usd']['nominal'] / 1e6:.0f}M"
                     + (f", capex ${capx / 1e6:.0f}M" if capx else ""))
    share = n.get("cluster_share_of_claimed_meituan_capex")
    text += f". The pod price is one press figure ({res.facts.get('price_source', 'catalog')})"
    checks = res.facts.get("capex_check") or []
    text += ("; " + "; ".join(f"{c.get('figure')}: {c.get('finding')}" for c in checks) if checks
             else "; the claim's capex figures are not checked (no capex_check in the scenario file)")
    if share:
        text += f"; if the Meituan figure is right, the cluster is {share:.0%} of its 2026 AI capex"
    head = (f"{n['pods']:.0f} pods at ${n['pod_price_usd'] / 1e6:.1f}M cost ${cluster['nominal'] / 1e6:.0f}M "
            f"(${cluster['low'] / 1e6:.0f}-{cluster['high'] / 1e6:.0f}M over the price's range), as claimed if the "
            f"pod price is right; the S2 job on them costs ${cap['nominal'] / 1e6:.0f}M amortised or "
            f"${ren['nominal'] / 1e6:.0f}M at rental prices. The pod price is one press figure, so every dollar figure "
            f"scales with it.")
    return "depends on the pod price", head, text


handle = register_kind("run-cost", Inputs, compute, verdict)
