"""Scenario kind ``frontier-sizing`` (S6): how many scale-up units a user-chosen frontier MoE needs to finish in a
given number of days, and the model that the claimed unit counts can train."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from ...types_checked import PosFloat, PosInt

from ...errors import TrainsimError
from ...model.counts import count
from ...model.counts import training_flops_6nd
from ...units import parse_count, parse_int_count
from ..capacity import OBJECTIVE, capacity, moe_shape
from ..common import at_chips, best, days_of, make_run, plan_summary
from ..failure_modes import check_options, options as fh_options, with_option
from ..goodput import goodput, goodput_range, restart_for_goodput
from ..economics import economics
from ..ranges import apply, fp4_efficiency_input, fp8_efficiency_input, propagate
from ..sizing import run_at, size
from .base import (KindInputs, KindResult, _input, _listify, _need, _stack_input, _triple, family_validation,
                   register_kind, short_name)
from ...catalog.resolve import resolve_system


class Inputs(KindInputs):
    """S6's inputs: the unit (system), the window, the precision, the claimed unit counts and the frontier model
    (``total_params``, ``active_params``, ``tokens``; a DeepSeek-V3-like shape is sized to them)."""

    system: Any = Field(description="catalog id or inline system of one unit")
    days: PosFloat = Field(90.0, description="the window, in days (the seed's 'about 3 months')")
    precision: str = Field("fp8", description="training precision")
    claimed_units: Any = Field([10, 20], description="the unit counts the claim names (one or a list)")
    frontier_model: dict = Field(description="{name, total_params, active_params, tokens, seq_len, "
                                             "global_batch_seqs, source, note}")
    capacity_evals: PosInt = Field(5, description="model shapes tried per capacity answer")
    failure_handling: list[str] = Field(["whole_job_restart", "in_memory_hot_spares"], min_length=1,
                                        description="failure-handling options compared (scenario/data/"
                                                    "failure_handling.yaml); the first is the nominal one")
    #: keys an entry of a list field must hold (base.parse_inputs)
    ENTRY_KEYS: ClassVar[dict] = {"reference_runs": (("name", "flops"),)}
    reference_runs: list[dict] = Field(default_factory=list, description="entries {name, flops, source}: runs the "
                                                                         "frontier model's FLOPs are placed beside")
    fp4_range: bool = Field(True, description="also size the run in FP4 where the chip has an FP4 peak: the sourced "
                                              "range of scenario/data/fp4_training.yaml (scenario/ranges.py)")


def compute(inp: Inputs, base_dir: Path) -> KindResult:
    """The numbers of scenario kind S6 ``frontier-sizing`` for ``inp`` (paths from ``base_dir``), no prose."""
    doc = inp.doc()
    check_options(inp.failure_handling)      # an unknown option was a KeyError deep in the sizing (exit 3)
    a = inp.assumption_set()
    system = resolve_system(_need(doc, "system"), base_dir)
    days = inp.days
    lm = inp.frontier_model
    total, active, tokens = (parse_count(lm[k], f"frontier_model.{k}") for k in ("total_params", "active_params",
                                                                                 "tokens"))
    shape = moe_shape(active, total / active, name=lm.get("name", "lean-mythos"))
    tr = {"tokens": tokens, "seq_len": lm.get("seq_len", 4096),        # both read by the run spec ("4K", "16K")
          "global_batch_seqs": lm.get("global_batch_seqs", 16384), "precision": inp.precision}
    claimed_units = [parse_int_count(u, "claimed_units") for u in _listify(inp.claimed_units)]
    if any(u < 1 for u in claimed_units):    # -1 units reached a logarithm (exit 3)
        raise TrainsimError(f"expected positive unit counts, got {claimed_units}", field="claimed_units")
    start_chips = max(claimed_units) * system.scale_up_size
    run = make_run(shape, doc["system"], start_chips, tr, base_dir, name=shape["name"], framework=doc.get("framework"))
    c = count(run.arch)
    claimed_units = claimed_units or [10, 20]
    scan = max(claimed_units)           # every count up to the claim's is probed (days are not monotone in it)
    sized = size(run, days, unit="system", assumptions=a, scan_upto=scan)
    # the same question at the optimistic end of the failure assumptions and without failures (cached searches)
    need_opt = not (sized.feasible and sized.units <= max(claimed_units))
    sized_opt = (size(run, days, unit="system", assumptions=a, goodput_end="high", scan_upto=scan) if need_opt
                 else sized)
    sized_ideal = size(run, days, unit="system", assumptions=None, scan_upto=scan)
    keep = lambda r: {k: v for k, v in r.to_dict().items() if k not in ("best_plan",)}  # noqa: E731
    numbers: dict[str, Any] = {
        "frontier_model": {"total_params": float(c.total_params), "active_params": float(c.active_params),
                           "tokens": tokens, "training_flops_6na": training_flops_6nd(c.active_params, tokens),
                           "shape": shape},
        "sizing": keep(sized),
        "sizing_optimistic_failures": {k: v for k, v in keep(sized_opt).items() if k != "probes"},
        "sizing_without_failures": {k: v for k, v in keep(sized_ideal).items() if k != "probes"},
    }
    rng = None
    if sized.feasible:
        srun = at_chips(run, sized.chips)
        rng = propagate(srun)
        g = goodput(run.arch, sized.chips, sized.days, a)
        gp = goodput_range(run.arch, sized.chips, sized.days, a)["fraction"]
        numbers["days_at_sized_count"] = _triple(rng["low"] / gp["high"], sized.effective_days,
                                                 rng["high"] / gp["low"], "days (with failures)")
        numbers["range_inputs"] = [{k: r[k] for k in ("input", "low", "high", "result_at_low", "result_at_high")}
                                   for r in rng["by_input"]]
        numbers["range_driver"] = rng["driver"]
        numbers["goodput"] = g.fraction
    fam_a = a.with_overrides({"moe_sparsity": total / active})
    caps: dict = {}
    # smallest count first, each answer the floor of the next (capacity's at_least: more units never train less)
    for u in sorted(set(claimed_units)):
        cap = capacity(system, u * system.scale_up_size, days, fam_a, family="deepseek-v3",
                       precision=tr["precision"], max_evals=inp.capacity_evals, plan_counts=False,  # binding only
                       framework=doc.get("framework"), at_least=caps[max(caps)] if caps else None)
        caps[u] = cap
    numbers["capacity_objective"] = OBJECTIVE
    for u in claimed_units:
        cap = caps[u]
        d = cap.to_dict()
        numbers[f"capacity_{u}_units"] = {k: d[k] for k in ("total_params", "active_params", "tokens",
                                                            "training_flops", "chips_used", "goodput", "message")}
        numbers[f"capacity_{u}_units"]["binding_limits"] = [l_["limit"] for l_ in d["limits"] if l_["binding"]]
    hi_u = max(claimed_units)
    flip: dict[str, Any] = {}
    if not (sized.feasible and sized.units <= hi_u) and sized_opt.feasible and sized_opt.units <= hi_u:
        chips_hi = hi_u * system.scale_up_size
        d_hi = days_of(best(run_at(run, chips_hi)))
        r_flip = restart_for_goodput(run.arch, chips_hi, a, d_hi / days) if math.isfinite(d_hi) else None
        numbers["restart_s_for_claimed_units"] = r_flip
        flip = {"d_hi": d_hi, "r_flip": r_flip,
                "mtbf_min_hi": goodput(run.arch, chips_hi, 1.0, a).mtbf_hours * 60}
    # failure handling as a choice: the same sizing with each other option's restart time and checkpoint speed
    fh = {}
    fh_res = {inp.failure_handling[0]: sized} if inp.failure_handling else {}
    for opt in inp.failure_handling[1:]:
        s_o = size(run, days, unit="system", assumptions=with_option(a, opt), scan_upto=scan)
        fh_res[opt] = s_o
        fh[opt] = {"label": fh_options()[opt]["label"], "feasible": s_o.feasible, "units": s_o.units,
                   "chips": s_o.chips, "effective_days": s_o.effective_days, "message": s_o.message,
                   "source": fh_options()[opt]["source"]}
    if fh:
        fh = {inp.failure_handling[0]: {"label": fh_options()[inp.failure_handling[0]]["label"],
                                        "feasible": sized.feasible, "units": sized.units, "chips": sized.chips,
                                        "effective_days": sized.effective_days, "message": sized.message,
                                        "source": fh_options()[inp.failure_handling[0]]["source"]}, **fh}
        numbers["sizing_by_failure_handling"] = [{"failure_handling": k, **v} for k, v in fh.items()]
    prec_rows = _precision_sizings(run, system, inp, a, scan)
    if prec_rows:
        numbers["sizing_over_precision_inputs"] = prec_rows
    cost = _cost_at(fh_res, a)
    if cost:
        numbers["cost_at_sized_count"] = cost
    fl_model = training_flops_6nd(c.active_params, tokens)
    if inp.reference_runs:
        numbers["reference_runs"] = [{"name": r["name"], "flops": float(r["flops"]), "source": r.get("source", ""),
                                      "frontier_model_over_it": fl_model / float(r["flops"])}
                                     for r in inp.reference_runs]
    facts = {"days": days, "fh": fh, "system_name": short_name(system), "system": system.id, "scale_up": system.scale_up_size, "claimed_units": claimed_units,
             "total": float(c.total_params), "active": float(c.active_params), "tokens": tokens,
             "sized": sized, "sized_opt": sized_opt, "sized_ideal": sized_ideal,
             "caps": {u: (cap.training_flops, cap.total_params, cap.active_params, cap.tokens, cap.chips_used)
                      for u, cap in caps.items()},
             "driver": rng["driver"] if rng and rng["driver"] else "goodput", "prec": prec_rows,
             "cost": cost, "fh_nominal": inp.failure_handling[0] if inp.failure_handling else None, **flip}
    return KindResult(numbers=numbers, best_plan=plan_summary(sized.estimate),
                      assumptions=[_input("frontier_model", lm, lm.get("source", "scenario file"),
                                          lm.get("note", "")),
                                   _stack_input(f"software stack on {short_name(system)}", doc, system=system)] + a.report(),
                      validation_error=family_validation([(system, max([u * system.scale_up_size for u in claimed_units]
                                                                  + ([sized.chips] if getattr(sized, "chips", None) else [])))]),
                      facts=facts)


def _precision_sizings(run, system, inp: Inputs, a, scan: int) -> list[dict]:
    """The sizing again at each end of the uncertain precision inputs of an unshipped chip (scenario/ranges.py):
    the FP8 GEMM efficiency (low and high end; nominal is the main sizing) and, where the chip has an FP4 peak and
    ``fp4_range`` is set, FP4 training at its low and high realised gain; each with every failure-handling option
    and without failures, counts searched up to twice the claim's. One row per (input, end)."""
    inputs = []
    fp8 = fp8_efficiency_input(system, inp.precision)
    if fp8:
        inputs += [("fp8_efficiency", end, fp8) for end in ("low", "high")]
    fp4 = fp4_efficiency_input(system) if inp.fp4_range and inp.precision == "fp8" else None
    if fp4:
        inputs += [("fp4", end, fp4) for end in ("low", "high")]
    rows = []
    p_nom = system.chip.peak_flops["fp8"]
    for name, end, u in inputs:
        r_v = replace(run, system=apply(system, "chip", "fp8_flops", u[end]))
        factor = min(1.0, p_nom / u[end])
        row: dict[str, Any] = {"input": name, "end": end, "effective_fp8_peak_flops": u[end], "reason": u["reason"],
                               "max_units_searched": 2 * scan}
        for opt in [*inp.failure_handling, None]:
            a_o = with_option(a, opt) if opt else None
            s_v = size(r_v, inp.days, unit="system", assumptions=a_o, scan_upto=scan, max_units=2 * scan,
                       scan_skip=_slower_than(run, a_o, factor, inp.days))
            row[opt or "without_failures"] = {"feasible": s_v.feasible, "units": s_v.units,
                                              "effective_days": s_v.effective_days}
        rows.append(row)
    return rows


def _slower_than(run, a_o, factor: float, deadline_days: float):
    """A predicate for :func:`trainsim.scenario.sizing.size`'s ``scan_skip``: True for a unit count at which a
    variant of ``run`` whose FP8 peak is 1 / ``factor`` times the nominal one (``factor`` <= 1; 1 for a slower
    variant) provably misses the deadline. Every term of a step either scales with 1 / peak (GEMMs, the bubble) or
    does not depend on it (memory-bound work, communication; an overlap hides at most what the shorter compute
    covers), so at any plan the variant's step is at least ``factor`` x the nominal one, and so is its best plan's;
    goodput depends on the count, not the days. Hence its wall-clock days >= factor x the nominal ones, read from
    the nominal sizing's memoised searches (a 2% margin is kept)."""
    uc = max(1, run.system.scale_up_size)

    def skip(units: int) -> bool:
        d = days_of(best(run_at(run, units * uc)))
        if not math.isfinite(d):
            return False
        gp = goodput(run.arch, units * uc, d, a_o).fraction if a_o is not None else 1.0
        return gp > 0 and factor * d / gp > 1.02 * deadline_days

    return skip


def _cost_at(results: dict, a) -> dict | None:
    """Cluster price and run cost (amortised capex + power, rental-equivalent), low / nominal / high over the
    system's price range (catalog ranges.yaml), at the smallest count that finishes with the first failure-handling
    option (``results``: option -> its SizingResult, in the scenario's order) that finishes; None when none does or
    the system has no price."""
    for opt, res in results.items():
        if res.feasible and res.estimate is not None:
            a_o = with_option(a, opt)
            est = res.estimate
            eco = economics(est, a_o, goodput=goodput(est.run.arch, res.chips, est.days, a_o))
            if eco["cluster_capex_usd"]["nominal"] is None:
                return None
            return {"units": res.units, "chips": res.chips, "failure_handling": opt,
                    "cluster_capex_usd": eco["cluster_capex_usd"], "cost_capex_usd": eco["cost_capex_usd"],
                    "cost_rental_usd": eco["cost_rental_usd"], "effective_days": eco["effective_days"]}
    return None


def _units_over(prec: list[dict], opt: str, nominal_units: int | None, which: str) -> tuple[int | None, int | None]:
    """(fewest, most) SuperPoDs that finish with failure handling ``opt`` over the ends of one precision input
    (``which``: 'fp8_efficiency', with the nominal sizing's ``nominal_units`` as its middle, or 'fp4'); None for an
    end at which no count searched finishes."""
    rows = [r for r in prec if r["input"] == which]
    if not rows:
        return None, None
    us = [r[opt]["units"] if r[opt]["feasible"] else None for r in rows]
    if which == "fp8_efficiency":
        us.append(nominal_units)
    ok = [u for u in us if u is not None]
    return (min(ok) if ok else None), (None if None in us else max(ok))


def _span(lo: int | None, hi: int | None, cap: int) -> str:
    """'15-30', '15', 'from 15 (none up to 40 at the other end)' or 'none up to 40' (``cap`` the top searched)."""
    if lo is None:
        return f"none up to {cap}"
    if hi is None:
        return f"from {lo} (none up to {cap} at the other end)"
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _headline(f: dict, n: dict, cls: str) -> tuple[str, str]:
    """(headline, deciding assumption)."""
    days, hi_u = f["days"], max(f["claimed_units"])
    fl = training_flops_6nd(f["active"], f["tokens"])
    head = (f"The assumed lean frontier MoE ({f['total'] / 1e12:.1f}T total / {f['active'] / 1e9:.0f}B active on "
            f"{f['tokens'] / 1e12:.0f}T tokens, {fl:.1e} FLOP")
    refs = n.get("reference_runs") or []
    if refs:
        big = max(refs, key=lambda r: r["flops"])
        head += f", {fl / big['flops']:.1f}x {big['name']}"
    head += ")"
    fh = f["fh"]
    ok = {o: v for o, v in fh.items() if v["feasible"] and v["units"] <= hi_u}
    bad = {o: v for o, v in fh.items() if o not in ok}
    say = lambda v: (f"{v['units']} SuperPoDs, {v['effective_days']:.0f} days" if v["feasible"]  # noqa: E731
                     else "no count finishes in time")
    sized, ideal = f["sized"], f["sized_ideal"]
    if fh and ok and bad:
        o, b = next(iter(ok)), next(iter(bad))
        deciding = f"failure handling: {say(ok[o])} with {ok[o]['label']}; {say(bad[b])} with {bad[b]['label']}"
        miss = (f"it needs {bad[b]['units']} SuperPoDs" if bad[b]["feasible"] else
                f"no count of SuperPoDs finishes it in {days:g} days")
        prec, cap = f.get("prec") or [], 2 * hi_u
        lo8, hi8 = _units_over(prec, o, ok[o]["units"], "fp8_efficiency")
        lo4, hi4 = _units_over(prec, o, None, "fp4")
        rng = ""
        if lo8 is not None or hi8 is not None or prec:
            rng = f" ({_span(lo8, hi8, cap)} over the FP8-efficiency range"
            rng += f", {_span(lo4, hi4, cap)} in FP4)" if any(r["input"] == "fp4" for r in prec) else ")"
        flips8 = hi8 is None or (hi8 is not None and hi8 > hi_u)
        if flips8:
            deciding += (f"; and the unshipped chip's FP8 efficiency: {_span(lo8, hi8, cap)} SuperPoDs with "
                         f"{ok[o]['label']} over its range")
        tail = (f"With {bad[b]['label']} {miss}"
                + (f"; at the pessimistic FP8 efficiency even {ok[o]['label']} need more than {hi_u}." if flips8
                   else (f" (without any failures {ideal.units} would do)." if ideal.feasible else ".")))
        return (head + f" needs {say(ok[o]).split(',')[0]} for {days:g} days if failures are handled with "
                f"{ok[o]['label']}{rng}. " + tail, deciding)
    if sized.feasible:
        return (head + f" needs {sized.units} SuperPoDs ({sized.effective_days:.0f} days with failures) for "
                f"{days:g} days.", "the failure rate and restart time" if cls.startswith("depends") else
                f"{sized.units} SuperPoDs at the nominal failure rate")
    extra = f" (without any failures {ideal.units} would do)" if ideal.feasible else ""
    return (head + f" cannot be trained in {days:g} days by {hi_u} SuperPoDs with any failure handling "
            f"tried{extra}.", "more units than claimed with every failure-handling option")


def _verdict_text(res: KindResult) -> tuple[str, str]:
    f, n = res.facts, res.numbers
    days, sized, sized_opt, sized_ideal = f["days"], f["sized"], f["sized_opt"], f["sized_ideal"]
    fl = training_flops_6nd(f["active"], f["tokens"])
    text = (f"the assumed lean frontier model ({f['total'] / 1e12:.1f}T total / {f['active'] / 1e9:.0f}B "
            f"active, {f['tokens'] / 1e12:.0f}T tokens, {fl:.2e} FLOP) ")
    if sized.feasible:
        text += (f"needs {sized.units} {f['system_name']} units ({sized.chips:,} chips) for {days:g} days "
                 f"({sized.effective_days:.0f} days with failures, MFU {sized.estimate.mfu:.0%})")
    else:
        nom = fh_options().get(f["fh_nominal"], {}).get("label") if f.get("fh_nominal") else None
        text += (f"cannot be trained in {days:g} days" + (f" with {nom} (the nominal failure handling)" if nom else "")
                 + f": {sized.message}")
    first = True
    for u, (cap_fl, cap_tot, cap_act, cap_tok, cap_used) in f["caps"].items():
        if cap_fl:
            on = (f" on {cap_used / f['scale_up']:g} of them (fewer chips fail less often)"
                  if cap_used and cap_used < u * f["scale_up"] else "")
            text += (f"; {u} units{' (the most training FLOP they finish in time, model size following)' if first else ''}"
                     f" train a {cap_tot / 1e12:.1f}T/{cap_act / 1e9:.0f}B model on {cap_tok / 1e12:.0f}T tokens{on} "
                     f"({cap_fl:.1e} FLOP)")
            first = False
    if sized_ideal.feasible:
        text += f"; without failures {sized_ideal.units} units ({sized_ideal.days:.0f} days) would do"
    for r in f.get("prec") or []:
        what = ("FP8 GEMM efficiency at its " + ("pessimistic" if r["end"] == "low" else "optimistic") + " end"
                if r["input"] == "fp8_efficiency" else f"FP4 training at its {r['end']} realised gain")
        parts = []
        for k, v in r.items():
            if isinstance(v, dict) and "feasible" in v:
                lab = ("without failures" if k == "without_failures"
                       else "with " + fh_options().get(k, {}).get("label", k))
                parts.append(f"{v['units']} ({v['effective_days']:.0f} days) {lab}" if v["feasible"]
                             else f"none up to {r['max_units_searched']} {lab}")
        text += f"; {what}: " + ", ".join(parts)
    cost = f.get("cost")
    if cost:
        cc, cx, cr = cost["cluster_capex_usd"], cost["cost_capex_usd"], cost["cost_rental_usd"]
        text += (f"; {cost['units']} SuperPoDs cost ${cc['nominal'] / 1e9:.1f}B (${cc['low'] / 1e9:.1f}-"
                 f"{cc['high'] / 1e9:.1f}B over the pod price's range, $138-341M per pod, no published price) and the "
                 f"run ${cx['nominal'] / 1e6:.0f}M amortised with power (${cx['low'] / 1e6:.0f}-{cx['high'] / 1e6:.0f}M)"
                 + (f" or ${cr['nominal'] / 1e6:.0f}M at rental-equivalent prices" if cr.get("nominal") else ""))
    text += ". The Atlas 950 SuperPoD is announced, not shipped: every hardware input is a vendor figure"
    lo_u, hi_u = min(f["claimed_units"]), max(f["claimed_units"])
    if sized.feasible and sized.units <= hi_u:
        dr = n.get("days_at_sized_count", {})
        drv = f["driver"]
        if dr.get("high") is not None and dr["high"] > days:
            return f"depends on {drv}", text + (f"; at the pessimistic end of {drv} the sized count takes "
                                                f"{dr['high']:.0f} days")
        return "supported", text + (f"; fewer than {lo_u} suffice" if sized.units < lo_u else "")
    if sized_opt.feasible and sized_opt.units <= hi_u:
        if f.get("r_flip") is not None:
            text += (f". {hi_u} units ({f['d_hi']:.0f} days without failures) make it if restarts take under "
                     f"{f['r_flip'] / 60:.1f} min at the Llama-3 failure rate")
        return ("depends on the failure rate and restart time", text
                + f". With half the Llama-3 interruption rate, 5-min restarts and fast checkpoint storage "
                  f"(the optimistic end) {sized_opt.units} units finish in {sized_opt.effective_days:.0f} days; "
                  f"at the nominal rate and 10-min restarts the job MTBF on {hi_u * f['scale_up']:,} chips "
                  f"is {f['mtbf_min_hi']:.0f} min")
    return "not supported", text + (f"; more than {hi_u} units are needed for this model even at the "
                                    f"optimistic end of the failure assumptions")


def verdict(res: KindResult) -> tuple[str, str, str]:
    """Scenario kind S6 ``frontier-sizing``'s (verdict class, headline, details) from its computed result."""
    cls, text = _verdict_text(res)
    f = res.facts
    fh = f["fh"]
    hi_u = max(f["claimed_units"])
    if fh:
        ok = [o for o, v in fh.items() if v["feasible"] and v["units"] <= hi_u]
        if ok and len(ok) < len(fh):
            cls = "depends on failure handling"
            lo8, hi8 = _units_over(f.get("prec") or [], ok[0], fh[ok[0]]["units"], "fp8_efficiency")
            if hi8 is None or hi8 > hi_u:
                cls = "depends on failure handling and FP8 efficiency"
        elif ok:
            cls = "supported" if cls == "not supported" else cls
    head, deciding = _headline(f, res.numbers, cls)
    f["deciding"] = deciding
    return cls, head, text


handle = register_kind("frontier-sizing", Inputs, compute, verdict)
