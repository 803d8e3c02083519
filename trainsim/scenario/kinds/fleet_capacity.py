"""Scenario kind ``fleet-capacity`` (S4): the largest pretraining run a fleet of scale-up units finishes in a given
number of days (per model family), its FLOPs against reference runs, and the restart time where the claimed
factor flips."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from ...types_checked import PosFloat, StatedChips
from ...spec import chips_as_stated

from ..capacity import capacity, tokens_in_days
from ..common import plan_summary
from ..economics import training_flops
from ..failure_modes import check_options, options as fh_options, with_option
from ...units import parse_count
from ..goodput import goodput, goodput_range, restart_for_goodput
from ..ranges import propagate
from ..sensitivity import scaled
from .base import (KindInputs, KindResult, _chips, _input, _job_run, _listify, _need, _stack_input, _triple,
                   family_validation, load_doc, register_kind, short_name)
from ...catalog.resolve import resolve_system


class Inputs(KindInputs):
    """S4's inputs: the fleet (system and pods or chips), the window, the families searched, the claimed factor
    and the reference runs it is measured against."""

    system: Any = Field(description="catalog id or inline system of one unit")
    days: PosFloat = Field(90.0, description="the window, in days (the seed's 'about 3 months')")
    precision: str = Field("bf16", description="training precision")
    family: Any = Field("deepseek-v3", description="model family or list of families whose largest run is sought")
    claimed_factor: PosFloat = Field(10.0, description="the claim's 'an order of magnitude larger' as a factor")
    compare_with: str | None = Field(None, description="name of the reference run the factor is measured against "
                                                       "(default: the first)")
    #: keys an entry of a list field must hold (base.parse_inputs)
    ENTRY_KEYS: ClassVar[dict] = {"reference_runs": (("name", "flops"), ("scenario",))}
    reference_runs: list[dict] = Field(default_factory=list, description="entries {name, flops, source} or "
                                                                         "{name, scenario}")
    scale_out_factors: list[PosFloat] = Field([0.5, 2.0], description="scale-out bandwidth factors tried")
    headline_family: str = Field("deepseek-v3", description="the family the headline answers for: the seed means "
                                 "a bigger DeepSeek-V4/Kimi-K3-class MoE, i.e. capacity's DeepSeek-V3-like MoE shape "
                                 "at the assumed sparsity (an explicit assumption); other families are comparisons")
    failure_handling: list[str] = Field(["whole_job_restart", "in_memory_hot_spares", "partial_restart"], min_length=1,
                                        description="failure-handling options compared (scenario/data/"
                                                    "failure_handling.yaml); the first is the nominal one")
    fleet_chips: list[StatedChips] = Field(default_factory=list, description="whole-fleet chip counts also answered (the "
                                                                     "seed's 750K-1M Ascend 910C)")
    fleet_chips_source: str = Field("", description="source of the fleet chip counts")
    fleet_source: str = Field("scenario file", description="source of the fleet size")
    fleet_note: str = Field("", description="caveats of pooling the fleet")


def _reference_runs(refs: list[dict], base_dir: Path) -> list[dict]:
    out = []
    for r in refs:
        if "scenario" in r:
            other = load_doc(Path(base_dir) / r["scenario"])
            orun = _job_run(other, base_dir)
            fl = training_flops(orun.arch, orun.training.tokens)["flops_6na"]
            out.append({"name": r.get("name", other.get("id")), "flops": fl,
                        "source": f"scenario {other.get('id')} (6 x active x tokens)"})
        else:
            out.append({"name": r["name"], "flops": parse_count(r["flops"], "reference_runs.flops"),
                        "source": r.get("source", "")})
    return out


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S4 ``fleet-capacity`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    check_options(inp.failure_handling)      # an unknown option was a KeyError deep in the sizing (exit 3)
    a = inp.assumption_set()
    system = resolve_system(_need(doc, "system"), base_dir)
    chips = _chips(doc, system)
    days = inp.days
    fams = _listify(inp.family)
    numbers: dict[str, Any] = {"chips": chips, "units": chips / system.scale_up_size, "days": days,
                               "peak_bf16_eflops": chips * system.chip.flops("bf16") / 1e18}
    fw = doc.get("framework")     # the software stack of the fleet's chips (None: the default profile)
    caps = {f: capacity(system, chips, days, a, family=f, precision=inp.precision, framework=fw) for f in fams}
    # the headline answers for the family the seed means (its MoE); the others are comparisons
    main_f = inp.headline_family if caps.get(inp.headline_family) is not None and \
        caps[inp.headline_family].training_flops else max(fams, key=lambda f: caps[f].training_flops or 0.0)
    main = caps[main_f]
    numbers["headline_family"] = main_f
    numbers["largest_family"] = max(fams, key=lambda f: caps[f].training_flops or 0.0)
    refs = _reference_runs(inp.reference_runs, base_dir)
    for f, c in caps.items():
        d = c.to_dict()
        numbers[f"capacity_{f}"] = {k: d[k] for k in ("total_params", "active_params", "tokens", "training_flops",
                                                      "compute_optimal_tokens", "goodput", "message")}
        numbers[f"capacity_{f}"]["limits"] = d["limits"]
        numbers[f"capacity_{f}"]["mfu"] = c.estimate.mfu if c.estimate else None
    if main.training_flops is None:
        return KindResult(numbers=numbers, best_plan=None, assumptions=a.report(),
                          validation_error=family_validation([(system, chips)]), facts={"fail": main.message})
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
        # failure handling as a choice: goodput of each option (model and plan held; tokens scale with goodput)
        fh = {}
        for opt in inp.failure_handling:
            ao = with_option(a, opt)
            go = goodput(run.arch, chips, est.days, ao)
            gr = goodput_range(run.arch, chips, est.days, ao)["fraction"]
            fl_o = f_nom * go.fraction / g.fraction
            fh[opt] = {"label": fh_options()[opt]["label"], "goodput": _triple(gr["low"], go.fraction, gr["high"]),
                       "restart_s": go.restart_s, "checkpoint_interval_s": go.interval_s,
                       "training_flops": _triple(f_nom * gr["low"] / g.fraction, fl_o,
                                                 f_nom * gr["high"] / g.fraction, "FLOP"),
                       "ratio_to_main_reference": fl_o / ref["flops"],
                       "source": fh_options()[opt]["source"]}
        numbers["by_failure_handling"] = fh
        facts.update(binding=[l_["limit"] for l_ in main.limits if l_["binding"]], goodput=g.fraction,
                     mtbf_hours=g.mtbf_hours, restart_s=g.restart_s, chips=chips, g_need=g_need,
                     ratio=(lo, nom, hi))
    fleet = {}
    # "400 pods", "150K": the run spec's parser (an integer passes through)
    stated = [chips_as_stated(n, system, base_dir, f"scenario {doc.get('id', '?')}", "fleet_chips")
              for n in inp.fleet_chips]
    runs: dict = {}
    # smallest fleet first, each answer the floor of the next (capacity's at_least: more chips never give less)
    for n_chips in sorted(stated, key=int):
        units = max(1, int(n_chips) // system.scale_up_size)
        for opt in dict.fromkeys([inp.failure_handling[0], "in_memory_hot_spares"]):
            prev = [c for (u, o), c in runs.items() if o == opt and u < units]
            runs[(units, opt)] = capacity(system, units * system.scale_up_size, days, with_option(a, opt),
                                          family=main_f, precision=inp.precision, plan_counts=False,  # not printed
                                          framework=fw, at_least=prev[-1] if prev else None)
    for n_chips in stated:
        units = max(1, int(n_chips) // system.scale_up_size)
        for opt in dict.fromkeys([inp.failure_handling[0], "in_memory_hot_spares"]):
            cap_f = runs[(units, opt)]
            used = cap_f.estimate.run.chips if cap_f.estimate else None
            fleet[f"{int(n_chips):,} chips, {opt.replace('_', ' ')}"] = {
                "chips": units * system.scale_up_size, "chips_used": used, "failure_handling": opt,
                "total_params": cap_f.total_params, "active_params": cap_f.active_params, "tokens": cap_f.tokens,
                "training_flops": cap_f.training_flops, "goodput": cap_f.goodput,
                "ratio_to_main_reference": (cap_f.training_flops / ref["flops"]) if ref and cap_f.training_flops
                else None}
    if fleet:
        numbers["whole_fleet"] = list({"case": k, **v} for k, v in fleet.items())
    facts.update(system_name=short_name(system), family_flops={f: caps[f].training_flops for f in fams},
                 main_shape=(main.total_params, main.active_params, main.tokens), main_family=main_f,
                 dense=caps.get("dense"))
    return KindResult(
        numbers=numbers, best_plan=plan_summary(est),
        assumptions=[_input("fleet", f"{chips / system.scale_up_size:.0f} x {system.id}", inp.fleet_source,
                            inp.fleet_note), _stack_input(f"software stack on {short_name(system)}", doc,
                                                                     system=system)]
        + [_input(f"reference.{r['name']}", r["flops"], r["source"]) for r in refs] + a.report(),
        validation_error=family_validation([(system, chips)]), facts=facts)


def _headline(f: dict, n: dict) -> tuple[str, str, str]:
    """(class, headline, deciding assumption) from the failure-handling options' FLOP ratios."""
    ref, want = f["ref"], f["want"]
    tot, act, tok = f["main_shape"]
    fl = n["training_flops"]["nominal"]
    fams = "MoE" if f["main_family"] != "dense" else "dense model"
    head = (f"Pooled over one network, {n['units']:.0f} pods train a {tot / 1e12:.1f}T-total / {act / 1e9:.0f}B-active "
            f"{fams} on {tok / 1e12:.0f}T tokens in {n['days']:g} days: {fl:.1e} FLOP, {fl / ref['flops']:.1f}x "
            f"the {ref['name']} run")
    big = max((r for r in n["reference_runs"] if r["name"] != ref["name"]), key=lambda r: r["flops"], default=None)
    if big:
        head += f" and {fl / big['flops']:.1f}x {big['name']}"
    fh = n.get("by_failure_handling") or {}
    ratio = lambda o, e="nominal": fh[o]["training_flops"][e] / ref["flops"]  # noqa: E731
    holds = [o for o in fh if ratio(o, "low") >= want]          # even at the pessimistic end
    fails = [o for o in fh if ratio(o) < want]                  # already at nominal
    marginal = [o for o in fh if o not in holds and o not in fails]
    r_flip = n.get("restart_s_for_claimed_factor")
    lab = lambda o: fh[o]["label"]  # noqa: E731
    if fh and holds and len(holds) == len(fh):
        return ("supported", head + f"; at least {want:g}x with every failure-handling option, even at the "
                f"pessimistic failure rate.", "holds with every failure-handling option")
    if fh and holds:
        o = holds[0]
        other = (fails or marginal)[0]
        why = (f"{ratio(other):.1f}x nominal but {ratio(other, 'low'):.1f}x at twice the failure rate and "
               f"30-min restarts" if other in marginal else f"{ratio(other):.1f}x")
        flip = f", i.e. only while restarts stay under {r_flip / 60:.0f} min" if r_flip and other in marginal \
            and r_flip < 7200 else ""
        deciding = (f"failure handling: {want:g}x holds with {lab(o)} ({ratio(o, 'low'):.1f}-{ratio(o, 'high'):.1f}x); "
                    f"with {lab(other)} {why}{flip}")
        return ("depends on failure handling", head + f". Supported if failures are handled with {lab(o)} "
                f"({ratio(o):.1f}x, {ratio(o, 'low'):.1f}x at worst); with {lab(other)} {why}{flip}.", deciding)
    best_o = max(fh, key=ratio) if fh else None
    if best_o and ratio(best_o) >= want:
        return ("depends on the failure rate", head + f". Supported at the nominal failure rate ({ratio(best_o):.1f}x "
                f"with {lab(best_o)}); not at its pessimistic end ({ratio(best_o, 'low'):.1f}x).",
                "the failure rate per chip-hour")
    return "not supported", head + (f"; short of {want:g}x even with {lab(best_o)} ({ratio(best_o):.1f}x)."
                                    if best_o else "."), f"short of {want:g}x with every failure-handling option"


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S4 ``fleet-capacity``'s (verdict class, headline, details) from its computed result."""
    f, n = res.facts, res.numbers
    if f.get("fail"):
        return "not supported", "No model of the families tried fits the fleet.", f["fail"]
    text = f["message"]
    ref, want = f["ref"], f["want"]
    if not ref:
        return "supported", text.split(";")[0] + ".", text
    ratios = n["ratio_to_reference"]
    lo, nom, hi = f["ratio"]
    text += (f" (per family: {', '.join(f'{k} {v:.2e}' for k, v in f['fam_flops'].items())}; the headline answers for "
             f"{f['main_family']}, the seed's MoE, the others are comparisons)"
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
    text += flip
    for v in n.get("whole_fleet") or []:
        if v.get("training_flops"):
            text += (f"; the whole estimated fleet, {v['chips']:,} chips with {v['failure_handling'].replace('_', ' ')}"
                     f", uses {v['chips_used']:,} of them for a {v['training_flops']:.1e} FLOP run "
                     f"({v['ratio_to_main_reference']:.1f}x)")
    cls, head, deciding = _headline(f, n)
    res.facts["deciding"] = deciding
    return cls, head, text


handle = register_kind("fleet-capacity", Inputs, compute, verdict)
