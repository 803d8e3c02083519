#!/usr/bin/env python3
"""Fit the FP4 realised-gain fraction f (scenario/data/fp4_training.yaml) on the published NVFP4 training rows.

There is no FP4 run in validation/runs, but four of its FP8 runs have an NVFP4 row beside them in the same
Megatron-Bridge table with the same plan (docs/performance-summary-archive.md, 26.06 and 26.04.01 containers).
For each pair the model runs the validation run's own plan twice: as published (FP8 peak) and with GEMMs
g = 1 + f (P_fp4 / P_fp8 - 1) times faster (:func:`trainsim.scenario.ranges.fp4_gemm_speedup`); f is the value at
which the model's throughput ratio equals the published NVFP4 / FP8 ratio (bisection; the ratio rises with f).
The engine's own error on the FP8 run cancels in the ratio.

The pairs (validation run, NVFP4 tokens/s of the same table and plan) are ``published_points`` of
scenario/data/fp4_training.yaml; copy the printed low / median / high into its ``realised_gain_fraction``.

Usage: python scripts/fit_fp4.py    (prints one line per pair and the low / median / high of f)
"""
from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def model_ratio(run, f: float) -> float:
    """Model tokens/s of ``run``'s own plan with FP4 GEMMs at realised fraction ``f`` over the same at FP8."""
    from trainsim.api import estimate
    from trainsim.scenario.ranges import apply, fp4_gemm_speedup

    chip = run.system.chip
    fp8, fp4 = chip.peak_flops["fp8"], chip.peak_flops["fp4"]
    base = estimate(run).tokens_per_s_per_chip
    fast = replace(run, system=apply(run.system, "chip", "fp8_flops", fp8 * fp4_gemm_speedup(fp4, fp8, f)))
    return estimate(fast).tokens_per_s_per_chip / base


def fit(run, target: float, lo: float = 0.0, hi: float = 3.0) -> float:
    """f at which :func:`model_ratio` equals ``target`` (bisection), clipped to [lo, hi]."""
    if model_ratio(run, hi) < target:
        return hi
    if model_ratio(run, lo) > target:
        return lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if model_ratio(run, mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def main() -> None:
    """Fit f on every pair of ``fp4_training.yaml``'s ``published_points`` and print low / median / high."""
    from trainsim.scenario.ranges import fp4_training_data
    from trainsim.spec import load_run

    fs = []
    for p in fp4_training_data()["published_points"]:
        run = load_run(ROOT / "validation" / "runs" / p["beside"])
        target = p["nvfp4"] / p["reported"]
        f = fit(run, target)
        fs.append(f)
        print(f"{p['run']}: {p['nvfp4']} / {p['reported']} = {target:.3f}x published -> f = {f:.3f} "
              f"(model at f=1: {model_ratio(run, 1.0):.3f}x)")
    print(f"f: low {min(fs):.2f}, median {statistics.median(fs):.2f}, high {max(fs):.2f}")


if __name__ == "__main__":
    main()
