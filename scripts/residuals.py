#!/usr/bin/env python3
"""Which run features predict the training leave-one-out error? (trainsim/validate/residuals.py)

Usage: python scripts/residuals.py TABLE [--runs all|dense|moe] [--top N] [--bins FEATURE=EDGE,EDGE,...]...
TABLE is the saved output of ``scripts/calibrate.py --dry-run``. Prints every feature's within-group Spearman
correlation with the signed log error, strongest first, then the requested bin tables.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainsim.validate.calibrate import prepare
from trainsim.validate.residuals import (bin_table, build_rows, features_of, format_bins, format_rank,
                                         parse_loo_table, rank_features, selector)

ROOT = Path(__file__).resolve().parents[1]


def _fail(msg: str) -> None:
    print(msg, file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", type=Path, help="saved output of scripts/calibrate.py --dry-run")
    ap.add_argument("--runs", choices=("all", "dense", "moe"), default="all")
    ap.add_argument("--top", type=int, default=20, help="features to print (default 20)")
    ap.add_argument("--bins", action="append", default=[], metavar="FEATURE=EDGES",
                    help="a bin table of FEATURE cut at the comma-separated EDGES (repeatable)")
    args = ap.parse_args(argv)
    try:
        text = args.table.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{args.table}: cannot read the table ({exc.__class__.__name__}); expected the saved output of "
              "scripts/calibrate.py --dry-run")
    table = parse_loo_table(text)
    if not table:
        _fail(f"{args.table}: no per-run line found; expected the saved output of scripts/calibrate.py --dry-run")
    bins = []
    for spec in args.bins:
        name, _, edges = spec.partition("=")
        try:
            cut = sorted(float(e) for e in edges.split(","))
        except ValueError:
            _fail(f"--bins: {spec[:80]!r}: expected FEATURE=EDGE,EDGE,... with numeric edges")
        bins.append((name, cut))
    rows = [r for r in build_rows(prepare([ROOT / "validation" / "runs"]), table) if selector(args.runs)(r)]
    known = features_of(rows)
    for name, _ in bins:
        if name not in known:
            _fail(f"--bins: feature {name!r}: expected one of {', '.join(sorted(known))}")
    print(f"{len(rows)} runs ({args.runs}) of {len(table)} in {args.table}")
    print(format_rank(rank_features(rows)[:args.top]))
    for name, cut in bins:
        print(format_bins(name, bin_table(rows, name, cut)))


if __name__ == "__main__":
    main()
