"""``--csv`` for every command that has ``--json``: the same raw SI numbers, as flat CSV rows (nested keys become
dotted columns, :func:`trainsim.report.tabular.flatten`). Each command picks its natural table: one row per item
of a list answer (catalog entries, validated runs, scenarios, sensitivity points), else one row for the answer."""
from __future__ import annotations

import typer
from ..report.tabular import print_csv

CSV = typer.Option(False, "--csv", help="print CSV rows (raw SI numbers, nested keys as dotted columns)")


def rows_of(obj, key: str | None = None) -> list[dict]:
    """The CSV rows of a JSON-like answer: ``obj[key]`` (a list of records) when given, a list of records as is,
    else the answer as one row."""
    if key is not None and isinstance(obj, dict) and isinstance(obj.get(key), list):
        obj = obj[key]
    if isinstance(obj, list):
        return [r if isinstance(r, dict) else {"value": r} for r in obj]
    return [obj if isinstance(obj, dict) else {"value": obj}]


def print_rows(obj, key: str | None = None) -> None:
    """Print ``obj`` as CSV (see :func:`rows_of`)."""
    print_csv(rows_of(obj, key))
