"""Terminal rendering of scenario results and of the sizing / capacity / sensitivity answers (rich)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .terminal import panel, table, wide_console
from .fmt import catalog_input, is_fraction_key, pct, value, value_of_key, plan as _plan
from ..numfmt import key_parts, label, is_money_key

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

COLOURS = {"supported": "green", "not supported": "red", "error": "red"}


def console() -> Console:
    """A console 120 columns wide when the output is not a terminal (:func:`trainsim.report.terminal.wide_console`)."""
    return wide_console()


def fmt(x: Any) -> str:
    """A number for a table (:func:`trainsim.report.fmt.value`, the one formatting layer)."""
    return value(x)


def fmt_key(key: str, x: Any) -> str:
    """``fmt`` of the value of ``key``, money keys in dollars (:func:`trainsim.report.fmt.value_of_key`)."""
    return value_of_key(key, x)


def assumption_value(a: dict) -> str:
    """An assumption's value as text, its low-high range beside the nominal where it has one (the terminal and
    HTML scenario renderers share it)."""
    v = a.get("value")
    if a.get("low") is not None and a.get("high") is not None and a.get("low") != a.get("high") \
            and not isinstance(v, dict):
        return fmt_key(str(a.get("key")), {"nominal": v, "low": a["low"], "high": a["high"]})
    return v if isinstance(v, str) else fmt_key(str(a.get("key")), v)


def key_label(key: str) -> str:
    """A dotted snake_case key as a human label: each part through :func:`trainsim.numfmt.label`
    (``cost.rental_usd`` -> ``cost / rental (USD)``), a number's decimal point kept in its part
    (:func:`trainsim.numfmt.key_parts`: ``ratio_to_reference.Llama 3.1 405B`` -> ``ratio to reference / Llama 3.1
    405B``)."""
    return " / ".join(label(part) for part in key_parts(key))


def plan_text(plan: dict | None) -> str:
    """A plan as ``tp=8 pp=16 ...`` (:func:`trainsim.report.fmt.plan`, with the node limit the engine applied where
    there is one: the plan's, or its stack's, :func:`trainsim.plan_estimate.effective_node_limit`)."""
    return _plan(plan)


def _flatten(d: dict, prefix: str = "", depth: int = 0, tables: list | None = None) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and "nominal" not in v and depth < 2 and k not in ("plan", "shape"):
            rows += _flatten(v, key + ".", depth + 1, tables)
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            if tables is not None:
                tables.append((key, v))
        elif k in ("plan", "plan_restricted", "plan_reference"):
            rows.append((key, plan_text(v)))
        elif k == "shape" and isinstance(v, dict):
            rows.append((key, ", ".join(f"{kk}={vv}" for kk, vv in v.items() if not isinstance(vv, dict))))
        else:
            rows.append((key, v))
    return rows


PRIORITY = ("label", "name", "system", "chip", "chips", "units", "precision", "fits", "days", "effective_days",
            "goodput", "mfu", "memory_per_chip_gib", "cost_rental_usd", "cost_capex_usd", "slowdown_pct", "limit",
            "binding", "detail", "input", "low", "high", "result_at_low", "result_at_high", "factor", "value",
            "change_pct", "flops", "source", "message", "note")


def _compact(x: Any, key: str = "") -> str:
    if key and (is_money_key(key) or is_fraction_key(key)):   # dollars and percentages as everywhere else
        return fmt_key(key, x)
    if isinstance(x, dict) and "nominal" in x:
        s = fmt(x.get("nominal"))
        if x.get("low") is not None and x.get("high") is not None and x["low"] != x["high"]:
            s += f" ({fmt(x['low'])}-{fmt(x['high'])})"
        return s
    return fmt(x)


def _list_table(title: str, items: list[dict], max_cols: int = 9) -> Table:
    """A list of result dicts as a table of its most telling scalar fields (the JSON output has all of them)."""
    scalar = lambda v: not isinstance(v, (dict, list, tuple)) or (isinstance(v, dict) and "nominal" in v)  # noqa
    present = [k for k in PRIORITY if any(k in it and scalar(it[k]) for it in items)]
    rest = [k for it in items for k, v in it.items() if k not in present and not k.startswith("_") and scalar(v)]
    cols = list(dict.fromkeys(present + rest))[:max_cols]
    t = table(title=title)
    for c in cols:
        t.add_column(key_label(c), overflow="fold")
    for it in items:
        t.add_row(*[catalog_input(it, c) or _compact(it.get(c), c) for c in cols])
    return t



def _plans_of(items: list[dict]) -> list[str]:
    """The plans of a list table's rows, each named by its chip, precision, label or name, else by its factor
    (``x0.5``, a sensitivity row such as S8's decode rows, which printed a bare ': tp=32 ...'), else its row
    number."""
    out = []
    for i, it in enumerate(items):
        for k in ("plan", "plan_restricted"):
            if isinstance(it.get(k), dict):
                who = " ".join(str(it[x]) for x in ("chip", "precision", "label", "name") if it.get(x))
                if not who:
                    f = it.get("factor")
                    who = f"x{f:g}" if isinstance(f, (int, float)) and not isinstance(f, bool) else f"row {i + 1}"
                out.append(f"  {who}: {plan_text(it[k])}")
    return out


def render_result(r: dict, c: Console | None = None, *, verbose: bool = False) -> None:
    """Prints a scenario result to the terminal: claim, question and verdict, then its numbers (with ranges)
    and tables; ``verbose`` adds the search probes and the assumptions' notes."""
    c = c or console()
    cls = r.get("verdict_class", "")
    colour = COLOURS.get(cls, "yellow")
    details = f"\n\n{r['details']}" if r.get("details") else ""
    c.print(panel(f"[bold]{r.get('claim', '')}[/bold]\n\n[italic]{r.get('question', '')}[/italic]\n\n"
                  f"[{colour}]{r.get('verdict', '')}[/{colour}]{details}",
                  title=f"{r.get('id')} ({r.get('kind', '')})", expand=True))
    tables: list = []
    rows = _flatten(r.get("numbers") or {}, tables=tables)
    t = table(title=f"{r.get('id')}: numbers (nominal, with (low - high) where an input is uncertain)")
    t.add_column("quantity")
    t.add_column("value", overflow="fold")
    for k, v in rows:
        t.add_row(key_label(k), fmt_key(k, v))
    c.print(t)
    for title, items in tables:
        if title.endswith("probes") and not verbose:
            continue
        c.print(_list_table(f"{r.get('id')}: {title}", items))
        plans = _plans_of(items)
        if plans:
            c.print("[bold]best plans[/bold]\n" + "\n".join(plans))
    bp = r.get("best_plan")
    if bp and bp.get("system"):
        c.print(f"[bold]best plan[/bold]: {bp.get('chips', 0):,} chips of {bp.get('system')} ({bp.get('precision')}), "
                f"{plan_text(bp.get('plan'))}, batch {fmt(bp.get('global_batch_seqs'))} seqs, step "
                f"{fmt(bp.get('step_time_s'))} s, MFU {pct(bp['mfu']) if bp.get('mfu') is not None else '-'}"
                f" (vs BF16 peak), memory "
                f"{fmt(bp.get('memory_per_chip_gib'))} of {fmt(bp.get('hbm_gib'))} GiB")
    at = table(title=f"{r.get('id')}: assumptions")
    for col in ("key", "value", "source", "confidence"):
        at.add_column(col, overflow="fold")
    for a in r.get("assumptions") or []:
        val = assumption_value(a)
        src = a.get("source", "") + (f" [dim]{a['note']}[/dim]" if a.get("note") and verbose else "")
        at.add_row(key_label(str(a.get("key"))), str(val), src, str(a.get("confidence", "")))
    c.print(at)
    ve = r.get("validation_error")
    if ve:
        c.print("[bold]validation error[/bold]: " + "; ".join(f"{k}: {fmt(v)}" for k, v in ve.items()))
    if r.get("traceback"):
        c.print(r["traceback"])
    c.print()


def summary_row(r: dict) -> dict:
    """One scenario in one line: id, claim, verdict (supported / not supported / depends on X) and the deciding
    assumption or headline number (the verdict's own text after its class)."""
    cls = r.get("verdict_class") or ""
    text = str(r.get("verdict") or "")
    why = text[len(cls) + 2:] if cls and text.startswith(cls + ": ") else text
    because = r.get("deciding_assumption") or r.get("headline") or _first_clause(why)
    return {"id": str(r.get("id")), "claim": _short(str(r.get("claim") or ""), 75), "verdict": cls or text,
            "because": _short(str(because), 200)}


def _first_clause(text: str) -> str:
    """``text`` up to its first ``;`` or sentence end outside parentheses (the headline of a verdict)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and (ch == ";" or (ch == "." and text[i + 1:i + 2] == " " and not text[i - 1:i].isdigit())):
            return text[:i]
    return text


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1].rstrip() + "\u2026"


def render_summary(results: list[dict], c: Console | None = None) -> None:
    """The one-screen summary of ``trainsim scenario``: one row per scenario (:func:`summary_row`)."""
    c = c or console()
    t = table(title=f"scenarios: {len(results)} answered" + ("" if len(results) < 2 else
                                                              " (details: trainsim scenario --all --detail)"),
              show_lines=True, expand=True)
    t.add_column("id", no_wrap=True)
    t.add_column("claim", overflow="fold", ratio=3)
    t.add_column("verdict", overflow="fold", ratio=2)
    t.add_column("deciding assumption / headline number", overflow="fold", ratio=5)
    for r in results:
        row = summary_row(r)
        colour = COLOURS.get(r.get("verdict_class", ""), "yellow")
        t.add_row(row["id"], row["claim"], f"[{colour}]{row['verdict']}[/{colour}]", row["because"])
    c.print(t)
