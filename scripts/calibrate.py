#!/usr/bin/env python3
"""Fit trainsim's calibration constants on validation/runs and write trainsim/perf/data/calibration.yaml.

Usage: python scripts/calibrate.py [--dry-run]
Prints the full fit, then the leave-one-out table, and rewrites the README's accuracy table (between the
<!-- accuracy:begin --> / <!-- accuracy:end --> markers) with it. Takes about 5 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from trainsim.validate.calibrate import calibration_yaml, fit, leave_one_out, loo_markdown, prepare, replace_section

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the fit and leave-one-out table, write nothing")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = prepare([ROOT / "validation" / "runs"])
    full = fit(runs)
    for lvl in (full.dense,):
        print(f"{len(runs)} runs; pooled {lvl.pooled}; groups " +
              ", ".join(f"{k} {v:.3f}" for k, v in {**lvl.eff, **lvl.fw_eff}.items()))
    print(f"moe_layer_host_s {full.host_s * 1e3:.3f} ms; moe_expert_call_host_s {full.call_s * 1e6:.1f} us; "
          f"gemm_eff_fp8_block_ratio {full.block_ratio:.3f}; "
          f"L1 log loss {full.loss:.3f}")
    loo = leave_one_out(runs, full=full)
    for r in sorted(loo.rows, key=lambda r: abs(r.error)):
        print(f"  {r.name:58s} {r.reported:10.1f} {r.predicted:10.1f} {r.error:+7.1%} {r.note}")
    print("leave-one-out:", loo.summary())
    for fam in sorted({r.family for r in runs}):
        print(f"  {fam}: {loo.summary(fam)}")
    for fw in sorted({r.framework for r in runs}):
        print(f"  {fw}: {loo.summary(framework=fw)}")
    print(f"  dense: {loo.summary(moe=False)}\n  MoE: {loo.summary(moe=True)}")
    text = calibration_yaml(full, loo, runs)
    if not args.dry_run:
        (ROOT / "trainsim" / "perf" / "data" / "calibration.yaml").write_text(text)
        print("wrote trainsim/perf/data/calibration.yaml")
        readme = ROOT / "README.md"
        readme.write_text(replace_section(readme.read_text(), loo_markdown(loo, full)))
        print("updated the accuracy table in README.md")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
