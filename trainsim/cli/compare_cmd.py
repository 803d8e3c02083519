"""``trainsim compare A.yaml B.yaml [...]``: runs side by side -- plan, step time by cause, memory, days, cost --
and which inputs differ. Each run is estimated exactly as ``trainsim estimate`` does (its plan, completed by the
plan search where it is partial)."""
from __future__ import annotations

from pathlib import Path

import typer

from .application import app
from .costopts import ELECTRICITY, PRICE, PUE, cost_inputs


def _flat_doc(path: Path) -> dict:
    import yaml

    from ..report.tabular import flatten

    doc = yaml.safe_load(path.read_text()) or {}
    return flatten(doc) if isinstance(doc, dict) else {}


def differing_inputs(paths: list[Path]) -> dict[str, list]:
    """Spec keys (dotted) whose values differ between the files, each with the value in every file."""
    docs = [_flat_doc(p) for p in paths]
    keys = list(dict.fromkeys(k for d in docs for k in d))
    return {k: [d.get(k) for d in docs] for k in keys if k != "name" and len({repr(d.get(k)) for d in docs}) > 1}


def compare_rows(ests: list) -> list[tuple[str, str, list]]:
    """(label, key, [raw value per run]) rows of the side-by-side table."""
    from ..report.terminal import plan_text

    ds = [e.to_dict() for e in ests]
    rows = [("model", "model", [d["model"] for d in ds]), ("system", "system", [d["system"] for d in ds]),
            ("chips", "chips", [d["chips"] for d in ds]),
            ("plan", "plan", [plan_text(d["plan"]) for d in ds]),
            ("step time (s)", "step_time_s", [d["step_time_s"] for d in ds])]
    causes = list(dict.fromkeys(k for d in ds for k, v in d["breakdown"].items() if v > 0))
    rows += [(f"  {c} (s)", f"breakdown.{c}", [d["breakdown"].get(c, 0.0) for d in ds]) for c in causes]
    rows += [("tokens/s per chip", "tokens_per_s_per_chip", [d["tokens_per_s_per_chip"] for d in ds]),
             ("MFU (vs BF16 peak)", "mfu", [d["mfu"] for d in ds]),
             ("memory per chip (GiB)", "memory_per_chip_bytes", [d["memory_per_chip_bytes"] / 2**30 for d in ds]),
             ("fits", "fits", [d["fits"] for d in ds]),
             ("days", "days", [d.get("days") for d in ds])]
    cs = [d.get("cost") or {} for d in ds]
    rows += [("chip-hours", "cost.chip_hours", [c.get("chip_hours") for c in cs]),
             ("energy (MWh)", "cost.energy_mwh", [c.get("energy_mwh") for c in cs]),
             ("cost, rental (USD)", "cost.cost_rental_usd", [c.get("cost_rental_usd") for c in cs]),
             ("cost, capex (USD)", "cost.cost_capex_usd", [c.get("cost_capex_usd") for c in cs])]
    return rows


def _cell(key: str, v) -> str:
    from ..numfmt import count, money

    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if key == "mfu":
        return f"{v:.1%}"
    if "usd" in key:
        return money(v)
    if key.startswith("breakdown") or key == "step_time_s":
        return f"{v:.3f}"
    if key in ("days", "memory_per_chip_bytes"):
        return f"{v:.1f}"
    return count(v)


@app.command("compare")
def compare_cmd(runs: list[Path] = typer.Argument(..., help="two or more run-spec YAML files"),
                json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                csv_: bool = typer.Option(False, "--csv", help="print one CSV row per run"),
                price: float = PRICE, pue: float = PUE, electricity: float = ELECTRICITY) -> None:
    """Runs side by side: plan, step time by cause, memory, days, cost, and what differs."""
    from .. import api
    from ..errors import TrainsimError

    if len(runs) < 2:
        raise TrainsimError(f"expected two or more run specs, got {len(runs)}", field="RUNS")
    inputs = cost_inputs(price, pue, electricity)
    ests = []
    for p in runs:
        e = api.estimate(api.load_run(p))
        e.cost_inputs = inputs
        ests.append(e)
    diff = differing_inputs(runs)
    if csv_:
        from ..report.tabular import print_csv

        print_csv([{"file": str(p), **e.to_dict()} for p, e in zip(runs, ests)])
        return
    if json_:
        from ..report.terminal import print_json

        print_json({"runs": [{"file": str(p), **e.to_dict()} for p, e in zip(runs, ests)],
                    "differing_inputs": diff})
        return
    from rich.table import Table

    from ..scenario.render import console

    c = console()
    t = Table(title="side by side")
    t.add_column("")
    for p in runs:
        t.add_column(p.name, justify="right")
    for label, key, vals in compare_rows(ests):
        t.add_row(label, *[_cell(key, v) for v in vals])
    c.print(t)
    d = Table(title="inputs that differ")
    d.add_column("input")
    for p in runs:
        d.add_column(p.name, justify="right")
    for k, vals in diff.items():
        d.add_row(k, *["-" if v is None else str(v) for v in vals])
    c.print(d)
