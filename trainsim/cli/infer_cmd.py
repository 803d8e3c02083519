"""``trainsim infer SPEC.yaml [--json]``: serving throughput, latency, KV cache and best plan (issue 7).

``trainsim infer --validate`` prints the error table against the published serving numbers instead.
MFU / HFU do not apply to ``infer`` and are not reported: decode is bound by memory bandwidth, so serving is
judged by tokens/s per chip and latency (issue #16 item 3); ``mfu`` / ``mfu_at_precision`` are training outputs.
``trainsim posttrain SPEC.yaml [--json]``: one RL / on-policy-distillation job across clusters (trainsim.posttrain).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import typer

from .application import app
from .csvopt import CSV
from .. import api
from ..api import posttraining, serving
from ..report.inference import render_errors, render_infer
from ..report.terminal import print_json
from .csvopt import print_rows
from ..report.posttrain import posttrain_csv_rows, render_posttrain, render_rl_errors


def _emit(answer: dict, csv_: bool, json_: bool, render: Callable[[dict], None], rows: str | None = None,
          csv_rows: Callable[[dict], list[dict]] | None = None) -> None:
    """Print one answer as CSV rows (``answer[rows]`` when given, else ``csv_rows(answer)``, else the answer as one
    row), one JSON object, or the rich rendering."""
    if csv_:
        print_rows(answer[rows] if rows else csv_rows(answer) if csv_rows else answer)
    elif json_:
        print_json(answer)
    else:
        render(answer)


def _nothing_compared(table: dict, spec: Path | None) -> None:
    """Exit 1 (README: no answer) when a ``--validate`` table has no row, as ``trainsim validate`` does: a spec
    without ``reported:`` figures compares nothing, and an empty table with exit 0 reads as a pass."""
    if not table["rows"]:
        what = f"{spec}: no reported: figures" if spec else "no validation points"
        print(f"no answer: {what}; nothing was compared", file=sys.stderr)
        raise typer.Exit(1)


def _table_or_answer(spec: Path | None, validate: bool, csv_: bool, json_: bool, *, what: str,
                     table: Callable[[list | None], api.Answer], render_table: Callable[[dict], None],
                     answer: Callable[[Path], api.Answer], render: Callable[[dict], None],
                     csv_rows: Callable[[dict], list[dict]] | None = None) -> None:
    """What ``infer`` and ``posttrain`` print: with ``--validate`` the error ``table`` against SPEC's reported
    figures (all of the validation set without SPEC; exit 1 when it has no row), else the ``answer`` for SPEC (none
    given: bad input asking for ``what``)."""
    if validate:
        t = table([spec] if spec else None).to_dict()
        _emit(t, csv_, json_, render_table, rows="rows")
        _nothing_compared(t, spec)
        return
    if spec is None:
        raise api.TrainsimError(f"give a {what} (or --validate)", field="SPEC")
    _emit(answer(spec).to_dict(), csv_, json_, render, csv_rows=csv_rows)


@app.command("infer")
def infer_cmd(spec: Path = typer.Argument(None, help="serving-spec YAML"),
              json_: bool = typer.Option(False, "--json", help="print one JSON object"),
              csv_: bool = CSV,
              validate: bool = typer.Option(False, "--validate",
                                            help="error table vs validation/inference/*.yaml, or vs SPEC's "
                                                 "reported: figures")) -> None:
    """Prefill and decode tokens/s per chip, time per output token, KV cache and the best serving plan."""
    _table_or_answer(spec, validate, csv_, json_, what="serving-spec YAML", table=serving.infer_validate,
                     render_table=lambda t: render_errors(t["rows"], t["summary"], t["latency_bound"]),
                     answer=serving.infer, render=render_infer)


@app.command("posttrain")
def posttrain_cmd(spec: Path = typer.Argument(None, help="post-training spec YAML"),
                  json_: bool = typer.Option(False, "--json", help="print one JSON object"),
                  csv_: bool = CSV,
                  validate: bool = typer.Option(False, "--validate",
                                                help="step-time error table vs validation/rl/*.yaml, or vs "
                                                     "SPEC's reported: figures")) -> None:
    """RL / on-policy distillation across clusters: per-step phases, traffic per link, timeline, totals."""
    _table_or_answer(spec, validate, csv_, json_, what="post-training spec YAML",
                     table=posttraining.posttrain_validate,
                     render_table=lambda t: render_rl_errors(t["rows"], t["summary"]),
                     answer=posttraining.posttrain, render=render_posttrain, csv_rows=posttrain_csv_rows)
