"""``trainsim scenario FILE`` / ``trainsim scenario --all [--detail] [--json | --csv] [--html DIR]``: run
seed-scenario files and print a one-screen summary first (claim, verdict, deciding assumption / headline number),
then, with ``--detail`` (always for one FILE), each scenario's numbers with ranges, best plan and assumptions;
``--html DIR`` also writes one HTML report per scenario plus DIR/index.html."""
from __future__ import annotations

from pathlib import Path

import typer

from .application import app
from .. import api
from ..api import scenarios
from ..report.progress import progress_bar
from ..report.scenario_view import render_scenario_result as render_result, render_scenario_summary as render_summary
from ..report.terminal import print_json
from ..report.site import check_site_dir, file_name, write_site
from .csvopt import print_rows


@app.command("scenario")
def scenario_cmd(file: Path = typer.Argument(None, help="scenario YAML (scenarios/S2.yaml)"),
                 all_: bool = typer.Option(False, "--all", help="run every scenarios/*.yaml"),
                 json_: bool = typer.Option(False, "--json", help="print a JSON list of results"),
                 csv_: bool = typer.Option(False, "--csv", help="print one CSV row per scenario (raw numbers)"),
                 jobs: int = typer.Option(0, "--jobs", help="processes for --all (0: one per CPU)"),
                 verbose: bool = typer.Option(False, "--verbose", "-v", help="also sizing probes, notes"),
                 detail: bool = typer.Option(False, "--detail", "-d", help="after the summary, every scenario's "
                                                                           "numbers, tables, best plan and "
                                                                           "assumptions (always on for one FILE)"),
                 html: Path = typer.Option(None, "--html", help="also write one HTML report per scenario and "
                                                                "index.html into DIR"),
                 force: bool = typer.Option(False, "--force", help="with --html: replace existing pages in DIR"),
                 quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Answer a seed scenario: verdict, numbers (low/nominal/high), best plan, assumptions with sources."""
    if all_ == (file is not None):
        raise api.TrainsimError("give a scenario FILE or --all (not both)", field="scenario")
    if html is not None:   # refuse an existing page or a symlinked folder before the work

        ids = [{"id": p.stem} for p in scenarios.scenario_files()] if all_ else [{"id": file.stem}]
        check_site_dir(html, [file_name(r) for r in ids] if not force else [], force=force)
    with progress_bar("scenarios", enabled=not (quiet or json_ or csv_)):
        answer = scenarios.scenario(file, all_=all_, jobs=jobs or None)
    results = answer.to_dict()
    if csv_:
        print_rows([{k: v for k, v in r.items() if k != "traceback"} for r in results])
    elif json_:
        print_json(results)
    else:   # the one-screen summary first; the details with --detail (or for a single FILE)
        render_summary(results)
        if detail or verbose or not all_:
            for r in results:
                render_result(r, verbose=verbose)
    if html is not None:
        import sys


        with progress_bar("HTML reports", enabled=not (quiet or json_)) as tick:
            index = write_site(results, html, jobs=jobs or None, progress=tick, force=force)
        if not (quiet or json_):
            print(f"wrote {len(results)} reports and {index}", file=sys.stderr)
    if answer.failed:
        raise typer.Exit(1)
