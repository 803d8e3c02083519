"""The report of one seed scenario: its verdict first, then its numbers (with ranges), best plan, assumptions with
sources and validation error, and, where the scenario has a training run, that run's charts (the run's best plan
re-estimated: step-time breakdown, memory, best plans, scaling, sensitivity)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import TrainsimError
from . import fmt
from .page import Report, esc, image, kv_table, page, rel_path, section, table
from ..report.scenario_render import assumption_value, fmt_key, plan_text, key_label
from ..scenario.kinds import load_doc
from ..catalog.resolve import resolve_system
from ..scenario.common import make_run
from ..spec import PlanSpec
from .collect import run_data
from . import charts as ch
from .run_report import validation_text, run_sections, headline, make_charts

VERDICT_CLASS = {"supported": "verdict-supported", "not supported": "verdict-not-supported", "error": "verdict-error"}


def _is_triple(v) -> bool:
    return isinstance(v, dict) and "nominal" in v


def value_text(v: Any, key: str = "") -> str:
    """A scenario number as the terminal prints it (``trainsim scenario``; money keys in dollars)."""
    if isinstance(v, dict) and {"tp", "pp"} <= set(v):
        return plan_text(v)
    return fmt_key(key, v)


def flatten(d: dict, prefix: str = "", depth: int = 0) -> tuple[list[tuple[str, Any]], list[tuple[str, list]]]:
    """Scalar rows (dotted keys) and list-of-dict tables of a scenario's ``numbers``."""
    rows, tables = [], []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not _is_triple(v) and depth < 2 and not ({"tp", "pp"} <= set(v)):
            r, t = flatten(v, key + ".", depth + 1)
            rows += r
            tables += t
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            tables.append((key, v))
        else:
            rows.append((key, v))
    return rows, tables


def _list_table(items: list[dict], max_cols: int = 10) -> str:
    scalar = lambda v: not isinstance(v, (dict, list, tuple)) or _is_triple(v) or (  # noqa: E731
        isinstance(v, dict) and {"tp", "pp"} <= set(v))
    cols = list(dict.fromkeys(k for it in items for k, v in it.items() if not k.startswith("_") and scalar(v)))
    cols = cols[:max_cols]

    return table([key_label(c) for c in cols],
                 [[fmt.catalog_input(it, c) or value_text(it.get(c), c) for c in cols] for it in items])


def _doc(result: dict, doc: dict | None) -> tuple[dict, Path]:
    path = Path(result.get("file") or ".")
    if doc is None:
        doc = load_doc(path) if path.is_file() else {}
    return doc, path.parent


def scenario_run(result: dict, doc: dict | None = None, base_dir: Path | None = None):
    """The training run behind a scenario's best plan (model and training of the scenario or of its ``job``;
    system, chips, precision, batch and plan of ``best_plan``), or None when the scenario has none."""
    bp = result.get("best_plan")
    if not isinstance(bp, dict) or not isinstance(bp.get("plan"), dict) or not bp.get("system"):
        return None
    d, base = _doc(result, doc)
    base = Path(base_dir) if base_dir is not None else base
    job = d
    if "model" not in d and isinstance(d.get("job"), str):
        try:
            job = load_doc(base / d["job"])
        except TrainsimError:
            return None
    model, training = job.get("model"), job.get("training")
    fm = d.get("frontier_model")
    shape = ((result.get("numbers") or {}).get("frontier_model") or {}).get("shape")
    if model is None and isinstance(fm, dict) and isinstance(shape, dict):   # frontier-sizing: a parametric model
        model = shape
        training = {"tokens": float(fm["tokens"]), "seq_len": int(fm.get("seq_len", 4096)),
                    "global_batch_seqs": int(fm.get("global_batch_seqs", 16384))}
    if model is None or not isinstance(training, dict):
        return None
    training = {k: v for k, v in training.items() if k != "global_batch_tokens"}
    training.update(precision=bp.get("precision", training.get("precision", "bf16")),
                    global_batch_seqs=int(bp.get("global_batch_seqs") or training.get("global_batch_seqs")))
    system: Any = bp["system"]
    cands = [d.get("system"), job.get("system")] + [e.get("system") for key in ("systems", "compare")
                                                     for e in (d.get(key) or []) if isinstance(e, dict)]
    for c in cands:            # an inline system of the scenario whose id is the best plan's
        if c is not None and not isinstance(c, str):
            try:
                if resolve_system(c, base).id == bp["system"]:
                    system = resolve_system(c, base)
                    break
            except TrainsimError:
                continue
    try:
        return make_run(model, system, int(bp["chips"]), training, base,
                        name=f"{result.get('id', 'scenario')}: best plan", plan=bp["plan"])
    except TrainsimError:
        return None


def sweep_plan_of(result: dict, doc: dict | None = None):
    """The plan fields the scenario itself fixes (its job's ``plan``), for the best-plans search and the sweeps."""
    d, _ = _doc(result, doc)
    try:
        return PlanSpec.model_validate(d.get("plan") or {})
    except Exception:  # noqa: BLE001 - a scenario plan the run spec would reject: search freely
        return PlanSpec()


def scenario_data(result: dict, doc: dict | None = None, *, progress=None, with_run: bool = True, **kw) -> dict:
    """The scenario result plus, where it has a run, the run report's data (``run``)."""
    data = {"kind": "scenario", "title": f"{result.get('id')}: {result.get('claim', '')}", "result": result,
            "run": None, "run_note": None}
    if not with_run:
        return data
    run = scenario_run(result, doc)
    if run is None:
        data["run_note"] = "this scenario has no single training run to chart (see its numbers)"
        return data
    rd = run_data(run, sweep=sweep_plan_of(result, doc), progress=progress,
                  spec_source=f"scenario {result.get('id')} ({rel_path(result.get('file', ''))}), best plan", **kw)
    bp = result["best_plan"]
    if rd.get("estimate"):
        e = rd["estimate"]
        rd["matches_scenario"] = abs(e["step_time_s"] - bp.get("step_time_s", e["step_time_s"])) <= \
            1e-9 * max(1.0, e["step_time_s"])
    data["run"] = rd
    return data


def _numbers(result: dict) -> str:
    rows, tables = flatten(result.get("numbers") or {})
    body = table(["quantity", "value"], [[key_label(k), value_text(v, k)] for k, v in rows], {1})
    for title, items in tables:
        body += f"<h3>{esc(key_label(title))}</h3>" + _list_table(items)
    return body


def _triples(result: dict) -> list[tuple[str, dict]]:
    """(name, {low, nominal, high}) of every ranged number of a scenario result."""
    rows, tables = flatten(result.get("numbers") or {})
    tri = [(k, v) for k, v in rows if _is_triple(v) and v.get("low") is not None and v.get("low") != v.get("high")]
    for title, items in tables:
        for i, it in enumerate(items):
            for k, v in it.items():
                if _is_triple(v) and v.get("low") is not None and v.get("low") != v.get("high"):
                    who = it.get("label") or it.get("system") or it.get("name") or i
                    tri.append((f"{title}[{who}].{k}", v))
    return tri


def scenario_chart(result: dict) -> bytes | None:
    """A chart for every scenario page: the spread of each ranged number (low and high end as % of nominal)."""
    rows = []
    for k, v in _triples(result):
        nom = v.get("nominal")
        if isinstance(nom, (int, float)) and nom and all(isinstance(v.get(e), (int, float)) for e in ("low", "high")):
            rows.append({"label": k[-40:], "low": (v["low"] / nom - 1) * 100, "high": (v["high"] / nom - 1) * 100,
                         "low_label": "low", "high_label": "high"})
    if not rows:
        return None

    return ch.png_bytes(ch.tornado_chart(rows[:14], title="Ranges: low and high end vs nominal",
                                         xlabel="change vs nominal (%)"))


#: unit suffixes of scalar scenario numbers that can share one axis, and how the axis is labelled
UNIT_SUFFIXES = (("_days", "days"), ("_h", "hours"), ("_s", "seconds"), ("_usd", "USD"), ("_mwh", "MWh"),
                 ("_gib", "GiB"), ("_bytes", "bytes"), ("_flops", "FLOP"), ("_pct", "%"))


def _num(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
        return float(v)
    if _is_triple(v):
        return _num(v.get("nominal"))
    return None


def _tail(text: str, n: int = 40) -> str:
    return text if len(text) <= n else "\u2026" + text[-(n - 1):]


def fallback_chart_rows(result: dict) -> tuple[list[dict], str, str]:
    """What a scenario page charts when it has neither a training run nor ranged numbers: (rows of ``label`` /
    ``value``, title, axis label), or ``([], "", "")`` when the result has no two comparable numbers.

    In order: (1) the cases of ``result["ranges"]`` (e.g. WAN bandwidths) on their first numeric field they all
    have; (2) the largest group (two or more) of scalar numbers that share a unit suffix (``_h``, ``_days``,
    ``_usd``, ...); (3) the first list table of the numbers with a numeric column (one bar per item)."""
    extra = result.get("ranges")
    if isinstance(extra, dict) and len(extra) >= 2 and all(isinstance(v, dict) for v in extra.values()):
        first = next(iter(extra.values()))
        for k in first:
            if all(_num(v.get(k)) is not None for v in extra.values()):
                return ([{"label": str(case), "value": _num(v[k])} for case, v in extra.items()],
                        f"{key_label(k)} by case", key_label(k))
    rows, tables = flatten(result.get("numbers") or {})
    groups: dict[str, list[dict]] = {}
    for k, v in rows:
        x = _num(v)
        last = fmt.key_parts(k)[-1]
        for suffix, unit in UNIT_SUFFIXES:
            if x is not None and (last.endswith(suffix) or f"{suffix}_" in last):
                groups.setdefault(unit, []).append({"label": _tail(key_label(k)), "value": x})
                break
    if groups:
        unit, best = max(groups.items(), key=lambda kv: len(kv[1]))
        if len(best) >= 2:
            return best[:14], f"The scenario's numbers in {unit}", unit
    for title, items in tables:
        cols = [k for k in items[0] if not k.startswith("_") and all(_num(it.get(k)) is not None for it in items)]
        if cols:
            who = lambda i, it: str(it.get("label") or it.get("name") or it.get("system") or i)  # noqa: E731
            return ([{"label": _tail(who(i, it)), "value": _num(it[cols[0]])} for i, it in enumerate(items[:14])],
                    f"{key_label(title)}: {key_label(cols[0])}", key_label(cols[0]))
    return [], "", ""


def fallback_chart(result: dict) -> bytes | None:
    """PNG of :func:`fallback_chart_rows`, or None when there is nothing to compare."""
    rows, title, xlabel = fallback_chart_rows(result)
    if not rows:
        return None

    return ch.png_bytes(ch.bar_chart(rows, title, xlabel))


def _ranges(result: dict) -> str:
    tri = _triples(result)
    body = ""
    if tri:
        body += table(["quantity", "low", "nominal", "high", "unit"],
                      [[key_label(k), fmt_key(k, v.get("low")), fmt_key(k, v.get("nominal")), fmt_key(k, v.get("high")),
                        v.get("unit", "")]
                       for k, v in tri], {1, 2, 3})
    extra = result.get("ranges")
    if isinstance(extra, dict) and extra:
        body += "<h3>ranges</h3>" + table(["case", "values"], [[k, value_text(v)] for k, v in extra.items()])
    if not body:
        body = "<p>This scenario reports no input range (its inputs carry no catalog range).</p>"
    body += ('<p class="note">low / high: each uncertain catalog input at its low and high value (plan re-searched) '
             "and, for days with failures, the goodput assumptions' ends.</p>")
    return body


def _best_plan(result: dict) -> str:
    bp = result.get("best_plan")
    if not isinstance(bp, dict):
        return "<p>No best plan.</p>"
    if not isinstance(bp.get("plan"), dict):
        return table(["field", "value"], [[k, value_text(v)] for k, v in bp.items() if not isinstance(v, dict)])
    rows = [("system", str(bp.get("system")), None), ("chips", f"{bp.get('chips', 0):,}", None),
            ("precision", str(bp.get("precision")), None), ("plan", fmt.plan(bp["plan"]), "best_plan"),
            ("global batch (sequences)", f"{bp.get('global_batch_seqs', 0):,}", None)]
    if bp.get("step_time_s") is not None:
        rows += [("step time", fmt.step_time(bp["step_time_s"]), "best_plan_step_time_s"),
                 ("tokens/s per chip", fmt.tokens_per_s(bp["tokens_per_s_per_chip"]), None),
                 ("MFU (vs BF16 peak)", fmt.pct(bp["mfu"]), "best_plan_mfu"),
                 ("memory per chip", f"{bp['memory_per_chip_gib']:.1f} of {bp['hbm_gib']:.1f} GiB", None)]
    return kv_table(rows)


def _assumptions(result: dict) -> str:
    rows = []
    for a in result.get("assumptions") or []:
        val = assumption_value(a)
        rows.append([key_label(str(a.get("key"))), val, a.get("source", ""), a.get("confidence", ""), a.get("note", "")])
    return table(["input", "value", "source", "confidence", "note"], rows, wrap={1, 2, 4})


def _validation(result: dict) -> str:
    ve = result.get("validation_error") or {}
    if not ve:
        return "<p>No validation error recorded for this scenario.</p>"
    parts = []
    for fam, v in ve.items():
        if isinstance(v, dict) and "median_abs_error" in v and "max_abs_error" in v and "runs" in v:
            parts.append(validation_text(v, fam))
            cover = [(lab, v[k]) for k, lab in (("validated_on", "validated on"), ("scenario_runs", "this answer runs"),
                                                ("extrapolation", "extrapolation")) if v.get(k)]
            if cover:   # what the figure was measured on against what the answer runs
                parts.append("<p class=\"note\">" + "; ".join(f"{esc(lab)}: {esc(str(x))}" for lab, x in cover)
                             + ".</p>")
        elif isinstance(v, dict):
            parts.append(f"<h3>{esc(fam)}</h3>" + table(["quantity", "value"],
                                                       [[k, value_text(x)] for k, x in v.items()]))
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            parts.append(f"<h3>{esc(fam)}</h3>" + _list_table(v))
    return "".join(parts)


def sections(data: dict, charts: dict[str, bytes]) -> list[tuple[str, str, str]]:
    """The HTML sections (id, title, body) of a scenario result's report page, with its ``charts`` (PNG bytes)
    embedded."""
    r = data["result"]
    cls = VERDICT_CLASS.get(r.get("verdict_class", ""), "")
    top = (f'<p class="meta">{esc(r.get("kind", ""))} &middot; {esc(rel_path(r.get("file", "")))}</p>'
           f'<div class="answer {cls}" data-key="answer">{esc(r.get("verdict", ""))}</div>'
           + (f"<p><b>Deciding assumption:</b> {esc(r['deciding_assumption'])}</p>" if r.get("deciding_assumption")
              else "")
           + (f"<p class=\"details\">{esc(r['details'])}</p>" if r.get("details") else "")
           + f"<p><b>Claim:</b> {esc(r.get('claim', ''))}</p>"
           + (f"<p><b>Question:</b> {esc(r.get('question'))}</p>" if r.get("question") else ""))
    numbers_img = (image(charts["scenario_numbers"], "bar chart of the scenario's comparable numbers",
                         "scenario_numbers") if charts.get("scenario_numbers") else "")
    out = [("answer", "Answer", top), ("numbers", "Numbers", numbers_img + _numbers(r)), ("best-plan", "Best plan", _best_plan(r)),
           ("scenario-ranges", "Ranges (low / nominal / high)",
            (image(charts["scenario_ranges"], "ranges of the scenario's numbers", "scenario_ranges")
             if charts.get("scenario_ranges") else "") + _ranges(r)),
           ("assumptions", "Assumptions and their sources", _assumptions(r)),
           ("scenario-validation", "Validation error that applies", _validation(r))]
    rd = data.get("run")
    if rd is not None:
        note = (f'<p class="note">The run behind the best plan, re-estimated: {esc(rd["answer"])}'
                + ("" if rd.get("matches_scenario", True) else " (differs from the scenario's step time)") + "</p>"
                + (headline(rd["estimate"]) if rd.get("estimate") else ""))
        secs = run_sections(rd, charts, with_answer=False)
        out.append(("run", "The run behind the best plan", note))
        out += [(i, t, b) for i, t, b in secs]
    elif data.get("run_note"):
        out.append(("run", "The run behind the best plan", f"<p>{esc(data['run_note'])}.</p>"))
    if r.get("traceback"):
        out.append(("error", "Error", f"<pre>{esc(r['traceback'])}</pre>"))
    return out


def render(data: dict, charts: dict[str, bytes]) -> str:
    """A scenario result's report as one self-contained HTML page."""
    secs = sections(data, charts)
    r = data["result"]
    body = f"<h1>{esc(r.get('id'))}: {esc(r.get('claim', ''))}</h1>" + "".join(
        f'<section id="answer">{b}</section>' if i == "answer" else section(i, t, b) for i, t, b in secs)
    return page(f"{r.get('id')}: scenario report", body, [(i, t) for i, t, _ in secs])


def build_scenario_report(result: dict, doc: dict | None = None, *, progress=None, with_run: bool = True,
                          **kw) -> Report:
    """The report of a scenario result (``trainsim.scenario.run.run_file(path)``)."""
    data = scenario_data(result, doc, progress=progress, with_run=with_run, **kw)
    charts = make_charts(data["run"]) if data.get("run") else {}
    if not charts:
        png = scenario_chart(data["result"])
        if png is not None:
            charts["scenario_ranges"] = png
    if not charts:   # neither a run nor ranged numbers: still a chart of the page's comparable numbers
        png = fallback_chart(data["result"])
        if png is not None:
            charts["scenario_numbers"] = png
    return Report(title=data["title"], html=render(data, charts), charts=charts, data=data)
