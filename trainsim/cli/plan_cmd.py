"""``trainsim plan RUN.yaml``: search every valid plan; best plans, Pareto front, rejections; --emit flags."""
from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command("plan")
def plan_cmd(run: Path = typer.Argument(..., help="run-spec YAML"),
             top: int = typer.Option(5, "--top", help="how many plans to list"),
             fix: str = typer.Option("", "--fix", help="fix plan fields, e.g. tp=8,pp=16"),
             emit: str = typer.Option("", "--emit", help="print the best plan as megatron or mindspeed arguments"),
             json_: bool = typer.Option(False, "--json", help="print one JSON object"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Find the fastest plan that fits in memory."""
    from .. import api
    from ..emit import emit_args
    from ..report.progress import progress_bar
    from ..report.terminal import print_json, render_search

    r = api.load_run(run)
    fixed = api.parse_fix(fix, r.plan)
    with progress_bar("searching plans", enabled=not (quiet or json_ or emit)) as tick:
        res = api.search(r, fixed, top=top, progress=tick)
    if emit:
        if res.best is None:
            raise api.TrainsimError(res.no_plan_message(), field="plan")
        print(emit_args(res.best, emit))
        return
    if json_:
        print_json(res.to_dict())
    else:
        render_search(res)
