"""Handlers of the seed-scenario kinds (scenarios/S1.yaml ... S9.yaml).

Every handler takes ``(doc, base_dir)`` and returns a dict with ``id``, ``kind``, ``claim``, ``question``,
``verdict`` (a sentence that starts with "supported", "not supported" or "depends on ..."), ``verdict_class``,
``numbers`` (scalars, or ``{low, nominal, high}`` where an input is uncertain), ``best_plan``, ``assumptions``
(each with its source) and ``validation_error`` (the engine's held-out error for the chip families involved).
Numbers come from the engine; nothing here hard-codes a result.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any


from ..errors import TrainsimError
from ..model.counts import count
from ..perf.calibration import validation_error
from .assumptions import Assumptions
from .capacity import capacity, dense_shape, moe_shape, tokens_in_days
from .common import at_chips, best, comm_fraction, days_of, make_run, plan_summary, where_time_goes
from .economics import economics, training_flops
from .goodput import goodput, goodput_range
from .ranges import propagate
from .registry import register
from .sensitivity import elasticity, scaled, sensitivity, threshold
from .sizing import run_at, size

# ---------------------------------------------------------------- helpers


def _need(doc: dict, key: str):
    if key not in doc:
        raise TrainsimError("missing key", field=key, where=f"scenario {doc.get('id', '?')}")
    return doc[key]


def _listify(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _assumptions(doc: dict) -> Assumptions:
    return Assumptions().with_overrides(doc.get("assumptions"))


def load_doc(path: Path) -> dict:
    """A scenario YAML; numeric strings under ``claimed`` and ``frontier_model`` become numbers (PyYAML reads
    ``1.6e12`` without an exponent sign as a string)."""
    from .assumptions import _num

    path = Path(path)
    if not path.exists():
        raise TrainsimError(f"no such scenario file: {path}")
    from ..io import read_yaml

    doc = read_yaml(path, what="scenario file") or {}
    if not isinstance(doc, dict):
        raise TrainsimError("expected a mapping", where=str(path))
    for key in ("claimed", "frontier_model"):
        if isinstance(doc.get(key), dict):
            doc[key] = _num(doc[key])
    for r in doc.get("reference_runs") or []:
        if isinstance(r, dict) and "flops" in r:
            r["flops"] = float(r["flops"])
    return doc


def _sibling(doc: dict, key: str, base_dir: Path) -> dict:
    return load_doc(Path(base_dir) / _need(doc, key))


def _system_id(system) -> str:
    if isinstance(system, str):
        return system
    return str(system.get("id") or system.get("base") or system.get("name") or "inline")


def _chips(doc: dict, system_obj) -> int:
    if "chips" in doc:
        return int(doc["chips"])
    if "pods" in doc or "units" in doc:
        return int(doc.get("pods", doc.get("units"))) * system_obj.scale_up_size
    raise TrainsimError("give chips or pods", where=f"scenario {doc.get('id', '?')}")


def _job_run(doc: dict, base_dir: Path, *, system=None, chips=None, precision=None, name=None):
    """The run of a scenario document (model, system, chips/pods, training) with optional changes."""
    from ..catalog.resolve import resolve_system

    training = dict(_need(doc, "training"))
    if precision:
        training["precision"] = precision
    sysv = system if system is not None else _need(doc, "system")
    sys_obj = resolve_system(sysv, base_dir)
    n = chips if chips is not None else _chips(doc, sys_obj)
    return make_run(_need(doc, "model"), sysv, n, training, base_dir, name=name or str(doc.get("id", "scenario")))


def _validation(families) -> dict:
    out = {}
    for fam in dict.fromkeys(families):
        v = validation_error(fam)
        out[fam] = v if v is not None else {"note": "no held-out validation figure in calibration.yaml yet"}
    return out


def _input(key: str, value: Any, source: str, note: str = "") -> dict:
    d = {"key": key, "value": value, "source": source, "confidence": "scenario input"}
    if note:
        d["note"] = note
    return d


def _model_inputs(doc: dict) -> list[dict]:
    m = doc.get("model")
    out = [_input("model", m if isinstance(m, str) else (m.get("name", "inline") if isinstance(m, dict) else m),
                  doc.get("model_source", "scenario file"), doc.get("model_note", ""))]
    tr = doc.get("training") or {}
    if tr:
        out.append(_input("training", tr, doc.get("training_source", "scenario file"), doc.get("training_note", "")))
    return out


def _base(doc: dict) -> dict:
    return {"id": doc.get("id"), "kind": doc.get("kind"), "claim": doc.get("claim", ""),
            "question": doc.get("question", "")}


def _verdict(cls: str, text: str) -> dict:
    return {"verdict_class": cls, "verdict": f"{cls}: {text}"}


def _triple(lo, nom, hi, unit: str = "") -> dict:
    vals = [v for v in (lo, nom, hi) if v is not None and math.isfinite(v)]
    d = {"low": min(vals) if vals else None, "nominal": nom, "high": max(vals) if vals else None}
    if unit:
        d["unit"] = unit
    return d


def _run_row(run, a: Assumptions, *, with_ranges: bool = True) -> dict:
    """Best plan of one run with days (ideal, effective with goodput, ranges), chip-days, MFU, memory, cost."""
    res = best(run)
    est = res.best
    row = {"system": run.system.id, "chip": run.system.chip.id, "chips": run.chips,
           "precision": run.training.precision}
    if est is None:
        row.update(fits=False, message=res.no_plan_message())
        return row
    g = goodput(run.arch, run.chips, est.days, a)
    eco = economics(est, a, goodput=g)
    row.update(
        fits=est.fits, days=None, effective_days=None, goodput=None,
        chip_days=est.days * run.chips, effective_chip_days=est.days / g.fraction * run.chips,
        mfu=est.mfu, tokens_per_s_per_chip=est.tokens_per_s_per_chip,
        memory_per_chip_gib=est.memory_per_chip_bytes / 2**30, hbm_gib=run.system.chip.hbm_bytes / 2**30,
        plan=est.plan, range_driver=None, range_inputs=[],
        energy_mwh=eco["energy_mwh"], cost_capex_usd=eco["cost_capex_usd"], cost_rental_usd=eco["cost_rental_usd"],
        where_time_goes=where_time_goes(est), mtbf_hours=g.mtbf_hours,
    )
    row["_est"], row["_eco"], row["_run"] = est, eco, run
    _add_ranges(row, a, with_ranges)
    return row


def _add_ranges(row: dict, a: Assumptions, search: bool = True) -> dict:
    """Fill days / effective days / goodput with low-nominal-high: the catalog ranges of the system (re-searched
    when ``search``) and the goodput assumptions' ends."""
    run, est = row["_run"], row["_est"]
    g = goodput(run.arch, run.chips, est.days, a)
    gp = goodput_range(run.arch, run.chips, est.days, a)
    rng = propagate(run) if search else {"low": est.days, "nominal": est.days, "high": est.days,
                                         "by_input": [], "driver": None}
    row["days"] = _triple(rng["low"], est.days, rng["high"], "days")
    row["effective_days"] = _triple(rng["low"] / gp["fraction"]["high"], est.days / g.fraction,
                                    rng["high"] / gp["fraction"]["low"], "days")
    row["goodput"] = _triple(gp["fraction"]["low"], g.fraction, gp["fraction"]["high"])
    row["range_driver"] = rng["driver"]
    row["range_inputs"] = [{k: r[k] for k in ("input", "low", "high", "result_at_low", "result_at_high")}
                           for r in rng["by_input"]]
    row["_gp"] = gp["fraction"]
    return row


def _dominant(row: dict) -> str:
    """What drives the spread of a row's effective days: a catalog input or the failure assumptions."""
    d, g = row.get("days") or {}, row.get("_gp") or {}
    cat = (d.get("high") or 1.0) / (d.get("low") or 1.0)
    gpr = (g.get("high") or 1.0) / (g.get("low") or 1.0)
    if cat >= gpr and row.get("range_driver"):
        return row["range_driver"]
    return "the failure rate and restart time"


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _flops_claimed(claimed: dict | None) -> float | None:
    if not claimed or "active_params" not in claimed or "tokens" not in claimed:
        return None
    return 6.0 * float(claimed["active_params"]) * float(claimed["tokens"])


def _count_check(arch, claimed: dict | None) -> dict:
    c = count(arch)
    out = {"total_params": float(c.total_params), "active_params": float(c.active_params)}
    if claimed:
        if "total_params" in claimed:
            out["total_vs_claim"] = c.total_params / float(claimed["total_params"]) - 1.0
        if "active_params" in claimed:
            out["active_vs_claim"] = c.active_params / float(claimed["active_params"]) - 1.0
    return out


# ---------------------------------------------------------------- S1: one job on several systems


@register("pretrain-compare")
def pretrain_compare(doc: dict, base_dir: Path) -> dict:
    a = _assumptions(doc)
    tr = _need(doc, "training")
    rows = []
    for entry in _need(doc, "systems"):
        for prec in _listify(entry.get("precision", tr.get("precision", "bf16"))):
            run = _job_run(doc, base_dir, system=entry["system"], chips=int(entry.get("chips", doc.get("chips"))),
                           precision=prec)
            rows.append(_run_row(run, a))
    fitted = [r for r in rows if r.get("_est")]
    arch = fitted[0]["_est"].run.arch if fitted else make_run(doc["model"], "dgx-h100", 8, tr, base_dir).arch
    fl = training_flops(arch, float(tr["tokens"]), int(tr.get("seq_len", 4096)))
    claimed = doc.get("claimed") or {}
    numbers: dict[str, Any] = {
        "training_flops_6na": fl["flops_6na"],
        "training_flops_claimed_6na": _flops_claimed(claimed),
        "model_flops_incl_attention": fl["model_flops"],
        "params": _count_check(arch, claimed),
        "by_system": [_public(r) for r in rows],
    }
    sized = None
    if doc.get("size_for_days"):
        s_entry = doc.get("size_system", rows[0]["system"] if rows else None)
        srun = _job_run(doc, base_dir, system=s_entry, chips=int(doc.get("chips", 1)),
                        precision=doc.get("size_precision"))
        sized = size(srun, float(doc["size_for_days"]), unit="system", assumptions=a)
        numbers["sizing"] = {k: v for k, v in sized.to_dict().items() if k not in ("best_plan", "probes")}
    fits_all = all(r.get("fits") for r in rows)
    parts = []
    for r in rows:
        if r.get("fits"):
            parts.append(f"{r['chips']:,} x {r['chip']} ({r['precision']}): {r['days']['nominal']:.0f} days "
                         f"({r['effective_days']['nominal']:.0f} with failures), MFU {r['mfu']:.0%}")
        else:
            parts.append(f"{r['chip']} ({r['precision']}): does not fit ({r.get('message', '')})")
    text = (f"the run is {fl['flops_6na']:.2e} FLOP (6 x {fl['active_params'] / 1e9:.1f}B active x "
            f"{float(tr['tokens']) / 1e12:.0f}T tokens); " + "; ".join(parts))
    if sized is not None:
        text += (f"; finishing in {doc['size_for_days']} days (with failures) takes {sized.units} x "
                 f"{_system_id(s_entry)} ({sized.chips:,} chips)" if sized.feasible else f"; {sized.message}")
    cls = "supported" if fits_all and (sized is None or sized.feasible) else "not supported"
    if fits_all:
        text += ". The claim's size and schedule are consistent with these numbers (its start date is not public, " \
                "so 'by Feb 2026' is checked only as 'a few months on a cluster of this size')"
    best_row = min((r for r in rows if r.get("fits")), key=lambda r: r["chip_days"], default=None)
    return {**_base(doc), **_verdict(cls, text), "numbers": numbers,
            "best_plan": plan_summary(best_row["_est"]) if best_row else None,
            "assumptions": _model_inputs(doc) + [_input("chips", doc.get("chips"), doc.get("chips_note", ""))]
            + a.report(),
            "validation_error": _validation(r["_est"].run.system.chip.family for r in rows if r.get("_est"))}


# ---------------------------------------------------------------- S2: feasibility of one job


@register("pretrain-feasibility")
def pretrain_feasibility(doc: dict, base_dir: Path) -> dict:
    a = _assumptions(doc)
    run = _job_run(doc, base_dir)
    row = _run_row(run, a)
    tr = doc["training"]
    fl = training_flops(run.arch, float(tr["tokens"]), run.training.seq_len)
    claimed = doc.get("claimed") or {}
    numbers: dict[str, Any] = {
        "chips": run.chips, "system": run.system.id,
        "training_flops_6na": fl["flops_6na"], "training_flops_claimed_6na": _flops_claimed(claimed),
        "params": _count_check(run.arch, claimed), **{k: v for k, v in _public(row).items() if k not in ("system",)},
    }
    deadline = float(doc.get("deadline_days", 120))
    text_ratio = ""
    if doc.get("compare_to"):
        other = _sibling(doc, "compare_to", base_dir)
        orun = _job_run(other, base_dir, system=run.system.id, chips=run.chips)
        ofl = training_flops(orun.arch, float(other["training"]["tokens"]), orun.training.seq_len)
        ratio = fl["flops_6na"] / ofl["flops_6na"]
        c_ratio = None
        if _flops_claimed(claimed) and _flops_claimed(other.get("claimed")):
            c_ratio = _flops_claimed(claimed) / _flops_claimed(other.get("claimed"))
        ores = best(orun)
        t_ratio = (row["days"]["nominal"] / days_of(ores)) if row.get("fits") and ores.best else None
        numbers["vs_" + str(other.get("id"))] = {
            "flops_ratio_models": ratio, "flops_ratio_claimed_figures": c_ratio,
            "days_ratio_same_cluster": t_ratio,
            "note": f"{other.get('id')} = {other.get('claim', '')[:80]}..."}
        want = float(doc.get("claimed_ratio", 1.5))
        ok = abs(ratio / want - 1.0) <= 0.1
        claimed_t = f" ({c_ratio:.2f}x from the claimed figures)" if c_ratio else ""
        text_ratio = (f"; it is {ratio:.2f}x the {other.get('id')} job in 6ND FLOPs{claimed_t} and takes "
                      f"{t_ratio:.2f}x as long on the same cluster, so the '{want:g}x larger' figure "
                      f"{'holds' if ok else 'does not hold'}" if t_ratio else "")
    if not row.get("fits"):
        v = _verdict("not supported", f"no plan of {run.arch.name} fits on {run.chips:,} {run.system.chip.id}: "
                                      f"{row.get('message')}")
    else:
        eff = row["effective_days"]
        base_t = (f"{run.chips:,} {run.system.chip.id} train it in {row['days']['nominal']:.0f} days at MFU "
                  f"{row['mfu']:.0%} ({eff['nominal']:.0f} days with failures, range {eff['low']:.0f}-"
                  f"{eff['high']:.0f}); {row['memory_per_chip_gib']:.0f} of {row['hbm_gib']:.0f} GiB per chip")
        if eff["high"] <= deadline:
            v = _verdict("supported", base_t + f", within the assumed {deadline:g}-day window" + text_ratio)
        elif eff["nominal"] <= deadline:
            drv = _dominant(row)
            v = _verdict(f"depends on {drv}", base_t + f"; the pessimistic end exceeds the {deadline:g}-day window"
                         + text_ratio)
        elif eff["low"] <= deadline:
            drv = _dominant(row)
            v = _verdict(f"depends on {drv}", base_t + f"; only the optimistic end fits the {deadline:g}-day window"
                         + text_ratio)
        else:
            v = _verdict("not supported", base_t + f"; longer than the assumed {deadline:g}-day window" + text_ratio)
    return {**_base(doc), **v, "numbers": numbers, "best_plan": plan_summary(row.get("_est")),
            "assumptions": _model_inputs(doc) + [_input("deadline_days", deadline, doc.get("deadline_note", ""))]
            + a.report(),
            "validation_error": _validation([run.system.chip.family])}


# ---------------------------------------------------------------- S3: cost


@register("run-cost")
def run_cost(doc: dict, base_dir: Path) -> dict:
    a = _assumptions(doc)
    job = _sibling(doc, "job", base_dir)
    run = _job_run(job, base_dir)
    row = _run_row(run, a, with_ranges=False)
    if not row.get("fits"):
        return {**_base(doc), **_verdict("not supported", f"the job does not fit: {row.get('message')}"),
                "numbers": {}, "best_plan": None, "assumptions": a.report(),
                "validation_error": _validation([run.system.chip.family])}
    eco = row["_eco"]
    claimed = doc.get("claimed") or {}
    pods = run.chips / run.system.scale_up_size
    pod_price = (run.system.price_per_chip_usd or 0.0) * run.system.scale_up_size
    cluster = eco["cluster_capex_usd"]
    numbers: dict[str, Any] = {
        "pods": pods, "chips": run.chips, "pod_price_usd": pod_price,
        "cluster_capex_usd": cluster,
        "cluster_capex_claimed_usd": claimed.get("cluster_usd"),
        "other_expenses_factor_implied": (claimed["cluster_all_in_usd"] / cluster["nominal"])
        if claimed.get("cluster_all_in_usd") and cluster["nominal"] else None,
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
    for entry in doc.get("compare", []):
        crun = _job_run(job, base_dir, system=entry["system"], chips=int(entry.get("chips", run.chips)),
                        precision=entry.get("precision"))
        crow = _run_row(crun, a, with_ranges=False)
        families.append(crun.system.chip.family)
        if not crow.get("fits"):
            comp.append({"system": crow["system"], "fits": False, "message": crow.get("message")})
            continue
        ce = crow["_eco"]
        comp.append({"system": crow["system"], "chip": crow["chip"], "chips": crun.chips,
                     "precision": crun.training.precision, "note": entry.get("note", ""),
                     "days": crow["days"]["nominal"], "effective_days": crow["effective_days"]["nominal"],
                     "mfu": crow["mfu"], "cluster_capex_usd": ce["cluster_capex_usd"],
                     "cost_capex_amortised_usd": ce["cost_capex_usd"], "cost_rental_usd": ce["cost_rental_usd"],
                     "energy_mwh": ce["energy_mwh"], "usd_per_1e24_flop_rental": ce["usd_per_1e24_flop_rental"],
                     "usd_per_1e24_flop_capex": ce["usd_per_1e24_flop_capex"]})
    numbers["same_job_on"] = comp
    cap, ren = eco["cost_capex_usd"], eco["cost_rental_usd"]
    text = (f"{pods:.0f} pods x ${pod_price / 1e6:.1f}M = ${cluster['nominal'] / 1e6:.0f}M "
            f"(claim ${claimed.get('cluster_usd', 0) / 1e6:.0f}M; range ${cluster['low'] / 1e6:.0f}-"
            f"{cluster['high'] / 1e6:.0f}M from the price's +-50%). The S2 job runs "
            f"{row['effective_days']['nominal']:.0f} days: amortised capex + power ${cap['nominal'] / 1e6:.0f}M (${cap['low'] / 1e6:.0f}-"
            f"{cap['high'] / 1e6:.0f}M), rental-equivalent ${ren['nominal'] / 1e6:.0f}M "
            f"(${ren['low'] / 1e6:.0f}-{ren['high'] / 1e6:.0f}M), "
            f"${eco['usd_per_1e24_flop_capex']['nominal'] / 1e6:.1f}M per 1e24 FLOP (capex basis)")
    for c in comp:
        if c.get("fits", True) and c.get("cost_rental_usd"):
            capx = c["cost_capex_amortised_usd"]["nominal"]
            text += (f"; on {c['chips']:,} {c['chip']} ({c['precision']}) {c['effective_days']:.0f} days, rental "
                     f"${c['cost_rental_usd']['nominal'] / 1e6:.0f}M"
                     + (f", capex ${capx / 1e6:.0f}M" if capx else ""))
    share = numbers.get("cluster_share_of_claimed_meituan_capex")
    text += (". The pod price is one press figure ('up to $8.2M'); the $2.2B Meituan and $100B Chinese capex "
             "figures are not checked (no source in the catalog)"
             + (f" - if right, the cluster is {share:.0%} of Meituan's 2026 AI capex" if share else ""))
    return {**_base(doc), **_verdict("depends on the pod price", text), "numbers": numbers,
            "best_plan": plan_summary(row["_est"]),
            "assumptions": _model_inputs(job) + [_input("pod_price", pod_price, run.system.sources.get(
                "price_per_chip_usd").note if run.system.sources.get("price_per_chip_usd") else "catalog")]
            + [_input(f"compare.{c['system']}", c.get("note", ""), "scenario file") for c in comp if c.get("note")]
            + a.report(),
            "validation_error": _validation([run.system.chip.family] + families)}


# ---------------------------------------------------------------- S4: fleet capacity


def _reference_runs(doc: dict, base_dir: Path) -> list[dict]:
    out = []
    for r in doc.get("reference_runs", []):
        if "scenario" in r:
            other = load_doc(Path(base_dir) / r["scenario"])
            orun = _job_run(other, base_dir)
            fl = training_flops(orun.arch, float(other["training"]["tokens"]))["flops_6na"]
            out.append({"name": r.get("name", other.get("id")), "flops": fl,
                        "source": f"scenario {other.get('id')} (6 x active x tokens)"})
        else:
            out.append({"name": r["name"], "flops": float(r["flops"]), "source": r.get("source", "")})
    return out


@register("fleet-capacity")
def fleet_capacity(doc: dict, base_dir: Path) -> dict:
    from ..catalog.resolve import resolve_system

    a = _assumptions(doc)
    system = resolve_system(_need(doc, "system"), base_dir)
    chips = _chips(doc, system)
    days = float(doc.get("days", 90))
    prec = doc.get("precision", "bf16")
    fams = _listify(doc.get("family", "deepseek-v3"))
    numbers: dict[str, Any] = {"chips": chips, "units": chips / system.scale_up_size, "days": days,
                               "peak_bf16_eflops": chips * system.chip.flops("bf16") / 1e18}
    caps = {f: capacity(system, chips, days, a, family=f, precision=prec) for f in fams}
    # the largest run is the family that reaches the most training FLOPs
    main_f = max(fams, key=lambda f: caps[f].training_flops or 0.0)
    main = caps[main_f]
    numbers["largest_family"] = main_f
    refs = _reference_runs(doc, base_dir)
    ref_key = doc.get("compare_with")
    for f, c in caps.items():
        d = c.to_dict()
        numbers[f"capacity_{f}"] = {k: d[k] for k in ("total_params", "active_params", "tokens", "training_flops",
                                                      "compute_optimal_tokens", "goodput", "message")}
        numbers[f"capacity_{f}"]["limits"] = d["limits"]
        numbers[f"capacity_{f}"]["mfu"] = c.estimate.mfu if c.estimate else None
    if main.training_flops is None:
        return {**_base(doc), **_verdict("not supported", main.message), "numbers": numbers, "best_plan": None,
                "assumptions": a.report(), "validation_error": _validation([system.chip.family])}
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
    for fct in doc.get("scale_out_factors", (0.5, 2.0)):
        from dataclasses import replace as _rep

        r2 = _rep(run, system=scaled(run.system, "scale_out_bandwidth", fct))
        t = tokens_in_days(r2, days, a)
        net[f"x{fct:g}"] = None if t["tokens"] is None else t["tokens"] / main.tokens
    numbers["tokens_vs_scale_out_bandwidth"] = net
    numbers["reference_runs"] = refs
    ref = next((r for r in refs if r["name"] == ref_key), refs[0] if refs else None)
    want = float(doc.get("claimed_factor", 10.0))
    text = main.message
    if ref:
        ratios = {r["name"]: f_nom / r["flops"] for r in refs}
        numbers["ratio_to_reference"] = ratios
        lo, hi = fl_lo / ref["flops"], fl_hi / ref["flops"]
        nom = f_nom / ref["flops"]
        numbers["ratio_to_main_reference"] = _triple(lo, nom, hi)
        text += (f" (the largest of: {', '.join(f'{f} {caps[f].training_flops or 0:.2e}' for f in fams)})"
                 f"; that is {nom:.1f}x {ref['name']} ({lo:.1f}-{hi:.1f}x over goodput and catalog ranges)"
                 + "".join(f", {v:.1f}x {k}" for k, v in ratios.items() if k != ref["name"]))
        binding = [l_["limit"] for l_ in main.limits if l_["binding"]]
        text += f"; binding limits: {', '.join(binding) if binding else 'none of memory/network/batch/failures'}"
        g = goodput(run.arch, chips, est.days, a)
        text += (f"; goodput {g.fraction:.0%} (job MTBF {g.mtbf_hours * 60:.0f} min on {chips:,} chips, restart "
                 f"{g.restart_s / 60:.0f} min)")
        # where it flips: the restart time at which goodput gives exactly `want` x (model and plan held)
        from .goodput import restart_for_goodput

        g_need = g.fraction * want / nom
        r_flip = restart_for_goodput(run.arch, chips, a, g_need)
        numbers["restart_s_for_claimed_factor"] = r_flip
        flip = ("; no restart time is short enough" if r_flip is None else
                f"; {want:g}x needs goodput {g_need:.0%}, i.e. restarts under {r_flip / 60:.1f} min at the "
                f"Llama-3 failure rate" if r_flip < 7200 else "")
        if lo >= want:
            v = _verdict("supported", text)
        elif nom >= want:
            v = _verdict("depends on the failure rate and restart time", text
                         + f"; the pessimistic end is {lo:.1f}x" + flip)
        elif hi >= want:
            v = _verdict("depends on the failure rate and restart time", text
                         + f"; only the optimistic end reaches {want:g}x" + flip)
        else:
            v = _verdict("not supported", text + f" - short of {want:g}x" + flip)
    else:
        v = _verdict("supported", text)
    return {**_base(doc), **v, "numbers": numbers, "best_plan": plan_summary(est),
            "assumptions": [_input("fleet", f"{chips / system.scale_up_size:.0f} x {system.id}",
                                   doc.get("fleet_source", "scenario file"), doc.get("fleet_note", ""))]
            + [_input(f"reference.{r['name']}", r["flops"], r["source"]) for r in refs] + a.report(),
            "validation_error": _validation([system.chip.family])}


# ---------------------------------------------------------------- S5: one job, two systems


@register("same-job-compare")
def same_job_compare(doc: dict, base_dir: Path) -> dict:
    from ..catalog.resolve import resolve_system

    a = _assumptions(doc)
    job = _sibling(doc, "job", base_dir)
    sides = {}
    for side in ("a", "b"):
        e = _need(doc, side)
        s_obj = resolve_system(e["system"], base_dir)
        n = int(e["chips"]) if "chips" in e else int(e["pods"]) * s_obj.scale_up_size
        rows = []
        for prec in _listify(e.get("precision", "bf16")):
            run = _job_run(job, base_dir, system=e["system"], chips=n, precision=prec)
            rows.append(_run_row(run, a, with_ranges=False))
        fitting = [r for r in rows if r.get("fits")]
        if fitting:     # catalog ranges (re-searched) only for this side's fastest row
            _add_ranges(min(fitting, key=lambda r: r["effective_days"]["nominal"]), a, True)
        peak = {p: n * s_obj.chip.flops(p) / 1e18 for p in ("bf16", "fp8")}
        sides[side] = {"label": e.get("label", s_obj.id), "chips": n, "rows": rows, "peak_eflops": peak,
                       "hbm_pb": n * s_obj.chip.hbm_bytes / 1e15, "hbm_bw_pbs": n * s_obj.chip.hbm_bw / 1e15,
                       "fp8_native": bool(s_obj.chip.peak_flops.get("fp8"))}
    numbers: dict[str, Any] = {}
    for side, s in sides.items():
        numbers[side] = {"label": s["label"], "chips": s["chips"], "peak_eflops": s["peak_eflops"],
                         "fp8_native": s["fp8_native"], "hbm_pb": s["hbm_pb"], "hbm_bandwidth_pb_s": s["hbm_bw_pbs"],
                         "runs": [{**_public(r), "comm_fraction": comm_fraction(r.get("_est"))} for r in s["rows"]]}
    fit = lambda s: [r for r in s["rows"] if r.get("fits")]  # noqa: E731
    fa, fb = fit(sides["a"]), fit(sides["b"])
    if not fa or not fb:
        return {**_base(doc), **_verdict("not supported", "the job does not fit on one of the two systems"),
                "numbers": numbers, "best_plan": None, "assumptions": a.report(),
                "validation_error": _validation(r["_est"].run.system.chip.family for s in sides.values()
                                                for r in fit(s))}
    ba = min(fa, key=lambda r: r["effective_days"]["nominal"])
    bb = min(fb, key=lambda r: r["effective_days"]["nominal"])
    ratio = ba["effective_days"]["nominal"] / bb["effective_days"]["nominal"]
    # catalog ranges are independent between the two sides; the failure assumptions are shared, so the
    # goodput ends enter both sides together
    g_ratio = [bb["_gp"][e] / ba["_gp"][e] for e in ("low", "nominal", "high")]
    r_lo = ba["days"]["low"] / bb["days"]["high"] * min(g_ratio)
    r_hi = ba["days"]["high"] / bb["days"]["low"] * max(g_ratio)
    span_cat = (ba["days"]["high"] / bb["days"]["low"]) / (ba["days"]["low"] / bb["days"]["high"])
    span_gp = max(g_ratio) / min(g_ratio)
    cat_driver = ba.get("range_driver") or bb.get("range_driver") or "the catalog ranges"
    drv = cat_driver if span_cat >= span_gp else "the failure rate and restart time"
    for side, r_ in (("a", ba), ("b", bb)):
        est_ = r_["_est"]
        numbers[side]["batch_tokens_per_chip_per_step"] = (est_.run.training.batch_seqs * est_.run.training.seq_len
                                                           / est_.run.chips)
    numbers["days_ratio_a_over_b"] = _triple(r_lo, ratio, r_hi)
    pa, pb = sides["a"]["peak_eflops"], sides["b"]["peak_eflops"]
    numbers["peak_ratio_bf16"] = pa["bf16"] / pb["bf16"]
    numbers["peak_ratio_best_precision"] = max(pa.values()) / (pb["fp8"] if sides["b"]["fp8_native"] else pb["bf16"])
    la, lb = sides["a"]["label"], sides["b"]["label"]

    def desc(r):
        top = ", ".join(f"{k} {v:.0%}" for k, v in r["where_time_goes"][:3])
        return (f"{r['chips']:,} {r['chip']} {r['precision']}: {r['days']['nominal']:.0f} days "
                f"({r['effective_days']['nominal']:.0f} with failures), MFU {r['mfu']:.0%}, step: {top}")

    text = (f"{la} has {pa['bf16']:.1f} EFLOPS BF16 ({pa['fp8']:.1f} FP8) vs {lb}'s {pb['bf16']:.1f} EFLOPS BF16"
            f"{'' if sides['b']['fp8_native'] else ' (no FP8)'}; "
            + "; ".join(desc(r) for r in fa + fb)
            + f". Best {la} / best {lb} time: {ratio:.2f}x (range {r_lo:.2f}-{r_hi:.2f}x)")
    tol = float(doc.get("tolerance", 1.25))
    text += (f"; per step each chip of {la} processes {numbers['a']['batch_tokens_per_chip_per_step']:,.0f} "
             f"tokens of the batch vs {numbers['b']['batch_tokens_per_chip_per_step']:,.0f} on {lb}, which is why "
             f"the larger cluster runs at lower MFU")
    if r_hi <= tol:
        v = _verdict("supported", text)
    elif ratio <= tol:
        v = _verdict(f"depends on {drv}", text)
    elif r_lo <= tol:
        v = _verdict(f"depends on {drv}", text + f"; only the optimistic end is within {tol:g}x")
    else:
        v = _verdict("not supported", text + f": one SuperPoD takes {ratio:.1f}x as long, because it has "
                     f"{1 / numbers['peak_ratio_best_precision']:.1f}x less peak compute even in FP8")
    return {**_base(doc), **v, "numbers": numbers, "best_plan": plan_summary(ba["_est"]),
            "assumptions": _model_inputs(job) + [_input(f"side.{k}", s["label"], doc[k].get("note", "scenario file"))
                                                 for k, s in sides.items()]
            + [_input("tolerance", tol, doc.get("tolerance_note", "assumption: 'about as capable' = within this "
                                                                  "factor of the other's wall-clock days"))]
            + a.report(),
            "validation_error": _validation(r["_est"].run.system.chip.family for r in fa + fb)}


# ---------------------------------------------------------------- S6: SuperPoDs for a frontier model


@register("frontier-sizing")
def frontier_sizing(doc: dict, base_dir: Path) -> dict:
    from ..catalog.resolve import resolve_system

    a = _assumptions(doc)
    system = resolve_system(_need(doc, "system"), base_dir)
    days = float(doc.get("days", 90))
    lm = _need(doc, "frontier_model")
    total, active, tokens = float(lm["total_params"]), float(lm["active_params"]), float(lm["tokens"])
    shape = moe_shape(active, total / active, name=lm.get("name", "lean-mythos"))
    tr = {"tokens": tokens, "seq_len": int(lm.get("seq_len", 4096)),
          "global_batch_seqs": int(lm.get("global_batch_seqs", 16384)), "precision": doc.get("precision", "fp8")}
    claimed_units = [int(u) for u in _listify(doc.get("claimed_units", [10, 20]))]
    start_chips = max(claimed_units) * system.scale_up_size
    run = make_run(shape, doc["system"], start_chips, tr, base_dir, name=shape["name"])
    c = count(run.arch)
    sized = size(run, days, unit="system", assumptions=a)
    # the same question at the optimistic end of the failure assumptions and without failures (cached searches)
    claimed_units = claimed_units or [10, 20]
    need_opt = not (sized.feasible and sized.units <= max(claimed_units))
    sized_opt = size(run, days, unit="system", assumptions=a, goodput_end="high") if need_opt else sized
    sized_ideal = size(run, days, unit="system", assumptions=None)
    keep = lambda r: {k: v for k, v in r.to_dict().items() if k not in ("best_plan",)}  # noqa: E731
    numbers: dict[str, Any] = {
        "frontier_model": {"total_params": float(c.total_params), "active_params": float(c.active_params),
                           "tokens": tokens, "training_flops_6na": 6.0 * c.active_params * tokens,
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
    caps = {}
    for u in claimed_units:
        cap = capacity(system, u * system.scale_up_size, days, fam_a, family="deepseek-v3",
                       precision=tr["precision"], max_evals=int(doc.get("capacity_evals", 5)))
        caps[u] = cap
        d = cap.to_dict()
        numbers[f"capacity_{u}_units"] = {k: d[k] for k in ("total_params", "active_params", "tokens",
                                                            "training_flops", "goodput", "message")}
        numbers[f"capacity_{u}_units"]["binding_limits"] = [l_["limit"] for l_ in d["limits"] if l_["binding"]]
    fl = 6.0 * c.active_params * tokens
    text = (f"the assumed lean frontier model ({c.total_params / 1e12:.1f}T total / {c.active_params / 1e9:.0f}B "
            f"active, {tokens / 1e12:.0f}T tokens, {fl:.2e} FLOP) ")
    if sized.feasible:
        text += (f"needs {sized.units} {system.id} units ({sized.chips:,} chips) for {days:g} days "
                 f"({sized.effective_days:.0f} days with failures, MFU {sized.estimate.mfu:.0%})")
    else:
        text += f"cannot be trained in {days:g} days: {sized.message}"
    for u, cap in caps.items():
        if cap.training_flops:
            text += (f"; {u} units train a {cap.total_params / 1e12:.1f}T/{cap.active_params / 1e9:.0f}B model on "
                     f"{cap.tokens / 1e12:.0f}T tokens ({cap.training_flops:.1e} FLOP)")
    if sized_ideal.feasible:
        text += f"; without failures {sized_ideal.units} units ({sized_ideal.days:.0f} days) would do"
    text += ". The Atlas 950 SuperPoD is announced, not shipped: every hardware input is a vendor figure"
    lo_u, hi_u = min(claimed_units), max(claimed_units)
    if sized.feasible and sized.units <= hi_u:
        dr = numbers.get("days_at_sized_count", {})
        drv = rng["driver"] if rng and rng["driver"] else "goodput"
        if dr.get("high") is not None and dr["high"] > days:
            v = _verdict(f"depends on {drv}", text + f"; at the pessimistic end of {drv} the sized count takes "
                                                      f"{dr['high']:.0f} days")
        else:
            v = _verdict("supported", text + (f"; fewer than {lo_u} suffice" if sized.units < lo_u else ""))
    elif sized_opt.feasible and sized_opt.units <= hi_u:
        from .goodput import restart_for_goodput

        chips_hi = hi_u * system.scale_up_size
        d_hi = days_of(best(run_at(run, chips_hi)))
        r_flip = restart_for_goodput(run.arch, chips_hi, a, d_hi / days) if math.isfinite(d_hi) else None
        numbers["restart_s_for_claimed_units"] = r_flip
        if r_flip is not None:
            text += (f". {hi_u} units ({d_hi:.0f} days without failures) make it if restarts take under "
                     f"{r_flip / 60:.1f} min at the Llama-3 failure rate")
        v = _verdict("depends on the failure rate and restart time", text
                     + f". With half the Llama-3 interruption rate, 5-min restarts and fast checkpoint storage "
                       f"(the optimistic end) {sized_opt.units} units finish in {sized_opt.effective_days:.0f} days; "
                       f"at the nominal rate and 10-min restarts the job MTBF on {hi_u * system.scale_up_size:,} chips "
                       f"is {goodput(run.arch, hi_u * system.scale_up_size, 1.0, a).mtbf_hours * 60:.0f} min")
    else:
        v = _verdict("not supported", text + f"; more than {hi_u} units are needed for this model even at the "
                                             f"optimistic end of the failure assumptions")
    return {**_base(doc), **v, "numbers": numbers,
            "best_plan": plan_summary(sized.estimate),
            "assumptions": [_input("frontier_model", lm, lm.get("source", "scenario file"), lm.get("note", ""))]
            + a.report(),
            "validation_error": _validation([system.chip.family])}


# ---------------------------------------------------------------- S8: sensitivity to hardware parameters


@register("hardware-sensitivity")
def hardware_sensitivity(doc: dict, base_dir: Path) -> dict:
    a = _assumptions(doc)
    job = _sibling(doc, "job", base_dir) if "job" in doc else doc
    run = _job_run(job, base_dir)
    params = doc.get("vary") or ["hbm_bandwidth", "hbm_capacity", "scale_up_bandwidth", "scale_out_bandwidth",
                                 "peak_flops"]
    factors = tuple(doc.get("factors", (0.25, 0.5, 1.5, 2.0)))
    sens = sensitivity(run, params, factors)
    el = {p: elasticity(sens, p) for p in sens["params"]}
    th_doc = doc.get("threshold") or {"param": "hbm_bandwidth", "slowdown": 0.10}
    th = threshold(run, th_doc.get("param", "hbm_bandwidth"), float(th_doc.get("slowdown", 0.10)))
    numbers: dict[str, Any] = {"nominal_days": sens["nominal_days"], "chips": run.chips, "system": run.system.id,
                               "elasticity_dln_days_dln_param": el,
                               "days_by_param": {p: [{k: r[k] for k in ("factor", "value", "unit", "days",
                                                                        "change_pct", "plan_changed")}
                                                     for r in v["rows"]] for p, v in sens["params"].items()},
                               "threshold": th}
    refs = doc.get("reference_hbm_tb_s") or {}
    numbers["reference_hbm_bandwidth_tb_s"] = refs
    hb = el.get("hbm_bandwidth", math.nan)
    pf = el.get("peak_flops", math.nan)
    rank = sorted(((abs(v), p) for p, v in el.items() if math.isfinite(v)), reverse=True)
    text = (f"{run.chips:,} {run.system.chip.id}, {sens['nominal_days']:.0f} days at nominal: elasticity of days "
            + ", ".join(f"{p} {el[p]:+.2f}" for _, p in rank)
            + f" (-1 = time inversely proportional). {th['message']}")
    nominal_bw = th["nominal"]
    if th.get("value") is None or th["value"] < 0.75 * nominal_bw:
        margin = "far below" if th.get("value") is None or th["value"] < 0.5 * nominal_bw else "below"
        text += (f" - {margin} the {run.system.chip.id}'s {nominal_bw:.2f} TB/s"
                 + "".join(f"; {k}: {v} TB/s" for k, v in refs.items()))
        cls = "not supported" if abs(pf) > abs(hb) else "depends on the workload"
        text += (". For pretraining, peak compute (and the network) moves days more than HBM bandwidth"
                 if abs(pf) > abs(hb) else ". HBM bandwidth matters as much as compute here")
        v = _verdict(cls, text)
    else:
        v = _verdict("supported", text + f" - the chip's {nominal_bw:.2f} TB/s is at or near the threshold")
    return {**_base(doc), **v, "numbers": numbers, "best_plan": plan_summary(best(run).best),
            "assumptions": _model_inputs(job) + a.report(),
            "validation_error": _validation([run.system.chip.family])}


# ---------------------------------------------------------------- S9: NVLink cut


@register("interconnect-cut")
def interconnect_cut(doc: dict, base_dir: Path) -> dict:
    a = _assumptions(doc)
    slow, fast = _need(doc, "restricted"), _need(doc, "reference")
    chips = int(_need(doc, "chips"))
    tr = dict(_need(doc, "training"))
    moe_run = make_run(doc["model"], slow, chips, tr, base_dir, name=str(doc.get("id")))
    c = count(moe_run.arch)
    C = 6.0 * c.active_params * float(tr["tokens"])
    models = {"moe": (doc["model"], tr, doc.get("model_source", "catalog"))}
    ratio = float(a["tokens_per_param"])
    n_opt = math.sqrt(C / (6.0 * ratio))
    models["dense_equal_active"] = (dense_shape(c.active_params, name="dense-equal-active"), tr,
                                    "Llama-3-like dense model with the MoE's active parameter count, same tokens")
    models["dense_chinchilla"] = (dense_shape(n_opt, name="dense-chinchilla"),
                                  {**tr, "tokens": ratio * n_opt},
                                  "Llama-3-like dense model of the same training FLOPs, Chinchilla-optimal "
                                  "(N = sqrt(C / 120), D = 20 N; Hoffmann et al. 2022)")
    rows = {}
    for key, (m, t, note) in models.items():
        r = {}
        for label, sysv in (("restricted", slow), ("reference", fast)):
            run = make_run(m, sysv, chips, t, base_dir, name=f"{doc.get('id')}-{key}")
            res = best(run)
            r[label] = res.best
        cc = count(r["restricted"].run.arch) if r["restricted"] else None
        rows[key] = {
            "note": note, "total_params": float(cc.total_params) if cc else None,
            "active_params": float(cc.active_params) if cc else None, "tokens": float(t["tokens"]),
            "training_flops_6na": 6.0 * cc.active_params * float(t["tokens"]) if cc else None,
            "days_restricted": r["restricted"].days if r["restricted"] else None,
            "days_reference": r["reference"].days if r["reference"] else None,
            "slowdown_pct": ((r["restricted"].days / r["reference"].days - 1.0) * 100.0)
            if r["restricted"] and r["reference"] else None,
            "plan_restricted": r["restricted"].plan if r["restricted"] else None,
            "plan_reference": r["reference"].plan if r["reference"] else None,
            "tp_comm_share_restricted": (r["restricted"].breakdown.get("tp_comm", 0.0) / r["restricted"].step_time_s)
            if r["restricted"] else None,
            "ep_share_restricted": (r["restricted"].breakdown.get("ep_alltoall", 0.0) / r["restricted"].step_time_s)
            if r["restricted"] else None,
            "_est": r["restricted"],
        }
    numbers = {"chips": chips, "restricted": slow, "reference": fast,
               "scale_up_gb_s": {k: make_run(doc["model"], s, chips, tr, base_dir).system.levels[0].bw / 1e9
                                 for k, s in (("restricted", slow), ("reference", fast))},
               "runs": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in rows.items()}}
    mo = rows["moe"]
    if mo["slowdown_pct"] is None:
        v = _verdict("not supported", "the MoE run does not fit on one of the systems")
    else:
        text = (f"NVLink {numbers['scale_up_gb_s']['reference']:.0f} -> {numbers['scale_up_gb_s']['restricted']:.0f} "
                f"GB/s per direction: {c.total_params / 1e9:.0f}B/{c.active_params / 1e9:.0f}B MoE on {chips:,} chips "
                f"takes {mo['days_restricted']:.1f} vs {mo['days_reference']:.1f} days ({mo['slowdown_pct']:+.1f}%) "
                f"with the best plan for each")
        for k in ("dense_equal_active", "dense_chinchilla"):
            d = rows[k]
            if d["slowdown_pct"] is not None:
                text += (f"; {d['note'].split(',')[0]} ({d['total_params'] / 1e9:.0f}B, "
                         f"{d['tokens'] / 1e12:.1f}T tokens): {d['slowdown_pct']:+.1f}%")
        pr, pf = mo["plan_restricted"], mo["plan_reference"]
        text += (f". Best H800-side plan: tp={pr['tp']} ep={pr['ep']} pp={pr['pp']} (tensor-parallel traffic "
                 f"{mo['tp_comm_share_restricted']:.0%} and expert all-to-all {mo['ep_share_restricted']:.0%} of the "
                 f"step), vs tp={pf['tp']} ep={pf['ep']} pp={pf['pp']} with full NVLink. The H800 was the answer to "
                 f"the Oct 2022 US rule (ECCN 3A090: TPP >= 4,800 and chip I/O >= 600 GB/s bidirectional) - only "
                 f"NVLink was cut, FLOPs and HBM are the H100's - so the claim holds as history; "
                 f"a plan chosen for the cut loses ")
        big = max(abs(r["slowdown_pct"] or 0.0) for r in rows.values())
        text += "little" if big < 10 else "a noticeable share of throughput"
        v = _verdict("supported", text)
    return {**_base(doc), **v, "numbers": numbers, "best_plan": plan_summary(mo["_est"]),
            "assumptions": _model_inputs(doc) + [_input("chips", chips, doc.get("chips_note", "scenario file"))]
            + a.report(),
            "validation_error": _validation([moe_run.system.chip.family])}
