"""``trainsim validate [PATH ...] [--json | --markdown] [--calibration FILE]``: predictions vs published runs."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .application import app
from ..api import TrainsimError, validation
from ..report.terminal import print_json
from ..report.validation import render_validation
from .csvopt import print_rows


@app.command("validate")
def validate_cmd(paths: Optional[list[Path]] = typer.Argument(
                     None, help="run-spec files or directories (default: the repository's validation/runs)"),
                 json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                 csv_: bool = typer.Option(False, "--csv", help="print one CSV row per run (raw numbers)"),
                 markdown: bool = typer.Option(False, "--markdown", help="print the README validation table"),
                 calibration: Optional[Path] = typer.Option(None, "--calibration",
                                                            help="calibration YAML to use instead of the packaged one"),
                 ) -> None:
    """Predict every published run and compare with its reported tokens/s per chip."""
    res = validation.validate(paths, calibration=calibration)
    compared = any(r.ok for r in res.rows)
    bad = next((r for r in res.rows if not compared and r.kind == "error" and (r.note or "").startswith("load: ")),
               None)
    if bad is not None:   # nothing compared and a file is not a run spec: bad input (one line, exit 2), not a table
        raise TrainsimError(bad.note.removeprefix("load: "))
    if csv_:
        print_rows(res.to_dict(), "runs")
    elif json_:
        print_json(res.to_dict())
    elif markdown:
        print(res.to_markdown(), end="")
    else:
        render_validation(res)
    if not compared:   # nothing compared (every row an error row): no answer, exit 1 (README)
        raise typer.Exit(1)
