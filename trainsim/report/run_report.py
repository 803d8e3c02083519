"""The report of one run: :func:`build_run_report` (run -> :class:`~trainsim.report.page.Report`), built from the
numbers of :func:`trainsim.report.collect.run_data`, the charts of :mod:`trainsim.report.charts` and the HTML
builders of :mod:`trainsim.report.page`. :func:`run_sections` is reused by scenario reports."""
from __future__ import annotations

import math

from . import charts as ch
from . import fmt
from .page import Report, esc, image, kv_table, page, section, table
from .terminal import cost_rows
from .collect import run_data
from ..units import GIB

SECTIONS = (("answer", "Answer"), ("breakdown", "Step time by cause"), ("memory", "Memory per chip"),
            ("plans", "Best plans"), ("scaling", "Scaling"), ("sensitivity", "Sensitivity"),
            ("ranges", "Ranges"), ("validation", "Validation error"), ("inputs", "Inputs and sources"))


def make_charts(data: dict) -> dict[str, bytes]:
    """PNG bytes of every chart the data allows: breakdown, memory, scaling, sensitivity, ranges."""
    out = {}
    plans = data.get("plans") or []
    est = data.get("estimate")
    if plans:
        out["breakdown"] = ch.png_bytes(ch.breakdown_chart(plans))
        hbm = est["hbm_bytes"] if est else data.get("hbm_bytes", plans[0]["memory"].get("total", 0))
        out["memory"] = ch.png_bytes(ch.memory_chart(plans, hbm))
    if any(r.get("mfu") is not None for r in data.get("scaling") or []):
        out["scaling"] = ch.png_bytes(ch.scaling_chart(data["scaling"], est["chips"] if est else None))
    sens = data.get("sensitivity") or {}
    if sens.get("rows"):
        out["sensitivity"] = ch.png_bytes(ch.tornado_chart(
            sens["rows"], title="Sensitivity: change in days of the best plan",
            xlabel="change in days vs nominal (%)"))
    rng = data.get("ranges") or {}
    if rng.get("inputs") and rng.get("nominal"):
        nom = rng["nominal"]
        rows = [{"label": r["input"], "low": (r["result_at_low"] / nom - 1) * 100,
                 "high": (r["result_at_high"] / nom - 1) * 100, "low_label": "low", "high_label": "high"}
                for r in rng["inputs"]]
        out["ranges"] = ch.png_bytes(ch.tornado_chart(rows, title="Catalog ranges: change in days at each end",
                                                      xlabel="change in days vs nominal (%)"))
    return out


def _gib(b) -> str:
    return "-" if b is None else f"{b / GIB:.1f}"


def _at_precision_rows(est: dict) -> list[tuple]:
    """MFU / HFU against the peak of the precision used (issue #16 item 3), when that is not BF16."""
    prec = str(est.get("precision") or "bf16")
    if est.get("mfu_at_precision") is None or prec == "bf16":
        return []
    label = prec.upper()
    if est.get("precision_native") is False:
        label = f"{label} peak: none on this chip, priced at the BF16"
    return [(f"MFU (vs {label} peak)", fmt.pct(est["mfu_at_precision"]), "mfu_at_precision"),
            (f"HFU (vs {label} peak)", fmt.pct(est["hfu_at_precision"]), "hfu_at_precision")]


def headline(est: dict) -> str:
    """The headline numbers, formatted as ``trainsim estimate`` prints them (``data-key`` = the JSON key)."""
    idle = est.get("idle_chips") or 0
    rows = [("plan", fmt.plan(est["plan"]), "plan"),
            *([("chips used", f"{est['chips_used']:,} of {est['chips']:,} ({idle:,} idle, paid for)", "chips_used")]
              if idle else []),            # as `trainsim estimate` prints it: the rate below is per used chip
            ("step time", fmt.step_time(est["step_time_s"]), "step_time_s"),
            ("tokens/s per used chip" if idle else "tokens/s per chip", fmt.tokens_per_s(est["tokens_per_s_per_chip"]),
             "tokens_per_s_per_chip"),
            ("MFU (vs BF16 peak)", fmt.pct(est["mfu"]), "mfu"), ("HFU (vs BF16 peak)", fmt.pct(est["hfu"]), "hfu"),
            *_at_precision_rows(est),
            ("memory per chip", fmt.gib(est["memory_per_chip_bytes"]), "memory_per_chip_bytes"),
            ("HBM per chip", fmt.gib(est["hbm_bytes"]), "hbm_bytes"),
            ("fits in HBM", "yes" if est["fits"] else "NO", "fits"),
            ("micro-batches per step", f"{est['microbatches_per_step']:g}", "microbatches_per_step")]
    if "days" in est:
        rows += [("whole run (without failures)", fmt.days(est["days"]), "days"),
                 ("chip-hours", fmt.chip_hours(est["chip_hours"]), "chip_hours")]

        rows += [(k, v, None) for k, v in cost_rows(est.get("cost")) if k != "chip-hours"]
    note = f'MFU: {esc(est["mfu_definition"])}.'
    if est.get("mfu_at_precision_definition"):
        note += f' MFU at precision: {esc(est["mfu_at_precision_definition"])}.'
    return kv_table(rows) + f'<p class="note">{note}</p>'


def _breakdown(data: dict, png: bytes | None) -> str:
    est = data.get("estimate")
    body = image(png, "stacked bar of step time by cause", "breakdown") if png else ""
    if est:
        step = est["step_time_s"]
        rows = [[k, f"{v:.4f}", f"{v / step:.1%}"] for k, v in est["breakdown"].items() if v > 0]
        body += "<h3>The estimated plan</h3>" + table(["cause", "seconds", "share of the step"], rows, {1, 2})
    else:
        body += f"<p>{esc(data.get('message', 'no plan'))}</p>"
    body += ('<p class="note">One bar per plan: the estimated plan and the fastest plans of the search. Step = '
             "micro-batches x (forward + backward) + pipeline bubble + exposed data-parallel sync + optimizer; "
             "communication shown is the part not hidden behind compute.</p>")
    return body


def _memory(data: dict, png: bytes | None) -> str:
    est = data.get("estimate")
    body = image(png, "stacked bar of memory per chip against HBM capacity", "memory") if png else ""
    if est:
        rows = [[k, f"{v / GIB:.2f}"] for k, v in est["memory_breakdown_bytes"].items()]
        body += ("<h3>The estimated plan</h3>" + table(["part", "GiB"], rows, {1})
                 + f'<p class="note">HBM capacity {fmt.gib(est["hbm_bytes"])} per chip; '
                 f'{"fits" if est["fits"] else "does not fit"}.</p>')
    dnf = data.get("does_not_fit")
    if dnf:
        body += (f'<p class="note">No plan fits: the plan needing the least memory ({esc(fmt.plan(dnf["plan"]))}) is '
                 f'over HBM by {fmt.gib(dnf["over_by_bytes"])} ({dnf["over_by_fraction"]:.0%}).</p>')
        if dnf.get("fixes"):
            body += table(["single change that fits", "GiB per chip", "step time"],
                          [[f["change"], f"{f['memory_per_chip_bytes'] / GIB:.1f}", fmt.step_time(f["step_time_s"])]
                           for f in dnf["fixes"]], {1, 2})
    return body


def _plans(data: dict) -> str:
    rows = [[r["label"], fmt.plan(r["plan"]), f"{r['step_time_s']:.3f}", fmt.tokens_per_s(r["tokens_per_s_per_chip"]),
             fmt.pct(r["mfu"]), _gib(r["memory_per_chip_bytes"]), fmt.days(r.get("days"))]
            for r in data.get("plans") or []]
    s = data.get("search") or {}
    fixed = ", ".join(f"{k}={v}" for k, v in (s.get("fixed") or {}).items()) or "none (every field searched)"
    body = table(["#", "plan", "step s", "tokens/s/chip", "MFU (BF16 peak)", "GiB/chip", "whole run"], rows, {2, 3, 4, 5, 6})
    counts = fmt.search_counts(s.get("plans_evaluated", 0), s.get("plans_feasible", 0), s.get("rejected") or {},
                               "fit in memory")
    body += (f'<p class="note">{counts}, in {s.get("search_seconds", 0):.2f} s; fixed fields: {esc(fixed)}.</p>')
    if s.get("message"):
        body += f"<p>{esc(s['message'])}</p>"
    rej = sorted((s.get("rejected") or {}).items(), key=lambda kv: -kv[1])
    if rej:
        body += "<h3>Plans rejected, by reason</h3>" + table(["reason", "plans"], [[k, f"{v:,}"] for k, v in rej], {1})
    est = data.get("estimate")
    if est:
        pl = [[g, v["size"], v["stride"], ", ".join(v["levels"]), v["members_per_scale_up_domain"]]
              for g, v in est["plan"]["placement"].items() if v["size"] > 1]
        body += ("<h3>Placement of the estimated plan's parallel groups</h3>"
                 + table(["group", "size", "stride", "levels crossed", "per scale-up domain"], pl, {1, 2, 4}))
    return body


def _scaling(data: dict, png: bytes | None) -> str:
    rows = data.get("scaling") or []
    if not rows:
        return "<p>Not computed.</p>"
    body = image(png, "days and MFU against chips", "scaling") if png else ""
    t = [[f"{r['chips']:,}", fmt.days(r["days"]) if r["days"] is not None else "-",
          f"{r['step_time_s']:.3f}" if r["step_time_s"] is not None else "-",
          fmt.pct(r["mfu"]) if r["mfu"] is not None else "-",
          fmt.plan(r["plan"]) if r["plan"] else r.get("message", "no plan"),
          f"{r['global_batch_seqs']:,}" + (" (adjusted)" if r.get("batch_adjusted") else "")] for r in rows]
    body += table(["chips", "whole run", "step s", "MFU (BF16 peak)", "best plan", "batch (seqs)"], t, {0, 1, 2, 3})
    body += ('<p class="note">The plan is searched again at each chip count (same model, batch and precision; '
             "where the batch cannot be split over a chip count it is moved to the nearest one that can).</p>")
    return body


def _sensitivity(data: dict, png: bytes | None) -> str:
    sens = data.get("sensitivity") or {}
    if not sens.get("rows"):
        return f"<p>{esc(sens.get('message', 'Not computed.'))}</p>"
    body = image(png, "tornado chart of days against hardware parameters", "sensitivity") if png else ""
    fs = sens["factors"]
    rows = []
    for r in sens["rows"]:
        cells = [r["param"], f"{fmt.value(float(r['nominal']))} {r['unit']}"]
        for p in r["points"]:
            # the one computed-duration format, as the nominal line below (never '0.0 d' for a run of minutes)
            d = "" if p["days"] is None or not math.isfinite(p["days"]) else f"{fmt.days(p['days'])}, "
            cells.append(d + fmt.signed_pct(p["change_pct"]))
        rows.append(cells)
    body += table(["parameter", "nominal"] + [f"x{f:g}" for f in fs], rows, set(range(1, 2 + len(fs))))
    if sens.get("nominal_days") is not None:
        body += (f'<p class="note">Nominal: {fmt.days(sens["nominal_days"])}. {esc(sens.get("method", ""))}.'
                 f'{_nominal_note(data, sens["nominal_days"])}</p>')
    else:
        body += f'<p class="note">The run has no token count: changes are in time per token. {esc(sens.get("method", ""))}.</p>'
    return body


def _input_value(r: dict, key: str) -> str:
    """A catalog input of the ranges table in the unit the catalog prints (547 TFLOP/s, 144 GiB, 4,000 GB/s,
    800 Gb/s), not raw SI; inputs without a unit (an efficiency, an oversubscription ratio) as numbers."""
    return fmt.catalog_input(r, key) or f"{r[key]:.4g}"


def _nominal_note(data: dict, nominal_days: float | None) -> str:
    """Why a sweep's nominal days may differ from the answer's: the sweeps re-search the plan (the best plan),
    while the answer is the estimate, which gives unstated plan fields the software stack's defaults."""
    est = data.get("estimate") or {}
    days = est.get("days")
    if nominal_days is None or days is None or abs(days / nominal_days - 1.0) < 0.005:
        return ""
    return (f" The nominal is the best plan of the search ({fmt.days(nominal_days)}); the answer above is the "
            f"estimate, whose unstated plan fields take the software stack's defaults ({fmt.days(days)}).")


def _ranges(data: dict, png: bytes | None) -> str:
    rng = data.get("ranges")
    if rng is None:
        return "<p>Not computed.</p>"
    unit = rng.get("unit")
    body = ""
    if rng.get("inputs"):
        body += image(png, "tornado chart of the catalog ranges", "ranges") if png else ""
        n = (lambda v: fmt.days(v)) if unit == "days" else (lambda v: f"x{v:.3f}")
        body += kv_table([("low", n(rng["low"]), "range_low"), ("nominal", n(rng["nominal"]), "range_nominal"),
                          ("high", n(rng["high"]), "range_high"),
                          ("input that drives the spread", rng.get("driver") or "-", None)])
        body += table(["input", "low", "nominal", "high", "result at low", "result at high", "why uncertain"],
                      [[r["input"], _input_value(r, "low"), _input_value(r, "nominal"), _input_value(r, "high"),
                        n(r["result_at_low"]), n(r["result_at_high"]), r["reason"]] for r in rng["inputs"]],
                      {1, 2, 3, 4, 5})
        note = _nominal_note(data, rng["nominal"]) if unit == "days" else ""
        body += f'<p class="note">{note.strip()}</p>' if note else ""
    else:
        # "no input carries a range" was false beside a power or price range (hgx-h800: 980-1,275 W per chip)
        body += ("<p>No input that moves the days (peak FLOP/s, HBM, link bandwidths and latencies, scale-up size) "
                 "carries a range in the catalog (catalog/data/ranges.yaml): the sources agree, so the spread of "
                 "tokens/s and days below comes from the model's validation error only.</p>")
    est = data.get("estimate")
    body += _cost_ranges(rng.get("cost_inputs") or [], (est or {}).get("cost") or {})
    band = rng.get("validation_band")
    if band and est:
        tps = est["tokens_per_s_per_chip"]
        rows = [("tokens/s per chip", f"{fmt.tokens_per_s(tps * band['tokens_per_s_factor_low'])} - "
                 f"{fmt.tokens_per_s(tps * band['tokens_per_s_factor_high'])}", "band_tokens_per_s")]
        if "days" in est and band.get("days_factor_high"):
            rows.append(("whole run (without failures)", f"{fmt.days(est['days'] * band['days_factor_low'])} - "
                         f"{fmt.days(est['days'] * band['days_factor_high'])}", "band_days"))
        body += (f"<h3>Band from the validation error (median |error| {fmt.pct(band['median_abs_error'])})</h3>"
                 + kv_table(rows))
    return body


def _cost_ranges(inputs: list[dict], cost: dict) -> str:
    """The catalog ranges that move only energy and cost (power, price per chip: the days do not depend on them),
    with the run's energy at each end of the power range: energy is linear in the power per chip (cost.energy_mwh),
    so it is the nominal energy x low / nominal and x high / nominal."""
    if not inputs:
        return ""
    energy = cost.get("energy_mwh")
    rows = []
    for r in inputs:
        at = "-"
        if r["name"] == "power_per_chip_w" and energy is not None and r["nominal"]:
            at = (f"energy {fmt.quantity(energy * r['low'] / r['nominal'], 'MWh')} - "
                  f"{fmt.quantity(energy * r['high'] / r['nominal'], 'MWh')}")
        rows.append([r["input"], _input_value(r, "low"), _input_value(r, "nominal"), _input_value(r, "high"), at,
                     r["reason"]])
    return ("<h3>Catalog ranges that move only energy and cost (not the days)</h3>"
            + table(["input", "low", "nominal", "high", "run at low - high", "why uncertain"], rows, {1, 2, 3}))


def validation_text(ve: dict | None, family: str) -> str:
    """A paragraph giving the held-out validation error that applies to chip family ``family``."""
    if not ve:
        return f"<p>No validation error is recorded for {esc(family)}.</p>"
    return (f"<p>Held-out (leave-one-out) error of predicted tokens/s per chip that applies to "
            f"<b>{esc(family)}</b>: median |error| <b data-key=\"median_abs_error\">{fmt.pct(ve['median_abs_error'])}"
            f"</b>, max |error| {fmt.pct(ve['max_abs_error'])}, bias {fmt.pct(ve.get('bias', 0.0))} over "
            f"{ve.get('runs', '?')} runs ({esc(ve.get('basis', ''))}).</p>"
            "<p class=\"note\">From perf/data/calibration.yaml, written by scripts/calibrate.py; see the README's "
            "accuracy table and <code>trainsim validate</code>.</p>")


def inputs_table(rows: list[dict]) -> str:
    """HTML tables of the run's inputs, one per group, with value, source, confidence and citation."""
    body = []
    for group in dict.fromkeys(r["group"] for r in rows):
        sel = [r for r in rows if r["group"] == group]
        body.append(f"<h3>{esc(group)}</h3>" + table(
            ["input", "value", "source", "confidence", "note", "citation"],
            [[r["input"], r["value"], r["source"], r["confidence"], r["note"], r["citation"]] for r in sel], {1},
            wrap={0, 2, 4, 5}))
    return "".join(body)


def run_sections(data: dict, charts: dict[str, bytes], with_answer: bool = True) -> list[tuple[str, str, str]]:
    """(id, title, html) of every section of a run report."""
    est = data.get("estimate")
    out = []
    if with_answer:
        top = f'<div class="answer" data-key="answer">{esc(data["answer"])}</div>'
        out.append(("answer", "Answer", top + (headline(est) if est else "")))
    out += [
        ("breakdown", "Step time by cause", _breakdown(data, charts.get("breakdown"))),
        ("memory", "Memory per chip", _memory(data, charts.get("memory"))),
        ("plans", "Best plans", _plans(data)),
        ("scaling", "Scaling: chips vs days and MFU", _scaling(data, charts.get("scaling"))),
        ("sensitivity", "Sensitivity (tornado)", _sensitivity(data, charts.get("sensitivity"))),
        ("ranges", "Ranges", _ranges(data, charts.get("ranges"))),
        ("validation", "Validation error that applies", validation_text(data.get("validation_error"),
                                                                       data.get("family", ""))),
        ("inputs", "Every input with its source", inputs_table(data.get("inputs") or [])),
    ]
    return out


def render(data: dict, charts: dict[str, bytes]) -> str:
    """The run report as a self-contained HTML page: title, the answer first, then each section."""
    secs = run_sections(data, charts)
    est = data.get("estimate") or {}
    head = (f"<h1>{esc(data['title'])}</h1><p class=\"meta\">{esc(est.get('model', ''))} on "
            f"{est.get('chips', 0):,} x {esc(est.get('chip', ''))} ({esc(est.get('system', ''))})</p>") if est else \
        f"<h1>{esc(data['title'])}</h1>"
    # the answer comes first, right under the title
    body = head + "".join(section(i, t, b) if i != "answer" else f'<section id="answer">{b}</section>'
                          for i, t, b in secs)
    return page(data["title"], body, [(i, t) for i, t, _ in secs])


def build_run_report(run, *, progress=None, spec_source: str | None = None, **kw) -> Report:
    """The report of ``run`` (a :class:`trainsim.Run`); keyword arguments go to :func:`collect.run_data`
    (``top``, ``with_scaling``, ``with_sensitivity``, ``with_ranges``, ``sweep``)."""
    data = run_data(run, progress=progress, spec_source=spec_source, **kw)
    charts = make_charts(data)
    return Report(title=data["title"], html=render(data, charts), charts=charts, data=data)
