#!/usr/bin/env python3
"""The same published recipe on sibling chips (B200 / B300 / GB200 / GB300, ...): measured against predicted ratio.

For every pair of validation runs that differ only in their chip model (trainsim/validate/siblings.py), prints
the published ratio of tokens/s per chip, the ratio the model predicts under ONE calibration (the chip family's,
so the catalog alone carries the chips' difference) and under each chip's fitted calibration (what the per-chip
level absorbs), and the excess published / predicted. Then, per chip model, the median of published / predicted
over all its runs under the shared calibration. Usage: python scripts/sibling_ratios.py [--family nvidia-blackwell]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from trainsim.perf.calibration import calib_for
from trainsim.validate.calibrate import prepare
from trainsim.validate.siblings import compare, sibling_pairs

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="nvidia-blackwell", help="chip family (default nvidia-blackwell)")
    family = ap.parse_args(argv).family   # --help and a mistyped flag exit here, before any run is predicted
    runs = [r for r in prepare([ROOT / "validation" / "runs"]) if r.family == family]
    pairs = sibling_pairs(runs)
    shared = compare(pairs, lambda r: calib_for(r.family, framework=r.framework))
    own = compare(pairs, lambda r: calib_for(r.family, framework=r.framework, chip=r.chip))
    print(f"{'other / base':78s} {'published':>9s} {'shared':>7s} {'excess':>7s} {'fitted':>7s}")
    for s, o in zip(shared, own):
        print(f"{s.other[:38]:38s} / {s.base[:38]:38s} {s.published:9.3f} {s.predicted:7.3f} {s.excess:7.3f} "
              f"{o.predicted:7.3f}")
    by: dict[str, list[float]] = {}
    for r in runs:
        by.setdefault(r.chip, []).append(r.reported / r.predict(calib_for(r.family, framework=r.framework)))
    print(f"published / predicted under the {family} calibration, per chip model (median over its runs):")
    for chip, q in sorted(by.items()):
        print(f"  {chip:24s} {len(q):3d} runs  {statistics.median(q):.3f}")


if __name__ == "__main__":
    main()
