"""Scenario kind ``fleet-capacity`` (S4): the largest pretraining run a fleet of scale-up units finishes in a given
number of days (per model family), its FLOPs against reference runs, and the restart time where the claimed
factor flips."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field

from ..capacity import capacity, tokens_in_days
from ..common import plan_summary
from ..economics import training_flops
from ..goodput import goodput, goodput_range, restart_for_goodput
from ..ranges import propagate
from ..sensitivity import scaled
from .base import (KindInputs, KindResult, _chips, _input, _job_run, _listify, _need, _triple, _validation,
                   load_doc, register_kind)


class Inputs(KindInputs):
    """S4's inputs: the fleet (system and pods or chips), the window, the families searched, the claimed factor
    and the reference runs it is measured against."""

    system: Any = Field(description="catalog id or inline system of one unit")
    days: float = Field(90.0, description="the window, in days (the seed's 'about 3 months')")
    precision: str = Field("bf16", description="training precision")
    family: Any = Field("deepseek-v3", description="model family or list of families whose largest run is sought")
    claimed_factor: float = Field(10.0, description="the claim's 'an order of magnitude larger' as a factor")
    compare_with: str | None = Field(None, description="name of the reference run the factor is measured against "
                                                       "(default: the first)")
    reference_runs: list[dict] = Field(default_factory=list, description="entries {name, flops, source} or "
                                                                         "{name, scenario}")
    scale_out_factors: list[float] = Field([0.5, 2.0], description="scale-out bandwidth factors tried")
    fleet_source: str = Field("scenario file", description="source of the fleet size")
    fleet_note: str = Field("", description="caveats of pooling the fleet")


def _reference_runs(refs: list[dict], base_dir: Path) -> list[dict]:
    out = []
    for r in refs:
        if "scenario" in r:
            other = load_doc(Path(base_dir) / r["scenario"])
            orun = _job_run(other, base_dir)
            fl = training_flops(orun.arch, float(other["training"]["tokens"]))["flops_6na"]
            out.append({"name": r.get("name", other.get("id")), "flops": fl,
                        "source": f"scenario {other.get('id')} (6 x active x tokens)"})
        else:
            out.append({"name": r["name"], "flops": float(r["flops"]), "source": r.get("source", "")})
    return out


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    from ...catalog.load import resolve_system

    doc = inp.doc()
    a = inp.assumption_set()
    system = resolve_system(_need(doc, "system"), base_dir)
    chips = _chips(doc, system)
    days = inp.days
    fams = _listify(inp.family)
    numbers: dict[str, Any] = {"chips": chips, "units": chips / system.scale_up_size, "days": days,
                               "peak_bf16_eflops": chips * system.chip.flops("bf16") / 1e18}
    caps = {f: capacity(system, chips, days, a, family=f, precision=inp.precision) for f in fams}
    # the largest run is the family that reaches the most training FLOPs
    main_f = max(fams, key=lambda f: caps[f].training_flops or 0.0)
    main = caps[main_f]
    numbers["largest_family"] = main_f
    refs = _reference_runs(inp.reference_runs, base_dir)
    for f, c in caps.items():
        d = c.to_dict()
        numbers[f"capacity_{f}"] = {k: d[k] for k in ("total_params", "active_params", "tokens", "training_flops",
                                                      "compute_optimal_tokens", "goodput", "message")}
        numbers[f"capacity_{f}"]["limits"] = d["limits"]
        numbers[f"capacity_{f}"]["mfu"] = c.estimate.mfu if c.estimate else None
    if main.training_flops is None:
        return KindResult(numbers=numbers, best_plan=None, assumptions=a.report(),
                          validation_error=_validation([system.chip.family]), facts={"fail": main.message})
    # ranges: goodput ends and the uncertain catalog inputs (tokens scale with throughput)
    est = main.estimate
    run = est.run
    gp = goodput_range(run.arch, chips, est.days, a)["fraction"]
    rng = propagate(run, metric=lambda r: r.best.tokens_per_s_per_chip if r.best else 0.0)
    f_nom = main.training_flops
    fl_lo = f_nom * (rng["low"] / rng["nominal"]) * (gp["low"] / gp["nominal"])
    fl_hi = f_nom * (rng["high"] / rng["nominal"]) * (gp["high"] / gp["nominal"])
    numbers["training_flops"] = _triple(fl_lo, f_nom, fl_hi, "FLOP")
    numbers["range_driver"] = rng["driver"]
    # cross-pod network: the same model with half / double the scale-out bandwidth
    net = {}
    for fct in inp.scale_out_factors:
        r2 = replace(run, system=scaled(run.system, "scale_out_bandwidth", fct))
        t = tokens_in_days(r2, days, a)
        net[f"x{fct:g}"] = None if t["tokens"] is None else t["tokens"] / main.tokens
    numbers["tokens_vs_scale_out_bandwidth"] = net
    numbers["reference_runs"] = refs
    ref = next((r for r in refs if r["name"] == inp.compare_with), refs[0] if refs else None)
    want = inp.claimed_factor
    facts: dict[str, Any] = {"message": main.message, "ref": ref, "want": want, "fams": fams,
                             "fam_flops": {f: caps[f].training_flops or 0 for f in fams}}
    if ref:
        ratios = {r["name"]: f_nom / r["flops"] for r in refs}
        numbers["ratio_to_reference"] = ratios
        lo, hi = fl_lo / ref["flops"], fl_hi / ref["flops"]
        nom = f_nom / ref["flops"]
        numbers["ratio_to_main_reference"] = _triple(lo, nom, hi)
        g = goodput(run.arch, chips, est.days, a)
        # where it flips: the restart time at which goodput gives exactly `want` x (model and plan held)
        g_need = g.fraction * want / nom
        r_flip = restart_for_goodput(run.arch, chips, a, g_need)
        numbers["restart_s_for_claimed_factor"] = r_flip
        facts.update(binding=[l_["limit"] for l_ in main.limits if l_["binding"]], goodput=g.fraction,
                     mtbf_hours=g.mtbf_hours, restart_s=g.restart_s, chips=chips, g_need=g_need,
                     ratio=(lo, nom, hi))
    return KindResult(
        numbers=numbers, best_plan=plan_summary(est),
        assumptions=[_input("fleet", f"{chips / system.scale_up_size:.0f} x {system.id}", inp.fleet_source,
                            inp.fleet_note)]
        + [_input(f"reference.{r['name']}", r["flops"], r["source"]) for r in refs] + a.report(),
        validation_error=_validation([system.chip.family]), facts=facts)


def verdict(res: KindResult) -> tuple[str, str]:
    f, n = res.facts, res.numbers
    if f.get("fail"):
        return "not supported", f["fail"]
    text = f["message"]
    ref, want = f["ref"], f["want"]
    if not ref:
        return "supported", text
    ratios = n["ratio_to_reference"]
    lo, nom, hi = f["ratio"]
    text += (f" (the largest of: {', '.join(f'{k} {v:.2e}' for k, v in f['fam_flops'].items())})"
             f"; that is {nom:.1f}x {ref['name']} ({lo:.1f}-{hi:.1f}x over goodput and catalog ranges)"
             + "".join(f", {v:.1f}x {k}" for k, v in ratios.items() if k != ref["name"]))
    binding = f["binding"]
    text += f"; binding limits: {', '.join(binding) if binding else 'none of memory/network/batch/failures'}"
    text += (f"; goodput {f['goodput']:.0%} (job MTBF {f['mtbf_hours'] * 60:.0f} min on {f['chips']:,} chips, "
             f"restart {f['restart_s'] / 60:.0f} min)")
    r_flip = n["restart_s_for_claimed_factor"]
    flip = ("; no restart time is short enough" if r_flip is None else
            f"; {want:g}x needs goodput {f['g_need']:.0%}, i.e. restarts under {r_flip / 60:.1f} min at the "
            f"Llama-3 failure rate" if r_flip < 7200 else "")
    if lo >= want:
        return "supported", text
    if nom >= want:
        return "depends on the failure rate and restart time", text + f"; the pessimistic end is {lo:.1f}x" + flip
    if hi >= want:
        return ("depends on the failure rate and restart time",
                text + f"; only the optimistic end reaches {want:g}x" + flip)
    return "not supported", text + f" - short of {want:g}x" + flip


handle = register_kind("fleet-capacity", Inputs, compute, verdict)
