"""``trainsim check SPEC``: validate any spec kind (run, serving, post-training, sweep, scenario) and print what it
resolved -- model counts, system, plan fields fixed vs searched -- without running anything."""
from __future__ import annotations

from pathlib import Path

import typer

from .application import app
from .runload import load_run_warned
from .csvopt import CSV
from ..api import checks
from .csvopt import print_rows
from ..report.terminal import print_json


@app.command("check")
def check_cmd(spec: Path = typer.Argument(..., help="any trainsim spec YAML (run, serving, post-training, sweep, "
                                                    "scenario)"),
              json_: bool = typer.Option(False, "--json", help="print one JSON object"),
              csv_: bool = CSV) -> None:
    """Validate a spec and print what it resolved to, without running it."""
    res = checks.check(spec).to_dict()
    if res["kind"] == "run":    # valid, but likely a mistake: said as estimate says it (stderr)
        load_run_warned(spec)
    if csv_:
        print_rows(res)
        return
    if json_:
        print_json(res)
        return
    print(f"{spec}: valid {res['kind']} spec")
    for k, v in res["resolved"].items():
        if k != "kind":
            print(f"  {k}: {v}")
