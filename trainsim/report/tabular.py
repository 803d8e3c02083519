"""Flat tables of answers: nested JSON-like dicts become dotted columns (``cost.chip_hours``) for CSV output
(``--csv``) and DataFrames. Values stay raw SI numbers, like ``--json``."""
from __future__ import annotations

import csv
import io
import math
import sys

import numpy as np


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": "1;2"}`` (lists of scalars joined by ';')."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            if all(not isinstance(x, (dict, list, tuple)) for x in v):
                out[key] = ";".join(str(x) for x in v)
            # lists of records (runners-up, probes) are separate tables, not columns
        else:
            out[key] = v
    return out


def to_csv(rows: list[dict]) -> str:
    """CSV text of ``rows`` (flattened; the columns are the union, in first-seen order)."""
    flat = [flatten(r) for r in rows]
    cols: list[str] = []
    for r in flat:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in flat:
        w.writerow({k: ("" if v is None or _non_finite(v) else v) for k, v in r.items()})
    return buf.getvalue()


def _non_finite(v) -> bool:
    """A NaN or infinite number: written as an empty cell, as ``--json`` writes it null (report.terminal
    print_json), never 'inf' / 'nan' (a sensitivity row where nothing fits, change_pct = inf)."""
    return isinstance(v, (float, np.floating)) and not math.isfinite(float(v))


def print_csv(rows: list[dict], file=None) -> None:
    """Write ``rows`` as CSV to ``file`` (standard output by default)."""
    (file or sys.stdout).write(to_csv(rows))
