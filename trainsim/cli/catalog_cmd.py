"""``trainsim catalog chips | systems | models | show ID``: browse the sourced catalog (rich tables or ``--json``)."""
from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from .application import app
from .csvopt import print_rows
from .. import api
from ..report.fmt import catalog_value as fmt

catalog_app = typer.Typer(no_args_is_help=False, help="Browse the sourced hardware and model catalog.")
app.add_typer(catalog_app, name="catalog")

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
CSV_OPT = typer.Option(False, "--csv", help="Print CSV rows (raw SI numbers) instead of a table.")


def _console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is piped."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _print_csv(rows) -> None:
    print_rows(rows)


def _list(rows: list[dict], json_out: bool, csv_out: bool, title: str, cols: list[str],
          body: list[list[str]]) -> None:
    """Print a catalog listing as CSV rows, JSON, or a rich table of ``body`` under ``cols``."""
    if csv_out:
        _print_csv(rows)
    elif json_out:
        _print_json(rows)
    else:
        _console().print(_table(title, cols, body))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


@catalog_app.command("chips")
def chips_cmd(json_out: bool = JSON_OPT, csv_out: bool = CSV_OPT) -> None:
    """Every chip: dense peaks, HBM, per-direction bandwidths, TDP, price (unusable = missing BF16/HBM data)."""
    rows = api.catalog("chips").to_dict()
    cols = ["id", "family", "BF16", "FP8", "HBM", "HBM BW", "scale-up", "scale-out", "TDP", "price", "usable"]
    body = [[r["id"], r["family"], fmt(r["bf16_flops"] or None, "flops"), fmt(r["fp8_flops"], "flops"),
             fmt(r["hbm_bytes"] or None, "bytes"), fmt(r["hbm_bw"] or None, "bytes_per_s"),
             fmt(r["scale_up_bw"] or None, "bytes_per_s"), fmt(r["scale_out_bw"] or None, "bits_per_s"),
             fmt(r["tdp_w"], "watts"), fmt(r["price_usd"], "usd"), "yes" if r["usable"] else "NO"]
            for r in rows]
    _list(rows, json_out, csv_out, "chips (dense peaks; bandwidth per chip, one direction)", cols, body)


@catalog_app.command("systems")
def systems_cmd(json_out: bool = JSON_OPT, csv_out: bool = CSV_OPT) -> None:
    """Every system: chip, scale-up domain, per-chip bandwidths and latencies, power and price per chip."""
    rows = api.catalog("systems").to_dict()
    # headers name the quantity, the cells carry the unit (1,275 W, 33,625 USD); counts with separators (8,192)
    cols = ["id", "chip", "domain", "scale-up", "lat", "scale-out", "lat", "power/chip", "price/chip"]
    body = [[r["id"], r["chip"], fmt(r["scale_up_size"], "count"), fmt(r["scale_up_bw"], "bytes_per_s"),
             fmt(r["scale_up_latency"], "seconds"), fmt(r["scale_out_bw"], "bits_per_s"),
             fmt(r["scale_out_latency"], "seconds"), fmt(r["power_per_chip_w"], "watts"),
             fmt(r["price_per_chip_usd"], "usd")] for r in rows]
    _list(rows, json_out, csv_out, "systems (bandwidth per chip, one direction; power all-in)", cols, body)


@catalog_app.command("models")
def models_cmd(json_out: bool = JSON_OPT, csv_out: bool = CSV_OPT) -> None:
    """Every catalog model: id, name, Hugging Face model_type, official total / active parameters (billions)."""
    rows = api.catalog("models").to_dict()
    cols = ["id", "name", "model_type", "total B", "active B"]
    body = [[r["id"], r["name"], str(r["model_type"] or "-"), f"{r['total_b']:g}" if r["total_b"] else "-",
             f"{r['active_b']:g}" if r["active_b"] else "-"] for r in rows]
    _list(rows, json_out, csv_out, "models (official parameter counts)", cols, body)


def _profile_value(value) -> str:
    """A framework profile's value as written in its file: ``1f1b, interleaved``, ``zero=0 recompute=none``."""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={_profile_value(v)}" for k, v in value.items())
    return str(value).lower() if isinstance(value, bool) else str(value)


@catalog_app.command("frameworks")
def frameworks_cmd(json_out: bool = JSON_OPT, csv_out: bool = CSV_OPT) -> None:
    """Every software-stack profile (--framework ID, a run spec's framework:): what it offers the plan search."""
    rows = api.catalog("frameworks").to_dict()
    yes = lambda b: "yes" if b else "no"  # noqa: E731
    cols = ["id", "precisions", "schedules", "zero", "recompute", "EP", "CP", "flags"]
    body = [[r["id"] + (f" (default on {', '.join(r['default_for_vendors'])})" if r["default_for_vendors"] else "")
             + (" (default elsewhere)" if r["default"] else ""), _profile_value(r["precisions"]),
             _profile_value(r["schedules"]), _profile_value(r["zero"]), _profile_value(r["recompute"]),
             yes(r["expert_parallel"]), yes(r["context_parallel"]), r["emitter"] or "-"] for r in rows]
    _list(rows, json_out, csv_out, "software stacks (catalog show ID: each statement with its source)", cols, body)


def _render_fields(console: Console, title: str, items: list[dict]) -> None:
    if not items:
        return
    console.print(_table(title, ["field", "value", "source", "conf.", "note"],
                         [[i["field"], i["display"], ", ".join(i["source"]) or "-", str(i["confidence"] or "-"),
                           i["note"]] for i in items]))


@catalog_app.command("show")
def show_cmd(entry_id: str = typer.Argument(..., metavar="ID", help="A chip, system, model or framework id."),
             json_out: bool = JSON_OPT, csv_out: bool = CSV_OPT) -> None:
    """One chip, system, model or framework profile with every field, its sources (with citation text), confidence
    and ranges."""
    info = api.describe(entry_id).to_dict()
    if csv_out:   # one row per field: value, source, confidence
        _print_csv([{"id": info["id"], "kind": info["kind"], **f} for f in info.get("fields", [])]
                   if info.get("fields") else [info])
        return
    if json_out:
        _print_json(info)
        return
    console = _console()
    if info["kind"] == "framework":
        emitter = f"flags: --emit {info['emitter']}" if info["emitter"] else "no flag emitter"
        on = ", ".join(info["default_for_vendors"])
        console.print(f"[bold]{info['id']}[/bold] (framework profile)"
                      f"{f'  default stack on {on}' if on else ''}{'  default stack elsewhere' if info['default'] else ''}"
                      f"  {emitter}")
        console.print(f"source: {info['source']}")
        console.print(_table("what the stack offers the plan search (framework_schedules.yaml)",
                             ["field", "value", "source"],
                             [[f["field"], _profile_value(f["value"]), f["source"] if f["source"] != info["source"]
                               else "(the profile's)"] for f in info["fields"]]))
        return
    if info["kind"] == "model":
        console.print(f"[bold]{info['id']}[/bold] (model): {info.get('name', '')}")
        for key, value in info.items():
            if key not in ("kind", "id", "name"):
                console.print(f"[bold]{key}[/bold]:", json.dumps(value, indent=2, default=str))
        return
    head = f"[bold]{info['id']}[/bold] ({info['kind']}): {info['name']}"
    if info["kind"] == "chip":
        head += f"  vendor {info['vendor']}, family {info['family']}"
        if not info["usable"]:
            head += f"  [red]unusable for estimates: no sourced {', '.join(info['missing'])}[/red]"
    else:
        head += f"  chip {info['chip']}"
    console.print(head)
    if info.get("status"):
        console.print(f"status: {info['status']}")
    _render_fields(console, "catalog values (display units; --json and --csv give the SI values the engine uses)",
                   info["fields"])
    _render_fields(console, "research file (hardware.yaml)", info["research"])
    if info["ranges"]:
        console.print(_table("ranges (low / nominal / high)", ["field", "range", "source", "conf.", "reason"],
                             [[r["field"], r["display"], ", ".join(r["source"]), str(r["confidence"]), r["reason"]]
                              for r in info["ranges"]]))
    console.print(_table("sources", ["id", "citation"], [[k, v] for k, v in info["sources"].items()]))
